//! Requests: the verbs of protocol v1 and their arguments, checked before
//! anything touches the filesystem or a runtime.

use super::checks::INIT;
use super::checks::{check_id, check_name, check_path, check_proc};
use super::event::{Filter, Kind};
use super::exec::ExecSpec;
use super::proto::{refuse, Code, Error};
use super::resources::Resources;
use super::signal;
use super::spec::Spec;
use super::verbs::{usage, VERBS};

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
    /// `wait ID healthy [timeout=DURATION]`.
    WaitHealthy {
        id: String,
        timeout: Option<std::time::Duration>,
    },
    /// `swap ID BUNDLE [swap-timeout=DURATION] [options]`: the new
    /// version; `options` false when none were given (the current
    /// version's are kept).
    Swap {
        spec: Spec,
        options: bool,
        timeout: Option<std::time::Duration>,
    },
    Commit(String),
    Rollback(String),

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
    /// `state ID check`: CNI's CHECK of its network.
    StateCheck(String),
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
            ("wait", [id, "healthy", opts @ ..]) if opts.len() < 2 => {
                let timeout = match opts.first().map(|o| o.split_once('=')) {
                    None => None,
                    Some(Some(("timeout", v))) => Some(duration("timeout", v)?),
                    Some(_) => return Err(bad()),
                };
                Request::WaitHealthy {
                    id: check_id(id)?,
                    timeout,
                }
            }
            ("swap", [id, bundle, opts @ ..]) => {
                let mut timeout = None;
                let mut rest = Vec::new();
                for opt in opts {
                    match opt.split_once('=') {
                        Some(("swap-timeout", v)) if timeout.is_none() => {
                            timeout = Some(duration("swap-timeout", v)?);
                        }
                        _ => rest.push(*opt),
                    }
                }
                Request::Swap {
                    spec: Spec::parse(id, bundle, &rest)?,
                    options: !rest.is_empty(),
                    timeout,
                }
            }
            ("commit", [id]) => Request::Commit(check_id(id)?),
            ("rollback", [id]) => Request::Rollback(check_id(id)?),
            ("wait", [id, proc @ ..]) if proc.len() < 2 => Request::Wait {
                id: check_id(id)?,
                proc: check_proc(proc.first())?,
            },
            ("state", [id]) => Request::State(check_id(id)?),
            ("state", [id, "check"]) => Request::StateCheck(check_id(id)?),
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

/// A `timeout=`-like value: `30s`, `500ms`, `2m`, or seconds.
fn duration(key: &str, value: &str) -> Result<std::time::Duration, Error> {
    crate::wire::health::parse_duration(value).ok_or_else(|| {
        Error::new(
            Code::Invalid,
            format!("{key} wants a duration such as 30s, 500ms or 2m, not {value:?}"),
        )
    })
}

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
        let critical = |line| match parse(line).unwrap() {
            Request::Create(s) | Request::Run(s) => s.critical,
            other => panic!("{other:?}"),
        };
        assert!(!critical("create x /b"));
        assert!(critical("run x /b critical"));
        assert_eq!(code("create x /b critical=maybe"), Code::Invalid);
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
