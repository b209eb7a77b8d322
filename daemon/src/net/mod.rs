//! Container networking: the built-in bridge's kernel plumbing, done from
//! inside the program over netlink, never by running `ip`.
//!
//! The parts, from the bottom:
//!
//! - [`netlink`]: a minimal rtnetlink client: links (bridge, veth pair with
//!   its peer put straight into a namespace), addresses, the default route,
//!   and dumps of links, addresses and routes parsed by total functions.
//! - [`netns`]: network namespaces as files (a bind mount of a thread's
//!   `/proc/thread-self/ns/net`), made, removed, and entered by the
//!   calling thread, which goes back at once.
//! - [`ipam`]: IPv4 addresses on a subnet, a function of the container id
//!   first, kept as one file per address on persistent storage so that
//!   an address is stable across restarts and never given twice.
//! - [`bridge`]: one container attached to a bridge and detached again: the
//!   bridge made if missing, a veth pair whose container end is `eth0` with
//!   the address and a default route via the bridge, and everything made
//!   unmade on failure; `resolv.conf` and `/etc/hosts` contents for the
//!   container.
//!
//! A container with `net=bridge` runs in a namespace file made by
//! [`netns::create`] in its state dir; the runtime is given it in the
//! derived `config.json` as the `linux.namespaces` entry
//! `{"type": "network", "path": FILE}`. [`bridge::Bridge::attach`] is then
//! called before `runc create`, [`bridge::Bridge::detach`] and
//! [`netns::remove`] at delete. Every link made for a container carries
//! the alias `nanoctr:ID`, so that detach and recovery find what is a
//! container's from the kernel alone, after a `kill -9` too.
//!
//! - [`cni`]: networks of CNI plugins (spec 1.0): a network's configuration
//!   found by name in `/etc/cni/net.d`, its chain run for one container
//!   with ADD, DEL and CHECK, and `nanoctr cni-exec`, which runs it in a
//!   child process so that the daemon never waits on a plugin; the result
//!   of ADD is kept in a file for DEL and CHECK.
//!
//! NAT and published ports of the bridge are nftables rules the daemon
//! makes (`tasks/net.rs`).

pub mod bridge;
pub mod cni;
pub mod ipam;
pub mod netlink;
pub mod netns;

/// FNV-1a, 32 bits: the stable hash that names a container's address slot
/// and its host-side veth.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a_is_the_published_one() {
        // Test vectors of the FNV reference (draft-eastlake-fnv).
        assert_eq!(super::fnv1a(b""), 0x811c_9dc5);
        assert_eq!(super::fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(super::fnv1a(b"foobar"), 0xbf9c_f968);
    }
}
