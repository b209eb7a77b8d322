//! The built-in bridge on the real kernel: the library's netlink, netns and
//! address allocation, called from here, with what the kernel then holds
//! checked by iproute2 (`ip -j`) and traffic by busybox `ping`.
//!
//! Each test first moves its own thread into a new network namespace, so
//! its bridge, veths and routes never touch the host's namespace, and two
//! tests may both have a bridge `nctest0`. The containers' namespaces are
//! files made by `nanoctr::net::netns::create` in the test's scratch dir,
//! entered by `nsenter --net=FILE` to look inside.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use nanoctr::net::bridge::{self, Bridge};
use nanoctr::net::ipam::{Subnet, DEFAULT_SUBNET};
use nanoctr::net::netns;

const BRIDGE: &str = "nctest0";

/// A test's scratch dir and the namespace files in it, all removed at the
/// end, failed or not.
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
            "the net tests need root"
        );
        nanoctr_tests::sys::unshare_net().expect("unshare(CLONE_NEWNET)");
        let dir = PathBuf::from(format!("/tmp/nct-net-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
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

    fn bridge(&self) -> Bridge {
        Bridge::open(BRIDGE, DEFAULT_SUBNET, &self.dir.join("ipam")).unwrap()
    }

    /// The address files in the allocation dir.
    fn allocations(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.join("ipam"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
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

/// Runs a program and returns what it printed; fails the test if it fails.
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

/// `ip ARGS` in the test's own namespace (the child starts from this
/// thread, so it is in this thread's namespace).
fn ip_here(args: &[&str]) -> String {
    let mut argv = vec!["ip"];
    argv.extend(args);
    run(&argv)
}

/// Whether one ping from inside `ns` to `to` is answered.
fn ping(ns: &Path, to: Ipv4Addr) -> bool {
    let net = format!("--net={}", ns.display());
    let to = to.to_string();
    Command::new("nsenter")
        .args([&net, "busybox", "ping", "-c1", "-W2", &to])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The nanoctr veths (`nc` + 9 characters) in the test's namespace.
fn veths_here() -> Vec<String> {
    ip_here(&["-j", "link", "show", "type", "veth"])
        .split("\"ifname\":\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|n| n.starts_with("nc"))
        .map(str::to_string)
        .collect()
}

/// What a container sees of its own network: eth0's address, up, and the
/// default route via the gateway.
fn assert_container_side(ns: &Path, ip: Ipv4Addr) {
    let addr = ip_in(ns, &["-j", "-4", "addr", "show", "dev", "eth0"]);
    assert!(
        addr.contains(&format!("\"local\":\"{ip}\",\"prefixlen\":24")),
        "{addr}"
    );
    assert!(addr.contains("\"operstate\":\"UP\""), "{addr}");
    let routes = ip_in(ns, &["-j", "-4", "route", "show"]);
    assert!(
        routes.contains("\"dst\":\"default\",\"gateway\":\"10.88.0.1\",\"dev\":\"eth0\""),
        "{routes}"
    );
    let lo = ip_in(ns, &["-j", "link", "show", "dev", "lo"]);
    assert!(lo.contains("\"UP\""), "{lo}");
}

#[test]
fn two_containers_on_a_bridge_reach_each_other_and_leave_nothing() {
    let mut s = Scratch::new("pair");
    let (a, b) = (s.netns("web"), s.netns("db"));
    let br = s.bridge();

    let web = br.attach("web", &a, None).unwrap_or_else(|e| panic!("{e}"));
    let pinned: Ipv4Addr = "10.88.0.50".parse().unwrap();
    let db = br
        .attach("db", &b, Some(pinned))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(db.ip, pinned);
    assert_ne!(web.ip, db.ip);
    assert!(DEFAULT_SUBNET.contains(web.ip));
    assert_eq!(
        (web.prefix, web.gateway.to_string()),
        (24, "10.88.0.1".into())
    );
    assert_eq!(web.host_veth, bridge::host_veth_name("web", 0));

    // The kernel's view: inside each container, and on the host side.
    assert_container_side(&a, web.ip);
    assert_container_side(&b, db.ip);
    let ports = ip_here(&["-j", "link", "show", "master", BRIDGE]);
    for veth in [&web.host_veth, &db.host_veth] {
        assert!(ports.contains(&format!("\"ifname\":\"{veth}\"")), "{ports}");
    }
    assert!(ports.contains("\"ifalias\":\"nanoctr:web\""), "{ports}");
    let gw = ip_here(&["-j", "-4", "addr", "show", "dev", BRIDGE]);
    assert!(
        gw.contains("\"local\":\"10.88.0.1\",\"prefixlen\":24"),
        "{gw}"
    );

    // Traffic: each to the other, and to the gateway.
    assert!(ping(&a, db.ip), "web cannot reach db at {}", db.ip);
    assert!(ping(&b, web.ip), "db cannot reach web at {}", web.ip);
    assert!(ping(&a, web.gateway), "web cannot reach the gateway");

    // The files a container gets.
    let hosts = br.hosts("web", "web").unwrap();
    assert!(hosts.contains(&format!("{}\tweb\n", web.ip)), "{hosts}");
    assert!(hosts.contains(&format!("{}\tdb\n", db.ip)), "{hosts}");

    // Recovery's view: web unknown, db known.
    let leaks = bridge::leaked(|id| id == "db").unwrap();
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert_eq!(leaks[0].link, web.host_veth);

    // Detached, nothing is left but the bridge; detached again, no error.
    let gone = br.detach("web").unwrap();
    assert_eq!(
        (gone.links, gone.ips),
        (vec![web.host_veth.clone()], vec![web.ip])
    );
    assert!(!ping(&b, web.ip));
    br.detach("db").unwrap();
    assert_eq!(br.detach("db").unwrap(), Default::default());
    assert_eq!(veths_here(), Vec::<String>::new());
    assert_eq!(s.allocations(), Vec::<String>::new());
    for ns in [&a, &b] {
        let links = ip_in(ns, &["-j", "link", "show"]);
        assert!(!links.contains("eth0"), "{links}");
    }

    // Attached again: the same address, its slot being free.
    let again = br.attach("web", &a, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.ip, web.ip);
    assert_container_side(&a, web.ip);
    br.detach("web").unwrap();
    assert!(br.remove().unwrap());

    // The namespace files go with their mounts.
    for ns in s.netns.drain(..).collect::<Vec<_>>() {
        netns::remove(&ns).unwrap();
        assert!(!ns.exists());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&*ns.to_string_lossy()), "{mounts}");
    }
}

#[test]
fn failed_attaches_leave_nothing() {
    let mut s = Scratch::new("fail");
    let br = s.bridge();

    // A namespace that is not there, or a file that is no namespace.
    let missing = s.dir.join("missing.netns");
    let e = br.attach("web", &missing, None).unwrap_err().to_string();
    assert!(
        e.contains("missing.netns") && e.contains("No such file"),
        "{e}"
    );
    let plain = s.dir.join("plain");
    std::fs::write(&plain, "").unwrap();
    let e = br.attach("web", &plain, None).unwrap_err().to_string();
    assert!(e.contains("not a namespace file"), "{e}");
    assert_eq!(s.allocations(), Vec::<String>::new());

    // A namespace that already has an eth0: the veth cannot be made, and
    // the address claimed for it is given back.
    let taken = s.netns("taken");
    ip_in(&taken, &["link", "add", "eth0", "type", "bridge"]);
    let e = br.attach("web", &taken, None).unwrap_err().to_string();
    assert!(
        e.starts_with("netlink: add veth nc") && e.ends_with("File exists"),
        "{e}"
    );
    assert_eq!(veths_here(), Vec::<String>::new());
    assert_eq!(s.allocations(), Vec::<String>::new());

    // A namespace that already has a default route: the last step fails,
    // after the veth pair was made and eth0 given its address; the pair is
    // deleted and the address given back.
    let routed = s.netns("routed");
    ip_in(&routed, &["link", "add", "x0", "type", "bridge"]);
    ip_in(&routed, &["link", "set", "x0", "up"]);
    ip_in(&routed, &["route", "add", "default", "dev", "x0"]);
    let e = br.attach("web", &routed, None).unwrap_err().to_string();
    assert_eq!(e, "netlink: add default route via 10.88.0.1: File exists");
    assert_eq!(veths_here(), Vec::<String>::new());
    assert_eq!(s.allocations(), Vec::<String>::new());
    let inside = ip_in(&routed, &["-j", "link", "show"]);
    assert!(!inside.contains("eth0"), "{inside}");

    // Refusals of ip= leave nothing either.
    let ok = s.netns("ok");
    let e = br
        .attach("web", &ok, Some("10.88.0.1".parse().unwrap()))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "10.88.0.1 is the gateway of 10.88.0.0/24");
    assert_eq!(veths_here(), Vec::<String>::new());

    // A subnet that overlaps one of the host's routes makes no bridge.
    ip_here(&["link", "add", "lan0", "type", "bridge"]);
    ip_here(&["addr", "add", "192.168.7.1/16", "dev", "lan0"]);
    ip_here(&["link", "set", "lan0", "up"]);
    let lan = Subnet::parse("192.168.7.0/24").unwrap();
    let other = Bridge::open("nctest1", lan, &s.dir.join("ipam-lan")).unwrap();
    let e = other.attach("web", &ok, None).unwrap_err().to_string();
    assert!(
        e.starts_with("subnet 192.168.7.0/24 overlaps the host's route 192.168.0.0/16"),
        "{e}"
    );
    let links = ip_here(&["-j", "link", "show"]);
    assert!(!links.contains("nctest1"), "{links}");

    // The namespace is still good for an attach that can succeed.
    let web = br
        .attach("web", &ok, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_container_side(&ok, web.ip);
    br.detach("web").unwrap();
    assert_eq!(veths_here(), Vec::<String>::new());
}

#[test]
fn a_namespace_file_is_refused_twice_and_removed_once_gone() {
    let s = Scratch::new("nsfile");
    let path = s.dir.join("one.netns");
    netns::create(&path).unwrap();
    let e = netns::create(&path).unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    // Its lo is up, and nothing else is there.
    let links = ip_in(&path, &["-j", "link", "show"]);
    assert!(links.contains("\"ifname\":\"lo\""), "{links}");
    assert!(links.contains("\"UP\""), "{links}");
    assert_eq!(links.matches("\"ifname\"").count(), 1, "{links}");
    netns::remove(&path).unwrap();
    netns::remove(&path).unwrap();
    assert!(!path.exists());
    // A directory that is not there: an error, and no file.
    let nowhere = s.dir.join("no/such/dir/netns");
    assert!(netns::create(&nowhere).is_err());
}
