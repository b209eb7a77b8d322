//! `kill`: `<runtime> kill ID SIGNAL`.

use crate::lifecycle::Verb;
use crate::proto::Error;
use crate::server::{Call, CallKind, Daemon, Outcome};
use crate::slab::Ref;

impl Daemon {
    pub(crate) fn kill(&mut self, client: Ref, id: &str, signal: i32) -> Result<Outcome, Error> {
        let r = self.admit(id, Verb::Kill)?;
        if !self.slot_free() {
            return Ok(Outcome::Stall);
        }
        let signal = signal.to_string();
        self.spawn_call(r, CallKind::Kill { client }, &["kill", id, &signal])?;
        Ok(Outcome::Pending)
    }

    pub(crate) fn kill_done(&mut self, client: Ref, call: &Call, code: i32) {
        self.metrics.call(crate::metrics::CallVerb::Kill, code == 0);
        let outcome = if code == 0 {
            Outcome::ok(&[])
        } else {
            Outcome::err(self.call_failure(call, "kill", code))
        };
        self.answer(Some(client), outcome);
    }
}
