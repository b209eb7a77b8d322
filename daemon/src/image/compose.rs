//! A bundle's rootfs, composed from the store's layers bottom to top as
//! the image spec's `layer.md` applies changesets: a whiteout `.wh.NAME`
//! removes NAME from the layers below, `.wh..wh..opq` empties its
//! directory of them, and every other file is linked from the store
//! (a hard link: one copy on flash, however many bundles use it; a copy
//! when the bundle is on another filesystem). Directories are made anew
//! with their layer's owner, mode, xattrs and time.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps};

use super::apply::c;
use super::{invalid, Result};

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// One layer as the store holds it: its tree, and the directories it
/// holds only as parents of its entries.
pub struct Tree<'a> {
    pub dir: PathBuf,
    /// Sorted.
    pub implicit: &'a [Vec<u8>],
    /// For messages: the layer's digest.
    pub name: String,
}

/// What composing did: files linked, and files copied (another
/// filesystem).
#[derive(Debug, Default)]
pub struct Composed {
    pub linked: u64,
    pub copied: u64,
}

/// Composes `layers` into the empty directory `rootfs`.
pub fn compose(layers: &[Tree], rootfs: &Path) -> Result<Composed> {
    let mut done = Composed::default();
    // Each directory's time, from the topmost layer that names it.
    let mut times: Vec<(Vec<u8>, (i64, i64))> = Vec::new();
    for layer in layers {
        let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
        while let Some(rel) = stack.pop() {
            let from = join(&layer.dir, &rel);
            let to = join(rootfs, &rel);
            let io = |what: &str, e: io::Error| {
                invalid(format!(
                    "layer {}: {:?}: {what}: {e}",
                    layer.name,
                    String::from_utf8_lossy(&rel)
                ))
            };
            if layer.implicit.binary_search(&rel).is_err() {
                let meta = std::fs::symlink_metadata(&from).map_err(|e| io("reading", e))?;
                dir_meta(&from, &to).map_err(|e| io("setting its owner and mode", e))?;
                times.push((rel.clone(), (meta.mtime(), meta.mtime_nsec())));
            }
            let mut names: Vec<Vec<u8>> = Vec::new();
            for entry in std::fs::read_dir(&from).map_err(|e| io("listing", e))? {
                let entry = entry.map_err(|e| io("listing", e))?;
                names.push(entry.file_name().as_bytes().to_vec());
            }
            names.sort();
            // What the layer hides of the layers below goes first.
            if names.iter().any(|n| n == OPAQUE) {
                for below in std::fs::read_dir(&to).map_err(|e| io("listing", e))? {
                    let below = below.map_err(|e| io("listing", e))?;
                    remove(&below.path()).map_err(|e| io("emptying an opaque directory", e))?;
                }
            }
            for n in names
                .iter()
                .filter(|n| n.starts_with(WHITEOUT) && *n != OPAQUE)
            {
                let hidden = to.join(OsStr::from_bytes(&n[WHITEOUT.len()..]));
                match std::fs::symlink_metadata(&hidden) {
                    Ok(_) => remove(&hidden).map_err(|e| io("applying a whiteout", e))?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io("applying a whiteout", e)),
                }
            }
            for n in names.iter().filter(|n| !n.starts_with(WHITEOUT)) {
                let mut child = rel.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(n);
                let src = from.join(OsStr::from_bytes(n));
                let dst = to.join(OsStr::from_bytes(n));
                let shown = || String::from_utf8_lossy(&child).into_owned();
                let err = |what: &str, e: io::Error| {
                    invalid(format!("layer {}: {:?}: {what}: {e}", layer.name, shown()))
                };
                let smeta = std::fs::symlink_metadata(&src).map_err(|e| err("reading", e))?;
                let dmeta = std::fs::symlink_metadata(&dst).ok();
                if smeta.is_dir() {
                    match dmeta {
                        Some(d) if d.is_dir() => {}
                        Some(d)
                            if d.file_type().is_symlink()
                                && layer.implicit.binary_search(&child).is_ok() =>
                        {
                            let first = std::fs::read_dir(&src)
                                .ok()
                                .and_then(|mut r| r.next())
                                .and_then(|e| e.ok())
                                .map(|e| e.file_name().to_string_lossy().into_owned())
                                .unwrap_or_default();
                            return Err(invalid(format!(
                                "layer {}: entry \"{}/{first}\": {:?} is a symlink an earlier layer put there, and nothing is written through it",
                                layer.name,
                                shown(),
                                shown()
                            )));
                        }
                        Some(_) => {
                            remove(&dst).map_err(|e| err("replacing", e))?;
                            std::fs::create_dir(&dst).map_err(|e| err("making", e))?;
                        }
                        None => {
                            std::fs::create_dir(&dst).map_err(|e| err("making", e))?;
                            std::fs::set_permissions(&dst, PermissionsExt::from_mode(0o755))
                                .map_err(|e| err("making", e))?;
                        }
                    }
                    stack.push(child);
                    continue;
                }
                if dmeta.is_some() {
                    remove(&dst).map_err(|e| err("replacing", e))?;
                }
                match std::fs::hard_link(&src, &dst) {
                    Ok(()) => done.linked += 1,
                    Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                        copy(&src, &dst, &smeta).map_err(|e| err("copying", e))?;
                        done.copied += 1;
                    }
                    Err(e) => return Err(err("linking from the store", e)),
                }
            }
        }
    }
    // The last of each name is the topmost layer's.
    times.reverse();
    times.sort_by(|a, b| a.0.cmp(&b.0));
    times.dedup_by(|a, b| a.0 == b.0);
    for (rel, (secs, nanos)) in times {
        let t = Timespec {
            tv_sec: secs,
            tv_nsec: nanos as _,
        };
        let path = join(rootfs, &rel);
        // Gone, or a file now, by an upper layer's doing.
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        rfs::utimensat(
            rfs::CWD,
            c(path.as_os_str().as_bytes()).as_c_str(),
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| invalid(format!("{}: setting times: {e}", path.display())))?;
    }
    Ok(done)
}

fn join(root: &Path, rel: &[u8]) -> PathBuf {
    match rel.is_empty() {
        true => root.to_path_buf(),
        false => root.join(OsStr::from_bytes(rel)),
    }
}

/// Removes a file or a whole tree, never following a symlink.
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path)?.is_dir() {
        true => std::fs::remove_dir_all(path),
        false => std::fs::remove_file(path),
    }
}

fn open_dir(path: &Path) -> io::Result<rustix::fd::OwnedFd> {
    rfs::open(
        c(path.as_os_str().as_bytes()).as_c_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .io()
}

/// rustix's errors as std's.
pub trait Io<T> {
    fn io(self) -> io::Result<T>;
}

impl<T> Io<T> for rustix::io::Result<T> {
    fn io(self) -> io::Result<T> {
        self.map_err(crate::sys::io_error)
    }
}

fn owner(uid: u32, gid: u32) -> (Option<rfs::Uid>, Option<rfs::Gid>) {
    (Some(rfs::Uid::from_raw(uid)), Some(rfs::Gid::from_raw(gid)))
}

/// Owner, mode and xattrs of directory `from` onto directory `to`.
fn dir_meta(from: &Path, to: &Path) -> io::Result<()> {
    let src = open_dir(from)?;
    let dst = open_dir(to)?;
    let st = rfs::fstat(&src).io()?;
    let (u, g) = owner(st.st_uid, st.st_gid);
    rfs::fchown(&dst, u, g).io()?;
    rfs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777)).io()?;
    copy_xattrs(&src, &dst)
}

fn copy_xattrs(src: &rustix::fd::OwnedFd, dst: &rustix::fd::OwnedFd) -> io::Result<()> {
    let mut names = vec![0u8; 64 * 1024];
    let n = rfs::flistxattr(src, &mut names[..]).io()?;
    let mut value = vec![0u8; 64 * 1024];
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = c(name);
        let len = rfs::fgetxattr(src, name.as_c_str(), &mut value[..]).io()?;
        rfs::fsetxattr(
            dst,
            name.as_c_str(),
            &value[..len],
            rfs::XattrFlags::empty(),
        )
        .io()?;
    }
    Ok(())
}

/// A file copied whole with its owner, mode, xattrs and times, where a
/// hard link cannot reach.
fn copy(src: &Path, dst: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    let ft = meta.file_type();
    let dst_c = c(dst.as_os_str().as_bytes());
    let (u, g) = owner(meta.uid(), meta.gid());
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if ft.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(src)?, dst)?;
    } else if ft.is_file() {
        std::fs::copy(src, dst)?;
        let from = rfs::open(
            c(src.as_os_str().as_bytes()).as_c_str(),
            flags,
            Mode::empty(),
        )
        .io()?;
        let to = rfs::open(dst_c.as_c_str(), flags, Mode::empty()).io()?;
        rfs::fchown(&to, u, g).io()?;
        rfs::fchmod(&to, Mode::from_raw_mode(meta.mode() & 0o7777)).io()?;
        copy_xattrs(&from, &to)?;
    } else {
        let kind = rfs::FileType::from_raw_mode(meta.mode());
        let mode = Mode::from_raw_mode(meta.mode() & 0o7777);
        rfs::mknodat(rfs::CWD, dst_c.as_c_str(), kind, mode, meta.rdev()).io()?;
    }
    if !ft.is_file() {
        rfs::chownat(rfs::CWD, dst_c.as_c_str(), u, g, AtFlags::SYMLINK_NOFOLLOW).io()?;
    }
    let t = Timespec {
        tv_sec: meta.mtime(),
        tv_nsec: meta.mtime_nsec() as _,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rfs::utimensat(
        rfs::CWD,
        dst_c.as_c_str(),
        &times,
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .io()
}
