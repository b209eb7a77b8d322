//! For the unit tests: a recording fake of [`Effects`], which plays the
//! shims' and the runtime's part, and a rig that runs a daemon on it in a
//! directory of its own and talks to it through its socket.
//!
//! The fake does what a test cannot ask of a real shim or runtime on
//! demand (fail at a given step, never answer, vanish) and nothing else:
//! the daemon's tables, sockets, epoll set, state dir and event log are
//! the real ones. State files are written for real (recovery reads them
//! back), and a write can be made to fail as a full disk does.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nanoctr_shim::contract::{proc_dir, Name};
use rustix::pipe::{pipe_with, PipeFlags};

use crate::server::effects::{Effects, Target};
use crate::server::recovery::Recovered;
use crate::server::runtime::Runtime;
use crate::server::shim::{ShimOptions, Spawned};
use crate::server::Daemon;
use crate::store::statedir::{open_fifo_reader, write_atomic};
use crate::sys;

/// One thing the daemon asked for, as the fake recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// A shim started in this process dir, to make its process this way
    /// (`Create`, `Run`, `Exec(..)`, `Restore(..)`).
    Shim {
        dir: PathBuf,
        make: String,
    },
    /// A runtime call started (`delete --force ID`, `kill ID 15`, ...).
    Call {
        pid: u32,
        args: String,
    },
    /// A runtime call run to its end (`state ID`).
    Run {
        args: String,
    },
    /// A state file written whole.
    Write {
        path: PathBuf,
    },
    /// A line written to a shim's fifo.
    Fifo {
        path: PathBuf,
        line: String,
    },
    Signal {
        target: Target,
        signal: i32,
    },
    /// An image rootfs mounted in a container dir.
    Mount {
        dir: PathBuf,
        image: String,
    },
    /// Whatever was mounted in a container dir taken down.
    Unmount {
        dir: PathBuf,
    },
    /// A container attached to a bridge, as `net_attach` got it.
    NetAttach {
        id: String,
    },
    /// A container's network unmade, its address kept or not.
    NetDetach {
        id: String,
        keep_address: bool,
    },
    /// A program started (`nft -f -`, the net hook), with its input.
    Program {
        args: String,
        input: String,
    },
    /// The watchdog opened, its timeout set to this when given.
    WatchdogOpen {
        timeout: Option<u32>,
    },
    /// The watchdog petted.
    Pet,
    /// The watchdog's magic close.
    MagicClose,
}

/// An effect that fails the next time it is asked for, as the system can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The shim cannot be started (EAGAIN, as fork does when out of
    /// processes).
    Shim,
    /// The runtime cannot be started (ENOENT).
    Call,
    /// The disk is full (ENOSPC).
    Write,
    /// No shim reads the fifo (ENXIO).
    Fifo,
    /// The image cannot be mounted (EINVAL, as for a corrupt one).
    Mount,
    /// The watchdog cannot be opened (ENOENT).
    Watchdog,
    /// The bridge refuses an attach (EBUSY).
    Net,
}

/// A shim as the fake plays it: the write ends of what the daemon reads.
pub(crate) struct FakeShim {
    pub pid: u32,
    pub dir: PathBuf,
    startup: Option<File>,
    reply: Option<File>,
    exit: Option<File>,
}

impl FakeShim {
    /// A line on the startup pipe (`created 42`, `error ...`).
    pub fn say(&mut self, line: &str) {
        let pipe = self.startup.as_mut().expect("the startup pipe is open");
        pipe.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    /// The runtime made the process: its pid file is written, then the
    /// shim reports `created PID` on its startup pipe.
    pub fn created(&mut self, pid: u32) {
        std::fs::write(self.dir.join(proc_dir::PID.str), pid.to_string()).unwrap();
        self.say(&format!("created {pid}"));
    }

    /// A line on `reply` (`started`, `error ...`).
    pub fn reply(&mut self, line: &str) {
        let fifo = self.reply.as_mut().expect("reply is open");
        fifo.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    /// The process exited with `code`: the status is written, then the
    /// shim goes.
    pub fn exit(&mut self, code: i32) {
        write_atomic(
            &self.dir.join(proc_dir::EXIT_STATUS.str),
            format!("{code}\n").as_bytes(),
        )
        .unwrap();
        self.vanish();
    }

    /// The shim goes without a word (killed, crashed).
    pub fn vanish(&mut self) {
        self.startup = None;
        self.reply = None;
        self.exit = None;
    }
}

/// The recording fake.
#[derive(Default)]
pub(crate) struct Fake {
    /// Everything asked for, in order.
    pub done: Vec<Effect>,
    /// The shims started, in order.
    pub shims: Vec<FakeShim>,
    /// What `run_runtime` answers, by its arguments (`state ID`); `None`
    /// (it could not run) for anything not here.
    pub answers: Vec<(String, (i32, Vec<u8>))>,
    /// Effects that fail the next time.
    pub faults: Vec<Fault>,
    /// The timeout the watchdog tells (`None`: it cannot).
    pub watchdog_timeout: Option<u32>,
    next_pid: u32,
}

impl Fake {
    fn pid(&mut self) -> u32 {
        self.next_pid += 1;
        // Far above any real pid (pid_max is at most 2^22), so a pid the
        // fake hands out never names a process of the machine.
        (1 << 30) + self.next_pid
    }

    fn fault(&mut self, f: Fault) -> bool {
        let at = self.faults.iter().position(|&x| x == f);
        at.map(|i| self.faults.remove(i)).is_some()
    }

    /// The runtime calls started, as `verb args...`.
    pub fn calls(&self) -> Vec<(u32, String)> {
        self.done
            .iter()
            .filter_map(|e| match e {
                Effect::Call { pid, args } => Some((*pid, args.clone())),
                _ => None,
            })
            .collect()
    }

    /// The lines written to `control` fifos.
    pub fn control_lines(&self) -> Vec<String> {
        self.done
            .iter()
            .filter_map(|e| match e {
                Effect::Fifo { line, .. } => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn shim(&mut self) -> &mut FakeShim {
        self.shims.last_mut().expect("a shim was started")
    }
}

impl Effects for Fake {
    fn spawn_shim(
        &mut self,
        _shim: &Path,
        proc: &Path,
        how: &ShimOptions<'_>,
    ) -> io::Result<Spawned> {
        self.done.push(Effect::Shim {
            dir: proc.to_path_buf(),
            make: format!("{:?}", how.make),
        });
        if self.fault(Fault::Shim) {
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        }
        // The daemon's ends first, as a real spawn opens them, then the
        // shim's.
        let exit = open_fifo_reader(&proc.join(proc_dir::EXIT.str))?;
        let reply = open_fifo_reader(&proc.join(proc_dir::REPLY.str))?;
        let writer = |name: Name| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(proc.join(name.str))
        };
        let (read, write) =
            pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).map_err(sys::io_error)?;
        let pid = self.pid();
        self.shims.push(FakeShim {
            pid,
            dir: proc.to_path_buf(),
            startup: Some(File::from(sys::own(write))),
            reply: Some(writer(proc_dir::REPLY)?),
            exit: Some(writer(proc_dir::EXIT)?),
        });
        Ok(Spawned {
            pid,
            startup: File::from(sys::own(read)),
            exit,
            reply,
        })
    }

    fn spawn_runtime(&mut self, _: &Runtime, _: &Path, args: &[&str]) -> io::Result<u32> {
        let pid = self.pid();
        let args = args.join(" ");
        self.done.push(Effect::Call { pid, args });
        if self.fault(Fault::Call) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        Ok(pid)
    }

    fn run_runtime(
        &mut self,
        _: &Runtime,
        _: &Path,
        args: &[&str],
        _: Duration,
    ) -> Option<(i32, Vec<u8>)> {
        let args = args.join(" ");
        self.done.push(Effect::Run { args: args.clone() });
        let answer = self.answers.iter().find(|(a, _)| *a == args);
        answer.map(|(_, out)| out.clone())
    }

    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.done.push(Effect::Write {
            path: path.to_path_buf(),
        });
        if self.fault(Fault::Write) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        write_atomic(path, bytes)
    }

    fn write_fifo(&mut self, path: &Path, line: &[u8]) -> io::Result<()> {
        self.done.push(Effect::Fifo {
            path: path.to_path_buf(),
            line: String::from_utf8_lossy(line).trim_end().to_string(),
        });
        if self.fault(Fault::Fifo) {
            return Err(io::Error::from_raw_os_error(libc::ENXIO));
        }
        Ok(())
    }

    fn signal(&mut self, target: Target, signal: rustix::process::Signal) {
        self.done.push(Effect::Signal {
            target,
            signal: signal.as_raw(),
        });
    }

    fn reap(&mut self) -> Option<(u32, i32)> {
        // The fake's calls end when a test says so (`Rig::call_ends`);
        // the test process's own children are not the daemon's to reap.
        None
    }

    fn mount_rootfs(
        &mut self,
        dir: &Path,
        image: &crate::rootfs::Image,
        _: &crate::wire::overlay::Overlay,
    ) -> io::Result<()> {
        self.done.push(Effect::Mount {
            dir: dir.to_path_buf(),
            image: image.word(),
        });
        if self.fault(Fault::Mount) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(())
    }

    fn unmount_rootfs(&mut self, dir: &Path) -> io::Result<()> {
        self.done.push(Effect::Unmount {
            dir: dir.to_path_buf(),
        });
        Ok(())
    }

    /// Plays the kernel's part with an empty file for the namespace; the
    /// addresses are allocated for real, in the test's dir.
    fn net_attach(
        &mut self,
        req: &crate::server::effects::NetRequest<'_>,
    ) -> Result<crate::net::bridge::Attached, crate::net::bridge::Error> {
        use crate::net::bridge::{host_veth_name, Attached, Bridge, Error};
        self.done.push(Effect::NetAttach { id: req.id.into() });
        let b = Bridge::open(req.bridge, req.subnet, req.ipam)?;
        if self.fault(Fault::Net) {
            let e = crate::net::netlink::Cause::Os(io::Error::from_raw_os_error(libc::EBUSY));
            return Err(Error::Netlink(crate::net::netlink::Error::new(
                "add veth", e,
            )));
        }
        let lease = match req.ip {
            Some(ip) => b.ipam().pin(req.id, ip)?,
            None => b.ipam().allocate(req.id)?,
        };
        std::fs::write(req.netns, b"").map_err(|err| {
            Error::Ipam(crate::net::ipam::Error::Io {
                path: req.netns.into(),
                err,
            })
        })?;
        Ok(Attached {
            bridge: req.bridge.into(),
            host_veth: host_veth_name(req.id, 0),
            ip: lease.ip,
            prefix: req.subnet.prefix(),
            gateway: req.subnet.gateway(),
        })
    }

    fn net_detach(
        &mut self,
        req: &crate::server::effects::NetRequest<'_>,
        keep_address: bool,
    ) -> Result<(), crate::net::bridge::Error> {
        self.done.push(Effect::NetDetach {
            id: req.id.into(),
            keep_address,
        });
        if !keep_address {
            let b = crate::net::bridge::Bridge::open(req.bridge, req.subnet, req.ipam)?;
            b.ipam().release(req.id)?;
        }
        let _ = std::fs::remove_file(req.netns);
        Ok(())
    }

    fn make_netns(&mut self, path: &Path) -> io::Result<()> {
        if self.fault(Fault::Net) {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        std::fs::write(path, b"")
    }

    fn net_leaked(
        &mut self,
        _: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<crate::net::bridge::Leak>, crate::net::bridge::Error> {
        Ok(Vec::new())
    }

    fn rewrite_file(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.done.push(Effect::Write {
            path: path.to_path_buf(),
        });
        std::fs::write(path, bytes)
    }

    fn spawn_program(
        &mut self,
        program: &Path,
        args: &[&str],
        input: &[u8],
        _: &Path,
    ) -> io::Result<u32> {
        let name = program.file_name().unwrap_or_default().to_string_lossy();
        self.done.push(Effect::Program {
            args: format!("{name} {}", args.join(" ")),
            input: String::from_utf8_lossy(input).into_owned(),
        });
        Ok(self.pid())
    }

    fn open_watchdog(&mut self, _: &Path, timeout: Option<u32>) -> io::Result<(File, Option<u32>)> {
        self.done.push(Effect::WatchdogOpen { timeout });
        if self.fault(Fault::Watchdog) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        // Any file stands for the device: what is done to it is recorded
        // as effects, not written.
        let dev = File::open("/dev/null")?;
        Ok((dev, timeout.or(self.watchdog_timeout)))
    }

    fn pet_watchdog(&mut self, _: &mut File) -> io::Result<()> {
        self.done.push(Effect::Pet);
        Ok(())
    }

    fn close_watchdog(&mut self, _: File) -> io::Result<()> {
        self.done.push(Effect::MagicClose);
        Ok(())
    }
}

/// A daemon on the fake, in a fresh directory, with a bundle and one
/// connection to its socket.
pub(crate) struct Rig {
    pub d: Daemon<Fake>,
    /// What recovery found when this daemon started.
    pub recovered: Recovered,
    pub bundle: PathBuf,
    conn: UnixStream,
    unread: Vec<u8>,
    /// Its daemon's flags beyond the rig's own.
    flags: Vec<String>,
    _gone: Remove,
}

/// Removes the rig's directory when the rig goes.
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Rig {
    /// A daemon over an empty state dir.
    pub fn new(name: &str) -> Rig {
        Rig::with_flags(name, &[], Fake::default())
    }

    /// A daemon over an empty state dir, with more flags, on `fake`.
    pub fn with_flags(name: &str, flags: &[&str], fake: Fake) -> Rig {
        let dir = std::env::temp_dir().join(format!("nanoctr-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("containers.d")).unwrap();
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(
            bundle.join("config.json"),
            br#"{"ociVersion":"1.0.2","process":{"terminal":false,"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"}}"#,
        )
        .unwrap();
        std::fs::write(dir.join("nanoctrd.conf"), b"").unwrap();
        let flags = flags.iter().map(|f| f.to_string()).collect();
        Rig::open(Remove(dir), bundle, fake, flags)
    }

    /// A daemon on `fake` over the state dir in `dir`, recovered, its
    /// watchdog (if any) opened.
    fn open(gone: Remove, bundle: PathBuf, fake: Fake, flags: Vec<String>) -> Rig {
        let dir = gone.0.clone();
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let args: Vec<String> = [
            "--config",
            &s(&dir.join("nanoctrd.conf")),
            "--oom-score-adj",
            "0",
            "--state-dir",
            &s(&dir.join("state")),
            "--socket",
            &s(&dir.join("sock")),
            "--runtime",
            "/bin/true",
            "--shim",
            "/bin/true",
            "--containers-dir",
            &s(&dir.join("containers.d")),
            "--start-timeout",
            "5",
            "--net-dir",
            &s(&dir.join("net")),
        ]
        .iter()
        .map(|a| a.to_string())
        .chain(flags.iter().cloned())
        .collect();
        let parsed = crate::config::flags::Flags::parse(&args).unwrap();
        let cfg = crate::config::Config::load(&parsed).unwrap();
        let mut d = Daemon::with_effects(cfg, fake).unwrap();
        let recovered = d.recover();
        d.start_watchdog().unwrap();
        let conn = UnixStream::connect(dir.join("sock")).unwrap();
        conn.set_nonblocking(true).unwrap();
        Rig {
            d,
            recovered,
            bundle,
            conn,
            unread: Vec::new(),
            flags,
            _gone: gone,
        }
    }

    /// The daemon stops (as if killed: nothing is cleaned up, its shims
    /// live on) and a new one starts over the same state dir and
    /// recovers, on a fake that `prepare` has set up (its answers for the
    /// runtime's `state`).
    pub fn restart(self, prepare: impl FnOnce(&mut Fake)) -> Rig {
        let Rig {
            mut d,
            bundle,
            flags,
            _gone,
            ..
        } = self;
        let old = std::mem::take(&mut d.fx);
        drop(d);
        let mut fake = Fake {
            shims: old.shims,
            next_pid: old.next_pid,
            ..Fake::default()
        };
        prepare(&mut fake);
        Rig::open(_gone, bundle, fake, flags)
    }

    /// Sends a request line.
    pub fn send(&mut self, line: &str) {
        self.conn.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    /// Turns the loop until the answer to the oldest request is in: its
    /// lines, the last `OK ...` or `ERR ...`. Panics if none comes.
    pub fn answer(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        for _ in 0..400 {
            while let Some(at) = self.unread.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.unread.drain(..=at).collect();
                let line = String::from_utf8_lossy(&line[..at]).into_owned();
                let last = line.starts_with("OK") || line.starts_with("ERR");
                lines.push(line);
                if last {
                    return lines;
                }
            }
            self.d.turn(Some(Duration::from_millis(5))).unwrap();
            let mut buf = [0u8; 4096];
            match self.conn.read(&mut buf) {
                Ok(0) => panic!("the daemon closed the connection"),
                Ok(n) => self.unread.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        panic!("no answer; so far {lines:?}");
    }

    /// Whether an answer is waiting, after a few turns of the loop.
    pub fn answered(&mut self) -> bool {
        for _ in 0..5 {
            self.d.turn(Some(Duration::from_millis(1))).unwrap();
        }
        let mut buf = [0u8; 4096];
        if let Ok(n @ 1..) = self.conn.read(&mut buf) {
            self.unread.extend_from_slice(&buf[..n]);
        }
        !self.unread.is_empty()
    }

    /// A request and the last line of its answer.
    pub fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.answer().pop().unwrap()
    }

    /// A field of `state ID [PROC]`'s data line.
    pub fn state(&mut self, id: &str, key: &str) -> String {
        self.send(&format!("state {id}"));
        let lines = self.answer();
        let word = lines[0]
            .split(' ')
            .find_map(|w| w.strip_prefix(&format!("{key}=")).map(str::to_string));
        word.unwrap_or_else(|| panic!("no {key} in {lines:?}"))
    }

    /// Turns the loop a few times, for what needs no answer.
    pub fn settle(&mut self) {
        for _ in 0..5 {
            self.d.turn(Some(Duration::from_millis(1))).unwrap();
        }
    }

    /// Turns the loop until the daemon has started the runtime call
    /// `args` (a restart's delay passes this way), at most 100 settles.
    pub fn settle_until_called(&mut self, args: &str) {
        for _ in 0..100 {
            if self.d.fx.calls().iter().any(|(_, a)| a == args) {
                return;
            }
            self.settle();
        }
    }

    /// A runtime call the daemon started ends with `code`.
    pub fn call_ends(&mut self, args: &str, code: i32) {
        let calls = self.d.fx.calls();
        let pid = calls
            .iter()
            .rev()
            .find(|(_, a)| a == args)
            .unwrap_or_else(|| panic!("no call {args:?} in {calls:?}"))
            .0;
        self.d.child_exited(pid, code);
        self.settle();
    }

    /// `delete ID`: the runtime call it starts ends well, and the answer
    /// is `OK`.
    pub fn deleted(&mut self, id: &str) {
        self.send(&format!("delete {id}"));
        self.settle();
        let (_, args) = self.d.fx.calls().pop().expect("the runtime deletes it");
        self.call_ends(&args, 0);
        assert_eq!(self.answer(), ["OK"]);
    }

    /// The kinds of the events of `id`'s process `proc`, oldest first.
    pub fn events(&self, id: &str, proc: &str) -> Vec<String> {
        let kinds: Vec<String> = self
            .d
            .events
            .history(id, proc)
            .iter()
            .map(|e| e.kind.as_str().to_string())
            .collect();
        kinds
    }

    /// The kinds of every retained event of `id`, in all its lives,
    /// oldest first.
    pub fn all_events(&self, id: &str) -> Vec<String> {
        let filter = crate::wire::event::Filter {
            id: Some(id.to_string()),
            ..Default::default()
        };
        let events = self.d.events.replay(0, &filter);
        events.map(|e| e.kind.as_str().to_string()).collect()
    }

    /// `create ID` with the rig's bundle, the shim reporting `created PID`.
    pub fn created(&mut self, id: &str, pid: u32) {
        self.send(&format!("create {id} {}", self.bundle.display()));
        self.settle();
        self.d.fx.shim().created(pid);
        assert_eq!(self.answer(), [format!("OK pid={pid}")]);
    }

    /// A created container, started.
    pub fn running(&mut self, id: &str, pid: u32) {
        self.created(id, pid);
        self.send(&format!("start {id}"));
        self.settle();
        self.d.fx.shim().reply("started");
        assert_eq!(self.answer(), [format!("OK pid={pid}")]);
    }
}
