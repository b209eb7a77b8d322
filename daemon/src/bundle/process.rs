//! An exec's process file: the bundle config's `process` object with the
//! request's args, terminal, cwd, env and user spliced in; everything
//! else is the bundle's, byte for byte.

use super::json;
use crate::wire::proto::{Code, Error};
use crate::wire::ExecSpec;

/// The process file for the runtime: the bundle config's `process`
/// object with this request's args, terminal, cwd, env and user.
pub fn process_json(spec: &ExecSpec, config: &[u8]) -> Result<Vec<u8>, Error> {
    let bad = |what: &str| Error::new(Code::Invalid, format!("bundle config.json: {what}"));
    let r = json::find(config, &["process"])
        .filter(|r| config.get(r.start) == Some(&b'{'))
        .ok_or_else(|| bad("no process object"))?;
    let mut p = config[r].to_vec();
    let strings = |items: &mut dyn Iterator<Item = String>| {
        let items: Vec<String> = items.collect();
        format!("[{}]", items.join(", "))
    };
    let args = strings(&mut spec.args.iter().map(|a| json::quote(a)));
    let mut edits = vec![
        (vec!["args"], args),
        (vec!["terminal"], spec.terminal.to_string()),
    ];
    if let Some(cwd) = &spec.cwd {
        edits.push((vec!["cwd"], json::quote(cwd)));
    }
    if !spec.env.is_empty() {
        let key = |kv: &str| kv.split_once('=').map_or(kv, |(k, _)| k).to_string();
        let replaced: Vec<String> = spec.env.iter().map(|kv| key(kv)).collect();
        let mut kept = Vec::new();
        if let Some(r) = json::find(&p, &["env"]) {
            for e in json::elements(&p, r).ok_or_else(|| bad("process.env is not a list"))? {
                let text = String::from_utf8_lossy(&p[e.clone()]).into_owned();
                let overridden = json::string(&p, e).is_some_and(|s| replaced.contains(&key(&s)));
                if !overridden {
                    kept.push(text);
                }
            }
        }
        kept.extend(spec.env.iter().map(|kv| json::quote(kv)));
        edits.push((vec!["env"], strings(&mut kept.into_iter())));
    }
    if let Some((uid, gid)) = spec.user {
        if json::find(&p, &["user"]).is_none() {
            edits.push((vec!["user"], "{}".into()));
        }
        edits.push((vec!["user", "uid"], uid.to_string()));
        if let Some(gid) = gid {
            edits.push((vec!["user", "gid"], gid.to_string()));
        }
    }
    if spec.terminal {
        use nanoctr_shim::contract::{DEFAULT_COLS, DEFAULT_ROWS};
        let (cols, rows) = (
            spec.cols.unwrap_or(DEFAULT_COLS),
            spec.rows.unwrap_or(DEFAULT_ROWS),
        );
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
    fn process_file_keeps_the_bundle_and_applies_the_request() {
        let s = parse("web p terminal cwd=/tmp env=TERM=vt100 env=NEW=1 user=7 -- echo \"hi\"")
            .unwrap();
        let doc = process_json(&s, CONFIG.as_bytes()).unwrap();
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
            .map(|s| process_json(&s, CONFIG.as_bytes()))
            .unwrap()
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
        let doc = process_json(&s, config).unwrap();
        assert_eq!(field(&doc, &["env"]), r#"["A=1"]"#);
        assert_eq!(field(&doc, &["user", "uid"]), "3");
        assert_eq!(field(&doc, &["user", "gid"]), "4");
        assert_eq!(
            process_json(&s, br#"{"root": {}}"#).unwrap_err().code,
            Code::Invalid
        );
    }
}
