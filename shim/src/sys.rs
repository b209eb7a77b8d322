//! The shim's only `unsafe` code: the program's entry point, the system
//! calls rustix does not wrap (fork as a bare clone, execve, the signal
//! mask, signalfd, kill with any signal number, exit), adopting an
//! inherited descriptor. Everything else goes through rustix's safe
//! wrappers.
//!
//! On musl targets the shim starts at its own entry point (`build.rs`
//! names it to the linker) and never runs the C library's start-up code:
//! no thread pointer, TLS or errno is set up, so no C library function that
//! may touch errno is called; only the string functions (`memcpy` and
//! friends, which the compiler emits calls to) come from it. That is 2 KiB
//! of the shim. Elsewhere (the host's glibc, for tests and tools) the C
//! library starts it and calls `main`.
//!
//! The one import cycle of the tree is here, and has to be: the entry
//! point calls the crate's `main`, which uses this module.
#![allow(unsafe_code)]

use core::ffi::{c_char, c_int, CStr};
use core::marker::PhantomData;
use core::sync::atomic::{AtomicPtr, Ordering};
use rustix::fd::{BorrowedFd, FromRawFd, OwnedFd};
use rustix::io::{self, Errno};
use rustix::process::Pid;

/// The environment the shim was started with, handed on to the runtime.
static ENVIRON: AtomicPtr<*const c_char> = AtomicPtr::new(core::ptr::null_mut());

// Where the kernel starts the program, on musl targets: the initial stack
// holds `argc`, then `argc` argument pointers and a NULL, then the
// environment's pointers and a NULL. Each stub clears the frame pointer
// (and link register), passes the stack pointer and aligns the stack as
// the architecture's calling convention wants (16 bytes, 8 on MIPS, which
// also reserves the 16-byte argument area its callers must leave).
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
core::arch::global_asm!(
    ".globl nanoctr_shim_start",
    "nanoctr_shim_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);
#[cfg(all(target_env = "musl", target_arch = "aarch64"))]
core::arch::global_asm!(
    ".globl nanoctr_shim_start",
    "nanoctr_shim_start:",
    "mov x29, #0",
    "mov x30, #0",
    "mov x0, sp",
    "and sp, x0, #-16",
    "bl {entry}",
    "brk #0",
    entry = sym entry,
);
// ARM and Thumb-2 (the firmware's armv7) share the stub; in a Thumb build
// the entry must be marked as Thumb code (bit 0 of its address), or the
// kernel would start it in ARM state.
#[cfg(all(target_env = "musl", target_arch = "arm", thumb_mode))]
macro_rules! thumb_func {
    () => {
        ".thumb_func"
    };
}
#[cfg(all(target_env = "musl", target_arch = "arm", not(thumb_mode)))]
macro_rules! thumb_func {
    () => {
        ""
    };
}
#[cfg(all(target_env = "musl", target_arch = "arm"))]
core::arch::global_asm!(
    ".globl nanoctr_shim_start",
    thumb_func!(),
    "nanoctr_shim_start:",
    "mov fp, #0",
    "mov lr, #0",
    "mov r0, sp",
    "and ip, r0, #-16",
    "mov sp, ip",
    "bl {entry}",
    "udf #0",
    entry = sym entry,
);
#[cfg(all(target_env = "musl", target_arch = "riscv64"))]
core::arch::global_asm!(
    ".globl nanoctr_shim_start",
    "nanoctr_shim_start:",
    ".option push",
    ".option norelax",
    "lla gp, __global_pointer$",
    ".option pop",
    "mv a0, sp",
    "andi sp, sp, -16",
    "call {entry}",
    "unimp",
    entry = sym entry,
);
#[cfg(all(target_env = "musl", target_arch = "mips"))]
core::arch::global_asm!(
    ".globl nanoctr_shim_start",
    "nanoctr_shim_start:",
    ".set push",
    ".set noreorder",
    "move $fp, $0",
    "lui $gp, %hi(_gp)",
    "addiu $gp, $gp, %lo(_gp)",
    "move $4, $sp",
    "addiu $sp, $sp, -16",
    "li $8, -8",
    "and $sp, $sp, $8",
    "lui $25, %hi({entry})",
    "addiu $25, $25, %lo({entry})",
    "jalr $25",
    "nop",
    "break",
    ".set pop",
    entry = sym entry,
);

/// Reads the initial stack and runs the shim.
#[cfg(target_env = "musl")]
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: `sp` is the stack pointer the kernel started the program
    // with: `argc`, the `argc` argument pointers and their NULL, then the
    // environment's pointers ending in NULL.
    let (argc, argv) = unsafe { (*sp, sp.add(1) as *const *const c_char) };
    // SAFETY: as above, the environment starts after argv's NULL.
    let envp = unsafe { argv.add(argc + 1) };
    ENVIRON.store(envp as *mut _, Ordering::Relaxed);
    exit(crate::main(Args {
        argv,
        next: 1,
        argc,
    }))
}

/// The C library's start-up code calls `main(argc, argv, envp)`.
#[cfg(not(target_env = "musl"))]
#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    ENVIRON.store(envp as *mut _, Ordering::Relaxed);
    crate::main(Args {
        argv,
        next: 1,
        argc: usize::try_from(argc).unwrap_or(0),
    })
}

/// The words of the command line after `argv[0]`.
pub struct Args {
    argv: *const *const c_char,
    next: usize,
    argc: usize,
}

impl Iterator for Args {
    type Item = &'static CStr;

    fn next(&mut self) -> Option<&'static CStr> {
        if self.next >= self.argc {
            return None;
        }
        // SAFETY: the kernel (or the C library's start-up code) hands over
        // `argc` pointers to NUL-terminated strings that stay valid and
        // unmodified for the whole life of the process; `next < argc` here.
        let word = unsafe { CStr::from_ptr(*self.argv.add(self.next)) };
        self.next += 1;
        Some(word)
    }
}

/// The prebuilt `core` refers to this symbol; builds without LTO (debug
/// builds) must define it. It is never called: every profile aborts on
/// panic, so nothing unwinds.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(101)
}

/// `exit_group(2)`: ends the process at once, without running anything else.
pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group takes any status and does not return.
    unsafe {
        syscall(libc::SYS_exit_group, [code as usize, 0, 0, 0]);
        core::hint::unreachable_unchecked()
    }
}

/// Descriptor 2, for a message to a person who ran the shim by hand.
pub fn stderr() -> BorrowedFd<'static> {
    // SAFETY: the shim never closes descriptor 2; if it was not open, a
    // write to it fails with EBADF and nothing else happens.
    unsafe { BorrowedFd::borrow_raw(2) }
}

/// Takes ownership of a descriptor inherited by number (the startup fd).
/// Fails unless the number is an open descriptor.
pub fn adopt_fd(raw: i32) -> io::Result<OwnedFd> {
    // SAFETY: the borrow lives only for the `fcntl` call that checks the
    // descriptor is open; it is not kept.
    rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(raw) })?;
    // SAFETY: `raw` is open (checked above) and was handed to this process
    // for it alone to use; nothing else in the shim refers to it, so the
    // `OwnedFd` is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The kernel's signal set: one bit per signal, 64 signals (128 on MIPS).
#[derive(Clone, Copy)]
pub struct SignalSet([u64; 2]);

/// Its size as the kernel takes it (`_NSIG / 8`).
const SIGSET_SIZE: usize = if cfg!(target_arch = "mips") { 16 } else { 8 };

impl SignalSet {
    pub fn of(signals: &[c_int]) -> SignalSet {
        let mut set = [0u64; 2];
        for &s in signals {
            let bit = (s.wrapping_sub(1) as usize) % 128;
            set[bit / 64] |= 1 << (bit % 64);
        }
        SignalSet(set)
    }

    /// Where the kernel reads (or writes) it.
    fn as_ptr(&mut self) -> *mut u64 {
        self.0.as_mut_ptr()
    }
}

/// `rt_sigprocmask(how, set, old)`.
fn sigprocmask(how: c_int, mut set: SignalSet, old: Option<&mut SignalSet>) -> io::Result<()> {
    let old = old.map_or(core::ptr::null_mut(), SignalSet::as_ptr);
    let set = set.as_ptr();
    // SAFETY: both pointers are to live sets of (at least) the size given,
    // or the old one is NULL, which the kernel takes as "not wanted".
    let r = unsafe {
        syscall(
            libc::SYS_rt_sigprocmask,
            [how as usize, set as usize, old as usize, SIGSET_SIZE],
        )
    };
    check(r).map(drop)
}

/// Blocks `set` and returns the mask before, which children get back
/// before they exec.
pub fn block_signals(set: &SignalSet) -> io::Result<SignalSet> {
    let mut old = SignalSet::of(&[]);
    sigprocmask(libc::SIG_BLOCK, *set, Some(&mut old)).map(|()| old)
}

/// `signalfd4(-1, set, SFD_CLOEXEC | SFD_NONBLOCK)`: the blocked signals in
/// `set`, readable as a descriptor in the poll loop.
pub fn signalfd(mut set: SignalSet) -> io::Result<OwnedFd> {
    let flags = (libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) as usize;
    let set = set.as_ptr();
    // SAFETY: `set` points to a live set of the size given; a non-negative
    // result is a new descriptor that nothing else owns.
    unsafe {
        let fd = check(syscall(
            libc::SYS_signalfd4,
            [usize::MAX, set as usize, SIGSET_SIZE, flags],
        ))?;
        Ok(OwnedFd::from_raw_fd(fd as c_int))
    }
}

/// `kill(2)`: sends `signal` (1 to 64, real-time ones included, which
/// rustix's safe `Signal` does not name) to `pid`.
pub fn kill(pid: Pid, signal: c_int) -> io::Result<()> {
    let pid = pid.as_raw_nonzero().get();
    // SAFETY: kill takes any pid and signal number; a bad one is EINVAL or
    // ESRCH, nothing more.
    let r = unsafe { syscall(libc::SYS_kill, [pid as usize, signal as usize, 0, 0]) };
    check(r).map(drop)
}

/// `recvmsg(2)` of one message with descriptors (SCM_RIGHTS, received
/// close-on-exec): the first descriptor of its first control message.
/// Any others in that message are closed; a message with none is ENOMSG.
// The lengths are `socklen_t` on musl and `size_t` on glibc.
#[allow(clippy::unnecessary_cast)]
pub fn receive_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use rustix::fd::AsRawFd;
    let mut data = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // Room for one control message header and a few descriptors, aligned
    // as the header is.
    let mut space = [0u64; 4];
    // SAFETY: `msghdr` is plain data, for which all zeroes is a valid
    // value (no name, no buffers).
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = core::mem::size_of_val(&space) as _;
    let flags = libc::MSG_CMSG_CLOEXEC as usize;
    let (fd, m) = (
        sock.as_raw_fd() as usize,
        &mut msg as *mut libc::msghdr as usize,
    );
    // SAFETY: `msg` points to `iov` and `space`, live buffers of the
    // lengths it gives, which is all recvmsg writes to.
    check(unsafe { syscall(libc::SYS_recvmsg, [fd, m, flags, 0]) })?;
    let header = core::mem::size_of::<libc::cmsghdr>();
    if (msg.msg_controllen as usize) < header {
        return Err(Errno::NOMSG);
    }
    // SAFETY: the kernel wrote `msg_controllen` bytes of control messages
    // at the start of `space`, which is aligned for `cmsghdr`; at least one
    // header's worth is there (checked above).
    let c = unsafe { &*(space.as_ptr() as *const libc::cmsghdr) };
    if c.cmsg_level != libc::SOL_SOCKET || c.cmsg_type != libc::SCM_RIGHTS {
        return Err(Errno::NOMSG);
    }
    let len = (c.cmsg_len as usize).min(msg.msg_controllen as usize);
    let count = len.saturating_sub(header) / 4;
    let mut first = None;
    for i in 0..count {
        // SAFETY: the kernel put `count` descriptors after the header, each
        // now open in this process and owned by no one else; the offset is
        // within the `len` bytes it wrote.
        let fd = unsafe {
            let at = (space.as_ptr() as *const u8).add(header + 4 * i);
            OwnedFd::from_raw_fd(core::ptr::read_unaligned(at as *const c_int))
        };
        // The first is kept; any others are closed as they drop.
        if first.is_none() {
            first = Some(fd);
        }
    }
    first.ok_or(Errno::NOMSG)
}

/// `ppoll(2)` with no timeout and the signal mask left as it is: waits
/// until one of `fds` is readable (or has hung up, or has an error), and
/// says which. `None`s are left out (as descriptor -1, which poll skips).
pub fn poll<const N: usize>(fds: &[Option<BorrowedFd<'_>>; N]) -> io::Result<[bool; N]> {
    use rustix::fd::AsRawFd;
    let mut set = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; N];
    for (p, fd) in set.iter_mut().zip(fds) {
        if let Some(fd) = fd {
            p.fd = fd.as_raw_fd();
        }
    }
    let at = set.as_mut_ptr() as usize;
    // SAFETY: `set` is a live array of `N` pollfds, which ppoll reads and
    // writes (revents) and nothing else; NULL timeout and mask mean none.
    check(unsafe { syscall(libc::SYS_ppoll, [at, N, 0, 0]) })?;
    let mut ready = [false; N];
    for (r, p) in ready.iter_mut().zip(&set) {
        *r = p.revents != 0;
    }
    Ok(ready)
}

/// `write(2)` of `bytes` to descriptor `fd` by number, for telling a
/// result where the descriptor is not at hand; false if it failed (a
/// closed or -1 descriptor is EBADF, nothing more).
pub fn write_fd(fd: i32, bytes: &[u8]) -> bool {
    let (at, len) = (bytes.as_ptr() as usize, bytes.len());
    // SAFETY: write only reads `len` bytes at `at`, which `bytes` holds.
    let r = unsafe { syscall(libc::SYS_write, [fd as usize, at, len, 0]) };
    check(r).is_ok_and(|n| n == len)
}

/// A system call's result: -4095 to -1 are errors.
fn check(r: isize) -> io::Result<usize> {
    if (-4095..0).contains(&r) {
        Err(Errno::from_raw_os_error(-r as i32))
    } else {
        Ok(r as usize)
    }
}

/// A system call with up to four arguments; the result, or `-errno`.
///
/// # Safety
/// The arguments must be what the call `nr` takes: pointers to live
/// memory of the sizes the call reads and writes.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn syscall(nr: libc::c_long, a: [usize; 4]) -> isize {
    let r;
    // SAFETY: the caller's contract; `syscall` clobbers rcx and r11.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => r,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2], in("r10") a[3],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    r
}

/// See the x86_64 version.
#[cfg(target_arch = "aarch64")]
#[inline]
unsafe fn syscall(nr: libc::c_long, a: [usize; 4]) -> isize {
    let r;
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!(
            "svc 0",
            in("x8") nr,
            inlateout("x0") a[0] as isize => r,
            in("x1") a[1], in("x2") a[2], in("x3") a[3],
            options(nostack),
        );
    }
    r
}

/// See the x86_64 version. The call number goes in r7, which Thumb code
/// keeps as its frame pointer: it is saved around the call, so the same
/// code serves ARM and Thumb builds.
#[cfg(target_arch = "arm")]
#[inline]
unsafe fn syscall(nr: libc::c_long, a: [usize; 4]) -> isize {
    let r;
    // SAFETY: the caller's contract; r7 is restored before the block ends.
    unsafe {
        core::arch::asm!(
            "mov {tmp}, r7",
            "mov r7, {nr}",
            "svc 0",
            "mov r7, {tmp}",
            nr = in(reg) nr,
            tmp = out(reg) _,
            inlateout("r0") a[0] as isize => r,
            in("r1") a[1], in("r2") a[2], in("r3") a[3],
            options(nostack),
        );
    }
    r
}

/// See the x86_64 version.
#[cfg(target_arch = "riscv64")]
#[inline]
unsafe fn syscall(nr: libc::c_long, a: [usize; 4]) -> isize {
    let r;
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!(
            "ecall",
            in("a7") nr,
            inlateout("a0") a[0] as isize => r,
            in("a1") a[1], in("a2") a[2], in("a3") a[3],
            options(nostack),
        );
    }
    r
}

/// See the x86_64 version. MIPS o32 returns a positive errno in v0 and
/// flags it in a3; the call may clobber the temporaries.
#[cfg(target_arch = "mips")]
#[inline]
unsafe fn syscall(nr: libc::c_long, a: [usize; 4]) -> isize {
    let (r, failed): (isize, usize);
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("$2") nr as isize => r,
            in("$4") a[0], in("$5") a[1], in("$6") a[2],
            inlateout("$7") a[3] => failed,
            lateout("$8") _, lateout("$9") _, lateout("$10") _, lateout("$11") _,
            lateout("$12") _, lateout("$13") _, lateout("$14") _, lateout("$15") _,
            lateout("$24") _, lateout("$25") _,
            options(nostack),
        );
    }
    if failed != 0 {
        -r
    } else {
        r
    }
}

/// The most words a runtime command line has (`restore` with every option
/// takes 18).
const MAX_ARGS: usize = 20;

/// A program and its arguments as the NULL-terminated pointer array that
/// `execve` takes, with the borrowed strings kept alive by the lifetime.
pub struct Command<'a> {
    argv: [*const c_char; MAX_ARGS + 1],
    len: usize,
    _strings: PhantomData<&'a CStr>,
}

impl<'a> Command<'a> {
    pub fn new(program: &'a CStr) -> Self {
        let mut argv = [core::ptr::null(); MAX_ARGS + 1];
        argv[0] = program.as_ptr();
        Command {
            argv,
            len: 1,
            _strings: PhantomData,
        }
    }

    /// Appends a word; words past `MAX_ARGS` make `spawn` fail with E2BIG.
    /// Not inlined: a call is smaller than the bounds check and store at
    /// each of the twenty-odd places that build a runtime command line.
    #[inline(never)]
    pub fn arg(&mut self, word: &'a CStr) -> &mut Self {
        if self.len < MAX_ARGS {
            self.argv[self.len] = word.as_ptr();
        }
        self.len += 1;
        self
    }

    /// fork + execve with `stdio` as descriptors 0, 1 and 2 and `mask` as the
    /// signal mask; `reset_oom` puts the child's `oom_score_adj` back to 0.
    /// A child that cannot exec exits 127, like a shell.
    pub fn spawn(
        &self,
        stdio: [BorrowedFd<'_>; 3],
        mask: &SignalSet,
        reset_oom: bool,
    ) -> io::Result<Pid> {
        if self.len > MAX_ARGS {
            return Err(Errno::TOOBIG);
        }
        let envp = ENVIRON.load(Ordering::Relaxed) as usize;
        // SAFETY: a bare clone(SIGCHLD) is fork(2) without the C library's
        // fork handlers, which the shim (single-threaded, no locks held)
        // does not need; a zero stack means the child runs on a copy of
        // this one, and the other arguments are unused without the flags
        // that name them. In the child only system calls run, on
        // descriptors open across the clone; `argv` points to NUL-terminated
        // strings borrowed for `'a` and ends with a NULL (`len <=
        // MAX_ARGS`), and `envp` is the environment the process started
        // with, NULL-terminated too.
        unsafe {
            let pid = syscall(libc::SYS_clone, [libc::SIGCHLD as usize, 0, 0, 0]);
            if pid == 0 {
                let [stdin, stdout, stderr] = stdio;
                let _ = rustix::stdio::dup2_stdin(stdin);
                let _ = rustix::stdio::dup2_stdout(stdout);
                let _ = rustix::stdio::dup2_stderr(stderr);
                let _ = sigprocmask(libc::SIG_SETMASK, *mask, None);
                if reset_oom {
                    let flags = rustix::fs::OFlags::WRONLY;
                    let adj = rustix::fs::open(
                        c"/proc/self/oom_score_adj",
                        flags,
                        rustix::fs::Mode::empty(),
                    );
                    if let Ok(fd) = adj {
                        let _ = rustix::io::write(&fd, b"0\n");
                    }
                }
                let argv = self.argv.as_ptr() as usize;
                syscall(libc::SYS_execve, [self.argv[0] as usize, argv, envp, 0]);
                exit(127);
            }
            let pid = check(pid)? as i32;
            Ok(Pid::from_raw_unchecked(pid))
        }
    }
}
