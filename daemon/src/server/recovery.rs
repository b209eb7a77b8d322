//! Recovery at start: the daemon rebuilds its table from the state dir
//! alone, so killing it at any moment loses nothing.
//!
//! For each container directory:
//! - a live shim (its `exit` fifo has a writer) is re-attached; the
//!   container's status comes from the runtime (`state`), or it is still
//!   being created when the runtime has not written its pid file yet: the
//!   shim then reports on `reply`;
//! - a shim that is gone left `exitStatus`: the container is `stopped` with
//!   its true exit code;
//! - a shim that is gone without `exitStatus` after the runtime made the
//!   container: the shim was lost; the container is `unknown`, and the
//!   runtime kills and deletes what is left of it;
//! - anything half made (no record, no shim, no pid file) is deleted
//!   through the runtime and removed, mounts first, so the id can be used
//!   again;
//! - a container kept whose record names an image rootfs has it mounted
//!   again if it is not (`crate::rootfs`);
//! - a record that cannot be read makes the container `unknown`: it is
//!   listed, and `delete` removes it.
//!
//! Events the state implies but the log does not have (the daemon died
//! between a change and its event) are emitted; none twice. Temporary files
//! of interrupted atomic writes are removed. Nothing running is killed.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::server::container::{
    AfterCreate, Container, Exec, Op, OpKind, ProcRef, Process, Supervision,
};
use crate::server::lifecycle::Status;
use crate::server::runtime::Runtime;
use crate::server::shim::LineReader;
use crate::server::Effects;
use crate::server::{CallKind, Daemon, Source};
use crate::slab::Ref;
use crate::store::record::Record;
use crate::store::statedir::{open_fifo_reader, read_exit_status, tmp_of, INIT};
use crate::wire::event::Kind;
use crate::wire::{check_id, Spec};
use nanoctr_shim::contract::container_dir;
use nanoctr_shim::contract::proc_dir;

#[cfg(test)]
mod tests;

/// What recovery found, for the daemon's start-up line.
#[derive(Debug, Default)]
pub struct Recovered {
    pub live: usize,
    pub stopped: usize,
    pub lost: usize,
    pub unknown: usize,
    pub cleaned: usize,
    /// Container dirs beyond `--max-containers`, left alone.
    pub skipped: usize,
}

impl<F: Effects> Daemon<F> {
    /// Recovery at start-up: the table is rebuilt from the state dir, each
    /// container as its files show it (see the module comment).
    pub fn recover(&mut self) -> Recovered {
        let mut found = Recovered::default();
        let Ok(entries) = fs::read_dir(self.state.root()) else {
            return found;
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| check_id(name).is_ok())
            .collect();
        crate::slab::sort_small(&mut ids, |a, b| a < b);
        for id in ids {
            if self.containers.is_full() {
                found.skipped += 1;
                continue;
            }
            self.recover_one(&id, &mut found);
        }
        self.recover_net();
        self.resume_supervision();
        found
    }

    fn recover_one(&mut self, id: &str, found: &mut Recovered) {
        let dir = self.state.container(id);
        let proc = dir.join(INIT);
        let _ = fs::remove_file(tmp_of(&dir.join(container_dir::RECORD.str)));
        let record = match crate::files::read_bounded_text(
            &dir.join(container_dir::RECORD.str),
            64 * 1024,
            crate::files::Links::Refuse,
        ) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.clean_up(id, None, found),
            Err(_) => None,
            Ok(text) => Record::decode(&text).ok(),
        };
        let runtime = Runtime {
            path: record
                .as_ref()
                .map_or(self.cfg.runtime.clone(), |r| r.runtime.clone()),
            root: self.cfg.runtime_root.clone(),
        };
        let exit = open_fifo_reader(&proc.join(proc_dir::EXIT.str)).ok();
        let alive = exit.as_ref().is_some_and(has_writer);
        if !alive {
            // What a shim that is gone left half written. A live shim's
            // `.exitStatus.tmp` is the room it keeps for its exit status.
            remove_temporaries(&proc);
        }
        let Some(record) = record else {
            // Unreadable record: listed as unknown, never guessed at.
            let spec = Spec {
                id: id.to_string(),
                ..Spec::default()
            };
            let c = container(spec, runtime, 0, &proc, Status::Unknown, None);
            let r = self.adopt(c, if alive { exit } else { None }, None);
            found.unknown += r.is_some() as usize;
            return;
        };
        let pid = read_pid(&proc.join(proc_dir::PID.str));
        let exit_code = read_exit_status(&proc);
        let sup = Supervision {
            restarts: record.restarts,
            streak: record.streak,
            held: record.held,
            ..Supervision::default()
        };
        let (created, spec, image) = (record.created, record.spec, record.image);
        let kept = alive || exit_code.is_some() || pid.is_some();
        if let Some(image) = image.as_ref().filter(|_| kept) {
            // A container kept keeps its rootfs; a mount that went
            // meanwhile is made again.
            let overlay = spec.overlay.as_ref();
            let overlay = overlay.unwrap_or(&crate::wire::overlay::Overlay::DEFAULT);
            if let Err(e) = self.fx.mount_rootfs(&dir, image, overlay) {
                crate::logger::warn(&format!("{id}: cannot mount its rootfs again: {e}"));
            }
        }
        if alive {
            let reply = open_fifo_reader(&proc.join(proc_dir::REPLY.str))
                .ok()
                .map(LineReader::new);
            let status = match pid {
                None => Status::Creating,
                Some(_) => match self.runtime_status(&runtime, &proc, id).as_deref() {
                    Some("created") => Status::Created,
                    Some("running") => Status::Running,
                    Some("paused") => Status::Paused,
                    // Its init has exited (`stopped`), or the runtime
                    // cannot say: either way its shim is still there and
                    // will report the exit, with its status. Never lost
                    // while the shim lives; until then it is what its
                    // events say it was.
                    _ => match self
                        .events
                        .history(id, INIT)
                        .iter()
                        .any(|e| e.kind == Kind::Start)
                    {
                        true => Status::Running,
                        false => Status::Created,
                    },
                },
            };
            let mut c = container(spec, runtime, created, &proc, status, image);
            c.sup = sup;
            c.init.pid = pid.unwrap_or(0);
            if status == Status::Creating {
                // The shim reports the create on `reply` now.
                c.op = Some(Op::new(
                    OpKind::Create {
                        next: AfterCreate::Answer,
                    },
                    None,
                ));
            }
            let Some(r) = self.adopt(c, exit, reply) else {
                return;
            };
            found.live += 1;
            if let Some(pid) = pid {
                self.watch_oom(r, pid);
            }
            self.catch_up_events(r);
            self.recover_execs(r);
            // Whatever the shim said while the daemon was away.
            self.on_reply(ProcRef::Init(r));
        } else if let Some(code) = exit_code {
            let mut c = container(spec, runtime, created, &proc, Status::Stopped, image);
            c.sup = sup;
            c.init.pid = pid.unwrap_or(0);
            c.init.exit_code = Some(code);
            if let Some(r) = self.adopt(c, None, None) {
                found.stopped += 1;
                self.catch_up_events(r);
                self.recover_execs(r);
            }
        } else if pid.is_some() {
            let mut c = container(spec, runtime, created, &proc, Status::Unknown, image);
            c.sup = sup;
            c.init.pid = pid.unwrap_or(0);
            if let Some(r) = self.adopt(c, None, None) {
                found.lost += 1;
                self.catch_up_events(r);
                self.recover_execs(r);
                let _ = self.spawn_call(r, CallKind::Delete, &["delete", "--force", id]);
            }
        } else {
            self.clean_up(id, Some(runtime), found);
        }
    }

    /// The runtime's view of a container's status (`<runtime> state ID`).
    fn runtime_status(&mut self, runtime: &Runtime, proc: &Path, id: &str) -> Option<String> {
        let log = proc.join(proc_dir::RUNTIME_LOG.str);
        let args = ["state", id];
        let limit = self.cfg.start_timeout;
        let (0, out) = self.fx.run_runtime(runtime, &log, &args, limit)? else {
            return None;
        };
        crate::server::runtime::state_status(&out)
    }

    /// Puts a restored container in the table and watches its shim.
    fn adopt(
        &mut self,
        c: Container,
        exit: Option<fs::File>,
        reply: Option<LineReader>,
    ) -> Option<Ref> {
        let r = self.containers.insert(c).ok()?;
        self.recover_health(r);
        let flags = rustix::event::epoll::EventFlags::IN;
        if let Some(exit) = exit {
            if self
                .watch(&exit, Source::Exit(ProcRef::Init(r)), flags)
                .is_ok()
            {
                self.containers.get_mut(r)?.init.exit = Some(exit);
            }
        }
        if let Some(reply) = reply {
            if self
                .watch(&reply.file, Source::Reply(ProcRef::Init(r)), flags)
                .is_ok()
            {
                self.containers.get_mut(r)?.init.reply = Some(reply);
            }
        }
        Some(r)
    }

    /// Half made: the runtime deletes whatever it has under the id, and the
    /// directory goes.
    fn clean_up(&mut self, id: &str, runtime: Option<Runtime>, found: &mut Recovered) {
        let runtime = runtime.unwrap_or_else(|| Runtime {
            path: self.cfg.runtime.clone(),
            root: self.cfg.runtime_root.clone(),
        });
        let log = self.state.process(id).join(proc_dir::RUNTIME_LOG.str);
        let limit = self.cfg.start_timeout;
        let _ = self
            .fx
            .run_runtime(&runtime, &log, &["delete", "--force", id], limit);
        if self.remove_state(id).is_ok() {
            found.cleaned += 1;
        }
    }

    /// Emits the events the container's state implies but the log lacks.
    fn catch_up_events(&mut self, r: Ref) {
        let Some(c) = self.containers.get(r) else {
            return;
        };
        let id = c.id().to_string();
        let seen: Vec<Kind> = self
            .events
            .history(&id, INIT)
            .iter()
            .map(|e| e.kind)
            .collect();
        let pid = c.init.pid.to_string();
        let status = c.init.exit_code.map(|code| code.to_string());
        let mut due: Vec<(Kind, Vec<(&str, &str)>)> = Vec::new();
        if c.status != Status::Creating && !seen.contains(&Kind::Create) {
            due.push((Kind::Create, vec![("pid", &pid)]));
        }
        if matches!(c.status, Status::Running | Status::Paused) && !seen.contains(&Kind::Start) {
            due.push((Kind::Start, vec![("pid", &pid)]));
        }
        match (&status, c.status) {
            (Some(code), _) if !seen.contains(&Kind::Exit) => {
                due.push((Kind::Exit, vec![("status", code), ("proc", INIT)]));
            }
            (None, Status::Unknown) if !seen.contains(&Kind::ShimLost) => {
                due.push((Kind::ShimLost, vec![("proc", INIT)]));
            }
            _ => {}
        }
        for (kind, extra) in due {
            self.emit(&id, kind, &extra);
        }
    }
}

fn container(
    spec: Spec,
    runtime: Runtime,
    created: u64,
    proc: &Path,
    status: Status,
    image: Option<crate::rootfs::Image>,
) -> Container {
    // The record holds the terminal as it was resolved at create.
    let mut init = Process::new(
        proc.to_path_buf(),
        spec.terminal == Some(true),
        spec.interactive,
    );
    init.shim_pid = read_pid(&proc.join(proc_dir::SHIM_PID.str)).unwrap_or(0);
    Container {
        spec,
        runtime,
        created,
        status,
        init,
        op: None,
        oom: None,
        sup: Default::default(),
        image,
        health: None,
        update: None,
        net: crate::tasks::net::OnBridge::read(proc.parent().unwrap_or(proc)),
    }
}

impl<F: Effects> Daemon<F> {
    /// The container's exec processes, from their process dirs.
    fn recover_execs(&mut self, r: Ref) {
        let Some(c) = self.containers.get(r) else {
            return;
        };
        let dir = self.state.container(c.id());
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| {
                let other = container_dir::NOT_PROCESSES.iter().any(|n| n.str == name);
                name != INIT && !other && check_id(name).is_ok()
            })
            .collect();
        crate::slab::sort_small(&mut names, |a, b| a < b);
        for name in names {
            self.recover_exec(r, dir.join(&name), name);
        }
    }

    /// One exec process: running (its shim is there and the runtime made
    /// it), still being made (its shim reports on `reply`), stopped with
    /// its exit status, or lost. One that never was (no record, or no
    /// process and no shim) leaves no trace.
    fn recover_exec(&mut self, r: Ref, dir: PathBuf, name: String) {
        for name in [proc_dir::EXEC_RECORD, proc_dir::PROCESS_JSON] {
            let _ = fs::remove_file(tmp_of(&dir.join(name.str)));
        }
        let Some(record) = crate::store::statedir::read_small(&dir.join(proc_dir::EXEC_RECORD.str))
        else {
            let _ = fs::remove_dir_all(&dir);
            return;
        };
        let exit = open_fifo_reader(&dir.join(proc_dir::EXIT.str)).ok();
        let alive = exit.as_ref().is_some_and(has_writer);
        if !alive {
            remove_temporaries(&dir);
        }
        let pid = read_pid(&dir.join(proc_dir::PID.str));
        let code = read_exit_status(&dir);
        let status = match (alive, code, pid) {
            (true, _, Some(_)) => Status::Running,
            (true, _, None) => Status::Creating,
            (false, Some(_), _) => Status::Stopped,
            (false, None, Some(_)) => Status::Unknown,
            (false, None, None) => {
                let _ = fs::remove_dir_all(&dir);
                return;
            }
        };
        let has = |word| record.split_whitespace().any(|w| w == word);
        let mut process = Process::new(dir, has("terminal"), has("interactive"));
        process.pid = pid.unwrap_or(0);
        process.exit_code = code;
        process.shim_pid = read_pid(&process.dir.join(proc_dir::SHIM_PID.str)).unwrap_or(0);
        if alive {
            process.exit = exit;
            process.reply = open_fifo_reader(&process.dir.join(proc_dir::REPLY.str))
                .ok()
                .map(LineReader::new);
        }
        let probe = name == crate::wire::HEALTH;
        let exec = Exec {
            container: r,
            name,
            status,
            process,
            client: None,
            since: Instant::now(),
            probe,
        };
        let Ok(e) = self.execs.insert(exec) else {
            return;
        };
        if self.watch_shim(ProcRef::Exec(e)).is_err() {
            if let Some(x) = self.execs.get_mut(e) {
                x.process.exit = None;
                x.process.reply = None;
            }
        }
        self.catch_up_exec_events(e);
        // Whatever the shim said while the daemon was away.
        self.on_reply(ProcRef::Exec(e));
    }

    /// Emits the events an exec's state implies but the log lacks.
    fn catch_up_exec_events(&mut self, e: Ref) {
        let Some(x) = self.execs.get(e) else {
            return;
        };
        let Some(id) = self.containers.get(x.container).map(|c| c.id().to_string()) else {
            return;
        };
        let (name, status) = (x.name.clone(), x.status);
        let pid = x.process.pid.to_string();
        let code = x.process.exit_code.map(|c| c.to_string());
        let history = self.events.history(&id, &name);
        let added = history
            .iter()
            .any(|ev| ev.kind == Kind::ExecAdded && ev.field("pid") == Some(&pid));
        let ended = added
            && history
                .iter()
                .any(|ev| matches!(ev.kind, Kind::Exit | Kind::ShimLost));
        if status != Status::Creating && !added {
            self.emit(&id, Kind::ExecAdded, &[("proc", &name), ("pid", &pid)]);
        }
        match (status, code) {
            (Status::Stopped, Some(code)) if !ended => {
                self.emit(&id, Kind::Exit, &[("status", &code), ("proc", &name)]);
            }
            (Status::Unknown, _) if !ended => {
                self.emit(&id, Kind::ShimLost, &[("proc", &name)]);
            }
            _ => {}
        }
    }
}

/// Removes what a shim that is gone left half written in its process dir.
fn remove_temporaries(proc: &Path) {
    for name in proc_dir::SHIM_TMP {
        let _ = fs::remove_file(proc.join(name.str));
    }
}

/// True while a fifo opened for reading has a writer: a read finds no data
/// but no EOF either. (Opened while the writer was there, the fifo also
/// reports EPOLLHUP once it goes, so nothing is missed in between.)
fn has_writer(fifo: &fs::File) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match (&*fifo).read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    crate::store::statedir::read_small(path)?
        .trim()
        .parse()
        .ok()
        .filter(|&p| p > 0)
}
