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
use crate::server::shim::{Make, ShimOptions};
use crate::server::Effects;
use crate::server::{Daemon, Outcome};
use crate::slab::Ref;
use crate::wire::event::Kind;
use crate::wire::proto::{refuse, Code, Error};
use crate::wire::ExecSpec;

use super::{internal, io_refusal};
use nanoctr_shim::contract::proc_dir;

impl<F: Effects> Daemon<F> {
    pub(crate) fn exec(&mut self, client: Ref, spec: &ExecSpec) -> Result<Outcome, Error> {
        self.exec_in(Some(client), spec, false)
    }

    /// An exec for a client (`client`), or the container's health probe
    /// (`probe`, with no client).
    pub(crate) fn exec_in(
        &mut self,
        client: Option<Ref>,
        spec: &ExecSpec,
        probe: bool,
    ) -> Result<Outcome, Error> {
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
        let file = dir.join(proc_dir::PROCESS_JSON.str);
        let record = exec_record(spec.terminal, spec.interactive);
        let spawned = self
            .fx
            .write_file(&file, &process)
            .and_then(|()| {
                self.fx
                    .write_file(&dir.join(proc_dir::EXEC_RECORD.str), record.as_bytes())
            })
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
                self.fx.spawn_shim(&self.cfg.shim, &dir, &how)
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
            client,
            since: Instant::now(),
            probe,
        };
        let e = match self.execs.insert(exec) {
            Ok(e) => e,
            Err(exec) => {
                let shim = crate::server::effects::Target::Group(exec.process.shim_pid);
                self.fx.signal(shim, rustix::process::Signal::KILL);
                let _ = std::fs::remove_dir_all(&exec.process.dir);
                return Err(internal("exec table full"));
            }
        };
        if let Err(err) = self.watch_shim(ProcRef::Exec(e)) {
            self.make_failed(ProcRef::Exec(e), internal(format!("epoll: {err}")), true);
        }
        Ok(Outcome::Pending)
    }

    /// The exited exec process that has been in the table longest.
    fn oldest_exited_exec(&self) -> Option<Ref> {
        self.execs
            .iter()
            .filter(|(_, e)| matches!(e.status, Status::Stopped | Status::Unknown))
            .min_by_key(|(_, e)| e.since)
            .map(|(r, _)| r)
    }

    /// The runtime made the exec process (see `process.rs`): the request
    /// gets its pid.
    pub(crate) fn exec_made(&mut self, e: Ref, pid: u32) {
        let Some(x) = self.execs.get_mut(e) else {
            return;
        };
        x.status = Status::Running;
        let client = x.client.take();
        if x.probe {
            return;
        }
        let (name, container) = (x.name.clone(), x.container);
        let id = self
            .containers
            .get(container)
            .map_or(String::new(), |c| c.id().to_string());
        let pid = pid.to_string();
        self.emit(&id, Kind::ExecAdded, &[("proc", &name), ("pid", &pid)]);
        self.answer(client, Outcome::ok(&[("pid", &pid)]));
    }

    /// Ends an exec that did not happen (see `process.rs`): the runtime
    /// made no process, so only the shim and the process dir go.
    pub(crate) fn exec_failed(&mut self, e: Ref, error: Error) {
        let Some(x) = self.execs.get(e) else {
            return;
        };
        let client = x.client;
        if x.probe {
            self.probe_ended(e, None, Some(error.message.clone()));
        }
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
