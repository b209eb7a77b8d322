//! The state directory, as the daemon keeps it: every name in it, and who
//! writes each, is in the contract with the shims
//! (`nanoctr_shim::contract`, `shim/src/contract/mod.rs`).
//!
//! Everything the daemon knows about a container is in these files, so a
//! daemon started later needs nothing from the one before.

use rustix::fs::Mode;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nanoctr_shim::contract::{container_dir, proc_dir, state_dir, TMP};

/// The process dir of a container's init.
pub const INIT: &str = container_dir::INIT.str;

#[derive(Debug)]
pub struct StateDir {
    root: PathBuf,
    /// `.lock`, held (flock) for the daemon's life: one daemon per state
    /// dir.
    _lock: File,
}

impl StateDir {
    /// Creates the state dir if it is missing (mode 0711: shims and
    /// runtimes need to traverse it, nobody else to list it) and locks it.
    /// A daemon killed a moment ago may leave its lock to a child between
    /// fork and exec for a moment, so a held lock is tried again for a
    /// while before giving up.
    pub fn open(root: &Path) -> io::Result<StateDir> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)?;
        let lock = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(root.join(state_dir::LOCK.str))?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let exclusive = rustix::fs::FlockOperation::NonBlockingLockExclusive;
            match rustix::fs::flock(crate::sys::fd(&lock), exclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "another nanoctrd uses this state dir",
                    ));
                }
                Err(e) => return Err(crate::sys::io_error(e)),
            }
        }
        Ok(StateDir {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn container(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn process(&self, id: &str) -> PathBuf {
        self.container(id).join(INIT)
    }

    /// Makes `<id>/` and `<id>/init/` with the `exit`, `control` and `reply`
    /// fifos. Fails with `AlreadyExists` if `<id>/` is there already.
    pub fn prepare(&self, id: &str) -> io::Result<PathBuf> {
        let dir = self.container(id);
        fs::DirBuilder::new().mode(0o711).create(&dir)?;
        let made = self.prepare_process(id, INIT);
        if made.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    /// Makes the process dir `<id>/<proc>/` with its fifos. Fails with
    /// `AlreadyExists` if it is there already.
    pub fn prepare_process(&self, id: &str, proc: &str) -> io::Result<PathBuf> {
        let dir = self.container(id).join(proc);
        fs::DirBuilder::new().mode(0o711).create(&dir)?;
        let made = (|| {
            for fifo in proc_dir::FIFOS {
                let path = c_path(&dir.join(fifo.str))?;
                rustix::fs::mkfifoat(rustix::fs::CWD, &*path, Mode::RUSR | Mode::WUSR)
                    .map_err(crate::sys::io_error)?;
            }
            Ok(dir.clone())
        })();
        if made.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    /// Removes a container's directory and everything in it.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.container(id)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// A path as a C string, for rustix calls.
pub fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Opens a fifo's read end without blocking, whether or not a writer is
/// there yet (`O_NONBLOCK`, close-on-exec).
pub fn open_fifo_reader(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Writes one line to a fifo whose reader (a shim) is there; fails at
/// once (ENXIO) rather than blocking when it is not.
pub fn write_fifo(path: &Path, line: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    f.write_all(line)
}

/// Writes a file atomically: a temporary beside it, fsync, rename. A reader
/// sees the old file or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_via(path, &tmp_of(path), bytes)
}

/// [`write_atomic`], through the temporary `tmp` (on the same filesystem).
pub fn write_atomic_via(path: &Path, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
    // A new file of its own, never through a link left in its place (and
    // the rename replaces a link at `path` rather than follow it).
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(tmp, path)
}

/// Where [`write_atomic`] writes `path` before it renames it: `path.tmp`.
pub fn tmp_of(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP);
    PathBuf::from(tmp)
}

/// The exit code in a process dir's `exitStatus`, if the shim wrote one.
pub fn read_exit_status(proc: &Path) -> Option<i32> {
    read_small(&proc.join(proc_dir::EXIT_STATUS.str))?
        .trim()
        .parse()
        .ok()
}

/// A small file a shim or the daemon wrote in the state dir (a pid, an
/// exit status, a record): read without blocking, never through a link,
/// at most 64 KiB. `None` for anything else.
pub fn read_small(path: &Path) -> Option<String> {
    crate::files::read_bounded_text(path, 64 * 1024, crate::files::Links::Refuse).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("nanoctr-statedir-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn one_daemon_per_state_dir() {
        let root = scratch("lock");
        let first = StateDir::open(&root).unwrap();
        let second = StateDir::open(&root).unwrap_err();
        assert!(second.to_string().contains("another nanoctrd"), "{second}");
        drop(first);
        StateDir::open(&root).unwrap();
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn prepare_and_remove() {
        let root = scratch("prepare");
        let sd = StateDir::open(&root).unwrap();
        let proc = sd.prepare("web").unwrap();
        assert_eq!(proc, root.join("web/init"));
        for fifo in ["exit", "control", "reply"] {
            use std::os::unix::fs::FileTypeExt;
            assert!(fs::metadata(proc.join(fifo)).unwrap().file_type().is_fifo());
        }
        assert_eq!(
            sd.prepare("web").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        sd.remove("web").unwrap();
        assert!(!root.join("web").exists());
        sd.remove("web").unwrap();
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn atomic_write_and_exit_status() {
        let root = scratch("atomic");
        fs::create_dir_all(&root).unwrap();
        assert_eq!(read_exit_status(&root), None);
        write_atomic(&root.join("exitStatus"), b"137\n").unwrap();
        assert_eq!(read_exit_status(&root), Some(137));
        assert!(!root.join("exitStatus.tmp").exists());
        write_atomic(&root.join("exitStatus"), b"garbage").unwrap();
        assert_eq!(read_exit_status(&root), None);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn fifo_write_without_reader_fails_fast() {
        let root = scratch("fifo");
        let sd = StateDir::open(&root).unwrap();
        let proc = sd.prepare("x").unwrap();
        let err = write_fifo(&proc.join("control"), b"start\n").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENXIO));
        let _reader = open_fifo_reader(&proc.join("control")).unwrap();
        write_fifo(&proc.join("control"), b"start\n").unwrap();
        fs::remove_dir_all(root).unwrap();
    }
}
