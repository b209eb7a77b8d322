//! A container's resource usage and its processes, read straight from its
//! cgroup files: the v1 `memory`, `cpuacct` and `pids` controllers where
//! they are mounted, the v2 (unified) directory otherwise. No runtime
//! process is run.

use std::io;
use std::path::{Path, PathBuf};

use super::mountinfo::{locate_v1, locate_v2};

/// The cgroup directories of one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cgroups {
    /// The v1 `memory` controller directory.
    pub memory: Option<PathBuf>,
    /// The v1 `cpuacct` controller directory (possibly a `cpu,cpuacct`
    /// hierarchy).
    pub cpuacct: Option<PathBuf>,
    /// The v1 `pids` controller directory.
    pub pids: Option<PathBuf>,
    /// The v2 (unified) directory; on a hybrid host it is used only for the
    /// resources no v1 controller covers.
    pub unified: Option<PathBuf>,
}

impl Cgroups {
    /// The cgroups of process `pid`, from `/proc/PID/cgroup` and
    /// `/proc/self/mountinfo`; `None` if they cannot be read or name no
    /// mounted cgroup.
    pub fn of(pid: u32) -> Option<Cgroups> {
        let cgroups = crate::files::read_kernel_text(format!("/proc/{pid}/cgroup")).ok()?;
        let mounts = crate::files::read_kernel_text("/proc/self/mountinfo").ok()?;
        let cg = Cgroups::from_text(&cgroups, &mounts);
        (cg != Cgroups::default()).then_some(cg)
    }

    /// The cgroups named in the text of `/proc/PID/cgroup`, located through
    /// the text of `/proc/self/mountinfo`.
    pub fn from_text(cgroups: &str, mountinfo: &str) -> Cgroups {
        let v1 = |ctrl| locate_v1(cgroups, mountinfo, ctrl);
        Cgroups {
            memory: v1("memory"),
            cpuacct: v1("cpuacct"),
            pids: v1("pids"),
            unified: locate_v2(cgroups, mountinfo),
        }
    }

    /// The `cgroup.procs` file listing the container's processes: in the v1
    /// memory directory, else the v1 pids directory, else the v2 directory.
    pub fn procs_file(&self) -> Option<PathBuf> {
        let dir = (self.memory.as_ref())
            .or(self.pids.as_ref())
            .or(self.unified.as_ref())?;
        Some(dir.join("cgroup.procs"))
    }

    /// The text of the v1 file `f1` in `v1`, or, with no v1 controller, of
    /// the v2 file `f2`.
    fn read(&self, v1: &Option<PathBuf>, f1: &str, f2: &str) -> Option<String> {
        let path = match v1 {
            Some(dir) => dir.join(f1),
            None => self.unified.as_ref()?.join(f2),
        };
        crate::files::read_kernel_text(path).ok()
    }
}

/// A memory limit in bytes, or a process count limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A finite limit: bytes for memory, processes for pids.
    Bytes(u64),
    /// No limit: `max`, or v1's huge "unlimited" value (2^62 or more).
    Max,
}

impl Limit {
    /// Parses a limit file's text; `None` if it is neither a number nor
    /// `max`.
    fn parse(text: &str) -> Option<Limit> {
        match text.trim() {
            "max" => Some(Limit::Max),
            n => n.parse().ok().map(|n| {
                if n >= 1 << 62 {
                    Limit::Max
                } else {
                    Limit::Bytes(n)
                }
            }),
        }
    }
}

/// A container's resource usage; a value its cgroups do not provide is
/// `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Memory in use, bytes.
    pub memory_usage: Option<u64>,
    /// The memory limit.
    pub memory_limit: Option<Limit>,
    /// The most memory ever in use, bytes (v2: Linux 5.19+).
    pub memory_max_usage: Option<u64>,
    /// CPU time used, nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Processes (v1: and threads) in the container.
    pub pids_current: Option<u64>,
    /// The process count limit.
    pub pids_limit: Option<Limit>,
}

/// Reads a container's resource usage from its cgroup files. A v1
/// controller wins over the v2 directory for its resource.
pub fn read_stats(cg: &Cgroups) -> Stats {
    let num = |t: Option<String>| t?.trim().parse().ok();
    let limit = |t: Option<String>| Limit::parse(&t?);
    let mem = |f1, f2| cg.read(&cg.memory, f1, f2);
    let pids = |f| cg.read(&cg.pids, f, f);
    let cpu_usage_ns = match &cg.cpuacct {
        Some(dir) => num(crate::files::read_kernel_text(dir.join("cpuacct.usage")).ok()),
        None => cg.unified.as_deref().and_then(v2_cpu_usage_ns),
    };
    Stats {
        memory_usage: num(mem("memory.usage_in_bytes", "memory.current")),
        memory_limit: limit(mem("memory.limit_in_bytes", "memory.max")),
        memory_max_usage: num(mem("memory.max_usage_in_bytes", "memory.peak")),
        cpu_usage_ns,
        pids_current: num(pids("pids.current")),
        pids_limit: limit(pids("pids.max")),
    }
}

/// `usage_usec` of the v2 `cpu.stat` in `dir`, in nanoseconds.
fn v2_cpu_usage_ns(dir: &Path) -> Option<u64> {
    let text = crate::files::read_kernel_text(dir.join("cpu.stat")).ok()?;
    let usec: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))?
        .trim()
        .parse()
        .ok()?;
    usec.checked_mul(1000)
}

impl Stats {
    /// The protocol's `key=value` pairs, keys `memory.usage`,
    /// `memory.limit`, `memory.max-usage`, `cpu.usage-ns`, `pids.current`
    /// and `pids.limit`; no limit is `max`. Unavailable values are left out.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let n = |v: Option<u64>| v.map(|v| v.to_string());
        let l = |v: Option<Limit>| {
            v.map(|v| match v {
                Limit::Bytes(b) => b.to_string(),
                Limit::Max => "max".into(),
            })
        };
        [
            ("memory.usage", n(self.memory_usage)),
            ("memory.limit", l(self.memory_limit)),
            ("memory.max-usage", n(self.memory_max_usage)),
            ("cpu.usage-ns", n(self.cpu_usage_ns)),
            ("pids.current", n(self.pids_current)),
            ("pids.limit", l(self.pids_limit)),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
    }
}

/// The container's process ids, from its `cgroup.procs` (see
/// [`Cgroups::procs_file`]), sorted ascending, without duplicates.
pub fn read_pids(cg: &Cgroups) -> io::Result<Vec<u32>> {
    let file = cg.procs_file().ok_or(io::ErrorKind::NotFound)?;
    let mut pids: Vec<u32> = crate::files::read_kernel_text(file)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    crate::slab::sort_small(&mut pids, |a, b| a < b);
    pids.dedup();
    Ok(pids)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
30 31 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /outer /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd";

    const HYBRID_CGROUPS: &str = "\
9:name=systemd:/system.slice/x
8:pids:/nanoctr/web
4:memory:/outer/nanoctr/web
2:cpu,cpuacct:/nanoctr/web
0::/nanoctr/web
";

    /// A fresh directory under the temporary directory holding `files`.
    fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nanoctr-stats-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        dir
    }

    #[test]
    fn hybrid_text() {
        let cg = Cgroups::from_text(HYBRID_CGROUPS, HYBRID_MOUNTS);
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            cg,
            Cgroups {
                memory: p("/sys/fs/cgroup/memory/nanoctr/web"),
                cpuacct: p("/sys/fs/cgroup/cpu,cpuacct/nanoctr/web"),
                pids: p("/sys/fs/cgroup/pids/nanoctr/web"),
                unified: p("/sys/fs/cgroup/unified/nanoctr/web"),
            }
        );
        assert_eq!(
            cg.procs_file(),
            p("/sys/fs/cgroup/memory/nanoctr/web/cgroup.procs")
        );
        let no_memory = Cgroups { memory: None, ..cg };
        assert_eq!(
            no_memory.procs_file(),
            p("/sys/fs/cgroup/pids/nanoctr/web/cgroup.procs")
        );
    }

    #[test]
    fn pure_v2_text() {
        let mounts = "25 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw";
        let cg = Cgroups::from_text("0::/nanoctr/web\n", mounts);
        assert_eq!(
            cg,
            Cgroups {
                unified: Some("/sys/fs/cgroup/nanoctr/web".into()),
                ..Cgroups::default()
            }
        );
        assert_eq!(
            cg.procs_file(),
            Some("/sys/fs/cgroup/nanoctr/web/cgroup.procs".into())
        );
        assert_eq!(Cgroups::from_text("0::/web\n", ""), Cgroups::default());
        assert_eq!(Cgroups::default().procs_file(), None);
        assert_eq!(Cgroups::of(u32::MAX), None);
    }

    #[test]
    fn limits() {
        assert_eq!(Limit::parse("max\n"), Some(Limit::Max));
        assert_eq!(Limit::parse("9223372036854771712\n"), Some(Limit::Max));
        assert_eq!(Limit::parse("268435456\n"), Some(Limit::Bytes(268435456)));
        assert_eq!(Limit::parse("lots"), None);
        assert_eq!(Limit::parse(""), None);
    }

    #[test]
    fn v1_stats() {
        let mem = tree(
            "v1-memory",
            &[
                ("memory.usage_in_bytes", "4096\n"),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.max_usage_in_bytes", "8192\n"),
                ("cgroup.procs", "30\n7\n12\n7\n"),
            ],
        );
        let cpu = tree("v1-cpuacct", &[("cpuacct.usage", "123456789\n")]);
        let pids = tree("v1-pids", &[("pids.current", "3\n"), ("pids.max", "max\n")]);
        // The v2 directory of a hybrid host is ignored where v1 provides.
        let v2 = tree(
            "v1-unified",
            &[("memory.current", "1\n"), ("cpu.stat", "usage_usec 1\n")],
        );
        let cg = Cgroups {
            memory: Some(mem.clone()),
            cpuacct: Some(cpu.clone()),
            pids: Some(pids.clone()),
            unified: Some(v2.clone()),
        };
        assert_eq!(
            read_stats(&cg),
            Stats {
                memory_usage: Some(4096),
                memory_limit: Some(Limit::Max),
                memory_max_usage: Some(8192),
                cpu_usage_ns: Some(123456789),
                pids_current: Some(3),
                pids_limit: Some(Limit::Max),
            }
        );
        assert_eq!(read_pids(&cg).unwrap(), [7, 12, 30]);
        // Unparsable contents and a missing controller give None; a
        // missing v1 controller falls back to the v2 files that exist.
        std::fs::write(mem.join("memory.usage_in_bytes"), "garbage").unwrap();
        let cg = Cgroups {
            cpuacct: None,
            pids: None,
            ..cg
        };
        let s = read_stats(&cg);
        assert_eq!(s.memory_usage, None);
        assert_eq!(s.cpu_usage_ns, Some(1000));
        assert_eq!((s.pids_current, s.pids_limit), (None, None));
        for dir in [mem, cpu, pids, v2] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn v2_stats() {
        let dir = tree(
            "v2",
            &[
                ("memory.current", "1048576\n"),
                ("memory.max", "max\n"),
                (
                    "cpu.stat",
                    "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
                ),
                ("pids.current", "2\n"),
                ("pids.max", "64\n"),
                ("cgroup.procs", "41\n40\n"),
            ],
        );
        let cg = Cgroups {
            unified: Some(dir.clone()),
            ..Cgroups::default()
        };
        let s = read_stats(&cg);
        assert_eq!(
            s,
            Stats {
                memory_usage: Some(1048576),
                memory_limit: Some(Limit::Max),
                memory_max_usage: None, // no memory.peak before Linux 5.19
                cpu_usage_ns: Some(2_500_000),
                pids_current: Some(2),
                pids_limit: Some(Limit::Bytes(64)),
            }
        );
        assert_eq!(read_pids(&cg).unwrap(), [40, 41]);
        std::fs::write(dir.join("memory.peak"), "2097152\n").unwrap();
        std::fs::write(dir.join("memory.max"), "268435456\n").unwrap();
        let s = read_stats(&cg);
        assert_eq!(s.memory_max_usage, Some(2097152));
        assert_eq!(s.memory_limit, Some(Limit::Bytes(268435456)));
        std::fs::remove_dir_all(dir).unwrap();
        assert!(read_pids(&Cgroups::default()).is_err());
    }

    #[test]
    fn pairs() {
        let s = Stats {
            memory_usage: Some(4096),
            memory_limit: Some(Limit::Max),
            memory_max_usage: None,
            cpu_usage_ns: Some(5),
            pids_current: Some(2),
            pids_limit: Some(Limit::Bytes(64)),
        };
        let want = [
            ("memory.usage", "4096"),
            ("memory.limit", "max"),
            ("cpu.usage-ns", "5"),
            ("pids.current", "2"),
            ("pids.limit", "64"),
        ];
        let got = s.pairs();
        assert_eq!(got.len(), want.len());
        for ((k, v), (wk, wv)) in got.iter().zip(want) {
            assert_eq!((*k, v.as_str()), (wk, wv));
        }
        assert!(Stats::default().pairs().is_empty());
    }

    #[test]
    fn this_machine() {
        if !Path::new("/sys/fs/cgroup/memory").exists() {
            return;
        }
        let cg = Cgroups::of(std::process::id()).expect("cgroups of this process");
        let s = read_stats(&cg);
        println!("{cg:?}\n{s:?}\n{:?}", s.pairs());
        assert!(s.memory_usage.is_some());
        let pids = read_pids(&cg).unwrap();
        println!("{} pids, first {:?}", pids.len(), pids.first());
        assert!(pids.contains(&std::process::id()));
    }
}
