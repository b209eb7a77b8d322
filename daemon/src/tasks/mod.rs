//! One module per request, each an `impl Daemon` block: the handler that
//! starts the work, and the handlers of the events that finish it.

mod create;
mod delete;
mod exit;
mod info;
mod kill;
mod start;
mod wait;

use crate::lifecycle::{Event, Status};
use crate::proto::{Code, Error};
use crate::server::{Call, CallKind, Daemon};
use crate::slab::Ref;

impl Daemon {
    /// Moves a container's status on; an event that cannot happen in the
    /// current status leaves it as it is.
    pub(crate) fn apply(&mut self, r: Ref, event: Event) {
        if let Some(c) = self.containers.get_mut(r) {
            if let Some(next) = crate::lifecycle::transition(c.status, event) {
                c.status = next;
            }
        }
    }

    /// The container `id`, or `ERR not-found`.
    pub(crate) fn lookup(&self, id: &str) -> Result<Ref, Error> {
        self.find(id)
            .ok_or_else(|| Error::new(Code::NotFound, format!("no container {id}")))
    }

    pub(crate) fn status(&self, r: Ref) -> Result<Status, Error> {
        self.containers
            .get(r)
            .map(|c| c.status)
            .ok_or_else(|| internal("container vanished"))
    }

    /// Refuses a request while another operation runs on the container.
    pub(crate) fn not_busy(&self, r: Ref) -> Result<(), Error> {
        match self.containers.get(r).and_then(|c| c.op.as_ref()) {
            None => Ok(()),
            Some(op) => Err(Error::new(
                Code::Busy,
                format!("container is busy ({})", op.kind.describe()),
            )),
        }
    }

    /// Starts `<runtime> ARGS` for a container; the call's end comes to
    /// [`Daemon::call_done`].
    pub(crate) fn spawn_call(
        &mut self,
        r: Ref,
        kind: CallKind,
        args: &[&str],
    ) -> Result<(), Error> {
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| internal("container vanished"))?;
        let log = c.log();
        let child = c
            .runtime
            .command(&log, args)
            .spawn()
            .map_err(|e| internal(format!("cannot run {}: {e}", c.runtime.path.display())))?;
        let call = Call {
            pid: child.id(),
            container: r,
            kind,
            log,
        };
        self.calls
            .insert(call)
            .map(drop)
            .map_err(|_| internal("runtime call table full"))
    }

    /// A runtime call the daemon made has exited with `code`.
    pub(crate) fn call_done(&mut self, call: Call, code: i32) {
        match call.kind {
            CallKind::Kill { client } => self.kill_done(client, &call, code),
            CallKind::Delete => self.delete_done(call.container, &call, code),
        }
    }
}

pub(crate) fn internal(message: impl Into<String>) -> Error {
    Error::new(Code::Internal, message)
}
