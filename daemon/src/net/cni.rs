//! CNI (Container Network Interface, spec 1.0) networks: a network's
//! configuration found by name on disk, its chain of plugins run for one
//! container, and `nanoctr cni-exec`, the program that does it in a child
//! process so that the daemon's loop never waits on a plugin.
//!
//! A network is a `*.conflist` file (`cniVersion`, `name`, `plugins`, and
//! optionally `disableCheck`) or a `*.conf`/`*.json` file holding a single
//! plugin's configuration, a list of one; [`load`] reads the directories
//! given (by default [`CONF_DIR`]) in lexical order and takes the first
//! with the name asked for. [`run`] then runs the chain: ADD in order,
//! each plugin given the previous one's result as `prevResult`; DEL in
//! reverse and CHECK in order, each given the result of ADD. Plugins are
//! programs `DIR/TYPE` in the plugin dirs (by default [`BIN_DIRS`]), given
//! a clean environment with the `CNI_*` variables, their configuration on
//! stdin, and a time limit; what they print is bounded.
//!
//! The result of ADD is what DEL and CHECK need, so it must be kept:
//! `cni-exec add` writes it to the file named by `--result` (atomically),
//! `cni-exec del` reads it and removes it once the network is gone. The
//! daemon keeps that file in the container's state dir, as
//! [`RESULT_FILE`] beside the container's namespace file.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{self, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::bundle::json;
use crate::files::{self, Links};

/// Where network configurations are looked for by default.
pub const CONF_DIR: &str = "/etc/cni/net.d";
/// Where plugins are looked for by default, in this order.
pub const BIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];
/// The word after `nanoctr` that runs [`main`].
pub const EXEC: &str = "cni-exec";
/// The name of a container's ADD result in its state dir.
pub const RESULT_FILE: &str = "cni-result.json";
/// The biggest configuration file read, and the most a plugin may print.
pub const MAX_BYTES: usize = 64 * 1024;
/// The most plugins in one network.
pub const MAX_PLUGINS: usize = 16;
/// How long one plugin may run before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The plugins' `PATH`: the bridge and portmap plugins run iptables.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// How much of a plugin's stderr is kept for an error message.
const MAX_STDERR: usize = 4096;
/// How long a message from a plugin may be in an error.
const MAX_MESSAGE: usize = 400;

/// Why a network could not be loaded, or its chain run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: Option<u64>,
    text: String,
}

impl Error {
    fn new(text: impl Into<String>) -> Error {
        Error {
            code: None,
            text: text.into(),
        }
    }

    /// The code of a plugin's error object (11: try again later).
    pub fn code(&self) -> Option<u64> {
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Error {}

/// A network: its name, version, and plugins in chain order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConf {
    /// The file it was read from (empty when parsed from bytes).
    pub file: PathBuf,
    pub name: String,
    pub cni_version: String,
    /// `disableCheck`: CHECK succeeds without running anything.
    pub disable_check: bool,
    pub plugins: Vec<Plugin>,
}

/// One plugin's configuration object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// Its `type`: the program's file name.
    pub kind: String,
    /// The object's JSON text, as written in the file.
    pub conf: Vec<u8>,
}

/// An operation on a container's attachment to a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
}

impl Command {
    /// Its `CNI_COMMAND` word.
    pub fn word(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
        }
    }
}

/// One attachment: a container's interface in a namespace, and where the
/// plugins are.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub container_id: &'a str,
    /// The namespace file (`CNI_NETNS`).
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// Searched in order for each plugin; also its `CNI_PATH`.
    pub plugin_dirs: &'a [&'a Path],
    /// `CNI_ARGS` (`K=V;K2=V2`), if any.
    pub args: Option<&'a str>,
    /// Capability arguments (name, JSON value), given in `runtimeConfig`
    /// to the plugins whose `capabilities` name them
    /// (`portMappings`, ...).
    pub caps: &'a [(&'a str, &'a [u8])],
    /// How long each plugin may run ([`TIMEOUT`]).
    pub timeout: Duration,
}

/// Whether `s` is a CNI name: an alphanumeric, then alphanumerics, `_`,
/// `.` and `-` (network names and container ids).
pub fn valid_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Whether `s` may name a plugin program: a plain file name.
fn valid_type(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && !s.bytes().any(|c| c == b'/' || c == b'\\' || c < 0x20)
}

/// Whether `s` may name an interface (Linux: 1 to 15 bytes, no `/`, no
/// space, not `.` or `..`).
fn valid_ifname(s: &str) -> bool {
    (1..16).contains(&s.len())
        && s != "."
        && s != ".."
        && !s
            .bytes()
            .any(|c| c == b'/' || c == b':' || c <= b' ' || c == 0x7f)
}

/// A string's text at `path` in a JSON document.
fn text_at(doc: &[u8], path: &[&str]) -> Option<String> {
    json::find(doc, path).and_then(|r| json::text(doc, r))
}

/// The range of `doc` without the whitespace around it, if it is one
/// well-formed JSON object.
fn object(doc: &[u8]) -> Option<Range<usize>> {
    json::check(doc).ok()?;
    let r = json::find(doc, &[])?;
    (doc.get(r.start) == Some(&b'{')).then_some(r)
}

impl NetConf {
    /// Reads a network from a configuration's text: a list (`.conflist`)
    /// or a single plugin's configuration.
    pub fn parse(doc: &[u8], list: bool) -> Result<NetConf, Error> {
        if let Err(e) = json::check(doc) {
            return Err(Error::new(e.to_string()));
        }
        let root = object(doc).ok_or_else(|| Error::new("not a JSON object"))?;
        let name = text_at(doc, &["name"]).ok_or_else(|| Error::new("no \"name\" string"))?;
        if !valid_name(&name) {
            return Err(Error::new(format!(
                "name {}: not a CNI network name",
                json::quote(&name)
            )));
        }
        let cni_version = text_at(doc, &["cniVersion"])
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::new("no \"cniVersion\" string"))?;
        let objects = match list {
            true => json::find(doc, &["plugins"])
                .and_then(|r| json::elements(doc, r))
                .ok_or_else(|| Error::new("no \"plugins\" list"))?,
            false => vec![root],
        };
        if objects.is_empty() {
            return Err(Error::new("no plugins"));
        }
        if objects.len() > MAX_PLUGINS {
            return Err(Error::new(format!(
                "{} plugins, more than {MAX_PLUGINS}",
                objects.len()
            )));
        }
        let mut plugins = Vec::with_capacity(objects.len());
        for (i, r) in objects.into_iter().enumerate() {
            let conf = doc[r].to_vec();
            let bad = |what: &str| Error::new(format!("plugin {}: {what}", i + 1));
            if conf.first() != Some(&b'{') {
                return Err(bad("not an object"));
            }
            let kind = text_at(&conf, &["type"]).ok_or_else(|| bad("no \"type\" string"))?;
            if !valid_type(&kind) {
                return Err(bad(&format!(
                    "type {}: not a file name",
                    json::quote(&kind)
                )));
            }
            if let Some(ipam) = json::find(&conf, &["ipam", "type"]) {
                match json::text(&conf, ipam) {
                    Some(t) if valid_type(&t) => {}
                    _ => return Err(bad("ipam type: not a file name")),
                }
            }
            plugins.push(Plugin { kind, conf });
        }
        let disable_check =
            list && json::find(doc, &["disableCheck"]).is_some_and(|r| &doc[r] == b"true");
        Ok(NetConf {
            file: PathBuf::new(),
            name,
            cni_version,
            disable_check,
            plugins,
        })
    }
}

/// Whether a file is a configuration: `Some(true)` a list, `Some(false)`
/// a single plugin's.
fn conf_kind(path: &Path) -> Option<bool> {
    match path.extension()?.to_str()? {
        "conflist" => Some(true),
        "conf" | "json" => Some(false),
        _ => None,
    }
}

/// The network named `name`: the first configuration with that name in
/// `conf_dirs`, each read in lexical order. A directory that is not there
/// is skipped. A file that cannot be read far enough to know its name is
/// passed over, and named in the error if no file has the name.
pub fn load(conf_dirs: &[&Path], name: &str) -> Result<NetConf, Error> {
    if !valid_name(name) {
        return Err(Error::new(format!(
            "network {}: not a CNI network name",
            json::quote(name)
        )));
    }
    let mut passed_over: Option<String> = None;
    for dir in conf_dirs {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::new(format!("{}: {e}", dir.display()))),
        };
        let mut confs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| conf_kind(p).is_some())
            .collect();
        confs.sort();
        for file in confs {
            let list = conf_kind(&file) == Some(true);
            let named = files::read_bounded(&file, MAX_BYTES as u64, Links::Follow)
                .map_err(|e| e.to_string())
                .and_then(|doc| match json::check(&doc) {
                    Ok(()) => Ok(doc),
                    Err(e) => Err(e.to_string()),
                })
                .and_then(|doc| match text_at(&doc, &["name"]) {
                    Some(n) => Ok((n, doc)),
                    None => Err("no \"name\" string".into()),
                });
            match named {
                Ok((n, doc)) if n == name => {
                    let mut net = NetConf::parse(&doc, list)
                        .map_err(|e| Error::new(format!("{}: {e}", file.display())))?;
                    net.file = file;
                    return Ok(net);
                }
                Ok(_) => {}
                Err(e) => {
                    passed_over.get_or_insert(format!("{}: {e}", file.display()));
                }
            }
        }
    }
    let dirs: Vec<String> = conf_dirs.iter().map(|d| d.display().to_string()).collect();
    let mut text = format!("network {name}: not found in {}", dirs.join(", "));
    if let Some(why) = passed_over {
        text.push_str(&format!(" (passed over {why})"));
    }
    Err(Error::new(text))
}

/// The configuration a plugin is given on stdin: its own object with the
/// network's `cniVersion` and `name`, its `runtimeConfig` (the capability
/// arguments it declares), and `prevResult` when given, put first; keys
/// of its own by those names, `capabilities` and `cni.dev/` keys left
/// out. `prev` must be a JSON object already checked.
fn request(net: &NetConf, plugin: &Plugin, prev: Option<&[u8]>, caps: &[(&str, &[u8])]) -> Vec<u8> {
    let members = json::members(&plugin.conf, 0..plugin.conf.len()).unwrap_or_default();
    let declared: Vec<String> = members
        .iter()
        .find(|(k, _)| k == "capabilities")
        .and_then(|(_, r)| json::members(&plugin.conf, r.clone()))
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, r)| &plugin.conf[r.clone()] == b"true")
        .map(|(k, _)| k)
        .collect();
    let mut out = Vec::with_capacity(plugin.conf.len() + prev.map_or(0, <[u8]>::len) + 128);
    let key = |out: &mut Vec<u8>, k: &str| {
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(json::quote(k).as_bytes());
        out.push(b':');
    };
    out.push(b'{');
    key(&mut out, "cniVersion");
    out.extend_from_slice(json::quote(&net.cni_version).as_bytes());
    key(&mut out, "name");
    out.extend_from_slice(json::quote(&net.name).as_bytes());
    let given: Vec<&(&str, &[u8])> = caps
        .iter()
        .filter(|(c, _)| declared.iter().any(|d| d == c))
        .collect();
    if !given.is_empty() {
        key(&mut out, "runtimeConfig");
        out.push(b'{');
        for (i, (c, v)) in given.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(json::quote(c).as_bytes());
            out.push(b':');
            out.extend_from_slice(v);
        }
        out.push(b'}');
    }
    if let Some(prev) = prev {
        key(&mut out, "prevResult");
        out.extend_from_slice(prev);
    }
    const OURS: [&str; 5] = [
        "cniVersion",
        "name",
        "runtimeConfig",
        "prevResult",
        "capabilities",
    ];
    for (k, r) in &members {
        if OURS.contains(&k.as_str()) || k.starts_with("cni.dev/") {
            continue;
        }
        key(&mut out, k);
        out.extend_from_slice(&plugin.conf[r.clone()]);
    }
    out.push(b'}');
    out
}

/// Text from a plugin as one line of bounded length.
fn one_line(s: &str) -> String {
    let s = s.trim();
    let mut out: String = s
        .chars()
        .take(MAX_MESSAGE)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX_MESSAGE).is_some() {
        out.push_str("...");
    }
    out
}

/// The error of a plugin that failed: its error object on stdout (`code`,
/// `msg`, `details`), or else the first line it wrote to stderr.
fn plugin_error(kind: &str, stdout: &[u8], stderr: &[u8], status: ExitStatus) -> Error {
    let code = object(stdout)
        .and_then(|_| json::find(stdout, &["code"]))
        .and_then(|r| std::str::from_utf8(&stdout[r]).ok()?.parse::<u64>().ok());
    if let Some(code) = code {
        let msg = text_at(stdout, &["msg"]).unwrap_or_default();
        let details = text_at(stdout, &["details"]).unwrap_or_default();
        let mut text = format!("plugin {kind}: {code}: {}", one_line(&msg));
        if !details.trim().is_empty() && details != msg {
            text.push_str(": ");
            text.push_str(&one_line(&details));
        }
        return Error {
            code: Some(code),
            text,
        };
    }
    let said = [stderr, stdout].into_iter().find_map(|b| {
        let text = String::from_utf8_lossy(b);
        let line = text.lines().find(|l| !l.trim().is_empty())?;
        Some(line.to_string())
    });
    match said {
        Some(line) => Error::new(format!("plugin {kind}: {status}: {}", one_line(&line))),
        None => Error::new(format!("plugin {kind}: {status}")),
    }
}

/// The program of a plugin: the first executable `DIR/TYPE`.
fn find_plugin(dirs: &[&Path], kind: &str) -> Result<PathBuf, Error> {
    for dir in dirs {
        let exe = dir.join(kind);
        if fs::metadata(&exe).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
            return Ok(exe);
        }
    }
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(Error::new(format!(
        "plugin {kind}: not found in {}",
        dirs.join(", ")
    )))
}

/// Reads all of `r` in a thread, at most `max` bytes kept; the rest is
/// read and dropped when `drain`, else reading stops there and the bytes
/// come back one over `max`.
fn reader(
    mut r: impl Read + Send + 'static,
    max: usize,
    drain: bool,
) -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut kept = Vec::new();
        let res = r.by_ref().take(max as u64 + 1).read_to_end(&mut kept);
        let res = res.and_then(|_| {
            if drain && kept.len() > max {
                kept.truncate(max);
                io::copy(&mut r, &mut io::sink())?;
            }
            Ok(kept)
        });
        let _ = tx.send(res);
    });
    rx
}

/// Runs one plugin: what it printed on success.
fn exec(
    exe: &Path,
    kind: &str,
    cmd: Command,
    ctx: &Context,
    stdin: Vec<u8>,
) -> Result<Vec<u8>, Error> {
    let fail = |what: &str, e: &dyn fmt::Display| Error::new(format!("plugin {kind}: {what}: {e}"));
    let cni_path: Vec<&str> = ctx.plugin_dirs.iter().filter_map(|d| d.to_str()).collect();
    let mut command = process::Command::new(exe);
    command
        .env_clear()
        .env("PATH", PATH)
        .env("CNI_COMMAND", cmd.word())
        .env("CNI_CONTAINERID", ctx.container_id)
        .env("CNI_NETNS", ctx.netns)
        .env("CNI_IFNAME", ctx.ifname)
        .env("CNI_PATH", cni_path.join(":"))
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(args) = ctx.args {
        command.env("CNI_ARGS", args);
    }
    // A program just written may be open for writing a moment longer in
    // another process (ETXTBSY).
    let mut tries = 0;
    let mut child = loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                thread::sleep(Duration::from_millis(20));
            }
            other => break other.map_err(|e| fail("start", &e))?,
        }
    };
    let deadline = Instant::now() + ctx.timeout;
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits without reading all of it closes the pipe:
        // its status says what happened.
        thread::spawn(move || input.write_all(&stdin));
    }
    let out = child.stdout.take().map(|o| reader(o, MAX_BYTES, false));
    let err = child.stderr.take().map(|e| reader(e, MAX_STDERR, true));
    let left = || deadline.saturating_duration_since(Instant::now());
    let stdout = match out.map(|rx| rx.recv_timeout(left())) {
        Some(Ok(Ok(bytes))) => bytes,
        Some(Ok(Err(e))) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("read its output", &e));
        }
        _ => Vec::new(),
    };
    let status = loop {
        if stdout.len() > MAX_BYTES {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::new(format!(
                "plugin {kind}: printed more than {MAX_BYTES} bytes"
            )));
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if !left().is_zero() => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::new(format!(
                    "plugin {kind}: killed after {} s",
                    ctx.timeout.as_secs_f32()
                )));
            }
            Err(e) => return Err(fail("wait", &e)),
        }
    };
    if status.success() {
        return Ok(stdout);
    }
    let stderr = err
        .and_then(|rx| rx.recv_timeout(Duration::from_millis(100)).ok())
        .and_then(Result::ok)
        .unwrap_or_default();
    Err(plugin_error(kind, &stdout, &stderr, status))
}

/// Runs the network's chain for one attachment. ADD returns the last
/// plugin's result, which DEL and CHECK are then given as `prev`; if ADD
/// fails, the plugins that ran are run again with DEL, so nothing is left
/// of it. DEL runs every plugin, whatever one of them says, and returns
/// the first error. CHECK needs `prev`.
pub fn run(
    net: &NetConf,
    cmd: Command,
    ctx: &Context,
    prev: Option<&[u8]>,
) -> Result<Option<Vec<u8>>, Error> {
    if !valid_name(ctx.container_id) {
        return Err(Error::new(format!(
            "container id {}: not a CNI container id",
            json::quote(ctx.container_id)
        )));
    }
    if !valid_ifname(ctx.ifname) {
        return Err(Error::new(format!(
            "interface {}: not an interface name",
            json::quote(ctx.ifname)
        )));
    }
    for (cap, value) in ctx.caps {
        if json::check(value).is_err() {
            return Err(Error::new(format!("capability {cap}: not JSON")));
        }
    }
    if let Some(p) = prev {
        object(p).ok_or_else(|| Error::new("previous result: not a JSON object"))?;
    }
    match cmd {
        Command::Add => add(net, ctx).map(Some),
        Command::Del => del(net, &net.plugins, ctx, prev).map(|()| None),
        Command::Check if net.disable_check => Ok(None),
        Command::Check => {
            let prev = prev.ok_or_else(|| Error::new("check: no result of add"))?;
            for p in &net.plugins {
                let exe = find_plugin(ctx.plugin_dirs, &p.kind)?;
                exec(
                    &exe,
                    &p.kind,
                    cmd,
                    ctx,
                    request(net, p, Some(prev), ctx.caps),
                )?;
            }
            Ok(None)
        }
    }
}

fn add(net: &NetConf, ctx: &Context) -> Result<Vec<u8>, Error> {
    // Every program is found before any runs, so a missing one makes nothing.
    let exes = net
        .plugins
        .iter()
        .map(|p| find_plugin(ctx.plugin_dirs, &p.kind))
        .collect::<Result<Vec<_>, _>>()?;
    let mut last: Option<Vec<u8>> = None;
    for (i, (p, exe)) in net.plugins.iter().zip(&exes).enumerate() {
        let stdin = request(net, p, last.as_deref(), ctx.caps);
        let res = exec(exe, &p.kind, Command::Add, ctx, stdin).and_then(|out| match object(&out) {
            Some(_) => Ok(out),
            None => Err(Error::new(format!(
                "plugin {}: its result is not a JSON object",
                p.kind
            ))),
        });
        match res {
            Ok(out) => last = Some(out),
            Err(e) => {
                let _ = del(net, &net.plugins[..=i], ctx, last.as_deref());
                return Err(e);
            }
        }
    }
    last.ok_or_else(|| Error::new("no plugins"))
}

/// DEL through `plugins` in reverse, every one run; the first error. A
/// plugin not installed is passed over, said on stderr: nothing it made
/// can be reached, and an attachment must be able to end.
fn del(net: &NetConf, plugins: &[Plugin], ctx: &Context, prev: Option<&[u8]>) -> Result<(), Error> {
    let mut first = None;
    for p in plugins.iter().rev() {
        let exe = match find_plugin(ctx.plugin_dirs, &p.kind) {
            Ok(exe) => exe,
            Err(e) => {
                eprintln!("nanoctr {EXEC}: del: {e}: passed over");
                continue;
            }
        };
        let res = exec(
            &exe,
            &p.kind,
            Command::Del,
            ctx,
            request(net, p, prev, ctx.caps),
        );
        if let Err(e) = res {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// The addresses of a result (`ips[].address`, as `10.22.0.2/16`).
pub fn ips(result: &[u8]) -> Vec<String> {
    json::find(result, &["ips"])
        .and_then(|r| json::elements(result, r))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| text_at(&result[r], &["address"]))
        .collect()
}

/// `cni-exec`'s command line.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    cmd: Option<Command>,
    name: String,
    id: String,
    netns: PathBuf,
    ifname: String,
    result: PathBuf,
    conf_dirs: Vec<PathBuf>,
    bin_dirs: Vec<PathBuf>,
    caps: Vec<(String, String)>,
    cni_args: Option<String>,
    /// add: a result there already is the attachment, kept as it is.
    reuse: bool,
    /// del: once done, the namespace file unmounted and this dir removed.
    remove_dir: Option<PathBuf>,
    /// Where an error is written too, for whoever ran this to read (a
    /// runtime running it as a hook may keep its stderr to itself).
    error_file: Option<PathBuf>,
}

const USAGE: &str = "usage: nanoctr cni-exec add|del|check --name NET --id ID --netns PATH \
--ifname IF --result FILE [--conf-dir D]... [--bin-dir D]... [--cap NAME=JSON]... [--args K=V;...] \
[--reuse] [--remove-dir DIR] [--error-file FILE]";

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut words = argv.iter();
    a.cmd = Some(match words.next().map(String::as_str) {
        Some("add") => Command::Add,
        Some("del") => Command::Del,
        Some("check") => Command::Check,
        _ => return Err(USAGE.into()),
    });
    while let Some(flag) = words.next() {
        if flag == "--reuse" {
            a.reuse = true;
            continue;
        }
        let value = words
            .next()
            .ok_or_else(|| format!("{flag}: a value is needed"))?
            .clone();
        match flag.as_str() {
            "--name" => a.name = value,
            "--id" => a.id = value,
            "--netns" => a.netns = value.into(),
            "--ifname" => a.ifname = value,
            "--result" => a.result = value.into(),
            "--conf-dir" => a.conf_dirs.push(value.into()),
            "--bin-dir" => a.bin_dirs.push(value.into()),
            "--args" => a.cni_args = Some(value),
            "--remove-dir" => a.remove_dir = Some(value.into()),
            "--error-file" => a.error_file = Some(value.into()),
            "--cap" => match value.split_once('=') {
                Some((k, v)) if !k.is_empty() => a.caps.push((k.into(), v.into())),
                _ => return Err(format!("--cap {value}: not NAME=JSON")),
            },
            _ => return Err(format!("{flag}: unknown; {USAGE}")),
        }
    }
    let missing = [
        ("--name", a.name.is_empty()),
        ("--id", a.id.is_empty()),
        ("--netns", a.netns.as_os_str().is_empty()),
        ("--ifname", a.ifname.is_empty()),
        ("--result", a.result.as_os_str().is_empty()),
    ];
    if let Some((flag, _)) = missing.iter().find(|(_, m)| *m) {
        return Err(format!("{flag} is needed; {USAGE}"));
    }
    if a.conf_dirs.is_empty() {
        a.conf_dirs.push(CONF_DIR.into());
    }
    if a.bin_dirs.is_empty() {
        a.bin_dirs.extend(BIN_DIRS.iter().map(PathBuf::from));
    }
    Ok(a)
}

/// `nanoctr cni-exec add|del|check ...`: runs a network's chain for one
/// container. ADD writes the result to the `--result` file (a new one:
/// ADD twice without DEL is refused, unless `--reuse` says the one there
/// stands for the attachment, as when a container is made again on it),
/// DEL takes it as the previous result when it is there and removes it
/// once done (and with `--remove-dir`, the namespace file unmounted and
/// that dir removed), CHECK needs it. Nothing is printed on success; an
/// error is one line on stderr, exit status 1.
pub fn main(argv: &[String]) -> i32 {
    let args = parse_args(argv);
    match args.as_ref().map_err(Clone::clone).and_then(exec_main) {
        Ok(()) => 0,
        Err(e) => {
            let line = format!("nanoctr {EXEC}: {}\n", one_line(&e));
            eprint!("{line}");
            if let Some(file) = args.ok().and_then(|a| a.error_file) {
                let _ = fs::write(file, line);
            }
            1
        }
    }
}

fn exec_main(a: &Args) -> Result<(), String> {
    let conf_dirs: Vec<&Path> = a.conf_dirs.iter().map(PathBuf::as_path).collect();
    let bin_dirs: Vec<&Path> = a.bin_dirs.iter().map(PathBuf::as_path).collect();
    let caps: Vec<(&str, &[u8])> = a
        .caps
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    let ctx = Context {
        container_id: &a.id,
        netns: &a.netns,
        ifname: &a.ifname,
        plugin_dirs: &bin_dirs,
        args: a.cni_args.as_deref(),
        caps: &caps,
        timeout: TIMEOUT,
    };
    let file = &a.result;
    let at = |e: &dyn fmt::Display| format!("{}: {e}", file.display());
    let cached = || match files::read_bounded(file, MAX_BYTES as u64, Links::Refuse) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(&e)),
    };
    let cmd = a.cmd.unwrap_or(Command::Check);
    if cmd == Command::Add && a.reuse && fs::metadata(file).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    if cmd == Command::Add && fs::symlink_metadata(file).is_ok() {
        return Err(at(&"there already: a result of add not yet deleted"));
    }
    let net = load(&conf_dirs, &a.name).map_err(|e| e.to_string())?;
    match cmd {
        Command::Add => {
            let result = run(&net, cmd, &ctx, None)
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            if let Err(e) = crate::store::statedir::write_atomic(file, &result) {
                let _ = fs::remove_file(crate::store::statedir::tmp_of(file));
                let _ = run(&net, Command::Del, &ctx, Some(&result));
                return Err(at(&e));
            }
            Ok(())
        }
        Command::Del => {
            // A result that is not JSON is no use: the plugins clean up
            // what they can without one.
            let prev = cached()?.filter(|p| object(p).is_some());
            run(&net, cmd, &ctx, prev.as_deref()).map_err(|e| e.to_string())?;
            match fs::remove_file(file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(&e)),
                _ => {}
            }
            if let Some(dir) = &a.remove_dir {
                let gone = |e: &dyn fmt::Display| format!("{}: {e}", dir.display());
                crate::net::netns::remove(&a.netns).map_err(|e| gone(&e))?;
                match fs::remove_dir_all(dir) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(gone(&e)),
                    _ => {}
                }
            }
            Ok(())
        }
        Command::Check => {
            let prev = cached()?.ok_or_else(|| at(&"not there: no result of add"))?;
            run(&net, cmd, &ctx, Some(&prev)).map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch dir of its own for each test, removed at the end.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("nanoctr-cni-{name}-{}", process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, text).unwrap();
            path
        }

        /// A plugin that logs `COMMAND NAME` to `log`, keeps its stdin as
        /// `NAME.COMMAND` and its environment as `NAME.env`, then runs
        /// `body` (by default: prints a result naming it).
        fn plugin(&self, name: &str, body: &str) {
            let dir = self.0.display();
            let body = match body {
                "" => format!(
                    "if [ \"$CNI_COMMAND\" = ADD ]; then printf '{{\"cniVersion\":\"1.0.0\",\"by\":\"{name}\",\
                     \"ips\":[{{\"address\":\"10.1.0.{}/24\"}}]}}'; fi",
                    name.len()
                ),
                body => body.to_string(),
            };
            let script = format!(
                "#!/bin/sh\nin=$(cat)\necho \"$CNI_COMMAND {name}\" >> {dir}/log\n\
                 printf '%s' \"$in\" > {dir}/{name}.$CNI_COMMAND\nenv | sort > {dir}/{name}.env\n\
                 {body}\n"
            );
            let path = self.write(name, &script);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }

        fn log(&self) -> Vec<String> {
            let log = fs::read_to_string(self.0.join("log")).unwrap_or_default();
            log.lines().map(str::to_string).collect()
        }

        fn read(&self, name: &str) -> String {
            fs::read_to_string(self.0.join(name)).unwrap()
        }

        fn dirs(&self) -> [&Path; 1] {
            [self.0.as_path()]
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn ctx<'a>(dirs: &'a [&'a Path]) -> Context<'a> {
        Context {
            container_id: "web",
            netns: Path::new("/run/netns/web"),
            ifname: "eth0",
            plugin_dirs: dirs,
            args: None,
            caps: &[],
            timeout: Duration::from_secs(10),
        }
    }

    fn chain(kinds: &[&str]) -> NetConf {
        let plugins: Vec<String> = kinds
            .iter()
            .map(|k| format!("{{\"type\": \"{k}\"}}"))
            .collect();
        let doc = format!(
            "{{\"cniVersion\": \"1.0.0\", \"name\": \"n\", \"plugins\": [{}]}}",
            plugins.join(",")
        );
        NetConf::parse(doc.as_bytes(), true).unwrap()
    }

    const LIST: &str = r#"{
        "cniVersion": "1.0.0",
        "name": "lan",
        "disableCheck": true,
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}},
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    }"#;

    #[test]
    fn a_list_and_a_single_conf_load_by_name() {
        let s = Scratch::new("load");
        s.write("10-lan.conflist", LIST);
        s.write(
            "20-lo.conf",
            r#"{"cniVersion": "0.4.0", "name": "lo", "type": "loopback"}"#,
        );
        s.write(
            "30-other.json",
            r#"{"cniVersion": "1.0.0", "name": "other", "type": "x"}"#,
        );
        s.write("lan.txt", "not a configuration");
        let dirs = [Path::new("/nonexistent"), s.0.as_path()];
        let lan = load(&dirs, "lan").unwrap();
        assert_eq!(lan.file, s.0.join("10-lan.conflist"));
        assert_eq!(
            (lan.name.as_str(), lan.cni_version.as_str()),
            ("lan", "1.0.0")
        );
        assert!(lan.disable_check);
        let kinds: Vec<&str> = lan.plugins.iter().map(|p| p.kind.as_str()).collect();
        assert_eq!(kinds, ["bridge", "portmap"]);
        assert!(lan.plugins[0].conf.starts_with(b"{\"type\": \"bridge\""));
        assert!(lan.plugins[1].conf.ends_with(b"true}}"));

        let lo = load(&dirs, "lo").unwrap();
        assert_eq!(
            (lo.cni_version.as_str(), lo.disable_check),
            ("0.4.0", false)
        );
        assert_eq!(lo.plugins.len(), 1);
        assert_eq!(lo.plugins[0].kind, "loopback");
        assert!(lo.plugins[0].conf.ends_with(b"\"loopback\"}"));
        assert_eq!(load(&dirs, "other").unwrap().plugins[0].kind, "x");

        // The first of a name wins, in lexical order, dir by dir.
        s.write(
            "05-lan.conf",
            r#"{"cniVersion": "1.0.0", "name": "lan", "type": "first"}"#,
        );
        assert_eq!(load(&dirs, "lan").unwrap().plugins[0].kind, "first");
    }

    #[test]
    fn names_not_there_or_not_names() {
        let s = Scratch::new("names");
        s.write("a.conflist", LIST);
        let e = load(&s.dirs(), "wan").unwrap_err().to_string();
        assert_eq!(e, format!("network wan: not found in {}", s.0.display()));
        for bad in ["", "-x", "a/b", "a b", "..", "lan\n"] {
            let e = load(&s.dirs(), bad).unwrap_err().to_string();
            assert!(e.ends_with("not a CNI network name"), "{bad:?}: {e}");
        }
        assert!(valid_name("a.b_c-9") && valid_name("9"));
    }

    #[test]
    fn bad_files_are_named() {
        let s = Scratch::new("bad");
        let f = s.write(
            "a.conflist",
            r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../x"}]}"#,
        );
        let e = load(&s.dirs(), "n").unwrap_err().to_string();
        assert_eq!(
            e,
            format!("{}: plugin 1: type \"../x\": not a file name", f.display())
        );

        // Broken where the name cannot be read: passed over, and named.
        fs::remove_file(&f).unwrap();
        let f = s.write(
            "b.conflist",
            r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [}"#,
        );
        let e = load(&s.dirs(), "n").unwrap_err().to_string();
        assert!(e.contains("not found"), "{e}");
        assert!(
            e.contains(&format!("(passed over {}: not well-formed", f.display())),
            "{e}"
        );
        s.write(
            "c.conf",
            r#"{"cniVersion": "1.0.0", "name": "n", "type": "ok"}"#,
        );
        assert_eq!(load(&s.dirs(), "n").unwrap().plugins[0].kind, "ok");

        // Too big: refused before it is read.
        let big = format!(
            r#"{{"cniVersion": "1.0.0", "name": "big", "type": "x", "pad": "{}"}}"#,
            "x".repeat(MAX_BYTES)
        );
        let f = s.write("0-big.conf", &big);
        let e = load(&s.dirs(), "big").unwrap_err().to_string();
        assert!(
            e.contains(&format!("passed over {}: is ", f.display())),
            "{e}"
        );
        assert!(e.contains("more than the 65536"), "{e}");
    }

    #[test]
    fn what_a_configuration_must_have() {
        let parse =
            |doc: &str, list| NetConf::parse(doc.as_bytes(), list).map_err(|e| e.to_string());
        let p = r#"[{"type": "x"}]"#;
        for (doc, why) in [
            ("[1]".to_string(), "not a JSON object"),
            ("{\"name\": \"n\",}".into(), "not well-formed JSON at byte 13"),
            (format!(r#"{{"name": "n", "plugins": {p}}}"#), "no \"cniVersion\" string"),
            (format!(r#"{{"cniVersion": "1", "plugins": {p}}}"#), "no \"name\" string"),
            (
                format!(r#"{{"cniVersion": "1", "name": "a/b", "plugins": {p}}}"#),
                "name \"a/b\": not a CNI network name",
            ),
            (r#"{"cniVersion": "1", "name": "n"}"#.into(), "no \"plugins\" list"),
            (r#"{"cniVersion": "1", "name": "n", "plugins": []}"#.into(), "no plugins"),
            (r#"{"cniVersion": "1", "name": "n", "plugins": [1]}"#.into(), "plugin 1: not an object"),
            (
                r#"{"cniVersion": "1", "name": "n", "plugins": [{"type": "a"}, {}]}"#.into(),
                "plugin 2: no \"type\" string",
            ),
            (
                r#"{"cniVersion": "1", "name": "n", "plugins": [{"type": ".."}]}"#.into(),
                "plugin 1: type \"..\": not a file name",
            ),
            (
                r#"{"cniVersion": "1", "name": "n", "plugins": [{"type": "b", "ipam": {"type": "/bin/sh"}}]}"#
                    .into(),
                "plugin 1: ipam type: not a file name",
            ),
        ] {
            assert_eq!(parse(&doc, true).unwrap_err(), why, "{doc}");
        }
        let many = vec![r#"{"type": "x"}"#; MAX_PLUGINS + 1].join(",");
        let doc = format!(r#"{{"cniVersion": "1", "name": "n", "plugins": [{many}]}}"#);
        assert_eq!(parse(&doc, true).unwrap_err(), "17 plugins, more than 16");
        // A single conf is its own one plugin; `disableCheck` is a list's.
        let one = parse(
            r#" {"cniVersion": "1", "name": "n", "type": "t", "disableCheck": true} "#,
            false,
        )
        .unwrap();
        assert_eq!(one.plugins[0].conf.first(), Some(&b'{'));
        assert_eq!(one.plugins[0].conf.last(), Some(&b'}'));
        assert!(!one.disable_check);
    }

    #[test]
    fn the_request_puts_the_networks_keys_first() {
        let net = NetConf::parse(LIST.as_bytes(), true).unwrap();
        let first = request(&net, &net.plugins[0], None, &[]);
        assert_eq!(
            String::from_utf8(first).unwrap(),
            r#"{"cniVersion":"1.0.0","name":"lan","type":"bridge","bridge":"cni0","ipam":{"type": "host-local"}}"#
        );
        // Capability arguments only where declared; `capabilities` never.
        let ports: &[u8] = br#"[{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]"#;
        let caps = [("portMappings", ports), ("bandwidth", &b"{}"[..])];
        let prev = br#"{"cniVersion": "1.0.0", "ips": []}"#;
        let second = request(&net, &net.plugins[1], Some(prev), &caps);
        assert_eq!(
            String::from_utf8(second.clone()).unwrap(),
            format!(
                r#"{{"cniVersion":"1.0.0","name":"lan","runtimeConfig":{{"portMappings":{}}},"prevResult":{},"type":"portmap"}}"#,
                std::str::from_utf8(ports).unwrap(),
                std::str::from_utf8(prev).unwrap()
            )
        );
        assert_eq!(
            request(&net, &net.plugins[0], None, &caps),
            request(&net, &net.plugins[0], None, &[])
        );
        json::check(&second).unwrap();

        // The plugin's own keys by those names give way; names are escaped.
        let own = br#"{"name": "mine", "type": "t", "cni.dev/x": 1, "prevResult": {}, "runtimeConfig": 2, "k\"ey": "v"}"#;
        let net = NetConf {
            file: PathBuf::new(),
            name: "n".into(),
            cni_version: "1.0\"0".into(),
            disable_check: false,
            plugins: vec![Plugin {
                kind: "t".into(),
                conf: own.to_vec(),
            }],
        };
        let req = request(&net, &net.plugins[0], Some(b"{\"a\": 1}"), &[]);
        assert_eq!(
            String::from_utf8(req.clone()).unwrap(),
            r#"{"cniVersion":"1.0\"0","name":"n","prevResult":{"a": 1},"type":"t","k\"ey":"v"}"#
        );
        json::check(&req).unwrap();
        assert_eq!(text_at(&req, &["cniVersion"]).as_deref(), Some("1.0\"0"));
    }

    fn exited(code: i32) -> ExitStatus {
        use std::os::unix::process::ExitStatusExt;
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn plugin_errors_read_as_one_line() {
        let out = br#"{"cniVersion": "1.0.0", "code": 11, "msg": "failed to\nallocate", "details": "10.99.0.0/24 is full"}"#;
        let e = plugin_error("bridge", out, b"", exited(1));
        assert_eq!(
            e.to_string(),
            "plugin bridge: 11: failed to allocate: 10.99.0.0/24 is full"
        );
        assert_eq!(e.code(), Some(11));
        let out = br#"{"code": 7, "msg": "bad", "details": "bad"}"#;
        assert_eq!(
            plugin_error("x", out, b"", exited(1)).to_string(),
            "plugin x: 7: bad"
        );
        let e = plugin_error("x", b"", b"\npanic: oops\nmore\n", exited(2));
        assert_eq!(e.to_string(), "plugin x: exit status: 2: panic: oops");
        assert_eq!(e.code(), None);
        let e = plugin_error("x", b"{\"code\": \"7\"}", b"", exited(1));
        assert_eq!(e.to_string(), "plugin x: exit status: 1: {\"code\": \"7\"}");
        assert_eq!(
            plugin_error("x", b"", b"", exited(3)).to_string(),
            "plugin x: exit status: 3"
        );
        let long = plugin_error("x", b"", "y".repeat(1000).as_bytes(), exited(1)).to_string();
        assert!(long.ends_with("yyy..."), "{long}");
        assert!(long.len() < MAX_MESSAGE + 40);
    }

    #[test]
    fn addresses_of_a_result() {
        let result = br#"{"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0"}],
            "ips": [{"interface": 0, "address": "10.22.0.2/16", "gateway": "10.22.0.1"},
                    {"address": "fd00::2/64"}, {"gateway": "x"}]}"#;
        assert_eq!(ips(result), ["10.22.0.2/16", "fd00::2/64"]);
        assert!(ips(b"{}").is_empty());
        assert!(ips(b"{\"ips\": 3}").is_empty());
        assert!(ips(b"not json").is_empty());
    }

    #[test]
    fn add_chains_results_and_del_and_check_get_the_cached_one() {
        let s = Scratch::new("chain");
        s.plugin("aa", "");
        s.plugin("bbb", "");
        let net = chain(&["aa", "bbb"]);
        let dirs = [Path::new("/nonexistent"), s.0.as_path()];
        let mut c = ctx(&dirs);
        c.args = Some("K=V");
        let result = run(&net, Command::Add, &c, None).unwrap().unwrap();
        assert_eq!(ips(&result), ["10.1.0.3/24"]);
        assert_eq!(s.log(), ["ADD aa", "ADD bbb"]);
        assert_eq!(
            s.read("aa.ADD"),
            r#"{"cniVersion":"1.0.0","name":"n","type":"aa"}"#
        );
        assert_eq!(
            s.read("bbb.ADD"),
            r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"cniVersion":"1.0.0","by":"aa","ips":[{"address":"10.1.0.2/24"}]},"type":"bbb"}"#
        );
        let env = s.read("aa.env");
        let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
        for var in [
            "CNI_ARGS",
            "CNI_COMMAND",
            "CNI_CONTAINERID",
            "CNI_IFNAME",
            "CNI_NETNS",
            "CNI_PATH",
            "PATH",
        ] {
            assert!(names.contains(&var), "{var}: {env}");
        }
        assert!(!names.contains(&"HOME"), "{env}");
        let path = format!("CNI_PATH=/nonexistent:{}", s.0.display());
        assert!(env.lines().any(|l| l == path), "{env}");
        assert!(env.contains("CNI_NETNS=/run/netns/web\n"), "{env}");

        let cached = format!(r#""prevResult":{}"#, String::from_utf8_lossy(&result));
        assert_eq!(run(&net, Command::Check, &c, Some(&result)).unwrap(), None);
        assert_eq!(run(&net, Command::Del, &c, Some(&result)).unwrap(), None);
        assert_eq!(s.log()[2..], ["CHECK aa", "CHECK bbb", "DEL bbb", "DEL aa"]);
        for f in ["aa.CHECK", "bbb.CHECK", "aa.DEL", "bbb.DEL"] {
            assert!(s.read(f).contains(&cached), "{f}");
        }
        // DEL without a result; CHECK needs one, unless disabled.
        run(&net, Command::Del, &c, None).unwrap();
        assert!(!s.read("aa.DEL").contains("prevResult"));
        let e = run(&net, Command::Check, &c, None).unwrap_err();
        assert_eq!(e.to_string(), "check: no result of add");
        let e = run(&net, Command::Del, &c, Some(b"[1]")).unwrap_err();
        assert_eq!(e.to_string(), "previous result: not a JSON object");
        let mut off = net.clone();
        off.disable_check = true;
        let before = s.log().len();
        assert_eq!(run(&off, Command::Check, &c, None).unwrap(), None);
        assert_eq!(s.log().len(), before);
    }

    #[test]
    fn a_failed_add_is_undone_and_del_goes_on_past_errors() {
        let s = Scratch::new("fail");
        s.plugin("aa", "");
        s.plugin(
            "bad",
            r#"printf '{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"no bridge"}'; exit 1"#,
        );
        let net = chain(&["aa", "bad", "cc"]);
        s.plugin("cc", "");
        let dirs = s.dirs();
        let c = ctx(&dirs);
        let e = run(&net, Command::Add, &c, None).unwrap_err();
        assert_eq!(e.to_string(), "plugin bad: 7: bad config: no bridge");
        assert_eq!(e.code(), Some(7));
        assert_eq!(s.log(), ["ADD aa", "ADD bad", "DEL bad", "DEL aa"]);
        assert!(s.read("aa.DEL").contains(r#""by":"aa""#));

        fs::remove_file(s.0.join("log")).unwrap();
        let e = run(&net, Command::Del, &c, None).unwrap_err();
        assert_eq!(e.to_string(), "plugin bad: 7: bad config: no bridge");
        assert_eq!(s.log(), ["DEL cc", "DEL bad", "DEL aa"]);

        // A program not there: ADD runs nothing, DEL the others, and
        // succeeds: nothing that one made can be reached.
        fs::remove_file(s.0.join("log")).unwrap();
        let net = chain(&["aa", "nosuch"]);
        let e = run(&net, Command::Add, &c, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("plugin nosuch: not found in {}", s.0.display())
        );
        assert_eq!(s.log(), Vec::<String>::new());
        run(&net, Command::Del, &c, None).unwrap();
        assert_eq!(s.log(), ["DEL aa"]);

        // Not executable is not there.
        fs::set_permissions(s.0.join("aa"), fs::Permissions::from_mode(0o644)).unwrap();
        let e = run(&chain(&["aa"]), Command::Add, &c, None).unwrap_err();
        assert!(e.to_string().starts_with("plugin aa: not found"), "{e}");
    }

    #[test]
    fn results_and_attachments_are_checked() {
        let s = Scratch::new("results");
        s.plugin("list", "printf '[1]'");
        s.plugin("big", "head -c 70000 /dev/zero | tr '\\0' a");
        let dirs = s.dirs();
        let c = ctx(&dirs);
        let e = run(&chain(&["list"]), Command::Add, &c, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "plugin list: its result is not a JSON object"
        );
        assert_eq!(s.log(), ["ADD list", "DEL list"]);
        let e = run(&chain(&["big"]), Command::Add, &c, None).unwrap_err();
        assert_eq!(e.to_string(), "plugin big: printed more than 65536 bytes");

        let net = chain(&["list"]);
        let mut bad = c;
        bad.container_id = "a b";
        assert!(run(&net, Command::Add, &bad, None)
            .unwrap_err()
            .to_string()
            .starts_with("container id"));
        let mut bad = c;
        bad.ifname = "a/b";
        assert!(run(&net, Command::Add, &bad, None)
            .unwrap_err()
            .to_string()
            .starts_with("interface"));
        let caps: [(&str, &[u8]); 1] = [("portMappings", b"[1,")];
        let mut bad = c;
        bad.caps = &caps;
        assert_eq!(
            run(&net, Command::Add, &bad, None).unwrap_err().to_string(),
            "capability portMappings: not JSON"
        );
    }

    #[test]
    fn a_plugin_that_hangs_is_killed() {
        let s = Scratch::new("hang");
        s.plugin("slow", "sleep 20");
        let dirs = s.dirs();
        let mut c = ctx(&dirs);
        c.timeout = Duration::from_millis(300);
        let start = Instant::now();
        let e = run(&chain(&["slow"]), Command::Check, &c, Some(b"{}")).unwrap_err();
        assert_eq!(e.to_string(), "plugin slow: killed after 0.3 s");
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_command_line() {
        let w = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let a = parse_args(&w(
            "add --name lan --id web --netns /run/ns --ifname eth0 --result /s/r.json \
             --bin-dir /b --cap portMappings=[] --args K=V",
        ))
        .unwrap();
        assert_eq!(a.cmd, Some(Command::Add));
        assert_eq!(
            (a.name.as_str(), a.id.as_str(), a.ifname.as_str()),
            ("lan", "web", "eth0")
        );
        assert_eq!(
            (a.netns.to_str(), a.result.to_str()),
            (Some("/run/ns"), Some("/s/r.json"))
        );
        assert_eq!(a.conf_dirs, [PathBuf::from(CONF_DIR)]);
        assert_eq!(a.bin_dirs, [PathBuf::from("/b")]);
        assert_eq!(a.caps, [("portMappings".to_string(), "[]".to_string())]);
        assert_eq!(a.cni_args.as_deref(), Some("K=V"));
        let a = parse_args(&w(
            "del --name n --id i --netns p --ifname e --result r --conf-dir a --conf-dir b",
        ))
        .unwrap();
        assert_eq!(a.conf_dirs, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(a.bin_dirs, BIN_DIRS.map(PathBuf::from));
        for (bad, why) in [
            ("", "usage:"),
            ("up --name n", "usage:"),
            ("check --name", "--name: a value is needed"),
            (
                "check --name n --id i --netns p --ifname e",
                "--result is needed",
            ),
            ("check --nme n", "--nme: unknown"),
            ("add --cap =1", "--cap =1: not NAME=JSON"),
        ] {
            let words = if bad.is_empty() { vec![] } else { w(bad) };
            let e = parse_args(&words).unwrap_err();
            assert!(e.starts_with(why), "{bad}: {e}");
        }
    }
}
