//! A shim is gone: EOF on its `exit` fifo. The container's init has exited
//! (the shim wrote `exitStatus` first) or the shim was lost.

use crate::server::container::{OpKind, ProcRef};
use crate::server::lifecycle::Event;
use crate::server::{CallKind, Daemon, Outcome};
use crate::slab::Ref;
use crate::store::statedir::{read_exit_status, INIT};
use crate::wire::event::Kind;
use crate::wire::proto::{Code, Error};

impl Daemon {
    pub(crate) fn on_exit_fifo(&mut self, r: Ref) {
        let at_eof = self
            .containers
            .get_mut(r)
            .is_some_and(|c| c.init.exit_fifo_at_eof());
        if !at_eof {
            return;
        }
        // Take in what the shim said before it went: a create result or a
        // start answer written just before the exit.
        self.on_startup(r);
        self.on_reply(r);
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        if c.init.exit.take().is_none() {
            // A failed create already stopped watching this shim.
            return;
        }
        c.init.reply = None;
        c.init.exit_code = read_exit_status(&c.init.dir);
        let code = c.init.exit_code;
        let id = c.id().to_string();
        // An OOM kill is counted before its victim's exit reaches the shim:
        // look once more, so `oom` comes before `exit`, then stop watching.
        self.check_oom(r);
        self.stop_oom(r);
        let (event, kind) = match code {
            Some(_) => (Event::Exited, Kind::Exit),
            None => (Event::ShimLost, Kind::ShimLost),
        };
        self.apply(r, event);
        let status = code.map(|c| c.to_string());
        let mut extra = vec![("proc", INIT)];
        if let Some(status) = &status {
            extra.insert(0, ("status", status));
        }
        self.emit(&id, kind, &extra);
        if code.is_none() {
            // Lost: whatever of the container is left could no longer be
            // supervised, so the runtime kills and deletes it.
            let _ = self.spawn_call(r, CallKind::Delete, &["delete", "--force", &id]);
        }

        if let Some(client) = self.take_op(r, &OpKind::Start) {
            let e = Error::new(Code::Runtime, "the shim exited before answering start");
            self.answer(client, Outcome::err(e));
        }
        for w in self.waiters(ProcRef::Init(r)) {
            self.answer(Some(w), exit_outcome(code));
        }
        self.end_logs(ProcRef::Init(r));
        self.finish_delete_if_done(r);
        self.consider_restart(r);
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
