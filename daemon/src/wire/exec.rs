//! `exec`: what a request asks of an extra process, and the OCI process
//! file the runtime gets for it: the bundle's own `process` with the
//! request's changes spliced in, so everything else it says (capabilities,
//! rlimits, AppArmor, no-new-privileges) holds for the new process too.

use super::checks::{check_id, check_path};
use super::spec::console_option;
use crate::wire::proto::{refuse, Code, Error};

/// What `exec ID PROC [options] -- ARG...` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    pub id: String,
    /// The process's name, unique among the container's processes.
    pub proc: String,
    pub terminal: bool,
    pub interactive: bool,
    pub cwd: Option<String>,
    /// `K=V` each; a key also in the bundle's env replaces it there.
    pub env: Vec<String>,
    pub user: Option<(u32, Option<u32>)>,
    pub cols: Option<u16>,
    pub rows: Option<u16>,
    pub log_size: Option<u32>,
    pub args: Vec<String>,
}

impl ExecSpec {
    pub fn parse(id: &str, proc: &str, words: &[&str]) -> Result<ExecSpec, Error> {
        let mut spec = ExecSpec {
            id: check_id(id)?,
            proc: check_proc_name(proc)?,
            ..ExecSpec::default()
        };
        let Some(dashes) = words.iter().position(|w| *w == "--") else {
            return refuse(Code::Invalid, "exec needs -- before the command");
        };
        let (opts, args) = (&words[..dashes], &words[dashes + 1..]);
        if args.is_empty() {
            return refuse(Code::Invalid, "exec needs a command after --");
        }
        spec.args = args.iter().map(|a| a.to_string()).collect();
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
            match (key, value) {
                ("terminal", "") if !spec.terminal => spec.terminal = true,
                ("interactive", "") if !spec.interactive => spec.interactive = true,
                ("cwd", dir) if !dir.is_empty() => {
                    if spec.cwd.replace(check_path("cwd", dir)?).is_some() {
                        return Err(twice(key));
                    }
                }
                ("env", kv) => {
                    let ok = kv
                        .split_once('=')
                        .is_some_and(|(k, _)| !k.is_empty() && !kv.contains(char::is_control));
                    if !ok {
                        return refuse(Code::Invalid, format!("env wants KEY=VALUE, not {kv:?}"));
                    }
                    spec.env.push(kv.to_string());
                }
                ("user", ids) if !ids.is_empty() => {
                    let id = |n: &str| n.parse::<u32>().ok();
                    let user = match ids.split_once(':') {
                        None => id(ids).map(|u| (u, None)),
                        Some((u, g)) => id(u).zip(id(g)).map(|(u, g)| (u, Some(g))),
                    };
                    let user = user.ok_or_else(|| {
                        Error::new(Code::Invalid, "user wants UID or UID:GID (numbers)")
                    })?;
                    if spec.user.replace(user).is_some() {
                        return Err(twice(key));
                    }
                }
                _ => return refuse(Code::Invalid, format!("unknown exec option {opt}")),
            }
        }
        Ok(spec)
    }
}

/// An exec process's name: the rules of an id; `init` is the container's
/// own process, `follow` would read as an option of `logs`, and the
/// container's dir has other entries of its own (its derived bundle, an
/// image rootfs's mount points).
fn check_proc_name(proc: &str) -> Result<String, Error> {
    use nanoctr_shim::contract::container_dir::NOT_PROCESSES;
    if proc == super::INIT
        || proc == "follow"
        || proc == super::HEALTH
        || NOT_PROCESSES.iter().any(|n| n.str == proc)
    {
        return refuse(
            Code::Invalid,
            format!("{proc} cannot name an exec process: it is reserved"),
        );
    }
    check_id(proc)
        .map_err(|e| Error::new(e.code, e.message.replacen("bad id", "bad process name", 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &str) -> Result<ExecSpec, Error> {
        let words: Vec<&str> = words.split(' ').collect();
        ExecSpec::parse(words[0], words[1], &words[2..])
    }

    #[test]
    fn options_and_command() {
        let s =
            parse("web sh1 terminal cwd=/tmp env=A=1 env=B=x=y user=1000:100 cols=100 -- ls -l /")
                .unwrap();
        assert_eq!(s.proc, "sh1");
        assert!(s.terminal && !s.interactive);
        assert_eq!(s.cwd.as_deref(), Some("/tmp"));
        assert_eq!(s.env, ["A=1", "B=x=y"]);
        assert_eq!(s.user, Some((1000, Some(100))));
        assert_eq!(s.cols, Some(100));
        assert_eq!(s.args, ["ls", "-l", "/"]);
        // Words after -- are the command's, options or not.
        assert_eq!(
            parse("web p -- terminal --").unwrap().args,
            ["terminal", "--"]
        );
    }

    #[test]
    fn refusals() {
        for bad in [
            "web p ls",
            "web p --",
            "web init -- ls",
            "web follow -- ls",
            "web ../x -- ls",
            "web p cwd=rel -- ls",
            "web p env=novalue -- ls",
            "web p env==x -- ls",
            "web p user=root -- ls",
            "web p user=1:x -- ls",
            "web p cols=0 -- ls",
            "web p log-size=10 -- ls",
            "web p bogus -- ls",
            "web p terminal terminal -- ls",
            "web p user=1 user=2 -- ls",
        ] {
            assert_eq!(parse(bad).unwrap_err().code, Code::Invalid, "{bad}");
        }
    }
}
