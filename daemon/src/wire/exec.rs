//! `exec`: what a request asks of an extra process, and the OCI process
//! file the runtime gets for it: the bundle's own `process` with the
//! request's changes spliced in, so everything else it says (capabilities,
//! rlimits, AppArmor, no-new-privileges) holds for the new process too.

use crate::bundle::json;
use crate::wire::proto::{refuse, Code, Error};
use crate::wire::request::{check_id, check_path, console_option};

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

    /// The process file for the runtime: the bundle config's `process`
    /// object with this request's args, terminal, cwd, env and user.
    pub fn process_json(&self, config: &[u8]) -> Result<Vec<u8>, Error> {
        let bad = |what: &str| Error::new(Code::Invalid, format!("bundle config.json: {what}"));
        let r = json::find(config, &["process"])
            .filter(|r| config.get(r.start) == Some(&b'{'))
            .ok_or_else(|| bad("no process object"))?;
        let mut p = config[r].to_vec();
        let strings = |items: &mut dyn Iterator<Item = String>| {
            let items: Vec<String> = items.collect();
            format!("[{}]", items.join(", "))
        };
        let args = strings(&mut self.args.iter().map(|a| json::quote(a)));
        let mut edits = vec![
            (vec!["args"], args),
            (vec!["terminal"], self.terminal.to_string()),
        ];
        if let Some(cwd) = &self.cwd {
            edits.push((vec!["cwd"], json::quote(cwd)));
        }
        if !self.env.is_empty() {
            let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
            let replaced: Vec<String> = self.env.iter().map(|kv| key(kv)).collect();
            let mut kept = Vec::new();
            if let Some(r) = json::find(&p, &["env"]) {
                for e in json::elements(&p, r).ok_or_else(|| bad("process.env is not a list"))? {
                    let text = String::from_utf8_lossy(&p[e.clone()]).into_owned();
                    let overridden =
                        json::string(&p, e).is_some_and(|s| replaced.contains(&key(&s)));
                    if !overridden {
                        kept.push(text);
                    }
                }
            }
            kept.extend(self.env.iter().map(|kv| json::quote(kv)));
            edits.push((vec!["env"], strings(&mut kept.into_iter())));
        }
        if let Some((uid, gid)) = self.user {
            if json::find(&p, &["user"]).is_none() {
                edits.push((vec!["user"], "{}".into()));
            }
            edits.push((vec!["user", "uid"], uid.to_string()));
            if let Some(gid) = gid {
                edits.push((vec!["user", "gid"], gid.to_string()));
            }
        }
        if self.terminal {
            let (cols, rows) = (self.cols.unwrap_or(80), self.rows.unwrap_or(24));
            edits.push((
                vec!["consoleSize"],
                format!("{{\"height\": {rows}, \"width\": {cols}}}"),
            ));
        }
        for (path, value) in edits {
            json::set(&mut p, &path, &value).ok_or_else(|| bad("process is not an object"))?;
        }
        Ok(p)
    }
}

/// An exec process's name: the rules of an id; `init` is the container's
/// own process, and `follow` would read as an option of `logs`.
fn check_proc_name(proc: &str) -> Result<String, Error> {
    if matches!(proc, "init" | "follow") {
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

    const CONFIG: &str = r#"{"ociVersion": "1.0.2",
      "process": {"terminal": false, "user": {"uid": 0, "gid": 0},
        "args": ["sh"], "env": ["PATH=/bin", "TERM=xterm", "A=\"q\""], "cwd": "/",
        "noNewPrivileges": true},
      "root": {"path": "rootfs"}}"#;

    fn parse(words: &str) -> Result<ExecSpec, Error> {
        let words: Vec<&str> = words.split(' ').collect();
        ExecSpec::parse(words[0], words[1], &words[2..])
    }

    fn field(doc: &[u8], path: &[&str]) -> String {
        let r = json::find(doc, path).expect("field");
        String::from_utf8_lossy(&doc[r]).into_owned()
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

    #[test]
    fn process_file_keeps_the_bundle_and_applies_the_request() {
        let s = parse("web p terminal cwd=/tmp env=TERM=vt100 env=NEW=1 user=7 -- echo \"hi\"")
            .unwrap();
        let doc = s.process_json(CONFIG.as_bytes()).unwrap();
        assert_eq!(field(&doc, &["args"]), r#"["echo", "\"hi\""]"#);
        assert_eq!(field(&doc, &["terminal"]), "true");
        assert_eq!(field(&doc, &["cwd"]), "\"/tmp\"");
        assert_eq!(
            field(&doc, &["env"]),
            r#"["PATH=/bin", "A=\"q\"", "TERM=vt100", "NEW=1"]"#
        );
        assert_eq!(field(&doc, &["user", "uid"]), "7");
        assert_eq!(field(&doc, &["user", "gid"]), "0");
        assert_eq!(field(&doc, &["noNewPrivileges"]), "true");
        assert_eq!(field(&doc, &["consoleSize", "width"]), "80");
        let plain = parse("web p -- true")
            .unwrap()
            .process_json(CONFIG.as_bytes())
            .unwrap();
        assert_eq!(
            field(&plain, &["env"]),
            r#"["PATH=/bin", "TERM=xterm", "A=\"q\""]"#
        );
        assert_eq!(field(&plain, &["terminal"]), "false");
        assert!(json::find(&plain, &["consoleSize"]).is_none());
    }

    #[test]
    fn process_file_without_user_or_env() {
        let config = br#"{"process": {"args": ["sh"]}}"#;
        let s = parse("web p env=A=1 user=3:4 -- id").unwrap();
        let doc = s.process_json(config).unwrap();
        assert_eq!(field(&doc, &["env"]), r#"["A=1"]"#);
        assert_eq!(field(&doc, &["user", "uid"]), "3");
        assert_eq!(field(&doc, &["user", "gid"]), "4");
        assert_eq!(
            s.process_json(br#"{"root": {}}"#).unwrap_err().code,
            Code::Invalid
        );
    }
}
