//! A container's memory cgroup and its OOM kills, on cgroup v1 and v2, with
//! no polling: v1 signals an eventfd registered through
//! `cgroup.event_control`; v2 changes `memory.events`, watched with
//! inotify. Either way the kernel's `oom_kill` counter says how many kills
//! happened.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use rustix::event::EventfdFlags;
use rustix::fs::inotify;

use super::mountinfo::{locate_v1, locate_v2};
use crate::sys;

/// A memory cgroup directory and the hierarchy it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Memcg {
    V1(PathBuf),
    V2(PathBuf),
}

impl Memcg {
    /// The memory cgroup of process `pid`, if it has one.
    pub fn of(pid: u32) -> Option<Memcg> {
        let cgroups = crate::files::read_kernel_text(format!("/proc/{pid}/cgroup")).ok()?;
        let mounts = crate::files::read_kernel_text("/proc/self/mountinfo").ok()?;
        let memcg = locate(&cgroups, &mounts)?;
        memcg.counter_file().exists().then_some(memcg)
    }

    /// The file with the `oom_kill` counter.
    pub fn counter_file(&self) -> PathBuf {
        match self {
            Memcg::V1(dir) => dir.join("memory.oom_control"),
            Memcg::V2(dir) => dir.join("memory.events"),
        }
    }
}

/// Finds the memory cgroup in the text of `/proc/PID/cgroup` and
/// `/proc/self/mountinfo`. A v1 memory controller wins (hybrid hosts have
/// an empty v2 hierarchy beside it).
pub fn locate(cgroups: &str, mountinfo: &str) -> Option<Memcg> {
    match locate_v1(cgroups, mountinfo, "memory") {
        Some(dir) => Some(Memcg::V1(dir)),
        None => locate_v2(cgroups, mountinfo).map(Memcg::V2),
    }
}

/// The `oom_kill` counter in `memory.oom_control` (v1, Linux 4.13+) or
/// `memory.events` (v2).
pub fn oom_kills(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// A watch on one container's OOM kills.
pub struct OomWatch {
    counter: PathBuf,
    kills: u64,
    pub how: Watch,
}

pub enum Watch {
    /// The eventfd the kernel signals (watched in epoll), and the
    /// `memory.oom_control` it was registered for, kept open as the
    /// registration requires.
    V1 { eventfd: OwnedFd, _control: File },
    /// The inotify watch descriptor on `memory.events`.
    V2 { wd: i32 },
}

impl OomWatch {
    /// Starts watching; `inotify` is the daemon's inotify descriptor.
    pub fn start(memcg: &Memcg, inotify: impl AsFd) -> io::Result<OomWatch> {
        let counter = memcg.counter_file();
        let kills = oom_kills(&crate::files::read_kernel_text(&counter)?).unwrap_or(0);
        let how = match memcg {
            Memcg::V1(dir) => {
                let control = File::open(&counter)?;
                let flags = EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK;
                let eventfd = sys::own(rustix::event::eventfd(0, flags).map_err(sys::io_error)?);
                let line = format!("{} {}", eventfd.as_raw_fd(), control.as_raw_fd());
                File::options()
                    .write(true)
                    .open(dir.join("cgroup.event_control"))?
                    .write_all(line.as_bytes())?;
                Watch::V1 {
                    eventfd,
                    _control: control,
                }
            }
            Memcg::V2(_) => {
                let path = crate::store::statedir::c_path(&counter)?;
                let wd = inotify::add_watch(sys::fd(&inotify), &*path, inotify::WatchFlags::MODIFY)
                    .map_err(sys::io_error)?;
                Watch::V2 { wd }
            }
        };
        Ok(OomWatch {
            counter,
            kills,
            how,
        })
    }

    /// Reads the counter again; returns the kills since the last look.
    /// Drains the eventfd first, so it is quiet until the next one.
    pub fn new_kills(&mut self) -> u64 {
        if let Watch::V1 { eventfd, .. } = &self.how {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(sys::fd(eventfd), &mut buf);
        }
        let Some(now) = crate::files::read_kernel_text(&self.counter)
            .ok()
            .as_deref()
            .and_then(oom_kills)
        else {
            return 0;
        };
        let new = now.saturating_sub(self.kills);
        self.kills = now;
        new
    }

    /// Stops watching (closes the eventfd, or removes the inotify watch).
    pub fn stop(self, inotify: impl AsFd) {
        if let Watch::V2 { wd } = self.how {
            let _ = inotify::remove_watch(sys::fd(&inotify), wd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
30 31 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices";

    #[test]
    fn v1_memory_wins_on_a_hybrid_host() {
        let cgroups = "5:devices:/x\n4:memory:/process_api/abc/web\n0::/\n";
        assert_eq!(
            locate(cgroups, HYBRID_MOUNTS),
            Some(Memcg::V1(
                "/sys/fs/cgroup/memory/process_api/abc/web".into()
            ))
        );
    }

    #[test]
    fn v2_when_there_is_no_v1_memory() {
        let mounts = "25 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw";
        assert_eq!(
            locate("0::/nanoctr/web\n", mounts),
            Some(Memcg::V2("/sys/fs/cgroup/nanoctr/web".into()))
        );
        assert_eq!(
            locate("0::/web\n", "1 0 0:1 / / rw - ext4 /dev/root rw"),
            None
        );
    }

    #[test]
    fn counters() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"),
            Some(3)
        );
        assert_eq!(
            oom_kills("low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\n"),
            Some(1)
        );
        assert_eq!(oom_kills("oom_kill_disable 0\nunder_oom 0\n"), None);
    }

    #[test]
    fn v2_watch_sees_a_counter_change() {
        // The v2 mechanism on a plain file: inotify reports the write, the
        // counter is read back. (A cgroup v2 host runs the same code on
        // memory.events.)
        let dir = std::env::temp_dir().join(format!("nanoctr-memcg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let events = dir.join("memory.events");
        std::fs::write(&events, "oom 0\noom_kill 0\n").unwrap();
        let ino = sys::own(
            inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK).unwrap(),
        );
        let mut w = OomWatch::start(&Memcg::V2(dir.clone()), &ino).unwrap();
        assert_eq!(w.new_kills(), 0);
        std::fs::write(&events, "oom 1\noom_kill 1\n").unwrap();
        let mut buf = [std::mem::MaybeUninit::uninit(); 256];
        let mut reader = inotify::Reader::new(sys::fd(&ino), &mut buf);
        let ev = reader.next().expect("an inotify event");
        assert!(matches!(w.how, Watch::V2 { wd } if wd == ev.wd()));
        assert_eq!(w.new_kills(), 1);
        assert_eq!(w.new_kills(), 0);
        w.stop(&ino);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
