//! Requests: the verbs of protocol v1 and their arguments, checked before
//! anything touches the filesystem or a runtime.

use crate::events::{Filter, Kind};
use crate::proto::{refuse, Code, Error};
use crate::signal;

/// Every verb with its usage and what it does; `help` prints this table.
pub const VERBS: &[(&str, &str, &str)] = &[
    ("hello", "hello", "protocol and daemon version"),
    ("version", "version", "daemon version"),
    ("help", "help", "this list"),
    (
        "create",
        "create ID BUNDLE [stdin=PATH] [stdout=PATH] [stderr=PATH] [runtime=NAME] [terminal[=no]] \
         [interactive] [cols=N] [rows=N] [log-size=BYTES] [label.KEY=VALUE ...]",
        "create a container from an OCI bundle, not yet started",
    ),
    ("start", "start ID", "start a created container"),
    (
        "run",
        "run ID BUNDLE [options as for create]",
        "create and start",
    ),
    (
        "wait",
        "wait ID",
        "wait for the container's init to exit; answers exit=N",
    ),
    (
        "kill",
        "kill ID [SIGNAL]",
        "signal the init (TERM, SIGKILL, 9, ...; default TERM)",
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
        "logs ID [tail=N] [follow]",
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
    Wait(String),
    Kill {
        id: String,
        signal: i32,
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
        tail: Option<usize>,
        follow: bool,
    },
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
                    tail,
                    follow,
                }
            }
            ("create", [id, bundle, opts @ ..]) => Request::Create(Spec::parse(id, bundle, opts)?),
            ("run", [id, bundle, opts @ ..]) => Request::Run(Spec::parse(id, bundle, opts)?),
            ("start", [id]) => Request::Start(check_id(id)?),
            ("wait", [id]) => Request::Wait(check_id(id)?),
            ("state", [id]) => Request::State(check_id(id)?),
            ("kill", [id]) => Request::Kill {
                id: check_id(id)?,
                signal: libc::SIGTERM,
            },
            ("kill", [id, sig]) => Request::Kill {
                id: check_id(id)?,
                signal: signal::parse(sig)
                    .ok_or_else(|| Error::new(Code::Invalid, format!("unknown signal {sig}")))?,
            },
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
                "cols" | "rows" => {
                    let n = value.parse::<u16>().ok().filter(|&n| n > 0);
                    let n = n.ok_or_else(|| {
                        Error::new(Code::Invalid, format!("{key} must be 1 to 65535"))
                    })?;
                    let slot = if key == "cols" {
                        &mut spec.cols
                    } else {
                        &mut spec.rows
                    };
                    if slot.replace(n).is_some() {
                        return Err(twice(key));
                    }
                }
                "log-size" => {
                    let n = value.parse::<u32>().ok().filter(|&n| n >= MIN_LOG_SIZE);
                    let n = n.ok_or_else(|| {
                        Error::new(
                            Code::Invalid,
                            format!("log-size must be {MIN_LOG_SIZE} to 4294967295 bytes"),
                        )
                    })?;
                    if spec.log_size.replace(n).is_some() {
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
        use crate::proto::quote;
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

/// A process of a container: `init` (the default); exec processes come
/// with `exec`.
fn check_proc(proc: Option<&&str>) -> Result<String, Error> {
    match proc.copied() {
        None | Some("init") => Ok("init".into()),
        Some(p) => refuse(Code::NotFound, format!("no process {p}")),
    }
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
fn check_path(what: &str, path: &str) -> Result<String, Error> {
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
    use crate::proto::split_words;

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
            Request::Wait("a.b-c_9".into())
        );
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
            let line = format!("start {}", crate::proto::quote(id));
            assert_eq!(code(&line), Code::Invalid, "{id:?}");
        }
        assert!(check_id(&"a".repeat(64)).is_ok());
        assert!(check_id("0").is_ok());
    }
}
