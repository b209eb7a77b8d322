//! Supervision: restart policies (see `wire/restart.rs`) and the containers
//! declared in the config, started in order at daemon start.
//!
//! A restart is made in place: the container keeps its entry, its state
//! dir and its output log. Its exit is reported as always (event, `wait`);
//! after the policy's delay the runtime deletes what is left of it, and a
//! new shim makes it again from the same bundle and options. The record
//! counts restarts, so a restarted daemon goes on from there; a daemon
//! killed at any point finds a stopped (or lost) container with a policy,
//! and schedules its restart again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::file::{start_order, Ready};
use crate::server::autostart::{Auto, AutoState};
use crate::server::container::Creation;
use crate::server::container::{AfterCreate, Op, OpKind, ProcRef, Process};
use crate::server::lifecycle::{Event, Status};
use crate::server::shim::{Make, ShimOptions};
use crate::server::Effects;
use crate::server::{CallKind, Daemon, Outcome};
use crate::slab::Ref;
use crate::store::statedir::write_atomic;
use crate::wire::event::Kind;
use crate::wire::proto::Error;
use crate::wire::restart::{delay, Restart};
use nanoctr_shim::contract::{container_dir, proc_dir};

/// How often waiting autostarts look again (a `ready = file:` dependency,
/// or no free runtime-call slot).
const AUTOSTART_POLL: Duration = Duration::from_millis(100);

impl<F: Effects> Daemon<F> {
    // ---- restart policies ----

    /// The init has stopped or its shim was lost: if the policy says so,
    /// the container is made again after its delay.
    pub(crate) fn consider_restart(&mut self, r: Ref) {
        let (first, max, window) = (
            self.cfg.restart_delay,
            self.cfg.restart_max_delay,
            self.cfg.restart_window,
        );
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        if c.op.is_some() || !matches!(c.status, Status::Stopped | Status::Unknown) {
            return;
        }
        // An update moves it; its trial takes a failure as a rollback.
        if c.update.as_ref().is_some_and(|u| u.phase.moving()) {
            return;
        }
        // A container that ran long enough starts a new row.
        if c.sup
            .running_since
            .take()
            .is_some_and(|t| t.elapsed() >= window)
        {
            c.sup.streak = 0;
        }
        let held = c.sup.held || c.sup.killing;
        if !c.spec.restart.wants(c.init.exit_code, c.sup.streak, held) {
            if c.spec.restart != Restart::No && !held {
                crate::logger::info(&format!(
                    "{}: restart policy {} gives up after {} restarts in a row",
                    c.id(),
                    c.spec.restart.as_string(),
                    c.sup.streak
                ));
            }
            return;
        }
        let wait = delay(first, max, c.sup.streak);
        c.sup.due = Some(Instant::now() + wait);
        let id = c.id().to_string();
        let count = (c.sup.restarts + 1).to_string();
        let ms = wait.as_millis().to_string();
        self.emit(&id, Kind::Restart, &[("count", &count), ("delay-ms", &ms)]);
    }

    /// The earliest pending restart.
    pub(crate) fn next_restart(&self) -> Option<Instant> {
        self.containers.iter().filter_map(|(_, c)| c.sup.due).min()
    }

    /// Begins the restarts that are due: the runtime deletes what is left
    /// of the old container first.
    pub(crate) fn fire_restarts(&mut self) {
        let now = Instant::now();
        for r in self
            .containers
            .refs_where(|c| c.sup.due.is_some_and(|due| due <= now))
        {
            if !self.slot_free() {
                // Again when a slot may be free; never a busy loop.
                if let Some(c) = self.containers.get_mut(r) {
                    c.sup.due = Some(now + AUTOSTART_POLL);
                }
                continue;
            }
            let Some(c) = self.containers.get_mut(r) else {
                continue;
            };
            c.sup.due = None;
            c.sup.respawning = true;
            let id = c.id().to_string();
            if self
                .spawn_call(r, CallKind::Restart, &["delete", "--force", &id])
                .is_err()
            {
                self.respawn(r);
            }
        }
    }

    /// Makes the container again: a new shim in the same process dir,
    /// running the same bundle with the same options.
    pub(crate) fn respawn(&mut self, r: Ref) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        if c.sup.held || c.op.is_some() {
            c.sup.respawning = false;
            return;
        }
        c.sup.restarts += 1;
        c.sup.streak += 1;
        let dir = self.state.container(c.id());
        let record = c.record().encode();
        if let Err(e) = self
            .fx
            .write_file(&dir.join(container_dir::RECORD.str), record.as_bytes())
        {
            crate::logger::warn(&format!("{}: cannot update its record: {e}", c.id()));
        }
        // The old exit status must not pass for the new run's.
        let _ = std::fs::remove_file(c.init.dir.join(proc_dir::EXIT_STATUS.str));
        let derived = dir.join(container_dir::BUNDLE.str);
        let bundle = match derived.join(container_dir::CONFIG.str).is_file() {
            true => derived,
            false => PathBuf::from(&c.spec.bundle),
        };
        // Its image rootfs stays mounted across restarts; one that went
        // missing is mounted again first.
        if let Some(image) = &c.image {
            let overlay = c.spec.overlay.as_ref();
            let overlay = overlay.unwrap_or(&crate::wire::overlay::Overlay::DEFAULT);
            if let Err(e) = self.fx.mount_rootfs(&dir, image, overlay) {
                let e = crate::rootfs::refusal(image, &e);
                return self.respawn_failed(r, &e);
            }
        }
        let terminal = c.init.terminal;
        if let Err(e) = self.spawn_init(r, &bundle, terminal) {
            let e = Error::new(
                crate::wire::proto::Code::Internal,
                format!("cannot start the shim: {e}"),
            );
            self.respawn_failed(r, &e);
        }
    }

    /// Makes container `r` again from `bundle` with its spec and runtime:
    /// a new shim for its init process, which runs the runtime's create
    /// (with a terminal, then a start) or run; `creating` until the shim
    /// reports. The restart policy's respawn and an update's versions go
    /// through here.
    pub(crate) fn spawn_init(
        &mut self,
        r: Ref,
        bundle: &Path,
        terminal: bool,
    ) -> std::io::Result<()> {
        let Some(c) = self.containers.get_mut(r) else {
            return Ok(());
        };
        let make = if terminal { Make::Create } else { Make::Run };
        let mut options = ShimOptions::init(&c.spec, &c.runtime, bundle, make);
        options.oom_score_adj = self.cfg.shim_oom_score_adj;
        let spawned = self.fx.spawn_shim(&self.cfg.shim, &c.init.dir, &options)?;
        let mut init = Process::new(c.init.dir.clone(), terminal, c.spec.interactive);
        init.adopt_shim(spawned);
        c.init = init;
        let next = match terminal {
            true => AfterCreate::Start,
            false => AfterCreate::AwaitStarted,
        };
        c.op = Some(Op::new(OpKind::Create { next }, None));
        self.apply(r, Event::Restarting);
        if let Err(e) = self.watch_shim(ProcRef::Init(r)) {
            let e = super::internal(format!("epoll: {e}"));
            self.make_failed(ProcRef::Init(r), e, true);
        }
        Ok(())
    }

    /// A restart's create failed (the runtime has deleted what it made):
    /// the container stays, stopped, for the policy's next try.
    pub(crate) fn respawn_failed(&mut self, r: Ref, error: &Error) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        crate::logger::warn(&format!("{}: restart failed: {}", c.id(), error.message));
        c.sup.respawning = false;
        c.op = None;
        c.init.startup = None;
        c.init.reply = None;
        c.init.exit = None;
        c.init.exit_code = None;
        self.apply(r, Event::Exited);
        self.consider_restart(r);
        self.drive(r);
    }

    /// An explicit `kill` of the container: its policy restarts it no
    /// more, now or after a daemon restart (`always` excepted there).
    pub(crate) fn hold(&mut self, r: Ref) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        c.sup.due = None;
        if c.sup.held || c.spec.restart == Restart::No {
            c.sup.held = true;
            return;
        }
        c.sup.held = true;
        let file = self.state.container(c.id()).join(container_dir::RECORD.str);
        if let Err(e) = write_atomic(&file, c.record().encode().as_bytes()) {
            crate::logger::warn(&format!("{}: cannot record the kill: {e}", c.id()));
        }
    }

    /// `kill` of a stopped container waiting for its restart: the restart
    /// is called off. None when no restart is pending.
    pub(crate) fn cancel_restart(&mut self, id: &str) -> Option<Outcome> {
        let r = self.find(id)?;
        self.containers.get(r)?.sup.due?;
        self.hold(r);
        Some(Outcome::ok(&[("restart", "cancelled")]))
    }

    /// After recovery at start-up: containers found stopped are handed to their
    /// policies (a held `always` one too: a daemon restart lifts the hold,
    /// as docker's `always` does; `unless-stopped` keeps it).
    pub(crate) fn resume_supervision(&mut self) {
        for r in self.containers.refs_where(|_| true) {
            if let Some(c) = self.containers.get_mut(r) {
                if c.spec.restart == Restart::Always && c.sup.held {
                    c.sup.held = false;
                }
            }
            self.consider_restart(r);
        }
    }

    // ---- autostart ----

    /// Starts the declared containers, in order, as their dependencies
    /// become ready. Problems (an `after` naming no declared container, a
    /// cycle) are reported and leave that container out; the rest start.
    pub fn autostart(&mut self) {
        let mut decls = std::mem::take(&mut self.cfg.containers);
        // A container with an update record starts in its recorded version,
        // in place of its declaration or as one of its own.
        for spec in self.resume_updates() {
            match decls.iter_mut().find(|d| d.spec.id == spec.id) {
                Some(d) => d.spec = spec,
                None => decls.push(crate::config::file::Decl {
                    at: format!(
                        "update record {}",
                        self.cfg.update_dir.join(&spec.id).display()
                    ),
                    spec,
                    options: Vec::new(),
                    after: Vec::new(),
                    ready: Ready::Started,
                }),
            }
        }
        let (order, problems) = start_order(&decls);
        for p in problems {
            crate::logger::error(&p);
        }
        for i in order {
            let decl = decls[i].clone();
            let id = &decl.spec.id;
            let state = if self.find(id).is_some() {
                AutoState::Made
            } else if self.state.root().join(auto_marker(id)).exists() {
                AutoState::Skipped
            } else {
                AutoState::Waiting
            };
            self.autostarts.push(Auto { decl, state });
        }
        self.cfg.containers = decls;
        self.autostart_tick();
    }

    /// When waiting autostarts want to look again.
    pub(crate) fn next_autostart(&self) -> Option<Instant> {
        self.autostarts
            .iter()
            .any(|a| a.state == AutoState::Waiting)
            .then(|| Instant::now() + AUTOSTART_POLL)
    }

    /// Starts every waiting declared container whose dependencies are
    /// ready, in order.
    pub(crate) fn autostart_tick(&mut self) {
        for i in 0..self.autostarts.len() {
            if self.autostarts[i].state != AutoState::Waiting {
                continue;
            }
            let mut ready = true;
            for dep in self.autostarts[i].decl.after.clone() {
                match self.dependency_ready(&dep) {
                    Ok(r) => ready &= r,
                    Err(why) => {
                        let a = &mut self.autostarts[i];
                        a.state = AutoState::Failed;
                        crate::logger::error(&format!(
                            "{}: container {}: not started: {why}",
                            a.decl.at, a.decl.spec.id
                        ));
                        ready = false;
                        break;
                    }
                }
            }
            if !ready || self.autostarts[i].state != AutoState::Waiting {
                continue;
            }
            let spec = self.autostarts[i].decl.spec.clone();
            match self.create(None, &spec, &Creation::Run) {
                Ok(Outcome::Stall) => return,
                Ok(_) => {
                    self.autostarts[i].state = AutoState::Made;
                    let marker = self.state.root().join(auto_marker(&spec.id));
                    let _ = self.fx.write_file(&marker, b"");
                    crate::logger::info(&format!("{}: started at boot", spec.id));
                }
                Err(e) => {
                    self.autostarts[i].state = AutoState::Failed;
                    crate::logger::error(&format!(
                        "{}: container {}: not started: {}",
                        self.autostarts[i].decl.at, spec.id, e.message
                    ));
                }
            }
        }
    }

    /// Whether the declared container `id` counts as up for those that
    /// come after it; an error if it never will.
    fn dependency_ready(&self, id: &str) -> Result<bool, String> {
        let Some(a) = self.autostarts.iter().find(|a| a.decl.spec.id == id) else {
            return Err(format!("{id} is not declared"));
        };
        match a.state {
            AutoState::Failed => return Err(format!("{id} was not started")),
            AutoState::Skipped => return Ok(true),
            AutoState::Waiting => return Ok(false),
            AutoState::Made => {}
        }
        let Some(c) = self.find(id).and_then(|r| self.containers.get(r)) else {
            return Err(format!("{id} could not be created"));
        };
        let c = Some(c);
        Ok(match &a.decl.ready {
            Ready::File(path) => path.exists(),
            Ready::Started => c.is_some_and(|c| match c.status {
                Status::Running | Status::Paused => true,
                Status::Stopped => c.init.exit_code.is_some(),
                _ => false,
            }),
            Ready::Exited0 => {
                c.is_some_and(|c| c.status == Status::Stopped && c.init.exit_code == Some(0))
            }
        })
    }
}

/// `.auto.<id>` in the state dir: the declared container `id` was made at
/// boot once, so a daemon started again does not make it anew.
fn auto_marker(id: &str) -> String {
    format!("{}{id}", nanoctr_shim::contract::state_dir::AUTO_PREFIX)
}
