//! Network namespaces as files, made and entered by the calling thread,
//! which is always moved back.
//!
//! A namespace lives as long as something refers to it: a process in it,
//! a descriptor, or a bind mount of its `/proc/.../ns/net` link. [`create`]
//! makes one that outlives every process: the thread moves into a new
//! namespace (`unshare(CLONE_NEWNET)`), sets `lo` up there, bind-mounts its
//! `/proc/thread-self/ns/net` onto an empty file and goes back. The file
//! is then what `ip netns` makes under `/run/netns`, and what an OCI
//! runtime takes as a container's network namespace (`linux.namespaces`
//! entry `{"type": "network", "path": FILE}`). [`remove`] unmounts and
//! unlinks it; the namespace, and every interface in it, goes when its
//! last user does.
//!
//! Namespaces belong to threads, not processes: work inside one is done
//! by moving the calling thread there (`setns`) and back again as soon as
//! it is done ([`run_in`]), which the daemon's one thread can do between
//! two events. A thread that cannot go back aborts the process: it would
//! act on the wrong network from then on, and a restart repairs. A netlink
//! socket acts on the namespace it was made in for its whole life, so one
//! made inside ([`netlink_in`]) configures the namespace from anywhere.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::netlink::{self, Netlink};

/// `NSFS_MAGIC`: `statfs`'s type of a namespace file.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Why a namespace could not be made, removed or entered.
#[derive(Debug)]
pub struct Error {
    what: String,
    cause: Cause,
}

#[derive(Debug)]
pub enum Cause {
    Os(io::Error),
    Netlink(netlink::Error),
}

impl Error {
    fn os(what: impl Into<String>, err: io::Error) -> Error {
        Error {
            what: what.into(),
            cause: Cause::Os(err),
        }
    }

    pub fn cause(&self) -> &Cause {
        &self.cause
    }

    /// The errno of a system call that failed.
    pub fn errno(&self) -> Option<i32> {
        match &self.cause {
            Cause::Os(e) => e.raw_os_error(),
            Cause::Netlink(e) => e.errno(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Cause::Os(e) => write!(f, "{}: {e}", self.what),
            Cause::Netlink(e) => write!(f, "{}: {e}", self.what),
        }
    }
}

impl std::error::Error for Error {}

fn at(path: &Path, op: &str) -> String {
    format!("netns {}: {op}", path.display())
}

/// Makes a new network namespace, with `lo` up, bound to a new file at
/// `path` (whose directory must exist). A file already at `path` is
/// refused (`EEXIST`): a namespace left by a crash is [`remove`]d first.
/// On failure nothing is left.
pub fn create(path: &Path) -> Result<(), Error> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .map_err(|e| Error::os(at(path, "make the file"), e))?;
    let made = bind_new(path);
    if made.is_err() {
        let _ = fs::remove_file(path);
    }
    made
}

/// A new namespace, `lo` up, bound onto `path`; the thread back home.
fn bind_new(path: &Path) -> Result<(), Error> {
    let target =
        crate::store::statedir::c_path(path).map_err(|e| Error::os(at(path, "path"), e))?;
    away(|| {
        crate::sys::unshare_net().map_err(|e| Error::os(at(path, "unshare"), e))?;
        let lo_up = || -> Result<(), netlink::Error> {
            let mut nl = Netlink::open()?;
            match nl.link_index("lo")? {
                Some(lo) => nl.set_up(lo),
                None => Ok(()),
            }
        };
        lo_up().map_err(|e| Error {
            what: at(path, "set lo up"),
            cause: Cause::Netlink(e),
        })?;
        rustix::mount::mount_bind(c"/proc/thread-self/ns/net", target.as_c_str())
            .map_err(|e| Error::os(at(path, "bind mount"), crate::sys::io_error(e)))
    })
}

/// Runs `f`, which may move the calling thread to another network
/// namespace, and moves the thread back to the one it was in.
fn away<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let home = File::open("/proc/thread-self/ns/net")
        .map_err(|e| Error::os("netns: open this thread's namespace", e))?;
    let out = f();
    if setns(&home).is_err() {
        // Every later request would act on the wrong network.
        std::process::abort();
    }
    out
}

fn setns(ns: &File) -> Result<(), Error> {
    use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
    move_into_link_name_space(crate::sys::fd(ns), Some(LinkNameSpaceType::Network))
        .map_err(|e| Error::os("netns: setns", crate::sys::io_error(e)))
}

/// Unbinds and removes the namespace file at `path` made by [`create`]
/// (`umount2(MNT_DETACH)`, `unlink`). Whatever is already gone, the
/// mount or the file, is not an error.
pub fn remove(path: &Path) -> Result<(), Error> {
    use rustix::io::Errno;
    use rustix::mount::{unmount, UnmountFlags};
    let c = crate::store::statedir::c_path(path).map_err(|e| Error::os(at(path, "path"), e))?;
    // Twice bound is unbound twice; EINVAL says nothing is mounted there.
    for _ in 0..8 {
        match unmount(c.as_c_str(), UnmountFlags::DETACH) {
            Ok(()) => continue,
            Err(Errno::INVAL | Errno::NOENT) => break,
            Err(e) => return Err(Error::os(at(path, "unmount"), crate::sys::io_error(e))),
        }
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::os(at(path, "remove"), e)),
        _ => Ok(()),
    }
}

/// Opens the namespace file at `path` (read-only, close-on-exec). A path
/// that is not there, or a plain file with no namespace bound on it, is
/// an error.
pub fn open(path: &Path) -> Result<File, Error> {
    let f = File::open(path).map_err(|e| Error::os(at(path, "open"), e))?;
    let st = rustix::fs::fstatfs(crate::sys::fd(&f))
        .map_err(|e| Error::os(at(path, "statfs"), crate::sys::io_error(e)))?;
    // `f_type`'s integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    if st.f_type as i64 != NSFS_MAGIC {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "not a namespace file");
        return Err(Error::os(at(path, "open"), e));
    }
    Ok(f)
}

/// Runs `f` with the calling thread in the network namespace `ns` (an
/// open namespace file), then moves it back.
pub fn run_in<T>(ns: &File, f: impl FnOnce() -> T) -> Result<T, Error> {
    away(|| {
        setns(ns)?;
        Ok(f())
    })
}

/// A netlink socket that acts on the network namespace `ns`.
pub fn netlink_in(ns: &File) -> Result<Netlink, Error> {
    run_in(ns, Netlink::open)?.map_err(|e| Error {
        what: "netns: netlink socket".into(),
        cause: Cause::Netlink(e),
    })
}
