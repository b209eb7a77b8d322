//! A container's network: the `net=`, `ip=` and `publish=` options of
//! `create`/`run` (and of a `[container]` section).
//!
//! ```text
//! net=host | net=none | net=ns:/var/run/netns/lan | net=bridge[:NAME] | net=cni:NAME
//! ip=10.88.0.20 publish=8080:80 publish=5353:53/udp
//! ```
//!
//! Without `net=` the bundle's own `linux.namespaces` stand. `ip=` pins
//! the container's address on a bridge; `publish=HOSTPORT:PORT[/tcp|udp]`
//! forwards a port of the host to the container's (bridge and CNI).

use std::net::Ipv4Addr;

use super::checks::check_path;
use super::proto::{Code, Error};

/// The bridge `net=bridge` means.
pub const DEFAULT_BRIDGE: &str = "nanoctr0";

/// The longest interface name the kernel takes (IFNAMSIZ less its NUL).
pub const IFNAMSIZ: usize = 15;

/// The most ports one container publishes.
pub const MAX_PUBLISH: usize = 16;

/// Where its network comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetMode {
    /// The host's network namespace.
    Host,
    /// A namespace of its own with loopback only.
    None,
    /// An existing namespace, by its path (`/var/run/netns/NAME`).
    Ns(String),
    /// A namespace of its own on the daemon's bridge `NAME`.
    Bridge(String),
    /// A namespace of its own, configured by the CNI network list `NAME`.
    Cni(String),
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// `publish=HOSTPORT:PORT[/PROTO]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Publish {
    pub host: u16,
    pub port: u16,
    pub proto: Proto,
}

impl Publish {
    pub fn parse(value: &str) -> Result<Publish, Error> {
        let bad = || {
            Error::new(
                Code::Invalid,
                format!("publish={value}: wants HOSTPORT:PORT[/tcp|udp], ports 1 to 65535"),
            )
        };
        let (ports, proto) = match value.split_once('/') {
            Some((p, "tcp")) => (p, Proto::Tcp),
            Some((p, "udp")) => (p, Proto::Udp),
            Some(_) => return Err(bad()),
            None => (value, Proto::Tcp),
        };
        let (host, port) = ports.split_once(':').ok_or_else(bad)?;
        let port_of = |s: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|&p| p > 0 && !s.starts_with('+'))
        };
        Ok(Publish {
            host: port_of(host).ok_or_else(bad)?,
            port: port_of(port).ok_or_else(bad)?,
            proto,
        })
    }

    /// As [`Publish::parse`] takes it.
    pub fn word(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.proto.as_str())
    }
}

/// What the options say about the network; all unset: the bundle's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetOpts {
    pub mode: Option<NetMode>,
    /// `ip=`: the address on the bridge.
    pub ip: Option<Ipv4Addr>,
    pub publish: Vec<Publish>,
}

impl NetOpts {
    /// Takes `key=value` if it is a network option; false if it is not
    /// one. [`NetOpts::check`] checks them together once all are in.
    pub fn option(&mut self, key: &str, value: &str) -> Result<bool, Error> {
        let twice = || Error::new(Code::Invalid, format!("{key} given twice"));
        match key {
            "net" => {
                if self.mode.replace(parse_mode(value)?).is_some() {
                    return Err(twice());
                }
            }
            "ip" => {
                let ip = value.parse::<Ipv4Addr>().map_err(|_| {
                    Error::new(Code::Invalid, format!("ip={value}: not an IPv4 address"))
                })?;
                if self.ip.replace(ip).is_some() {
                    return Err(twice());
                }
            }
            "publish" => {
                let p = Publish::parse(value)?;
                if self
                    .publish
                    .iter()
                    .any(|q| q.host == p.host && q.proto == p.proto)
                {
                    return Err(Error::new(
                        Code::Invalid,
                        format!(
                            "publish: host port {}/{} given twice",
                            p.host,
                            p.proto.as_str()
                        ),
                    ));
                }
                if self.publish.len() == MAX_PUBLISH {
                    return Err(Error::new(
                        Code::Invalid,
                        format!("publish: at most {MAX_PUBLISH} ports"),
                    ));
                }
                self.publish.push(p);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The options that only make sense together: `ip=` with a bridge,
    /// `publish=` with a bridge or CNI.
    pub fn check(&self) -> Result<(), Error> {
        let bridge = matches!(self.mode, Some(NetMode::Bridge(_)));
        let cni = matches!(self.mode, Some(NetMode::Cni(_)));
        if self.ip.is_some() && !bridge {
            return Err(Error::new(Code::Invalid, "ip= needs net=bridge"));
        }
        if !self.publish.is_empty() && !bridge && !cni {
            return Err(Error::new(
                Code::Invalid,
                "publish= needs net=bridge or net=cni",
            ));
        }
        Ok(())
    }

    /// The bridge it is on, if any.
    pub fn bridge(&self) -> Option<&str> {
        match &self.mode {
            Some(NetMode::Bridge(name)) => Some(name),
            _ => None,
        }
    }

    /// Whether the daemon makes a network namespace for it (a bridge's or
    /// CNI's): one to unmake when it goes.
    pub fn owns_netns(&self) -> bool {
        matches!(self.mode, Some(NetMode::Bridge(_) | NetMode::Cni(_)))
    }

    /// `net=` as `state` shows it (`bundle` without one).
    pub fn describe(&self) -> String {
        match &self.mode {
            None => "bundle".into(),
            Some(m) => mode_word(m),
        }
    }

    /// The options again, as [`NetOpts::option`] takes them.
    pub fn words(&self) -> Vec<String> {
        let mut words = Vec::new();
        if let Some(m) = &self.mode {
            let word = format!("net={}", mode_word(m));
            words.push(super::proto::quote(&word).into_owned());
        }
        if let Some(ip) = self.ip {
            words.push(format!("ip={ip}"));
        }
        words.extend(self.publish.iter().map(|p| format!("publish={}", p.word())));
        words
    }
}

impl NetMode {
    /// As `net=` takes it.
    pub fn word(&self) -> String {
        mode_word(self)
    }
}

fn mode_word(m: &NetMode) -> String {
    match m {
        NetMode::Host => "host".into(),
        NetMode::None => "none".into(),
        NetMode::Ns(p) => format!("ns:{p}"),
        NetMode::Bridge(b) => format!("bridge:{b}"),
        NetMode::Cni(n) => format!("cni:{n}"),
    }
}

fn parse_mode(value: &str) -> Result<NetMode, Error> {
    let (kind, arg) = match value.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (value, None),
    };
    match (kind, arg) {
        ("host", None) => Ok(NetMode::Host),
        ("none", None) => Ok(NetMode::None),
        ("ns", Some(path)) => Ok(NetMode::Ns(check_path("net=ns:", path)?)),
        ("bridge", None) => Ok(NetMode::Bridge(DEFAULT_BRIDGE.into())),
        ("bridge", Some(name)) => Ok(NetMode::Bridge(check_ifname(name)?.into())),
        ("cni", Some(name)) => Ok(NetMode::Cni(check_cni_name(name)?.into())),
        _ => Err(Error::new(
            Code::Invalid,
            format!("net={value}: wants host, none, ns:PATH, bridge[:NAME] or cni:NAME"),
        )),
    }
}

/// An interface name the kernel takes: 1 to 15 bytes, no `/`, `:`,
/// whitespace or control characters, not `.` or `..`.
pub fn check_ifname(name: &str) -> Result<&str, Error> {
    let ok = !name.is_empty()
        && name.len() <= IFNAMSIZ
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    match ok {
        true => Ok(name),
        false => Err(Error::new(
            Code::Invalid,
            format!("bridge name {name:?}: 1 to {IFNAMSIZ} characters, no '/', ':' or spaces"),
        )),
    }
}

/// A CNI network name: letters, digits, `.`, `_` and `-`, as the spec
/// allows, at most 64 bytes.
fn check_cni_name(name: &str) -> Result<&str, Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match ok {
        true => Ok(name),
        false => Err(Error::new(
            Code::Invalid,
            format!("cni network {name:?}: letters, digits, '.', '_' and '-'"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(words: &[&str]) -> Result<NetOpts, Error> {
        let mut o = NetOpts::default();
        for w in words {
            let (k, v) = w.split_once('=').unwrap();
            assert!(o.option(k, v)?, "{w} not taken");
        }
        o.check()?;
        Ok(o)
    }

    #[test]
    fn modes() {
        let m = |w: &str| opts(&[w]).map(|o| o.mode.unwrap());
        assert_eq!(m("net=host").unwrap(), NetMode::Host);
        assert_eq!(m("net=none").unwrap(), NetMode::None);
        assert_eq!(
            m("net=ns:/var/run/netns/lan").unwrap(),
            NetMode::Ns("/var/run/netns/lan".into())
        );
        assert_eq!(m("net=bridge").unwrap(), NetMode::Bridge("nanoctr0".into()));
        assert_eq!(
            m("net=bridge:br-lan").unwrap(),
            NetMode::Bridge("br-lan".into())
        );
        assert_eq!(
            m("net=cni:lan-net").unwrap(),
            NetMode::Cni("lan-net".into())
        );
        for bad in [
            "net=",
            "net=hostx",
            "net=host:x",
            "net=ns:",
            "net=ns:relative",
            "net=bridge:",
            "net=bridge:a-name-far-too-long",
            "net=bridge:a/b",
            "net=bridge:a b",
            "net=cni:",
            "net=cni:../x",
            "net=cni:-x",
            "net=wifi",
        ] {
            let e = m(bad).unwrap_err();
            assert_eq!(e.code, Code::Invalid, "{bad}");
        }
    }

    #[test]
    fn publish_and_ip() {
        let o = opts(&[
            "net=bridge",
            "ip=10.88.0.9",
            "publish=8080:80",
            "publish=5353:53/udp",
            "publish=5353:53/tcp",
        ])
        .unwrap();
        assert_eq!(o.ip, Some(Ipv4Addr::new(10, 88, 0, 9)));
        assert_eq!(o.publish.len(), 3);
        assert_eq!(o.publish[1].word(), "5353:53/udp");
        for bad in [
            "publish=80",
            "publish=0:80",
            "publish=80:0",
            "publish=65536:80",
            "publish=+80:80",
            "publish=80:80/sctp",
            "publish=a:b",
        ] {
            assert!(opts(&["net=bridge", bad]).is_err(), "{bad}");
        }
        let twice = opts(&["net=bridge", "publish=80:80", "publish=80:81"]).unwrap_err();
        assert!(twice.message.contains("given twice"), "{}", twice.message);
        assert!(opts(&["net=bridge", "ip=10.88.0"]).is_err());
        assert!(opts(&["net=host", "ip=10.88.0.9"]).is_err());
        assert!(opts(&["publish=80:80"]).is_err());
        assert!(opts(&["net=none", "publish=80:80"]).is_err());
        assert!(opts(&["net=cni:lan", "publish=80:80"]).is_ok());
        assert!(opts(&["net=host", "net=none"]).is_err());
    }

    #[test]
    fn words_round_trip() {
        let o = opts(&[
            "net=bridge:br0",
            "ip=10.88.0.9",
            "publish=8080:80",
            "publish=53:53/udp",
        ])
        .unwrap();
        let words = o.words();
        assert_eq!(
            words,
            [
                "net=bridge:br0",
                "ip=10.88.0.9",
                "publish=8080:80/tcp",
                "publish=53:53/udp"
            ]
        );
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        assert_eq!(opts(&refs).unwrap(), o);
        assert_eq!(o.describe(), "bridge:br0");
        assert_eq!(NetOpts::default().describe(), "bundle");
        assert!(NetOpts::default().words().is_empty());
    }
}
