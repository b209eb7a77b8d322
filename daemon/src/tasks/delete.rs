//! `delete`: `<runtime> delete --force ID` (which kills a live container),
//! then, once its shims are gone too (the init's and every exec's), an
//! image rootfs is unmounted, the state dir goes and the container leaves
//! the table.

use crate::server::container::{Op, OpKind};
use crate::server::lifecycle::Verb;
use crate::server::metrics::CallVerb;
use crate::server::Effects;
use crate::server::{Call, CallKind, Daemon, Outcome};
use crate::slab::Ref;
use crate::wire::event::Kind;
use crate::wire::proto::Error;
use nanoctr_shim::contract::container_dir;

impl<F: Effects> Daemon<F> {
    pub(crate) fn delete(&mut self, client: Ref, id: &str, force: bool) -> Result<Outcome, Error> {
        let r = self.admit(id, Verb::Delete { force })?;
        if !self.slot_free() {
            return Ok(Outcome::Stall);
        }
        self.spawn_call(r, CallKind::Delete, &["delete", "--force", id])?;
        if let Some(c) = self.containers.get_mut(r) {
            c.op = Some(Op::new(
                OpKind::Delete {
                    awaiting_shim: false,
                },
                Some(client),
            ));
        }
        Ok(Outcome::Pending)
    }

    /// `delete --force` has exited, for a `delete` or after a failed create.
    pub(crate) fn delete_done(&mut self, r: Ref, call: &Call, code: i32) {
        self.metrics.call(CallVerb::Delete, code == 0);
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        match c.op.as_ref().map(|op| &op.kind) {
            Some(OpKind::Discard(_)) => self.discard(r),
            Some(OpKind::Delete { .. }) if code != 0 => {
                let client = c.op.take().and_then(|op| op.client);
                let e = self.call_failure(call, "delete", code);
                self.answer(client, Outcome::err(e));
            }
            Some(OpKind::Delete { .. }) => {
                if let Some(op) = &mut c.op {
                    op.kind = OpKind::Delete {
                        awaiting_shim: true,
                    };
                }
                self.finish_delete_if_done(r);
            }
            _ => {}
        }
    }

    /// Finishes a delete whose runtime call is done once no shim of the
    /// container (its init's, its execs') is left.
    pub(crate) fn finish_delete_if_done(&mut self, r: Ref) {
        let Some(c) = self.containers.get(r) else {
            return;
        };
        let awaiting = c.op.as_ref().map(|op| &op.kind)
            == Some(&OpKind::Delete {
                awaiting_shim: true,
            });
        let shims_left = c.init.shim_alive()
            || self
                .execs
                .iter()
                .any(|(_, e)| e.container == r && e.process.shim_alive());
        if awaiting && !shims_left {
            self.finish_delete(r);
        }
    }

    /// The runtime has deleted the container and its shim is gone.
    pub(crate) fn finish_delete(&mut self, r: Ref) {
        for e in self.execs_of(r) {
            self.forget_exec(e, false);
        }
        let gone = crate::wire::proto::Error::new(
            crate::wire::proto::Code::NotFound,
            "the container was deleted",
        );
        self.answer_health_waiters(r, Err(gone));
        let Some(c) = self.containers.remove(r) else {
            return;
        };
        self.emit(c.id(), Kind::Delete, &[]);
        // Deleted for good: not made again at the next boot.
        if let Err(e) = crate::store::update::Updates::new(&self.cfg.update_dir).remove(c.id()) {
            crate::logger::warn(&format!("{}: update record: {e}", c.id()));
        }
        let outcome = match self.remove_state(c.id()) {
            Ok(()) => Outcome::ok(&[]),
            Err(e) => Outcome::err(super::internal(format!(
                "container deleted, but its state dir remains: {e}"
            ))),
        };
        self.answer(c.op.and_then(|op| op.client), outcome);
    }

    /// Removes a container's state dir: its record first (a daemon killed
    /// from here on finds it half made, and finishes the job), then
    /// its network and whatever is mounted in it (its namespace file, an
    /// image rootfs), then the rest, so that the removal never reaches
    /// through a mount.
    pub(crate) fn remove_state(&mut self, id: &str) -> std::io::Result<()> {
        let dir = self.state.container(id);
        match std::fs::remove_file(dir.join(container_dir::RECORD.str)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let on_bridge = self.net_down(id, false)?;
        self.fx.unmount_rootfs(&dir)?;
        self.state.remove(id)?;
        if on_bridge {
            self.net_changed();
        }
        Ok(())
    }
}
