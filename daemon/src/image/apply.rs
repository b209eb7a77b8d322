//! One layer's tar, applied into a fresh directory of the store: every
//! entry is created relative to a directory handle reached one component
//! at a time without following a symlink, so nothing the archive says can
//! write outside it. An absolute name, `..`, a path through a symlink or
//! a non-directory, and a hardlink to what the layer does not hold are
//! refused, naming the entry. Whiteouts (`.wh.NAME`, `.wh..wh..opq`) are
//! kept as the files they are; the rootfs is composed from the layers
//! (`compose.rs`).

use std::ffi::{CStr, CString};
use std::io::Write;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::tar::{self, Entry, Kind};
use super::{full, invalid, Result};

/// What applying a layer found and made.
#[derive(Debug, Default)]
pub struct Applied {
    /// Bytes of regular files written.
    pub bytes: u64,
    pub entries: u64,
    /// Directories made only because an entry below them named them
    /// (the empty name: the layer's root, when no `./` entry set it).
    pub implicit: Vec<Vec<u8>>,
}

struct Layer<'a> {
    root: OwnedFd,
    root_path: &'a Path,
    /// The last parent reached, by its components joined with '/'.
    cache: Option<(Vec<u8>, OwnedFd)>,
    /// Sorted when the layer is done.
    implicit: Vec<Vec<u8>>,
    dirs: Vec<(Vec<u8>, (i64, u32))>,
}

pub fn c(b: &[u8]) -> CString {
    // Names with a NUL byte are refused by the tar reader.
    CString::new(b).unwrap_or_default()
}

/// An entry's path as components, refused when it could leave the layer.
pub fn components<'p>(path: &'p [u8], what: &str) -> Result<Vec<&'p [u8]>> {
    let shown = String::from_utf8_lossy(path);
    if path.first() == Some(&b'/') {
        return Err(invalid(format!("{what} {shown:?}: an absolute name")));
    }
    let comps: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if comps.iter().any(|c| *c == b"..") {
        return Err(invalid(format!(
            "{what} {shown:?}: `..` in a name would leave the bundle"
        )));
    }
    Ok(comps)
}

/// Applies the layer read by `tar` into the empty directory `dir`.
/// `budget` is the bytes the filesystem may still take; an entry that
/// would pass it is refused as `full` before anything of it is written.
/// `step` is told the archive's bytes consumed so far, for progress.
pub fn apply(
    tar: &mut tar::Reader,
    dir: &Path,
    budget: &mut u64,
    step: &mut dyn FnMut(),
) -> Result<Applied> {
    let root = rfs::open(
        c(dir.as_os_str().as_encoded_bytes()).as_c_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| invalid(format!("{}: {}", dir.display(), crate::sys::io_error(e))))?;
    let mut layer = Layer {
        root,
        root_path: dir,
        cache: None,
        implicit: vec![Vec::new()],
        dirs: Vec::new(),
    };
    let mut applied = Applied::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let entry = match tar.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => return Err(invalid(format!("the layer's tar: {e}"))),
        };
        applied.entries += 1;
        if entry.kind() == Kind::File && entry.size > *budget {
            return Err(full(format!(
                "entry {:?} needs {} bytes, the filesystem has {} left",
                entry.name(),
                entry.size,
                *budget
            )));
        }
        layer.entry(&entry, tar, &mut buf)?;
        if entry.kind() == Kind::File {
            *budget -= entry.size;
            applied.bytes += entry.size;
        }
        step();
    }
    // Directory times last: creating entries in them changed them.
    for (rel, mtime) in std::mem::take(&mut layer.dirs).iter().rev() {
        let times = stamps(*mtime);
        let target = if rel.is_empty() { c(b".") } else { c(rel) };
        rfs::utimensat(
            &layer.root,
            target.as_c_str(),
            &times,
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| {
            invalid(format!(
                "{}: setting times: {}",
                String::from_utf8_lossy(rel),
                crate::sys::io_error(e)
            ))
        })?;
    }
    let mut implicit = layer.implicit;
    implicit.sort();
    implicit.dedup();
    applied.implicit = implicit;
    Ok(applied)
}

fn stamps((secs, nanos): (i64, u32)) -> Timestamps {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: i64::from(nanos) as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Layer<'_> {
    fn entry(&mut self, e: &Entry, tar: &mut tar::Reader, buf: &mut [u8]) -> Result<()> {
        let name = e.name();
        let comps = components(&e.path, "entry")?;
        let fail = |what: &str, err: Errno| {
            invalid(format!(
                "entry {name:?}: {what}: {}",
                crate::sys::io_error(err)
            ))
        };
        let Some((last, parents)) = comps.split_last() else {
            // The layer's root itself.
            if e.kind() != Kind::Dir {
                return Err(invalid(format!("entry {name:?}: an empty name")));
            }
            let root = self.root.try_clone().map_err(|x| invalid(x.to_string()))?;
            self.owner_mode(root.as_fd(), e, &name)?;
            self.implicit.retain(|p| !p.is_empty());
            self.dirs.push((Vec::new(), e.mtime));
            return Ok(());
        };
        let rel = comps.join(&b'/');
        if let Some(through) = self.reach(parents, &name)? {
            // A whiteout under what this layer made a symlink or a file
            // (umoci writes those) hides nothing that is still there.
            if last.starts_with(b".wh.") {
                return Ok(());
            }
            return Err(invalid(format!(
                "entry {name:?}: {through:?} is a symlink or not a directory, and nothing is written through it"
            )));
        }
        let parent = self
            .cache
            .as_ref()
            .map(|c| c.1.try_clone())
            .transpose()
            .map_err(|x| invalid(x.to_string()))?
            .unwrap();
        let last_c = c(last);
        let last_c = last_c.as_c_str();
        // What is there already: an earlier entry of this layer.
        match rfs::statat(&parent, last_c, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if is_dir && e.kind() == Kind::Dir {
                    self.implicit.retain(|p| *p != rel);
                } else if is_dir {
                    std::fs::remove_dir_all(below(self.root_path, &rel)).map_err(|x| {
                        invalid(format!("entry {name:?}: replacing a directory: {x}"))
                    })?;
                    self.cache = None;
                } else {
                    rfs::unlinkat(&parent, last_c, AtFlags::empty())
                        .map_err(|x| fail("replacing an earlier entry", x))?;
                }
            }
            Err(Errno::NOENT) => {}
            Err(x) => return Err(fail("looking it up", x)),
        }
        match e.kind() {
            Kind::File => {
                let fd = rfs::openat(
                    &parent,
                    last_c,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|x| fail("creating it", x))?;
                let mut file = std::fs::File::from(crate::sys::own(fd));
                loop {
                    let n = tar
                        .read_data(buf)
                        .map_err(|x| invalid(format!("entry {name:?}: {x}")))?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&buf[..n]).map_err(|x| {
                        let m = format!("entry {name:?}: writing: {x}");
                        match x.raw_os_error() {
                            Some(libc::ENOSPC) => full(m),
                            _ => invalid(m),
                        }
                    })?;
                }
                let fd = crate::sys::fd(&file);
                self.owner_mode(fd, e, &name)?;
                rfs::futimens(fd, &stamps(e.mtime)).map_err(|x| fail("setting times", x))?;
            }
            Kind::Dir => {
                match rfs::mkdirat(&parent, last_c, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(x) => return Err(fail("making it", x)),
                }
                let fd = rfs::openat(
                    &parent,
                    last_c,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|x| fail("opening it", x))?;
                self.owner_mode(fd.as_fd(), e, &name)?;
                self.dirs.push((rel, e.mtime));
            }
            Kind::Symlink => {
                rfs::symlinkat(c(&e.link).as_c_str(), &parent, last_c)
                    .map_err(|x| fail("making the symlink", x))?;
                self.path_meta(&parent, last_c, e, &rel, false)?;
            }
            Kind::Hardlink => {
                let target = components(&e.link, "its hardlink target")
                    .map_err(|x| invalid(format!("entry {name:?}: {}", x.message)))?;
                let Some((tlast, tparents)) = target.split_last() else {
                    return Err(invalid(format!("entry {name:?}: a hardlink to nothing")));
                };
                let tdir = self
                    .lookup(tparents)
                    .map_err(|_| self.missing(&name, &e.link))?;
                rfs::linkat(
                    &tdir,
                    c(tlast).as_c_str(),
                    &parent,
                    last_c,
                    AtFlags::empty(),
                )
                .map_err(|x| match x {
                    Errno::NOENT => self.missing(&name, &e.link),
                    x => fail("making the hardlink", x),
                })?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let (kind, dev) = match e.kind() {
                    Kind::Char => (FileType::CharacterDevice, rfs::makedev(e.dev.0, e.dev.1)),
                    Kind::Block => (FileType::BlockDevice, rfs::makedev(e.dev.0, e.dev.1)),
                    _ => (FileType::Fifo, 0),
                };
                rfs::mknodat(&parent, last_c, kind, Mode::from_raw_mode(0o600), dev)
                    .map_err(|x| fail("making the node", x))?;
                self.path_meta(&parent, last_c, e, &rel, true)?;
            }
        }
        Ok(())
    }

    fn missing(&self, name: &str, link: &[u8]) -> super::Error {
        invalid(format!(
            "entry {name:?}: a hardlink to {:?}, which this layer does not hold before it",
            String::from_utf8_lossy(link)
        ))
    }

    /// Ownership, mode and xattrs on an open file or directory; in that
    /// order, as chown clears setuid bits and file capabilities.
    fn owner_mode(&self, fd: BorrowedFd<'_>, e: &Entry, name: &str) -> Result<()> {
        rfs::fchown(
            fd,
            Some(rfs::Uid::from_raw(e.uid)),
            Some(rfs::Gid::from_raw(e.gid)),
        )
        .map_err(|x| owner_error(name, e, x))?;
        rfs::fchmod(fd, Mode::from_raw_mode(e.mode)).map_err(|x| {
            invalid(format!(
                "entry {name:?}: mode {:o}: {}",
                e.mode,
                crate::sys::io_error(x)
            ))
        })?;
        for (k, v) in &e.xattrs {
            rfs::fsetxattr(fd, c(k).as_c_str(), v, rfs::XattrFlags::empty()).map_err(|x| {
                invalid(format!(
                    "entry {name:?}: xattr {}: {}",
                    String::from_utf8_lossy(k),
                    crate::sys::io_error(x)
                ))
            })?;
        }
        Ok(())
    }

    /// The same for what cannot be opened (symlinks, devices, fifos).
    fn path_meta(
        &self,
        parent: &OwnedFd,
        last: &CStr,
        e: &Entry,
        rel: &[u8],
        chmod: bool,
    ) -> Result<()> {
        let name = e.name();
        rfs::chownat(
            parent,
            last,
            Some(rfs::Uid::from_raw(e.uid)),
            Some(rfs::Gid::from_raw(e.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|x| owner_error(&name, e, x))?;
        if chmod {
            rfs::chmodat(parent, last, Mode::from_raw_mode(e.mode), AtFlags::empty()).map_err(
                |x| {
                    invalid(format!(
                        "entry {name:?}: mode {:o}: {}",
                        e.mode,
                        crate::sys::io_error(x)
                    ))
                },
            )?;
        }
        if !e.xattrs.is_empty() {
            let path = c(below(self.root_path, rel).as_os_str().as_encoded_bytes());
            for (k, v) in &e.xattrs {
                rfs::lsetxattr(
                    path.as_c_str(),
                    c(k).as_c_str(),
                    v,
                    rfs::XattrFlags::empty(),
                )
                .map_err(|x| {
                    invalid(format!(
                        "entry {name:?}: xattr: {}",
                        crate::sys::io_error(x)
                    ))
                })?;
            }
        }
        rfs::utimensat(parent, last, &stamps(e.mtime), AtFlags::SYMLINK_NOFOLLOW).map_err(|x| {
            invalid(format!(
                "entry {name:?}: setting times: {}",
                crate::sys::io_error(x)
            ))
        })?;
        Ok(())
    }

    /// Reaches the directory `comps` name, making missing ones. A
    /// symlink or a non-directory on the way is not followed: its path is
    /// returned.
    fn reach(&mut self, comps: &[&[u8]], name: &str) -> Result<Option<String>> {
        let joined = comps.join(&b'/');
        if self.cache.as_ref().is_some_and(|c| c.0 == joined) {
            return Ok(None);
        }
        let mut fd = self.root.try_clone().map_err(|x| invalid(x.to_string()))?;
        let mut rel: Vec<u8> = Vec::new();
        for comp in comps {
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(comp);
            let cc = c(comp);
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            fd = match rfs::openat(&fd, cc.as_c_str(), flags, Mode::empty()) {
                Ok(f) => f,
                Err(Errno::NOENT) => {
                    rfs::mkdirat(&fd, cc.as_c_str(), Mode::from_raw_mode(0o755)).map_err(|x| {
                        invalid(format!(
                            "entry {name:?}: making its directory: {}",
                            crate::sys::io_error(x)
                        ))
                    })?;
                    self.implicit.push(rel.clone());
                    rfs::openat(&fd, cc.as_c_str(), flags, Mode::empty()).map_err(|x| {
                        invalid(format!("entry {name:?}: {}", crate::sys::io_error(x)))
                    })?
                }
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Ok(Some(String::from_utf8_lossy(&rel).into_owned()))
                }
                Err(x) => {
                    return Err(invalid(format!(
                        "entry {name:?}: {}",
                        crate::sys::io_error(x)
                    )))
                }
            };
        }
        self.cache = Some((joined, fd));
        Ok(None)
    }

    /// The directory `comps` name, which must exist, reached the same way.
    fn lookup(&self, comps: &[&[u8]]) -> std::result::Result<OwnedFd, Errno> {
        let mut fd = rfs::openat(
            &self.root,
            c(b".").as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for comp in comps {
            fd = rfs::openat(
                &fd,
                c(comp).as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
        }
        Ok(fd)
    }
}

fn owner_error(name: &str, e: &Entry, x: Errno) -> super::Error {
    let hint = match x {
        Errno::PERM => " (keeping an image's ownership needs root)",
        _ => "",
    };
    invalid(format!(
        "entry {name:?}: owner {}:{}: {}{hint}",
        e.uid,
        e.gid,
        crate::sys::io_error(x)
    ))
}

/// A path below `root` from its components, for the few calls that take
/// paths (removing a tree, xattrs on a symlink).
pub fn below(root: &Path, rel: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    root.join(std::ffi::OsStr::from_bytes(rel))
}
