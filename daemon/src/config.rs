//! The daemon's settings: flags, over the config file, over defaults.
//!
//! Every flag can be written in the config file as `key = value`, the key
//! being the flag without `--` (see `conffile.rs`); a flag given on the
//! command line wins over the file. Bad values are errors that name the
//! flag, or the file and line: the daemon refuses to start rather than
//! guess.

use argh::FromArgs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::conffile::{self, ConfFile, Decl};

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/nanoctr/nanoctrd.conf";

/// nanoctrd: the nanoctr daemon. It serves the nanoctr line protocol on a
/// unix socket (and, with --control-tty, on a serial line), keeps the
/// table of containers, starts one nanoctr-shim per container process,
/// which survives the daemon, and starts the containers its config
/// declares. It stays in the foreground; SIGTERM or SIGINT stop it and
/// leave the containers running. Every option can also be set in the
/// config file as `key = value` (the option without --); options given
/// here win.
#[derive(FromArgs, Debug, Default)]
pub struct Flags {
    /// config file (default /etc/nanoctr/nanoctrd.conf when it exists)
    #[argh(option)]
    pub config: Option<PathBuf>,

    /// unix socket to serve (default /run/nanoctr/nanoctr.sock); mode 0600
    #[argh(option)]
    pub socket: Option<String>,

    /// state directory, one subdirectory per container (default
    /// /run/nanoctr); it belongs on a tmpfs
    #[argh(option)]
    pub state_dir: Option<String>,

    /// OCI runtime: a name looked up in PATH or a path (default runc)
    #[argh(option)]
    pub runtime: Option<String>,

    /// state root handed to the runtime as --root (default: its own)
    #[argh(option)]
    pub runtime_root: Option<String>,

    /// nanoctr-shim binary (default: beside nanoctrd, then PATH)
    #[argh(option)]
    pub shim: Option<String>,

    /// most containers held at once (default 64)
    #[argh(option)]
    pub max_containers: Option<String>,

    /// most exec processes held at once, over all containers; an exited
    /// one stays (for wait and state) until its room is needed (default 32)
    #[argh(option)]
    pub max_execs: Option<String>,

    /// most client connections at once; more wait to be accepted until one
    /// leaves (default 16)
    #[argh(option)]
    pub max_clients: Option<String>,

    /// most runtime calls in flight at once; further requests wait their
    /// turn (default 8)
    #[argh(option)]
    pub max_calls: Option<String>,

    /// events kept for replay, in memory and in the state dir; a subscriber
    /// that falls this far behind is cut off (default 512)
    #[argh(option)]
    pub retain: Option<String>,

    /// seconds any runtime call may take before it is killed and the request
    /// answered ERR timeout (default 30)
    #[argh(option)]
    pub start_timeout: Option<String>,

    /// the daemon's own oom_score_adj, so the kernel kills containers before
    /// their supervisor (default -500)
    #[argh(option)]
    pub oom_score_adj: Option<String>,

    /// the shims' oom_score_adj; containers get 0 (or what their bundle
    /// says) (default -500)
    #[argh(option)]
    pub shim_oom_score_adj: Option<String>,

    /// milliseconds before a restart policy's first restart in a row; each
    /// further one waits twice as long (default 100)
    #[argh(option)]
    pub restart_delay: Option<String>,

    /// most milliseconds between restarts (default 30000)
    #[argh(option)]
    pub restart_max_delay: Option<String>,

    /// seconds a container must run for its next restart to count as the
    /// first of a row again (default 10)
    #[argh(option)]
    pub restart_window: Option<String>,

    /// directory whose *.conf files declare more containers (default
    /// /etc/nanoctr/containers.d, when it exists)
    #[argh(option)]
    pub containers_dir: Option<String>,

    /// where the daemon logs: stderr or syslog (default stderr)
    #[argh(option)]
    pub log: Option<String>,

    /// least important messages logged: error, warn, info or debug
    /// (default info)
    #[argh(option)]
    pub log_level: Option<String>,

    /// syslog's socket, for --log syslog (default /dev/log)
    #[argh(option)]
    pub syslog_socket: Option<String>,

    /// also serve the line protocol on this serial device (canonical mode,
    /// echo on); it is opened again when it goes away
    #[argh(option)]
    pub control_tty: Option<String>,

    /// once the socket listens, write a newline to this descriptor and
    /// close it (s6-style readiness)
    #[argh(option)]
    pub notify_fd: Option<String>,

    /// write the daemon's pid here once it is serving; removed at exit
    #[argh(option)]
    pub pidfile: Option<String>,

    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}

impl Flags {
    /// Each option's value, by config key.
    fn by_key(&self) -> [(&'static str, Option<&String>); 23] {
        [
            ("socket", self.socket.as_ref()),
            ("state-dir", self.state_dir.as_ref()),
            ("runtime", self.runtime.as_ref()),
            ("runtime-root", self.runtime_root.as_ref()),
            ("shim", self.shim.as_ref()),
            ("max-containers", self.max_containers.as_ref()),
            ("max-execs", self.max_execs.as_ref()),
            ("max-clients", self.max_clients.as_ref()),
            ("max-calls", self.max_calls.as_ref()),
            ("retain", self.retain.as_ref()),
            ("start-timeout", self.start_timeout.as_ref()),
            ("oom-score-adj", self.oom_score_adj.as_ref()),
            ("shim-oom-score-adj", self.shim_oom_score_adj.as_ref()),
            ("restart-delay", self.restart_delay.as_ref()),
            ("restart-max-delay", self.restart_max_delay.as_ref()),
            ("restart-window", self.restart_window.as_ref()),
            ("containers-dir", self.containers_dir.as_ref()),
            ("log", self.log.as_ref()),
            ("log-level", self.log_level.as_ref()),
            ("syslog-socket", self.syslog_socket.as_ref()),
            ("control-tty", self.control_tty.as_ref()),
            ("notify-fd", self.notify_fd.as_ref()),
            ("pidfile", self.pidfile.as_ref()),
        ]
    }
}

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
    /// Absolute path of the default runtime.
    pub runtime: PathBuf,
    pub runtime_root: Option<PathBuf>,
    /// Absolute path of nanoctr-shim.
    pub shim: PathBuf,
    pub max_containers: usize,
    pub max_execs: usize,
    pub max_clients: usize,
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
    /// The containers to start at daemon start, as declared.
    pub containers: Vec<Decl>,
}

/// Flags over the file: each value with where it came from.
struct Layers<'a> {
    flags: [(&'static str, Option<&'a String>); 23],
    file: &'a ConfFile,
}

impl Layers<'_> {
    /// The value of `key` and how to name it in a message.
    fn get(&self, key: &str) -> Option<(&str, String)> {
        if let Some((_, Some(v))) = self.flags.iter().find(|(k, _)| *k == key) {
            return Some((v.as_str(), format!("--{key}")));
        }
        self.file
            .get(key)
            .map(|s| (s.value.as_str(), format!("{}: {key}", s.at)))
    }

    fn num<T>(&self, key: &str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, String>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some((v, at)) = self.get(key) else {
            return Ok(default);
        };
        v.parse::<T>()
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
    match std::fs::read_to_string(&path) {
        Ok(text) => conffile::parse(&path, &text, true),
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
    files.sort();
    let mut decls = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        decls.extend(conffile::parse(&f, &text, false)?.containers);
    }
    Ok(decls)
}

impl Config {
    /// Flags, over the config file, over the defaults.
    pub fn load(flags: &Flags) -> Result<Config, String> {
        let file = read_config_file(flags)?;
        let l = Layers {
            flags: flags.by_key(),
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
        let restart_delay = Duration::from_millis(l.num("restart-delay", 100, 1..=3_600_000)?);
        let restart_max_delay =
            Duration::from_millis(l.num("restart-max-delay", 30_000, 1..=86_400_000)?);
        if restart_max_delay < restart_delay {
            return Err("restart-max-delay must not be below restart-delay".into());
        }
        let log = match l.word("log", "stderr", &["stderr", "syslog"])?.as_str() {
            "syslog" => LogTo::Syslog,
            _ => LogTo::Stderr,
        };
        let cap = 1..=65536;
        Ok(Config {
            socket: l
                .path("socket")?
                .unwrap_or("/run/nanoctr/nanoctr.sock".into()),
            state_dir: l.path("state-dir")?.unwrap_or("/run/nanoctr".into()),
            runtime,
            runtime_root: l.path("runtime-root")?,
            shim,
            max_containers: l.num("max-containers", 64, cap.clone())?,
            max_execs: l.num("max-execs", 32, cap.clone())?,
            max_clients: l.num("max-clients", 16, cap.clone())?,
            max_calls: l.num("max-calls", 8, cap.clone())?,
            retain: l.num("retain", 512, cap)?,
            start_timeout: Duration::from_secs(l.num("start-timeout", 30, 1..=3600)?),
            oom_score_adj: l.num("oom-score-adj", -500, -1000..=1000)?,
            shim_oom_score_adj: l.num("shim-oom-score-adj", -500, -1000..=1000)?,
            restart_delay,
            restart_max_delay,
            restart_window: Duration::from_secs(l.num("restart-window", 10, 0..=86_400)?),
            log,
            log_level: l.word("log-level", "info", &["error", "warn", "info", "debug"])?,
            syslog_socket: l.path("syslog-socket")?.unwrap_or("/dev/log".into()),
            control_tty: l.path("control-tty")?,
            notify_fd: match l.get("notify-fd") {
                None => None,
                Some(_) => Some(l.num("notify-fd", 0, 0..=1_048_576)?),
            },
            pidfile: l.path("pidfile")?,
            containers,
        })
    }
}

impl Config {
    /// An upper bound on the daemon's heap, from its capacities: what the
    /// tables hold at most, plus what one request in flight may use. The
    /// flat-memory test checks the peak stays under it.
    pub fn heap_bound(&self) -> usize {
        use crate::conn::MAX_PENDING_OUTPUT;
        use crate::proto::MAX_LINE;
        const PATH_MAX: usize = 4096;
        // Fixed: the tables and the event ring, allocated at start-up.
        let tables = self.max_containers
            * std::mem::size_of::<Option<crate::container::Container>>()
            + self.max_execs * std::mem::size_of::<Option<crate::container::Exec>>()
            + self.max_clients * std::mem::size_of::<Option<crate::conn::Client>>()
            + (self.max_calls + self.max_containers)
                * std::mem::size_of::<Option<crate::server::Call>>()
            + self.retain * std::mem::size_of::<crate::events::Event>();
        // A container: its request's strings (a line bounds them), kept and
        // encoded once more for the record; its paths; the shim's lines.
        let container = 3 * MAX_LINE + 4 * PATH_MAX + 2 * (crate::shim::MAX_SHIM_LINE + 1024);
        // A client: its line buffer, what it has not read yet, and the
        // largest answer, `list` of a full table.
        let client = MAX_LINE + MAX_PENDING_OUTPUT + self.max_containers * (MAX_LINE + 64);
        // An exec: its name, paths and the shim's lines, and while it is
        // made, the process file (a bundle's process object, in a line's
        // worth of changes).
        let exec = 3 * PATH_MAX + 2 * (crate::shim::MAX_SHIM_LINE + 1024);
        let call = PATH_MAX;
        // std's own (arguments, environment, buffers), what starting a
        // process or reading a directory takes while it lasts, and a `logs`
        // answer being put together (the log read, and the answer).
        let overhead = 256 * 1024 + 2 * crate::tasks::logs::MAX_LOGS_ANSWER as usize;

        tables
            + self.max_containers * container
            + self.max_execs * exec
            + self.max_clients * client
            + (self.max_calls + self.max_containers) * call
            + overhead
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

fn beside_self(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.join(name);
    is_executable(&path).then_some(path)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs() {
        assert_eq!(find_program("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        assert!(find_program("sh").is_some_and(|p| p.is_absolute()));
        assert_eq!(find_program("/etc/passwd"), None);
        assert_eq!(find_program("no-such-program-here"), None);
    }
}
