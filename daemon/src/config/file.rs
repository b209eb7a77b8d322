//! The config file: `key = value` lines a person can read and edit on a
//! serial console, and `[container ID]` sections declaring the containers
//! started at boot.
//!
//! ```text
//! # comment
//! max-containers = 16
//! log = syslog
//!
//! [container web]
//! bundle = /srv/containers/web
//! restart = on-failure:5
//! overlay-size = 8m
//! health-cmd = wget -q -O /dev/null http://127.0.0.1/
//! health-interval = 10s
//! critical = yes
//! after = db
//! ready = started
//! options = log-size=128k label.app=web
//! ```
//!
//! Keys are the daemon's long flags without `--`. Anything unknown or
//! malformed is an error naming the file and line: the daemon refuses to
//! start rather than guess.

use std::path::{Path, PathBuf};

use crate::wire::proto::split_words;
use crate::wire::restart::Restart;
use crate::wire::{check_id, Spec};

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// `FILE:LINE`, for messages.
    pub at: String,
}

/// When a container counts as up for those started `after` it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// Once it is running.
    Started,
    /// Once it has exited with status 0 (a set-up job).
    Exited0,
    /// Once this file exists.
    File(PathBuf),
}

/// A `[container ID]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decl {
    /// The container, as `create` would make it (restart policy included).
    pub spec: Spec,
    /// The words `spec` was parsed from, as a request's options (none for
    /// a declaration an update record makes).
    pub options: Vec<String>,
    pub after: Vec<String>,
    pub ready: Ready,
    /// `FILE:LINE` of the section header.
    pub at: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConfFile {
    pub settings: Vec<Setting>,
    pub containers: Vec<Decl>,
}

impl ConfFile {
    /// The setting for `key`, if the file has it.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }
}

/// A section being read.
struct Section {
    id: String,
    at: String,
    bundle: Option<String>,
    runtime: Option<String>,
    restart: Option<String>,
    /// `overlay = ...`, `overlay-size = ...`, the `health-*` keys and
    /// `critical = yes`, `net`, `ip` and `publish`, as options.
    as_options: Vec<String>,
    after: Vec<String>,
    ready: Option<Ready>,
    options: Vec<String>,
}

/// The keys a manifest's section has besides a `[container]` section's
/// (`ota/manifest.rs`); they are its settings.
pub const MANIFEST_KEYS: [&str; 2] = ["swap-timeout", "platform"];

/// Parses one file's text. `name` is how messages call it; settings are
/// refused where `settings` is false (a `containers.d` file holds only
/// sections).
pub fn parse(name: &Path, text: &str, settings: bool) -> Result<ConfFile, String> {
    read(name, text, settings, false)
}

/// Parses an update's manifest: sections whose bundle the update makes
/// (none may be given), with the [`MANIFEST_KEYS`] too, and no `after` or
/// `ready`.
pub fn manifest(name: &Path, text: &str) -> Result<ConfFile, String> {
    read(name, text, false, true)
}

fn read(name: &Path, text: &str, settings: bool, manifest: bool) -> Result<ConfFile, String> {
    let mut out = ConfFile::default();
    let mut section: Option<Section> = None;
    for (n, raw) in text.lines().enumerate() {
        let at = format!("{}:{}", name.display(), n + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |m: &str| format!("{at}: {m}");
        if let Some(header) = line.strip_prefix('[') {
            let header = header
                .strip_suffix(']')
                .ok_or_else(|| fail("a section header ends with ]"))?;
            let id = match header.split_whitespace().collect::<Vec<_>>()[..] {
                ["container", id] => check_id(id).map_err(|e| fail(&e.message))?,
                _ => return Err(fail("sections are [container ID]")),
            };
            if let Some(s) = section.take() {
                out.containers.push(finish(s, manifest)?);
            }
            if out.containers.iter().any(|d| d.spec.id == id) {
                return Err(fail(&format!("container {id} is declared twice")));
            }
            section = Some(Section {
                id,
                at,
                bundle: None,
                runtime: None,
                restart: None,
                as_options: Vec::new(),
                after: Vec::new(),
                ready: None,
                options: Vec::new(),
            });
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| fail("expected key = value"))?;
        if value.is_empty() {
            return Err(fail(&format!("{key} has no value")));
        }
        let Some(s) = section.as_mut() else {
            if !settings {
                return Err(fail("only [container ID] sections belong here"));
            }
            if !crate::config::OPTIONS.iter().any(|o| o.0 == key) {
                return Err(fail(&format!("unknown key {key}")));
            }
            if out.settings.iter().any(|s| s.key == key) {
                return Err(fail(&format!("{key} is set twice")));
            }
            out.settings.push(Setting {
                key: key.into(),
                value: value.into(),
                at,
            });
            continue;
        };
        let words = || -> Result<Vec<String>, String> {
            split_words(value.as_bytes()).map_err(|e| fail(&e.message))
        };
        let once = |slot: &mut Option<String>| match slot.replace(value.into()) {
            Some(_) => Err(fail(&format!("{key} is set twice"))),
            None => Ok(()),
        };
        match key {
            "bundle" | "after" | "ready" if manifest => {
                return Err(fail(&format!("{key} has no place in a manifest")))
            }
            _ if manifest && MANIFEST_KEYS.contains(&key) => {
                if out.settings.iter().any(|s| s.key == key) {
                    return Err(fail(&format!("{key} is set twice")));
                }
                out.settings.push(Setting {
                    key: key.into(),
                    value: value.into(),
                    at,
                });
            }
            "bundle" => once(&mut s.bundle)?,
            "runtime" => once(&mut s.runtime)?,
            "restart" => {
                Restart::parse(value).map_err(|e| fail(&e))?;
                once(&mut s.restart)?
            }
            "after" => {
                for id in words()? {
                    let id = check_id(&id).map_err(|e| fail(&e.message))?;
                    if id == s.id {
                        return Err(fail("a container cannot come after itself"));
                    }
                    s.after.push(id);
                }
            }
            "ready" => {
                let ready = parse_ready(value).map_err(|e| fail(&e))?;
                if s.ready.replace(ready).is_some() {
                    return Err(fail("ready is set twice"));
                }
            }
            "options" => s.options.extend(words()?),
            // Checked with the rest of the spec, in `finish`.
            "overlay" | "overlay-size" | "health-cmd" | "health-interval" | "health-timeout"
            | "health-retries" | "health-start" => s.as_options.push(format!("{key}={value}")),
            "net" | "ip" => s.as_options.push(format!("{key}={value}")),
            "publish" => s
                .as_options
                .extend(value.split_whitespace().map(|p| format!("publish={p}"))),
            "critical" => match value {
                "yes" => s.as_options.push(key.into()),
                "no" => {}
                _ => return Err(fail("critical is yes or no")),
            },
            _ => {
                return Err(fail(&format!(
                    "unknown container key {key} (bundle, runtime, restart, overlay, \
                     overlay-size, health-cmd, health-interval, health-timeout, \
                     health-retries, health-start, critical, net, ip, publish, after, ready, \
                     options; in a manifest swap-timeout, platform)"
                )))
            }
        }
    }
    if let Some(s) = section.take() {
        out.containers.push(finish(s, manifest)?);
    }
    Ok(out)
}

fn parse_ready(value: &str) -> Result<Ready, String> {
    if let Some(path) = value.strip_prefix("file:") {
        if !path.starts_with('/') {
            return Err("ready = file:PATH needs an absolute path".into());
        }
        return Ok(Ready::File(path.into()));
    }
    match value.to_ascii_lowercase().as_str() {
        "started" => Ok(Ready::Started),
        "exited0" | "exited:0" => Ok(Ready::Exited0),
        _ => Err(format!(
            "ready is started, exited0 or file:PATH, not {value}"
        )),
    }
}

/// A whole section, as a container spec (a manifest's with bundle `/`).
fn finish(s: Section, manifest: bool) -> Result<Decl, String> {
    let fail = |m: &str| format!("{}: container {}: {m}", s.at, s.id);
    let bundle = match manifest {
        true => "/",
        false => s
            .bundle
            .as_deref()
            .ok_or_else(|| fail("bundle is missing"))?,
    };
    let mut opts: Vec<String> = s.options.clone();
    opts.extend(s.as_options.iter().cloned());
    if let Some(r) = &s.runtime {
        opts.push(format!("runtime={r}"));
    }
    if let Some(r) = &s.restart {
        opts.push(format!("restart={r}"));
    }
    let words: Vec<&str> = opts.iter().map(String::as_str).collect();
    let spec = Spec::parse(&s.id, bundle, &words).map_err(|e| fail(&e.message))?;
    Ok(Decl {
        spec,
        options: opts,
        after: s.after,
        ready: s.ready.unwrap_or(Ready::Started),
        at: s.at,
    })
}

/// Puts declarations in start order: each after those it names. A
/// declaration whose `after` names an undeclared container, or that is in
/// a cycle, is left out with a message; the others keep their order.
pub fn start_order(decls: &[Decl]) -> (Vec<usize>, Vec<String>) {
    let mut order: Vec<usize> = Vec::with_capacity(decls.len());
    let mut problems = Vec::new();
    let index = |id: &str| decls.iter().position(|d| d.spec.id == id);
    let mut bad = vec![false; decls.len()];
    for (i, d) in decls.iter().enumerate() {
        if let Some(missing) = d.after.iter().find(|a| index(a).is_none()) {
            problems.push(format!(
                "{}: container {}: after = {missing}: no such container is declared",
                d.at, d.spec.id
            ));
            bad[i] = true;
        }
    }
    // Repeatedly take every declaration whose dependencies are placed.
    loop {
        let before = order.len();
        for (i, d) in decls.iter().enumerate() {
            if bad[i] || order.contains(&i) {
                continue;
            }
            let deps: Vec<Option<usize>> = d.after.iter().map(|a| index(a)).collect();
            if deps.iter().any(|j| j.is_some_and(|j| bad[j])) {
                problems.push(format!(
                    "{}: container {}: not started, as a container it comes after is not",
                    d.at, d.spec.id
                ));
                bad[i] = true;
                continue;
            }
            if deps.iter().all(|j| j.is_some_and(|j| order.contains(&j))) {
                order.push(i);
            }
        }
        if order.len() == before {
            break;
        }
    }
    for (i, d) in decls.iter().enumerate() {
        if !bad[i] && !order.contains(&i) {
            problems.push(format!(
                "{}: container {}: its after = forms a cycle",
                d.at, d.spec.id
            ));
        }
    }
    (order, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Result<ConfFile, String> {
        parse(Path::new("/etc/n.conf"), text, true)
    }

    #[test]
    fn settings_and_sections() {
        let c = conf(
            "# a comment\n\nmax-containers = 8\n  log = syslog  \n\n\
             [container db]\nbundle = /srv/db\nready = file:/run/db.ready\noverlay-size = 8m\n\
             [container web]\nbundle=/srv/web\nruntime = crun\nrestart = on-failure:3\n\
             critical = yes\nafter = db\noptions = log-size=128k \"label.note=a b\"\n\
             net = ns:/run/netns/lan\n\
             [container dns]\nbundle = /srv/dns\nnet = bridge\nip = 10.88.0.53\n\
             publish = 53:53/udp  53:53/tcp\n",
        )
        .unwrap();
        let dns = &c.containers[2].spec.net;
        assert_eq!(dns.bridge(), Some("nanoctr0"));
        assert_eq!(dns.ip, Some(std::net::Ipv4Addr::new(10, 88, 0, 53)));
        assert_eq!(dns.publish.len(), 2);
        assert_eq!(c.get("max-containers").unwrap().value, "8");
        assert_eq!(c.get("log").unwrap().at, "/etc/n.conf:4");
        assert_eq!(c.containers.len(), 3);
        let web = &c.containers[1];
        assert_eq!(web.spec.net.describe(), "ns:/run/netns/lan");
        assert_eq!(web.spec.bundle, "/srv/web");
        assert_eq!(web.spec.runtime.as_deref(), Some("crun"));
        assert_eq!(web.spec.restart, Restart::OnFailure(Some(3)));
        assert!(web.spec.critical && !c.containers[0].spec.critical);
        assert_eq!(web.spec.log_size, Some(128 << 10));
        assert_eq!(web.spec.labels, [("note".to_string(), "a b".to_string())]);
        assert_eq!(web.after, ["db"]);
        assert_eq!(web.ready, Ready::Started);
        assert_eq!(c.containers[0].ready, Ready::File("/run/db.ready".into()));
        let overlay = crate::wire::overlay::Overlay::Tmpfs(8 << 20);
        assert_eq!(c.containers[0].spec.overlay, Some(overlay));
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            ("bogus = 1\n", 1, "unknown key bogus"),
            ("\n\nsocket\n", 3, "expected key = value"),
            ("log = a\nlog = b\n", 2, "set twice"),
            ("retain =\n", 1, "no value"),
            ("[container web\n", 1, "ends with ]"),
            ("[box web]\n", 1, "[container ID]"),
            ("[container ../x]\n", 1, "id"),
            (
                "[container w]\nbundle = /b\nrestart = sometimes\n",
                3,
                "restart",
            ),
            ("[container w]\nbundle = /b\nready = soon\n", 3, "ready"),
            (
                "[container w]\nbundle = /b\ncolour = red\n",
                3,
                "unknown container key",
            ),
            ("[container w]\nbundle = /b\nafter = w\n", 3, "itself"),
            ("[container w]\nruntime = runc\n", 1, "bundle is missing"),
            ("[container w]\nbundle = relative\n", 1, "absolute"),
            ("[container w]\nbundle = /b\noptions = cols=0\n", 1, "cols"),
            (
                "[container w]\nbundle = /b\noverlay = data\n",
                1,
                "overlay is tmpfs",
            ),
            (
                "[container w]\nbundle = /b\ncritical = sure\n",
                3,
                "critical is yes or no",
            ),
            (
                "[container w]\nbundle = /b\n[container w]\nbundle = /c\n",
                3,
                "twice",
            ),
        ] {
            let e = conf(text).unwrap_err();
            assert!(
                e.starts_with(&format!("/etc/n.conf:{line}: ")) && e.contains(what),
                "{text:?}: {e}"
            );
        }
        let e = parse(Path::new("/d/x.conf"), "log = syslog\n", false).unwrap_err();
        assert!(e.starts_with("/d/x.conf:1: only [container ID]"), "{e}");
    }

    #[test]
    fn start_order_follows_after() {
        let c = conf(
            "[container web]\nbundle=/w\nafter = db cache\n\
             [container cache]\nbundle=/c\nafter = db\n\
             [container db]\nbundle=/d\n\
             [container lone]\nbundle=/l\n\
             [container orphan]\nbundle=/o\nafter = ghost\n\
             [container child]\nbundle=/ch\nafter = orphan\n\
             [container a]\nbundle=/a\nafter = b\n[container b]\nbundle=/b\nafter = a\n",
        )
        .unwrap();
        let (order, problems) = start_order(&c.containers);
        let ids: Vec<&str> = order
            .iter()
            .map(|&i| c.containers[i].spec.id.as_str())
            .collect();
        assert_eq!(ids, ["db", "lone", "cache", "web"]);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].contains("orphan") && problems[0].contains("ghost"));
        assert!(problems.iter().any(|p| p.contains("child")));
        assert!(problems
            .iter()
            .any(|p| p.contains("container a") && p.contains("cycle")));
    }
}
