//! The daemon's flags and what they resolve to.

use argh::FromArgs;
use std::path::{Path, PathBuf};

/// nanoctrd: the nanoctr daemon. It serves the nanoctr line protocol on a
/// unix socket, keeps the table of containers, and starts one nanoctr-shim
/// per container, which survives the daemon. SIGTERM or SIGINT stop the
/// daemon and leave the containers running.
#[derive(FromArgs, Debug)]
pub struct Flags {
    /// unix socket to serve (default /run/nanoctr/nanoctr.sock); mode 0600
    #[argh(option, default = "PathBuf::from(\"/run/nanoctr/nanoctr.sock\")")]
    pub socket: PathBuf,

    /// state directory, one subdirectory per container (default /run/nanoctr)
    #[argh(option, default = "PathBuf::from(\"/run/nanoctr\")")]
    pub state_dir: PathBuf,

    /// OCI runtime: a name looked up in PATH or a path (default runc)
    #[argh(option, default = "String::from(\"runc\")")]
    pub runtime: String,

    /// state root handed to the runtime as --root (default: its own)
    #[argh(option)]
    pub runtime_root: Option<PathBuf>,

    /// nanoctr-shim binary (default: beside nanoctrd, then PATH)
    #[argh(option)]
    pub shim: Option<PathBuf>,

    /// most containers held at once (default 64)
    #[argh(option, default = "64")]
    pub max_containers: usize,

    /// most exec processes held at once, over all containers; an exited
    /// one stays (for wait and state) until its room is needed (default 32)
    #[argh(option, default = "32")]
    pub max_execs: usize,

    /// most client connections at once; more wait to be accepted until one
    /// leaves (default 16)

    #[argh(option, default = "16")]
    pub max_clients: usize,

    /// most runtime calls in flight at once; further requests wait their
    /// turn (default 8)
    #[argh(option, default = "8")]
    pub max_calls: usize,

    /// events kept for replay, in memory and in the state dir; a subscriber
    /// that falls this far behind is cut off (default 512)
    #[argh(option, default = "512")]
    pub retain: usize,

    /// seconds any runtime call may take before it is killed and the request
    /// answered ERR timeout (default 30)
    #[argh(option, default = "30")]
    pub start_timeout: u64,

    /// the daemon's own oom_score_adj, so the kernel kills containers before
    /// their supervisor (default -500)
    #[argh(option, default = "-500")]
    pub oom_score_adj: i32,

    /// the shims' oom_score_adj; containers get 0 (or what their bundle
    /// says) (default -500)
    #[argh(option, default = "-500")]
    pub shim_oom_score_adj: i32,

    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}

/// The flags, checked and resolved.
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
    pub start_timeout: std::time::Duration,
    pub oom_score_adj: i32,
    pub shim_oom_score_adj: i32,
}

impl Config {
    pub fn from_flags(f: Flags) -> Result<Config, String> {
        for (name, n) in [
            ("--max-containers", f.max_containers),
            ("--max-execs", f.max_execs),
            ("--max-clients", f.max_clients),
            ("--max-calls", f.max_calls),
            ("--retain", f.retain),
        ] {
            if !(1..=65536).contains(&n) {
                return Err(format!("{name} must be between 1 and 65536"));
            }
        }
        if !(1..=3600).contains(&f.start_timeout) {
            return Err("--start-timeout must be between 1 and 3600 seconds".into());
        }
        for (name, adj) in [
            ("--oom-score-adj", f.oom_score_adj),
            ("--shim-oom-score-adj", f.shim_oom_score_adj),
        ] {
            if !(-1000..=1000).contains(&adj) {
                return Err(format!("{name} must be between -1000 and 1000"));
            }
        }
        let runtime = find_program(&f.runtime)
            .ok_or_else(|| format!("runtime {} not found (looked in PATH)", f.runtime))?;
        let shim = match f.shim {
            Some(p) => find_program(&p.to_string_lossy())
                .ok_or_else(|| format!("shim {} is not an executable file", p.display()))?,
            None => beside_self("nanoctr-shim")
                .or_else(|| find_program("nanoctr-shim"))
                .ok_or("nanoctr-shim not found beside nanoctrd or in PATH; use --shim")?,
        };
        let absolute = |p: PathBuf, what: &str| {
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(format!("{what} must be an absolute path"))
            }
        };
        Ok(Config {
            socket: absolute(f.socket, "--socket")?,
            state_dir: absolute(f.state_dir, "--state-dir")?,
            runtime,
            runtime_root: f
                .runtime_root
                .map(|p| absolute(p, "--runtime-root"))
                .transpose()?,
            shim,
            max_containers: f.max_containers,
            max_execs: f.max_execs,
            max_clients: f.max_clients,
            max_calls: f.max_calls,
            retain: f.retain,
            start_timeout: std::time::Duration::from_secs(f.start_timeout),
            oom_score_adj: f.oom_score_adj,
            shim_oom_score_adj: f.shim_oom_score_adj,
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
