//! The daemon's settings: flags, over the config file, over defaults.
//!
//! Every flag can be written in the config file as `key = value`, the key
//! being the flag without `--` (see `file.rs`); a flag given on the
//! command line wins over the file. Bad values are errors that name the
//! flag, or the file and line: the daemon refuses to start rather than
//! guess.

pub mod file;
pub mod flags;

pub use flags::{Flags, OPTIONS};

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::files::{read_bounded_text, Links, MAX_CONFIG_FILE};
use file::{ConfFile, Decl};

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/nanoctr/nanoctrd.conf";

/// Where the daemon logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTo {
    Stderr,
    Syslog,
}

/// The settings, checked and resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// The image store (`nanoctr import`'s, `crate::image::store`).
    pub image_store: PathBuf,
    /// Update records (`tasks/update.rs`), on persistent storage.
    pub update_dir: PathBuf,
    /// Absolute path of the default runtime.
    pub runtime: PathBuf,
    pub runtime_root: Option<PathBuf>,
    /// Absolute path of nanoctr-shim.
    pub shim: PathBuf,
    pub max_containers: usize,
    pub max_execs: usize,
    pub max_clients: usize,
    pub max_followers: usize,
    pub client_timeout: Duration,
    pub max_calls: usize,
    pub retain: usize,
    pub start_timeout: Duration,
    pub oom_score_adj: i32,
    pub shim_oom_score_adj: i32,
    pub restart_delay: Duration,
    pub restart_max_delay: Duration,
    pub restart_window: Duration,
    pub log: LogTo,
    /// `error`, `warn`, `info` or `debug`.
    pub log_level: String,
    pub syslog_socket: PathBuf,
    pub control_tty: Option<PathBuf>,
    pub notify_fd: Option<i32>,
    pub pidfile: Option<PathBuf>,
    /// Bridge address allocations (`net/ipam.rs`), on persistent storage.
    pub net_dir: PathBuf,
    /// `net=bridge`'s subnet.
    pub bridge_subnet: crate::net::ipam::Subnet,
    /// Told of every bridge interface made and unmade (`--net-hook`).
    pub net_hook: Option<PathBuf>,
    /// `nft`, for NAT and published ports; without it, neither.
    pub nft: Option<PathBuf>,
    /// `net=cni`'s network configurations and plugins (none: the defaults).
    pub cni_conf_dir: PathBuf,
    pub cni_bin_dir: Option<PathBuf>,
    /// The hardware watchdog device (`server/watchdog.rs`).
    pub watchdog: Option<PathBuf>,
    /// How often it is petted; from its timeout when not set.
    pub watchdog_interval: Option<Duration>,
    /// The timeout set on it at start, in seconds.
    pub watchdog_timeout: Option<u32>,
    /// The containers to start at daemon start, as declared.
    pub containers: Vec<Decl>,
}

/// Flags over the file: each value with where it came from.
struct Layers<'a> {
    flags: &'a [(&'static str, String)],
    file: &'a ConfFile,
}

impl Layers<'_> {
    /// The value of `key` and how to name it in a message.
    fn get(&self, key: &str) -> Option<(&str, String)> {
        if let Some((_, v)) = self.flags.iter().find(|(k, _)| *k == key) {
            return Some((v.as_str(), format!("--{key}")));
        }
        self.file
            .get(key)
            .map(|s| (s.value.as_str(), format!("{}: {key}", s.at)))
    }

    /// A whole number in `range` (one integer type for every setting:
    /// each generic copy of the parsing costs the binary room).
    fn num(
        &self,
        key: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, String> {
        let Some((v, at)) = self.get(key) else {
            return Ok(default);
        };
        v.parse::<i64>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                format!(
                    "{at}: must be a number from {} to {}, not {v}",
                    range.start(),
                    range.end()
                )
            })
    }

    /// A whole number in `range`, if the key is set.
    fn opt_num(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.num(key, 0, range).map(Some),
        }
    }

    fn path(&self, key: &str) -> Result<Option<PathBuf>, String> {
        match self.get(key) {
            None => Ok(None),
            Some((v, _)) if v.starts_with('/') => Ok(Some(v.into())),
            Some((v, at)) => Err(format!("{at}: must be an absolute path, not {v}")),
        }
    }

    fn word(&self, key: &str, default: &str, words: &[&str]) -> Result<String, String> {
        match self.get(key) {
            None => Ok(default.into()),
            Some((v, _)) if words.contains(&v) => Ok(v.into()),
            Some((v, at)) => Err(format!("{at}: must be {}, not {v}", words.join(" or "))),
        }
    }
}

/// Reads the config file `--config` names, or the default one if it is
/// there.
fn read_config_file(flags: &Flags) -> Result<ConfFile, String> {
    let (path, required) = match &flags.config {
        Some(p) => (std::path::absolute(p).unwrap_or(p.clone()), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    match read_bounded_text(&path, MAX_CONFIG_FILE, Links::Follow) {
        Ok(text) => file::parse(&path, &text, true),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(ConfFile::default()),
        Err(e) => Err(format!("config file {}: {e}", path.display())),
    }
}

/// The container sections of every `*.conf` in `dir`, by file name.
fn read_containers_dir(dir: &Path, required: bool) -> Result<Vec<Decl>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("containers dir {}: {e}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    crate::slab::sort_small(&mut files, |a, b| a < b);
    let mut decls = Vec::new();
    for f in files {
        let text = read_bounded_text(&f, MAX_CONFIG_FILE, Links::Follow)
            .map_err(|e| format!("{}: {e}", f.display()))?;
        decls.extend(file::parse(&f, &text, false)?.containers);
    }
    Ok(decls)
}

impl Config {
    /// Flags, over the config file, over the defaults.
    pub fn load(flags: &Flags) -> Result<Config, String> {
        let file = read_config_file(flags)?;
        let l = Layers {
            flags: &flags.values,
            file: &file,
        };
        let mut containers = file.containers.clone();
        let dir = l.path("containers-dir")?;
        let explicit = dir.is_some();
        let dir = dir.unwrap_or_else(|| "/etc/nanoctr/containers.d".into());
        for d in read_containers_dir(&dir, explicit)? {
            if let Some(first) = containers.iter().find(|c| c.spec.id == d.spec.id) {
                return Err(format!(
                    "{}: container {} is declared already, at {}",
                    d.at, d.spec.id, first.at
                ));
            }
            containers.push(d);
        }
        let runtime = match l.get("runtime") {
            Some((v, at)) => find_program(v)
                .ok_or_else(|| format!("{at}: runtime {v} not found (looked in PATH)"))?,
            None => find_program("runc").ok_or("runtime runc not found in PATH; set --runtime")?,
        };
        let shim = match l.get("shim") {
            Some((p, at)) => {
                find_program(p).ok_or_else(|| format!("{at}: {p} is not an executable file"))?
            }
            None => beside_self("nanoctr-shim")
                .or_else(|| find_program("nanoctr-shim"))
                .ok_or("nanoctr-shim not found beside nanoctrd or in PATH; use --shim")?,
        };
        let ms = |n: i64| Duration::from_millis(n as u64);
        let restart_delay = ms(l.num("restart-delay", 100, 1..=3_600_000)?);
        let restart_max_delay = ms(l.num("restart-max-delay", 30_000, 1..=86_400_000)?);
        if restart_max_delay < restart_delay {
            return Err("restart-max-delay must not be below restart-delay".into());
        }
        let log = match l.word("log", "stderr", &["stderr", "syslog"])?.as_str() {
            "syslog" => LogTo::Syslog,
            _ => LogTo::Stderr,
        };
        let watchdog = l.path("watchdog")?;
        let watchdog_interval = l.opt_num("watchdog-interval", 1..=3600)?;
        let watchdog_timeout = l.opt_num("watchdog-timeout", 1..=3600)?;
        // The interval is checked against the device's timeout when the
        // device is opened (`server/watchdog.rs`).
        if watchdog.is_none() && (watchdog_interval.is_some() || watchdog_timeout.is_some()) {
            return Err("watchdog-interval and watchdog-timeout need watchdog, the device".into());
        }
        let bridge_subnet = match l.get("bridge-subnet") {
            Some((v, at)) => {
                crate::net::ipam::Subnet::parse(v).map_err(|e| format!("{at}: {e}"))?
            }
            None => crate::net::ipam::DEFAULT_SUBNET,
        };
        let net_hook = match l.get("net-hook") {
            Some((p, at)) => Some(
                find_program(p).ok_or_else(|| format!("{at}: {p} is not an executable file"))?,
            ),
            None => None,
        };
        let cap = 1..=65536;
        Ok(Config {
            socket: l
                .path("socket")?
                .unwrap_or("/run/nanoctr/nanoctr.sock".into()),
            state_dir: l.path("state-dir")?.unwrap_or("/run/nanoctr".into()),
            image_store: l
                .path("image-store")?
                .unwrap_or(crate::image::store::DEFAULT_STORE.into()),
            update_dir: l
                .path("update-dir")?
                .unwrap_or(crate::tasks::update::DEFAULT_DIR.into()),
            runtime,
            runtime_root: l.path("runtime-root")?,
            shim,
            max_containers: l.num("max-containers", 64, cap.clone())? as usize,
            max_execs: l.num("max-execs", 32, cap.clone())? as usize,
            max_clients: l.num("max-clients", 16, cap.clone())? as usize,
            max_followers: l.num("max-followers", 32, cap.clone())? as usize,
            client_timeout: Duration::from_secs(l.num("client-timeout", 60, 1..=86_400)? as u64),
            max_calls: l.num("max-calls", 8, cap.clone())? as usize,
            retain: l.num("retain", 512, cap)? as usize,
            start_timeout: Duration::from_secs(l.num("start-timeout", 30, 1..=3600)? as u64),
            oom_score_adj: l.num("oom-score-adj", -500, -1000..=1000)? as i32,
            shim_oom_score_adj: l.num("shim-oom-score-adj", -500, -1000..=1000)? as i32,
            restart_delay,
            restart_max_delay,
            restart_window: Duration::from_secs(l.num("restart-window", 10, 0..=86_400)? as u64),
            log,
            log_level: l.word("log-level", "info", &["error", "warn", "info", "debug"])?,
            syslog_socket: l.path("syslog-socket")?.unwrap_or("/dev/log".into()),
            control_tty: l.path("control-tty")?,
            notify_fd: l.opt_num("notify-fd", 0..=1_048_576)?.map(|n| n as i32),
            pidfile: l.path("pidfile")?,
            net_dir: l
                .path("net-dir")?
                .unwrap_or(crate::tasks::net::DEFAULT_NET_DIR.into()),
            bridge_subnet,
            net_hook,
            nft: find_program("nft"),
            cni_conf_dir: l
                .path("cni-conf-dir")?
                .unwrap_or(crate::net::cni::CONF_DIR.into()),
            cni_bin_dir: l.path("cni-bin-dir")?,
            watchdog,
            watchdog_interval: watchdog_interval.map(|s| Duration::from_secs(s as u64)),
            watchdog_timeout: watchdog_timeout.map(|s| s as u32),
            containers,
        })
    }
}

/// What `--check-config` finds: the declared containers that would start,
/// in start order, and every problem, each naming its file and line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checked {
    pub order: Vec<String>,
    pub problems: Vec<String>,
}

impl Config {
    /// Checks the declared containers as the boot would meet them: their
    /// `after` order, their bundles (each a directory with a readable,
    /// well-formed `config.json`), the runtimes they name, and whether the
    /// container table holds them all.
    pub fn check_declared(&self) -> Checked {
        let decls = &self.containers;
        let (order, mut problems) = file::start_order(decls);
        for d in decls {
            let id = &d.spec.id;
            if let Err(e) = crate::bundle::bundle_config(&d.spec.bundle) {
                problems.push(format!("{}: container {id}: {}", d.at, e.message));
            }
            if let Some(rt) = &d.spec.runtime {
                if find_program(rt).is_none() {
                    problems.push(format!("{}: container {id}: runtime {rt} not found", d.at));
                }
            }
        }
        if decls.len() > self.max_containers {
            let left_out: Vec<&str> = order
                .iter()
                .skip(self.max_containers)
                .map(|&i| decls[i].spec.id.as_str())
                .collect();
            problems.push(format!(
                "{} containers are declared, more than --max-containers {}: {} would not start",
                decls.len(),
                self.max_containers,
                match left_out.is_empty() {
                    true => "some".to_string(),
                    false => left_out.join(" "),
                }
            ));
        }
        Checked {
            order: order.iter().map(|&i| decls[i].spec.id.clone()).collect(),
            problems,
        }
    }
}

/// Resolves a program: an absolute or relative path must be an executable
/// file; a bare name is looked up in `PATH`, as a shell would.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = std::path::absolute(name).ok()?;
        return is_executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_absolute() && is_executable(p))
}

/// `name` beside the daemon: beside the path it was started by (the link
/// `/usr/sbin/nanoctrd`), else beside the program that link names.
fn beside_self(name: &str) -> Option<PathBuf> {
    let started = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let exe = std::env::current_exe().ok();
    [started, exe]
        .into_iter()
        .flatten()
        .filter_map(|p| Some(p.parent()?.join(name)))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_command_line() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = Flags::parse(&args(&[
            "--config",
            "/c",
            "--retain=9",
            "--socket",
            "/s",
            "--check-config",
        ]))
        .unwrap();
        assert_eq!(f.config, Some(PathBuf::from("/c")));
        assert!(f.check_config && !f.help && !f.version);
        assert_eq!(f.values, [("retain", "9".into()), ("socket", "/s".into())]);
        for bad in [
            &["--bogus", "1"][..],
            &["--retain"],
            &["--retain", "1", "--retain", "2"],
            &["stray"],
        ] {
            assert!(Flags::parse(&args(bad)).is_err(), "{bad:?}");
        }
        assert!(Flags::usage().contains("--restart-window SECONDS"));
    }

    #[test]
    fn watchdog_settings() {
        let dir = std::env::temp_dir().join(format!("nanoctr-wdconf-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        let (with, without) = (dir.join("with"), dir.join("without"));
        std::fs::write(&with, "watchdog = /dev/watchdog\nwatchdog-interval = 4\n").unwrap();
        std::fs::write(&without, "").unwrap();
        let load = |conf: &Path, extra: &[&str]| {
            let mut args: Vec<String> = ["--runtime", "/bin/true", "--shim", "/bin/true"]
                .iter()
                .map(|a| a.to_string())
                .collect();
            args.extend(["--config".into(), conf.display().to_string()]);
            args.extend([
                "--containers-dir".into(),
                dir.join("d").display().to_string(),
            ]);
            args.extend(extra.iter().map(|a| a.to_string()));
            Config::load(&Flags::parse(&args).unwrap())
        };
        let c = load(&with, &[]).unwrap();
        assert_eq!(c.watchdog, Some(PathBuf::from("/dev/watchdog")));
        assert_eq!(c.watchdog_interval, Some(Duration::from_secs(4)));
        assert_eq!(c.watchdog_timeout, None);
        let c = load(&with, &["--watchdog-timeout", "30"]).unwrap();
        assert_eq!(c.watchdog_timeout, Some(30));
        let c = load(&without, &[]).unwrap();
        assert_eq!((c.watchdog, c.watchdog_interval), (None, None));
        for (conf, extra, what) in [
            (&with, &["--watchdog-interval", "0"][..], "from 1"),
            (&with, &["--watchdog", "dev/watchdog"], "absolute"),
            (&without, &["--watchdog-interval", "3"], "need watchdog"),
            (&without, &["--watchdog-timeout", "9"], "need watchdog"),
        ] {
            let e = load(conf, extra).unwrap_err();
            assert!(e.contains(what), "{extra:?}: {e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn finds_programs() {
        assert_eq!(find_program("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert!(find_program("sh").is_some_and(|p| p.is_absolute()));
        assert_eq!(find_program("/etc/passwd"), None);
        assert_eq!(find_program("no-such-program-here"), None);
    }
}
