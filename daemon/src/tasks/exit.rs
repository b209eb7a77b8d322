//! A shim is gone: EOF on its `exit` fifo. The container's init has exited
//! (the shim wrote `exitStatus` first) or the shim was lost.

use crate::server::lifecycle::Event;
use crate::server::Effects;
use crate::server::{Daemon, Outcome};
use crate::slab::Ref;
use crate::wire::proto::{Code, Error};

impl<F: Effects> Daemon<F> {
    /// The shim of a container's init is gone, its exit status read (see
    /// `process.rs`): the container has stopped, or is lost.
    pub(crate) fn init_exited(&mut self, r: Ref, code: Option<i32>) {
        // An OOM kill is counted before its victim's exit reaches the shim:
        // look once more, so `oom` comes before `exit`, then stop watching.
        self.check_oom(r);
        self.stop_oom(r);
        let event = match code {
            Some(_) => Event::Exited,
            None => Event::ShimLost,
        };
        self.apply(r, event);
        let id = self.containers.get(r).map_or("", |c| c.id()).to_string();
        if let Some(h) = self.containers.get_mut(r).and_then(|c| c.health.as_mut()) {
            h.next = None;
        }
        let e = Error::new(Code::State, format!("container {id} stopped"));
        self.answer_health_waiters(r, Err(e));
        self.drive(r);
    }
}

/// What `wait` answers once the shim is gone.
pub(crate) fn exit_outcome(code: Option<i32>) -> Outcome {
    match code {
        Some(code) => Outcome::ok(&[("exit", &code.to_string())]),
        None => Outcome::err(Error::new(
            Code::State,
            "the shim was lost: exit status unknown",
        )),
    }
}
