//! Updates: the update lock a container may hold to defer them, and the
//! stops the daemon decides on itself.
//!
//! The update lock is `<state-dir>/<id>/lock/update`, a file the daemon
//! makes with the container; a process in the container (the directory
//! bind-mounted in) that holds an `flock` on it defers the restart of an
//! unhealthy container and any swap. The lock is a kernel lock, so a
//! holder that dies releases it: nothing stale is left to clean up.

use std::path::Path;

use crate::server::Effects;
use crate::server::{Call, Daemon};
use crate::slab::Ref;
use nanoctr_shim::contract::container_dir;

/// Whether a process holds the container's update lock (`dir` its
/// container dir). A missing lock file is no lock.
pub fn lock_held(dir: &Path) -> bool {
    let path = dir
        .join(container_dir::LOCK_DIR.str)
        .join(container_dir::UPDATE_LOCK.str);
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    use rustix::fs::{flock, FlockOperation};
    match flock(
        crate::sys::fd(&file),
        FlockOperation::NonBlockingLockExclusive,
    ) {
        // Free: taken for a moment, let go with the file.
        Ok(()) => false,
        Err(e) => e == rustix::io::Errno::WOULDBLOCK,
    }
}

/// Makes the container's lock dir and its empty lock file.
pub fn make_lock(dir: &Path) -> std::io::Result<()> {
    let locks = dir.join(container_dir::LOCK_DIR.str);
    match std::fs::create_dir(&locks) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(locks.join(container_dir::UPDATE_LOCK.str))
        .map(|_| ())
}

use std::os::unix::fs::OpenOptionsExt;

impl<F: Effects> Daemon<F> {
    /// A kill the daemon decided on has exited.
    pub(crate) fn stop_done(&mut self, r: Ref, call: &Call, code: i32) {
        self.metrics
            .call(crate::server::metrics::CallVerb::Kill, code == 0);
        if code != 0 {
            let id = self.containers.get(r).map_or("", |c| c.id()).to_string();
            let e = self.call_failure(call, "kill", code);
            crate::logger::warn(&format!("{id}: {}", e.message));
        }
    }
}
