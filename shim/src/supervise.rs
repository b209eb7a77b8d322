//! The shim's life: what it holds (`Shim`), setting it up, the runtime
//! call that makes the process, and the loop that supervises it to its
//! exit (signals, control lines, the relay of its stdio).

use core::ffi::CStr;

use nanoctr_shim::contract::args::{parse_u32, ShimArgs};
use nanoctr_shim::contract::control::Control;
use nanoctr_shim::contract::proc_dir;
use nanoctr_shim::contract::reply::Reply;
use nanoctr_shim::contract::MAX_CONTROL_LINE;
use nanoctr_shim::line::LineAssembler;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{self, Mode, OFlags};
use rustix::io::{self, Errno};
use rustix::process::{self, Pid, WaitOptions, WaitStatus};

use crate::failure::{fail, failure, push_errno, sys, Failure, Message, OrFail, EXIT_SYSTEM};
use crate::files::{
    drain, listen, nonblocking, open_stdio, pipe, read_tail, reserve_exit_status, write_atomic,
    write_oom_score_adj,
};
use crate::relay::{self, Relay, MAX_ATTACHERS};
use crate::sys::{self, Command, SignalSet};

/// What the shim holds for its whole life.
pub(crate) struct Shim<'a> {
    args: &'a ShimArgs<'a>,
    /// The signal mask the shim was started with, restored in children.
    mask: SignalSet,
    signals: OwnedFd,
    control: OwnedFd,
    pub(crate) reply: OwnedFd,
    /// Held, never written: EOF on the daemon's end means the shim is gone.
    _exit: OwnedFd,
    /// Children reaped before the shim knew who they were.
    early: Reaped,
    /// Where the runtime sends a terminal's pty master.
    console: Option<OwnedFd>,
    relay: Relay,
}

impl<'a> Shim<'a> {
    pub(crate) fn setup(args: &'a ShimArgs<'a>) -> Self {
        let chld = SignalSet::of(&[libc::SIGCHLD, libc::SIGPIPE]);
        let mask = sys::block_signals(&chld).or_fail("block signals");
        let signals = sys::signalfd(SignalSet::of(&[libc::SIGCHLD])).or_fail("signalfd");
        // Leave the daemon's session and process group: nothing the daemon
        // or its terminal does to its group reaches the shim. Fails only if
        // already a group leader, which is as good.
        let _ = process::setsid();
        // Orphaned container processes are reparented to the shim, so it
        // can reap them and see the container's init exit. Where that is
        // refused (qemu-user has no PR_SET_CHILD_SUBREAPER), they go to
        // init, or to the shim if it is a pid namespace's init: the shim
        // goes on and says so.
        if let Err(e) = process::set_child_subreaper(Some(process::getpid())) {
            let mut l = Message::new();
            l.push(b"nanoctr-shim: not a child subreaper (");
            push_errno(&mut l, e).push(b"): orphaned container processes go to init");
            let _ = io::write(sys::stderr(), l.finish());
        }
        // The kernel should kill containers before their supervisors; the
        // runtime (and so the container) gets 0 back in `Command::spawn`.
        // Best effort: without CAP_SYS_RESOURCE the value cannot go down.
        if let Some(adj) = args.oom_score_adj {
            let _ = write_oom_score_adj(adj);
        }
        // Every line the shim makes is a `Message`: one copy of the code.
        let mut pid = Message::new();
        pid.push_int(process::getpid().as_raw_pid().into());
        write_atomic(proc_dir::SHIM_PID.c, proc_dir::SHIM_PID_TMP.c, &mut pid)
            .or_fail("write shim.pid");
        reserve_exit_status().or_fail("reserve room for exitStatus");
        let fifo = |name: &CStr, flags: OFlags| {
            fs::open(
                name,
                flags | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        // The daemon holds the read end already, so this does not block.
        let exit = fifo(proc_dir::EXIT.c, OFlags::WRONLY).or_fail("open exit fifo");
        // Read-write: the fifo never reports EOF between daemon writes, and
        // `reply` keeps an answer buffered until a (restarted) daemon reads it.
        let control = fifo(proc_dir::CONTROL.c, OFlags::RDWR).or_fail("open control fifo");
        let reply = fifo(proc_dir::REPLY.c, OFlags::RDWR).or_fail("open reply fifo");
        // Clients can attach from the moment the container exists.
        let attach = listen(proc_dir::ATTACH_SOCK.c).or_fail("listen on attach.sock");
        let console = args
            .console
            .filter(|_| args.terminal)
            .map(|path| listen(path).or_fail("listen on the console socket"));
        Shim {
            args,
            mask,
            signals,
            control,
            reply,
            _exit: exit,
            early: Reaped::default(),
            console,
            relay: Relay::new(attach, args.log_size),
        }
    }

    /// `<runtime> [--root R] --log LOG --log-format json VERB`
    fn runtime(&self, verb: &'a CStr) -> Command<'a> {
        let mut cmd = Command::new(self.args.runtime);
        if let Some(root) = self.args.root {
            cmd.arg(c"--root").arg(root);
        }
        cmd.arg(c"--log")
            .arg(self.args.log)
            .arg(c"--log-format")
            .arg(c"json");
        cmd.arg(verb);
        cmd
    }

    /// Runs `<runtime> create` (or `run`, `exec`, `restore`) with the container's
    /// stdio and waits for it. Returns the container's init pid; a failure
    /// ends the shim.
    ///
    /// The stdio: a terminal gets the pty the runtime makes (the runtime's
    /// own stdio is /dev/null). Otherwise stdout and stderr go to the
    /// given paths, or to a pipe the shim reads (into the log and to
    /// attachers); stdin comes from the given path, from a pipe the shim
    /// feeds (`interactive`), or from /dev/null.
    pub(crate) fn create(&mut self) -> Pid {
        let a = self.args;
        let null = || open_stdio(c"/dev/null", OFlags::RDWR);
        let output = OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND;
        let (stdin, stdout, stderr) = if a.terminal {
            let null = null().or_fail("open /dev/null");
            (null.as_fd().try_clone_to_owned().or_fail("dup"), null, None)
        } else {
            let stdin = match (a.stdin, a.interactive) {
                (Some(path), _) => open_stdio(path, OFlags::RDONLY).or_fail("open stdin"),
                (None, true) => {
                    let (read, write) = pipe().or_fail("pipe");
                    self.relay.input = Some(nonblocking(write));
                    read
                }
                (None, false) => null().or_fail("open /dev/null"),
            };
            let stdout = match a.stdout {
                Some(path) => open_stdio(path, output).or_fail("open stdout"),
                None => {
                    let (read, write) = pipe().or_fail("pipe");
                    self.relay.output = Some(nonblocking(read));
                    write
                }
            };
            let stderr = a
                .stderr
                .map(|path| open_stdio(path, output).or_fail("open stderr"));
            (stdin, stdout, stderr)
        };
        let verb = self.verb();
        let mut cmd = self.runtime(verb);
        match (a.exec, a.restore) {
            (Some(process), _) => {
                cmd.arg(c"--detach").arg(c"--process").arg(process);
            }
            (None, Some(image)) => {
                cmd.arg(c"--detach").arg(c"--image-path").arg(image);
            }
            (None, None) if a.run => {
                cmd.arg(c"--detach");
            }
            _ => {}
        }
        if a.exec.is_none() {
            cmd.arg(c"--bundle").arg(a.bundle);
        }
        if let (true, Some(console)) = (a.terminal, a.console) {
            cmd.arg(c"--console-socket").arg(console);
        }
        cmd.arg(c"--pid-file").arg(a.pid_file).arg(a.id);
        let stdio = [
            stdin.as_fd(),
            stdout.as_fd(),
            stderr.as_ref().map_or(stdout.as_fd(), AsFd::as_fd),
        ];
        let child = cmd
            .spawn(stdio, &self.mask, self.args.oom_score_adj.is_some())
            .or_fail("spawn runtime");
        // The container has its ends now; holding them would keep its
        // output from ever reaching end-of-file.
        drop((stdin, stdout, stderr));
        let code = self.wait_for(child).or_fail("wait for runtime");
        if code != 0 {
            fail(Failure::Runtime(verb, code));
        }
        if let Some(console) = self.console.take() {
            let pty = relay::receive_console(&console).or_fail("receive the console");
            let _ = fs::unlink(a.console.unwrap_or(c""));
            let flags = OFlags::NONBLOCK | OFlags::RDWR;
            let _ = fs::fcntl_setfl(&pty, flags);
            self.relay.input = Some(pty.try_clone().or_fail("dup"));
            self.relay.output = Some(pty);
            self.relay.terminal = true;
            self.relay.resize(a.cols, a.rows);
        }
        let mut buf = [0u8; 16];
        let text = read_tail(a.pid_file, &mut buf).or_fail("read pid file");
        match parse_u32(text.trim_ascii()).and_then(|n| Pid::from_raw(n as i32)) {
            Some(pid) => pid,
            None => fail(Failure::Sys("read pid file", Errno::INVAL)),
        }
    }

    /// The runtime verb that makes the process: `create`, or `run`,
    /// `exec`, `restore`, each of which also starts it.
    fn verb(&self) -> &'static CStr {
        let a = self.args;
        match (a.exec, a.restore, a.run) {
            (Some(_), _, _) => c"exec",
            (_, Some(_), _) => c"restore",
            (_, _, true) => c"run",
            _ => c"create",
        }
    }

    /// Blocks until `child` exits; keeps any other exit seen meanwhile.
    fn wait_for(&mut self, child: Pid) -> io::Result<i32> {
        loop {
            match process::wait(WaitOptions::empty()) {
                Ok(Some((pid, status))) if pid == child => return Ok(exit_code(status)),
                Ok(Some((pid, status))) => self.early.push(pid, exit_code(status)),
                Ok(None) => return Err(Errno::CHILD),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The loop: signals, control lines, the container's stdio, attachers,
    /// reaping. Returns the init's exit code once it has exited and no
    /// runtime call of the shim is running.
    pub(crate) fn supervise(&mut self, init: Pid) -> i32 {
        let mut init_code = self.early.take(init);
        let mut start: Option<Pid> = None;
        let mut started = self.args.run || self.args.exec.is_some() || self.args.restore.is_some();
        let mut lines = LineAssembler::<MAX_CONTROL_LINE>::new();
        loop {
            // Reap every child there is: the init, its orphaned children, a
            // runtime call. wait4(-1), since the container is in its own
            // process group and session.
            while let Ok(Some((pid, status))) = process::wait(WaitOptions::NOHANG) {
                let code = exit_code(status);
                if pid == init {
                    init_code = Some(code);
                } else if Some(pid) == start {
                    start = None;
                    self.answer_start(code);
                }
            }
            if let (Some(code), None) = (init_code, start) {
                // What the container wrote last still goes to the log.
                self.relay.drain();
                return code;
            }
            // Which descriptors to wait on, by slot.
            const SIGNALS: usize = 0;
            const CONTROL: usize = 1;
            const OUTPUT: usize = 2;
            const LISTENER: usize = 3;
            const ATTACHER: usize = 4;
            let r = &self.relay;
            let mut watch: [Option<BorrowedFd<'_>>; ATTACHER + MAX_ATTACHERS] =
                [None; ATTACHER + MAX_ATTACHERS];
            watch[SIGNALS] = Some(self.signals.as_fd());
            watch[CONTROL] = Some(self.control.as_fd());
            watch[OUTPUT] = r.output.as_ref().map(AsFd::as_fd);
            watch[LISTENER] = Some(r.listener.as_fd());
            for (i, a) in r.attachers.iter().enumerate() {
                watch[ATTACHER + i] = a.as_ref().map(AsFd::as_fd);
            }
            let ready = match sys::poll(&watch) {
                Ok(ready) => ready,
                Err(Errno::INTR) => continue,
                Err(_) => sys::exit(EXIT_SYSTEM),
            };
            if ready[SIGNALS] {
                drain(self.signals.as_fd());
            }
            // Control lines first: a resize sent before some input must
            // take effect before that input does.
            if ready[CONTROL] {
                let mut buf = [0u8; 128];
                let n = io::read(&self.control, &mut buf).unwrap_or(0);
                let reaped = init_code.is_some();
                lines.feed(&buf[..n], |line| match Control::parse(line) {
                    Control::Start if started => {
                        let mut already = Reply::Error(b"already started").line();
                        let _ = io::write(&self.reply, already.finish());
                    }
                    Control::Start => {
                        started = true;
                        match self.spawn_start() {
                            Ok(pid) => start = Some(pid),
                            Err(f) => {
                                let _ = io::write(&self.reply, failure(f).finish());
                            }
                        }
                    }
                    Control::Resize { cols, rows } => self.relay.resize(cols, rows),
                    Control::CloseStdin => self.relay.close_stdin(),
                    // Reaped already: the pid may be someone else's now.
                    Control::Kill { signal } if !reaped => {
                        let _ = sys::kill(init, signal);
                    }
                    Control::Kill { .. } | Control::Unknown => {}
                });
            }
            if ready[OUTPUT] {
                self.relay.on_output();
            }
            if ready[LISTENER] {
                self.relay.on_listener();
            }
            for i in 0..MAX_ATTACHERS {
                if ready[ATTACHER + i] {
                    self.relay.on_attacher(i);
                }
            }
        }
    }

    fn spawn_start(&self) -> Result<Pid, Failure> {
        let null = fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(sys("open /dev/null"))?;
        let mut cmd = self.runtime(c"start");
        cmd.arg(self.args.id);
        let stdio = [null.as_fd(), null.as_fd(), null.as_fd()];
        cmd.spawn(stdio, &self.mask, self.args.oom_score_adj.is_some())
            .map_err(sys("spawn runtime"))
    }

    fn answer_start(&self, code: i32) {
        if code == 0 {
            let _ = io::write(&self.reply, Reply::Started.line().finish());
        } else {
            let mut l = failure(Failure::Runtime(c"start", code));
            let _ = io::write(&self.reply, l.finish());
        }
    }
}

/// The shell's convention: the exit code, or 128 + the signal that killed it.
fn exit_code(status: WaitStatus) -> i32 {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 255,
    }
}

/// Exits reaped before their pid was known (the init can die between the
/// runtime's exit and the shim reading the pid file).
#[derive(Default)]
struct Reaped {
    slots: [(i32, i32); 4],
    next: usize,
}

impl Reaped {
    fn push(&mut self, pid: Pid, code: i32) {
        self.slots[self.next % self.slots.len()] = (pid.as_raw_pid(), code);
        self.next += 1;
    }

    fn take(&mut self, pid: Pid) -> Option<i32> {
        let slot = self.slots.iter_mut().find(|s| s.0 == pid.as_raw_pid())?;
        slot.0 = 0;
        Some(slot.1)
    }
}
