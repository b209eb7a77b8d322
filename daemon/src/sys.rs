//! The daemon's only `unsafe` code: signal masks and signalfd, the loop
//! device and watchdog ioctls, which neither std nor rustix wraps,
//! descriptors passed between std and rustix or inherited by number, and
//! `unshare`, which rustix marks unsafe for flags not used here.
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

/// `struct loop_info64` of `<linux/loop.h>`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` of `<linux/loop.h>` (Linux 5.8).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

const LOOP_SET_FD: u32 = 0x4C00;
const LOOP_CLR_FD: u32 = 0x4C01;
const LOOP_SET_STATUS64: u32 = 0x4C04;
const LOOP_CONFIGURE: u32 = 0x4C0A;
const LOOP_CTL_GET_FREE: u32 = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// `ioctl(fd, request, arg)`: its non-negative result, or errno.
///
/// # Safety
///
/// `arg` must be what `request` takes: an integer, or a pointer to a
/// struct of its layout that stays valid for the call.
unsafe fn ioctl(fd: &std::fs::File, request: u32, arg: libc::c_ulong) -> io::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    // SAFETY: the caller passes the argument `request` takes; `fd` is open
    // for as long as it is borrowed.
    let n = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
    match n {
        0.. => Ok(n),
        _ => Err(io::Error::last_os_error()),
    }
}

/// `ioctl(LOOP_CTL_GET_FREE)` on `/dev/loop-control`: the number of a
/// free loop device, made if there was none. See loop(4).
pub fn loop_free(control: &std::fs::File) -> io::Result<u32> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument.
    unsafe { ioctl(control, LOOP_CTL_GET_FREE, 0) }.map(|n| n as u32)
}

/// Binds loop device `dev` to `backing`, read-only and auto-clearing (it
/// frees itself when the last user, its mount, closes it):
/// `ioctl(LOOP_CONFIGURE)`, or on kernels before 5.8 `LOOP_SET_FD` then
/// `LOOP_SET_STATUS64`. `EBUSY`: another process took the device first.
pub fn loop_attach(dev: &std::fs::File, backing: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: all-zero is a valid value of these plain-data structs.
    let mut config: LoopConfig = unsafe { std::mem::zeroed() };
    config.fd = backing.as_raw_fd() as u32;
    config.info.flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
    let arg = &config as *const LoopConfig as libc::c_ulong;
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, `config`, alive
    // until the function returns.
    match unsafe { ioctl(dev, LOOP_CONFIGURE, arg) } {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY)) => {
            let fd = backing.as_raw_fd() as libc::c_ulong;
            let info = &config.info as *const LoopInfo64 as libc::c_ulong;
            // SAFETY: LOOP_SET_FD takes a descriptor (open: `backing` is
            // borrowed), LOOP_SET_STATUS64 reads a `struct loop_info64`,
            // `config.info`, alive until the function returns, and
            // LOOP_CLR_FD takes no argument.
            unsafe {
                ioctl(dev, LOOP_SET_FD, fd)?;
                ioctl(dev, LOOP_SET_STATUS64, info)
                    .map(drop)
                    .inspect_err(|_| {
                        // Not auto-clearing: it would stay bound.
                        let _ = ioctl(dev, LOOP_CLR_FD, 0);
                    })
            }
        }
        other => other.map(drop),
    }
}

/// `WDIOC_SETTIMEOUT` and `WDIOC_GETTIMEOUT` of `<linux/watchdog.h>`,
/// `_IOWR('W', 6, int)` and `_IOR('W', 7, int)`, as this architecture
/// encodes them.
const WDIOC_SETTIMEOUT: u32 = rustix::ioctl::opcode::read_write::<libc::c_int>(b'W', 6) as u32;
const WDIOC_GETTIMEOUT: u32 = rustix::ioctl::opcode::read::<libc::c_int>(b'W', 7) as u32;

/// `ioctl(WDIOC_SETTIMEOUT)` with `secs`, when given, then
/// `ioctl(WDIOC_GETTIMEOUT)`: the watchdog's timeout in seconds (a driver
/// may round the one asked for). See the kernel's watchdog-api.rst.
pub fn watchdog_timeout(dev: &std::fs::File, secs: Option<u32>) -> io::Result<u32> {
    let mut t = secs.unwrap_or(0) as libc::c_int;
    let arg = &mut t as *mut libc::c_int as libc::c_ulong;
    if secs.is_some() {
        // SAFETY: WDIOC_SETTIMEOUT reads an int from `arg` and writes the
        // timeout set back there: `t`, alive until the function returns.
        unsafe { ioctl(dev, WDIOC_SETTIMEOUT, arg) }?;
    }
    // SAFETY: WDIOC_GETTIMEOUT writes an int to `arg`: `t`, as above.
    unsafe { ioctl(dev, WDIOC_GETTIMEOUT, arg) }?;
    Ok(t as u32)
}

/// `unshare(CLONE_NEWNET)`: moves the calling thread, and no other, into a
/// new network namespace of its own. See unshare(2).
pub fn unshare_net() -> io::Result<()> {
    use rustix::thread::{unshare_unsafe, UnshareFlags};
    // SAFETY: `unshare_unsafe` is unsafe for `CLONE_FILES`, which would
    // give this thread a descriptor table of its own so that descriptors
    // seen by other threads mean something else here. Only `CLONE_NEWNET`
    // is passed: the descriptor table stays shared, and only sockets made
    // after the call are in the new namespace.
    unsafe { unshare_unsafe(UnshareFlags::NEWNET) }.map_err(io_error)
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

#[cfg(test)]
mod tests {
    /// The numbers `<linux/watchdog.h>` gives on these architectures.
    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn watchdog_opcodes_are_the_kernels() {
        assert_eq!(super::WDIOC_SETTIMEOUT, 0xc004_5706);
        assert_eq!(super::WDIOC_GETTIMEOUT, 0x8004_5707);
    }
}
