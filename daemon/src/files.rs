//! Reading files the daemon does not control: a bundle's `config.json`, the
//! config file and `containers.d`, and what the state dir holds after a
//! crash. Such a file may be a fifo nobody writes to, a device that never
//! ends, a symlink put in its place, or simply huge, and the daemon has one
//! thread: every read here opens without blocking, takes regular files
//! only, and stops at a size cap, so the worst a file can do is be refused
//! with a message that says why.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most of a config file, or of one file in `containers.d`.
pub const MAX_CONFIG_FILE: u64 = 256 * 1024;

/// What a client may name as a container's `stdin=`, `stdout=` or
/// `stderr=`: a regular file or a fifo, by an absolute path whose last
/// component is not a symlink, outside the state dir. `stdout` and
/// `stderr` may name a file that is not there yet (the shim makes it, in
/// a directory that must exist); `stdin` must exist. A device, a socket, a
/// directory or a link is refused (`invalid`), and so is anything in the
/// state dir, which is nanoctr's own (`denied`). The shim opens the file
/// with `O_NOFOLLOW`, so a link put there after this check is refused too.
pub fn check_stdio(
    what: &str,
    path: &str,
    state_dir: &Path,
    may_create: bool,
) -> Result<(), crate::wire::proto::Error> {
    use crate::wire::proto::{Code, Error};
    let p = Path::new(path);
    let refuse = |code, why: &str| Err(Error::new(code, format!("{what}={path} {why}")));
    if within(p, state_dir) {
        return refuse(Code::Denied, "is in the state dir, which is nanoctr's own");
    }
    match std::fs::symlink_metadata(p) {
        Ok(m) => {
            let t = m.file_type();
            if t.is_symlink() {
                return refuse(Code::Invalid, "is a symlink: name the file itself");
            }
            if !(t.is_file() || t.is_fifo()) {
                let what = regular_kind(&m);
                return refuse(
                    Code::Invalid,
                    &format!("is {what}: only a regular file or a fifo"),
                );
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && may_create => {
            if !p.parent().is_some_and(Path::is_dir) {
                return refuse(
                    Code::Invalid,
                    "cannot be made: its directory does not exist",
                );
            }
        }
        Err(e) => return refuse(Code::Invalid, &format!(": {e}")),
    }
    Ok(())
}

/// Whether `path` is in `dir` (or is it), links followed: `/var/run/x` is
/// in `/run` where `/var/run` links there. The directory is known by its
/// device and inode, so no spelling of a path reaches it unnoticed; the
/// part of `path` that does not exist yet cannot lead anywhere else.
pub fn within(path: &Path, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(d) = std::fs::metadata(dir) else {
        return false;
    };
    path.ancestors()
        .filter_map(|a| std::fs::metadata(a).ok())
        .any(|m| m.dev() == d.dev() && m.ino() == d.ino())
}

/// What a file that is not a regular file is, in words.
fn regular_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        "not a regular file"
    }
}

/// Whether a symlink at the last component of the path is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A bundle or config file may be a link to where it really lives.
    Follow,
    /// In the state dir, every file is the daemon's or a shim's own; a
    /// link there was put by someone else and is refused (`ELOOP`).
    Refuse,
}

/// Reads a whole regular file of at most `max` bytes. A fifo, a device, a
/// socket or a directory is refused before anything is read from it, and
/// so is a file over `max` (the message names the cap).
pub fn read_bounded(path: &Path, max: u64, links: Links) -> io::Result<Vec<u8>> {
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let len = regular_len(&f)?;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is {len} bytes, more than the {max} read at most"),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // A file growing meanwhile is still cut at the cap.
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("grew past the {max} bytes read at most"),
        ));
    }
    Ok(bytes)
}

/// A file the kernel makes (`/proc`, a cgroup's): its text, at most 1 MiB.
/// Such files show a size of 0, so only the cap bounds them.
pub fn read_kernel_text(path: impl AsRef<Path>) -> io::Result<String> {
    read_bounded_text(path.as_ref(), 1024 * 1024, Links::Follow)
}

/// [`read_bounded`], as UTF-8 text.
pub fn read_bounded_text(path: &Path, max: u64, links: Links) -> io::Result<String> {
    String::from_utf8(read_bounded(path, max, links)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

/// The length of an open regular file; anything else is an error that
/// names what it is.
pub fn regular_len(f: &File) -> io::Result<u64> {
    let meta = f.metadata()?;
    if meta.file_type().is_file() {
        return Ok(meta.len());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is {}, not a regular file", regular_kind(&meta)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nanoctr-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn regular_files_within_the_cap() {
        let dir = scratch("regular");
        let f = dir.join("config.json");
        std::fs::write(&f, b"{}").unwrap();
        assert_eq!(read_bounded(&f, 2, Links::Refuse).unwrap(), b"{}");
        let e = read_bounded(&f, 1, Links::Refuse).unwrap_err();
        assert!(e.to_string().contains("more than the 1"), "{e}");
        assert_eq!(
            read_bounded(&dir.join("none"), 9, Links::Follow)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fifos_devices_dirs_and_links_are_refused_without_blocking() {
        let dir = scratch("special");
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &*c,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        // No writer: a blocking open would hang here.
        let e = read_bounded(&fifo, 99, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("a fifo"), "{e}");
        let e = read_bounded(Path::new("/dev/zero"), 99, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("a device"), "{e}");
        let e = read_bounded(&dir, 99, Links::Follow).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let target = dir.join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_bounded(&link, 9, Links::Follow).unwrap(), b"x");
        let e = read_bounded(&link, 9, Links::Refuse).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stdio_is_a_file_or_a_fifo_outside_the_state_dir() {
        use crate::wire::proto::Code;
        let dir = scratch("stdio");
        let state = dir.join("state");
        std::fs::create_dir_all(state.join("web/init")).unwrap();
        let out = dir.join("out.log");
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let code = |what: &str, p: &str, create: bool| {
            check_stdio(what, p, &state, create).map_err(|e| e.code)
        };
        assert_eq!(code("stdout", &s(&out), true), Ok(()), "made by the shim");
        assert!(
            !within(&dir.join("statement"), &state),
            "a name that starts alike"
        );
        assert_eq!(
            code("stdin", &s(&out), false),
            Err(Code::Invalid),
            "not there"
        );
        std::fs::write(&out, b"").unwrap();
        assert_eq!(code("stdin", &s(&out), false), Ok(()));
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(s(&fifo)).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &*c,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        assert_eq!(code("stdin", &s(&fifo), false), Ok(()));
        for bad in ["/dev/zero", "/dev/null", "/tmp", "/no/such/dir/x"] {
            assert_eq!(code("stdout", bad, true), Err(Code::Invalid), "{bad}");
        }
        let link = dir.join("link");
        std::os::unix::fs::symlink(&out, &link).unwrap();
        assert_eq!(code("stdout", &s(&link), true), Err(Code::Invalid));
        // The state dir, also by a way round through a link.
        let round = dir.join("round");
        std::os::unix::fs::symlink(&state, &round).unwrap();
        for p in [
            state.join("web/init/exitStatus"),
            state.join(".events.0"),
            round.join("web/init/output"),
            state.join("not/yet/made"),
            dir.join("state/../state/web"),
        ] {
            assert_eq!(code("stdout", &s(&p), true), Err(Code::Denied), "{p:?}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
