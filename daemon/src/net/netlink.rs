//! A minimal rtnetlink client: the few link, address and route requests
//! the built-in bridge needs, over a `NETLINK_ROUTE` socket (see
//! netlink(7), rtnetlink(7)).
//!
//! A request is written into a fixed buffer of [`REQUEST_MAX`] bytes
//! (netlink header, the family's fixed header, then attributes, each
//! padded to 4 bytes, nested ones with their length filled in when they
//! are closed); one that would not fit is refused before it is sent.
//! Every request but a dump asks for an acknowledgement (`NLM_F_ACK`) and
//! waits for it: the kernel's `NLMSG_ERROR` with errno 0, or the errno,
//! which becomes an [`Error`] naming the operation
//! (`netlink: add veth nc1a2b3c4d0: File exists`). Answers are read into one
//! receive buffer, made once per socket, and matched to the request by
//! sequence number, so a late answer to an earlier request is skipped.
//!
//! Everything the kernel sends is parsed by total functions: lengths are
//! checked against what was received before anything is read, and a
//! short, overlong or garbled message is an error ([`Malformed`]), never a
//! panic or a read past the end.
//!
//! A netlink socket acts on the network namespace it was made in, for its
//! whole life: open one inside another namespace with
//! [`super::netns::netlink_in`].

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use rustix::fd::OwnedFd;
use rustix::net::{self as rnet, netlink::SocketAddrNetlink, AddressFamily, SocketType};

// <linux/netlink.h>
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER`, masked off an attribute's type.
const NLA_TYPE_MASK: u16 = 0x3fff;

// <linux/rtnetlink.h>
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;

// <linux/if_link.h>, <linux/if_addr.h>, <linux/veth.h>, <linux/if.h>
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_IFALIAS: u16 = 20;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
/// `IFF_UP`: the link is administratively up.
pub const IFF_UP: u32 = 0x1;

/// `struct ifinfomsg`, `struct ifaddrmsg`, `struct rtmsg`.
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTMSG_LEN: usize = 12;

/// `IFNAMSIZ` less its NUL: the longest interface name.
pub const IFNAME_MAX: usize = 15;
/// `IFALIASZ` less its NUL: the longest interface alias.
pub const IFALIAS_MAX: usize = 255;

/// The largest request written: the biggest one here, a veth pair with its
/// peer, is about 120 bytes.
pub const REQUEST_MAX: usize = 512;
/// The receive buffer: the kernel fills a dump's messages up to 32 KiB at a
/// time when the reader's buffer allows it (`NLMSG_GOODSIZE` otherwise).
pub const RECEIVE_MAX: usize = 32 * 1024;
/// How long an answer from the kernel may take before the request fails.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a dump the kernel marks inconsistent (the table changed
/// while it was read, `NLM_F_DUMP_INTR`) is read again.
const DUMP_TRIES: usize = 3;

/// A kernel reply that does not parse: what was wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed reply: {}", self.0)
    }
}

/// Why a request failed.
#[derive(Debug)]
pub enum Cause {
    /// The kernel's errno for it, or the socket's.
    Os(io::Error),
    /// The kernel's answer did not parse.
    Malformed(Malformed),
    /// The request would not fit in [`REQUEST_MAX`] bytes.
    TooLong,
    /// An answer was larger than [`RECEIVE_MAX`] bytes.
    Truncated,
    /// An interface name that is empty, too long, or has `/`, `:` or a
    /// space in it.
    BadName,
    /// The table changed while it was dumped, [`DUMP_TRIES`] times.
    Interrupted,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Os(e) => {
                // std writes "File exists (os error 17)"; the words suffice.
                let s = e.to_string();
                f.write_str(s.split(" (os error").next().unwrap_or(&s))
            }
            Cause::Malformed(m) => m.fmt(f),
            Cause::TooLong => f.write_str("request too long"),
            Cause::Truncated => write!(f, "answer longer than {RECEIVE_MAX} bytes"),
            Cause::BadName => write!(
                f,
                "not an interface name (1 to {IFNAME_MAX} bytes, no '/', ':' or space)"
            ),
            Cause::Interrupted => f.write_str("the table kept changing while it was read"),
        }
    }
}

/// A failed netlink request: the operation, in words, and why.
#[derive(Debug)]
pub struct Error {
    op: String,
    cause: Cause,
}

impl Error {
    pub fn new(op: impl Into<String>, cause: Cause) -> Error {
        Error {
            op: op.into(),
            cause,
        }
    }

    /// The operation, e.g. `add veth nc1a2b3c4d0`.
    pub fn op(&self) -> &str {
        &self.op
    }

    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// The errno, when the kernel or the socket gave one.
    pub fn errno(&self) -> Option<i32> {
        match &self.cause {
            Cause::Os(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "netlink: {}: {}", self.op, self.cause)
    }
}

impl std::error::Error for Error {}

/// Whether `name` can be an interface's name: 1 to 15 bytes, none of them
/// `/`, `:`, NUL or white space, and not `.` or `..` (the kernel's
/// `dev_valid_name`, and `:` which it keeps for aliases).
pub fn valid_ifname(name: &str) -> bool {
    (1..=IFNAME_MAX).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

fn check_name(op: &str, name: &str) -> Result<(), Error> {
    match valid_ifname(name) {
        true => Ok(()),
        false => Err(Error::new(op, Cause::BadName)),
    }
}

// ---------------------------------------------------------------------------
// Writing requests

/// One request being written into a fixed buffer. Writes past its end are
/// dropped and remembered; [`Request::finish`] then refuses the request.
struct Request {
    buf: [u8; REQUEST_MAX],
    len: usize,
    overflow: bool,
}

impl Request {
    /// A netlink header of message type `kind` with `flags`
    /// (`NLM_F_REQUEST` is added); length and sequence are filled in by
    /// [`Request::finish`].
    fn new(kind: u16, flags: u16) -> Request {
        let mut r = Request {
            buf: [0; REQUEST_MAX],
            len: 0,
            overflow: false,
        };
        r.put(&0u32.to_ne_bytes());
        r.put(&kind.to_ne_bytes());
        r.put(&(flags | NLM_F_REQUEST).to_ne_bytes());
        r.put(&[0; 8]); // seq, pid
        r
    }

    fn put(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            _ => self.overflow = true,
        }
    }

    /// Pads with zeros to the next multiple of 4 (`NLMSG_ALIGN`, `RTA_ALIGN`).
    fn align(&mut self) {
        let pad = align(self.len) - self.len;
        self.put(&[0; 3][..pad]);
    }

    /// An attribute: `struct rtattr`, its payload, padding.
    fn attr(&mut self, kind: u16, payload: &[u8]) {
        self.put(&((4 + payload.len()) as u16).to_ne_bytes());
        self.put(&kind.to_ne_bytes());
        self.put(payload);
        self.align();
    }

    fn attr_u32(&mut self, kind: u16, v: u32) {
        self.attr(kind, &v.to_ne_bytes());
    }

    /// A string attribute, NUL-terminated as the kernel's `NLA_STRING`s
    /// are written by iproute2.
    fn attr_str(&mut self, kind: u16, s: &str) {
        let at = self.len;
        self.put(&((4 + s.len() + 1) as u16).to_ne_bytes());
        self.put(&kind.to_ne_bytes());
        self.put(s.as_bytes());
        self.put(&[0]);
        debug_assert!(self.overflow || self.len == at + 4 + s.len() + 1);
        self.align();
    }

    /// Opens a nested attribute; its length is written by [`Request::end`].
    fn nest(&mut self, kind: u16) -> usize {
        let at = self.len;
        self.put(&0u16.to_ne_bytes());
        self.put(&kind.to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.len - at) as u16;
        if let Some(dst) = self.buf.get_mut(at..at + 2) {
            dst.copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// The whole message with its length and `seq`, or `None` if it did not
    /// fit.
    fn finish(&mut self, seq: u32) -> Option<&[u8]> {
        if self.overflow {
            return None;
        }
        let len = self.len as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        Some(&self.buf[..self.len])
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// `struct ifinfomsg`.
fn ifinfomsg(family: u8, index: u32, flags: u32, change: u32) -> [u8; IFINFOMSG_LEN] {
    let mut b = [0; IFINFOMSG_LEN];
    b[0] = family;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// `struct ifaddrmsg` for IPv4.
fn ifaddrmsg(prefix: u8, index: u32) -> [u8; IFADDRMSG_LEN] {
    let mut b = [0; IFADDRMSG_LEN];
    b[0] = AF_INET;
    b[1] = prefix;
    b[3] = RT_SCOPE_UNIVERSE;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b
}

/// `struct rtmsg` for an IPv4 unicast route in the main table.
fn rtmsg(dst_len: u8) -> [u8; RTMSG_LEN] {
    let mut b = [0; RTMSG_LEN];
    b[0] = AF_INET;
    b[1] = dst_len;
    b[4] = RT_TABLE_MAIN;
    b[5] = RTPROT_BOOT;
    b[6] = RT_SCOPE_UNIVERSE;
    b[7] = RTN_UNICAST;
    b
}

// ---------------------------------------------------------------------------
// Reading answers

/// A netlink message header (`struct nlmsghdr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    kind: u16,
    flags: u16,
    seq: u32,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let a: [u8; 4] = b.try_into().ok()?;
    Some(Ipv4Addr::from(a))
}

/// The messages in one datagram: each header and its payload. After the
/// first malformed one, nothing more.
struct Messages<'a> {
    rest: &'a [u8],
}

fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<(Header, &'a [u8]), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = std::mem::take(&mut self.rest);
        let (Some(len), Some(kind), Some(flags), Some(seq)) =
            (u32_at(b, 0), u16_at(b, 4), u16_at(b, 6), u32_at(b, 8))
        else {
            return Some(Err(Malformed("message shorter than its header")));
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > b.len() || b.len() < NLMSG_HDRLEN {
            return Some(Err(Malformed("message length out of bounds")));
        }
        self.rest = b.get(align(len)..).unwrap_or(&[]);
        let header = Header { kind, flags, seq };
        Some(Ok((header, &b[NLMSG_HDRLEN..len])))
    }
}

/// The attributes in `buf`: each type (flags masked off) and payload.
/// After the first malformed one, nothing more.
struct Attrs<'a> {
    rest: &'a [u8],
}

fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = std::mem::take(&mut self.rest);
        let (Some(len), Some(kind)) = (u16_at(b, 0), u16_at(b, 2)) else {
            return Some(Err(Malformed("attribute shorter than its header")));
        };
        let len = len as usize;
        if len < 4 || len > b.len() {
            return Some(Err(Malformed("attribute length out of bounds")));
        }
        self.rest = b.get(align(len)..).unwrap_or(&[]);
        Some(Ok((kind & NLA_TYPE_MASK, &b[4..len])))
    }
}

/// A string attribute's text: up to its NUL, at most `max` bytes.
fn text(payload: &[u8], max: usize) -> Result<String, Malformed> {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    if end > max {
        return Err(Malformed("string attribute too long"));
    }
    std::str::from_utf8(&payload[..end])
        .map(str::to_string)
        .map_err(|_| Malformed("string attribute not UTF-8"))
}

/// An interface, from `RTM_NEWLINK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFF_*` flags; [`IFF_UP`] is the one used here.
    pub flags: u32,
    /// The bridge (or bond) the link is a port of.
    pub master: Option<u32>,
    /// `IFLA_INFO_KIND`: `bridge`, `veth`, ...; none for a physical device.
    pub kind: Option<String>,
    pub alias: Option<String>,
}

fn parse_link(payload: &[u8]) -> Result<Link, Malformed> {
    let (Some(index), Some(flags), Some(rest)) = (
        u32_at(payload, 4),
        u32_at(payload, 8),
        payload.get(IFINFOMSG_LEN..),
    ) else {
        return Err(Malformed("link message shorter than ifinfomsg"));
    };
    let mut link = Link {
        index,
        name: String::new(),
        flags,
        master: None,
        kind: None,
        alias: None,
    };
    for a in attrs(rest) {
        let (kind, p) = a?;
        match kind {
            IFLA_IFNAME => link.name = text(p, IFNAME_MAX)?,
            IFLA_MASTER => link.master = Some(u32_at(p, 0).ok_or(Malformed("short IFLA_MASTER"))?),
            IFLA_IFALIAS => link.alias = Some(text(p, IFALIAS_MAX)?),
            IFLA_LINKINFO => {
                for a in attrs(p) {
                    let (kind, p) = a?;
                    if kind == IFLA_INFO_KIND {
                        link.kind = Some(text(p, 64)?);
                    }
                }
            }
            _ => {}
        }
    }
    if link.name.is_empty() {
        return Err(Malformed("link without a name"));
    }
    Ok(link)
}

/// An IPv4 address of an interface, from `RTM_NEWADDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub prefix: u8,
    pub local: Ipv4Addr,
}

/// An IPv4 address; `None` for another family's.
fn parse_addr(payload: &[u8]) -> Result<Option<Addr>, Malformed> {
    let (Some(&family), Some(&prefix), Some(index), Some(rest)) = (
        payload.first(),
        payload.get(1),
        u32_at(payload, 4),
        payload.get(IFADDRMSG_LEN..),
    ) else {
        return Err(Malformed("address message shorter than ifaddrmsg"));
    };
    if family != AF_INET {
        return Ok(None);
    }
    if prefix > 32 {
        return Err(Malformed("IPv4 prefix over 32"));
    }
    let (mut local, mut address) = (None, None);
    for a in attrs(rest) {
        let (kind, p) = a?;
        let ip = || ipv4(p).ok_or(Malformed("IPv4 address not 4 bytes"));
        match kind {
            IFA_LOCAL => local = Some(ip()?),
            IFA_ADDRESS => address = Some(ip()?),
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's
    // on a point-to-point link, and the same as IFA_LOCAL elsewhere.
    match local.or(address) {
        Some(local) => Ok(Some(Addr {
            index,
            prefix,
            local,
        })),
        None => Err(Malformed("address message without an address")),
    }
}

/// An IPv4 route, from `RTM_NEWROUTE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The routing table: 254 main, 255 local, ...
    pub table: u32,
    /// The destination's network (0.0.0.0 for the default route).
    pub dst: Ipv4Addr,
    pub dst_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// The interface it leaves by.
    pub oif: Option<u32>,
    /// `RTN_*`: 1 unicast, 2 local, 3 broadcast, 6 blackhole, ...
    pub kind: u8,
}

/// An IPv4 route; `None` for another family's.
fn parse_route(payload: &[u8]) -> Result<Option<Route>, Malformed> {
    let (Some(&family), Some(&dst_len), Some(&table), Some(&kind), Some(rest)) = (
        payload.first(),
        payload.get(1),
        payload.get(4),
        payload.get(7),
        payload.get(RTMSG_LEN..),
    ) else {
        return Err(Malformed("route message shorter than rtmsg"));
    };
    if family != AF_INET {
        return Ok(None);
    }
    if dst_len > 32 {
        return Err(Malformed("IPv4 prefix over 32"));
    }
    let mut route = Route {
        table: table.into(),
        dst: Ipv4Addr::UNSPECIFIED,
        dst_len,
        gateway: None,
        oif: None,
        kind,
    };
    for a in attrs(rest) {
        let (kind, p) = a?;
        let ip = || ipv4(p).ok_or(Malformed("IPv4 address not 4 bytes"));
        let u32 = || u32_at(p, 0).ok_or(Malformed("short u32 attribute"));
        match kind {
            RTA_DST => route.dst = ip()?,
            RTA_GATEWAY => route.gateway = Some(ip()?),
            RTA_OIF => route.oif = Some(u32()?),
            RTA_TABLE => route.table = u32()?,
            _ => {}
        }
    }
    Ok(Some(route))
}

/// The errno of an `NLMSG_ERROR` (0 for an acknowledgement) or of an
/// `NLMSG_DONE` that has one.
fn error_code(payload: &[u8]) -> Result<i32, Malformed> {
    u32_at(payload, 0)
        .map(|v| v as i32)
        .ok_or(Malformed("error message without its code"))
}

// ---------------------------------------------------------------------------
// The socket

/// A `NETLINK_ROUTE` socket with its receive buffer.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    rx: Vec<u8>,
}

impl Netlink {
    /// `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)`, bound
    /// to a port the kernel picks, acting on the calling thread's network
    /// namespace.
    pub fn open() -> Result<Netlink, Error> {
        let os =
            |e: rustix::io::Errno| Error::new("open socket", Cause::Os(crate::sys::io_error(e)));
        let fd = rnet::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            rnet::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(os)?;
        rnet::bind(&fd, &SocketAddrNetlink::new(0, 0)).map_err(os)?;
        rnet::sockopt::set_socket_timeout(&fd, rnet::sockopt::Timeout::Recv, Some(ANSWER_TIMEOUT))
            .map_err(os)?;
        Ok(Netlink {
            fd,
            seq: 0,
            rx: vec![0; RECEIVE_MAX],
        })
    }

    /// Sends `req` and reads its answers: each message that is not the
    /// final one is given to `each`. The final one is the acknowledgement
    /// (`NLMSG_ERROR`), or for a dump `NLMSG_DONE`. Returns whether the
    /// kernel marked the answer inconsistent (`NLM_F_DUMP_INTR`).
    fn call(
        &mut self,
        op: &dyn Fn() -> String,
        req: &mut Request,
        mut each: impl FnMut(u16, &[u8]) -> Result<(), Malformed>,
    ) -> Result<bool, Error> {
        let fail = |cause| Error::new(op(), cause);
        let os = |e| fail(Cause::Os(crate::sys::io_error(e)));
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = req.finish(seq).ok_or_else(|| fail(Cause::TooLong))?;
        while let Err(e) = rnet::send(&self.fd, bytes, rnet::SendFlags::empty()) {
            if e != rustix::io::Errno::INTR {
                return Err(os(e));
            }
        }
        let mut interrupted = false;
        loop {
            let (n, full) = match rnet::recv(&self.fd, &mut self.rx[..], rnet::RecvFlags::TRUNC) {
                Err(rustix::io::Errno::INTR) => continue,
                other => other.map_err(os)?,
            };
            if full > n {
                return Err(fail(Cause::Truncated));
            }
            for m in messages(&self.rx[..n]) {
                let (h, payload) = m.map_err(|m| fail(Cause::Malformed(m)))?;
                if h.seq != seq {
                    continue;
                }
                interrupted |= h.flags & NLM_F_DUMP_INTR != 0;
                let code = match h.kind {
                    NLMSG_ERROR => error_code(payload),
                    // A dump's end may carry the errno that cut it short.
                    NLMSG_DONE => Ok(error_code(payload).unwrap_or(0)),
                    kind => {
                        each(kind, payload).map_err(|m| fail(Cause::Malformed(m)))?;
                        continue;
                    }
                };
                return match code.map_err(|m| fail(Cause::Malformed(m)))? {
                    0 => Ok(interrupted),
                    code => Err(fail(Cause::Os(io::Error::from_raw_os_error(
                        code.saturating_neg(),
                    )))),
                };
            }
        }
    }

    /// A request acknowledged, with no answer of its own.
    fn ack(&mut self, op: &dyn Fn() -> String, mut req: Request) -> Result<(), Error> {
        self.call(op, &mut req, |_, _| Ok(())).map(drop)
    }

    /// A dump (`NLM_F_DUMP`) of messages of type `want`, each parsed by
    /// `parse`; read again when the kernel says the table changed meanwhile.
    fn dump<T>(
        &mut self,
        op: &dyn Fn() -> String,
        make: impl Fn() -> Request,
        want: u16,
        parse: impl Fn(&[u8]) -> Result<Option<T>, Malformed>,
    ) -> Result<Vec<T>, Error> {
        for _ in 0..DUMP_TRIES {
            let mut out = Vec::new();
            let mut req = make();
            let interrupted = self.call(op, &mut req, |kind, payload| {
                if kind == want {
                    out.extend(parse(payload)?);
                }
                Ok(())
            })?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(Error::new(op(), Cause::Interrupted))
    }

    /// The link named `name`, if there is one (`RTM_GETLINK`).
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, Error> {
        let op = || format!("find link {name}");
        check_name(&op(), name)?;
        let mut req = Request::new(RTM_GETLINK, NLM_F_ACK);
        req.put(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        req.attr_str(IFLA_IFNAME, name);
        let mut found = None;
        let r = self.call(&op, &mut req, |kind, payload| {
            if kind == RTM_NEWLINK {
                found = Some(parse_link(payload)?);
            }
            Ok(())
        });
        match r {
            Ok(_) => Ok(found),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The index of the link named `name`, if there is one.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, Error> {
        Ok(self.link(name)?.map(|l| l.index))
    }

    /// Makes a bridge named `name`, down (`ip link add NAME type bridge`).
    pub fn add_bridge(&mut self, name: &str) -> Result<(), Error> {
        let op = || format!("add bridge {name}");
        check_name(&op(), name)?;
        let mut req = Request::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        req.put(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        req.attr_str(IFLA_IFNAME, name);
        let info = req.nest(IFLA_LINKINFO);
        req.attr_str(IFLA_INFO_KIND, "bridge");
        req.end(info);
        self.ack(&op, req)
    }

    /// Makes a veth pair: `host` here, and its peer straight in the network
    /// namespace `peer_netns` under the name `peer` (`ip link add HOST type
    /// veth peer name PEER netns FD`). Both ends are down.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_netns: BorrowedFd<'_>,
    ) -> Result<(), Error> {
        let op = || format!("add veth {host}");
        check_name(&op(), host)?;
        check_name(&op(), peer)?;
        let mut req = Request::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        req.put(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        req.attr_str(IFLA_IFNAME, host);
        let info = req.nest(IFLA_LINKINFO);
        req.attr_str(IFLA_INFO_KIND, "veth");
        let data = req.nest(IFLA_INFO_DATA);
        let peer_at = req.nest(VETH_INFO_PEER);
        req.put(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        req.attr_str(IFLA_IFNAME, peer);
        req.attr_u32(IFLA_NET_NS_FD, peer_netns.as_raw_fd() as u32);
        req.end(peer_at);
        req.end(data);
        req.end(info);
        self.ack(&op, req)
    }

    /// Sets link `index` up (`ip link set dev X up`).
    pub fn set_up(&mut self, index: u32) -> Result<(), Error> {
        let op = || format!("set link #{index} up");
        let mut req = Request::new(RTM_NEWLINK, NLM_F_ACK);
        req.put(&ifinfomsg(AF_UNSPEC, index, IFF_UP, IFF_UP));
        self.ack(&op, req)
    }

    /// Makes link `index` a port of bridge `master` (`ip link set dev X
    /// master BR`).
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<(), Error> {
        let op = || format!("set link #{index} master #{master}");
        let mut req = Request::new(RTM_NEWLINK, NLM_F_ACK);
        req.put(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        req.attr_u32(IFLA_MASTER, master);
        self.ack(&op, req)
    }

    /// Sets link `index`'s alias (`ip link set dev X alias TEXT`), which
    /// link dumps show: the name of who made it.
    pub fn set_alias(&mut self, index: u32, alias: &str) -> Result<(), Error> {
        let op = || format!("set link #{index} alias {alias}");
        if alias.len() > IFALIAS_MAX || alias.contains('\0') {
            return Err(Error::new(op(), Cause::TooLong));
        }
        let mut req = Request::new(RTM_NEWLINK, NLM_F_ACK);
        req.put(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        req.attr(IFLA_IFALIAS, alias.as_bytes());
        self.ack(&op, req)
    }

    /// Deletes the link named `name` (`ip link del NAME`); for a veth, both
    /// ends go. `false` if there was none.
    pub fn delete_link(&mut self, name: &str) -> Result<bool, Error> {
        let op = || format!("delete link {name}");
        check_name(&op(), name)?;
        let mut req = Request::new(RTM_DELLINK, NLM_F_ACK);
        req.put(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        req.attr_str(IFLA_IFNAME, name);
        gone_is_false(self.ack(&op, req), libc::ENODEV)
    }

    /// Deletes link `index`. `false` if there was none.
    pub fn delete_link_index(&mut self, index: u32) -> Result<bool, Error> {
        let op = || format!("delete link #{index}");
        let mut req = Request::new(RTM_DELLINK, NLM_F_ACK);
        req.put(&ifinfomsg(AF_UNSPEC, index, 0, 0));
        gone_is_false(self.ack(&op, req), libc::ENODEV)
    }

    /// Adds `ip/prefix` to link `index`, with its subnet's broadcast
    /// address (`ip addr add IP/PREFIX brd + dev X`).
    pub fn add_addr(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), Error> {
        let op = || format!("add address {ip}/{prefix} to link #{index}");
        let mut req = Request::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        req.put(&ifaddrmsg(prefix.min(32), index));
        req.attr(IFA_LOCAL, &ip.octets());
        req.attr(IFA_ADDRESS, &ip.octets());
        if prefix < 31 {
            let host_bits = u32::MAX >> prefix;
            let brd = Ipv4Addr::from(u32::from(ip) | host_bits);
            req.attr(IFA_BROADCAST, &brd.octets());
        }
        self.ack(&op, req)
    }

    /// Removes `ip/prefix` from link `index`. `false` if it had none.
    pub fn delete_addr(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<bool, Error> {
        let op = || format!("delete address {ip}/{prefix} from link #{index}");
        let mut req = Request::new(RTM_DELADDR, NLM_F_ACK);
        req.put(&ifaddrmsg(prefix.min(32), index));
        req.attr(IFA_LOCAL, &ip.octets());
        gone_is_false(self.ack(&op, req), libc::EADDRNOTAVAIL)
    }

    /// Adds the default route via `gateway` to the main table (`ip route
    /// add default via GW`).
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<(), Error> {
        let op = || format!("add default route via {gateway}");
        let mut req = Request::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        req.put(&rtmsg(0));
        req.attr(RTA_GATEWAY, &gateway.octets());
        self.ack(&op, req)
    }

    /// Every link (`ip link show`).
    pub fn links(&mut self) -> Result<Vec<Link>, Error> {
        let make = || {
            let mut req = Request::new(RTM_GETLINK, NLM_F_DUMP);
            req.put(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
            req
        };
        self.dump(&|| "list links".into(), make, RTM_NEWLINK, |p| {
            parse_link(p).map(Some)
        })
    }

    /// Every IPv4 address of every link (`ip -4 addr show`).
    pub fn addrs(&mut self) -> Result<Vec<Addr>, Error> {
        let make = || {
            let mut req = Request::new(RTM_GETADDR, NLM_F_DUMP);
            req.put(&ifaddrmsg(0, 0));
            req
        };
        self.dump(&|| "list addresses".into(), make, RTM_NEWADDR, parse_addr)
    }

    /// Every IPv4 route of every table (`ip -4 route show table all`).
    pub fn routes(&mut self) -> Result<Vec<Route>, Error> {
        let make = || {
            let mut req = Request::new(RTM_GETROUTE, NLM_F_DUMP);
            let mut msg = [0; RTMSG_LEN];
            msg[0] = AF_INET;
            req.put(&msg);
            req
        };
        self.dump(&|| "list routes".into(), make, RTM_NEWROUTE, parse_route)
    }
}

/// `Ok(true)` for done, `Ok(false)` for the errno that says it was not
/// there to undo.
fn gone_is_false(r: Result<(), Error>, gone: i32) -> Result<bool, Error> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.errno() == Some(gone) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as the kernel writes one: header, fixed part, attributes.
    fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend(((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend(kind.to_ne_bytes());
        m.extend(flags.to_ne_bytes());
        m.extend(seq.to_ne_bytes());
        m.extend(0u32.to_ne_bytes());
        m.extend(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend(((4 + payload.len()) as u16).to_ne_bytes());
        a.extend(kind.to_ne_bytes());
        a.extend(payload);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn link_body(index: u32, name: &str, extra: &[u8]) -> Vec<u8> {
        let mut b = ifinfomsg(AF_UNSPEC, index, IFF_UP, 0).to_vec();
        b.extend(attr(IFLA_IFNAME, format!("{name}\0").as_bytes()));
        b.extend(extra);
        b
    }

    #[test]
    fn a_veth_request_is_laid_out_as_the_kernel_reads_it() {
        let mut req = Request::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        req.put(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        req.attr_str(IFLA_IFNAME, "nc0h");
        let info = req.nest(IFLA_LINKINFO);
        req.attr_str(IFLA_INFO_KIND, "veth");
        let data = req.nest(IFLA_INFO_DATA);
        let peer = req.nest(VETH_INFO_PEER);
        req.put(&ifinfomsg(AF_UNSPEC, 0, 0, 0));
        req.attr_str(IFLA_IFNAME, "eth0");
        req.attr_u32(IFLA_NET_NS_FD, 7);
        req.end(peer);
        req.end(data);
        req.end(info);
        let bytes = req.finish(42).unwrap().to_vec();

        assert_eq!(bytes.len() % 4, 0);
        let mut all = messages(&bytes);
        let (h, payload) = all.next().unwrap().unwrap();
        assert!(all.next().is_none());
        assert_eq!(h.kind, RTM_NEWLINK);
        assert_eq!(h.seq, 42);
        assert_eq!(
            h.flags,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        // Walk it back the way the kernel does, nest by nest.
        let top: Vec<_> = attrs(&payload[IFINFOMSG_LEN..])
            .map(Result::unwrap)
            .collect();
        assert_eq!(top[0], (IFLA_IFNAME, &b"nc0h\0"[..]));
        assert_eq!(top[1].0, IFLA_LINKINFO);
        let info: Vec<_> = attrs(top[1].1).map(Result::unwrap).collect();
        assert_eq!(info[0], (IFLA_INFO_KIND, &b"veth\0"[..]));
        assert_eq!(info[1].0, IFLA_INFO_DATA);
        let data: Vec<_> = attrs(info[1].1).map(Result::unwrap).collect();
        assert_eq!(data.len(), 1);
        assert_eq!(data[0].0, VETH_INFO_PEER);
        let peer = data[0].1;
        assert_eq!(&peer[..IFINFOMSG_LEN], &[0; IFINFOMSG_LEN]);
        let peer: Vec<_> = attrs(&peer[IFINFOMSG_LEN..]).map(Result::unwrap).collect();
        assert_eq!(peer[0], (IFLA_IFNAME, &b"eth0\0"[..]));
        assert_eq!(peer[1], (IFLA_NET_NS_FD, &7u32.to_ne_bytes()[..]));
    }

    #[test]
    fn a_request_that_does_not_fit_is_refused_not_cut() {
        let mut req = Request::new(RTM_NEWLINK, 0);
        for _ in 0..REQUEST_MAX / 8 {
            req.attr_u32(1, 1);
        }
        assert!(req.finish(1).is_none());
        let mut req = Request::new(RTM_NEWLINK, 0);
        req.attr(1, &[0; REQUEST_MAX]);
        assert!(req.finish(1).is_none());
    }

    #[test]
    fn interface_names() {
        for good in ["eth0", "nc1a2b3c4d0", "br-lan", "a", "123456789012345"] {
            assert!(valid_ifname(good), "{good}");
        }
        for bad in [
            "",
            "1234567890123456",
            "a/b",
            "a b",
            "eth0:1",
            ".",
            "..",
            "a\0",
        ] {
            assert!(!valid_ifname(bad), "{bad:?}");
        }
    }

    #[test]
    fn links_parse() {
        let mut info = attr(IFLA_INFO_KIND, b"veth\0");
        info.extend(attr(IFLA_INFO_DATA, &[]));
        let mut extra = attr(IFLA_LINKINFO, &info);
        extra.extend(attr(IFLA_MASTER, &9u32.to_ne_bytes()));
        extra.extend(attr(IFLA_IFALIAS, b"nanoctr:web"));
        extra.extend(attr(999, &[1, 2, 3]));
        let body = link_body(5, "nc1a2b3c4d0", &extra);
        let link = parse_link(&body).unwrap();
        assert_eq!(
            link,
            Link {
                index: 5,
                name: "nc1a2b3c4d0".into(),
                flags: IFF_UP,
                master: Some(9),
                kind: Some("veth".into()),
                alias: Some("nanoctr:web".into()),
            }
        );
        let plain = parse_link(&link_body(1, "lo", &[])).unwrap();
        assert_eq!((plain.kind, plain.master, plain.alias), (None, None, None));
    }

    #[test]
    fn addresses_and_routes_parse() {
        let mut body = ifaddrmsg(24, 3).to_vec();
        body.extend(attr(IFA_ADDRESS, &[10, 88, 0, 7]));
        body.extend(attr(IFA_LOCAL, &[10, 88, 0, 7]));
        let a = parse_addr(&body).unwrap().unwrap();
        assert_eq!(
            (a.index, a.prefix, a.local),
            (3, 24, Ipv4Addr::new(10, 88, 0, 7))
        );
        let mut v6 = body.clone();
        v6[0] = 10; // AF_INET6
        assert_eq!(parse_addr(&v6), Ok(None));

        let mut body = rtmsg(24).to_vec();
        body.extend(attr(RTA_DST, &[192, 168, 1, 0]));
        body.extend(attr(RTA_OIF, &2u32.to_ne_bytes()));
        body.extend(attr(RTA_TABLE, &254u32.to_ne_bytes()));
        let r = parse_route(&body).unwrap().unwrap();
        assert_eq!(r.dst, Ipv4Addr::new(192, 168, 1, 0));
        assert_eq!(
            (r.dst_len, r.oif, r.table, r.gateway),
            (24, Some(2), 254, None)
        );
        let mut body = rtmsg(0).to_vec();
        body.extend(attr(RTA_GATEWAY, &[192, 168, 1, 1]));
        let r = parse_route(&body).unwrap().unwrap();
        assert_eq!((r.dst, r.dst_len), (Ipv4Addr::UNSPECIFIED, 0));
        assert_eq!(r.gateway, Some(Ipv4Addr::new(192, 168, 1, 1)));
    }

    #[test]
    fn several_messages_in_one_datagram_and_the_ack() {
        let mut dgram = message(RTM_NEWLINK, 2, 7, &link_body(1, "lo", &[]));
        dgram.extend(message(RTM_NEWLINK, 2, 7, &link_body(2, "eth0", &[])));
        dgram.extend(message(NLMSG_DONE, 2, 7, &0i32.to_ne_bytes()));
        let all: Vec<_> = messages(&dgram).map(Result::unwrap).collect();
        assert_eq!(all.len(), 3);
        assert_eq!(parse_link(all[1].1).unwrap().name, "eth0");
        assert_eq!(all[2].0.kind, NLMSG_DONE);

        let mut err = (-libc::EEXIST).to_ne_bytes().to_vec();
        err.extend(&[0; NLMSG_HDRLEN]); // the request's header, echoed
        let ack = message(NLMSG_ERROR, 0, 8, &err);
        let (h, payload) = messages(&ack).next().unwrap().unwrap();
        assert_eq!(h.kind, NLMSG_ERROR);
        assert_eq!(error_code(payload), Ok(-libc::EEXIST));
        let e = Error::new(
            "add veth nc1a2b3c4d0",
            Cause::Os(io::Error::from_raw_os_error(libc::EEXIST)),
        );
        assert_eq!(e.to_string(), "netlink: add veth nc1a2b3c4d0: File exists");
        assert_eq!(e.errno(), Some(libc::EEXIST));
    }

    /// Runs every parser over `bytes` as the kernel's answer, as far as it
    /// goes: whatever it is, nothing panics or reads out of bounds.
    fn parse_everything(bytes: &[u8]) {
        for m in messages(bytes) {
            let Ok((_, payload)) = m else { break };
            let _ = parse_link(payload);
            let _ = parse_addr(payload);
            let _ = parse_route(payload);
            let _ = error_code(payload);
        }
        let _ = parse_link(bytes);
        let _ = parse_addr(bytes);
        let _ = parse_route(bytes);
        for a in attrs(bytes) {
            if a.is_err() {
                break;
            }
        }
    }

    fn sample_dump() -> Vec<u8> {
        let mut info = attr(IFLA_INFO_KIND, b"bridge\0");
        info.extend(attr(IFLA_INFO_DATA, &attr(1, &[0; 8])));
        let mut dgram = message(
            RTM_NEWLINK,
            2,
            1,
            &link_body(4, "nc0", &attr(IFLA_LINKINFO, &info)),
        );
        let mut addr = ifaddrmsg(24, 4).to_vec();
        addr.extend(attr(IFA_LOCAL, &[10, 88, 0, 1]));
        dgram.extend(message(RTM_NEWADDR, 2, 1, &addr));
        let mut route = rtmsg(24).to_vec();
        route.extend(attr(RTA_DST, &[10, 88, 0, 0]));
        route.extend(attr(RTA_OIF, &4u32.to_ne_bytes()));
        dgram.extend(message(RTM_NEWROUTE, 2, 1, &route));
        dgram.extend(message(NLMSG_DONE, 2, 1, &0i32.to_ne_bytes()));
        dgram
    }

    #[test]
    fn truncated_answers_are_errors_not_panics() {
        let dgram = sample_dump();
        for cut in 0..dgram.len() {
            parse_everything(&dgram[..cut]);
        }
        // A message cut inside its body is an error, not a shorter message.
        let first_len = u32_at(&dgram, 0).unwrap() as usize;
        let mut it = messages(&dgram[..first_len - 1]);
        assert!(matches!(it.next(), Some(Err(_))));
        assert!(it.next().is_none());
        // An attribute cut short is an error too.
        let (_, payload) = messages(&dgram).next().unwrap().unwrap();
        assert!(parse_link(&payload[..payload.len() - 2]).is_err());
        assert!(parse_link(&payload[..IFINFOMSG_LEN - 1]).is_err());
    }

    #[test]
    fn corrupted_answers_are_errors_not_panics() {
        let dgram = sample_dump();
        // Every byte set to values that break lengths (0, 1, 3, 0xff, ...).
        for at in 0..dgram.len() {
            for v in [0u8, 1, 3, 4, 0x7f, 0x80, 0xfe, 0xff] {
                let mut bad = dgram.clone();
                bad[at] = v;
                parse_everything(&bad);
            }
        }
        // A pseudo-random stream of garbage, deterministic.
        let mut x = 0x2545_f491_u32;
        for len in 0..512 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            parse_everything(&junk);
        }
        // Lengths that claim too much, or less than a header.
        let mut huge = dgram.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(matches!(messages(&huge).next(), Some(Err(_))));
        let mut tiny = dgram.clone();
        tiny[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(matches!(messages(&tiny).next(), Some(Err(_))));
        let zero_attr = [0u8, 0, 3, 0];
        assert!(matches!(attrs(&zero_attr).next(), Some(Err(_))));
        // An IPv4 address of the wrong size, a prefix over 32.
        let mut addr = ifaddrmsg(24, 4).to_vec();
        addr.extend(attr(IFA_LOCAL, &[10, 88, 0]));
        assert!(parse_addr(&addr).is_err());
        let mut route = rtmsg(40).to_vec();
        route.extend(attr(RTA_DST, &[10, 88, 0, 0]));
        assert!(parse_route(&route).is_err());
        // A name that is not text, or longer than any interface's.
        assert!(parse_link(&link_body(1, "\u{fffd}", &[])).is_ok());
        let mut body = ifinfomsg(AF_UNSPEC, 1, 0, 0).to_vec();
        body.extend(attr(IFLA_IFNAME, &[0xff, 0xfe, 0]));
        assert!(parse_link(&body).is_err());
        let mut body = ifinfomsg(AF_UNSPEC, 1, 0, 0).to_vec();
        body.extend(attr(IFLA_IFNAME, b"0123456789abcdef\0"));
        assert!(parse_link(&body).is_err());
    }
}
