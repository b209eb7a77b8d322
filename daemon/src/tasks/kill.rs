//! `kill`: `<runtime> kill ID SIGNAL`.

use crate::container::OpKind;
use crate::lifecycle::{admits, Verb};
use crate::proto::{Code, Error};
use crate::runtime;
use crate::server::{Call, CallKind, Daemon, Outcome};
use crate::slab::Ref;

impl Daemon {
    pub(crate) fn kill(&mut self, client: Ref, id: &str, signal: i32) -> Outcome {
        let r = match self.lookup(id) {
            Ok(r) => r,
            Err(e) => return Outcome::err(e),
        };
        let Some(c) = self.containers.get(r) else {
            return Outcome::err(super::internal("container vanished"));
        };
        // A kill may overlap a start, but not the making or removing.
        if let Some(op) = c.op.as_ref().filter(|op| op.kind != OpKind::Start) {
            let e = Error::new(
                Code::Busy,
                format!("container is busy ({})", op.kind.describe()),
            );
            return Outcome::err(e);
        }
        if let Err(e) = admits(c.status, Verb::Kill) {
            return Outcome::err(e);
        }
        if !self.slot_free() {
            return Outcome::Stall;
        }
        let signal = signal.to_string();
        match self.spawn_call(r, CallKind::Kill { client }, &["kill", id, &signal]) {
            Ok(()) => Outcome::Pending,
            Err(e) => Outcome::err(e),
        }
    }

    pub(crate) fn kill_done(&mut self, client: Ref, call: &Call, code: i32) {
        let outcome = if code == 0 {
            Outcome::ok(&[])
        } else {
            let msg = runtime::failure(&call.log, "kill", code);
            Outcome::err(Error::new(Code::Runtime, msg))
        };
        self.answer(Some(client), outcome);
    }
}
