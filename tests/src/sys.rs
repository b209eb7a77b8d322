//! The tests crate's only `unsafe` code.
#![allow(unsafe_code)]

use std::time::Duration;

/// CPU time (user + system) of all children reaped so far
/// (`getrusage(RUSAGE_CHILDREN)`).
pub fn children_cpu() -> Duration {
    // SAFETY: `rusage` is plain data that getrusage fills in; the pointer
    // is to a live local.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A pseudo-terminal pair: (master, slave).
pub fn openpty(
    cols: u16,
    rows: u16,
) -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors into the locals; the name
    // and termios pointers may be null; `size` lives for the call.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Not inherited by the processes the test starts (a daemon holding a
    // master would keep the line from ever hanging up).
    for fd in [master, slave] {
        // SAFETY: F_SETFD on a descriptor just made, owned here.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both are new descriptors that nothing else owns.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    })
}

/// Sets a terminal's size (TIOCSWINSZ).
pub fn set_size(fd: &impl std::os::fd::AsRawFd, cols: u16, rows: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which lives for
    // the call.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) };
}

/// Whether a terminal is in canonical mode with echo (cooked, as a shell
/// leaves it), not raw.
pub fn is_cooked(fd: &impl std::os::fd::AsRawFd) -> bool {
    // SAFETY: termios is plain data; tcgetattr fills the local.
    let (rc, t) = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        (libc::tcgetattr(fd.as_raw_fd(), &mut t), t)
    };
    rc == 0 && t.c_lflag & libc::ICANON != 0 && t.c_lflag & libc::ECHO != 0
}

/// Sets O_NONBLOCK on a descriptor.
pub fn set_nonblocking(fd: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_GETFL/F_SETFL read and set flags of an open descriptor.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Whether a read on `fd` would not block: data, or an end, is waiting
/// (`poll` for POLLIN, without waiting).
pub fn readable(fd: &impl std::os::fd::AsRawFd) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads and writes the one pollfd, a live local; a
    // timeout of 0 returns at once.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLIN | libc::POLLHUP) != 0
}

/// An exclusive `flock` on `f`, held until `f` is closed.
pub fn flock_exclusive(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor `f` owns and keeps open for the call.
    match unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Moves the calling thread alone into a new network namespace
/// (`unshare(CLONE_NEWNET)`): a test's links, addresses and routes are
/// then its own, and go when the thread ends.
pub fn unshare_net() -> std::io::Result<()> {
    // SAFETY: unshare with CLONE_NEWNET changes only the calling thread's
    // network namespace; no memory or descriptor is involved.
    match unsafe { libc::unshare(libc::CLONE_NEWNET) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
