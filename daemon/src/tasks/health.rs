//! Health checks: a probe runs inside the container through the exec path
//! (a shim of its own in `<state-dir>/<id>/health/`, the runtime's `exec`),
//! one at a time per container, every `interval` while it runs.
//!
//! - A probe that exits 0 makes the container `healthy`; `retries` failures
//!   in a row (a non-zero exit, a probe the runtime could not start, or one
//!   killed at its `timeout`) make it `unhealthy`. In the grace period after
//!   each start (`health-start`), failures do not count, a success does.
//! - Each start begins at `starting` again. A change is a `health` event;
//!   `wait ID healthy` answers at `healthy`, and refuses at `unhealthy` or
//!   when the container stops.
//! - An unhealthy container whose restart policy restarts on failure
//!   (`on-failure` with restarts left, `always`, `unless-stopped`) is
//!   killed, unless it holds its update lock, and the policy makes it again
//!   with its usual delay; its exit counts as a failure.
//! - Nothing waits: a probe is a shim and a fifo in the loop like any exec,
//!   and its deadlines are the loop's timers.
//!
//! A probe's own exec and exit are not events (one every few seconds would
//! push everything else out of the retained log); its exit status and the
//! tail of its output are kept for `state`.

use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use crate::server::container::ProcRef;
use crate::server::lifecycle::Status;
use crate::server::Effects;
use crate::server::{CallKind, Daemon, Outcome};
use crate::slab::Ref;
use crate::wire::event::Kind;
use crate::wire::health::HealthCheck;
use crate::wire::proto::{Code, Error};
use crate::wire::{ExecSpec, Spec, HEALTH};
use nanoctr_shim::contract::{proc_dir, MIN_LOG_SIZE};

/// The bytes of a probe's output kept for `state`.
pub const OUTPUT_TAIL: usize = 160;

/// How soon a probe that could not start now is tried again.
const RETRY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// A container's health as the daemon tracks it.
#[derive(Debug, Clone)]
pub struct Health {
    pub check: HealthCheck,
    pub status: HealthStatus,
    /// Failures in a row that counted.
    pub failures: u32,
    /// The last probe's exit status; `None` when it did not run or was
    /// killed at its timeout.
    pub last_exit: Option<i32>,
    /// The tail of its output (or why it did not run), one line.
    pub last_output: String,
    /// When the next probe is due, while the container runs.
    pub next: Option<Instant>,
    /// The probe running: its exec and when it began.
    pub probe: Option<(Ref, Instant)>,
    /// The running probe was killed at its timeout.
    pub timed_out: bool,
    /// The last start, for the grace period.
    pub started: Instant,
}

impl Health {
    pub fn new(check: HealthCheck) -> Health {
        Health {
            check,
            status: HealthStatus::Starting,
            failures: 0,
            last_exit: None,
            last_output: String::new(),
            next: None,
            probe: None,
            timed_out: false,
            started: Instant::now(),
        }
    }
}

/// The health check of a container made from `spec` with this bundle
/// config: its options over its image's (the bundle's
/// `org.nanoctr.healthcheck` annotation).
pub fn check_of(spec: &Spec, config: &[u8]) -> Option<HealthCheck> {
    use crate::bundle::json;
    let image = json::find(config, &["annotations", crate::image::spec::HEALTHCHECK])
        .and_then(|r| json::text(config, r))
        .and_then(|text| crate::wire::health::from_image(&text));
    spec.health.check(image.as_ref())
}

impl<F: Effects> Daemon<F> {
    /// The container has started (or been found running): its health
    /// starts again, the first probe an interval from now.
    pub(crate) fn health_started(&mut self, r: Ref) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        let Some(h) = c.health.as_mut() else {
            return;
        };
        let now = Instant::now();
        h.started = now;
        h.failures = 0;
        h.next = Some(now + h.check.interval);
        self.set_health(r, HealthStatus::Starting);
    }

    /// A container found at start-up gets its check again (from its
    /// options and its bundle); one found running starts at `starting`.
    pub(crate) fn recover_health(&mut self, r: Ref) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        let Ok(config) = crate::bundle::bundle_config(&c.spec.bundle) else {
            return;
        };
        c.health = check_of(&c.spec, &config).map(Health::new);
        if c.status == Status::Running {
            self.health_started(r);
        }
    }

    /// The earliest health deadline: a probe due, a probe's timeout, a
    /// `wait ID healthy` running out.
    pub(crate) fn next_health(&self) -> Option<Instant> {
        let probes = self.containers.iter().filter_map(|(_, c)| {
            let h = c.health.as_ref()?;
            match h.probe {
                Some((_, since)) if !h.timed_out => Some(since + h.check.timeout),
                Some(_) => None,
                None => h.next.filter(|_| c.status == Status::Running),
            }
        });
        let waits = self.clients.iter().filter_map(|(_, c)| match c.busy {
            Some(crate::server::conn::Busy::Healthy(_, until)) => until,
            _ => None,
        });
        probes.chain(waits).min()
    }

    /// Starts the probes that are due, kills those past their timeout,
    /// and ends the `wait ID healthy` that ran out.
    pub(crate) fn health_tick(&mut self) {
        let now = Instant::now();
        for r in self.containers.refs_where(|c| c.health.is_some()) {
            let Some(c) = self.containers.get_mut(r) else {
                continue;
            };
            let Some(h) = c.health.as_mut() else {
                continue;
            };
            match h.probe {
                Some((e, since)) if !h.timed_out && now >= since + h.check.timeout => {
                    h.timed_out = true;
                    self.kill_probe(e);
                }
                None if c.status == Status::Running && h.next.is_some_and(|at| at <= now) => {
                    self.start_probe(r);
                }
                _ => {}
            }
        }
        let late = self.clients.refs_where(|c| {
            matches!(c.busy, Some(crate::server::conn::Busy::Healthy(_, Some(until))) if until <= now)
        });
        for client in late {
            let e = Error::new(Code::Timeout, "not healthy within the timeout");
            self.answer(Some(client), Outcome::err(e));
        }
    }

    /// A probe past its timeout: killed by its shim, or, while the
    /// runtime is still making it, with its shim.
    fn kill_probe(&mut self, e: Ref) {
        let Some(x) = self.execs.get(e) else {
            return;
        };
        if x.status == Status::Creating {
            let err = Error::new(Code::Timeout, "the probe did not start within its timeout");
            return self.make_failed(ProcRef::Exec(e), err, true);
        }
        let dir = x.process.dir.clone();
        let kill = nanoctr_shim::contract::control::Control::Kill { signal: 9 };
        if self.control(&dir, kill).is_err() {
            self.kill_shim(ProcRef::Exec(e));
        }
    }

    /// Runs the container's probe now, or soon when it cannot start yet.
    fn start_probe(&mut self, r: Ref) {
        // A probe a dead daemon started, still running: this one's now.
        if let Some(e) = self.find_exec(r, HEALTH).filter(|&e| {
            self.execs
                .get(e)
                .is_some_and(|x| matches!(x.status, Status::Creating | Status::Running))
        }) {
            if let Some(h) = self.containers.get_mut(r).and_then(|c| c.health.as_mut()) {
                h.probe = Some((e, Instant::now()));
                h.timed_out = false;
            }
            return;
        }
        let Some(c) = self.containers.get(r) else {
            return;
        };
        let Some(h) = &c.health else {
            return;
        };
        let spec = ExecSpec {
            id: c.id().to_string(),
            proc: HEALTH.to_string(),
            log_size: Some(MIN_LOG_SIZE),
            args: h.check.cmd.clone(),
            ..ExecSpec::default()
        };
        let interval = h.check.interval;
        let started = match self.exec_in(None, &spec, true) {
            Ok(crate::server::Outcome::Stall) => Err(None),
            Ok(_) => Ok(()),
            Err(e) if e.code == Code::Busy || e.code == Code::Full => Err(None),
            Err(e) => Err(Some(e)),
        };
        let e = self.find_exec(r, HEALTH);
        let Some(h) = self.containers.get_mut(r).and_then(|c| c.health.as_mut()) else {
            return;
        };
        match started {
            Ok(()) => {
                let now = Instant::now();
                h.probe = e.map(|e| (e, now));
                h.timed_out = false;
                h.next = Some(now + interval);
            }
            // No room for it now (every runtime-call slot, or the exec
            // table, is taken): soon again.
            Err(None) => h.next = Some(Instant::now() + RETRY),
            Err(Some(err)) => {
                h.next = Some(Instant::now() + interval);
                self.probe_done(r, None, err.message);
            }
        }
    }

    /// The probe exec `e` of its container has ended: `code` its exit
    /// status (`None`: it did not run, or was lost).
    pub(crate) fn probe_ended(&mut self, e: Ref, code: Option<i32>, why: Option<String>) {
        let Some(x) = self.execs.get(e) else {
            return;
        };
        let (r, dir) = (x.container, x.process.dir.clone());
        let Some(h) = self.containers.get_mut(r).and_then(|c| c.health.as_mut()) else {
            return;
        };
        if h.probe.map(|p| p.0) != Some(e) {
            // A probe a dead daemon started: not this check's.
            return;
        }
        let timed_out = h.timed_out;
        let timeout = h.check.timeout;
        h.probe = None;
        h.timed_out = false;
        let output = match (timed_out, why) {
            (true, _) => format!("timed out after {} ms", timeout.as_millis()),
            (false, Some(why)) => why,
            (false, None) => output_tail(&dir.join(proc_dir::OUTPUT.str)),
        };
        let code = if timed_out { None } else { code };
        self.probe_done(r, code, output);
    }

    /// One probe's result counts.
    fn probe_done(&mut self, r: Ref, code: Option<i32>, output: String) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        let running = c.status == Status::Running;
        let Some(h) = c.health.as_mut() else {
            return;
        };
        h.last_exit = code;
        h.last_output = output;
        if !running {
            // It stopped meanwhile: the probe said nothing of it.
            return;
        }
        let next = if code == Some(0) {
            h.failures = 0;
            HealthStatus::Healthy
        } else if h.status == HealthStatus::Starting && h.started.elapsed() < h.check.start {
            // The grace period.
            HealthStatus::Starting
        } else {
            h.failures = h.failures.saturating_add(1);
            match h.failures >= h.check.retries {
                true => HealthStatus::Unhealthy,
                false => h.status,
            }
        };
        self.set_health(r, next);
        if next == HealthStatus::Unhealthy {
            self.unhealthy(r);
        }
    }

    /// Moves the health on: an event when it changes, and the waiters
    /// answered.
    fn set_health(&mut self, r: Ref, status: HealthStatus) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        let id = c.id().to_string();
        let Some(h) = c.health.as_mut() else {
            return;
        };
        if h.status == status {
            return;
        }
        h.status = status;
        let failures = h.failures.to_string();
        let mut extra = vec![("status", status.as_str())];
        let exit = h.last_exit.map(|e| e.to_string());
        if status != HealthStatus::Starting {
            extra.push(("failures", &failures));
            if let Some(exit) = &exit {
                extra.push(("exit", exit));
            }
        }
        self.emit(&id, Kind::Health, &extra);
        self.drive(r);
        match status {
            HealthStatus::Healthy => self.answer_health_waiters(r, Ok(())),
            HealthStatus::Unhealthy => {
                let e = Error::new(Code::State, format!("container {id} is unhealthy"));
                self.answer_health_waiters(r, Err(e));
            }
            HealthStatus::Starting => {}
        }
    }

    /// Answers every `wait ID healthy` on the container.
    /// Answers every `wait ID healthy` on the container: `OK
    /// health=healthy`, or the error.
    pub(crate) fn answer_health_waiters(&mut self, r: Ref, result: Result<(), Error>) {
        let waiters = self.clients.refs_where(
            |c| matches!(c.busy, Some(crate::server::conn::Busy::Healthy(w, _)) if w == r),
        );
        for w in waiters {
            let outcome = match &result {
                Ok(()) => Outcome::ok(&[("health", "healthy")]),
                Err(e) => Outcome::err(e.clone()),
            };
            self.answer(Some(w), outcome);
        }
    }

    /// Unhealthy past its retries: a failure for the restart policy. The
    /// container is killed, so that the policy makes it again, unless the
    /// policy would not (then it stays, unhealthy, for the watchdog and the
    /// operator), or it holds its update lock (then the next failed probe
    /// asks again).
    fn unhealthy(&mut self, r: Ref) {
        let Some(c) = self.containers.get(r) else {
            return;
        };
        let id = c.id().to_string();
        if !c.spec.restart.wants(Some(137), c.sup.streak, c.sup.held) || c.op.is_some() {
            return;
        }
        // An update on trial rolls back instead.
        if c.update.as_ref().is_some_and(|u| u.phase.moving()) {
            return;
        }
        if crate::tasks::update::lock_held(&self.state.container(&id)) {
            crate::logger::info(&format!(
                "{id}: unhealthy, but it holds its update lock: not restarted yet"
            ));
            return;
        }
        crate::logger::warn(&format!("{id}: unhealthy: killed for its restart policy"));
        if self
            .spawn_call(r, CallKind::Stop, &["kill", &id, "KILL"])
            .is_err()
        {
            // Again at the next probe's failure.
            crate::logger::warn(&format!("{id}: cannot run the runtime's kill"));
        }
    }

    /// `wait ID healthy [timeout=]`: at once when healthy, else when it
    /// becomes so.
    pub(crate) fn wait_healthy(
        &mut self,
        client: Ref,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<Outcome, Error> {
        let r = self.admit(id, crate::server::lifecycle::Verb::Wait)?;
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| super::internal("container vanished"))?;
        let Some(h) = &c.health else {
            return Err(Error::new(
                Code::Invalid,
                format!("container {id} has no health check (health-cmd=)"),
            ));
        };
        match (h.status, c.status) {
            (HealthStatus::Healthy, Status::Running) => {
                return Ok(Outcome::ok(&[("health", "healthy")]))
            }
            (HealthStatus::Unhealthy, _) => {
                return Err(Error::new(
                    Code::State,
                    format!("container {id} is unhealthy"),
                ))
            }
            (_, Status::Created | Status::Running | Status::Paused | Status::Creating) => {}
            (_, status) => {
                return Err(Error::new(
                    Code::State,
                    format!("container {id} is {}", status.as_str()),
                ))
            }
        }
        self.room_to_follow(client)?;
        let until = timeout.map(|t| Instant::now() + t);
        if let Some(c) = self.clients.get_mut(client) {
            c.busy = Some(crate::server::conn::Busy::Healthy(r, until));
        }
        Ok(Outcome::Pending)
    }
}

/// The last [`OUTPUT_TAIL`] bytes of a probe's output, as one line of
/// printable text.
fn output_tail(path: &std::path::Path) -> String {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return String::new();
    };
    let Ok(len) = crate::files::regular_len(&f) else {
        return String::new();
    };
    let from = len.saturating_sub(OUTPUT_TAIL as u64);
    let mut buf = Vec::with_capacity(OUTPUT_TAIL);
    if f.seek(SeekFrom::Start(from)).is_err()
        || f.take(OUTPUT_TAIL as u64).read_to_end(&mut buf).is_err()
    {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.trim().to_string()
}
