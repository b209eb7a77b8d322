//! `kill`: `<runtime> kill ID SIGNAL` for the init, `<runtime> kill --all`
//! for every process; an exec process is signalled by its shim, which
//! reaps it and so can never hit a recycled pid.

use crate::server::lifecycle::{Status, Verb};
use crate::server::Effects;
use crate::server::{Call, CallKind, Daemon, Outcome};
use crate::slab::Ref;
use crate::wire::proto::{Code, Error};
use crate::wire::KillTarget;

use super::internal;
use nanoctr_shim::contract::control::Control;

impl<F: Effects> Daemon<F> {
    pub(crate) fn kill(
        &mut self,
        client: Ref,
        id: &str,
        signal: i32,
        target: &KillTarget,
    ) -> Result<Outcome, Error> {
        if !matches!(target, KillTarget::Proc(_)) {
            if let Some(done) = self.cancel_restart(id) {
                return Ok(done);
            }
        }
        let r = self.admit(id, Verb::Kill)?;
        let number = signal.to_string();
        let args: &[&str] = match target {
            KillTarget::Proc(name) => {
                let e = self.find_exec(r, name).ok_or_else(|| {
                    Error::new(
                        Code::NotFound,
                        format!("container {id} has no process {name}"),
                    )
                })?;
                let x = self
                    .execs
                    .get(e)
                    .ok_or_else(|| internal("process vanished"))?;
                if x.status != Status::Running || !x.process.shim_alive() {
                    let why = format!("process {name} is {}", x.status.as_str());
                    return Err(Error::new(Code::State, why));
                }
                let dir = x.process.dir.clone();
                self.control(&dir, Control::Kill { signal })?;
                return Ok(Outcome::ok(&[]));
            }
            KillTarget::All => &["kill", "--all", id, &number],
            KillTarget::Init => &["kill", id, &number],
        };
        if !self.slot_free() {
            return Ok(Outcome::Stall);
        }
        self.spawn_call(r, CallKind::Kill { client }, args)?;
        if let Some(c) = self.containers.get_mut(r) {
            c.sup.killing = true;
        }
        Ok(Outcome::Pending)
    }

    pub(crate) fn kill_done(&mut self, client: Ref, call: &Call, code: i32) {
        self.metrics
            .call(crate::server::metrics::CallVerb::Kill, code == 0);
        if let Some(c) = self.containers.get_mut(call.container) {
            c.sup.killing = false;
        }
        let outcome = if code == 0 {
            // Stopped on purpose: not for the restart policy to undo.
            self.hold(call.container);
            Outcome::ok(&[])
        } else {
            // It may have stopped by itself meanwhile.
            self.consider_restart(call.container);
            Outcome::err(self.call_failure(call, "kill", code))
        };
        self.answer(Some(client), outcome);
    }
}
