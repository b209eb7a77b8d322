//! A container's network, as its `net=` option says (`wire/net.rs`):
//! checked before anything is made, and written into its derived
//! `config.json`, never into the bundle.
//!
//! - `net=host`: no network namespace entry: the host's.
//! - `net=none`: a new namespace, made by the runtime: loopback only.
//! - `net=ns:PATH`: the namespace at PATH (a bind mount of one, as
//!   `ip netns add` makes under `/var/run/netns`), which must be one.

use std::path::{Path, PathBuf};

use crate::bundle::config::{Netns, Network};
use crate::wire::net::NetMode;
use crate::wire::proto::{Code, Error};
use crate::wire::Spec;

/// The filesystem of namespace files (`NSFS_MAGIC`).
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// What a container's derived config says about its network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetPlan {
    /// `None`: as the bundle says.
    pub ns: Option<NsPlan>,
    /// Files bound over the rootfs's: (destination, source).
    pub files: Vec<(&'static str, PathBuf)>,
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
        }
    }
}

/// Checks `spec`'s network before anything is made: a namespace to join
/// must be one.
pub(crate) fn check(spec: &Spec) -> Result<(), Error> {
    match &spec.net.mode {
        Some(NetMode::Ns(path)) => is_netns(Path::new(path)),
        Some(m @ (NetMode::Bridge(_) | NetMode::Cni(_))) => Err(Error::new(
            Code::Invalid,
            format!("net={}: not in this build", m.word()),
        )),
        _ => Ok(()),
    }
}

/// The plan for `spec`'s network, for the modes that need nothing made.
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
    }
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
        check(&spec("net=ns:/proc/self/ns/net")).unwrap();
        let e = check(&spec("net=ns:/nonexistent/netns")).unwrap_err();
        assert_eq!(e.code, Code::Invalid);
        assert!(e.message.contains("No such file"), "{}", e.message);
        let e = check(&spec("net=ns:/etc/hostname")).unwrap_err();
        assert!(e.message.contains("not a namespace"), "{}", e.message);
        check(&spec("net=host")).unwrap();
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
