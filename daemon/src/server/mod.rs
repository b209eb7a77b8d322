//! The daemon's event loop: one thread, one epoll set, no async runtime.
//!
//! The roles of the seed's goroutines map onto events in one loop:
//! - the API server: the listening socket and a fixed table of clients with
//!   bounded line buffers;
//! - the supervisor's task queue: requests, each handled by one `tasks`
//!   module, dispatched from one `match` in `Daemon::execute` (`dispatch.rs`);
//! - the start workers: at most `--max-calls` runtime calls in flight (shim
//!   creates and starts, `kill`, `delete`); a request that needs one while
//!   all are busy waits its turn in a bounded queue;
//! - the exit handler: EOF on a shim's `exit` fifo;
//! - the signal loop: a signalfd (SIGCHLD to reap the runtime calls the
//!   daemon made, SIGTERM/SIGINT to stop);
//! - the hardware watchdog, petted at its deadline while every critical
//!   container is well (`watchdog.rs`).
//!
//! Tables are sized at start-up and never grow; a request that finds one
//! full gets `ERR full`.

pub mod autostart;
pub mod boot;
pub mod budget;
mod calls;
mod clients;
pub mod conn;
pub mod container;
pub mod control_tty;
mod dispatch;
pub mod effects;
#[cfg(test)]
pub(crate) mod fake;
pub mod lifecycle;
mod listener;
pub mod metrics;
pub mod notify;
pub mod recovery;
pub mod runtime;
pub mod runtime_log;
pub mod shim;
mod source;
pub(crate) mod watchdog;

pub(crate) use calls::{Call, CallKind};
pub(crate) use control_tty::ControlTty;
pub use effects::{Effects, System};
pub(crate) use source::Source;

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fd::OwnedFd as RawOwnedFd;
use std::os::unix::net::UnixListener;

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::fs::inotify;
use rustix::io::Errno;

use crate::config::Config;
use crate::server::conn::Client;
use crate::server::container::{Container, Exec};
use crate::server::metrics::Metrics;
use crate::slab::{Ref, Slab};
use crate::store::events::EventLog;
use crate::store::statedir::StateDir;
use crate::sys;
use crate::wire::proto::{Code, Error, Reply};

/// What a request handler did.
pub(crate) enum Outcome {
    /// Answer now.
    Reply(Reply),
    /// The answer comes later, from a shim or a runtime call.
    Pending,
    /// Every runtime-call slot is taken; run the request again later.
    Stall,
}

impl Outcome {
    pub fn ok(pairs: &[(&str, &str)]) -> Outcome {
        let mut r = Reply::new();
        r.ok(pairs);
        Outcome::Reply(r)
    }

    pub fn err(e: Error) -> Outcome {
        let mut r = Reply::new();
        r.err(&e);
        Outcome::Reply(r)
    }
}

pub struct Daemon<F: Effects = System> {
    /// Everything done to the world beyond the tables (`effects.rs`).
    pub(crate) fx: F,
    pub(crate) cfg: Config,
    pub(crate) state: StateDir,
    epoll: RawOwnedFd,
    signals: OwnedFd,
    listener: UnixListener,
    pub(crate) clients: Slab<Client>,
    pub(crate) containers: Slab<Container>,
    pub(crate) execs: Slab<Exec>,
    pub(crate) calls: Slab<Call>,
    pub(crate) events: EventLog,
    pub(crate) metrics: Metrics,
    /// Watches cgroup v2 `memory.events` files for OOM kills.
    pub(crate) inotify: OwnedFd,
    /// Clients whose request waits for a runtime-call slot, oldest first.
    stalled: VecDeque<Ref>,
    /// Clients that got an answer and may have more lines to run.
    ready: Vec<Ref>,
    /// A descriptor held in reserve: when the process is out of them, it is
    /// closed for a moment to accept and refuse a client (`ERR busy`)
    /// rather than leave the listener ready forever.
    spare: Option<std::fs::File>,
    /// The declared containers, while autostart goes on.
    pub(crate) autostarts: Vec<autostart::Auto>,
    pub(crate) tty: Option<ControlTty>,
    /// The hardware watchdog, once opened (`--watchdog`).
    pub(crate) watchdog: Option<watchdog::Watchdog>,
    /// `nft` and `--net-hook` runs not reaped yet (`tasks/net.rs`).
    pub(crate) net_programs: crate::tasks::net::NetPrograms,
    stopping: bool,
    /// The listener is in the epoll set (there is room for a client).
    listening: bool,
    own_uid: u32,
}

impl Daemon {
    /// Sets up everything the loop needs, to act for real.
    pub fn new(cfg: Config) -> Result<Daemon, String> {
        Daemon::with_effects(cfg, System)
    }
}

impl<F: Effects> Daemon<F> {
    /// Sets up everything the loop needs, its effects done by `fx`.
    /// Signals are blocked first, so no child is ever started with them
    /// unblocked in the daemon.
    pub fn with_effects(cfg: Config, fx: F) -> Result<Daemon<F>, String> {
        let signals = sys::signalfd(&[
            libc::SIGCHLD,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGPIPE,
        ])
        .map_err(|e| format!("signalfd: {e}"))?;
        // Orphans come to the daemon, which reaps them: a lost shim's
        // container processes, the runtime's leftovers. Nothing lingers as
        // a zombie that a runtime's delete would wait for.
        if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
            crate::logger::warn(&format!("cannot become a child subreaper: {e}"));
        }
        // The kernel should kill containers before their supervisor.
        if let Err(e) = std::fs::write("/proc/self/oom_score_adj", cfg.oom_score_adj.to_string()) {
            crate::logger::warn(&format!("cannot set oom_score_adj: {e}"));
        }
        let state = StateDir::open(&cfg.state_dir)
            .map_err(|e| format!("state dir {}: {e}", cfg.state_dir.display()))?;
        let events = EventLog::open(&cfg.state_dir, cfg.retain)
            .map_err(|e| format!("event log in {}: {e}", cfg.state_dir.display()))?;
        let inotify = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .map(sys::own)
            .map_err(|e| format!("inotify: {e}"))?;
        let listener = listener::bind(&cfg.socket)?;
        let epoll =
            epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| format!("epoll: {e}"))?;
        let d = Daemon {
            fx,
            state,
            epoll,
            signals,
            listener,
            // Requests, followers, and the control tty's own place.
            clients: Slab::with_capacity(cfg.max_clients + cfg.max_followers + 1),
            containers: Slab::with_capacity(cfg.max_containers),
            execs: Slab::with_capacity(cfg.max_execs),
            // Room for one cleanup call per container beyond the slots, so a
            // lost shim's container can always be deleted.
            calls: Slab::with_capacity(cfg.max_calls + cfg.max_containers),
            events,
            metrics: Metrics::default(),
            inotify,
            stalled: VecDeque::with_capacity(cfg.max_clients + cfg.max_followers + 1),
            ready: Vec::with_capacity(cfg.max_clients + cfg.max_followers + 1),
            spare: std::fs::File::open("/dev/null").ok(),
            autostarts: Vec::new(),
            tty: cfg.control_tty.clone().map(|path| ControlTty {
                path,
                client: None,
                reopen_at: Some(std::time::Instant::now()),
                last_error: None,
            }),
            watchdog: None,
            net_programs: Default::default(),
            stopping: false,
            listening: true,

            own_uid: rustix::process::geteuid().as_raw(),
            cfg,
        };
        d.watch(&d.listener, Source::Listener, EventFlags::IN)
            .and_then(|()| d.watch(&d.signals, Source::Signals, EventFlags::IN))
            .and_then(|()| d.watch(&d.inotify, Source::Inotify, EventFlags::IN))
            .map_err(|e| format!("epoll: {e}"))?;
        Ok(d)
    }

    /// Serves until SIGTERM or SIGINT; then removes the socket and closes
    /// the watchdog. Containers and their shims keep running.
    pub fn run(mut self) -> Result<(), String> {
        while !self.stopping {
            // Wake at the next deadline.
            let timeout = self
                .next_deadline()
                .map(|at| at.saturating_duration_since(std::time::Instant::now()));
            self.turn(timeout)?;
        }
        self.shut_down();
        self.close_watchdog();
        Ok(())
    }

    /// One turn of the loop: waits at most `timeout` (`None`: until
    /// something happens) for events, handles them, then whatever is due.
    pub(crate) fn turn(&mut self, timeout: Option<std::time::Duration>) -> Result<(), String> {
        let mut events = [epoll::Event {
            flags: EventFlags::empty(),
            data: EventData::new_u64(0),
        }; 64];
        // Rounded up to a whole millisecond (epoll's resolution), so the
        // wait never ends just too early.
        let timeout = timeout.map(|wait| {
            let wait = wait + std::time::Duration::from_nanos(999_999);
            rustix::time::Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: i64::from(wait.subsec_millis()) * 1_000_000,
            }
        });
        let n = match epoll::wait(&self.epoll, &mut events, timeout.as_ref()) {
            Ok(n) => n,
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(format!("epoll_wait: {e}")),
        };
        for ev in &events[..n] {
            let (flags, data) = (ev.flags, ev.data);
            if let Some(source) = Source::from_token(data.u64()) {
                self.on_event(source, flags);
            }
            self.run_ready();
        }
        self.expire();
        self.run_ready();
        // Clients answered, or gone to follow, may have made room.
        self.listen_while_room();
        Ok(())
    }

    pub(crate) fn watch(&self, fd: impl AsFd, source: Source, flags: EventFlags) -> io::Result<()> {
        epoll::add(
            &self.epoll,
            sys::fd(&fd),
            EventData::new_u64(source.token()),
            flags,
        )
        .map_err(sys::io_error)
    }

    fn on_event(&mut self, source: Source, flags: EventFlags) {
        match source {
            Source::Listener => self.accept_clients(),
            Source::Signals => self.on_signals(),
            Source::Client(r) => self.on_client(r, flags),
            Source::Startup(p) => self.on_startup(p),
            Source::Reply(p) => self.on_reply(p),
            Source::Exit(p) => self.on_exit(p),
            Source::Oom(r) => self.check_oom(r),
            Source::Inotify => self.on_inotify(),
        }
    }

    fn on_signals(&mut self) {
        let mut info = [0u8; 128];
        while let Ok(n @ 1..) = rustix::io::read(sys::fd(&self.signals), &mut info) {
            if n < 4 {
                break;
            }
            match i32::from_ne_bytes([info[0], info[1], info[2], info[3]]) {
                libc::SIGCHLD => self.reap(),
                libc::SIGTERM | libc::SIGINT => self.stopping = true,
                _ => {}
            }
        }
    }

    /// The container with this id, if any.
    pub(crate) fn find(&self, id: &str) -> Option<Ref> {
        self.containers
            .iter()
            .find(|(_, c)| c.id() == id)
            .map(|(r, _)| r)
    }
}

/// A refusal for what should not happen (a table entry gone, a bug).
pub(crate) fn internal(message: impl Into<String>) -> Error {
    Error::new(Code::Internal, message)
}

/// A system error as a refusal: out of descriptors is `busy` (it passes),
/// out of space is `full` (someone must make room), the rest `internal`.
pub(crate) fn io_refusal(what: &str, e: &std::io::Error) -> Error {
    let code = match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM) => Code::Busy,
        Some(libc::ENOSPC | libc::EDQUOT) => Code::Full,
        _ => Code::Internal,
    };
    Error::new(code, format!("{what}: {e}"))
}
