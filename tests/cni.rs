//! CNI networks on the real kernel with Debian's plugins
//! (containernetworking-plugins, in `/usr/lib/cni`): the built `nanoctr
//! cni-exec` adds a container's namespace to a bridge network, checks it,
//! and deletes it, and what the kernel, iptables and host-local's store
//! then hold is looked at directly.
//!
//! Each test first moves its own thread into a new network namespace, and
//! starts every program from that thread, so `cni-exec` and the plugins it
//! runs (which work in the runtime's namespace) make their bridge, veths
//! and iptables rules there, never in the host's. host-local keeps its
//! store in the test's scratch dir.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nanoctr::net::{cni, netns};

const PLUGINS: &str = "/usr/lib/cni";
const BRIDGE: &str = "cnitest0";
const ID: &str = "ctr1";
/// host-local's ranges: IPv4 alone, and IPv4 and IPv6.
const V4: &str = r#"[[{"subnet": "10.99.0.0/24"}]]"#;
const DUAL: &str = r#"[[{"subnet": "10.99.0.0/24"}], [{"subnet": "fd99::/64"}]]"#;

/// A test's scratch dir (configurations, host-local's store, results,
/// namespace files), removed at the end, failed or not.
struct Scratch {
    dir: PathBuf,
    netns: Vec<PathBuf>,
}

impl Scratch {
    /// The scratch dir, with the calling thread in a network namespace of
    /// its own.
    fn new(name: &str) -> Scratch {
        assert!(
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")),
            "the cni tests need root"
        );
        assert!(
            Path::new(PLUGINS).join("bridge").is_file(),
            "the cni tests need containernetworking-plugins in {PLUGINS}"
        );
        nanoctr_tests::sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        let dir = PathBuf::from(format!("/tmp/nct-cni-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("net.d")).unwrap();
        Scratch {
            dir,
            netns: Vec::new(),
        }
    }

    /// A new namespace file, as a container's.
    fn netns(&mut self, name: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.netns"));
        netns::create(&path).unwrap_or_else(|e| panic!("{e}"));
        self.netns.push(path.clone());
        path
    }

    fn conf(&self, file: &str, text: &str) {
        std::fs::write(self.dir.join("net.d").join(file), text).unwrap();
    }

    /// A list of `bridge` (on [`BRIDGE`], 10.99.0.0/24 from host-local
    /// with its store here) and then `more`.
    fn bridge_list(&self, name: &str, more: &[&str]) {
        self.list(name, V4, more);
    }

    /// A list of `bridge` with host-local's `ranges` and then `more`.
    fn list(&self, name: &str, ranges: &str, more: &[&str]) {
        let bridge = format!(
            r#"{{"type": "bridge", "bridge": "{BRIDGE}", "isGateway": true, "ipMasq": false,
                "ipam": {{"type": "host-local", "ranges": {ranges},
                          "dataDir": "{}", "routes": [{{"dst": "0.0.0.0/0"}}]}}}}"#,
            self.store().display()
        );
        let plugins: Vec<&str> = [bridge.as_str()]
            .into_iter()
            .chain(more.iter().copied())
            .collect();
        self.conf(
            &format!("10-{name}.conflist"),
            &format!(
                r#"{{"cniVersion": "1.0.0", "name": "{name}", "plugins": [{}]}}"#,
                plugins.join(",\n")
            ),
        );
    }

    fn store(&self) -> PathBuf {
        self.dir.join("ipam")
    }

    fn result(&self) -> PathBuf {
        self.dir.join(cni::RESULT_FILE)
    }

    /// The addresses in host-local's store for the network `net`.
    fn allocations(&self, net: &str) -> Vec<IpAddr> {
        let Ok(entries) = std::fs::read_dir(self.store().join(net)) else {
            return Vec::new();
        };
        let mut ips: Vec<IpAddr> = entries
            .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
            .collect();
        ips.sort();
        ips
    }

    /// `nanoctr cni-exec CMD` for the container [`ID`] in `ns`.
    fn cni_exec(&self, cmd: &str, net: &str, ns: &Path, ifname: &str, extra: &[&str]) -> Output {
        let dir = |d: &Path| d.to_str().unwrap().to_string();
        Command::new(nanoctr_tests::bin("nanoctr"))
            .args([
                cni::EXEC,
                cmd,
                "--name",
                net,
                "--id",
                ID,
                "--ifname",
                ifname,
            ])
            .args(["--netns", &dir(ns), "--result", &dir(&self.result())])
            .args([
                "--conf-dir",
                &dir(&self.dir.join("net.d")),
                "--bin-dir",
                PLUGINS,
            ])
            .args(extra)
            .output()
            .expect("run nanoctr cni-exec")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for ns in &self.netns {
            if let Err(e) = netns::remove(ns) {
                eprintln!("{e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asserts that `cni-exec` succeeded and printed nothing.
fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that `cni-exec` failed with status 1 and one line on stderr,
/// and returns that line.
fn assert_fails(what: &str, out: &Output) -> String {
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    assert!(err.starts_with("nanoctr cni-exec: "), "{what}: {err}");
    err.trim_end().to_string()
}

/// Runs a program from this thread (so in its namespace); what it printed.
fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `ip ARGS` inside the namespace file `ns`.
fn ip_in(ns: &Path, args: &[&str]) -> String {
    let net = format!("--net={}", ns.display());
    let mut argv = vec!["nsenter", &net, "ip"];
    argv.extend(args);
    run(&argv)
}

/// The veths in the test's namespace.
fn veths_here() -> Vec<String> {
    run(&["ip", "-j", "link", "show", "type", "veth"])
        .split("\"ifname\":\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

/// The one IPv4 address of a result, in 10.99.0.0/24.
fn address_of(result: &[u8]) -> Ipv4Addr {
    let ips: Vec<String> = cni::ips(result)
        .into_iter()
        .filter(|a| !a.contains(':'))
        .collect();
    assert_eq!(ips.len(), 1, "{}", String::from_utf8_lossy(result));
    let (ip, prefix) = ips[0].split_once('/').unwrap();
    assert_eq!(prefix, "24");
    let ip: Ipv4Addr = ip.parse().unwrap();
    assert_eq!(ip.octets()[..3], [10, 99, 0], "{ip}");
    ip
}

#[test]
fn add_check_del_with_bridge_and_portmap() {
    let mut s = Scratch::new("chain");
    // portmap's rules are iptables': it is in the chain only with it, and
    // then must work.
    let iptables = Command::new("iptables").arg("--version").output().is_ok();
    let portmap = r#"{"type": "portmap", "capabilities": {"portMappings": true}}"#;
    let more: &[&str] = if iptables { &[portmap] } else { &[] };
    // Dual stack: an address of each family, each published and undone.
    s.list("cnitest", DUAL, more);
    let ns = s.netns("ctr1");
    let ports = r#"portMappings=[{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]"#;

    let out = s.cni_exec("add", "cnitest", &ns, "eth0", &["--cap", ports]);
    assert_ok("add", &out);
    let result = std::fs::read(s.result()).unwrap();
    assert!(!s.result().with_extension("json.tmp").exists());
    let ip = address_of(&result);

    // The container's side: eth0 with the address, the default route via
    // the gateway.
    let addr = ip_in(&ns, &["-j", "-4", "addr", "show", "dev", "eth0"]);
    assert!(
        addr.contains(&format!("\"local\":\"{ip}\",\"prefixlen\":24")),
        "{addr}"
    );
    let routes = ip_in(&ns, &["-j", "-4", "route", "show", "default"]);
    assert!(routes.contains("\"gateway\":\"10.99.0.1\""), "{routes}");
    // The host's side: the bridge with the gateway address, one veth on it.
    let gw = run(&["ip", "-j", "-4", "addr", "show", "dev", BRIDGE]);
    assert!(gw.contains("\"local\":\"10.99.0.1\""), "{gw}");
    let veths = veths_here();
    assert_eq!(veths.len(), 1, "{veths:?}");
    let on_bridge = run(&["ip", "-j", "link", "show", "master", BRIDGE]);
    assert!(on_bridge.contains(&veths[0]), "{on_bridge}");
    // The IPv6 address too, on eth0.
    let v6 = cni::ips(&result)
        .into_iter()
        .find_map(|a| a.strip_suffix("/64")?.parse::<Ipv6Addr>().ok())
        .expect("an IPv6 address");
    assert_eq!(v6.segments()[..4], [0xfd99, 0, 0, 0], "{v6}");
    let addr6 = ip_in(&ns, &["-j", "-6", "addr", "show", "dev", "eth0"]);
    assert!(addr6.contains(&format!("\"local\":\"{v6}\"")), "{addr6}");
    // host-local's records of the addresses, the container's.
    assert_eq!(s.allocations("cnitest"), [IpAddr::V4(ip), IpAddr::V6(v6)]);
    let owner = std::fs::read_to_string(s.store().join("cnitest").join(ip.to_string())).unwrap();
    assert!(owner.starts_with(ID), "{owner}");
    // The published port, for both.
    if iptables {
        let nat = run(&["iptables", "-t", "nat", "-S"]);
        assert!(nat.contains("--dport 8080"), "{nat}");
        assert!(nat.contains(&format!("--to-destination {ip}:80")), "{nat}");
        let nat6 = run(&["ip6tables", "-t", "nat", "-S"]);
        assert!(
            nat6.contains(&format!("--to-destination [{v6}]:80")),
            "{nat6}"
        );
    }

    // Every plugin checks; portmap checks its rules only when given the
    // mappings, and before plugins 1.3.0 it then looks for the IPv4 rules
    // in ip6tables too (fixed upstream by "Only check ipv6 when an IPv6 is
    // configured"), so with Debian's 1.1.1 that fails, as portmap's error.
    assert_ok("check", &s.cni_exec("check", "cnitest", &ns, "eth0", &[]));
    let mapped = s.cni_exec("check", "cnitest", &ns, "eth0", &["--cap", ports]);
    if iptables && !mapped.status.success() {
        let e = assert_fails("check with the mappings", &mapped);
        assert!(
            e.starts_with(
                "nanoctr cni-exec: plugin portmap: 999: could not check ipv6 dnat: rule "
            ),
            "{e}"
        );
    } else {
        assert_ok("check with the mappings", &mapped);
    }
    // A second add without a del is refused, and changes nothing.
    let e = assert_fails("add again", &s.cni_exec("add", "cnitest", &ns, "eth0", &[]));
    assert!(e.contains("there already"), "{e}");
    assert_eq!(std::fs::read(s.result()).unwrap(), result);

    assert_ok(
        "del",
        &s.cni_exec("del", "cnitest", &ns, "eth0", &["--cap", ports]),
    );
    assert!(!s.result().exists());
    assert_eq!(s.allocations("cnitest"), Vec::<IpAddr>::new());
    assert_eq!(veths_here(), Vec::<String>::new());
    let links = ip_in(&ns, &["-j", "link", "show"]);
    assert!(!links.contains("eth0"), "{links}");
    if iptables {
        for prog in ["iptables", "ip6tables"] {
            let nat = run(&[prog, "-t", "nat", "-S"]);
            assert!(!nat.contains("--dport 8080"), "{prog}: {nat}");
        }
    }
    // Deleted again, without a result: nothing to do, no error.
    assert_ok("del again", &s.cni_exec("del", "cnitest", &ns, "eth0", &[]));
    // Added again: the container's address is free again.
    assert_ok(
        "add after del",
        &s.cni_exec("add", "cnitest", &ns, "eth0", &[]),
    );
    let again = address_of(&std::fs::read(s.result()).unwrap());
    assert_eq!(s.allocations("cnitest")[0], IpAddr::V4(again));
    assert_ok("del after", &s.cni_exec("del", "cnitest", &ns, "eth0", &[]));
    assert_eq!(s.allocations("cnitest"), Vec::<IpAddr>::new());
}

#[test]
fn a_single_plugin_conf() {
    let mut s = Scratch::new("single");
    s.conf(
        "50-lo.conf",
        r#"{"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}"#,
    );
    let ns = s.netns("ctr1");
    ip_in(&ns, &["link", "set", "lo", "down"]);
    assert_ok("add", &s.cni_exec("add", "lo", &ns, "lo", &[]));
    let result = std::fs::read(s.result()).unwrap();
    assert!(cni::ips(&result).contains(&"127.0.0.1/8".to_string()));
    let lo = ip_in(&ns, &["-j", "link", "show", "dev", "lo"]);
    assert!(lo.contains("\"UP\""), "{lo}");
    assert_ok("check", &s.cni_exec("check", "lo", &ns, "lo", &[]));
    assert_ok("del", &s.cni_exec("del", "lo", &ns, "lo", &[]));
    assert!(!s.result().exists());
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let mut s = Scratch::new("bad");
    let ns = s.netns("ctr1");
    let net_d = s.dir.join("net.d");

    // A network no file names.
    s.bridge_list("cnitest", &[]);
    let e = assert_fails("unknown", &s.cni_exec("add", "nosuch", &ns, "eth0", &[]));
    assert_eq!(
        e,
        format!(
            "nanoctr cni-exec: network nosuch: not found in {}",
            net_d.display()
        )
    );
    // A plugin not installed: found missing before anything runs.
    s.bridge_list("missing", &[r#"{"type": "nosuchplugin"}"#]);
    let e = assert_fails("missing", &s.cni_exec("add", "missing", &ns, "eth0", &[]));
    assert_eq!(
        e,
        format!("nanoctr cni-exec: plugin nosuchplugin: not found in {PLUGINS}")
    );
    assert_eq!(s.allocations("missing"), Vec::<IpAddr>::new());
    assert!(!s.result().exists());
    // A plugin failing after bridge made the veth and host-local gave an
    // address: both undone.
    s.bridge_list(
        "failing",
        &[r#"{"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.no_such_knob": "1"}}"#],
    );
    let e = assert_fails("failing", &s.cni_exec("add", "failing", &ns, "eth0", &[]));
    assert!(e.starts_with("nanoctr cni-exec: plugin tuning: "), "{e}");
    assert!(std::fs::read_dir(s.store().join("failing")).is_ok());
    assert_eq!(s.allocations("failing"), Vec::<IpAddr>::new());
    assert_eq!(veths_here(), Vec::<String>::new());
    assert!(!s.result().exists());
    let links = ip_in(&ns, &["-j", "link", "show"]);
    assert!(!links.contains("eth0"), "{links}");
    // A plugin type that is a path; a bad container id; check with no add.
    s.conf(
        "90-path.conf",
        r#"{"cniVersion": "1.0.0", "name": "path", "type": "../../bin/sh"}"#,
    );
    let e = assert_fails("path", &s.cni_exec("add", "path", &ns, "eth0", &[]));
    assert!(
        e.ends_with("90-path.conf: plugin 1: type \"../../bin/sh\": not a file name"),
        "{e}"
    );
    let e = assert_fails("check", &s.cni_exec("check", "cnitest", &ns, "eth0", &[]));
    assert!(e.ends_with("not there: no result of add"), "{e}");
    let e = assert_fails("usage", &s.cni_exec("up", "cnitest", &ns, "eth0", &[]));
    assert!(e.contains("usage: nanoctr cni-exec add|del|check"), "{e}");
    assert_eq!(veths_here(), Vec::<String>::new());
}
