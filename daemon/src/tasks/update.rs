//! Updates: `swap`, `commit`, `rollback`, and the update lock.
//!
//! `swap ID BUNDLE` moves a container to a new version under the same id:
//! the old version is stopped (its image's stop signal, or TERM; KILL after
//! [`STOP_GRACE`]), the runtime deletes it, and the new one is made in the
//! same state dir. Then the trial: the new version must get healthy (with
//! a health check) or stay running (without one) for `swap-timeout`;
//! otherwise the previous version is brought back by the same steps, by
//! itself. A passed trial leaves the update `done`: `commit` forgets the
//! previous version, `rollback` brings it back. A swap of an id with no
//! container is a first install, whose rollback removes it.
//!
//! Crash-only: before each step the update record (`store/update.rs`, on
//! persistent storage) says where the update is, and the state dir's
//! `container` record always names the version the runtime has (it is
//! rewritten only between the runtime's delete of one version and the
//! create of the next), so there is never more than one version, and the
//! records say which. A daemon started again finds an update under way
//! and rolls it back (`resume_updates`): it did not prove itself. After a
//! power cut, which takes the state dir's tmpfs with it, every container
//! with an update record is made again at boot, in its recorded version,
//! an uncommitted one rolled back first.
//!
//! The update lock is `<state-dir>/<id>/lock/update`, a file the daemon
//! makes with the container; a process in the container (the directory
//! bind-mounted in) that holds an `flock` on it defers a swap (up to its
//! timeout, then `ERR busy locked`) and the restart of an unhealthy
//! container. It is a kernel lock: a holder that dies releases it.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::server::container::Supervision;
use crate::server::lifecycle::Status;
use crate::server::runtime::Runtime;
use crate::server::Effects;
use crate::server::{Call, CallKind, Daemon, Outcome};
use crate::slab::Ref;
use crate::store::record::Record;
use crate::store::update::{Phase, UpdateRecord, Updates};
use crate::wire::event::Kind;
use crate::wire::proto::{Code, Error};
use crate::wire::Spec;
use nanoctr_shim::contract::{container_dir, proc_dir};

/// Where update records are kept by default.
pub const DEFAULT_DIR: &str = "/var/lib/nanoctr/updates";

/// How long a version has to stop after its stop signal before KILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The trial's length when `swap-timeout=` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How soon a step that found no free runtime-call slot is tried again,
/// and how often a swap waiting for the update lock looks again.
const AGAIN: Duration = Duration::from_millis(200);

/// What an update still has to make of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// This version: the current one is stopped and deleted first.
    Make(Box<Record>),
    /// Nothing (the rollback of a first install): it is removed.
    Remove,
    /// The target is what the runtime has (made, or being made).
    Made,
}

/// A step in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Idle,
    /// The stop signal is sent; the exit is awaited.
    Stopping,
    /// The runtime's delete runs.
    Deleting,
}

/// An update of a container, as the daemon drives it.
#[derive(Debug, Clone)]
pub struct Update {
    pub phase: Phase,
    /// The version to go back to (`None`: a first install).
    pub previous: Option<Record>,
    pub target: Target,
    pub step: Step,
    /// The request answered when the update ends: the swap's, or the
    /// rollback's (`requested`).
    pub client: Option<Ref>,
    pub requested: bool,
    pub timeout: Duration,
    /// The trial's end; for a swap waiting for the update lock, the end of
    /// its wait.
    pub deadline: Option<Instant>,
    /// When a stop turns to KILL.
    pub kill_at: Option<Instant>,
    /// When to look again (a slot was busy; the lock is polled).
    pub wake: Option<Instant>,
    /// The swap waits for the update lock before it begins.
    pub locked: bool,
    /// Why it rolls back.
    pub why: String,
}

impl Update {
    fn new(phase: Phase, previous: Option<Record>, target: Target, timeout: Duration) -> Update {
        Update {
            phase,
            previous,
            target,
            step: Step::Idle,
            client: None,
            requested: false,
            timeout,
            deadline: None,
            kill_at: None,
            wake: None,
            locked: false,
            why: String::new(),
        }
    }
}

/// Whether a process holds the container's update lock (`dir` its
/// container dir). A missing lock file is no lock.
pub fn lock_held(dir: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir
        .join(container_dir::LOCK_DIR.str)
        .join(container_dir::UPDATE_LOCK.str);
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    use rustix::fs::{flock, FlockOperation};
    match flock(
        crate::sys::fd(&file),
        FlockOperation::NonBlockingLockExclusive,
    ) {
        // Free: taken for a moment, let go with the file.
        Ok(()) => false,
        Err(e) => e == rustix::io::Errno::WOULDBLOCK,
    }
}

/// Makes the container's lock dir and its empty lock file.
pub fn make_lock(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let locks = dir.join(container_dir::LOCK_DIR.str);
    match std::fs::create_dir(&locks) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(locks.join(container_dir::UPDATE_LOCK.str))
        .map(|_| ())
}

/// The signal that stops a version: its image's `StopSignal` (the
/// bundle's `org.opencontainers.image.stopSignal` annotation), else TERM.
fn stop_signal(bundle: &str) -> i32 {
    use crate::bundle::json;
    crate::bundle::bundle_config(bundle)
        .ok()
        .and_then(|config| {
            let r = json::find(
                &config,
                &["annotations", "org.opencontainers.image.stopSignal"],
            )?;
            crate::wire::signal::parse(&json::text(&config, r)?)
        })
        .unwrap_or(libc::SIGTERM)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<F: Effects> Daemon<F> {
    fn updates(&self) -> Updates {
        Updates::new(&self.cfg.update_dir)
    }

    /// Writes the update record of `r` as its update now stands.
    fn record_update(&mut self, r: Ref) -> Result<(), Error> {
        let Some(c) = self.containers.get(r) else {
            return Ok(());
        };
        let Some(u) = &c.update else {
            return Ok(());
        };
        let current = match &u.target {
            Target::Make(next) if u.phase == Phase::Swap => (**next).clone(),
            _ => c.record(),
        };
        let record = UpdateRecord {
            phase: u.phase,
            current,
            previous: u.previous.clone(),
        };
        let id = c.id().to_string();
        self.updates()
            .write(&id, &record)
            .map_err(|e| super::io_refusal(&format!("update record of {id}"), &e))
    }

    // ---- requests ----

    /// `swap ID BUNDLE [swap-timeout=] [options]`.
    pub(crate) fn swap(
        &mut self,
        client: Ref,
        spec: &Spec,
        options: bool,
        timeout: Option<Duration>,
    ) -> Result<Outcome, Error> {
        let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
        let Some(r) = self.find(&spec.id) else {
            return self.install(client, spec, timeout);
        };
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| super::internal("container vanished"))?;
        if let Some(u) = c.update.as_ref().filter(|u| u.phase.moving() || u.locked) {
            return Err(Error::new(
                Code::Busy,
                format!(
                    "an update of {} is in progress ({})",
                    spec.id,
                    u.phase.as_str()
                ),
            ));
        }
        if let Some(op) = &c.op {
            return Err(op.kind.busy());
        }
        if c.status == Status::Creating {
            return Err(Error::new(Code::Busy, "container is being made again"));
        }
        // The options given, or the running version's.
        let mut next = match options {
            true => spec.clone(),
            false => Spec {
                bundle: spec.bundle.clone(),
                ..c.spec.clone()
            },
        };
        let runtime = c.runtime.clone();
        let checked = self.check_new(&next, Some(&runtime))?;
        next.terminal = Some(checked.terminal);
        next.runtime = None;
        let record = Record {
            spec: next,
            runtime: checked.runtime.path,
            created: now_secs(),
            restarts: 0,
            streak: 0,
            held: false,
            image: checked.image,
        };
        let previous = c.record();
        let locked = lock_held(&self.state.container(&spec.id));
        let Some(c) = self.containers.get_mut(r) else {
            return Err(super::internal("container vanished"));
        };
        // A swap over an uncommitted one keeps what runs now as the
        // previous version.
        let mut u = Update::new(
            Phase::Swap,
            Some(previous),
            Target::Make(Box::new(record)),
            timeout,
        );
        u.client = Some(client);
        if locked {
            u.locked = true;
            u.deadline = Some(Instant::now() + timeout);
            u.wake = Some(Instant::now() + AGAIN);
            c.update = Some(u);
            return Ok(Outcome::Pending);
        }
        c.update = Some(u);
        if let Err(e) = self.begin_swap(r) {
            if let Some(c) = self.containers.get_mut(r) {
                c.update = None;
            }
            return Err(e);
        }
        Ok(Outcome::Pending)
    }

    /// A swap of an id with no container: a first install, made as `run`
    /// makes it, on trial like any swap.
    fn install(&mut self, client: Ref, spec: &Spec, timeout: Duration) -> Result<Outcome, Error> {
        if self.containers.is_full() {
            let n = self.cfg.max_containers;
            return Err(Error::new(
                Code::Full,
                format!("{n} containers exist already (--max-containers)"),
            ));
        }
        if !self.slot_free() {
            return Ok(Outcome::Stall);
        }
        match self.create(None, spec, &crate::server::container::Creation::Run)? {
            Outcome::Pending => {}
            other => return Ok(other),
        }
        let Some(r) = self.find(&spec.id) else {
            return Err(super::internal("container vanished"));
        };
        let Some(c) = self.containers.get_mut(r) else {
            return Err(super::internal("container vanished"));
        };
        let mut u = Update::new(Phase::Swap, None, Target::Made, timeout);
        u.client = Some(client);
        c.update = Some(u);
        let bundle = c.spec.bundle.clone();
        if let Err(e) = self.record_update(r) {
            crate::logger::warn(&e.message);
        }
        self.emit(
            &spec.id,
            Kind::Swap,
            &[("bundle", &bundle), ("previous", "none")],
        );
        Ok(Outcome::Pending)
    }

    /// The swap begins: recorded first, then the old version is stopped.
    fn begin_swap(&mut self, r: Ref) -> Result<(), Error> {
        self.record_update(r)?;
        let Some(c) = self.containers.get(r) else {
            return Ok(());
        };
        let (id, old) = (c.id().to_string(), c.spec.bundle.clone());
        let new = match c.update.as_ref().map(|u| &u.target) {
            Some(Target::Make(next)) => next.spec.bundle.clone(),
            _ => String::new(),
        };
        self.emit(&id, Kind::Swap, &[("bundle", &new), ("previous", &old)]);
        self.drive(r);
        Ok(())
    }

    /// `commit ID`: the swapped-in version stays; the previous is
    /// forgotten.
    pub(crate) fn commit(&mut self, id: &str) -> Result<Outcome, Error> {
        let r = self
            .find(id)
            .ok_or_else(|| Error::new(Code::NotFound, format!("no container {id}")))?;
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| super::internal("container vanished"))?;
        match c.update.as_ref().map(|u| (u.phase, u.locked)) {
            Some((Phase::Done, _)) => {}
            Some((phase, locked)) if phase.moving() || locked => {
                return Err(Error::new(
                    Code::Busy,
                    format!("the update of {id} is in progress ({})", phase.as_str()),
                ))
            }
            _ => {
                return Err(Error::new(
                    Code::State,
                    format!("container {id} has no swap to commit"),
                ))
            }
        }
        let record = UpdateRecord {
            phase: Phase::Committed,
            current: c.record(),
            previous: None,
        };
        self.updates()
            .write(id, &record)
            .map_err(|e| super::io_refusal(&format!("update record of {id}"), &e))?;
        let bundle = c.spec.bundle.clone();
        if let Some(c) = self.containers.get_mut(r) {
            c.update = None;
        }
        self.emit(id, Kind::Commit, &[("bundle", &bundle)]);
        Ok(Outcome::ok(&[("bundle", &bundle)]))
    }

    /// `rollback ID`: the previous version back, the current one stopped.
    pub(crate) fn rollback(&mut self, client: Ref, id: &str) -> Result<Outcome, Error> {
        let r = self
            .find(id)
            .ok_or_else(|| Error::new(Code::NotFound, format!("no container {id}")))?;
        let c = self
            .containers
            .get_mut(r)
            .ok_or_else(|| super::internal("container vanished"))?;
        let Some(u) = c.update.as_mut() else {
            return Err(Error::new(
                Code::State,
                format!("container {id} has no previous version to roll back to"),
            ));
        };
        if u.phase == Phase::Rollback {
            return Err(Error::new(
                Code::Busy,
                format!("a rollback of {id} is in progress"),
            ));
        }
        if u.locked {
            // The swap never began: nothing to undo.
            let swap_client = u.client.take();
            c.update = None;
            let e = Error::new(Code::State, "the swap was called off by a rollback");
            self.answer(swap_client, Outcome::err(e));
            return Ok(Outcome::ok(&[(
                "bundle",
                &self
                    .containers
                    .get(r)
                    .map_or(String::new(), |c| c.spec.bundle.clone()),
            )]));
        }
        let swap_client = u.client.replace(client);
        u.requested = true;
        let e = Error::new(
            Code::State,
            format!("the swap of {id} was rolled back on request"),
        );
        self.answer(swap_client, Outcome::err(e));
        self.begin_rollback(r, "request".into());
        Ok(Outcome::Pending)
    }

    // ---- the steps ----

    /// Turns the update to a rollback, recorded, and drives it.
    fn begin_rollback(&mut self, r: Ref, why: String) {
        let Some(u) = self.containers.get_mut(r).and_then(|c| c.update.as_mut()) else {
            return;
        };
        u.phase = Phase::Rollback;
        u.target = match &u.previous {
            Some(p) => Target::Make(Box::new(p.clone())),
            None => Target::Remove,
        };
        u.deadline = None;
        u.why = why;
        if let Err(e) = self.record_update(r) {
            crate::logger::warn(&e.message);
        }
        self.drive(r);
    }

    /// Moves the update on as far as it can go now; called whenever
    /// something it waits for has happened.
    pub(crate) fn drive(&mut self, r: Ref) {
        let Some(c) = self.containers.get(r) else {
            return;
        };
        let Some(u) = &c.update else {
            return;
        };
        if u.locked || !u.phase.moving() {
            return;
        }
        let status = c.status;
        let now = Instant::now();
        match (u.phase, &u.target) {
            (Phase::Trial, _) => {
                let health = c.health.as_ref().map(|h| h.status);
                let late = u.deadline.is_some_and(|d| now >= d);
                let secs = u.timeout.as_secs_f32();
                use crate::tasks::health::HealthStatus as H;
                match (status, health) {
                    (Status::Running, Some(H::Healthy)) => self.trial_passed(r),
                    (Status::Running, None) if late => self.trial_passed(r),
                    (Status::Running, Some(H::Unhealthy)) => {
                        self.begin_rollback(r, "unhealthy".into());
                    }
                    (Status::Running | Status::Paused, _) if late => {
                        self.begin_rollback(r, format!("not healthy within {secs} s"));
                    }
                    (Status::Stopped | Status::Unknown, _) => {
                        let exit = c
                            .init
                            .exit_code
                            .map_or("lost".into(), |e| format!("exit {e}"));
                        self.begin_rollback(r, format!("stopped ({exit})"));
                    }
                    _ => {}
                }
            }
            (_, Target::Made) => match status {
                Status::Running | Status::Paused if u.phase == Phase::Swap => self.trial_begins(r),
                Status::Running | Status::Paused => self.rollback_done(r, Ok(())),
                Status::Stopped | Status::Unknown if c.op.is_none() => {
                    let exit = c
                        .init
                        .exit_code
                        .map_or("no exit status".into(), |e| format!("exit {e}"));
                    match u.phase {
                        Phase::Swap => self
                            .begin_rollback(r, format!("the new version did not start ({exit})")),
                        _ => self.rollback_done(
                            r,
                            Err(format!("the previous version did not start ({exit})")),
                        ),
                    }
                }
                _ => {}
            },
            (_, Target::Make(_) | Target::Remove) => match status {
                Status::Running | Status::Paused | Status::Created if u.step == Step::Idle => {
                    self.stop_version(r, status == Status::Paused);
                }
                Status::Stopped | Status::Unknown if u.step != Step::Deleting && c.op.is_none() => {
                    self.delete_version(r);
                }
                _ => {}
            },
        }
    }

    /// The stop signal to the version running now; KILL after
    /// [`STOP_GRACE`] (`update_tick`).
    fn stop_version(&mut self, r: Ref, kill: bool) {
        if !self.slot_free() {
            return self.wake_soon(r);
        }
        let Some(c) = self.containers.get(r) else {
            return;
        };
        let id = c.id().to_string();
        let signal = match kill {
            true => libc::SIGKILL,
            false => stop_signal(&c.spec.bundle),
        };
        let sig = signal.to_string();
        if self
            .spawn_call(r, CallKind::Stop, &["kill", &id, &sig])
            .is_err()
        {
            return self.wake_soon(r);
        }
        if let Some(u) = self.containers.get_mut(r).and_then(|c| c.update.as_mut()) {
            u.step = Step::Stopping;
            u.kill_at = (signal != libc::SIGKILL).then(|| Instant::now() + STOP_GRACE);
        }
    }

    /// The runtime deletes the stopped version.
    fn delete_version(&mut self, r: Ref) {
        if !self.slot_free() {
            return self.wake_soon(r);
        }
        let Some(c) = self.containers.get(r) else {
            return;
        };
        let id = c.id().to_string();
        if self
            .spawn_call(r, CallKind::UpdateDelete, &["delete", "--force", &id])
            .is_err()
        {
            return self.wake_soon(r);
        }
        if let Some(u) = self.containers.get_mut(r).and_then(|c| c.update.as_mut()) {
            u.step = Step::Deleting;
            u.kill_at = None;
        }
    }

    fn wake_soon(&mut self, r: Ref) {
        if let Some(u) = self.containers.get_mut(r).and_then(|c| c.update.as_mut()) {
            u.wake = Some(Instant::now() + AGAIN);
        }
    }

    /// The runtime's delete of the old version is done: the target is
    /// made in its place (or the container removed).
    pub(crate) fn update_deleted(&mut self, r: Ref, call: &Call, code: i32) {
        self.metrics
            .call(crate::server::metrics::CallVerb::Delete, code == 0);
        let Some(u) = self.containers.get_mut(r).and_then(|c| c.update.as_mut()) else {
            return;
        };
        u.step = Step::Idle;
        if code != 0 {
            let e = self.call_failure(call, "delete", code);
            crate::logger::warn(&format!("update: {}", e.message));
            return self.wake_soon(r);
        }
        let target = std::mem::replace(&mut u.target, Target::Made);
        match target {
            Target::Make(record) => {
                if let Err(e) = self.remake(r, *record) {
                    self.remake_failed(r, &e);
                }
            }
            Target::Remove => self.remove_installed(r),
            Target::Made => {}
        }
    }

    /// A version could not be made: a swap rolls back, a rollback ends
    /// with the container stopped (its restart policy may try again).
    fn remake_failed(&mut self, r: Ref, e: &Error) {
        let phase = self
            .containers
            .get(r)
            .and_then(|c| c.update.as_ref())
            .map(|u| u.phase);
        match phase {
            Some(Phase::Swap) => self.begin_rollback(
                r,
                format!("the new version could not be made: {}", e.message),
            ),
            _ => self.rollback_done(
                r,
                Err(format!(
                    "the previous version could not be made: {}",
                    e.message
                )),
            ),
        }
    }

    /// Makes `record`'s version of the container in its state dir, as the
    /// restart policy makes a container again: its `container` record
    /// first, then its rootfs and config, then a new shim.
    fn remake(&mut self, r: Ref, record: Record) -> Result<(), Error> {
        let Some(c) = self.containers.get(r) else {
            return Ok(());
        };
        let id = c.id().to_string();
        let dir = self.state.container(&id);
        let runtime = Runtime {
            path: record.runtime.clone(),
            root: self.cfg.runtime_root.clone(),
        };
        let had_image = c.image.is_some();
        for e in self.execs_of(r) {
            self.forget_exec(e, true);
        }
        // What the old version had mounted and derived goes first.
        if had_image {
            self.fx
                .unmount_rootfs(&dir)
                .map_err(|e| super::io_refusal("unmount the old rootfs", &e))?;
        }
        match std::fs::remove_dir_all(dir.join(container_dir::BUNDLE.str)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(super::io_refusal("the old derived bundle", &e));
            }
            _ => {}
        }
        let checked = self.check_new(&record.spec, Some(&runtime))?;
        let record = Record {
            image: checked.image.clone(),
            ..record
        };
        self.fx
            .write_file(
                &dir.join(container_dir::RECORD.str),
                record.encode().as_bytes(),
            )
            .map_err(|e| super::io_refusal("container record", &e))?;
        let spec = record.spec.clone();
        // The container holds the new version from here on, made or not.
        if let Some(c) = self.containers.get_mut(r) {
            c.spec = spec.clone();
            c.runtime = runtime.clone();
            c.image = record.image.clone();
            c.created = record.created;
            c.sup = Supervision::default();
            c.health =
                super::health::check_of(&spec, &checked.config).map(super::health::Health::new);
            c.init.exit_code = None;
        }
        // The version's network, made again: its options may differ.
        self.net_down(&id, true)
            .map_err(|e| super::io_refusal("network", &e))?;
        let (plan, net) = self.net_up(&dir, &spec)?;
        if let Some(c) = self.containers.get_mut(r) {
            c.net = net;
        }
        self.net_changed();
        let bundle = self.prepare_root(
            &dir,
            &spec,
            &checked.config,
            record.image.as_ref(),
            (checked.terminal, checked.bundle_terminal),
            &plan,
        )?;
        let _ = make_lock(&dir);
        let proc = self.state.process(&id);
        let _ = std::fs::remove_file(proc.join(proc_dir::EXIT_STATUS.str));
        if let Some(c) = self.containers.get_mut(r) {
            c.sup.respawning = true;
            c.init.dir = proc;
        }
        self.spawn_init(r, &bundle, checked.terminal)
            .map_err(|e| super::io_refusal("cannot start the shim", &e))
    }

    /// The new version runs: its trial begins.
    fn trial_begins(&mut self, r: Ref) {
        let Some(u) = self.containers.get_mut(r).and_then(|c| c.update.as_mut()) else {
            return;
        };
        u.phase = Phase::Trial;
        u.deadline = Some(Instant::now() + u.timeout);
        if let Err(e) = self.record_update(r) {
            crate::logger::warn(&e.message);
        }
        // Healthy already (a check that passed at once)?
        self.drive(r);
    }

    /// The new version proved itself: the swap is done, to be committed.
    fn trial_passed(&mut self, r: Ref) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        let Some(u) = c.update.as_mut() else {
            return;
        };
        u.phase = Phase::Done;
        u.deadline = None;
        let client = u.client.take();
        let previous = u
            .previous
            .as_ref()
            .map_or("none".to_string(), |p| p.spec.bundle.clone());
        let bundle = c.spec.bundle.clone();
        let id = c.id().to_string();
        let outcome = match self.record_update(r) {
            Ok(()) => Outcome::ok(&[("bundle", &bundle), ("previous", &previous)]),
            Err(e) => Outcome::err(e),
        };
        crate::logger::info(&format!("{id}: swapped to {bundle}; commit or rollback"));
        self.answer(client, outcome);
    }

    /// The rollback is over: the previous version runs (`Ok`), or could
    /// not be made again (it stays, stopped, for its restart policy).
    fn rollback_done(&mut self, r: Ref, result: Result<(), String>) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        let Some(u) = c.update.take() else {
            return;
        };
        let id = c.id().to_string();
        let bundle = c.spec.bundle.clone();
        let record = UpdateRecord {
            phase: Phase::Committed,
            current: c.record(),
            previous: None,
        };
        if let Err(e) = self.updates().write(&id, &record) {
            crate::logger::warn(&format!("{id}: update record: {e}"));
        }
        self.emit(&id, Kind::Rollback, &[("bundle", &bundle), ("why", &u.why)]);
        let outcome = match (&result, u.requested) {
            (Ok(()), true) => Outcome::ok(&[("bundle", &bundle)]),
            (Ok(()), false) => Outcome::err(Error::new(
                Code::State,
                format!(
                    "{id}: the new version failed its trial ({}): rolled back to {bundle}",
                    u.why
                ),
            )),
            (Err(why), _) => Outcome::err(Error::new(
                Code::Runtime,
                format!("{id}: rolled back to {bundle} ({}), but {why}", u.why),
            )),
        };
        match &result {
            Ok(()) => crate::logger::warn(&format!("{id}: rolled back to {bundle} ({})", u.why)),
            Err(why) => crate::logger::error(&format!("{id}: rolled back to {bundle}, but {why}")),
        }
        self.answer(u.client, outcome);
        if result.is_err() {
            self.consider_restart(r);
        }
    }

    /// A first install rolled back: the container goes, with its record.
    fn remove_installed(&mut self, r: Ref) {
        for e in self.execs_of(r) {
            self.forget_exec(e, false);
        }
        let Some(c) = self.containers.remove(r) else {
            return;
        };
        let id = c.id().to_string();
        let _ = self.remove_state(&id);
        if let Err(e) = self.updates().remove(&id) {
            crate::logger::warn(&format!("{id}: update record: {e}"));
        }
        let why = c.update.as_ref().map_or(String::new(), |u| u.why.clone());
        self.emit(&id, Kind::Rollback, &[("bundle", "none"), ("why", &why)]);
        self.emit(&id, Kind::Delete, &[]);
        if let Some(u) = c.update {
            let outcome = match u.requested {
                true => Outcome::ok(&[("bundle", "none")]),
                false => Outcome::err(Error::new(
                    Code::State,
                    format!("{id}: the new container failed its trial ({why}): removed"),
                )),
            };
            self.answer(u.client, outcome);
        }
    }

    /// A kill the daemon decided on has exited.
    pub(crate) fn stop_done(&mut self, r: Ref, call: &Call, code: i32) {
        self.metrics
            .call(crate::server::metrics::CallVerb::Kill, code == 0);
        if code != 0 {
            let id = self.containers.get(r).map_or("", |c| c.id()).to_string();
            let e = self.call_failure(call, "kill", code);
            crate::logger::warn(&format!("{id}: {}", e.message));
        }
    }

    /// The earliest thing an update waits for.
    pub(crate) fn next_update(&self) -> Option<Instant> {
        self.containers
            .iter()
            .filter_map(|(_, c)| {
                let u = c.update.as_ref()?;
                [u.deadline, u.kill_at, u.wake].into_iter().flatten().min()
            })
            .min()
    }

    /// Whatever updates wait for that is due: a trial's end, a stop's
    /// grace, a lock to look at again, a step to try again.
    pub(crate) fn update_tick(&mut self) {
        let now = Instant::now();
        for r in self.containers.refs_where(|c| c.update.is_some()) {
            let Some(c) = self.containers.get_mut(r) else {
                continue;
            };
            let running = matches!(c.status, Status::Running | Status::Paused | Status::Created);
            let Some(u) = c.update.as_mut() else {
                continue;
            };
            let woke = u.wake.is_some_and(|w| w <= now);
            if woke {
                u.wake = None;
            }
            if u.locked {
                if !woke {
                    continue;
                }
                if !lock_held(&self.state.container(&c.spec.id)) {
                    u.locked = false;
                    u.deadline = None;
                    if let Err(e) = self.begin_swap(r) {
                        let client = self
                            .containers
                            .get_mut(r)
                            .and_then(|c| c.update.take())
                            .and_then(|u| u.client);
                        self.answer(client, Outcome::err(e));
                    }
                } else if u.deadline.is_some_and(|d| d <= now) {
                    let client = u.client.take();
                    c.update = None;
                    let e = Error::new(
                        Code::Busy,
                        "locked: the container held its update lock for the whole swap-timeout",
                    );
                    self.answer(client, Outcome::err(e));
                } else {
                    u.wake = Some(now + AGAIN);
                }
                continue;
            }
            if u.kill_at.is_some_and(|k| k <= now) {
                u.kill_at = None;
                if running {
                    let id = c.id().to_string();
                    crate::logger::warn(&format!(
                        "{id}: did not stop within {} s of its stop signal: KILL",
                        STOP_GRACE.as_secs()
                    ));
                    let _ = self.spawn_call(r, CallKind::Stop, &["kill", &id, "KILL"]);
                }
                continue;
            }
            let late = u.deadline.is_some_and(|d| d <= now);
            if woke || late {
                if woke && u.step == Step::Stopping && running {
                    u.step = Step::Idle;
                }
                self.drive(r);
            }
        }
    }

    // ---- after a restart of the daemon, or at boot ----

    /// The update records, after recovery: an update under way in a
    /// container still there is rolled back; a container that is not there
    /// (a power cut took the state dir) is declared again in its recorded
    /// version, an uncommitted one rolled back first. The declarations
    /// come back to be started by `autostart`, in place of a declared
    /// container of the same id.
    pub(crate) fn resume_updates(&mut self) -> Vec<Spec> {
        let updates = self.updates();
        let mut boot = Vec::new();
        for id in updates.ids() {
            let record = match updates.read(&id) {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(e) => {
                    crate::logger::error(&format!("update record left alone: {e}"));
                    continue;
                }
            };
            if let Some(r) = self.find(&id) {
                self.resume_update(r, record);
                continue;
            }
            let version = match (record.phase, record.previous) {
                (Phase::Committed, _) => record.current,
                (_, None) => {
                    // A first install not committed: gone with the power.
                    crate::logger::warn(&format!(
                        "{id}: its first install was not committed: removed"
                    ));
                    let _ = updates.remove(&id);
                    continue;
                }
                (_, Some(previous)) => {
                    crate::logger::warn(&format!(
                        "{id}: its update to {} was not committed: back to {}",
                        record.current.spec.bundle, previous.spec.bundle
                    ));
                    let back = UpdateRecord {
                        phase: Phase::Committed,
                        current: previous.clone(),
                        previous: None,
                    };
                    if let Err(e) = updates.write(&id, &back) {
                        crate::logger::warn(&format!("{id}: update record: {e}"));
                    }
                    self.emit(
                        &id,
                        Kind::Rollback,
                        &[("bundle", &previous.spec.bundle), ("why", "boot")],
                    );
                    previous
                }
            };
            boot.push(Spec {
                runtime: Some(version.runtime.to_string_lossy().into_owned()),
                ..version.spec
            });
        }
        boot
    }

    /// An update found in a container the daemon kept.
    fn resume_update(&mut self, r: Ref, record: UpdateRecord) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        match record.phase {
            Phase::Committed => {}
            Phase::Done => {
                c.update = Some(Update::new(
                    Phase::Done,
                    record.previous,
                    Target::Made,
                    DEFAULT_TIMEOUT,
                ));
            }
            _ => {
                let mut u = Update::new(Phase::Rollback, None, Target::Remove, DEFAULT_TIMEOUT);
                u.why = "interrupted".into();
                // Made again even when it is the version running: a stop
                // the dead daemon sent may still be on its way to it.
                u.target = match &record.previous {
                    None => Target::Remove,
                    Some(p) => Target::Make(Box::new(p.clone())),
                };
                u.previous = record.previous;
                crate::logger::warn(&format!(
                    "{}: an update was interrupted ({}): rolling back",
                    c.id(),
                    record.phase.as_str()
                ));
                c.update = Some(u);
                if let Err(e) = self.record_update(r) {
                    crate::logger::warn(&e.message);
                }
                self.drive(r);
            }
        }
    }
}
