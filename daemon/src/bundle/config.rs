//! The `config.json` of a container's derived bundle, spliced from its
//! bundle's.

use std::io;
use std::path::Path;

use super::json;

/// The network namespace a derived config gives the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Netns<'a> {
    /// As the bundle says.
    Bundle,
    /// The host's: no network namespace entry.
    Host,
    /// A new one, made by the runtime (loopback only).
    New,
    /// The one at this path (`linux.namespaces` entry with a `path`).
    Join(&'a Path),
}

/// What a derived config adds to the bundle's for the network: its
/// namespace, files bind-mounted read-only over the rootfs's
/// (`/etc/resolv.conf`, `/etc/hosts`), as (destination, source), and a
/// `createRuntime` hook run before the bundle's own (a CNI network's ADD),
/// as its program and its `args` (the first one its `argv[0]`).
#[derive(Debug, Clone, Copy)]
pub struct Network<'a> {
    pub ns: Netns<'a>,
    pub files: &'a [(&'a str, &'a Path)],
    pub hook: Option<(&'a Path, &'a [String])>,
}

/// How long the runtime lets the network's hook run (a CNI chain).
pub const HOOK_TIMEOUT_S: u32 = 60;

impl Network<'_> {
    pub const BUNDLE: Network<'static> = Network {
        ns: Netns::Bundle,
        files: &[],
        hook: None,
    };

    /// Whether the bundle's config does not do as it is.
    pub fn changes(&self) -> bool {
        self.ns != Netns::Bundle || !self.files.is_empty() || self.hook.is_some()
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("config.json: {what}"))
}

/// The config of a container's derived bundle: the bundle's config with
/// `process.terminal` set to `terminal` and `root.path` set to `root` (an
/// image rootfs's mount) or, without one, made absolute (so the rootfs is
/// still the bundle's), and the network `net` gives it. The rest is
/// copied byte for byte.
pub fn derive(
    bundle: &str,
    config: &[u8],
    terminal: bool,
    root: Option<&Path>,
    net: &Network,
) -> io::Result<Vec<u8>> {
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let value = if terminal { "true" } else { "false" };
    match json::find(config, &["process", "terminal"]) {
        Some(r) => edits.push((r, value.into())),
        None => {
            let process = json::find(config, &["process"]).ok_or_else(|| bad("no process"))?;
            let at = process.start + 1;
            let empty = config[at..process.end - 1]
                .iter()
                .all(u8::is_ascii_whitespace);
            let sep = if empty { "" } else { ", " };
            edits.push((at..at, format!("\"terminal\": {value}{sep}")));
        }
    }
    let at = json::find(config, &["root", "path"]).ok_or_else(|| bad("no root.path"))?;
    let path =
        json::string(config, at.clone()).ok_or_else(|| bad("root.path is not a plain string"))?;
    match root {
        Some(mounted) => edits.push((at, json::quote(&mounted.to_string_lossy()))),
        None if !path.starts_with('/') => edits.push((
            at,
            json::quote(&Path::new(bundle).join(path).to_string_lossy()),
        )),
        None => {}
    }
    crate::slab::sort_small(&mut edits, |a, b| a.0.start > b.0.start);
    let mut out = config.to_vec();
    for (range, text) in edits {
        out.splice(range, text.bytes());
    }
    namespace(&mut out, net.ns)?;
    bind_files(&mut out, net.files)?;
    if let Some((path, args)) = net.hook {
        create_runtime_hook(&mut out, path, args)?;
    }
    Ok(out)
}

/// `hooks.createRuntime` with the network's hook first, the bundle's
/// after it.
fn create_runtime_hook(config: &mut Vec<u8>, path: &Path, args: &[String]) -> io::Result<()> {
    let args: Vec<String> = args.iter().map(|a| json::quote(a)).collect();
    let mut hooks = vec![format!(
        "{{\"path\": {}, \"args\": [{}], \"timeout\": {HOOK_TIMEOUT_S}}}",
        json::quote(&path.to_string_lossy()),
        args.join(", ")
    )];
    if let Some(r) = json::find(config, &["hooks", "createRuntime"]) {
        let elements = json::elements(config, r).ok_or_else(|| bad("hooks.createRuntime"))?;
        hooks.extend(
            elements
                .into_iter()
                .map(|e| String::from_utf8_lossy(&config[e]).into_owned()),
        );
    } else if json::find(config, &["hooks"]).is_none() {
        json::set(config, &["hooks"], "{}").ok_or_else(|| bad("not an object"))?;
    }
    let array = format!("[{}]", hooks.join(", "));
    json::set(config, &["hooks", "createRuntime"], &array).ok_or_else(|| bad("hooks"))
}

/// `linux.namespaces` with its `network` entry as `ns` says; every
/// other entry kept as it is.
fn namespace(config: &mut Vec<u8>, ns: Netns) -> io::Result<()> {
    let entry = match ns {
        Netns::Bundle => return Ok(()),
        Netns::Host => None,
        Netns::New => Some("{\"type\": \"network\"}".to_string()),
        Netns::Join(path) => Some(format!(
            "{{\"type\": \"network\", \"path\": {}}}",
            json::quote(&path.to_string_lossy())
        )),
    };
    let mut kept: Vec<String> = Vec::new();
    if let Some(r) = json::find(config, &["linux", "namespaces"]) {
        let elements = json::elements(config, r).ok_or_else(|| bad("linux.namespaces"))?;
        for e in elements {
            let members = json::members(config, e.clone()).ok_or_else(|| bad("a namespace"))?;
            let network = members.iter().any(|(k, v)| {
                k == "type" && json::string(config, v.clone()).as_deref() == Some("network")
            });
            if !network {
                kept.push(String::from_utf8_lossy(&config[e]).into_owned());
            }
        }
    } else if entry.is_none() {
        return Ok(());
    }
    kept.extend(entry);
    if json::find(config, &["linux"]).is_none() {
        // A config with no `linux` object: one at the start of the document.
        let at = config
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .filter(|&i| config[i] == b'{')
            .ok_or_else(|| bad("not an object"))?;
        let empty = config[at + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
        let entry = if empty {
            "\"linux\": {}"
        } else {
            "\"linux\": {}, "
        };
        config.splice(at + 1..at + 1, entry.bytes());
    }
    let array = format!("[{}]", kept.join(", "));
    json::set(config, &["linux", "namespaces"], &array).ok_or_else(|| bad("linux"))
}

/// `files` bind-mounted read-only at the end of `mounts` (after the
/// bundle's, so over them), each in the place of a bundle's mount of the
/// same destination.
fn bind_files(config: &mut Vec<u8>, files: &[(&str, &Path)]) -> io::Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let mut kept: Vec<String> = Vec::new();
    if let Some(r) = json::find(config, &["mounts"]) {
        let elements = json::elements(config, r).ok_or_else(|| bad("mounts"))?;
        for e in elements {
            let members = json::members(config, e.clone()).ok_or_else(|| bad("a mount"))?;
            let dest = members
                .iter()
                .find(|(k, _)| k == "destination")
                .and_then(|(_, v)| json::string(config, v.clone()));
            if !files.iter().any(|(d, _)| Some(*d) == dest.as_deref()) {
                kept.push(String::from_utf8_lossy(&config[e]).into_owned());
            }
        }
    }
    for (dest, source) in files {
        kept.push(format!(
            "{{\"destination\": {}, \"type\": \"bind\", \"source\": {}, \"options\": [\"rbind\", \"ro\"]}}",
            json::quote(dest),
            json::quote(&source.to_string_lossy())
        ));
    }
    let array = format!("[{}]", kept.join(", "));
    json::set(config, &["mounts"], &array).ok_or_else(|| bad("not an object"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNC_SPEC: &str = r#"{
	"ociVersion": "1.0.2-dev",
	"process": {"terminal": true, "args": ["sh"]},
	"root": {"path": "rootfs", "readonly": true},
	"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts", "options": ["bind"]}],
	"linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}]}
}"#;

    fn derived(net: &Network) -> String {
        let out = derive("/b", RUNC_SPEC.as_bytes(), false, None, net).unwrap();
        json::check(&out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn namespaces(text: &str) -> String {
        let r = json::find(text.as_bytes(), &["linux", "namespaces"]).unwrap();
        text[r].to_string()
    }

    #[test]
    fn network_namespaces() {
        let same = derived(&Network::BUNDLE);
        assert_eq!(
            namespaces(&same),
            r#"[{"type": "pid"}, {"type": "network"}, {"type": "ipc"}]"#
        );
        let host = derived(&Network {
            ns: Netns::Host,
            files: &[],
            hook: None,
        });
        assert_eq!(namespaces(&host), r#"[{"type": "pid"}, {"type": "ipc"}]"#);
        let new = derived(&Network {
            ns: Netns::New,
            files: &[],
            hook: None,
        });
        assert_eq!(
            namespaces(&new),
            r#"[{"type": "pid"}, {"type": "ipc"}, {"type": "network"}]"#
        );
        let path = Path::new("/run/nanoctr/web/netns");
        let join = derived(&Network {
            ns: Netns::Join(path),
            files: &[],
            hook: None,
        });
        assert_eq!(
            namespaces(&join),
            r#"[{"type": "pid"}, {"type": "ipc"}, {"type": "network", "path": "/run/nanoctr/web/netns"}]"#
        );
        // A config without namespaces, or without linux, gets them.
        let bare = r#"{"process": {}, "root": {"path": "/r"}}"#;
        let net = Network {
            ns: Netns::New,
            files: &[],
            hook: None,
        };
        let out = derive("/b", bare.as_bytes(), false, None, &net).unwrap();
        json::check(&out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(namespaces(&out), r#"[{"type": "network"}]"#);
        let host = Network {
            ns: Netns::Host,
            files: &[],
            hook: None,
        };
        let out = derive("/b", bare.as_bytes(), false, None, &host).unwrap();
        assert!(json::find(&out, &["linux"]).is_none());
        // Garbage where namespaces should be is refused.
        let odd = r#"{"process": {}, "root": {"path": "/r"}, "linux": {"namespaces": 7}}"#;
        assert!(derive("/b", odd.as_bytes(), false, None, &net).is_err());
    }

    #[test]
    fn files_bound_over_the_bundles() {
        let resolv = Path::new("/run/nanoctr/web/net/resolv.conf");
        let hosts = Path::new("/run/nanoctr/web/net/hosts");
        let files = [("/etc/resolv.conf", resolv), ("/etc/hosts", hosts)];
        let out = derived(&Network {
            ns: Netns::New,
            files: &files,
            hook: None,
        });
        let r = json::find(out.as_bytes(), &["mounts"]).unwrap();
        let mounts = json::elements(out.as_bytes(), r).unwrap();
        let dests: Vec<String> = mounts
            .iter()
            .map(|m| {
                let members = json::members(out.as_bytes(), m.clone()).unwrap();
                let d = &members.iter().find(|(k, _)| k == "destination").unwrap().1;
                json::string(out.as_bytes(), d.clone()).unwrap()
            })
            .collect();
        // The bundle's /etc/hosts gives way to the container's own.
        assert_eq!(dests, ["/proc", "/etc/resolv.conf", "/etc/hosts"]);
        assert!(
            out.contains(r#""source": "/run/nanoctr/web/net/hosts", "options": ["rbind", "ro"]"#)
        );
    }

    #[test]
    fn the_network_hook_runs_before_the_bundles() {
        let args = ["nanoctr".to_string(), "cni-exec".into(), "add".into()];
        let hook = Some((Path::new("/usr/bin/nanoctr"), &args[..]));
        let ours = r#"{"path": "/usr/bin/nanoctr", "args": ["nanoctr", "cni-exec", "add"], "timeout": 60}"#;
        let out = derived(&Network {
            ns: Netns::New,
            files: &[],
            hook,
        });
        let r = json::find(out.as_bytes(), &["hooks", "createRuntime"]).unwrap();
        assert_eq!(&out[r], format!("[{ours}]"));
        let with_hooks = r#"{"process": {}, "root": {"path": "/r"},
            "hooks": {"createRuntime": [{"path": "/bin/theirs"}], "poststop": [{"path": "/bin/x"}]}}"#;
        let net = Network {
            ns: Netns::Bundle,
            files: &[],
            hook,
        };
        assert!(net.changes());
        let out = derive("/b", with_hooks.as_bytes(), false, None, &net).unwrap();
        json::check(&out).unwrap();
        let r = json::find(&out, &["hooks", "createRuntime"]).unwrap();
        let text = String::from_utf8_lossy(&out[r]).into_owned();
        assert_eq!(text, format!(r#"[{ours}, {{"path": "/bin/theirs"}}]"#));
        assert!(json::find(&out, &["hooks", "poststop"]).is_some());
    }
}
