//! The daemon's only `unsafe` code: signal masks and signalfd, which
//! neither std nor rustix wraps, and descriptors passed between std and
//! rustix or inherited by number.
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

/// Takes ownership of descriptor `fd`, inherited by number from the
/// process that started the daemon (s6's readiness `notification-fd`).
///
/// Call it at start-up, before the daemon opens any descriptor of its own:
/// an open `fd` then can only be the inherited one, owned by nothing else
/// in the process. 0, 1 and 2 are refused (std's stdio), and a number that
/// is not open is an error (`EBADF`).
pub fn claim_inherited_fd(fd: i32) -> io::Result<OwnedFd> {
    if fd < 3 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors 0, 1 and 2 cannot be claimed",
        ));
    }
    // SAFETY: `fcntl(F_GETFD)` only reads the descriptor's flags and fails
    // with EBADF if `fd` is not open. If it is open it was inherited and
    // nothing else owns it (see the precondition above), so the new
    // `OwnedFd` is its only owner.
    unsafe {
        if libc::fcntl(fd, libc::F_GETFD) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// A rustix error as an `io::Error`.
pub fn io_error(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// Heap accounting for the flat-memory test build (`--features
/// heap-stats`): a global allocator that counts live and peak bytes on top
/// of the system allocator.
#[cfg(feature = "heap-stats")]
pub mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    struct Counting;

    fn grew(by: usize) {
        let now = LIVE.fetch_add(by, Relaxed) + by;
        PEAK.fetch_max(now, Relaxed);
    }

    // SAFETY: every call is passed to the system allocator unchanged; only
    // the counters around it are added, and they never affect the memory.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract for `alloc` is passed on.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's contract for `alloc_zeroed` is passed on.
            let p = unsafe { System.alloc_zeroed(layout) };
            if !p.is_null() {
                grew(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract for `dealloc` is passed on.
            unsafe { System.dealloc(ptr, layout) };
            LIVE.fetch_sub(layout.size(), Relaxed);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller's contract for `realloc` is passed on.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                LIVE.fetch_sub(layout.size(), Relaxed);
                grew(new_size);
            }
            p
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    /// Heap bytes allocated and not yet freed.
    pub fn live() -> usize {
        LIVE.load(Relaxed)
    }

    /// The most `live` has been.
    pub fn peak() -> usize {
        PEAK.load(Relaxed)
    }
}
