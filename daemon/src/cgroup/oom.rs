//! A container's memory cgroup and its OOM kills, on cgroup v1 and v2, with
//! no polling: v1 signals an eventfd registered through
//! `cgroup.event_control`; v2 changes `memory.events`, watched with
//! inotify. Either way the kernel's `oom_kill` counter says how many kills
//! happened.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::event::EventfdFlags;
use rustix::fs::inotify;

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

/// The directory of v1 controller `ctrl` (`memory`, `cpuacct`, `pids`, ...)
/// from the text of `/proc/PID/cgroup` and `/proc/self/mountinfo`. The
/// controller may share a hierarchy with others (`cpu,cpuacct`).
pub(crate) fn locate_v1(cgroups: &str, mountinfo: &str, ctrl: &str) -> Option<PathBuf> {
    let has = |list: &str| list.split(',').any(|c| c == ctrl);
    let path = cgroup_path(cgroups, has)?;
    let (root, mountpoint) = mount_of(mountinfo, |fs, opts| fs == "cgroup" && has(opts))?;
    Some(join(&mountpoint, &root, path))
}

/// The v2 (unified) cgroup directory, from the same texts.
pub(crate) fn locate_v2(cgroups: &str, mountinfo: &str) -> Option<PathBuf> {
    let path = cgroup_path(cgroups, str::is_empty)?;
    let (root, mountpoint) = mount_of(mountinfo, |fs, _| fs == "cgroup2")?;
    Some(join(&mountpoint, &root, path))
}

/// The path of the first `/proc/PID/cgroup` line whose controller list
/// satisfies `want` (the v2 line's list is empty).
fn cgroup_path(cgroups: &str, want: impl Fn(&str) -> bool) -> Option<&str> {
    cgroups.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        want(controllers).then_some(path)
    })
}

/// `mountpoint` + `path` made relative to the mount's `root`.
fn join(mountpoint: &str, root: &str, path: &str) -> PathBuf {
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .trim_start_matches('/');
    Path::new(mountpoint).join(rel)
}

/// The (root, mount point) of the first mount whose filesystem type and
/// super options satisfy `want`.
fn mount_of(mountinfo: &str, want: impl Fn(&str, &str) -> bool) -> Option<(String, String)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split(' ');
        let (fstype, _source, opts) = (r.next()?, r.next()?, r.next().unwrap_or(""));
        if !want(fstype, opts) {
            return None;
        }
        let mut l = left.split(' ');
        let (root, mountpoint) = (l.nth(3)?, l.next()?);
        Some((unescape(root), unescape(mountpoint)))
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
    fn mount_roots_and_escapes() {
        // In a cgroup namespace the mount's root is a prefix of the path.
        let mounts = "35 31 0:32 /outer /sys/fs/cgroup/mem\\040ory rw - cgroup cgroup rw,memory";
        assert_eq!(
            locate("4:memory:/outer/web\n", mounts),
            Some(Memcg::V1("/sys/fs/cgroup/mem ory/web".into()))
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
