//! The daemon's event loop: one thread, one epoll set, no async runtime.
//!
//! The roles of the seed's goroutines map onto events in one loop:
//! - the API server: the listening socket and a fixed table of clients with
//!   bounded line buffers;
//! - the supervisor's task queue: requests, each handled by one `tasks`
//!   module, dispatched from one `match` in [`Daemon::execute`];
//! - the start workers: at most `--max-calls` runtime calls in flight (shim
//!   creates and starts, `kill`, `delete`); a request that needs one while
//!   all are busy waits its turn in a bounded queue;
//! - the exit handler: EOF on a shim's `exit` fifo;
//! - the signal loop: a signalfd (SIGCHLD to reap the runtime calls the
//!   daemon made, SIGTERM/SIGINT to stop).
//!
//! Tables are sized at start-up and never grow; a request that finds one
//! full gets `ERR full`.

pub mod conn;
pub mod container;
pub mod control_tty;
pub mod lifecycle;
pub mod metrics;
pub mod notify;
pub mod recovery;
pub mod runtime;
pub mod shim;

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fd::OwnedFd as RawOwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Instant;

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::fs::inotify;
use rustix::io::Errno;
use rustix::process::WaitOptions;

use crate::config::Config;
use crate::server::conn::{Busy, Client, Line, Role, MAX_PENDING_OUTPUT};
use crate::server::container::{Container, Exec, ProcRef};
use crate::server::metrics::{CallVerb, Metrics};
use crate::slab::{Ref, Slab};
use crate::store::events::EventLog;
use crate::store::statedir::StateDir;
use crate::sys;
use crate::tasks::Creation;
use crate::wire::proto::{split_words, Code, Error, Reply};
use crate::wire::request::Request;

/// Where an epoll event comes from; packed into the event's 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Listener,
    Signals,
    Client(Ref),
    Startup(Ref),
    Reply(Ref),
    Exit(Ref),
    /// A cgroup v1 OOM eventfd.
    Oom(Ref),
    /// The daemon's inotify descriptor (cgroup v2 `memory.events`).
    Inotify,
    /// An exec process's shim: its startup pipe, `reply`, `exit`.
    ExecStartup(Ref),
    ExecReply(Ref),
    ExecExit(Ref),
}

impl Source {
    fn token(self) -> u64 {
        let (kind, r) = match self {
            Source::Listener => (1, None),
            Source::Signals => (2, None),
            Source::Client(r) => (3, Some(r)),
            Source::Startup(r) => (4, Some(r)),
            Source::Reply(r) => (5, Some(r)),
            Source::Exit(r) => (6, Some(r)),
            Source::Oom(r) => (7, Some(r)),
            Source::Inotify => (8, None),
            Source::ExecStartup(r) => (9, Some(r)),
            Source::ExecReply(r) => (10, Some(r)),
            Source::ExecExit(r) => (11, Some(r)),
        };
        let r = r.map_or(0, |r| u64::from(r.index) << 32 | u64::from(r.generation));
        kind << 56 | r
    }

    fn from_token(t: u64) -> Option<Source> {
        let r = Ref {
            index: ((t >> 32) & 0x00ff_ffff) as u32,
            generation: t as u32,
        };
        Some(match t >> 56 {
            1 => Source::Listener,
            2 => Source::Signals,
            3 => Source::Client(r),
            4 => Source::Startup(r),
            5 => Source::Reply(r),
            6 => Source::Exit(r),
            7 => Source::Oom(r),
            8 => Source::Inotify,
            9 => Source::ExecStartup(r),
            10 => Source::ExecReply(r),
            11 => Source::ExecExit(r),
            _ => return None,
        })
    }
}

/// How long the control tty stays closed after it went away or could not
/// be opened.
const TTY_REOPEN: std::time::Duration = std::time::Duration::from_secs(1);

/// The serial line the protocol is also served on (`--control-tty`).
pub(crate) struct ControlTty {
    pub path: std::path::PathBuf,
    /// Its client, while it is open.
    pub client: Option<Ref>,
    /// When to try opening it again.
    pub reopen_at: Option<std::time::Instant>,
    /// Why it last could not be opened, so that is said once.
    pub last_error: Option<String>,
}

/// A runtime process the daemon started and waits for.
pub(crate) struct Call {
    pub pid: u32,
    pub container: Ref,
    pub kind: CallKind,
    /// The runtime's log, for its message if the call fails.
    pub log: std::path::PathBuf,
    pub since: std::time::Instant,
    /// Killed for taking longer than `--start-timeout`.
    pub timed_out: bool,
    /// What the call made, removed if it fails (a partial checkpoint).
    pub cleanup: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// `kill ID SIGNAL`; the client gets the answer.
    Kill { client: Ref },
    /// `delete --force ID`, for `delete` and to clean up after a failed
    /// create; the container's `op` says which.
    Delete,
    /// `pause`, `resume`, `update`, `checkpoint`: the client gets the
    /// answer; success has the verb's effect on the container.
    Op { client: Ref, verb: CallVerb },
    /// `delete --force ID` before the restart policy makes it again.
    Restart,
}

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

pub struct Daemon {
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
    pub(crate) autostarts: Vec<crate::tasks::Auto>,
    pub(crate) tty: Option<ControlTty>,
    stopping: bool,
    /// The listener is in the epoll set (there is room for a client).
    listening: bool,
    own_uid: u32,
}

impl Daemon {
    /// Sets up everything the loop needs. Signals are blocked first, so no
    /// child is ever started with them unblocked in the daemon.
    pub fn new(cfg: Config) -> Result<Daemon, String> {
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
        let listener = bind(&cfg.socket)?;
        let epoll =
            epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| format!("epoll: {e}"))?;
        let d = Daemon {
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

    /// Serves until SIGTERM or SIGINT; then removes the socket. Containers
    /// and their shims keep running.
    pub fn run(mut self) -> Result<(), String> {
        let mut events = [epoll::Event {
            flags: EventFlags::empty(),
            data: EventData::new_u64(0),
        }; 64];
        while !self.stopping {
            // Wake at the next deadline, rounded up to a whole millisecond
            // (epoll's resolution), so the wait never ends just too early.
            let timeout = self.next_deadline().map(|at| {
                let wait = at.saturating_duration_since(std::time::Instant::now())
                    + std::time::Duration::from_nanos(999_999);
                rustix::time::Timespec {
                    tv_sec: wait.as_secs() as i64,
                    tv_nsec: i64::from(wait.subsec_millis()) * 1_000_000,
                }
            });
            let n = match epoll::wait(&self.epoll, &mut events, timeout.as_ref()) {
                Ok(n) => n,
                Err(Errno::INTR) => continue,
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
        }
        self.shut_down();
        Ok(())
    }

    /// Answers every request received and not yet answered, read or still
    /// unread, with `ERR busy`, so no client is left without an answer or
    /// finds its connection reset.
    fn shut_down(&mut self) {
        let _ = std::fs::remove_file(&self.cfg.socket);
        for r in self.clients.refs_where(|_| true) {
            if !self.read_client(r) {
                continue;
            }
            let Some(c) = self.clients.get_mut(r) else {
                continue;
            };
            let waiting = !c.idle() || c.input.next_line().is_some();
            c.busy = None;
            c.stalled = None;
            c.subscription = None;
            c.follow = None;
            if waiting {
                let e = Error::new(Code::Busy, "daemon is stopping; containers keep running");
                self.send(r, Outcome::err(e));
            }
        }
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

    /// Watches a process's shim: its startup pipe, `reply` and `exit`, as
    /// the three sources given.
    pub(crate) fn watch_process(
        &self,
        p: &crate::server::container::Process,
        [startup, reply, exit]: [Source; 3],
    ) -> io::Result<()> {
        let flags = EventFlags::IN;
        if let Some(s) = &p.startup {
            self.watch(&s.file, startup, flags)?;
        }
        if let Some(s) = &p.reply {
            self.watch(&s.file, reply, flags)?;
        }
        if let Some(f) = &p.exit {
            self.watch(f, exit, flags)?;
        }
        Ok(())
    }

    fn on_event(&mut self, source: Source, flags: EventFlags) {
        match source {
            Source::Listener => self.accept_clients(),
            Source::Signals => self.on_signals(),
            Source::Client(r) => self.on_client(r, flags),
            Source::Startup(r) => self.on_startup(r),
            Source::Reply(r) => self.on_reply(r),
            Source::Exit(r) => self.on_exit_fifo(r),
            Source::Oom(r) => self.check_oom(r),
            Source::Inotify => self.on_inotify(),
            Source::ExecStartup(r) => self.on_exec_startup(r),
            Source::ExecReply(r) => self.on_exec_reply(r),
            Source::ExecExit(r) => self.on_exec_exit(r),
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

    /// Reaps every exited child (wait4(-1)): runtime calls are finished
    /// here; shims' exits are seen on their `exit` fifos instead, and
    /// orphans that came to the daemon as subreaper are only reaped.
    fn reap(&mut self) {
        while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
            let code = status
                .exit_status()
                .or(status.terminating_signal().map(|s| 128 + s))
                .unwrap_or(255);
            let pid = pid.as_raw_nonzero().get() as u32;
            if let Some(call) = self.calls.refs_where(|c| c.pid == pid).first() {
                if let Some(call) = self.calls.remove(*call) {
                    self.call_done(call, code);
                }
            }
        }
    }

    // ---- clients ----

    /// Takes new connections while there is room for them: a request
    /// place that is free, or one a quiet client gives up (the one idle
    /// longest is closed, and told why). What a new client sent with its
    /// connect is read and run at once, so it is answered before it could
    /// be the one to give way.
    fn accept_clients(&mut self) {
        loop {
            let full = self.count(Role::Request) >= self.cfg.max_clients;
            if full && self.longest_quiet().is_none() {
                return self.listen_while_room();
            }
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    return self.refuse_for_lack_of_descriptors();
                }
                Err(_) => return,
            };
            if let Some(refusal) = self.refusal(&stream) {
                refuse_connection(&stream, &refusal);
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if full {
                if let Some(quiet) = self.longest_quiet() {
                    self.make_room(quiet);
                }
            }
            let stream = std::fs::File::from(OwnedFd::from(stream));
            let r = match self.clients.insert(Client::new(stream, false)) {
                Ok(r) => r,
                Err(c) => {
                    let e = Error::new(Code::Busy, "the client table is full; try again");
                    let stream = UnixStream::from(OwnedFd::from(c.stream));
                    refuse_connection(&stream, &e);
                    continue;
                }
            };
            let Some(c) = self.clients.get_mut(r) else {
                continue;
            };
            c.interest = c.wanted_interest();
            let token = EventData::new_u64(Source::Client(r).token());
            if epoll::add(&self.epoll, sys::fd(&c.stream), token, c.interest).is_err() {
                self.clients.remove(r);
                continue;
            }
            self.on_client(r, EventFlags::IN);
        }
    }

    /// How many clients hold a place of this kind.
    pub(crate) fn count(&self, role: Role) -> usize {
        self.clients
            .iter()
            .filter(|(_, c)| c.role() == role)
            .count()
    }

    /// The quiet client (connected to ask, nothing asked, nothing owed)
    /// idle longest.
    fn longest_quiet(&self) -> Option<Ref> {
        self.clients
            .iter()
            .filter(|(_, c)| c.role() == Role::Request && c.quiet() && !c.hung_up)
            .min_by_key(|(_, c)| c.last_active)
            .map(|(r, _)| r)
    }

    /// Closes a quiet client to make room for a new one, telling it why.
    fn make_room(&mut self, r: Ref) {
        let n = self.cfg.max_clients;
        self.metrics.clients_made_room += 1;
        self.close_quietly(
            r,
            &Error::new(
                Code::Busy,
                format!("closed to make room for a new client: {n} were connected (--max-clients) and this one was idle longest"),
            ),
        );
    }

    /// Closes a client that asked nothing and is owed nothing, with a last
    /// line saying why (best effort: it may not be reading).
    pub(crate) fn close_quietly(&mut self, r: Ref, why: &Error) {
        if let Some(c) = self.clients.get_mut(r) {
            let mut reply = Reply::new();
            reply.err(why);
            c.output.extend_from_slice(reply.as_bytes());
            let _ = c.flush();
        }
        self.close_client(r);
    }

    /// A client is about to follow (`wait`, `events`, `logs follow`): is
    /// there a follower's place for it? The control tty always has its own.
    pub(crate) fn room_to_follow(&mut self, client: Ref) -> Result<(), Error> {
        let tty = self.clients.get(client).is_some_and(|c| c.tty);
        if tty || self.count(Role::Follower) < self.cfg.max_followers {
            return Ok(());
        }
        self.metrics.followers_refused += 1;
        Err(Error::new(
            Code::Full,
            format!(
                "{} clients are waiting or following already (--max-followers); wait, events and logs follow each take one",
                self.cfg.max_followers
            ),
        ))
    }

    /// Out of descriptors: give the spare one up to accept the client and
    /// tell it so, then take the spare back.
    fn refuse_for_lack_of_descriptors(&mut self) {
        self.spare = None;
        if let Ok((stream, _)) = self.listener.accept() {
            let e = Error::new(Code::Busy, "nanoctrd is out of file descriptors; try again");
            refuse_connection(&stream, &e);
        }
        self.spare = std::fs::File::open("/dev/null").ok();
    }

    /// Why a new connection is turned away, if it is.
    fn refusal(&self, stream: &UnixStream) -> Option<Error> {
        let uid = match rustix::net::sockopt::socket_peercred(sys::fd(stream)) {
            Ok(cred) => cred.uid.as_raw(),
            Err(_) => return Some(Error::new(Code::Denied, "cannot read peer credentials")),
        };
        if uid != 0 && uid != self.own_uid {
            return Some(Error::new(
                Code::Denied,
                format!("uid {uid} may not use nanoctrd"),
            ));
        }
        None
    }

    /// Watches the listener only while a new client could be taken: a
    /// request place is free, or a quiet client would give one up. When
    /// every place is busy with a request, new connections wait in the
    /// kernel's listen backlog until one is answered: nobody is turned
    /// away, and a full table cannot spin the loop.
    pub(crate) fn listen_while_room(&mut self) {
        let want =
            self.count(Role::Request) < self.cfg.max_clients || self.longest_quiet().is_some();
        if want == self.listening {
            return;
        }
        let flags = if want {
            EventFlags::IN
        } else {
            EventFlags::empty()
        };
        let token = EventData::new_u64(Source::Listener.token());
        if epoll::modify(&self.epoll, sys::fd(&self.listener), token, flags).is_ok() {
            self.listening = want;
        }
    }

    fn on_client(&mut self, r: Ref, flags: EventFlags) {
        let Some(c) = self.clients.get_mut(r) else {
            return;
        };
        if c.tty && flags.intersects(EventFlags::ERR | EventFlags::HUP) {
            // The line is gone (hung up, or the device went away): it is
            // opened again after a while.
            return self.close_client(r);
        }
        if flags.intersects(EventFlags::ERR | EventFlags::HUP) {
            // Gone for good. Requests it sent before leaving still run (a
            // request that arrived is never lost); waiting on its behalf
            // is pointless, and the socket, which would report HUP
            // forever, is no longer watched.
            c.hung_up = true;
            if matches!(c.busy, Some(Busy::Wait(_) | Busy::Events | Busy::Logs)) {
                c.busy = None;
                c.subscription = None;
                c.follow = None;
            }
            let _ = epoll::delete(&self.epoll, sys::fd(&c.stream));
        } else if flags.contains(EventFlags::OUT) {
            if c.subscription.is_some() {
                return self.pump(r);
            }
            if c.flush().is_err() {
                return self.close_client(r);
            }
        }
        if flags.contains(EventFlags::IN) && !self.read_client(r) {
            return self.close_client(r);
        }
        self.run_lines(r);
    }

    /// Reads once into the client's line buffer. False on a read error;
    /// EOF marks the client as having left.
    fn read_client(&mut self, r: Ref) -> bool {
        let Some(c) = self.clients.get_mut(r) else {
            return false;
        };
        if !c.idle() || c.eof {
            return true;
        }
        match c.input.fill(&mut c.stream) {
            Ok(0) if !c.input.is_full() && !c.tty => c.eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.eof |= c.hung_up,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
        true
    }

    /// Runs the client's complete request lines until one has to wait.
    fn run_lines(&mut self, r: Ref) {
        loop {
            let Some(c) = self.clients.get_mut(r) else {
                return;
            };
            if !c.idle() {
                break;
            }
            let Some(line) = c
                .input
                .next_line()
                .inspect(|_| c.last_active = Instant::now())
            else {
                // A client that hung up is no longer watched: read on here
                // until what it sent is used up (or the read fails: a peer
                // that left unread data behind resets the connection).
                if c.hung_up && !c.eof {
                    if !self.read_client(r) {
                        return self.close_client(r);
                    }
                    continue;
                }
                break;
            };

            let outcome = match line {
                Line::TooLong => Outcome::err(Error::new(
                    Code::TooLong,
                    format!("request longer than {} bytes", crate::wire::proto::MAX_LINE),
                )),
                Line::Complete(line) => match split_words(&line) {
                    Ok(words) if words.is_empty() => continue,
                    Ok(words) => match Request::parse(&words) {
                        Ok(req) => self.execute(r, req),
                        Err(e) => Outcome::err(e),
                    },
                    Err(e) => Outcome::err(e),
                },
            };
            self.send(r, outcome);
        }
        self.settle(r);
    }

    /// Runs a request, or queues it when it needs a runtime-call slot and
    /// none is free.
    fn execute(&mut self, client: Ref, req: Request) -> Outcome {
        let outcome = match &req {
            Request::Hello => Ok(self.hello()),
            Request::Version => Ok(self.version()),
            Request::Help => Ok(self.help()),
            Request::List => Ok(self.list()),
            Request::State(id) => self.state(id),
            Request::Create(spec) => self.create(Some(client), spec, &Creation::Create),
            Request::Run(spec) => self.create(Some(client), spec, &Creation::Run),
            Request::Start(id) => self.start(client, id),
            Request::Exec(spec) => self.exec(client, spec),
            Request::Wait { id, proc } => self.wait(client, id, proc),
            Request::Kill { id, signal, target } => self.kill(client, id, *signal, target),
            Request::Pause(id) => self.pause(client, id, true),
            Request::Resume(id) => self.pause(client, id, false),
            Request::Update { id, resources } => self.update(client, id, resources),
            Request::Stats(id) => self.stats(id),
            Request::Ps(id) => self.ps(id),
            Request::Checkpoint {
                id,
                name,
                exit,
                dir,
            } => self.checkpoint(client, id, name, *exit, dir.as_deref()),
            Request::Restore { spec, name, dir } => {
                self.restore_checkpoint(client, spec, name, dir.as_deref())
            }
            Request::Checkpoints { id, dir } => self.checkpoints(id, dir.as_deref()),
            Request::CheckpointDelete { id, name, dir } => {
                self.checkpoint_delete(id, name, dir.as_deref())
            }
            Request::Delete { id, force } => self.delete(client, id, *force),
            Request::Events(filter) => self.subscribe(client, filter),
            Request::Metrics => Ok(self.metrics_text()),
            Request::Attach { id, proc } => self.attach(id, proc),
            Request::Resize {
                id,
                proc,
                cols,
                rows,
            } => self.resize(id, proc, *cols, *rows),
            Request::CloseStdin { id, proc } => self.close_stdin(id, proc),
            Request::Logs {
                id,
                proc,
                tail,
                follow,
            } => self.logs(client, id, proc, *tail, *follow),
        }
        .unwrap_or_else(Outcome::err);
        if let Outcome::Stall = outcome {
            if let Some(c) = self.clients.get_mut(client) {
                c.stalled = Some(req);
                self.stalled.push_back(client);
            }
        }
        outcome
    }

    /// Queues an answer; `Pending` marks the client busy instead.
    fn send(&mut self, r: Ref, outcome: Outcome) {
        let Some(c) = self.clients.get_mut(r) else {
            return;
        };
        match outcome {
            Outcome::Reply(_) if c.hung_up => {}
            Outcome::Reply(reply) => {
                c.output.extend_from_slice(reply.as_bytes());
                if c.flush().is_err() || c.output.len() > MAX_PENDING_OUTPUT {
                    self.close_client(r);
                }
            }
            Outcome::Pending => {
                if c.busy.is_none() {
                    c.busy = Some(Busy::Op);
                }
            }
            Outcome::Stall => {}
        }
    }

    /// Answers a client that was waiting; its next lines run after the
    /// current event is handled.
    pub(crate) fn answer(&mut self, client: Option<Ref>, outcome: Outcome) {
        let Some(r) = client else {
            return;
        };
        let Some(c) = self.clients.get_mut(r) else {
            return;
        };
        c.busy = None;
        c.last_active = Instant::now();
        self.send(r, outcome);
        self.ready.push(r);
    }

    /// Marks a client as waiting for a process's exit.
    pub(crate) fn await_exit(&mut self, client: Ref, p: ProcRef) {
        if let Some(c) = self.clients.get_mut(client) {
            c.busy = Some(Busy::Wait(p));
        }
    }

    /// Clients waiting for a process to exit.
    pub(crate) fn waiters(&self, p: ProcRef) -> Vec<Ref> {
        self.clients.refs_where(|c| c.busy == Some(Busy::Wait(p)))
    }

    /// Runs answered clients' further lines, then stalled requests while
    /// slots are free.
    fn run_ready(&mut self) {
        while let Some(r) = self.ready.pop() {
            self.run_lines(r);
        }
        while self.slot_free() {
            let Some(r) = self.stalled.pop_front() else {
                break;
            };
            let Some(req) = self.clients.get_mut(r).and_then(|c| c.stalled.take()) else {
                continue;
            };
            let outcome = self.execute(r, req);
            self.send(r, outcome);
            self.run_lines(r);
        }
    }

    /// Brings the client's epoll interest up to date, or closes it when it
    /// is finished.
    pub(crate) fn settle(&mut self, r: Ref) {
        let Some(c) = self.clients.get_mut(r) else {
            return;
        };
        if c.finished() {
            return self.close_client(r);
        }
        let want = c.wanted_interest();
        if want == c.interest || c.hung_up {
            return;
        }
        let token = EventData::new_u64(Source::Client(r).token());
        match epoll::modify(&self.epoll, sys::fd(&c.stream), token, want) {
            Ok(()) => c.interest = want,
            Err(_) => self.close_client(r),
        }
    }

    pub(crate) fn close_client(&mut self, r: Ref) {
        if let Some(c) = self.clients.remove(r) {
            let _ = epoll::delete(&self.epoll, sys::fd(&c.stream));
            self.stalled.retain(|&s| s != r);
            self.listen_while_room();
            if c.tty {
                if let Some(t) = &mut self.tty {
                    t.client = None;
                    t.reopen_at = Some(std::time::Instant::now() + TTY_REOPEN);
                }
            }
        }
    }

    // ---- the control tty ----

    /// Opens the control tty and serves it as a client; when that fails,
    /// tries again after [`TTY_REOPEN`], saying so once per new reason.
    pub(crate) fn open_tty(&mut self) {
        let Some(t) = &mut self.tty else {
            return;
        };
        t.reopen_at = None;
        let fail = |t: &mut ControlTty, why: String| {
            if t.last_error.as_deref() != Some(why.as_str()) {
                crate::logger::warn(&format!("control tty: {why}; trying again every second"));
                t.last_error = Some(why);
            }
            t.reopen_at = Some(std::time::Instant::now() + TTY_REOPEN);
        };
        let fd = match crate::server::control_tty::open_control_tty(&t.path) {
            Ok(fd) => fd,
            Err(e) => return fail(t, e.to_string()),
        };
        let client = Client::new(std::fs::File::from(fd), true);
        let Ok(r) = self.clients.insert(client) else {
            let t = self.tty.as_mut().expect("checked above");
            return fail(t, "the client table is full".into());
        };
        let Some(c) = self.clients.get_mut(r) else {
            return;
        };
        c.interest = c.wanted_interest();
        let token = EventData::new_u64(Source::Client(r).token());
        let added = epoll::add(&self.epoll, sys::fd(&c.stream), token, c.interest);
        let t = self.tty.as_mut().expect("checked above");
        match added {
            Ok(()) => {
                if t.last_error.take().is_some() {
                    crate::logger::info(&format!("control tty {} is back", t.path.display()));
                }
                t.client = Some(r);
            }
            Err(e) => {
                self.clients.remove(r);
                let t = self.tty.as_mut().expect("checked above");
                fail(t, format!("epoll: {e}"));
            }
        }
    }

    /// A runtime call may start now. Calls in flight are the daemon's own
    /// runtime processes and the shims' creates and starts; the count is
    /// derived from the tables, so it cannot drift from them.
    pub(crate) fn slot_free(&self) -> bool {
        let shim_calls = self
            .containers
            .iter()
            .filter(|(_, c)| c.op.as_ref().is_some_and(|op| op.kind.uses_slot()))
            .count();
        let exec_calls = self
            .execs
            .iter()
            .filter(|(_, e)| e.status == crate::server::lifecycle::Status::Creating)
            .count();
        self.calls.len() + shim_calls + exec_calls < self.cfg.max_calls
    }

    /// The container with this id, if any.
    pub(crate) fn find(&self, id: &str) -> Option<Ref> {
        self.containers
            .iter()
            .find(|(_, c)| c.id() == id)
            .map(|(r, _)| r)
    }
}

/// Answers a connection that is turned away, without blocking, and drops
/// it.
fn refuse_connection(stream: &UnixStream, refusal: &Error) {
    let mut r = Reply::new();
    r.err(refusal);
    let _ = stream
        .set_nonblocking(true)
        .and_then(|()| io::Write::write_all(&mut &*stream, r.as_bytes()));
}

/// Is a daemon answering on `path`? A connect alone can succeed on the
/// socket of a dead daemon: a child it was starting when it was killed
/// holds the listening socket until that child's exec. Only an answer to
/// `hello` counts.
fn serving(path: &Path) -> bool {
    use std::io::{BufRead, BufReader, Write};
    let Ok(mut s) = UnixStream::connect(path) else {
        return false;
    };
    let limit = Some(std::time::Duration::from_secs(2));
    let _ = s
        .set_read_timeout(limit)
        .and_then(|()| s.set_write_timeout(limit));
    let mut answer = String::new();
    s.write_all(b"hello\n").is_ok()
        && BufReader::new(&s).read_line(&mut answer).is_ok()
        && answer.starts_with("OK nanoctr")
}

/// Binds the socket with mode 0600. A stale socket (nobody accepting) is
/// replaced; a live one or any other file is left alone.
fn bind(path: &Path) -> Result<UnixListener, String> {
    let shown = path.display();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if serving(path) {
                return Err(format!("{shown}: another nanoctrd is serving it"));
            }
            std::fs::remove_file(path).map_err(|e| format!("{shown}: {e}"))?;
        }
        Ok(_) => return Err(format!("{shown} exists and is not a socket")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{shown}: {e}")),
    }
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound.map_err(|e| format!("bind {shown}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let r = Ref {
            index: 0x00ab_cdef,
            generation: 0xdead_beef,
        };
        for s in [
            Source::Listener,
            Source::Signals,
            Source::Client(r),
            Source::Startup(r),
            Source::Reply(r),
            Source::Exit(r),
            Source::Oom(r),
            Source::Inotify,
            Source::ExecStartup(r),
            Source::ExecReply(r),
            Source::ExecExit(r),
        ] {
            assert_eq!(Source::from_token(s.token()), Some(s));
        }
        assert_eq!(Source::from_token(0), None);
    }
}
