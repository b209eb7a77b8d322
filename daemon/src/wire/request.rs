//! Requests: the verbs of protocol v1 and their arguments, checked before
//! anything touches the filesystem or a runtime.

use crate::store::events::{Filter, Kind};
pub use crate::store::statedir::INIT;
pub use crate::wire::exec::ExecSpec;
use crate::wire::proto::{refuse, Code, Error};
pub use crate::wire::resources::Resources;
use crate::wire::restart::Restart;
use crate::wire::signal;

/// Every verb with its usage and what it does; `help` prints this table.
pub const VERBS: &[(&str, &str, &str)] = &[
    ("hello", "hello", "protocol and daemon version"),
    ("version", "version", "daemon version"),
    ("help", "help", "this list"),
    (
        "create",
        "create ID BUNDLE [stdin=PATH] [stdout=PATH] [stderr=PATH] [runtime=NAME] [terminal[=no]] \
         [interactive] [cols=N] [rows=N] [log-size=BYTES] [restart=POLICY] [label.KEY=VALUE ...]",
        "create a container from an OCI bundle, not yet started",
    ),
    ("start", "start ID", "start a created container"),
    (
        "run",
        "run ID BUNDLE [options as for create]",
        "create and start",
    ),
    (
        "exec",
        "exec ID PROC [terminal] [interactive] [cwd=DIR] [env=K=V ...] [user=UID[:GID]] \
         [cols=N] [rows=N] [log-size=BYTES] -- ARG...",
        "run another process in a running container, with its own shim",
    ),
    (
        "wait",
        "wait ID [PROC]",
        "wait for the init (or process PROC) to exit; answers exit=N",
    ),
    (
        "kill",
        "kill ID [SIGNAL] [all | proc=PROC]",
        "signal the init, every process (all), or one exec process (TERM, SIGKILL, 9, ...; default TERM)",
    ),
    ("pause", "pause ID", "freeze every process of the container"),
    ("resume", "resume ID", "thaw a paused container"),
    (
        "update",
        "update ID [memory=BYTES] [memory-swap=BYTES] [cpu-shares=N] [cpu-quota=N] [cpu-period=N] [pids=N]",
        "change a live container's limits (BYTES may end in k, m or g)",
    ),
    (
        "stats",
        "stats ID",
        "memory, cpu and pids usage and limits, from the container's cgroup",
    ),
    ("ps", "ps ID", "the pids in the container, one per line"),
    (
        "checkpoint",
        "checkpoint ID NAME [exit] [dir=DIR]",
        "save the container's processes to DIR/NAME (default BUNDLE/checkpoints); exit stops it after",
    ),
    (
        "restore",
        "restore ID BUNDLE checkpoint=NAME [dir=DIR] [options as for create]",
        "a new running container from a checkpoint",
    ),
    (
        "checkpoints",
        "checkpoints ID [dir=DIR]",
        "the container's checkpoints, one per line",
    ),
    (
        "checkpoint-delete",
        "checkpoint-delete ID NAME [dir=DIR]",
        "remove a checkpoint",
    ),
    (
        "delete",
        "delete ID [force]",
        "remove a stopped container; force kills it first",
    ),
    ("list", "list", "one line per container"),
    ("state", "state ID", "one container in detail"),
    (
        "events",
        "events [since=SEQ] [id=ID] [type=TYPE]",
        "replay retained events after SEQ, then follow new ones",
    ),
    (
        "metrics",
        "metrics",
        "counters and gauges in Prometheus text format",
    ),
    (
        "attach",
        "attach ID [PROC]",
        "where to connect to a process's console or stdio",
    ),
    (
        "resize",
        "resize ID PROC COLS ROWS",
        "set the size of a process's terminal",
    ),
    (
        "closestdin",
        "closestdin ID [PROC]",
        "end a process's input",
    ),
    (
        "logs",
        "logs ID [PROC] [tail=N] [follow]",
        "the captured output (last N lines); follow streams what comes",
    ),
];

/// The usage line of a verb.
pub fn usage(verb: &str) -> &'static str {
    VERBS.iter().find(|v| v.0 == verb).map_or("help", |v| v.1)
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Hello,
    Version,
    Help,
    Create(Spec),
    Run(Spec),
    Start(String),
    Exec(ExecSpec),
    Wait {
        id: String,
        proc: String,
    },
    Kill {
        id: String,
        signal: i32,
        target: KillTarget,
    },
    Pause(String),
    Resume(String),
    Update {
        id: String,
        resources: Resources,
    },
    Stats(String),
    Ps(String),
    Checkpoint {
        id: String,
        name: String,
        exit: bool,
        dir: Option<String>,
    },
    Restore {
        spec: Spec,
        name: String,
        dir: Option<String>,
    },
    Checkpoints {
        id: String,
        dir: Option<String>,
    },
    CheckpointDelete {
        id: String,
        name: String,
        dir: Option<String>,
    },
    Delete {
        id: String,
        force: bool,
    },
    List,
    State(String),
    Events(Filter),
    Metrics,
    Attach {
        id: String,
        proc: String,
    },
    Resize {
        id: String,
        proc: String,
        cols: u16,
        rows: u16,
    },
    CloseStdin {
        id: String,
        proc: String,
    },
    Logs {
        id: String,
        proc: String,
        tail: Option<usize>,
        follow: bool,
    },
}

/// What `kill` signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillTarget {
    /// The init, through the runtime.
    Init,
    /// Every process of the container (`<runtime> kill --all`).
    All,
    /// One exec process, through its shim.
    Proc(String),
}

/// What `create` and `run` say about a new container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    pub id: String,
    /// Absolute path of the bundle.
    pub bundle: String,
    pub stdin: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Runtime name (looked up in `PATH`) or absolute path; the daemon's
    /// default when absent.
    pub runtime: Option<String>,
    pub labels: Vec<(String, String)>,
    /// `terminal` / `terminal=no`: overrides the bundle's process.terminal.
    pub terminal: Option<bool>,
    /// `interactive`: stdin is a pipe attachers write to.
    pub interactive: bool,
    /// A terminal's first size (default 80x24).
    pub cols: Option<u16>,
    pub rows: Option<u16>,
    /// Cap of the captured output log (`log-size=BYTES`, default 64 KiB).
    pub log_size: Option<u32>,
    /// What happens when it stops (`restart=POLICY`).
    pub restart: Restart,
}

impl Request {
    /// Parses the words of a request line.
    pub fn parse(words: &[String]) -> Result<Request, Error> {
        let Some((verb, args)) = words.split_first() else {
            return refuse(Code::Invalid, "empty request; try help");
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let bad = || Error::new(Code::Invalid, format!("usage: {}", usage(verb)));
        let req = match (verb.as_str(), args.as_slice()) {
            ("hello", []) => Request::Hello,
            ("version", []) => Request::Version,
            ("help", []) => Request::Help,
            ("list", []) => Request::List,
            ("metrics", []) => Request::Metrics,
            ("events", opts) => Request::Events(parse_filter(opts)?),
            ("attach", [id, proc @ ..]) if proc.len() < 2 => Request::Attach {
                id: check_id(id)?,
                proc: check_proc(proc.first())?,
            },
            ("closestdin", [id, proc @ ..]) if proc.len() < 2 => Request::CloseStdin {
                id: check_id(id)?,
                proc: check_proc(proc.first())?,
            },
            ("resize", [id, proc, cols, rows]) => {
                let size = |n: &str| n.parse::<u16>().ok().filter(|&n| n > 0);
                let (Some(cols), Some(rows)) = (size(cols), size(rows)) else {
                    return refuse(Code::Invalid, "COLS and ROWS must be 1 to 65535");
                };
                Request::Resize {
                    id: check_id(id)?,
                    proc: check_proc(Some(proc))?,
                    cols,
                    rows,
                }
            }
            ("logs", [id, opts @ ..]) => {
                let (mut tail, mut follow) = (None, false);
                let (proc, opts) = match opts.split_first() {
                    Some((p, rest)) if !p.contains('=') && *p != "follow" => (Some(p), rest),
                    _ => (None, opts),
                };
                for opt in opts {
                    match opt.split_once('=') {
                        Some(("tail", n)) if tail.is_none() => {
                            tail =
                                Some(n.parse().map_err(|_| {
                                    Error::new(Code::Invalid, format!("bad tail={n}"))
                                })?)
                        }
                        None if *opt == "follow" && !follow => follow = true,
                        _ => return Err(bad()),
                    }
                }
                Request::Logs {
                    id: check_id(id)?,
                    proc: check_proc(proc)?,
                    tail,
                    follow,
                }
            }
            ("exec", [id, proc, rest @ ..]) => Request::Exec(ExecSpec::parse(id, proc, rest)?),
            ("pause", [id]) => Request::Pause(check_id(id)?),
            ("resume", [id]) => Request::Resume(check_id(id)?),
            ("stats", [id]) => Request::Stats(check_id(id)?),
            ("ps", [id]) => Request::Ps(check_id(id)?),
            ("update", [id, opts @ ..]) => Request::Update {
                id: check_id(id)?,
                resources: Resources::parse(opts)?,
            },
            ("checkpoint", [id, name, opts @ ..]) => {
                let mut exit = false;
                let dir = checkpoint_dir(opts, |opt| match opt {
                    "exit" if !exit => {
                        exit = true;
                        true
                    }
                    _ => false,
                })?;
                Request::Checkpoint {
                    id: check_id(id)?,
                    name: check_name(name)?,
                    exit,
                    dir,
                }
            }
            ("checkpoints", [id, opts @ ..]) => Request::Checkpoints {
                id: check_id(id)?,
                dir: checkpoint_dir(opts, |_| false)?,
            },
            ("checkpoint-delete", [id, name, opts @ ..]) => Request::CheckpointDelete {
                id: check_id(id)?,
                name: check_name(name)?,
                dir: checkpoint_dir(opts, |_| false)?,
            },
            ("restore", [id, bundle, opts @ ..]) => {
                let (mut name, mut dir, mut rest) = (None, None, Vec::new());
                for opt in opts {
                    match opt.split_once('=') {
                        Some(("checkpoint", n)) if name.is_none() => name = Some(check_name(n)?),
                        Some(("dir", d)) if dir.is_none() => dir = Some(check_path("dir", d)?),
                        _ => rest.push(*opt),
                    }
                }
                let name =
                    name.ok_or_else(|| Error::new(Code::Invalid, "restore needs checkpoint=NAME"))?;
                Request::Restore {
                    spec: Spec::parse(id, bundle, &rest)?,
                    name,
                    dir,
                }
            }
            ("create", [id, bundle, opts @ ..]) => Request::Create(Spec::parse(id, bundle, opts)?),
            ("run", [id, bundle, opts @ ..]) => Request::Run(Spec::parse(id, bundle, opts)?),
            ("start", [id]) => Request::Start(check_id(id)?),
            ("wait", [id, proc @ ..]) if proc.len() < 2 => Request::Wait {
                id: check_id(id)?,
                proc: check_proc(proc.first())?,
            },
            ("state", [id]) => Request::State(check_id(id)?),
            ("kill", [id, opts @ ..]) if opts.len() < 3 => {
                let (mut signal, mut target) = (None, None);
                for opt in opts {
                    let t = match opt.split_once('=') {
                        None if *opt == "all" => KillTarget::All,
                        Some(("proc", p)) => match check_proc(Some(&p))? {
                            p if p == INIT => KillTarget::Init,
                            p => KillTarget::Proc(p),
                        },
                        None if signal.is_none() => {
                            signal = Some(signal::parse(opt).ok_or_else(|| {
                                Error::new(Code::Invalid, format!("unknown signal {opt}"))
                            })?);
                            continue;
                        }
                        _ => return Err(bad()),
                    };
                    if target.replace(t).is_some() {
                        return refuse(Code::Invalid, "kill takes all or proc=PROC, once");
                    }
                }
                Request::Kill {
                    id: check_id(id)?,
                    signal: signal.unwrap_or(libc::SIGTERM),
                    target: target.unwrap_or(KillTarget::Init),
                }
            }
            ("delete", [id]) => Request::Delete {
                id: check_id(id)?,
                force: false,
            },
            ("delete", [id, "force"]) => Request::Delete {
                id: check_id(id)?,
                force: true,
            },
            (v, _) if VERBS.iter().any(|known| known.0 == v) => return Err(bad()),
            (v, _) => return refuse(Code::Invalid, format!("unknown verb {v}; try help")),
        };
        Ok(req)
    }
}

/// The console options `create` and `exec` share, `cols=N`, `rows=N` and
/// `log-size=BYTES`, into their slots; false if `key` is none of them.
pub(crate) fn console_option(
    key: &str,
    value: &str,
    cols: &mut Option<u16>,
    rows: &mut Option<u16>,
    log_size: &mut Option<u32>,
) -> Result<bool, Error> {
    let twice = || Error::new(Code::Invalid, format!("{key} given twice"));
    match key {
        "cols" | "rows" => {
            let n = value.parse::<u16>().ok().filter(|&n| n > 0);
            let n =
                n.ok_or_else(|| Error::new(Code::Invalid, format!("{key} must be 1 to 65535")))?;
            let slot = if key == "cols" { cols } else { rows };
            if slot.replace(n).is_some() {
                return Err(twice());
            }
        }
        "log-size" => {
            let n = crate::wire::resources::parse_bytes(value)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n >= MIN_LOG_SIZE);
            let n = n.ok_or_else(|| {
                Error::new(
                    Code::Invalid,
                    format!("log-size must be {MIN_LOG_SIZE} to 4294967295 bytes"),
                )
            })?;
            if log_size.replace(n).is_some() {
                return Err(twice());
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

impl Spec {
    pub(crate) fn parse(id: &str, bundle: &str, opts: &[&str]) -> Result<Spec, Error> {
        let mut spec = Spec {
            id: check_id(id)?,
            bundle: check_path("bundle", bundle)?,
            ..Spec::default()
        };
        let twice = |key: &str| Error::new(Code::Invalid, format!("{key} given twice"));
        for opt in opts {
            let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
            if console_option(
                key,
                value,
                &mut spec.cols,
                &mut spec.rows,
                &mut spec.log_size,
            )? {
                continue;
            }
            match key {
                "terminal" => {
                    let on = match value {
                        "" | "yes" => true,
                        "no" => false,
                        _ => return refuse(Code::Invalid, "terminal takes no value, or yes or no"),
                    };
                    if spec.terminal.replace(on).is_some() {
                        return Err(twice(key));
                    }
                }
                "interactive" if value.is_empty() => spec.interactive = true,
                "restart" => {
                    let policy = Restart::parse(value).map_err(|m| Error::new(Code::Invalid, m))?;
                    if std::mem::replace(&mut spec.restart, policy) != Restart::No {
                        return Err(twice(key));
                    }
                }
                "stdin" | "stdout" | "stderr" | "runtime" if !value.is_empty() => {
                    let checked = if key == "runtime" {
                        check_runtime(value)?
                    } else {
                        check_path(key, value)?
                    };
                    let slot = match key {
                        "stdin" => &mut spec.stdin,
                        "stdout" => &mut spec.stdout,
                        "stderr" => &mut spec.stderr,
                        _ => &mut spec.runtime,
                    };
                    if slot.replace(checked).is_some() {
                        return Err(twice(key));
                    }
                }
                _ => {
                    let Some(name) = key.strip_prefix("label.").filter(|_| opt.contains('='))
                    else {
                        return refuse(Code::Invalid, format!("unknown option {opt}"));
                    };
                    spec.labels
                        .push((check_label(name, value)?, value.to_string()));
                }
            }
        }
        if spec.terminal == Some(true)
            && (spec.stdin.is_some() || spec.stdout.is_some() || spec.stderr.is_some())
        {
            return refuse(
                Code::Invalid,
                "a terminal container's stdio is its terminal: no stdin=, stdout= or stderr=",
            );
        }
        Ok(spec)
    }

    /// The options again, as `parse` takes them (for the container record).
    pub fn options(&self) -> Vec<String> {
        use crate::wire::proto::quote;
        let mut words = Vec::new();
        for (key, value) in [
            ("stdin", &self.stdin),
            ("stdout", &self.stdout),
            ("stderr", &self.stderr),
        ] {
            if let Some(v) = value {
                words.push(format!("{key}={}", quote(v)));
            }
        }
        match self.terminal {
            Some(true) => words.push("terminal".into()),
            Some(false) => words.push("terminal=no".into()),
            None => {}
        }
        if self.interactive {
            words.push("interactive".into());
        }
        for (key, value) in [("cols", self.cols), ("rows", self.rows)] {
            if let Some(n) = value {
                words.push(format!("{key}={n}"));
            }
        }
        if let Some(n) = self.log_size {
            words.push(format!("log-size={n}"));
        }
        if self.restart != Restart::No {
            words.push(format!("restart={}", self.restart.as_string()));
        }
        for (k, v) in &self.labels {
            words.push(format!("label.{k}={}", quote(v)));
        }
        words
    }
}

/// The smallest output log cap (as the shim's).
pub const MIN_LOG_SIZE: u32 = 4096;

fn parse_filter(opts: &[&str]) -> Result<Filter, Error> {
    let mut f = Filter::default();
    for opt in opts {
        match opt.split_once('=') {
            Some(("since", n)) if f.since.is_none() => {
                f.since = Some(
                    n.parse()
                        .map_err(|_| Error::new(Code::Invalid, format!("bad since={n}")))?,
                )
            }
            Some(("id", id)) if f.id.is_none() => f.id = Some(check_id(id)?),
            Some(("type", t)) if f.kind.is_none() => {
                f.kind =
                    Some(Kind::parse(t).ok_or_else(|| {
                        Error::new(Code::Invalid, format!("unknown event type {t}"))
                    })?)
            }
            _ => return refuse(Code::Invalid, format!("usage: {}", usage("events"))),
        }
    }
    Ok(f)
}

/// A process of a container: `init` (the default) or an exec process's
/// name.
fn check_proc(proc: Option<&&str>) -> Result<String, Error> {
    match proc.copied() {
        None => Ok(INIT.into()),
        Some(p) => {
            check_name(p).map_err(|e| Error::new(e.code, e.message.replace("id", "process name")))
        }
    }
}

/// A checkpoint or process name: the rules of an id (one safe path
/// component).
fn check_name(name: &str) -> Result<String, Error> {
    check_id(name).map_err(|e| Error::new(e.code, e.message.replacen("bad id", "bad name", 1)))
}

/// The `dir=DIR` of the checkpoint verbs; `other` takes the verb's own
/// flag words.
fn checkpoint_dir(
    opts: &[&str],
    mut other: impl FnMut(&str) -> bool,
) -> Result<Option<String>, Error> {
    let mut dir = None;
    for opt in opts {
        match opt.split_once('=') {
            Some(("dir", d)) if dir.is_none() => dir = Some(check_path("dir", d)?),
            None if other(opt) => {}
            _ => return refuse(Code::Invalid, format!("unexpected {opt}")),
        }
    }
    Ok(dir)
}

/// Longest container id.
pub const MAX_ID: usize = 64;

/// Checks a container id: `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}` and no `..`,
/// so that it is always one safe path component.
pub fn check_id(id: &str) -> Result<String, Error> {
    let bad = |why: &str| refuse(Code::Invalid, format!("bad id: {why}"));
    let Some(first) = id.bytes().next() else {
        return bad("empty");
    };
    if id.len() > MAX_ID {
        return bad("longer than 64 bytes");
    }
    if !first.is_ascii_alphanumeric() {
        return bad("must start with a letter or digit");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
    if id.contains("..") {
        return bad("must not contain '..'");
    }
    Ok(id.to_string())
}

/// Checks a path given in a request: absolute, with no control characters.
pub(crate) fn check_path(what: &str, path: &str) -> Result<String, Error> {
    if !path.starts_with('/') {
        return refuse(Code::Invalid, format!("{what} must be an absolute path"));
    }
    if path.chars().any(char::is_control) {
        return refuse(Code::Invalid, format!("{what} contains control characters"));
    }
    Ok(path.to_string())
}

/// A runtime is a plain program name (looked up in `PATH`) or an absolute
/// path.
fn check_runtime(name: &str) -> Result<String, Error> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b));
    if plain && !name.starts_with('.') {
        Ok(name.to_string())
    } else {
        check_path("runtime", name)
    }
}

fn check_label(key: &str, value: &str) -> Result<String, Error> {
    let ok_key = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b));
    if !ok_key {
        return refuse(Code::Invalid, format!("bad label name {key:?}"));
    }
    if value.chars().any(char::is_control) {
        return refuse(
            Code::Invalid,
            format!("label {key} contains control characters"),
        );
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::proto::split_words;

    fn parse(line: &str) -> Result<Request, Error> {
        Request::parse(&split_words(line.as_bytes())?)
    }

    fn code(line: &str) -> Code {
        parse(line).unwrap_err().code
    }

    #[test]
    fn simple_verbs() {
        assert_eq!(parse("hello").unwrap(), Request::Hello);
        assert_eq!(parse("list").unwrap(), Request::List);
        assert_eq!(parse("start web").unwrap(), Request::Start("web".into()));
        assert_eq!(
            parse("wait a.b-c_9").unwrap(),
            Request::Wait {
                id: "a.b-c_9".into(),
                proc: "init".into()
            }
        );
        assert_eq!(
            parse("wait web sh1").unwrap(),
            Request::Wait {
                id: "web".into(),
                proc: "sh1".into()
            }
        );
        assert_eq!(parse("pause web").unwrap(), Request::Pause("web".into()));
        assert_eq!(parse("stats web").unwrap(), Request::Stats("web".into()));
        assert_eq!(parse("ps web").unwrap(), Request::Ps("web".into()));
        assert_eq!(
            parse("delete web force").unwrap(),
            Request::Delete {
                id: "web".into(),
                force: true
            }
        );
    }

    #[test]
    fn kill_signals() {
        let sig = |line| match parse(line).unwrap() {
            Request::Kill { signal, .. } => signal,
            other => panic!("{other:?}"),
        };
        assert_eq!(sig("kill web"), libc::SIGTERM);
        assert_eq!(sig("kill web KILL"), libc::SIGKILL);
        assert_eq!(sig("kill web SIGKILL"), libc::SIGKILL);
        assert_eq!(sig("kill web 9"), 9);
        assert_eq!(sig("kill web hup"), libc::SIGHUP);
        assert_eq!(code("kill web NOPE"), Code::Invalid);
        assert_eq!(code("kill web 0"), Code::Invalid);
        assert_eq!(code("kill web 65"), Code::Invalid);
        let target = |line| match parse(line).unwrap() {
            Request::Kill { target, signal, .. } => (signal, target),
            other => panic!("{other:?}"),
        };
        assert_eq!(target("kill web"), (libc::SIGTERM, KillTarget::Init));
        assert_eq!(
            target("kill web KILL all"),
            (libc::SIGKILL, KillTarget::All)
        );
        assert_eq!(target("kill web all"), (libc::SIGTERM, KillTarget::All));
        assert_eq!(
            target("kill web proc=sh1 INT"),
            (libc::SIGINT, KillTarget::Proc("sh1".into()))
        );
        assert_eq!(target("kill web 9 proc=init"), (9, KillTarget::Init));
        assert_eq!(code("kill web all proc=sh1"), Code::Invalid);
        assert_eq!(code("kill web 9 9"), Code::Invalid);
        assert_eq!(code("kill web proc=../x"), Code::Invalid);
        assert_eq!(code("kill web 9 all extra"), Code::Invalid);
    }

    #[test]
    fn processes_and_checkpoints() {
        let Request::Exec(e) = parse("exec web sh1 terminal -- sh -c \"echo hi\"").unwrap() else {
            panic!()
        };
        assert_eq!((e.id.as_str(), e.proc.as_str()), ("web", "sh1"));
        assert_eq!(e.args, ["sh", "-c", "echo hi"]);
        assert_eq!(code("exec web"), Code::Invalid);
        assert_eq!(code("exec web init -- true"), Code::Invalid);
        let logs = |line| match parse(line).unwrap() {
            Request::Logs {
                proc, tail, follow, ..
            } => (proc, tail, follow),
            other => panic!("{other:?}"),
        };
        assert_eq!(logs("logs web"), ("init".into(), None, false));
        assert_eq!(logs("logs web follow"), ("init".into(), None, true));
        assert_eq!(logs("logs web sh1 tail=3"), ("sh1".into(), Some(3), false));
        assert_eq!(code("logs web a b"), Code::Invalid);
        assert_eq!(
            parse("checkpoint web one exit dir=/c").unwrap(),
            Request::Checkpoint {
                id: "web".into(),
                name: "one".into(),
                exit: true,
                dir: Some("/c".into())
            }
        );
        assert_eq!(code("checkpoint web one exit exit"), Code::Invalid);
        assert_eq!(code("checkpoint web ../one"), Code::Invalid);
        assert_eq!(code("checkpoint web one dir=rel"), Code::Invalid);
        let Request::Restore { spec, name, dir } =
            parse("restore web /b checkpoint=one terminal label.a=b").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (spec.bundle.as_str(), name.as_str(), dir),
            ("/b", "one", None)
        );
        assert_eq!(spec.terminal, Some(true));
        assert_eq!(code("restore web /b"), Code::Invalid);
        assert_eq!(
            parse("checkpoints web").unwrap(),
            Request::Checkpoints {
                id: "web".into(),
                dir: None
            }
        );
        assert_eq!(code("checkpoint-delete web"), Code::Invalid);
        assert!(matches!(
            parse("update web memory=8m pids=10").unwrap(),
            Request::Update { .. }
        ));
        assert_eq!(code("update web"), Code::Invalid);
    }

    #[test]
    fn create_with_options() {
        let r = parse(
            r#"create web /b stdout=/o stderr="/e f" runtime=crun label.app=x label.note="a b""#,
        )
        .unwrap();
        let Request::Create(s) = r else { panic!() };
        assert_eq!(s.id, "web");
        assert_eq!(s.bundle, "/b");
        assert_eq!(s.stdout.as_deref(), Some("/o"));
        assert_eq!(s.stderr.as_deref(), Some("/e f"));
        assert_eq!(s.stdin, None);
        assert_eq!(s.runtime.as_deref(), Some("crun"));
        assert_eq!(
            s.labels,
            [("app".into(), "x".into()), ("note".into(), "a b".into())]
        );
        assert!(matches!(
            parse("run x /b runtime=/usr/bin/runc").unwrap(),
            Request::Run(_)
        ));
    }

    #[test]
    fn refusals() {
        assert_eq!(code(""), Code::Invalid);
        assert_eq!(code("frobnicate"), Code::Invalid);
        assert!(parse("frobnicate")
            .unwrap_err()
            .message
            .contains("unknown verb"));
        assert!(parse("start")
            .unwrap_err()
            .message
            .contains("usage: start ID"));
        assert_eq!(code("start a b"), Code::Invalid);
        assert_eq!(code("delete web now"), Code::Invalid);
        assert_eq!(code("create web relative/bundle"), Code::Invalid);
        assert_eq!(code("create web /b stdout=rel"), Code::Invalid);
        assert_eq!(code("create web /b bogus=1"), Code::Invalid);
        assert_eq!(code("create web /b stdout=/a stdout=/b"), Code::Invalid);
        assert_eq!(code("create web /b plain"), Code::Invalid);
        assert_eq!(code("create web /b runtime=../runc"), Code::Invalid);
        assert_eq!(code("create web /b runtime=.hidden"), Code::Invalid);
        assert_eq!(code("create web /b label.=x"), Code::Invalid);
        assert_eq!(code("create web \"/b\tc\""), Code::Invalid);
    }

    #[test]
    fn hostile_ids() {
        let long = "a".repeat(65);
        for id in [
            "../x", "..", "a/b", "", " a", "-a", ".a", "a..b", "a\u{1}b", "é", &long,
        ] {
            let line = format!("start {}", crate::wire::proto::quote(id));
            assert_eq!(code(&line), Code::Invalid, "{id:?}");
        }
        assert!(check_id(&"a".repeat(64)).is_ok());
        assert!(check_id("0").is_ok());
    }
}
