//! What a process's shim says, for a container's init and an exec process
//! alike: one handler per step, keyed on the process reference.
//!
//! A shim speaks on three descriptors, each an event source of its own:
//! - its startup pipe: `created PID` or `error MESSAGE`, once, the result
//!   of the runtime call that makes the process (`create`, `run`,
//!   `restore`, `exec`);
//! - `reply`: the answers to control lines (`started`, `error MESSAGE`),
//!   and the make result again when the daemon that started the shim was
//!   gone before reading it (see `server/recovery.rs`);
//! - `exit`: EOF when the shim is gone, its process's `exitStatus` written
//!   first (see `exit.rs`).
//!
//! Where the two kinds of process differ, it is in what follows: a made
//! init moves its container on as its operation asks (`create.rs`), a made
//! exec answers its request (`exec.rs`).

use std::io;

use rustix::event::epoll::EventFlags;

use crate::server::container::{OpKind, ProcRef};
use crate::server::lifecycle::Status;
use crate::server::metrics::CallVerb;
use crate::server::Effects;
use crate::server::{CallKind, Daemon, Outcome, Source};
use crate::slab::Ref;
use crate::wire::event::Kind;
use crate::wire::proto::{Code, Error};
use nanoctr_shim::contract::reply::Reply;

impl<F: Effects> Daemon<F> {
    /// Watches a process's shim, as made or made again: its startup pipe,
    /// `reply` and `exit`.
    pub(crate) fn watch_shim(&self, p: ProcRef) -> io::Result<()> {
        let process = self.process(p).ok_or(io::ErrorKind::NotFound)?;
        let flags = EventFlags::IN;
        if let Some(s) = &process.startup {
            self.watch(&s.file, Source::Startup(p), flags)?;
        }
        if let Some(s) = &process.reply {
            self.watch(&s.file, Source::Reply(p), flags)?;
        }
        if let Some(f) = &process.exit {
            self.watch(f, Source::Exit(p), flags)?;
        }
        Ok(())
    }

    /// The runtime call that makes the process has not answered yet.
    fn making(&self, p: ProcRef) -> bool {
        match p {
            ProcRef::Init(r) => self
                .containers
                .get(r)
                .is_some_and(|c| c.status == Status::Creating),
            ProcRef::Exec(e) => self
                .execs
                .get(e)
                .is_some_and(|x| x.status == Status::Creating),
        }
    }

    /// The startup pipe has something: the make result, or EOF.
    pub(crate) fn on_startup(&mut self, p: ProcRef) {
        let Some(reader) = self.process_mut(p).and_then(|x| x.startup.as_mut()) else {
            return;
        };
        let (lines, eof) = reader.read_lines();
        for line in lines {
            match Reply::parse(line.as_bytes()) {
                Reply::Created(pid) => return self.made(p, pid),
                Reply::Error(msg) => return self.make_failed(p, runtime_error(msg), false),
                Reply::Failed { verb, code } => {
                    let e = self.runtime_failed(p, verb, code);
                    return self.make_failed(p, e, false);
                }
                _ => {}
            }
        }
        if eof {
            let verb = match p {
                ProcRef::Init(_) => "create",
                ProcRef::Exec(_) => "exec",
            };
            let e = Error::new(
                Code::Runtime,
                format!("the shim exited before reporting the {verb}"),
            );
            self.make_failed(p, e, false);
        }
    }

    /// The shim's `reply` fifo has lines.
    pub(crate) fn on_reply(&mut self, p: ProcRef) {
        // The shim writes the make result to its startup pipe before it
        // writes anything to `reply`, but epoll may hand over `reply`
        // first: take the startup pipe in before.
        if self.process(p).is_some_and(|x| x.startup.is_some()) {
            self.on_startup(p);
        }
        let Some(reader) = self.process_mut(p).and_then(|x| x.reply.as_mut()) else {
            return;
        };
        let (lines, eof) = reader.read_lines();
        for line in lines {
            let making = self.making(p);
            match (Reply::parse(line.as_bytes()), p) {
                (Reply::Created(pid), _) if making => self.made(p, pid),
                (Reply::Error(msg), _) if making => {
                    return self.make_failed(p, runtime_error(msg), false);
                }
                (Reply::Failed { verb, code }, _) if making => {
                    let e = self.runtime_failed(p, verb, code);
                    return self.make_failed(p, e, false);
                }
                (Reply::Started, ProcRef::Init(r)) => self.start_answered(r, Ok(())),
                (Reply::Error(msg), ProcRef::Init(r)) => {
                    self.start_answered(r, Err(runtime_error(msg)));
                }
                (Reply::Failed { verb, code }, ProcRef::Init(r)) => {
                    let e = self.runtime_failed(p, verb, code);
                    self.start_answered(r, Err(e));
                }
                _ => {}
            }
        }
        if eof {
            if let Some(x) = self.process_mut(p) {
                x.reply = None;
            }
        }
    }

    /// A runtime call of the shim failed: the runtime's own message from
    /// the process's `log.json`, or its exit status when it left none.
    fn runtime_failed(&self, p: ProcRef, verb: &[u8], code: u32) -> Error {
        let verb = String::from_utf8_lossy(verb);
        let log = self.process(p).map(|x| x.log());
        let message = crate::server::runtime::failure(log.as_deref(), &verb, code as i32);
        Error::new(Code::Runtime, message)
    }

    /// The runtime made the process: it has a pid.
    pub(crate) fn made(&mut self, p: ProcRef, pid: u32) {
        let Some(x) = self.process_mut(p) else {
            return;
        };
        x.startup = None;
        x.pid = pid;
        self.metrics.call(make_verb(p), true);
        match p {
            ProcRef::Init(r) => self.init_made(r, pid),
            ProcRef::Exec(e) => self.exec_made(e, pid),
        }
    }

    /// Ends a make that did not succeed: the shim is killed first if it
    /// may still be working. A container's init has the runtime delete
    /// what it made before the client hears (`create.rs`); an exec made
    /// nothing the runtime keeps, and just goes (`exec.rs`).
    pub(crate) fn make_failed(&mut self, p: ProcRef, error: Error, kill_shim: bool) {
        if self.process(p).is_none() {
            return;
        }
        if kill_shim {
            self.kill_shim(p);
        }
        self.metrics.call(make_verb(p), false);
        match p {
            ProcRef::Init(r) => self.create_failed(r, error),
            ProcRef::Exec(e) => self.exec_failed(e, error),
        }
    }

    /// EOF on a shim's `exit` fifo: the shim is gone. Its process has
    /// exited (the shim wrote `exitStatus` first) or the shim was lost.
    pub(crate) fn on_exit(&mut self, p: ProcRef) {
        let at_eof = self.process_mut(p).is_some_and(|x| x.exit_fifo_at_eof());
        if !at_eof {
            return;
        }
        // Take in what the shim said before it went: a make result or a
        // start answer written just before the exit.
        self.on_startup(p);
        self.on_reply(p);
        let Some(x) = self.process_mut(p) else {
            // The make failed and the process is gone already.
            return;
        };
        if x.exit.take().is_none() {
            // A failed make already stopped watching this shim.
            return;
        }
        x.reply = None;
        x.exit_code = crate::store::statedir::read_exit_status(&x.dir);
        let code = x.exit_code;
        let Some((r, id, name)) = self.names(p) else {
            return;
        };
        // A health probe's exit is its check's, not an event.
        let mut quiet = false;
        match p {
            ProcRef::Init(r) => self.init_exited(r, code),
            ProcRef::Exec(e) => {
                if let Some(x) = self.execs.get_mut(e) {
                    x.status = match code {
                        Some(_) => Status::Stopped,
                        None => Status::Unknown,
                    };
                    if x.probe {
                        quiet = true;
                        self.probe_ended(e, code, None);
                    }
                }
            }
        }
        match code {
            _ if quiet => {}
            Some(code) => {
                let code = code.to_string();
                self.emit(&id, Kind::Exit, &[("status", &code), ("proc", &name)]);
            }
            None => self.emit(&id, Kind::ShimLost, &[("proc", &name)]),
        }
        if let ProcRef::Init(r) = p {
            if code.is_none() {
                // Lost: whatever of the container is left could no longer
                // be supervised, so the runtime kills and deletes it.
                let _ = self.spawn_call(r, CallKind::Delete, &["delete", "--force", &id]);
            }
            if let Some(client) = self.take_op(r, &OpKind::Start) {
                let e = Error::new(Code::Runtime, "the shim exited before answering start");
                self.answer(client, Outcome::err(e));
            }
        }
        for w in self.waiters(p) {
            self.answer(Some(w), super::exit::exit_outcome(code));
        }
        self.end_logs(p);
        self.finish_delete_if_done(r);
        if let ProcRef::Init(r) = p {
            self.consider_restart(r);
        }
    }

    /// A process's container (its ref and id) and its own name.
    pub(crate) fn names(&self, p: ProcRef) -> Option<(Ref, String, String)> {
        let (r, name) = match p {
            ProcRef::Init(r) => (r, crate::wire::INIT.to_string()),
            ProcRef::Exec(e) => self.execs.get(e).map(|x| (x.container, x.name.clone()))?,
        };
        let id = self
            .containers
            .get(r)
            .map_or(String::new(), |c| c.id().to_string());
        Some((r, id, name))
    }
}

/// The runtime call that makes a process of this kind.
fn make_verb(p: ProcRef) -> CallVerb {
    match p {
        ProcRef::Init(_) => CallVerb::Create,
        ProcRef::Exec(_) => CallVerb::Exec,
    }
}

/// A shim's `error MESSAGE`, as the answer says it.
fn runtime_error(msg: &[u8]) -> Error {
    Error::new(Code::Runtime, String::from_utf8_lossy(msg))
}
