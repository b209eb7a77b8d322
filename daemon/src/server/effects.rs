//! What the daemon does to the world beyond its own tables, sockets and
//! reads: the one seam between the event loop's decisions and their side
//! effects.
//!
//! Every shim it starts, every runtime call it makes, every state file it
//! writes, every line it writes to a shim's `control` fifo, every signal
//! it sends, every mount it makes or takes down and every touch of the
//! hardware watchdog goes through [`Effects`]. The daemon is generic over it: it
//! runs on [`System`], which does each thing for real; the unit tests run
//! it on a recording fake (`server/fake.rs`) that keeps what was asked and
//! plays the shims' and the runtime's part, so that every task handler and
//! recovery can be driven, failures and all, without root or a runtime.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::net::bridge::{self, Attached, Leak};
use crate::rootfs::Image;
use crate::server::runtime::Runtime;
use crate::server::shim::{ShimOptions, Spawned};
use crate::wire::overlay::Overlay;

/// Who a signal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A process.
    Process(u32),
    /// A process group (a shim and the runtime call it is running).
    Group(u32),
}

/// A container's place on a bridge, as [`Effects::net_attach`] and
/// [`Effects::net_detach`] take it.
#[derive(Debug)]
pub struct NetRequest<'a> {
    pub id: &'a str,
    pub bridge: &'a str,
    pub subnet: crate::net::ipam::Subnet,
    /// The bridge's address allocations.
    pub ipam: &'a Path,
    /// The container's namespace file.
    pub netns: &'a Path,
    /// Its `ip=`.
    pub ip: Option<std::net::Ipv4Addr>,
}

/// The side effects the daemon asks for; see the module comment.
pub trait Effects {
    /// Starts `nanoctr-shim` (at `shim`) in the prepared process dir
    /// `proc`, as `how` says.
    fn spawn_shim(
        &mut self,
        shim: &Path,
        proc: &Path,
        how: &ShimOptions<'_>,
    ) -> io::Result<Spawned>;

    /// Starts `<runtime> ARGS` with its log at `log`; returns its pid. Its
    /// end comes back to [`crate::server::Daemon::child_exited`].
    fn spawn_runtime(&mut self, runtime: &Runtime, log: &Path, args: &[&str]) -> io::Result<u32>;

    /// Runs `<runtime> ARGS` to the end, for at most `limit`: its exit code
    /// and stdout, or `None` if it could not run or ran out of time. Only
    /// before the loop runs (recovery at start-up).
    fn run_runtime(
        &mut self,
        runtime: &Runtime,
        log: &Path,
        args: &[&str],
        limit: Duration,
    ) -> Option<(i32, Vec<u8>)>;

    /// Replaces a state file whole, so that a power cut leaves the old
    /// contents or the new, never a mix.
    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()>;

    /// Writes one line to a shim's fifo; fails at once if no shim reads it.
    fn write_fifo(&mut self, path: &Path, line: &[u8]) -> io::Result<()>;

    /// Sends `signal` to `target`.
    fn signal(&mut self, target: Target, signal: rustix::process::Signal);

    /// Reaps one exited child, if there is one: its pid and exit code
    /// (128 + N for signal N).
    fn reap(&mut self) -> Option<(u32, i32)>;

    /// Mounts `image` as the rootfs of the container whose dir is `dir`,
    /// under `overlay`; nothing if it is mounted already. A failure leaves
    /// nothing mounted.
    fn mount_rootfs(&mut self, dir: &Path, image: &Image, overlay: &Overlay) -> io::Result<()>;

    /// Unmounts whatever is mounted in the container dir `dir`.
    fn unmount_rootfs(&mut self, dir: &Path) -> io::Result<()>;

    /// Makes the container's network namespace file and attaches it to
    /// the bridge (made if missing), with an address; on failure nothing
    /// is left.
    fn net_attach(&mut self, req: &NetRequest<'_>) -> Result<Attached, bridge::Error>;

    /// Deletes what [`Effects::net_attach`] made, whatever of it is left;
    /// the address is kept for the container with `keep_address`.
    fn net_detach(&mut self, req: &NetRequest<'_>, keep_address: bool)
        -> Result<(), bridge::Error>;

    /// A new network namespace, loopback up, bound on the new file `path`
    /// (for a CNI network's plugins to fill).
    fn make_netns(&mut self, path: &Path) -> io::Result<()>;

    /// Deletes nanoctr's veths whose container `known` does not know.
    fn net_leaked(&mut self, known: &dyn Fn(&str) -> bool) -> Result<Vec<Leak>, bridge::Error>;

    /// Writes a file in place, for one bound into a running container
    /// (whose mount holds the inode: a rename would not reach it).
    fn rewrite_file(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()>;

    /// Starts `program ARGS` with `input` on its stdin (at most a pipe's
    /// buffer) and its stderr appended to `log`; its end comes back to
    /// [`crate::server::Daemon::child_exited`].
    fn spawn_program(
        &mut self,
        program: &Path,
        args: &[&str],
        input: &[u8],
        log: &Path,
    ) -> io::Result<u32>;

    /// Opens the watchdog device `path`, which arms it, and sets its
    /// timeout to `timeout` seconds when given: the device, and its timeout
    /// as it tells it (`None`: it cannot, it is no watchdog driver). A
    /// timeout it refuses is an error, the device disarmed and closed.
    fn open_watchdog(
        &mut self,
        path: &Path,
        timeout: Option<u32>,
    ) -> io::Result<(File, Option<u32>)>;

    /// Pets the watchdog: one byte written to it (never `V`).
    fn pet_watchdog(&mut self, dev: &mut File) -> io::Result<()>;

    /// The magic close: `V` written, then the device closed, which
    /// disarms a driver that allows it.
    fn close_watchdog(&mut self, dev: File) -> io::Result<()>;
}

/// The switch of IPv4 forwarding, in the daemon's network namespace.
const FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The effects done for real.
#[derive(Debug, Default)]
pub struct System;

impl Effects for System {
    fn spawn_shim(
        &mut self,
        shim: &Path,
        proc: &Path,
        how: &ShimOptions<'_>,
    ) -> io::Result<Spawned> {
        crate::server::shim::spawn(shim, proc, how)
    }

    fn spawn_runtime(&mut self, runtime: &Runtime, log: &Path, args: &[&str]) -> io::Result<u32> {
        runtime.command(log, args).spawn().map(|child| child.id())
    }

    fn run_runtime(
        &mut self,
        runtime: &Runtime,
        log: &Path,
        args: &[&str],
        limit: Duration,
    ) -> Option<(i32, Vec<u8>)> {
        runtime.run_to_end(log, args, limit)
    }

    fn write_file(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        crate::store::statedir::write_atomic(path, bytes)
    }

    fn write_fifo(&mut self, path: &Path, line: &[u8]) -> io::Result<()> {
        crate::store::statedir::write_fifo(path, line)
    }

    fn signal(&mut self, target: Target, signal: rustix::process::Signal) {
        use rustix::process::{kill_process, kill_process_group, Pid};
        let _ = match target {
            Target::Process(pid) => Pid::from_raw(pid as i32).map(|p| kill_process(p, signal)),
            Target::Group(pid) => Pid::from_raw(pid as i32).map(|p| kill_process_group(p, signal)),
        };
    }

    fn reap(&mut self) -> Option<(u32, i32)> {
        let (pid, status) = rustix::process::wait(rustix::process::WaitOptions::NOHANG).ok()??;
        let code = status
            .exit_status()
            .or(status.terminating_signal().map(|s| 128 + s))
            .unwrap_or(255);
        Some((pid.as_raw_nonzero().get() as u32, code))
    }

    fn mount_rootfs(&mut self, dir: &Path, image: &Image, overlay: &Overlay) -> io::Result<()> {
        crate::rootfs::mount::mount(dir, image, overlay)
    }

    fn unmount_rootfs(&mut self, dir: &Path) -> io::Result<()> {
        crate::rootfs::mount::unmount(dir)
    }

    fn net_attach(&mut self, req: &NetRequest<'_>) -> Result<Attached, bridge::Error> {
        let b = bridge::Bridge::open(req.bridge, req.subnet, req.ipam)?;
        crate::net::netns::create(req.netns)?;
        let attached = b.attach(req.id, req.netns, req.ip);
        if attached.is_err() {
            let _ = crate::net::netns::remove(req.netns);
        } else if std::fs::read(FORWARD).ok().as_deref() != Some(b"1\n") {
            // Forwarding, for the bridge's traffic beyond the host.
            let _ = std::fs::write(FORWARD, b"1\n");
        }
        attached
    }

    fn net_detach(
        &mut self,
        req: &NetRequest<'_>,
        keep_address: bool,
    ) -> Result<(), bridge::Error> {
        let b = bridge::Bridge::open(req.bridge, req.subnet, req.ipam)?;
        match keep_address {
            true => b.unplug(req.id).map(drop)?,
            false => b.detach(req.id).map(drop)?,
        }
        Ok(crate::net::netns::remove(req.netns)?)
    }

    fn make_netns(&mut self, path: &Path) -> io::Result<()> {
        crate::net::netns::create(path).map_err(|e| io::Error::other(e.to_string()))
    }

    fn net_leaked(&mut self, known: &dyn Fn(&str) -> bool) -> Result<Vec<Leak>, bridge::Error> {
        let leaks = bridge::leaked(known)?;
        let mut nl = crate::net::netlink::Netlink::open()?;
        for leak in &leaks {
            nl.delete_link(&leak.link)?;
        }
        Ok(leaks)
    }

    fn rewrite_file(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)?;
        io::Write::write_all(&mut f, bytes)?;
        f.sync_data()
    }

    fn spawn_program(
        &mut self,
        program: &Path,
        args: &[&str],
        input: &[u8],
        log: &Path,
    ) -> io::Result<u32> {
        use std::process::{Command, Stdio};
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            // Within a pipe's buffer: written at once, never waited on.
            io::Write::write_all(&mut stdin, input)?;
        }
        Ok(child.id())
    }

    fn open_watchdog(
        &mut self,
        path: &Path,
        timeout: Option<u32>,
    ) -> io::Result<(File, Option<u32>)> {
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking, so a pet never holds the loop; close-on-exec, so no
        // shim or runtime call holds it open after the daemon is gone.
        let mut dev = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        match (crate::sys::watchdog_timeout(&dev, timeout), timeout) {
            (Ok(t), _) => Ok((dev, Some(t))),
            (Err(_), None) => Ok((dev, None)),
            (Err(e), Some(t)) => {
                let _ = io::Write::write_all(&mut dev, b"V");
                let why = format!("cannot set its timeout to {t} s: {e}");
                Err(io::Error::new(e.kind(), why))
            }
        }
    }

    fn pet_watchdog(&mut self, dev: &mut File) -> io::Result<()> {
        io::Write::write_all(dev, b".")
    }

    fn close_watchdog(&mut self, mut dev: File) -> io::Result<()> {
        io::Write::write_all(&mut dev, b"V")
    }
}
