//! The daemon's only `unsafe` code: signal masks and signalfd, which
//! neither std nor rustix wraps.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// Blocks `signals` for the whole process (the daemon has one thread) and
/// returns a non-blocking signalfd that reports them.
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    // SAFETY: `set` is plain data initialised by `sigemptyset` before use;
    // the pointers passed are to it and live for the calls. A non-negative
    // result of `signalfd` is a new descriptor owned by nothing else.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Lends any std descriptor to rustix for as long as it is borrowed.
///
/// rustix is built without its `std` feature (the `no_std` shim shares the
/// build, see the workspace manifest), so its descriptor types are its own,
/// not std's. This and [`own`] are the whole bridge.
pub fn fd<F: std::os::fd::AsFd + ?Sized>(f: &F) -> rustix::fd::BorrowedFd<'_> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for as long as `f` is borrowed, and
    // the result's lifetime is that borrow.
    unsafe { rustix::fd::BorrowedFd::borrow_raw(f.as_fd().as_raw_fd()) }
}

/// Takes a descriptor rustix returned into std's ownership.
pub fn own(fd: rustix::fd::OwnedFd) -> OwnedFd {
    use rustix::fd::IntoRawFd;
    // SAFETY: `into_raw_fd` gives up rustix's ownership of an open
    // descriptor, so the new `OwnedFd` is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd.into_raw_fd()) }
}

/// A rustix error as an `io::Error`.
pub fn io_error(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}
