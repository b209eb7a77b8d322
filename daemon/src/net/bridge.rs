//! Containers on the built-in bridge: attached with a veth pair, an address
//! from [`super::ipam`] and a default route; detached again.
//!
//! [`Bridge::attach`] makes, in order: the bridge if it is missing (with
//! the gateway address `.1` of the subnet, up), the container's address
//! allocation, a veth pair whose host end is named from the id
//! ([`host_veth_name`]) and whose other end is made straight in the
//! container's namespace as `eth0`, the host end's alias `nanoctr:ID`, the
//! host end as a port of the bridge and up, and in the namespace: `eth0`'s
//! address, `eth0` and `lo` up, the default route via the gateway. If a
//! step fails, what was made for the container is unmade (deleting the host
//! end deletes both ends, and with them the address and route inside); the
//! bridge is shared and stays.
//!
//! [`Bridge::detach`] finds the container's links by their alias (and, for
//! a pair a crash left before its alias was set, by name) and deletes them,
//! then releases the address. What is already gone is not an error, so
//! recovery after a `kill -9` calls it for any id. [`leaked`] lists veths
//! that belong to no known container.
//!
//! Before the bridge is made, and each time it is used, the subnet is
//! checked against the host's routes: a subnet that overlaps a route not
//! on the bridge (the LAN's, a VPN's) is refused, as it would hide part of
//! the network from the host or the containers.

use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;

use super::ipam::{self, Ipam, Lease, Subnet};
use super::netlink::{self, Cause, Link, Netlink, Route, IFF_UP};
use super::{fnv1a, netns};

/// The container end's name, in its namespace.
pub const PEER_NAME: &str = "eth0";
/// How every host-side veth's name begins.
pub const VETH_PREFIX: &str = "nc";
/// How every alias of a link made for a container begins; the id follows.
pub const ALIAS_PREFIX: &str = "nanoctr:";
/// How many names an id's host-side veth may take ([`host_veth_name`]).
const NAME_TRIES: u8 = 10;

/// The host end of `id`'s veth pair, choice `n` (0 to 9):
/// `nc` + the id's FNV-1a hash in 8 hex digits + `n`, 11 bytes, well within
/// an interface name's 15. Another id whose hash is the same takes the next
/// `n` free; the alias says whose a link is.
pub fn host_veth_name(id: &str, n: u8) -> String {
    format!(
        "{VETH_PREFIX}{:08x}{}",
        fnv1a(id.as_bytes()),
        n % NAME_TRIES
    )
}

/// The alias marking a link as `id`'s.
pub fn owner_alias(id: &str) -> String {
    format!("{ALIAS_PREFIX}{id}")
}

/// What [`Bridge::attach`] made: what a container's state dir records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub bridge: String,
    pub host_veth: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// What [`Bridge::detach`] unmade.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detached {
    pub links: Vec<String>,
    pub ips: Vec<Ipv4Addr>,
}

/// A veth of nanoctr's that no known container owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub link: String,
    /// The id in its alias; none if the alias was never set.
    pub id: Option<String>,
}

/// Why a container could not be attached or detached.
#[derive(Debug)]
pub enum Error {
    Netlink(netlink::Error),
    Netns(netns::Error),
    Ipam(ipam::Error),
    BadName(String),
    NotBridge {
        name: String,
        kind: Option<String>,
    },
    Overlap {
        subnet: Subnet,
        route: Route,
    },
    NoVethName(String),
    /// A failure, and then a failure to unmake what was made before it.
    Unclean {
        error: Box<Error>,
        undo: Box<Error>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Netlink(e) => e.fmt(f),
            Error::Netns(e) => e.fmt(f),
            Error::Ipam(e) => e.fmt(f),
            Error::BadName(name) => write!(f, "bad bridge name {name:?}"),
            Error::NotBridge { name, kind } => write!(
                f,
                "{name} exists and is not a bridge ({})",
                kind.as_deref().unwrap_or("a device")
            ),
            Error::Overlap { subnet, route } => {
                write!(
                    f,
                    "subnet {subnet} overlaps the host's route {}/{}",
                    route.dst, route.dst_len
                )?;
                if let Some(oif) = route.oif {
                    write!(f, " on link #{oif}")?;
                }
                write!(f, " (table {})", route.table)
            }
            Error::NoVethName(id) => write!(
                f,
                "no free veth name for {id}: {}..{} are taken",
                host_veth_name(id, 0),
                host_veth_name(id, NAME_TRIES - 1)
            ),
            Error::Unclean { error, undo } => write!(f, "{error}; and undoing it: {undo}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<netlink::Error> for Error {
    fn from(e: netlink::Error) -> Error {
        Error::Netlink(e)
    }
}

impl From<netns::Error> for Error {
    fn from(e: netns::Error) -> Error {
        Error::Netns(e)
    }
}

impl From<ipam::Error> for Error {
    fn from(e: ipam::Error) -> Error {
        Error::Ipam(e)
    }
}

/// The first route of the host's that overlaps `subnet`, other than
/// the default route and the routes on the bridge itself (link `bridge`).
pub fn conflicting_route(routes: &[Route], subnet: Subnet, bridge: Option<u32>) -> Option<Route> {
    routes
        .iter()
        .find(|r| {
            r.dst_len > 0
                && (bridge.is_none() || r.oif != bridge)
                && subnet.overlaps(r.dst, r.dst_len)
        })
        .copied()
}

/// A bridge and the address allocations of its subnet.
#[derive(Debug)]
pub struct Bridge {
    name: String,
    ipam: Ipam,
}

impl Bridge {
    /// The bridge `name` on `subnet`, its allocations kept in `ipam_dir`.
    /// Nothing is made in the kernel until a container is attached.
    pub fn open(name: &str, subnet: Subnet, ipam_dir: &Path) -> Result<Bridge, Error> {
        if !netlink::valid_ifname(name) {
            return Err(Error::BadName(name.into()));
        }
        Ok(Bridge {
            name: name.into(),
            ipam: Ipam::open(ipam_dir, subnet)?,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn subnet(&self) -> Subnet {
        self.ipam.subnet()
    }

    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    /// Attaches container `id`, whose network namespace is the file
    /// `netns_path`, with the address `ip` (its `ip=`) or one allocated.
    /// On failure, what was made for it is unmade.
    pub fn attach(
        &self,
        id: &str,
        netns_path: &Path,
        ip: Option<Ipv4Addr>,
    ) -> Result<Attached, Error> {
        crate::wire::checks::check_id(id).map_err(|e| ipam::Error::BadId(e.message))?;
        let ns = netns::open(netns_path)?;
        let mut nl = Netlink::open()?;
        let bridge = self.ensure_bridge(&mut nl)?;
        let lease = match ip {
            Some(ip) => self.ipam.pin(id, ip)?,
            None => self.ipam.allocate(id)?,
        };
        let mut veth = None;
        match self.plumb(&mut nl, bridge, id, &ns, lease.ip, &mut veth) {
            Ok(attached) => Ok(attached),
            Err(error) => Err(self.undo(&mut nl, error, id, lease, veth)),
        }
    }

    /// Unmakes what a failed attach made: its veth pair, and the address if
    /// it claimed it.
    fn undo(
        &self,
        nl: &mut Netlink,
        error: Error,
        id: &str,
        lease: Lease,
        veth: Option<String>,
    ) -> Error {
        let mut undo = None;
        if let Some(name) = veth {
            if let Err(e) = nl.delete_link(&name) {
                undo = Some(Error::from(e));
            }
        }
        if lease.fresh {
            if let Err(e) = self.ipam.release_ip(lease.ip, id) {
                undo.get_or_insert(e.into());
            }
        }
        match undo {
            None => error,
            Some(undo) => Error::Unclean {
                error: Box::new(error),
                undo: Box::new(undo),
            },
        }
    }

    /// The bridge's index, the bridge made if it is missing; with its
    /// gateway address, up, and its subnet clear of the host's routes.
    fn ensure_bridge(&self, nl: &mut Netlink) -> Result<u32, Error> {
        let subnet = self.subnet();
        let link = match nl.link(&self.name)? {
            Some(link) => link,
            None => {
                if let Some(route) = conflicting_route(&nl.routes()?, subnet, None) {
                    return Err(Error::Overlap { subnet, route });
                }
                nl.add_bridge(&self.name)?;
                nl.link(&self.name)?
                    .ok_or_else(|| gone(&format!("find bridge {}", self.name)))?
            }
        };
        if link.kind.as_deref() != Some("bridge") {
            return Err(Error::NotBridge {
                name: link.name,
                kind: link.kind,
            });
        }
        if let Some(route) = conflicting_route(&nl.routes()?, subnet, Some(link.index)) {
            return Err(Error::Overlap { subnet, route });
        }
        let gateway = subnet.gateway();
        let has_gateway = nl
            .addrs()?
            .iter()
            .any(|a| a.index == link.index && a.local == gateway);
        if !has_gateway {
            nl.add_addr(link.index, gateway, subnet.prefix())?;
        }
        if link.flags & IFF_UP == 0 {
            nl.set_up(link.index)?;
        }
        Ok(link.index)
    }

    /// A name for `id`'s host-side veth: the first of its names that is
    /// free, or that holds a leftover of its own (deleted first).
    fn pick_name(&self, nl: &mut Netlink, id: &str) -> Result<String, Error> {
        let alias = owner_alias(id);
        for n in 0..NAME_TRIES {
            let name = host_veth_name(id, n);
            match nl.link(&name)? {
                None => return Ok(name),
                Some(l) if is_own(&l, id, &alias) => {
                    nl.delete_link_index(l.index)?;
                    return Ok(name);
                }
                Some(_) => {}
            }
        }
        Err(Error::NoVethName(id.into()))
    }

    /// The veth pair and the container's side; `veth` is set as soon as
    /// the pair exists, for [`Bridge::undo`].
    fn plumb(
        &self,
        nl: &mut Netlink,
        bridge: u32,
        id: &str,
        ns: &std::fs::File,
        ip: Ipv4Addr,
        veth: &mut Option<String>,
    ) -> Result<Attached, Error> {
        let subnet = self.subnet();
        let name = self.pick_name(nl, id)?;
        nl.add_veth(&name, PEER_NAME, ns.as_fd())?;
        *veth = Some(name.clone());
        let host = nl
            .link_index(&name)?
            .ok_or_else(|| gone(&format!("find link {name}")))?;
        nl.set_alias(host, &owner_alias(id))?;
        nl.set_master(host, bridge)?;
        nl.set_up(host)?;

        let mut inner = netns::netlink_in(ns)?;
        let eth0 = inner
            .link_index(PEER_NAME)?
            .ok_or_else(|| gone(&format!("find link {PEER_NAME} in the container")))?;
        inner.add_addr(eth0, ip, subnet.prefix())?;
        inner.set_up(eth0)?;
        if let Some(lo) = inner.link_index("lo")? {
            inner.set_up(lo)?;
        }
        inner.add_default_route(subnet.gateway())?;
        Ok(Attached {
            bridge: self.name.clone(),
            host_veth: name,
            ip,
            prefix: subnet.prefix(),
            gateway: subnet.gateway(),
        })
    }

    /// Deletes `id`'s links and releases its address; whatever is already
    /// gone is skipped.
    pub fn detach(&self, id: &str) -> Result<Detached, Error> {
        let mut done = self.unplug(id)?;
        done.ips = self.ipam.release(id)?;
        Ok(done)
    }

    /// Deletes `id`'s links; its address stays its own (for the same
    /// container made again).
    pub fn unplug(&self, id: &str) -> Result<Detached, Error> {
        let mut nl = Netlink::open()?;
        let alias = owner_alias(id);
        let mut done = Detached::default();
        for link in nl.links()? {
            if is_own(&link, id, &alias) && nl.delete_link_index(link.index)? {
                done.links.push(link.name);
            }
        }
        Ok(done)
    }

    /// The `/etc/hosts` of container `id`, known as `name`: itself and the
    /// other containers holding addresses on this bridge, by id.
    pub fn hosts(&self, id: &str, name: &str) -> Result<String, Error> {
        let subnet = self.subnet();
        let all: Vec<_> = self
            .ipam
            .list()?
            .into_iter()
            .filter(|(ip, _)| subnet.contains(*ip))
            .collect();
        let own = all
            .iter()
            .find(|(_, holder)| holder == id)
            .map(|(ip, _)| *ip);
        let others: Vec<_> = all.into_iter().filter(|(_, holder)| holder != id).collect();
        Ok(hosts_file(name, own, &others))
    }

    /// Deletes the bridge (its ports are left, unenslaved). `false` if
    /// there was none.
    pub fn remove(&self) -> Result<bool, Error> {
        Ok(Netlink::open()?.delete_link(&self.name)?)
    }
}

/// Whether `link` was made for `id`: its alias says so, or it is a veth
/// under one of `id`'s names that never got its alias (a crash came
/// between the two steps).
fn is_own(link: &Link, id: &str, alias: &str) -> bool {
    match &link.alias {
        Some(a) => a == alias,
        None => {
            link.kind.as_deref() == Some("veth")
                && (0..NAME_TRIES).any(|n| link.name == host_veth_name(id, n))
        }
    }
}

/// The veths of nanoctr's in this namespace whose id `known` does not
/// know (recovery deletes them, and releases those ids' addresses).
pub fn leaked(known: impl Fn(&str) -> bool) -> Result<Vec<Leak>, Error> {
    let mut nl = Netlink::open()?;
    Ok(leaks(&nl.links()?, known))
}

fn leaks(links: &[Link], known: impl Fn(&str) -> bool) -> Vec<Leak> {
    links
        .iter()
        .filter_map(|l| {
            let id = l
                .alias
                .as_deref()
                .and_then(|a| a.strip_prefix(ALIAS_PREFIX));
            let ours = match id {
                Some(_) => true,
                None => {
                    l.alias.is_none() && l.kind.as_deref() == Some("veth") && is_veth_name(&l.name)
                }
            };
            (ours && !id.is_some_and(&known)).then(|| Leak {
                link: l.name.clone(),
                id: id.map(str::to_string),
            })
        })
        .collect()
}

/// Whether `name` has the form of [`host_veth_name`].
fn is_veth_name(name: &str) -> bool {
    name.len() == VETH_PREFIX.len() + 9
        && name.starts_with(VETH_PREFIX)
        && name[VETH_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn gone(op: &str) -> Error {
    let e = std::io::Error::from_raw_os_error(libc::ENODEV);
    Error::Netlink(netlink::Error::new(op, Cause::Os(e)))
}

/// The most of the host's resolv.conf that is read.
const RESOLV_MAX: u64 = 64 * 1024;

/// The host's `/etc/resolv.conf` (followed if it is a link, as it often
/// is), or nothing if there is none.
pub fn read_host_resolv_conf() -> std::io::Result<String> {
    use crate::files::{read_bounded_text, Links};
    match read_bounded_text(Path::new("/etc/resolv.conf"), RESOLV_MAX, Links::Follow) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        other => other,
    }
}

/// A container's `resolv.conf`, from the host's `host`: every line kept
/// but the name servers a container on the bridge cannot reach: loopback
/// ones (`127.x`, the host's own local resolver, a stub such as
/// systemd-resolved's `127.0.0.53` or dnsmasq on `127.0.0.1`), `0.0.0.0`,
/// and IPv6 ones (the bridge is IPv4 only). If none is left, the gateway:
/// the bridge's address is the host's, and on a router the host's resolver
/// (dnsmasq) answers there once it listens on the bridge. On a host whose
/// resolv.conf names only a local stub, pass the stub's upstream list
/// (`/run/systemd/resolve/resolv.conf`) instead.
pub fn resolv_conf(host: &str, gateway: Ipv4Addr) -> String {
    let mut out = String::from("# nanoctr: the host's resolv.conf, for the bridge\n");
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            match words.next().and_then(|w| w.parse::<Ipv4Addr>().ok()) {
                Some(ip) if !ip.is_loopback() && !ip.is_unspecified() => servers += 1,
                _ => continue,
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str(&format!("nameserver {gateway}\n"));
    }
    out
}

/// A container's `/etc/hosts`: localhost, its own `name` at `ip` (if it
/// has one), and `others`, each address with the id that holds it. A
/// name that would break the file (white space, `#`, control characters)
/// is left out.
pub fn hosts_file(name: &str, ip: Option<Ipv4Addr>, others: &[(Ipv4Addr, String)]) -> String {
    let fits = |n: &str| {
        !n.is_empty()
            && !n
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    };
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(ip) = ip.filter(|_| fits(name)) {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    for (other, id) in others {
        if Some(*other) != ip && id != name && fits(id) {
            out.push_str(&format!("{other}\t{id}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn veth_names_fit_and_differ() {
        let a = host_veth_name("web", 0);
        assert_eq!(a.len(), 11);
        assert!(a.len() <= netlink::IFNAME_MAX && netlink::valid_ifname(&a));
        assert!(is_veth_name(&a));
        assert_eq!(a, format!("nc{:08x}0", fnv1a(b"web")));
        assert_eq!(
            host_veth_name("web", 3),
            format!("nc{:08x}3", fnv1a(b"web"))
        );
        assert_ne!(a, host_veth_name("db", 0));
        let longest = "a".repeat(crate::wire::checks::MAX_ID);
        assert!(netlink::valid_ifname(&host_veth_name(&longest, 9)));
        assert!(owner_alias(&longest).len() <= netlink::IFALIAS_MAX);
        assert!(!is_veth_name("nc0") && !is_veth_name("eth0") && !is_veth_name("ncXYZ123450"));
    }

    fn link(name: &str, kind: &str, alias: Option<&str>) -> Link {
        Link {
            index: 1,
            name: name.into(),
            flags: 0,
            master: None,
            kind: Some(kind.into()),
            alias: alias.map(str::to_string),
        }
    }

    #[test]
    fn own_links_and_leaks() {
        let web0 = host_veth_name("web", 0);
        let web1 = host_veth_name("web", 1);
        let aliased = link(&web1, "veth", Some("nanoctr:web"));
        let bare = link(&web0, "veth", None);
        let other = link(&host_veth_name("db", 0), "veth", Some("nanoctr:db"));
        let foreign = link(&web0, "veth", Some("someone else's"));
        assert!(is_own(&aliased, "web", "nanoctr:web"));
        assert!(is_own(&bare, "web", "nanoctr:web"));
        assert!(!is_own(&other, "web", "nanoctr:web"));
        assert!(!is_own(&foreign, "web", "nanoctr:web"));
        assert!(!is_own(&link(&web0, "bridge", None), "web", "nanoctr:web"));

        let links = [
            aliased,
            bare,
            other,
            link("eth0", "veth", None),
            link("nc0", "bridge", None),
        ];
        let leaks = leaks(&links, |id| id == "db");
        assert_eq!(
            leaks,
            vec![
                Leak {
                    link: web1,
                    id: Some("web".into())
                },
                Leak {
                    link: web0,
                    id: None
                },
            ]
        );
    }

    #[test]
    fn the_subnet_must_be_clear_of_the_hosts_routes() {
        let route = |dst: &str, len, oif| Route {
            table: 254,
            dst: ip(dst),
            dst_len: len,
            gateway: None,
            oif: Some(oif),
            kind: 1,
        };
        let subnet = ipam::DEFAULT_SUBNET;
        let routes = [
            route("0.0.0.0", 0, 2),
            route("192.168.1.0", 24, 2),
            route("10.88.0.0", 24, 7),
        ];
        assert_eq!(conflicting_route(&routes, subnet, Some(7)), None);
        assert_eq!(conflicting_route(&routes, subnet, None), Some(routes[2]));
        let vpn = [route("10.0.0.0", 8, 3)];
        let e = Error::Overlap {
            subnet,
            route: conflicting_route(&vpn, subnet, Some(7)).unwrap(),
        };
        assert_eq!(
            e.to_string(),
            "subnet 10.88.0.0/24 overlaps the host's route 10.0.0.0/8 on link #3 (table 254)"
        );
    }

    #[test]
    fn resolv_conf_drops_what_a_container_cannot_reach() {
        let host = "# generated\nsearch lan\nnameserver 127.0.0.53\nnameserver 192.168.1.1\n\
                    nameserver ::1\nnameserver fd00::1\nnameserver 0.0.0.0\noptions edns0\n";
        let out = resolv_conf(host, ip("10.88.0.1"));
        assert_eq!(
            out,
            "# nanoctr: the host's resolv.conf, for the bridge\n# generated\nsearch lan\n\
             nameserver 192.168.1.1\noptions edns0\n"
        );
        let stub_only = "nameserver 127.0.0.1\nsearch lan\n";
        assert!(
            resolv_conf(stub_only, ip("10.88.0.1")).ends_with("search lan\nnameserver 10.88.0.1\n")
        );
        assert!(resolv_conf("", ip("10.88.0.1")).ends_with("\nnameserver 10.88.0.1\n"));
        assert!(
            resolv_conf("nameserver\nnameserver banana\n", ip("10.88.0.1"))
                .ends_with("bridge\nnameserver 10.88.0.1\n")
        );
    }

    #[test]
    fn hosts_file_names_itself_and_the_others() {
        let others = [
            (ip("10.88.0.9"), "db".to_string()),
            (ip("10.88.0.7"), "web".to_string()),
            (ip("10.88.0.10"), "bad name".to_string()),
            (ip("10.88.0.11"), "cache".to_string()),
        ];
        let out = hosts_file("web", Some(ip("10.88.0.7")), &others);
        assert_eq!(
            out,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             10.88.0.7\tweb\n10.88.0.9\tdb\n10.88.0.11\tcache\n"
        );
        let none = hosts_file("x#y", None, &[]);
        assert_eq!(none.lines().count(), 2);
    }
}
