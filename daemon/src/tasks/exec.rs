//! `exec`: an extra process in a running container, with a shim of its
//! own in `<state-dir>/<id>/<proc>/`. The shim runs `<runtime> exec
//! --detach --process process.json` and reports `created PID` (the process
//! runs from then on); its exit is seen, as an init's is, by EOF on its
//! `exit` fifo, with `exitStatus` beside it.
//!
//! An exited exec process stays in the table, for `wait` and `state`, until
//! its container is deleted, its name is used again, or its room is needed
//! for a new one (the oldest exited goes first).

use std::io;
use std::path::PathBuf;
use std::time::Instant;

use crate::server::container::{Exec, ProcRef, Process};
use crate::server::lifecycle::{Status, Verb};
use crate::server::metrics::CallVerb;
use crate::server::shim::{self, Make, ShimLine, ShimOptions};
use crate::server::{Daemon, Outcome, Source};
use crate::slab::Ref;
use crate::store::statedir::{read_exit_status, write_atomic};
use crate::wire::event::Kind;
use crate::wire::proto::{refuse, Code, Error};
use crate::wire::ExecSpec;

use super::exit::exit_outcome;
use super::{internal, io_refusal};

impl Daemon {
    pub(crate) fn exec(&mut self, client: Ref, spec: &ExecSpec) -> Result<Outcome, Error> {
        let r = self.admit(&spec.id, Verb::Exec)?;
        let old = self.find_exec(r, &spec.proc);
        if let Some(e) = old.and_then(|e| self.execs.get(e)) {
            if matches!(e.status, Status::Creating | Status::Running) {
                return refuse(
                    Code::Exists,
                    format!("container {} has a process {} already", spec.id, spec.proc),
                );
            }
        }
        let room = old.is_some() || !self.execs.is_full() || self.oldest_exited_exec().is_some();
        if !room {
            let n = self.cfg.max_execs;
            return refuse(
                Code::Full,
                format!("{n} exec processes are running already (--max-execs)"),
            );
        }
        if !self.slot_free() {
            return Ok(Outcome::Stall);
        }
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| internal("container vanished"))?;
        let bundle = PathBuf::from(&c.spec.bundle);
        let config = crate::bundle::bundle_config(&c.spec.bundle)?;
        let process = crate::bundle::process::process_json(spec, &config)?;
        let runtime = c.runtime.clone();
        // Room: the old exec of this name, else the oldest that exited.
        if let Some(e) = old.or_else(|| {
            self.execs
                .is_full()
                .then(|| self.oldest_exited_exec())
                .flatten()
        }) {
            self.forget_exec(e, true);
        }
        let dir = self
            .state
            .prepare_process(&spec.id, &spec.proc)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Error::new(
                    Code::Exists,
                    format!("{}/{} exists in the state dir", spec.id, spec.proc),
                ),
                _ => io_refusal("state dir", &e),
            })?;
        let file = dir.join("process.json");
        let record = exec_record(spec.terminal, spec.interactive);
        let spawned = write_atomic(&file, &process)
            .and_then(|()| write_atomic(&dir.join("exec"), record.as_bytes()))
            .and_then(|()| {
                let how = ShimOptions {
                    id: &spec.id,
                    runtime: &runtime,
                    bundle: &bundle,
                    oom_score_adj: self.cfg.shim_oom_score_adj,
                    make: Make::Exec(&file),
                    terminal: spec.terminal,
                    interactive: spec.interactive,
                    size: (spec.cols, spec.rows),
                    log_size: spec.log_size,
                    stdio: [None; 3],
                };
                shim::spawn(&self.cfg.shim, &dir, &how)
            });
        let spawned = match spawned {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(io_refusal("cannot start the shim", &e));
            }
        };
        let mut process = Process::new(dir, spec.terminal, spec.interactive);
        process.adopt_shim(spawned);
        let exec = Exec {
            container: r,
            name: spec.proc.clone(),
            status: Status::Creating,
            process,
            client: Some(client),
            since: Instant::now(),
        };
        let e = match self.execs.insert(exec) {
            Ok(e) => e,
            Err(exec) => {
                exec.process.kill_shim();
                let _ = std::fs::remove_dir_all(&exec.process.dir);
                return Err(internal("exec table full"));
            }
        };
        if let Err(err) = self.watch_exec(e) {
            self.exec_failed(e, internal(format!("epoll: {err}")), true);
        }
        Ok(Outcome::Pending)
    }

    pub(crate) fn watch_exec(&self, e: Ref) -> io::Result<()> {
        let exec = self.execs.get(e).ok_or(io::ErrorKind::NotFound)?;
        let sources = [
            Source::ExecStartup(e),
            Source::ExecReply(e),
            Source::ExecExit(e),
        ];
        self.watch_process(&exec.process, sources)
    }

    /// The exited exec process that has been in the table longest.
    fn oldest_exited_exec(&self) -> Option<Ref> {
        self.execs
            .iter()
            .filter(|(_, e)| matches!(e.status, Status::Stopped | Status::Unknown))
            .min_by_key(|(_, e)| e.since)
            .map(|(r, _)| r)
    }

    /// The exec's startup pipe has something: the result, or EOF.
    pub(crate) fn on_exec_startup(&mut self, e: Ref) {
        let Some(reader) = self
            .execs
            .get_mut(e)
            .and_then(|x| x.process.startup.as_mut())
        else {
            return;
        };
        let (lines, eof) = reader.read_lines();
        if !self.exec_result(e, &lines) && eof {
            let err = Error::new(Code::Runtime, "the shim exited before reporting the exec");
            self.exec_failed(e, err, false);
        }
    }

    /// The exec's `reply` fifo: a result lands here when the daemon that
    /// started the shim was gone before reading it (see `server/recovery.rs`).
    pub(crate) fn on_exec_reply(&mut self, e: Ref) {
        if self
            .execs
            .get(e)
            .is_some_and(|x| x.process.startup.is_some())
        {
            self.on_exec_startup(e);
        }
        let Some(reader) = self.execs.get_mut(e).and_then(|x| x.process.reply.as_mut()) else {
            return;
        };
        let (lines, eof) = reader.read_lines();
        self.exec_result(e, &lines);
        if eof {
            if let Some(x) = self.execs.get_mut(e) {
                x.process.reply = None;
            }
        }
    }

    /// Acts on a `created` or `error` line while the exec is being made;
    /// true if there was one.
    fn exec_result(&mut self, e: Ref, lines: &[String]) -> bool {
        if !self
            .execs
            .get(e)
            .is_some_and(|x| x.status == Status::Creating)
        {
            return false;
        }
        for line in lines {
            match ShimLine::parse(line) {
                ShimLine::Created(pid) => {
                    self.exec_created(e, pid);
                    return true;
                }
                ShimLine::Error(msg) => {
                    self.exec_failed(e, Error::new(Code::Runtime, msg), false);
                    return true;
                }
                _ => {}
            }
        }
        false
    }

    fn exec_created(&mut self, e: Ref, pid: u32) {
        let Some(x) = self.execs.get_mut(e) else {
            return;
        };
        x.status = Status::Running;
        x.process.pid = pid;
        x.process.startup = None;
        let client = x.client.take();
        let (name, container) = (x.name.clone(), x.container);
        self.metrics.call(CallVerb::Exec, true);
        let id = self
            .containers
            .get(container)
            .map_or(String::new(), |c| c.id().to_string());
        let pid = pid.to_string();
        self.emit(&id, Kind::ExecAdded, &[("proc", &name), ("pid", &pid)]);
        self.answer(client, Outcome::ok(&[("pid", &pid)]));
    }

    /// Ends an exec that did not happen: the runtime made no process, so
    /// only the shim (killed if it may still be working) and the process
    /// dir go.
    pub(crate) fn exec_failed(&mut self, e: Ref, error: Error, kill_shim: bool) {
        let Some(x) = self.execs.get(e) else {
            return;
        };
        if kill_shim {
            x.process.kill_shim();
        }
        let client = x.client;
        self.metrics.call(CallVerb::Exec, false);
        self.forget_exec(e, true);
        self.answer(client, Outcome::err(error));
    }

    /// Takes an exec out of the table (its shim's ends are closed, which
    /// takes them out of the epoll set); its dir goes too if `remove_dir`.
    /// Anyone waiting for it is told it is gone.
    pub(crate) fn forget_exec(&mut self, e: Ref, remove_dir: bool) {
        self.end_logs(ProcRef::Exec(e));
        let Some(x) = self.execs.remove(e) else {
            return;
        };
        if remove_dir {
            let _ = std::fs::remove_dir_all(&x.process.dir);
        }
        let gone = Error::new(Code::NotFound, format!("process {} is gone", x.name));
        for w in self.waiters(ProcRef::Exec(e)) {
            self.answer(Some(w), Outcome::err(gone.clone()));
        }
    }

    /// EOF on an exec's `exit` fifo: its shim is gone.
    pub(crate) fn on_exec_exit(&mut self, e: Ref) {
        let at_eof = self
            .execs
            .get_mut(e)
            .is_some_and(|x| x.process.exit_fifo_at_eof());
        if !at_eof {
            return;
        }
        // What the shim said before it went.
        self.on_exec_startup(e);
        self.on_exec_reply(e);
        let Some(x) = self.execs.get_mut(e) else {
            // The exec failed and is gone already.
            return;
        };
        x.process.exit = None;
        x.process.reply = None;
        x.process.exit_code = read_exit_status(&x.process.dir);
        let code = x.process.exit_code;
        x.status = match code {
            Some(_) => Status::Stopped,
            None => Status::Unknown,
        };
        let (name, container) = (x.name.clone(), x.container);
        let id = self
            .containers
            .get(container)
            .map_or(String::new(), |c| c.id().to_string());
        match code {
            Some(code) => {
                let code = code.to_string();
                self.emit(&id, Kind::Exit, &[("status", &code), ("proc", &name)]);
            }
            None => self.emit(&id, Kind::ShimLost, &[("proc", &name)]),
        }
        for w in self.waiters(ProcRef::Exec(e)) {
            self.answer(Some(w), exit_outcome(code));
        }
        self.end_logs(ProcRef::Exec(e));
        self.finish_delete_if_done(container);
    }

    /// The container's exec processes, oldest first.
    pub(crate) fn execs_of(&self, r: Ref) -> Vec<Ref> {
        let mut execs: Vec<(Ref, Instant)> = self
            .execs
            .iter()
            .filter(|(_, e)| e.container == r)
            .map(|(e, x)| (e, x.since))
            .collect();
        crate::slab::sort_small(&mut execs, |a, b| a.1 < b.1);
        execs.into_iter().map(|x| x.0).collect()
    }

    /// An exec past its deadline: its shim goes, and the client hears.
    pub(crate) fn exec_timed_out(&mut self, e: Ref) {
        let err = self.timeout_error("exec");
        self.exec_failed(e, err, true);
    }
}

/// The `exec` record: what a restarted daemon needs beyond the files the
/// shim keeps.
pub(crate) fn exec_record(terminal: bool, interactive: bool) -> String {
    let mut words = Vec::new();
    if terminal {
        words.push("terminal");
    }
    if interactive {
        words.push("interactive");
    }
    let mut line = words.join(" ");
    line.push('\n');
    line
}
