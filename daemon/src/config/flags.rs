//! The daemon's command line: its own switches, and every setting as
//! `--KEY VALUE`, the keys being those of the config file.

use std::path::PathBuf;

/// What `nanoctrd --help` says before the options.
const ABOUT: &str = "\
usage: nanoctrd [--config PATH] [--check-config] [--OPTION VALUE ...]

nanoctrd: the nanoctr daemon. It serves the nanoctr line protocol on a unix
socket (and, with --control-tty, on a serial line), keeps the table of
containers, starts one nanoctr-shim per container process, which survives
the daemon, and starts the containers its config declares. It stays in the
foreground; SIGTERM or SIGINT stop it and leave the containers running.

Every option can also be set in the config file as `key = value` (the
option without --); options given here win.

  --config PATH     config file (default /etc/nanoctr/nanoctrd.conf when it
                    exists)
  --check-config    read the config and the declared containers, say what
                    is wrong (exit 1 for a container that would not start,
                    2 for a bad config) or that it is good (0), and exit
  --version         print the version and exit
  --help            this text
";

/// The options, each also a config file key: name, value, what it does.
pub const OPTIONS: &[(&str, &str, &str)] = &[
    (
        "socket",
        "PATH",
        "unix socket to serve, mode 0600 (default /run/nanoctr/nanoctr.sock)",
    ),
    (
        "state-dir",
        "DIR",
        "state directory, on a tmpfs (default /run/nanoctr)",
    ),
    (
        "image-store",
        "DIR",
        "the image store `nanoctr import` keeps layers in; what a dead import left there is removed at start (default /var/lib/nanoctr/images)",
    ),
    (
        "update-dir",
        "DIR",
        "where swapped containers' update records are kept, on flash: which version runs, and the previous one until commit (default /var/lib/nanoctr/updates)",
    ),
    (
        "runtime",
        "NAME",
        "OCI runtime: a name in PATH or a path (default runc)",
    ),
    (
        "runtime-root",
        "DIR",
        "state root handed to the runtime as --root (default: its own)",
    ),
    (
        "shim",
        "PATH",
        "nanoctr-shim (default: beside nanoctrd, then PATH)",
    ),
    (
        "max-containers",
        "N",
        "most containers held at once (default 64)",
    ),
    (
        "max-execs",
        "N",
        "most exec processes, over all containers (default 32)",
    ),
    (
        "max-clients",
        "N",
        "most clients asking at once; the idle longest makes room (default 16)",
    ),
    (
        "max-followers",
        "N",
        "most clients in wait, events, logs follow (default 32)",
    ),
    (
        "client-timeout",
        "SECONDS",
        "close a client idle this long (default 60)",
    ),
    (
        "max-calls",
        "N",
        "most runtime calls at once; more wait their turn (default 8)",
    ),
    (
        "retain",
        "N",
        "events kept for replay, in memory and on disk (default 512)",
    ),
    (
        "start-timeout",
        "SECONDS",
        "longest a runtime call may take (default 30)",
    ),
    (
        "oom-score-adj",
        "N",
        "the daemon's oom_score_adj (default -500)",
    ),
    (
        "shim-oom-score-adj",
        "N",
        "the shims' oom_score_adj (default -500)",
    ),
    (
        "restart-delay",
        "MS",
        "first restart's delay; doubles in a row (default 100)",
    ),
    (
        "restart-max-delay",
        "MS",
        "longest delay between restarts (default 30000)",
    ),
    (
        "restart-window",
        "SECONDS",
        "a run this long starts a new row (default 10)",
    ),
    (
        "containers-dir",
        "DIR",
        "*.conf files declaring containers (default /etc/nanoctr/containers.d)",
    ),
    ("log", "WHERE", "stderr or syslog (default stderr)"),
    (
        "log-level",
        "LEVEL",
        "error, warn, info or debug (default info)",
    ),
    (
        "syslog-socket",
        "PATH",
        "syslog's socket (default /dev/log)",
    ),
    (
        "control-tty",
        "DEVICE",
        "also serve the protocol on this serial line",
    ),
    (
        "notify-fd",
        "N",
        "write a newline on descriptor N once serving (s6)",
    ),
    (
        "pidfile",
        "PATH",
        "write the pid here once serving; removed at exit",
    ),
    (
        "net-dir",
        "DIR",
        "bridge addresses, kept across reboots (default /var/lib/nanoctr/net)",
    ),
    (
        "bridge-subnet",
        "A.B.C.D/N",
        "net=bridge's subnet, gateway .1 (default 10.88.0.0/24)",
    ),
    (
        "net-hook",
        "PATH",
        "run PATH add|del ID IFACE IP as bridge interfaces come and go",
    ),
    (
        "cni-conf-dir",
        "DIR",
        "net=cni's network configurations (default /etc/cni/net.d)",
    ),
    (
        "cni-bin-dir",
        "DIR",
        "net=cni's plugins (default /opt/cni/bin, then /usr/lib/cni)",
    ),
    (
        "watchdog",
        "DEVICE",
        "hardware watchdog, petted while the critical containers are well",
    ),
    (
        "watchdog-interval",
        "SECONDS",
        "between pets (default: a third of its timeout, else 5)",
    ),
    (
        "watchdog-timeout",
        "SECONDS",
        "timeout to set on it (default: its own)",
    ),
];

/// The command line: the daemon's own switches, and options by config key.
#[derive(Debug, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub check_config: bool,
    pub version: bool,
    pub help: bool,
    /// `--KEY VALUE` or `--KEY=VALUE`, by key.
    pub values: Vec<(&'static str, String)>,
}

impl Flags {
    /// Reads the arguments (without the program name).
    pub fn parse(args: &[String]) -> Result<Flags, String> {
        let mut f = Flags::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let Some(opt) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg}; see --help"));
            };
            let (name, inline) = match opt.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (opt, None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| format!("--{name} needs a value"))
            };
            match name {
                "help" => f.help = true,
                "version" => f.version = true,
                "check-config" => f.check_config = true,
                "config" => f.config = Some(value()?.into()),
                _ => {
                    let Some(&(key, _, _)) = OPTIONS.iter().find(|o| o.0 == name) else {
                        return Err(format!("unknown option --{name}; see --help"));
                    };
                    if f.values.iter().any(|(k, _)| *k == key) {
                        return Err(format!("--{key} given twice"));
                    }
                    f.values.push((key, value()?));
                }
            }
        }
        Ok(f)
    }

    /// What `--help` prints.
    pub fn usage() -> String {
        let mut s = String::from(ABOUT);
        for (key, value, what) in OPTIONS {
            let opt = format!("--{key} {value}");
            s.push_str(&format!("  {opt:<28}{what}\n"));
        }
        s
    }
}
