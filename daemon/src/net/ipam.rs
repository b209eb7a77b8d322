//! IPv4 addresses for containers on a bridge's subnet, stable per id and
//! never given twice.
//!
//! A container's address is first a pure function of its id: the FNV-1a
//! hash of the id picks one of the subnet's host addresses (all but the
//! network address, the gateway `.1` and the broadcast address); if that one
//! is taken the next ones are tried in order, wrapping around. So an id gets
//! the same address each time as long as its slot is free, and the first
//! address it got for as long as it holds it.
//!
//! Allocations live on persistent storage, one small file per address: the
//! file `DIR/10.88.0.7` holds the id that has `10.88.0.7`. A claim writes
//! the id to a staging name (`DIR/.10.88.0.7.tmp`), syncs it, and links it to
//! the address's name, which fails if the name exists, so two claims of one
//! address cannot both win, and a crash leaves either no claim or a whole
//! one; then the directory is synced. Staging files left by a crash are
//! removed by [`Ipam::open`].
//!
//! An address stays held until it is released: at the container's delete,
//! or by recovery for ids that no longer exist (see [`Ipam::list`]).

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::fnv1a;

/// An IPv4 subnet a bridge serves: `A.B.C.D/N`, with N in 8..=30 and no
/// host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    net: u32,
    prefix: u8,
}

/// The built-in bridge's subnet unless another is configured.
pub const DEFAULT_SUBNET: Subnet = Subnet {
    net: 0x0a58_0000,
    prefix: 24,
};

/// Prefix lengths a subnet may have: a /8 at most, and at least one
/// container's address beside the network, gateway and broadcast ones.
pub const PREFIXES: std::ops::RangeInclusive<u8> = 8..=30;

impl Subnet {
    /// Parses `A.B.C.D/N`.
    pub fn parse(text: &str) -> Result<Subnet, Error> {
        let bad = |why: String| Error::Subnet {
            text: text.into(),
            why,
        };
        let Some((addr, prefix)) = text.split_once('/') else {
            return Err(bad("expected A.B.C.D/N".into()));
        };
        let addr = Ipv4Addr::from_str(addr)
            .map_err(|_| bad(format!("{addr:?} is not an IPv4 address")))?;
        let prefix: u8 = match prefix.bytes().all(|b| b.is_ascii_digit()) {
            true => prefix.parse().ok(),
            false => None,
        }
        .ok_or_else(|| bad(format!("{prefix:?} is not a prefix length")))?;
        if !PREFIXES.contains(&prefix) {
            return Err(bad(format!(
                "prefix /{prefix} is outside /{}../{}",
                PREFIXES.start(),
                PREFIXES.end()
            )));
        }
        let net = u32::from(addr);
        let subnet = Subnet {
            net: net & mask(prefix),
            prefix,
        };
        if subnet.net != net {
            return Err(bad(format!("host bits are set (the subnet is {subnet})")));
        }
        Ok(subnet)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.net)
    }

    /// The first host address, which the bridge holds.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.net + 1)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.net | !mask(self.prefix))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.net
    }

    /// Whether this subnet and `net/len` share an address.
    pub fn overlaps(&self, net: Ipv4Addr, len: u8) -> bool {
        let m = mask(self.prefix.min(len.min(32)));
        u32::from(net) & m == self.net & m
    }

    /// How many addresses containers can have.
    pub fn hosts(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 3
    }

    /// The `i`th container address (`i < hosts()`): from `.2` on.
    fn host(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.net + 2 + i)
    }

    /// Why `ip` cannot be a container's address here, if it cannot.
    fn refuse(&self, ip: Ipv4Addr) -> Option<Error> {
        let what = if !self.contains(ip) {
            return Some(Error::Outside { ip, subnet: *self });
        } else if ip == self.network() {
            "the network address"
        } else if ip == self.gateway() {
            "the gateway"
        } else if ip == self.broadcast() {
            "the broadcast address"
        } else {
            return None;
        };
        Some(Error::Reserved {
            ip,
            subnet: *self,
            what,
        })
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - p.min(32)),
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl FromStr for Subnet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Subnet, Error> {
        Subnet::parse(s)
    }
}

/// Why an address could not be given, kept or read.
#[derive(Debug)]
pub enum Error {
    Subnet {
        text: String,
        why: String,
    },
    BadId(String),
    Outside {
        ip: Ipv4Addr,
        subnet: Subnet,
    },
    Reserved {
        ip: Ipv4Addr,
        subnet: Subnet,
        what: &'static str,
    },
    Taken {
        ip: Ipv4Addr,
        by: String,
    },
    Full(Subnet),
    Io {
        path: PathBuf,
        err: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Subnet { text, why } => write!(f, "bad subnet {text}: {why}"),
            Error::BadId(why) => f.write_str(why),
            Error::Outside { ip, subnet } => write!(f, "{ip} is not in {subnet}"),
            Error::Reserved { ip, subnet, what } => write!(f, "{ip} is {what} of {subnet}"),
            Error::Taken { ip, by } => write!(f, "{ip} is taken by {by}"),
            Error::Full(subnet) => write!(f, "no address left in {subnet}"),
            Error::Io { path, err } => write!(f, "{}: {err}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

/// An address given to an id: `fresh` if this call claimed it, rather than
/// finding it held by the id already (what to undo if the rest fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub fresh: bool,
}

/// The allocations of one subnet, in one directory.
#[derive(Debug)]
pub struct Ipam {
    dir: PathBuf,
    subnet: Subnet,
}

/// The most a holder file may hold: an id and its newline.
const HOLDER_MAX: u64 = 128;

impl Ipam {
    /// The allocations in `dir`, made if missing; staging files a crash
    /// left there are removed.
    pub fn open(dir: &Path, subnet: Subnet) -> Result<Ipam, Error> {
        let io = |err| Error::Io {
            path: dir.into(),
            err,
        };
        fs::create_dir_all(dir).map_err(io)?;
        for entry in fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let path = entry.path();
                fs::remove_file(&path).map_err(|err| Error::Io { path, err })?;
            }
        }
        Ok(Ipam {
            dir: dir.into(),
            subnet,
        })
    }

    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    /// Every allocation in the directory, in address order: its address
    /// and the id holding it. Files whose name is not an address are not
    /// allocations; ones of another subnet (the subnet was changed) are.
    pub fn list(&self) -> Result<Vec<(Ipv4Addr, String)>, Error> {
        let io = |err| Error::Io {
            path: self.dir.clone(),
            err,
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| Ipv4Addr::from_str(n).ok())
            else {
                continue;
            };
            if let Some(id) = self.holder(ip)? {
                out.push((ip, id));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The id holding `ip`, if any.
    pub fn holder(&self, ip: Ipv4Addr) -> Result<Option<String>, Error> {
        let path = self.dir.join(ip.to_string());
        use crate::files::{read_bounded_text, Links};
        match read_bounded_text(&path, HOLDER_MAX, Links::Refuse) {
            Ok(text) => Ok(Some(text.trim().to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::Io { path, err }),
        }
    }

    /// The address `id` holds in this subnet, if any.
    pub fn lookup(&self, id: &str) -> Result<Option<Ipv4Addr>, Error> {
        Ok(self
            .list()?
            .into_iter()
            .find(|(ip, holder)| holder == id && self.subnet.contains(*ip))
            .map(|(ip, _)| ip))
    }

    /// The address of `id`: the one it holds, or a new one, its hash's
    /// slot or the next free one after it.
    pub fn allocate(&self, id: &str) -> Result<Lease, Error> {
        check_id(id)?;
        let held = self.list()?;
        if let Some((ip, _)) = held
            .iter()
            .find(|(ip, holder)| holder == id && self.subnet.contains(*ip))
        {
            return Ok(Lease {
                ip: *ip,
                fresh: false,
            });
        }
        let taken: HashSet<Ipv4Addr> = held.into_iter().map(|(ip, _)| ip).collect();
        let n = self.subnet.hosts();
        let start = fnv1a(id.as_bytes()) % n;
        for k in 0..n {
            let ip = self.subnet.host((start + k) % n);
            if !taken.contains(&ip) && self.claim(ip, id)? {
                return Ok(Lease { ip, fresh: true });
            }
        }
        Err(Error::Full(self.subnet))
    }

    /// Gives `id` the address `ip` (a container's `ip=`): refused outside
    /// the subnet, for its network, gateway and broadcast addresses, and
    /// when another id holds it. Another address `id` held is released: it
    /// has this one now.
    pub fn pin(&self, id: &str, ip: Ipv4Addr) -> Result<Lease, Error> {
        check_id(id)?;
        if let Some(e) = self.subnet.refuse(ip) {
            return Err(e);
        }
        let fresh = match self.holder(ip)? {
            Some(by) if by == id => false,
            Some(by) => return Err(Error::Taken { ip, by }),
            None if self.claim(ip, id)? => true,
            None => {
                let by = self.holder(ip)?.unwrap_or_default();
                return Err(Error::Taken { ip, by });
            }
        };
        for (other, holder) in self.list()? {
            if holder == id && other != ip {
                self.release_ip(other, id)?;
            }
        }
        Ok(Lease { ip, fresh })
    }

    /// Releases every address `id` holds; returns them.
    pub fn release(&self, id: &str) -> Result<Vec<Ipv4Addr>, Error> {
        let mut gone = Vec::new();
        for (ip, holder) in self.list()? {
            if holder == id && self.release_ip(ip, id)? {
                gone.push(ip);
            }
        }
        Ok(gone)
    }

    /// Releases `ip` if `id` holds it; `false` if it did not.
    pub fn release_ip(&self, ip: Ipv4Addr, id: &str) -> Result<bool, Error> {
        if self.holder(ip)?.as_deref() != Some(id) {
            return Ok(false);
        }
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(Error::Io { path, err }),
        }
        self.sync_dir()?;
        Ok(true)
    }

    /// Claims `ip` for `id`, durably; `false` if it was already taken.
    fn claim(&self, ip: Ipv4Addr, id: &str) -> Result<bool, Error> {
        let name = ip.to_string();
        let path = self.dir.join(&name);
        let staging = self.dir.join(format!(".{name}.tmp"));
        let io = |err| Error::Io {
            path: staging.clone(),
            err,
        };
        match fs::remove_file(&staging) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&staging)
            .map_err(io)?;
        f.write_all(format!("{id}\n").as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        let won = match fs::hard_link(&staging, &path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(err) => {
                let _ = fs::remove_file(&staging);
                return Err(Error::Io { path, err });
            }
        };
        fs::remove_file(&staging).map_err(io)?;
        self.sync_dir()?;
        Ok(won)
    }

    fn sync_dir(&self) -> Result<(), Error> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|err| Error::Io {
                path: self.dir.clone(),
                err,
            })
    }
}

fn check_id(id: &str) -> Result<(), Error> {
    crate::wire::checks::check_id(id)
        .map(drop)
        .map_err(|e| Error::BadId(e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nanoctr-ipam-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn subnets_parse_and_refuse() {
        let s = Subnet::parse("10.88.0.0/24").unwrap();
        assert_eq!(s, DEFAULT_SUBNET);
        assert_eq!(s.to_string(), "10.88.0.0/24");
        assert_eq!(s.gateway(), ip("10.88.0.1"));
        assert_eq!(s.broadcast(), ip("10.88.0.255"));
        assert_eq!(s.hosts(), 253);
        assert!(s.contains(ip("10.88.0.200")) && !s.contains(ip("10.88.1.1")));
        let s = Subnet::parse("172.16.0.0/12").unwrap();
        assert_eq!(s.broadcast(), ip("172.31.255.255"));
        assert_eq!(Subnet::parse("192.168.9.4/30").unwrap().hosts(), 1);

        for (bad, why) in [
            ("", "expected A.B.C.D/N"),
            ("10.88.0.0", "expected A.B.C.D/N"),
            ("10.88.0/24", "not an IPv4 address"),
            ("10.88.0.256/24", "not an IPv4 address"),
            ("banana/24", "not an IPv4 address"),
            ("10.88.0.0/", "not a prefix length"),
            ("10.88.0.0/+24", "not a prefix length"),
            ("10.88.0.0/24 ", "not a prefix length"),
            ("10.88.0.0/999", "not a prefix length"),
            ("10.0.0.0/7", "outside /8../30"),
            ("10.88.0.0/31", "outside /8../30"),
            ("10.88.0.0/32", "outside /8../30"),
            (
                "10.88.0.1/24",
                "host bits are set (the subnet is 10.88.0.0/24)",
            ),
        ] {
            let e = Subnet::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.starts_with(&format!("bad subnet {bad}:")), "{e}");
        }
    }

    #[test]
    fn overlaps() {
        let s = DEFAULT_SUBNET;
        assert!(s.overlaps(ip("10.88.0.0"), 24));
        assert!(s.overlaps(ip("10.0.0.0"), 8));
        assert!(s.overlaps(ip("10.88.0.128"), 25));
        assert!(s.overlaps(ip("10.88.0.5"), 32));
        assert!(!s.overlaps(ip("10.88.1.0"), 24));
        assert!(!s.overlaps(ip("192.168.1.0"), 24));
        assert!(s.overlaps(ip("0.0.0.0"), 0), "the default route covers all");
    }

    #[test]
    fn an_address_is_a_function_of_the_id_and_survives_a_reopen() {
        let dir = scratch("stable");
        let a = Ipam::open(&dir, DEFAULT_SUBNET).unwrap();
        let web = a.allocate("web").unwrap();
        assert!(web.fresh);
        let db = a.allocate("db").unwrap();
        assert_ne!(web.ip, db.ip);
        for lease in [web, db] {
            assert!(DEFAULT_SUBNET.refuse(lease.ip).is_none(), "{lease:?}");
        }
        // Asked again, and after a "restart": the same, not fresh.
        assert_eq!(
            a.allocate("web").unwrap(),
            Lease {
                ip: web.ip,
                fresh: false
            }
        );
        let b = Ipam::open(&dir, DEFAULT_SUBNET).unwrap();
        assert_eq!(b.allocate("web").unwrap().ip, web.ip);
        assert_eq!(b.lookup("db").unwrap(), Some(db.ip));
        assert_eq!(
            fs::read_to_string(dir.join(web.ip.to_string())).unwrap(),
            "web\n"
        );
        // Released and allocated again in another directory: the same slot.
        assert_eq!(b.release("web").unwrap(), vec![web.ip]);
        assert_eq!(b.lookup("web").unwrap(), None);
        let other = scratch("stable2");
        let c = Ipam::open(&other, DEFAULT_SUBNET).unwrap();
        assert_eq!(c.allocate("web").unwrap().ip, web.ip);
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_dir_all(&other).unwrap();
    }

    #[test]
    fn collisions_probe_and_a_full_subnet_says_so() {
        let dir = scratch("full");
        let subnet = Subnet::parse("192.168.50.0/29").unwrap(); // .2 to .6
        let a = Ipam::open(&dir, subnet).unwrap();
        let mut got = HashSet::new();
        for i in 0..5 {
            let lease = a.allocate(&format!("c{i}")).unwrap();
            assert!(subnet.refuse(lease.ip).is_none(), "{lease:?}");
            assert!(got.insert(lease.ip), "{} given twice", lease.ip);
        }
        let e = a.allocate("c5").unwrap_err();
        assert_eq!(e.to_string(), "no address left in 192.168.50.0/29");
        // Freed, it is given again.
        let freed = a.release("c2").unwrap();
        assert_eq!(a.allocate("c5").unwrap().ip, freed[0]);
        assert_eq!(a.list().unwrap().len(), 5);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pins_and_their_refusals() {
        let dir = scratch("pin");
        let a = Ipam::open(&dir, DEFAULT_SUBNET).unwrap();
        let lease = a.pin("web", ip("10.88.0.7")).unwrap();
        assert_eq!(
            lease,
            Lease {
                ip: ip("10.88.0.7"),
                fresh: true
            }
        );
        assert!(!a.pin("web", ip("10.88.0.7")).unwrap().fresh);
        let refused = |id: &str, addr: &str| a.pin(id, ip(addr)).unwrap_err().to_string();
        assert_eq!(refused("db", "10.88.0.7"), "10.88.0.7 is taken by web");
        assert_eq!(
            refused("db", "10.88.1.7"),
            "10.88.1.7 is not in 10.88.0.0/24"
        );
        assert_eq!(
            refused("db", "10.88.0.0"),
            "10.88.0.0 is the network address of 10.88.0.0/24"
        );
        assert_eq!(
            refused("db", "10.88.0.1"),
            "10.88.0.1 is the gateway of 10.88.0.0/24"
        );
        assert_eq!(
            refused("db", "10.88.0.255"),
            "10.88.0.255 is the broadcast address of 10.88.0.0/24"
        );
        assert!(refused("../x", "10.88.0.9").starts_with("bad id"));
        // An allocation never lands on a pinned address, and a pin moves
        // the id off its old one.
        let db = a.allocate("db").unwrap();
        assert_ne!(db.ip, ip("10.88.0.7"));
        a.pin("db", ip("10.88.0.9")).unwrap();
        assert_eq!(a.lookup("db").unwrap(), Some(ip("10.88.0.9")));
        assert_eq!(a.holder(db.ip).unwrap(), None);
        // Released by its holder only.
        assert!(!a.release_ip(ip("10.88.0.7"), "db").unwrap());
        assert!(a.release_ip(ip("10.88.0.7"), "web").unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_crash_leaves_a_whole_claim_or_none() {
        let dir = scratch("crash");
        fs::create_dir_all(&dir).unwrap();
        // A staging file whose link was never made, and one whose link was.
        fs::write(dir.join(".10.88.0.5.tmp"), "ghost\n").unwrap();
        fs::write(dir.join(".10.88.0.6.tmp"), "web\n").unwrap();
        fs::hard_link(dir.join(".10.88.0.6.tmp"), dir.join("10.88.0.6")).unwrap();
        fs::write(dir.join("README"), "not an allocation").unwrap();
        let a = Ipam::open(&dir, DEFAULT_SUBNET).unwrap();
        assert!(!dir.join(".10.88.0.5.tmp").exists());
        assert!(!dir.join(".10.88.0.6.tmp").exists());
        assert_eq!(a.list().unwrap(), vec![(ip("10.88.0.6"), "web".into())]);
        assert_eq!(a.allocate("web").unwrap().ip, ip("10.88.0.6"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
