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

/// A router's network, made by the test: the namespace the daemon runs
/// in (its "host"), with an uplink veth to a second namespace, the
/// client's. Both go when dropped, with everything in them.
struct Router {
    host: Netns,
    client: Netns,
}

/// The uplink's addresses: the router's and the client's.
const UPLINK: &str = "192.168.77.1";
const CLIENT: &str = "192.168.77.2";

impl Router {
    fn new(name: &str) -> Router {
        let r = Router {
            host: Netns::new(&format!("{name}-h")),
            client: Netns::new(&format!("{name}-c")),
        };
        let (h, c) = (&r.host.0, &r.client.0);
        for args in [
            format!("link add up0 netns {h} type veth peer name cl0 netns {c}"),
            format!("-n {h} addr add {UPLINK}/24 dev up0"),
            format!("-n {c} addr add {CLIENT}/24 dev cl0"),
            format!("-n {h} link set up0 up"),
            format!("-n {c} link set cl0 up"),
            format!("-n {h} link set lo up"),
            format!("-n {c} link set lo up"),
        ] {
            ip(&args);
        }
        r
    }

    /// A daemon in the router's namespace, with these flags.
    fn daemon(&self, runtime: Runtime, flags: &[&str]) -> Daemon {
        let launch = nanoctr_tests::Launch {
            flags: flags.iter().map(|s| s.to_string()).collect(),
            prefix: vec!["nsenter".into(), format!("--net={}", self.host.path())],
            ..Default::default()
        };
        Daemon::launch(runtime, launch)
    }

    /// `cmd` run in the router's namespace: its stdout, if it succeeded.
    fn on_host(&self, cmd: &[&str]) -> Option<String> {
        run_in(&self.host, cmd)
    }

    fn on_client(&self, cmd: &[&str]) -> Option<String> {
        run_in(&self.client, cmd)
    }

    /// The names of the router's links.
    fn links(&self) -> Vec<String> {
        let out = self.on_host(&["ip", "-o", "link", "show"]).unwrap();
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .collect()
    }

    /// The `ip nanoctr` table, if there is one.
    fn nat_table(&self) -> Option<String> {
        self.on_host(&["nft", "list", "table", "ip", "nanoctr"])
    }
}

fn ip(args: &str) {
    let ok = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .unwrap()
        .success();
    assert!(ok, "ip {args}");
}

fn run_in(ns: &Netns, cmd: &[&str]) -> Option<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .args(cmd)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `http://ADDR/PATH` fetched by curl (5 s at most), retried for up to
/// 10 s while the server comes up.
fn fetch(r: &Router, from_client: bool, url: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let cmd = ["curl", "-sf", "-m", "5", url];
        let got = match from_client {
            true => r.on_client(&cmd),
            false => r.on_host(&cmd),
        };
        if let Some(body) = got {
            return body;
        }
        assert!(std::time::Instant::now() < deadline, "{url} did not answer");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Waits for `id`'s output to contain `want`; the output.
fn output_with(d: &Daemon, id: &str, want: &str) -> String {
    let path = d.state.join(id).join("init/output");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = std::fs::read_to_string(&path).unwrap_or_default();
        if out.contains(want) {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never printed {want:?}: {out:?}\n{}",
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A web server on the bridge that serves its own /etc (its hosts file
/// among it) and fetches its peer's, by name, until it has it (with nc:
/// busybox-static's wget crashes on Debian).
fn web_bundle(d: &Daemon, id: &str, peer: &str) -> std::path::PathBuf {
    let script = format!(
        "httpd -p 80 -h /etc && until out=$(printf 'GET /hosts HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {peer} 80) && [ -n \"$out\" ]; do sleep 0.2; done; echo \"$out\"; echo fetched-{peer}; exec sleep 600"
    );
    d.bundle(id, &["sh", "-c", &script])
}

#[test]
fn the_bridge_serves_published_ports_names_and_survives_a_daemon_kill() {
    bridge(Runtime::Runc);
}

#[test]
fn the_bridge_serves_published_ports_names_and_survives_a_daemon_kill_with_crun() {
    bridge(Runtime::Crun);
}

fn bridge(runtime: Runtime) {
    let r = Router::new(&format!("nctb-{}", runtime.name()));
    let mut d = r.daemon(runtime, &[]);
    let web = web_bundle(&d, "web", "db");
    let db = web_bundle(&d, "db", "web");
    d.ask(&format!(
        "run web {} net=bridge publish=8080:80",
        web.display()
    ))
    .ok();
    d.ask(&format!("run db {} net=bridge", db.display())).ok();
    let (web_ip, db_ip) = (
        state(&d, "web")["ip"].clone(),
        state(&d, "db")["ip"].clone(),
    );
    assert!(web_ip.starts_with("10.88.0.") && db_ip.starts_with("10.88.0."));
    assert_ne!(web_ip, db_ip);
    assert_eq!(state(&d, "web")["net"], "bridge:nanoctr0");

    // Each reaches the other by name.
    let out = output_with(&d, "web", "fetched-db");
    assert!(out.contains(&format!("{web_ip}\tweb")), "db's hosts: {out}");
    output_with(&d, "db", "fetched-web");

    // The published port, from a client on the uplink; the container by
    // its address from the router itself.
    let hosts = fetch(&r, true, &format!("http://{UPLINK}:8080/hosts"));
    assert!(hosts.contains(&format!("{web_ip}\tweb")), "{hosts}");
    assert!(hosts.contains(&format!("{db_ip}\tdb")), "{hosts}");
    let hosts = fetch(&r, false, &format!("http://{db_ip}/hosts"));
    assert!(hosts.contains(&format!("{db_ip}\tdb")), "{hosts}");
    let resolv = fetch(&r, false, &format!("http://{web_ip}/resolv.conf"));
    assert!(resolv.contains("nameserver"), "{resolv}");
    let links = r.links();
    assert!(links.iter().any(|l| l == "nanoctr0"), "{links:?}");
    assert_eq!(
        links.iter().filter(|l| l.starts_with("nc")).count(),
        2,
        "{links:?}"
    );

    // A daemon killed and started again keeps them, and their addresses.
    d.kill9();
    d.restart();
    assert_eq!(state(&d, "web")["ip"], web_ip);
    assert_eq!(state(&d, "db")["ip"], db_ip);
    let hosts = fetch(&r, true, &format!("http://{UPLINK}:8080/hosts"));
    assert!(hosts.contains(&format!("{web_ip}\tweb")), "{hosts}");
    let metrics = d.ask("metrics").data.join("\n");
    assert!(metrics.contains("nanoctr_bridge_addresses 2"), "{metrics}");

    // Delete leaves no veth, rule or address.
    d.ask("delete web force").ok();
    let table = r.nat_table().unwrap();
    assert!(!table.contains("dport 8080"), "{table}");
    d.ask("delete db force").ok();
    let links = r.links();
    assert!(!links.iter().any(|l| l.starts_with("nc")), "{links:?}");
    assert!(d
        .dir
        .join("net/nanoctr0")
        .read_dir()
        .unwrap()
        .next()
        .is_none());
    // nft runs after the answer: its table goes soon after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while r.nat_table().is_some() {
        assert!(std::time::Instant::now() < deadline, "the nat table stays");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn what_a_daemon_killed_mid_delete_left_is_unmade_at_its_restart() {
    let r = Router::new("nctk");
    let mut d = r.daemon(Runtime::Runc, &[]);
    for (id, port) in [("web", 8081), ("db", 8082)] {
        let b = d.bundle(id, &["sleep", "600"]);
        d.ask(&format!(
            "run {id} {} net=bridge publish={port}:80",
            b.display()
        ))
        .ok();
    }
    assert!(r.nat_table().is_some_and(|t| t.contains("dport 8082")));
    d.kill9();
    // web: killed as its delete had deleted the container and its
    // record, the rest of its dir left.
    let _ = d.runtime_cmd(&["delete", "--force", "web"]);
    std::fs::remove_file(d.state.join("web/container")).unwrap();
    // db: its whole dir gone, its namespace held elsewhere, so that its
    // veth lives on: only the kernel and the address store know of it.
    let _ = d.runtime_cmd(&["delete", "--force", "db"]);
    let held = d.dir.join("held-netns");
    std::fs::write(&held, b"").unwrap();
    let dir = d.state.join("db");
    let mount = |args: &[&std::ffi::OsStr]| {
        assert!(
            Command::new("mount").args(args).status().unwrap().success(),
            "mount {args:?}"
        )
    };
    mount(&[
        "--bind".as_ref(),
        dir.join("netns").as_os_str(),
        held.as_os_str(),
    ]);
    let _ = Command::new("umount")
        .arg("-l")
        .arg(dir.join("netns"))
        .status();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(r.links().iter().filter(|l| l.starts_with("nc")).count(), 2);

    d.restart();
    let links = r.links();
    let _ = Command::new("umount").arg("-l").arg(&held).status();
    assert!(
        !links.iter().any(|l| l.starts_with("nc")),
        "{links:?}\n{}",
        d.log()
    );
    assert!(d
        .dir
        .join("net/nanoctr0")
        .read_dir()
        .unwrap()
        .next()
        .is_none());
    assert!(d.container_dirs().is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while r.nat_table().is_some() {
        assert!(std::time::Instant::now() < deadline, "the rules stay");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn bad_bridge_options_are_refused_with_nothing_half_made() {
    let r = Router::new("nctbad");
    let d = r.daemon(Runtime::Runc, &[]);
    let b = d.bundle("a", &["sleep", "600"]);
    d.ask(&format!("run a {} net=bridge publish=8080:80", b.display()))
        .ok();
    let a_ip = state(&d, "a")["ip"].clone();
    let before = r.links();
    for (opts, code, says) in [
        (
            "net=bridge ip=10.9.0.5",
            "invalid",
            "not a container address of 10.88.0.0/24",
        ),
        (
            "net=bridge ip=10.88.0.1",
            "invalid",
            "not a container address",
        ),
        (
            &format!("net=bridge ip={a_ip}") as &str,
            "invalid",
            "is taken by a",
        ),
        ("net=bridge publish=8080:81", "exists", "published by a"),
        ("net=bridge:up0", "invalid", "is not a bridge"),
    ] {
        let a = d.ask(&format!("run x {} {opts}", b.display()));
        let message = a.err_code(code);
        assert!(message.contains(says), "{opts}: {message}");
        assert_eq!(d.container_dirs(), ["a"], "{opts}");
        assert_eq!(r.links(), before, "{opts}");
    }
    let held: Vec<_> = d.dir.join("net/nanoctr0").read_dir().unwrap().collect();
    assert_eq!(held.len(), 1, "a's address alone");

    // A subnet on a route the router has already.
    let d2 = r.daemon(Runtime::Runc, &["--bridge-subnet", "192.168.77.0/24"]);
    let b = d2.bundle("y", &["true"]);
    let e = d2.ask(&format!("run y {} net=bridge:nctest1", b.display()));
    let message = e.err_code("invalid");
    assert!(
        message.contains("overlaps the host's route 192.168.77.0/24"),
        "{message}"
    );
    assert!(d2.container_dirs().is_empty());
    assert!(!r.links().iter().any(|l| l == "nctest1"));
}

#[test]
fn the_net_hook_hears_of_every_interface_made_and_unmade() {
    let r = Router::new("ncth");
    let dir = std::env::temp_dir().join(format!("ncth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (hook, heard) = (dir.join("hook"), dir.join("heard"));
    let script = format!("#!/bin/sh\necho \"$*\" >> {}\n", heard.display());
    std::fs::write(&hook, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = r.daemon(Runtime::Runc, &["--net-hook", hook.to_str().unwrap()]);
    let b = d.bundle("web", &["sleep", "600"]);
    d.ask(&format!("run web {} net=bridge", b.display())).ok();
    let ip = state(&d, "web")["ip"].clone();
    let veth = r.links().into_iter().find(|l| l.starts_with("nc")).unwrap();
    d.ask("delete web force").ok();
    let want = format!("add web {veth} {ip}\ndel web {veth} {ip}\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = std::fs::read_to_string(&heard).unwrap_or_default();
        if got == want {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{got:?}\n{}", d.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CNI network list for the daemon's tests: Debian's `bridge` (on
/// `cnid0`, 10.98.0.0/24 from `host-local`, its store in `dir`), then
/// `portmap`; and a network whose plugin is not there.
fn cni_confs(dir: &Path) -> std::path::PathBuf {
    let conf = dir.join("net.d");
    std::fs::create_dir_all(&conf).unwrap();
    let store = dir.join("ipam");
    std::fs::write(
        conf.join("10-testnet.conflist"),
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "testnet", "plugins": [
                {{"type": "bridge", "bridge": "cnid0", "isGateway": true, "ipMasq": false,
                  "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "10.98.0.0/24"}}]],
                           "routes": [{{"dst": "0.0.0.0/0"}}], "dataDir": "{}"}}}},
                {{"type": "portmap", "capabilities": {{"portMappings": true}}}}]}}"#,
            store.display()
        ),
    )
    .unwrap();
    std::fs::write(
        conf.join("20-broken.conf"),
        r#"{"cniVersion": "1.0.0", "name": "broken", "type": "nosuchplugin"}"#,
    )
    .unwrap();
    conf
}

/// The addresses host-local holds in `dir`'s store for network `testnet`.
fn leases(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("ipam/testnet")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("10.98."))
        .collect()
}

#[test]
fn cni_networks_are_added_checked_and_deleted_with_debians_plugins() {
    cni(Runtime::Runc);
}

#[test]
fn cni_networks_are_added_checked_and_deleted_with_debians_plugins_with_crun() {
    cni(Runtime::Crun);
}

fn cni(runtime: Runtime) {
    assert!(
        Path::new("/usr/lib/cni/bridge").is_file(),
        "the cni tests need containernetworking-plugins"
    );
    let r = Router::new(&format!("nctc-{}", runtime.name()));
    let scratch = std::path::PathBuf::from(format!(
        "/tmp/nct-cnid-{}-{}",
        runtime.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    let conf = cni_confs(&scratch);
    let conf = conf.to_str().unwrap();
    let mut d = r.daemon(
        runtime,
        &["--cni-conf-dir", conf, "--cni-bin-dir", "/usr/lib/cni"],
    );
    let web = web_bundle(&d, "web", "db");
    let db = web_bundle(&d, "db", "web");
    d.ask(&format!(
        "run web {} net=cni:testnet publish=8090:80",
        web.display()
    ))
    .ok();
    d.ask(&format!("run db {} net=cni:testnet", db.display()))
        .ok();
    let (web_ip, db_ip) = (
        state(&d, "web")["ip"].clone(),
        state(&d, "db")["ip"].clone(),
    );
    assert!(web_ip.starts_with("10.98.0."), "{web_ip}");
    assert_eq!(state(&d, "web")["ips"], format!("{web_ip}/24"));
    assert_eq!(state(&d, "web")["net"], "cni:testnet");
    let mut held = leases(&scratch);
    held.sort();
    let mut want = vec![web_ip.clone(), db_ip.clone()];
    want.sort();
    assert_eq!(held, want);

    // On the network: each reaches the other by its address (no names:
    // CNI gives none), the router reaches them, a client on the uplink
    // reaches the published port through portmap's rules.
    let hosts = fetch(&r, false, &format!("http://{db_ip}/hosts"));
    assert!(hosts.contains("localhost"), "{hosts}");
    let hosts = fetch(&r, true, &format!("http://{UPLINK}:8090/hosts"));
    assert!(hosts.contains("localhost"), "{hosts}");
    assert_eq!(d.ask("state db check").ok(), "check=ok");
    let e = d.ask("state nope check");
    e.err_code("not-found");

    // A daemon killed and started again keeps them; CHECK still holds.
    // (With runc alone: crun's test daemon gets a private mount namespace
    // at each start, so a restarted one cannot see the namespace files
    // the first one bound; a daemon on a board has the host's.)
    let restarts = matches!(runtime, Runtime::Runc);
    if restarts {
        d.kill9();
        d.restart();
        assert_eq!(state(&d, "web")["ip"], web_ip);
        assert_eq!(d.ask("state db check").ok(), "check=ok");
    }

    // Deleted: DEL frees the address, the veth and the port's rules.
    d.ask("delete web force").ok();
    d.eventually("web's CNI attachment ended", || {
        !d.state.join(".cni/web").exists()
    });
    assert_eq!(leases(&scratch), std::slice::from_ref(&db_ip));
    let nat = r.on_host(&["iptables-save", "-t", "nat"]).unwrap();
    assert!(!nat.contains("8090"), "{nat}");

    // A daemon killed, and db gone meanwhile with its state dir: the
    // restarted daemon ends the attachment nobody has.
    if restarts {
        d.kill9();
        let _ = d.runtime_cmd(&["delete", "--force", "db"]);
        std::fs::remove_dir_all(d.state.join("db")).unwrap();
        d.restart();
    } else {
        d.ask("delete db force").ok();
    }
    d.eventually("db's CNI attachment ended", || {
        !d.state.join(".cni/db").exists()
    });
    assert!(leases(&scratch).is_empty(), "{}", d.log());
    let links = r.links();
    assert!(!links.iter().any(|l| l.starts_with("veth")), "{links:?}");

    // Refused: a network not there (nothing made); a plugin not there
    // (the runtime's create fails with its message, and what was made
    // for it goes).
    let x = d.bundle("x", &["true"]);
    let e = d.ask(&format!("run x {} net=cni:nonet", x.display()));
    assert!(e.err_code("invalid").contains("network nonet: not found"));
    let e = d.ask(&format!("run x {} net=cni:broken", x.display()));
    let says = e.err_code("runtime");
    assert!(says.contains("nosuchplugin"), "{says:?}\n{}", d.log());
    assert!(d.listed().is_empty());
    d.eventually("x's CNI attachment ended", || {
        !d.state.join(".cni/x").exists()
    });
    assert!(d.container_dirs().is_empty());
    drop(d);
    let _ = std::fs::remove_dir_all(&scratch);
}
