//! A container's network, as its `net=` option says (`wire/net.rs`):
//! checked before anything is made, made before the runtime's create,
//! written into its derived `config.json` (never into the bundle), and
//! unmade when the container goes.
//!
//! - `net=host`: no network namespace entry: the host's.
//! - `net=none`: a new namespace, made by the runtime: loopback only.
//! - `net=ns:PATH`: the namespace at PATH (a bind mount of one, as
//!   `ip netns add` makes under `/var/run/netns`), which must be one.
//! - `net=bridge[:NAME]`: a namespace file in the container's dir, a veth
//!   pair to the bridge, an address kept in `--net-dir` (`net/`), and its
//!   `/etc/hosts` and `/etc/resolv.conf` bound from its dir. The dir's
//!   `net` file says what it is attached to, written before anything is
//!   made, so that whatever a crash left is found and unmade.
//!
//! - `net=cni:NAME`: the network `NAME` of `--cni-conf-dir`, its plugins
//!   run by `nanoctr cni-exec` (`net/cni.rs`): a namespace file in the
//!   state dir's `.cni/ID/`, filled by ADD as the runtime's
//!   `createRuntime` hook (so the runtime, not the daemon, waits for the
//!   plugins, and the runtime's create fails with their message), emptied
//!   by DEL, a child of the daemon, when the container goes: that DEL
//!   removes the dir, so a dir that is there is an attachment not yet
//!   ended, which recovery ends. CHECK is `state ID check`.
//!
//! NAT and published ports are the nftables table `ip nanoctr`, a pure
//! function of the containers on bridges: made whole by one `nft -f -`
//! transaction each time one comes or goes, and at start-up, so no rule
//! outlives its container. The daemon never waits for `nft` or the
//! `--net-hook`: their ends come back as child exits.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::bundle::config::{Netns, Network};
use crate::bundle::json;
use crate::net::bridge;
use crate::net::cni;
use crate::net::ipam::Subnet;
use crate::server::effects::NetRequest;
use crate::server::lifecycle::Verb;
use crate::server::{Daemon, Effects, Outcome};
use crate::slab::Ref;
use crate::wire::net::{NetMode, Publish};
use crate::wire::proto::{Code, Error};
use crate::wire::Spec;

/// Where bridge addresses are kept unless `--net-dir` says.
pub const DEFAULT_NET_DIR: &str = "/var/lib/nanoctr/net";

/// In a container's dir: its namespace file, what it is attached to,
/// and the files bound over its rootfs's.
const NETNS: &str = "netns";
const NET: &str = "net";
const RESOLV: &str = "resolv.conf";
const HOSTS: &str = "hosts";
/// In the state dir: each `net=cni` container's attachment, `.cni/ID/`,
/// with the network's name and the port mappings given to its plugins
/// (`network`: `NAME\n[JSON]\n`), the namespace file, ADD's result, and
/// what the last CHECK said.
const CNI_DIR: &str = ".cni";
const CNI_NETWORK: &str = "network";
const CNI_CHECK_LOG: &str = "check.log";
const CNI_ADD_ERROR: &str = "add.error";
/// The interface a CNI network gives a container.
const CNI_IFNAME: &str = "eth0";
/// In the state dir: what `nft` and the hook say, kept to this size.
const PROGRAM_LOG: &str = ".net.log";
const PROGRAM_LOG_MAX: u64 = 64 * 1024;

/// A container on a bridge, as its dir's `net` file says:
/// `BRIDGE [VETH IP]`, the second part once it is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnBridge {
    pub bridge: String,
    pub link: Option<(String, Ipv4Addr)>,
}

impl OnBridge {
    pub fn read(dir: &Path) -> Option<OnBridge> {
        let text = std::fs::read_to_string(dir.join(NET)).ok()?;
        let mut words = text.split_whitespace();
        let bridge = words.next()?.to_string();
        let link = match (words.next(), words.next().and_then(|w| w.parse().ok())) {
            (Some(veth), Some(ip)) => Some((veth.to_string(), ip)),
            _ => None,
        };
        Some(OnBridge { bridge, link })
    }

    fn line(&self) -> String {
        match &self.link {
            Some((veth, ip)) => format!("{} {veth} {ip}\n", self.bridge),
            None => format!("{}\n", self.bridge),
        }
    }

    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.link.as_ref().map(|l| l.1)
    }
}

/// The programs the daemon started for the network and has not reaped.
#[derive(Debug, Default)]
pub(crate) struct NetPrograms {
    /// `(pid, what)`.
    running: Vec<(u32, &'static str)>,
    /// The `nft` run in flight, and whether the table changed since it
    /// started (it is made again when it ends).
    nft: Option<u32>,
    dirty: bool,
    /// CNI DELs in flight: `(pid, container id)`.
    dels: Vec<(u32, String)>,
    /// `state ID check`s in flight: `(pid, client, container id)`.
    checks: Vec<(u32, Option<Ref>, String)>,
}

#[cfg(test)]
impl NetPrograms {
    pub(crate) fn checks_pids(&self) -> Vec<u32> {
        self.checks.iter().map(|c| c.0).collect()
    }
}

/// The filesystem of namespace files (`NSFS_MAGIC`).
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// What a container's derived config says about its network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetPlan {
    /// `None`: as the bundle says.
    pub ns: Option<NsPlan>,
    /// Files bound over the rootfs's: (destination, source).
    pub files: Vec<(&'static str, PathBuf)>,
    /// The runtime's `createRuntime` hook: program and `args`.
    pub hook: Option<(PathBuf, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NsPlan {
    Host,
    New,
    Join(PathBuf),
}

impl NetPlan {
    /// The derived config's part, borrowed from the plan; `files` is the
    /// caller's scratch for the borrowed pairs.
    pub fn network<'a>(&'a self, files: &'a mut Vec<(&'a str, &'a Path)>) -> Network<'a> {
        files.extend(self.files.iter().map(|(d, s)| (*d, s.as_path())));
        Network {
            ns: match &self.ns {
                None => Netns::Bundle,
                Some(NsPlan::Host) => Netns::Host,
                Some(NsPlan::New) => Netns::New,
                Some(NsPlan::Join(p)) => Netns::Join(p),
            },
            files,
            hook: self.hook.as_ref().map(|(p, a)| (p.as_path(), a.as_slice())),
        }
    }
}

/// The plan for `spec`'s network, before anything is made for it.
pub(crate) fn plan(spec: &Spec) -> NetPlan {
    let ns = match &spec.net.mode {
        None => None,
        Some(NetMode::Host) => Some(NsPlan::Host),
        Some(NetMode::None) => Some(NsPlan::New),
        Some(NetMode::Ns(path)) => Some(NsPlan::Join(PathBuf::from(path))),
        Some(NetMode::Bridge(_) | NetMode::Cni(_)) => Some(NsPlan::New),
    };
    NetPlan {
        ns,
        files: Vec::new(),
        hook: None,
    }
}

/// This program, which the runtime's hook and the daemon's children run
/// as `cni-exec` (after an update of the file, the new one at its path).
fn cni_program() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let text = exe.to_string_lossy();
    Some(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    })
}

/// The `portMappings` capability for `publish`, as the CNI conventions
/// spell it.
fn port_mappings(publish: &[Publish]) -> String {
    let maps: Vec<String> = publish
        .iter()
        .map(|p| {
            format!(
                "{{\"hostPort\": {}, \"containerPort\": {}, \"protocol\": \"{}\"}}",
                p.host,
                p.port,
                p.proto.as_str()
            )
        })
        .collect();
    format!("[{}]", maps.join(", "))
}

impl<F: Effects> Daemon<F> {
    /// Checks `spec`'s network before anything is made: a namespace to
    /// join must be one, a port to publish must be free and `nft` there.
    pub(crate) fn check_net(&self, spec: &Spec) -> Result<(), Error> {
        let net = &spec.net;
        match &net.mode {
            Some(NetMode::Ns(path)) => return is_netns(Path::new(path)),
            Some(NetMode::Cni(name)) => self.check_cni(spec, name)?,
            _ => {}
        }
        if !net.publish.is_empty() && net.bridge().is_some() && self.cfg.nft.is_none() {
            return Err(Error::new(
                Code::Invalid,
                "publish= needs nft (nftables), which is not in PATH",
            ));
        }
        for p in &net.publish {
            let taken = self.containers.iter().find(|(_, c)| {
                c.id() != spec.id
                    && c.spec
                        .net
                        .publish
                        .iter()
                        .any(|q| q.host == p.host && q.proto == p.proto)
            });
            if let Some((_, c)) = taken {
                return Err(Error::new(
                    Code::Exists,
                    format!(
                        "publish={}: port {}/{} is published by {} already",
                        p.word(),
                        p.host,
                        p.proto.as_str(),
                        c.id()
                    ),
                ));
            }
        }
        if let (Some(ip), Some(_)) = (net.ip, net.bridge()) {
            let subnet = self.cfg.bridge_subnet;
            if !subnet.contains(ip) || [subnet.gateway(), subnet.broadcast()].contains(&ip) {
                return Err(Error::new(
                    Code::Invalid,
                    format!("ip={ip}: not a container address of {subnet} (--bridge-subnet)"),
                ));
            }
        }
        Ok(())
    }

    /// A CNI network must be there, with a plugin for the ports to publish,
    /// and the container's last attachment ended.
    fn check_cni(&self, spec: &Spec, name: &str) -> Result<(), Error> {
        let dirs = [self.cfg.cni_conf_dir.as_path()];
        let net = cni::load(&dirs, name)
            .map_err(|e| Error::new(Code::Invalid, format!("net=cni:{name}: {e}")))?;
        if cni_program().is_none() {
            return Err(super::internal(
                "net=cni: this program's own path is unknown",
            ));
        }
        let maps = |p: &cni::Plugin| {
            json::find(&p.conf, &["capabilities", "portMappings"])
                .is_some_and(|r| &p.conf[r] == b"true")
        };
        if !spec.net.publish.is_empty() && !net.plugins.iter().any(maps) {
            return Err(Error::new(
                Code::Invalid,
                format!(
                    "publish= on net=cni:{name}: no plugin of {} has the portMappings capability (portmap)",
                    net.file.display()
                ),
            ));
        }
        if self.net_programs.dels.iter().any(|d| d.1 == spec.id) {
            return Err(Error::new(
                Code::Busy,
                format!(
                    "net=cni: {}'s last network is being removed; try again",
                    spec.id
                ),
            ));
        }
        Ok(())
    }

    fn cni_attachment(&self, id: &str) -> PathBuf {
        self.state.root().join(CNI_DIR).join(id)
    }

    /// `cni-exec VERB`'s words (the first one its `argv[0]`) for container
    /// `id` attached to `network` at `at`, with the port mappings `maps`.
    fn cni_args(&self, verb: &str, id: &str, network: &str, at: &Path, maps: &str) -> Vec<String> {
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        let mut args: Vec<String> = ["nanoctr", cni::EXEC, verb, "--name", network, "--id", id]
            .map(String::from)
            .into();
        args.extend(["--ifname".into(), CNI_IFNAME.into()]);
        args.extend(["--netns".into(), path(at.join(NETNS))]);
        args.extend(["--result".into(), path(at.join(cni::RESULT_FILE))]);
        args.extend(["--conf-dir".into(), path(self.cfg.cni_conf_dir.clone())]);
        if let Some(d) = &self.cfg.cni_bin_dir {
            args.extend(["--bin-dir".into(), path(d.clone())]);
        }
        if !maps.is_empty() {
            args.extend(["--cap".into(), format!("portMappings={maps}")]);
        }
        args
    }

    /// The network and port mappings an attachment was made with.
    fn cni_made(at: &Path) -> Option<(String, String)> {
        let text = std::fs::read_to_string(at.join(CNI_NETWORK)).ok()?;
        let mut lines = text.lines();
        let name = lines.next().filter(|n| cni::valid_name(n))?.to_string();
        Some((name, lines.next().unwrap_or("").to_string()))
    }

    /// A namespace for `spec` on CNI network `network` (or the one it has,
    /// when it is made again), and the hook that runs ADD.
    fn cni_up(&mut self, spec: &Spec, network: &str, mut plan: NetPlan) -> Result<NetPlan, Error> {
        let at = self.cni_attachment(&spec.id);
        let failed = |e: std::io::Error| super::io_refusal("net=cni", &e);
        let maps = match spec.net.publish.is_empty() {
            true => String::new(),
            false => port_mappings(&spec.net.publish),
        };
        match Self::cni_made(&at) {
            // Made again (a restart, a new version): the same attachment.
            Some((name, _)) if name == network && at.join(NETNS).exists() => {}
            _ if std::fs::symlink_metadata(&at).is_ok() => {
                self.cni_del(&spec.id);
                return Err(Error::new(
                    Code::Busy,
                    format!(
                        "net=cni: {}'s last network is being removed; try again",
                        spec.id
                    ),
                ));
            }
            _ => {
                let made = (|| {
                    std::fs::create_dir_all(&at)?;
                    let line = format!("{network}\n{maps}\n");
                    self.fx.write_file(&at.join(CNI_NETWORK), line.as_bytes())?;
                    self.fx.make_netns(&at.join(NETNS))
                })();
                if let Err(e) = made {
                    let _ = std::fs::remove_dir_all(&at);
                    return Err(failed(e));
                }
            }
        }
        let exe = cni_program().ok_or_else(|| super::internal("net=cni: no program path"))?;
        let mut args = self.cni_args("add", &spec.id, network, &at, &maps);
        let error = at.join(CNI_ADD_ERROR).to_string_lossy().into_owned();
        args.extend(["--reuse".into(), "--error-file".into(), error]);
        plan.ns = Some(NsPlan::Join(at.join(NETNS)));
        plan.hook = Some((exe, args));
        Ok(plan)
    }

    /// Starts the DEL that ends container `id`'s CNI attachment and
    /// removes it; unless one runs already.
    fn cni_del(&mut self, id: &str) {
        if self.net_programs.dels.iter().any(|d| d.1 == id) {
            return;
        }
        let at = self.cni_attachment(id);
        let Some((network, maps)) = Self::cni_made(&at) else {
            // Never given to a plugin: nothing but the dir to unmake.
            let _ = crate::net::netns::remove(&at.join(NETNS));
            let _ = std::fs::remove_dir_all(&at);
            return;
        };
        let Some(exe) = cni_program() else {
            return;
        };
        let mut args = self.cni_args("del", id, &network, &at, &maps);
        args.extend(["--remove-dir".into(), at.to_string_lossy().into_owned()]);
        let words: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        if let Some(pid) = self.program(&exe, &words, b"", "cni del") {
            self.net_programs.dels.push((pid, id.into()));
        }
    }

    /// `state ID check`: CNI's CHECK of the container's attachment, in a
    /// child; the answer when it ends.
    pub(crate) fn net_check(&mut self, client: Ref, id: &str) -> Result<Outcome, Error> {
        let r = self.admit(id, Verb::State)?;
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| super::internal("container vanished"))?;
        let Some(NetMode::Cni(_)) = &c.spec.net.mode else {
            return Err(Error::new(
                Code::Invalid,
                format!(
                    "state {id} check: {id} is not on a CNI network (net={})",
                    c.spec.net.describe()
                ),
            ));
        };
        let at = self.cni_attachment(id);
        let (network, maps) = Self::cni_made(&at)
            .ok_or_else(|| Error::new(Code::State, format!("{id} has no CNI attachment")))?;
        let exe = cni_program().ok_or_else(|| super::internal("net=cni: no program path"))?;
        let args = self.cni_args("check", id, &network, &at, &maps);
        let words: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let log = at.join(CNI_CHECK_LOG);
        let _ = std::fs::remove_file(&log);
        let pid = self
            .fx
            .spawn_program(&exe, &words, b"", &log)
            .map_err(|e| super::io_refusal("cni-exec", &e))?;
        self.net_programs
            .checks
            .push((pid, Some(client), id.into()));
        Ok(Outcome::Pending)
    }

    /// A failed create's error with what the CNI network's ADD said, when
    /// it failed and the runtime's message does not say it already.
    pub(crate) fn with_cni_error(&self, id: &str, error: Error) -> Error {
        let file = self.cni_attachment(id).join(CNI_ADD_ERROR);
        let Ok(said) = crate::files::read_bounded_text(&file, 4096, crate::files::Links::Refuse)
        else {
            return error;
        };
        let said = said.trim();
        let plain = said.strip_prefix("nanoctr cni-exec: ").unwrap_or(said);
        if said.is_empty() || error.message.contains(plain) {
            return error;
        }
        let message = match error.message.is_empty() {
            true => said.to_string(),
            false => format!("{}: {said}", error.message),
        };
        Error::new(error.code, message)
    }

    /// The addresses a CNI network gave `id`, as its ADD result says.
    pub(crate) fn cni_ips(&self, id: &str) -> Vec<String> {
        let file = self.cni_attachment(id).join(cni::RESULT_FILE);
        crate::files::read_bounded(&file, cni::MAX_BYTES as u64, crate::files::Links::Refuse)
            .map(|r| cni::ips(&r))
            .unwrap_or_default()
    }

    /// Makes what `spec`'s network needs before the runtime's create, in
    /// the container's `dir`: its plan, and its place on a bridge. On
    /// failure the `net` file tells [`Daemon::net_down`] what to unmake.
    pub(crate) fn net_up(
        &mut self,
        dir: &Path,
        spec: &Spec,
    ) -> Result<(NetPlan, Option<OnBridge>), Error> {
        let mut plan = plan(spec);
        if let Some(NetMode::Cni(network)) = &spec.net.mode {
            return Ok((self.cni_up(spec, network, plan)?, None));
        }
        let Some(bridge) = spec.net.bridge() else {
            return Ok((plan, None));
        };
        let mut on = OnBridge {
            bridge: bridge.into(),
            link: None,
        };
        let failed = |e: std::io::Error| super::io_refusal("network", &e);
        self.fx
            .write_file(&dir.join(NET), on.line().as_bytes())
            .map_err(failed)?;
        let (ipam, netns) = (self.cfg.net_dir.join(bridge), dir.join(NETNS));
        let req = NetRequest {
            id: &spec.id,
            bridge,
            subnet: self.cfg.bridge_subnet,
            ipam: &ipam,
            netns: &netns,
            ip: spec.net.ip,
        };
        let a = self.fx.net_attach(&req).map_err(refusal)?;
        on.link = Some((a.host_veth.clone(), a.ip));
        let resolv = bridge::resolv_conf(
            &bridge::read_host_resolv_conf().unwrap_or_default(),
            a.gateway,
        );
        let hosts = self.hosts_of(&spec.id, &on);
        for (name, text) in [(NET, on.line()), (RESOLV, resolv), (HOSTS, hosts)] {
            self.fx
                .write_file(&dir.join(name), text.as_bytes())
                .map_err(failed)?;
        }
        plan.ns = Some(NsPlan::Join(netns));
        plan.files = vec![
            ("/etc/resolv.conf", dir.join(RESOLV)),
            ("/etc/hosts", dir.join(HOSTS)),
        ];
        if self.cfg.nft.is_none() {
            crate::logger::warn(&format!(
                "{}: no nft in PATH: no NAT, the bridge reaches the host alone",
                spec.id
            ));
        }
        self.hook("add", &spec.id, &a.host_veth, a.ip);
        Ok((plan, Some(on)))
    }

    /// Unmakes container `id`'s place on a bridge, as its dir's `net` file
    /// says, the address kept with `keep_address` (the same container made
    /// again); nothing if it has none.
    pub(crate) fn net_down(&mut self, id: &str, keep_address: bool) -> std::io::Result<bool> {
        if !keep_address && std::fs::symlink_metadata(self.cni_attachment(id)).is_ok() {
            self.cni_del(id);
        }
        let dir = self.state.container(id);
        let Some(on) = OnBridge::read(&dir) else {
            return Ok(false);
        };
        let (ipam, netns) = (self.cfg.net_dir.join(&on.bridge), dir.join(NETNS));
        let req = NetRequest {
            id,
            bridge: &on.bridge,
            subnet: self.cfg.bridge_subnet,
            ipam: &ipam,
            netns: &netns,
            ip: None,
        };
        self.fx
            .net_detach(&req, keep_address)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if let Some((veth, ip)) = &on.link {
            self.hook("del", id, veth, *ip);
        }
        if !keep_address {
            let _ = std::fs::remove_file(dir.join(NET));
        }
        Ok(true)
    }

    /// A container came to a bridge or left one: every `/etc/hosts` on
    /// the bridges again, and the NAT table.
    pub(crate) fn net_changed(&mut self) {
        let on: Vec<(String, OnBridge)> = self
            .containers
            .iter()
            .filter_map(|(_, c)| Some((c.id().to_string(), c.net.clone()?)))
            .collect();
        for (id, b) in &on {
            let text = self.hosts_of(id, b);
            let path = self.state.container(id).join(HOSTS);
            if let Err(e) = self.fx.rewrite_file(&path, text.as_bytes()) {
                crate::logger::warn(&format!("{id}: {}: {e}", path.display()));
            }
        }
        self.apply_nat();
    }

    /// The `/etc/hosts` of `id` on `b`: itself and the others there.
    fn hosts_of(&self, id: &str, b: &OnBridge) -> String {
        let others: Vec<(Ipv4Addr, String)> = self
            .containers
            .iter()
            .filter_map(|(_, c)| {
                let n = c.net.as_ref().filter(|n| n.bridge == b.bridge)?;
                Some((n.ip()?, c.id().to_string()))
            })
            .collect();
        bridge::hosts_file(id, b.ip(), &others)
    }

    /// Makes the NAT table again, unless `nft` is missing; after the run
    /// in flight, if there is one.
    pub(crate) fn apply_nat(&mut self) {
        let Some(nft) = self.cfg.nft.clone() else {
            return;
        };
        if self.net_programs.nft.is_some() {
            self.net_programs.dirty = true;
            return;
        }
        let mut bridges: Vec<&str> = Vec::new();
        let mut published = Vec::new();
        for (_, c) in self.containers.iter() {
            let Some(on) = &c.net else { continue };
            if !bridges.contains(&on.bridge.as_str()) {
                bridges.push(&on.bridge);
            }
            if let Some(ip) = on.ip() {
                published.extend(c.spec.net.publish.iter().map(|p| (*p, ip)));
            }
        }
        let script = nat_script(self.cfg.bridge_subnet, &bridges, &published);
        self.net_programs.dirty = false;
        if let Some(pid) = self.program(&nft, &["-f", "-"], script.as_bytes(), "nft") {
            self.net_programs.nft = Some(pid);
        }
    }

    /// Runs `--net-hook add|del ID IFACE IP`, if there is one.
    fn hook(&mut self, verb: &str, id: &str, iface: &str, ip: Ipv4Addr) {
        if let Some(hook) = self.cfg.net_hook.clone() {
            let ip = ip.to_string();
            self.program(&hook, &[verb, id, iface, &ip], b"", "net-hook");
        }
    }

    /// Starts a program for the network; its pid, if it started.
    fn program(
        &mut self,
        path: &Path,
        args: &[&str],
        input: &[u8],
        what: &'static str,
    ) -> Option<u32> {
        let log = self.state.root().join(PROGRAM_LOG);
        if std::fs::metadata(&log).is_ok_and(|m| m.len() > PROGRAM_LOG_MAX) {
            let _ = std::fs::write(&log, b"");
        }
        match self.fx.spawn_program(path, args, input, &log) {
            Ok(pid) => {
                self.net_programs.running.push((pid, what));
                Some(pid)
            }
            Err(e) => {
                crate::logger::warn(&format!("cannot run {}: {e}", path.display()));
                None
            }
        }
    }

    /// Whether `pid` was a network program; its end is logged if it
    /// failed, and a NAT table that changed meanwhile is made again.
    pub(crate) fn net_program_exited(&mut self, pid: u32, code: i32) -> bool {
        if let Some(at) = self.net_programs.checks.iter().position(|p| p.0 == pid) {
            let (_, client, id) = self.net_programs.checks.swap_remove(at);
            let outcome = match code {
                0 => Outcome::ok(&[("check", "ok")]),
                _ => {
                    let log = self.cni_attachment(&id).join(CNI_CHECK_LOG);
                    let said = std::fs::read_to_string(&log).unwrap_or_default();
                    let said = said
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("");
                    Outcome::err(Error::new(
                        Code::Runtime,
                        format!("{id}: CNI check failed ({code}): {said}"),
                    ))
                }
            };
            self.answer(client, outcome);
            return true;
        }
        self.net_programs.dels.retain(|d| d.0 != pid);
        let progs = &mut self.net_programs;
        let Some(at) = progs.running.iter().position(|p| p.0 == pid) else {
            return false;
        };
        let (_, what) = progs.running.swap_remove(at);
        if code != 0 {
            let log = self.state.root().join(PROGRAM_LOG);
            crate::logger::warn(&format!(
                "{what} exited with {code}; its output is in {}",
                log.display()
            ));
        }
        if self.net_programs.nft == Some(pid) {
            self.net_programs.nft = None;
            if self.net_programs.dirty {
                self.apply_nat();
            }
        }
        true
    }

    #[cfg(test)]
    pub(crate) fn net_programs_pids(&self) -> Vec<u32> {
        self.net_programs.running.iter().map(|p| p.0).collect()
    }

    /// Recovery: veths and addresses whose containers are gone are
    /// unmade (an address stays held for a container the config file
    /// declares, which gets it back when it is made again), and the
    /// hosts files and NAT table made again.
    pub(crate) fn recover_net(&mut self) {
        self.recover_cni();
        let on_bridge = self.containers.iter().any(|(_, c)| c.net.is_some());
        let Ok(dirs) = std::fs::read_dir(&self.cfg.net_dir) else {
            if on_bridge {
                self.net_changed();
            }
            return;
        };
        let known: Vec<String> = self
            .containers
            .iter()
            .map(|(_, c)| c.id().to_string())
            .collect();
        let declared = |id: &str| self.cfg.containers.iter().any(|d| d.spec.id == id);
        let mut freed = Vec::new();
        for dir in dirs.filter_map(|d| d.ok()).map(|d| d.path()) {
            let Ok(ipam) = crate::net::ipam::Ipam::open(&dir, self.cfg.bridge_subnet) else {
                continue;
            };
            for (ip, id) in ipam.list().unwrap_or_default() {
                if !known.contains(&id) && !declared(&id) && ipam.release_ip(ip, &id).is_ok() {
                    freed.push(format!("{ip} ({id})"));
                }
            }
        }
        match self.fx.net_leaked(&|id| known.iter().any(|k| k == id)) {
            Ok(leaks) => freed.extend(leaks.into_iter().map(|l| l.link)),
            Err(e) => crate::logger::warn(&format!("network recovery: {e}")),
        }
        if !freed.is_empty() {
            crate::logger::info(&format!("network recovery freed {}", freed.join(", ")));
        }
        self.net_changed();
    }
}

impl<F: Effects> Daemon<F> {
    /// Recovery: CNI attachments of containers gone are ended (one a
    /// declared container would join again, on the same network, stays).
    fn recover_cni(&mut self) {
        let Ok(dirs) = std::fs::read_dir(self.state.root().join(CNI_DIR)) else {
            return;
        };
        let ids: Vec<String> = dirs
            .filter_map(|d| d.ok()?.file_name().into_string().ok())
            .collect();
        for id in ids {
            let known = self.find(&id).is_some();
            let network = Self::cni_made(&self.cni_attachment(&id)).map(|m| m.0);
            let declared = self.cfg.containers.iter().any(|d| {
                d.spec.id == id
                    && matches!((&d.spec.net.mode, &network), (Some(NetMode::Cni(n)), Some(m)) if n == m)
            });
            if !known && !declared {
                crate::logger::info(&format!("network recovery: ending {id}'s CNI attachment"));
                self.cni_del(&id);
            }
        }
    }
}

/// An attach's failure as the client gets it: what the user can fix is
/// `invalid` (or `full`), the rest the system's.
fn refusal(e: bridge::Error) -> Error {
    use crate::net::ipam::Error as Ipam;
    let code = match &e {
        bridge::Error::Ipam(Ipam::Full(_)) => Code::Full,
        bridge::Error::Ipam(Ipam::Io { .. }) | bridge::Error::Netlink(_) => Code::Internal,
        bridge::Error::Netns(_) | bridge::Error::Unclean { .. } => Code::Internal,
        _ => Code::Invalid,
    };
    Error::new(code, format!("net=bridge: {e}"))
}

/// The whole `ip nanoctr` table: masquerade for what leaves the bridges
/// (and for a container reaching a port published by another on its own
/// bridge), DNAT for each published port, from outside and from the host
/// itself; one transaction that replaces the table, or deletes it when no
/// container is on a bridge.
pub(crate) fn nat_script(
    subnet: Subnet,
    bridges: &[&str],
    published: &[(Publish, Ipv4Addr)],
) -> String {
    let mut s = String::from("table ip nanoctr {}\ndelete table ip nanoctr\n");
    if bridges.is_empty() {
        return s;
    }
    s.push_str("table ip nanoctr {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority -100; policy accept;\n\t\tfib daddr type local jump publish\n\t}\n");
    s.push_str("\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tip daddr != 127.0.0.0/8 fib daddr type local jump publish\n\t}\n\tchain publish {\n");
    for (p, ip) in published {
        let _ = writeln!(
            s,
            "\t\t{} dport {} dnat to {ip}:{}",
            p.proto.as_str(),
            p.host,
            p.port
        );
    }
    s.push_str(
        "\t}\n\tchain postrouting {\n\t\ttype nat hook postrouting priority 100; policy accept;\n",
    );
    for b in bridges {
        let _ = writeln!(s, "\t\tip saddr {subnet} oifname != \"{b}\" masquerade");
        let _ = writeln!(
            s,
            "\t\tip saddr {subnet} oifname \"{b}\" ct status dnat masquerade"
        );
    }
    s.push_str("\t}\n}\n");
    s
}

/// Whether `path` is a network namespace file: `ERR invalid` if it is
/// missing or something else.
fn is_netns(path: &Path) -> Result<(), Error> {
    let shown = path.display();
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::new(Code::Invalid, format!("net=ns:{shown}: a NUL in the path")))?;
    let fs = rustix::fs::statfs(c_path.as_c_str()).map_err(|e| {
        Error::new(
            Code::Invalid,
            format!("net=ns:{shown}: {}", crate::sys::io_error(e)),
        )
    })?;
    // `f_type`'s type differs between targets.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    let kind = fs.f_type as u64;
    if kind != NSFS_MAGIC {
        return Err(Error::new(
            Code::Invalid,
            format!("net=ns:{shown}: not a namespace (a bind mount of /proc/PID/ns/net is)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(net: &str) -> Spec {
        Spec::parse("c", "/b", &[net]).unwrap()
    }

    #[test]
    fn a_namespace_to_join_must_be_one() {
        is_netns(Path::new("/proc/self/ns/net")).unwrap();
        let e = is_netns(Path::new("/nonexistent/netns")).unwrap_err();
        assert_eq!(e.code, Code::Invalid);
        assert!(e.message.contains("No such file"), "{}", e.message);
        let e = is_netns(Path::new("/etc/hostname")).unwrap_err();
        assert!(e.message.contains("not a namespace"), "{}", e.message);
    }

    #[test]
    fn the_nat_table_is_made_whole_or_deleted() {
        let subnet = crate::net::ipam::DEFAULT_SUBNET;
        let web = Publish::parse("8080:80").unwrap();
        let dns = Publish::parse("5353:53/udp").unwrap();
        let ip: Ipv4Addr = "10.88.0.7".parse().unwrap();
        let s = nat_script(subnet, &["nanoctr0"], &[(web, ip), (dns, ip)]);
        assert!(s.starts_with("table ip nanoctr {}\ndelete table ip nanoctr\ntable ip nanoctr {\n"));
        assert!(
            s.contains("\t\ttcp dport 8080 dnat to 10.88.0.7:80\n"),
            "{s}"
        );
        assert!(
            s.contains("\t\tudp dport 5353 dnat to 10.88.0.7:53\n"),
            "{s}"
        );
        assert!(
            s.contains("ip saddr 10.88.0.0/24 oifname != \"nanoctr0\" masquerade\n"),
            "{s}"
        );
        assert_eq!(
            nat_script(subnet, &[], &[]),
            "table ip nanoctr {}\ndelete table ip nanoctr\n"
        );
    }

    #[test]
    fn plans() {
        assert_eq!(plan(&Spec::parse("c", "/b", &[]).unwrap()).ns, None);
        assert_eq!(plan(&spec("net=host")).ns, Some(NsPlan::Host));
        assert_eq!(plan(&spec("net=none")).ns, Some(NsPlan::New));
        assert_eq!(
            plan(&spec("net=ns:/run/netns/lan")).ns,
            Some(NsPlan::Join("/run/netns/lan".into()))
        );
    }
}
