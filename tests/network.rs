//! Container networks with real runc: `net=host`, `net=none` and
//! `net=ns:PATH` written into the derived config.json (the bundle's is
//! never touched), and the refusals of bad `net=` options with nothing
//! made. Every namespace here is the host's or one the test makes.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use nanoctr_tests::{fields, Daemon, Runtime};

/// The network namespace of `/proc/self` as the container sees it, and
/// the interfaces it has: what the container printed.
const SHOW_NET: &[&str] = &[
    "sh",
    "-c",
    "readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
];

/// Runs a container that shows its network, and returns (its netns
/// link, its interfaces).
fn shown(d: &Daemon, id: &str, net: &str) -> (String, Vec<String>) {
    let b = d.bundle(id, SHOW_NET);
    d.ask(&format!("run {id} {} {net}", b.display())).ok();
    d.await_exit_status(id, "init");
    assert_eq!(d.ask(&format!("wait {id}")).ok(), "exit=0");
    let out = std::fs::read_to_string(d.state.join(id).join("init/output")).unwrap();
    let mut lines = out.lines().map(str::to_string);
    let ns = lines.next().unwrap_or_default();
    (ns, lines.filter(|l| !l.is_empty()).collect())
}

fn state(d: &Daemon, id: &str) -> HashMap<String, String> {
    fields(&d.ask(&format!("state {id}")).data[0])
}

fn link(path: &str) -> String {
    std::fs::read_link(path)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A namespace made with `ip netns add`, removed when dropped.
struct Netns(String);

impl Netns {
    fn new(name: &str) -> Netns {
        let name = format!("{name}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add {name}");
        Netns(name)
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn host_none_and_a_named_namespace() {
    modes(Runtime::Runc);
}

#[test]
fn host_none_and_a_named_namespace_with_crun() {
    modes(Runtime::Crun);
}

fn modes(runtime: Runtime) {
    // Made before the daemon, which may run in a mount namespace of its own.
    let lan = Netns::new(&format!("nctest-{}", runtime.name()));
    let d = Daemon::start_with(runtime, &[]);
    let host_ns = link("/proc/self/ns/net");

    let (ns, ifaces) = shown(&d, "h", "net=host");
    assert_eq!(ns, host_ns, "net=host is the host's namespace");
    assert!(ifaces.len() > 1, "the host's interfaces: {ifaces:?}");
    assert_eq!(state(&d, "h")["net"], "host");

    let (ns, ifaces) = shown(&d, "n", "net=none");
    assert_ne!(ns, host_ns);
    assert_eq!(ifaces, ["lo"], "net=none has loopback only");
    assert_eq!(state(&d, "n")["net"], "none");

    let want = format!("net:[{}]", {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(lan.path()).unwrap().ino()
    });
    let (ns, ifaces) = shown(&d, "j", &format!("net=ns:{}", lan.path()));
    assert_eq!(ns, want, "net=ns: joins the namespace at the path");
    assert_eq!(ifaces, ["lo"]);
    assert_eq!(state(&d, "j")["net"], format!("ns:{}", lan.path()));

    // Without net= the bundle's own namespaces stand (a new one here).
    let (ns, _) = shown(&d, "b", "");
    assert_ne!(ns, host_ns);
    assert_eq!(state(&d, "b")["net"], "bundle");
}

#[test]
fn the_bundle_is_never_written_to() {
    let d = Daemon::start();
    let b = d.bundle("h", &["true"]);
    let before = std::fs::read(b.join("config.json")).unwrap();
    d.ask(&format!("run h {} net=host", b.display())).ok();
    d.await_exit_status("h", "init");
    assert_eq!(std::fs::read(b.join("config.json")).unwrap(), before);
    let derived = d.state.join("h/bundle/config.json");
    let text = std::fs::read_to_string(derived).unwrap();
    assert!(!text.contains("\"network\""), "{text}");
}

#[test]
fn bad_net_options_are_refused_with_nothing_made() {
    let d = Daemon::start();
    let b = d.bundle("x", &["true"]);
    let hostname = Path::new("/etc/hostname");
    assert!(hostname.exists());
    for (opts, code, says) in [
        ("net=wifi", "invalid", "wants host, none"),
        ("net=ns:/nonexistent/lan", "invalid", "No such file"),
        ("net=ns:/etc/hostname", "invalid", "not a namespace"),
        ("net=ns:relative", "invalid", "absolute path"),
        ("net=host net=none", "invalid", "given twice"),
        ("net=host ip=10.88.0.5", "invalid", "ip= needs net=bridge"),
        ("net=none publish=8080:80", "invalid", "publish= needs"),
        ("net=bridge publish=8080:0", "invalid", "publish=8080:0"),
    ] {
        let a = d.ask(&format!("run x {} {opts}", b.display()));
        let message = a.err_code(code);
        assert!(message.contains(says), "{opts}: {message}");
        assert!(d.listed().is_empty(), "{opts}");
        assert!(d.container_dirs().is_empty(), "{opts}");
        assert!(d.runtime_ids().is_empty(), "{opts}");
    }
}
