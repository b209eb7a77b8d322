//! Runtime calls the daemon makes itself (`kill`, `delete`, `pause`,
//! `resume`, `update`, `checkpoint`): at most `--max-calls` in flight,
//! counted with the shims' creates and starts; each is reaped here and
//! finished by its task's handler.

use super::Daemon;
use crate::server::metrics::CallVerb;
use crate::server::Effects;
use crate::server::{internal, io_refusal};
use crate::slab::Ref;
use crate::wire::proto::{Code, Error};

/// A runtime process the daemon started and waits for.
pub(crate) struct Call {
    pub pid: u32,
    pub container: Ref,
    pub kind: CallKind,
    /// The runtime's log, for its message if the call fails.
    pub log: std::path::PathBuf,
    pub since: std::time::Instant,
    /// Killed for taking longer than `--start-timeout`.
    pub timed_out: bool,
    /// What the call made, removed if it fails (a partial checkpoint).
    pub cleanup: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// `kill ID SIGNAL`; the client gets the answer.
    Kill { client: Ref },
    /// `delete --force ID`, for `delete` and to clean up after a failed
    /// create; the container's `op` says which.
    Delete,
    /// `pause`, `resume`, `update`, `checkpoint`: the client gets the
    /// answer; success has the verb's effect on the container.
    Op { client: Ref, verb: CallVerb },
    /// `delete --force ID` before the restart policy makes it again.
    Restart,
    /// `kill ID SIGNAL` the daemon decided on (an unhealthy container, an
    /// update stopping the old version): no client, and no hold on the
    /// restart policy.
    Stop,
    /// `delete --force ID` between two versions of an update.
    UpdateDelete,
}

impl<F: Effects> Daemon<F> {
    /// Reaps every exited child (wait4(-1)): runtime calls are finished
    /// here; shims' exits are seen on their `exit` fifos instead, and
    /// orphans that came to the daemon as subreaper are only reaped.
    pub(super) fn reap(&mut self) {
        while let Some((pid, code)) = self.fx.reap() {
            self.child_exited(pid, code);
        }
    }

    /// A child has exited with `code` (128 + N for signal N): a runtime
    /// call is finished by its task; anything else was only reaped.
    pub(crate) fn child_exited(&mut self, pid: u32, code: i32) {
        if self.net_program_exited(pid, code) {
            return;
        }
        if let Some(call) = self.calls.refs_where(|c| c.pid == pid).first() {
            if let Some(call) = self.calls.remove(*call) {
                self.call_done(call, code);
            }
        }
    }

    /// A runtime call may start now. Calls in flight are the daemon's own
    /// runtime processes and the shims' creates and starts; the count is
    /// derived from the tables, so it cannot drift from them.
    pub(crate) fn slot_free(&self) -> bool {
        let shim_calls = self
            .containers
            .iter()
            .filter(|(_, c)| c.op.as_ref().is_some_and(|op| op.kind.uses_slot()))
            .count();
        let exec_calls = self
            .execs
            .iter()
            .filter(|(_, e)| e.status == crate::server::lifecycle::Status::Creating)
            .count();
        self.calls.len() + shim_calls + exec_calls < self.cfg.max_calls
    }

    /// Starts `<runtime> ARGS` for a container; the call's end comes to
    /// [`Daemon::call_done`].
    pub(crate) fn spawn_call(
        &mut self,
        r: Ref,
        kind: CallKind,
        args: &[&str],
    ) -> Result<Ref, Error> {
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| internal("container vanished"))?;
        let log = c.init.log();
        let pid = self
            .fx
            .spawn_runtime(&c.runtime, &log, args)
            .map_err(|e| io_refusal(&format!("cannot run {}", c.runtime.path.display()), &e))?;
        let call = Call {
            pid,
            container: r,
            kind,
            log,
            since: std::time::Instant::now(),
            timed_out: false,
            cleanup: None,
        };
        self.calls
            .insert(call)
            .map_err(|_| internal("runtime call table full"))
    }

    /// Why a runtime call failed: it ran out of time, or the runtime's own
    /// message.
    pub(crate) fn call_failure(&self, call: &Call, verb: &str, code: i32) -> Error {
        if call.timed_out {
            return self.timeout_error(verb);
        }
        Error::new(
            Code::Runtime,
            crate::server::runtime::failure(Some(&call.log), verb, code),
        )
    }

    /// A runtime call the daemon made has exited with `code`.
    pub(crate) fn call_done(&mut self, call: Call, code: i32) {
        match call.kind {
            CallKind::Kill { client } => self.kill_done(client, &call, code),
            CallKind::Delete => self.delete_done(call.container, &call, code),
            CallKind::Op { client, verb } => self.op_done(client, verb, &call, code),
            CallKind::Restart => {
                self.metrics
                    .call(crate::server::metrics::CallVerb::Delete, code == 0);
                self.respawn(call.container)
            }
            CallKind::Stop => self.stop_done(call.container, &call, code),
            CallKind::UpdateDelete => self.update_deleted(call.container, &call, code),
        }
    }
}
