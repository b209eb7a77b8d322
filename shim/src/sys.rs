//! The shim's only `unsafe` code: the C entry point, adopting an inherited
//! descriptor, signal masks and signalfd, and fork + execve. Everything else
//! goes through rustix's safe wrappers.
//!
//! The one import cycle of the tree is here, and has to be: the C entry
//! point calls the crate's `main`, which uses this module.
#![allow(unsafe_code)]

use core::ffi::{c_char, c_int, CStr};
use core::marker::PhantomData;
use rustix::fd::{BorrowedFd, FromRawFd, OwnedFd};
use rustix::io::{self, Errno};
use rustix::process::Pid;

/// The C library's start-up code calls `main(argc, argv, envp)`.
#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
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
        // SAFETY: the start-up code hands `main` `argc` pointers to
        // NUL-terminated strings that stay valid and unmodified for the
        // whole life of the process; `next < argc` here.
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

/// `_exit(2)`: ends the process at once, without running anything else.
pub fn exit(code: i32) -> ! {
    // SAFETY: `_exit` takes any status and never returns.
    unsafe { libc::_exit(code) }
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

/// A set of signals (`sigset_t`).
pub struct SignalSet(libc::sigset_t);

impl SignalSet {
    pub fn of(signals: &[c_int]) -> SignalSet {
        // SAFETY: `sigset_t` is plain data; `sigemptyset` initialises it
        // before use and `sigaddset` only sets bits in it.
        unsafe {
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in signals {
                libc::sigaddset(&mut set, s);
            }
            SignalSet(set)
        }
    }
}

/// `sigprocmask(SIG_BLOCK, ...)`: blocks `set` and returns the mask before,
/// which children get back before they exec.
pub fn block_signals(set: &SignalSet) -> io::Result<SignalSet> {
    let mut old = SignalSet::of(&[]);
    // SAFETY: both pointers are to live, initialised `sigset_t`s.
    let rc = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set.0, &mut old.0) };
    errno_if(rc < 0).map(|()| old)
}

/// `signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK)`: the blocked signals in
/// `set`, readable as a descriptor in the poll loop.
pub fn signalfd(set: &SignalSet) -> io::Result<OwnedFd> {
    // SAFETY: `set` is an initialised `sigset_t`; a non-negative result is
    // a new descriptor that nothing else owns.
    unsafe {
        let fd = libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        errno_if(fd < 0).map(|()| OwnedFd::from_raw_fd(fd))
    }
}

/// `kill(2)`: sends `signal` (1 to 64, real-time ones included, which
/// rustix's safe `Signal` does not name) to `pid`.
pub fn kill(pid: Pid, signal: c_int) -> io::Result<()> {
    // SAFETY: `kill` takes any pid and signal number; a bad one is EINVAL
    // or ESRCH, nothing more.
    let rc = unsafe { libc::kill(pid.as_raw_nonzero().get(), signal) };
    errno_if(rc < 0)
}

fn errno_if(failed: bool) -> io::Result<()> {
    if failed {
        // SAFETY: `__errno_location` returns this thread's errno slot.
        Err(Errno::from_raw_os_error(unsafe {
            *libc::__errno_location()
        }))
    } else {
        Ok(())
    }
}

/// The most words a runtime command line has (`restore` with every option
/// takes 18).
const MAX_ARGS: usize = 20;

/// A program and its arguments as the NULL-terminated pointer array that
/// `execv` takes, with the borrowed strings kept alive by the lifetime.
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
    pub fn arg(&mut self, word: &'a CStr) -> &mut Self {
        if self.len < MAX_ARGS {
            self.argv[self.len] = word.as_ptr();
        }
        self.len += 1;
        self
    }

    /// fork + execv with `stdio` as descriptors 0, 1 and 2 and `mask` as the
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
        // SAFETY: a bare clone(SIGCHLD) is fork(2) without the C library's
        // fork handlers, which the shim (single-threaded, no locks held)
        // does not need. Its extra arguments are all zero, which means the
        // same on every architecture. In the child only raw dup2, the mask
        // and execv run, on descriptors open across the clone; `argv`
        // points to NUL-terminated strings borrowed for `'a` and ends with a
        // NULL (`len <= MAX_ARGS`).
        unsafe {
            let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0);
            if pid == 0 {
                let [stdin, stdout, stderr] = stdio;
                let _ = rustix::stdio::dup2_stdin(stdin);
                let _ = rustix::stdio::dup2_stdout(stdout);
                let _ = rustix::stdio::dup2_stderr(stderr);
                libc::sigprocmask(libc::SIG_SETMASK, &mask.0, core::ptr::null_mut());
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
                libc::execv(self.argv[0], self.argv.as_ptr());
                libc::_exit(127);
            }
            let pid = pid as i32;
            errno_if(pid < 0)?;
            Ok(Pid::from_raw_unchecked(pid))
        }
    }
}
