//! What can go wrong, and how the shim says so: the line `error MESSAGE`
//! or `failed VERB CODE` it tells the daemon (and writes to its stderr,
//! `shim.log`), and its exit codes, which follow s6.
//!
//! Until its process is made, any failure ends the shim: [`OrFail`] tells
//! it where it happens and exits, on the startup pipe (or on `reply` when
//! the pipe's reader is gone, for a daemon started since), with the exit
//! code of the stage the shim is in. Nothing is unwound on the way out, so
//! the error paths cost a call each.

use core::ffi::CStr;
use core::sync::atomic::{AtomicI32, Ordering};

use nanoctr_shim::contract::reply::Reply;
use nanoctr_shim::contract::MAX_REPLY_LINE;
use nanoctr_shim::errno::errno_name;
use nanoctr_shim::line::Line;
use rustix::io::{self, Errno};

/// A bad command line.
pub(crate) const EXIT_USAGE: i32 = 100;
/// A system call failed.
pub(crate) const EXIT_SYSTEM: i32 = 111;
/// The runtime could not make the process.
pub(crate) const EXIT_CREATE_FAILED: i32 = 1;

/// A message line: `error ` plus a runtime's message fits comfortably.
pub(crate) type Message = Line<MAX_REPLY_LINE>;

/// Why something failed, to be told to the daemon as `error ...`.
pub(crate) enum Failure {
    /// A system call failed while doing `what`.
    Sys(&'static str, Errno),
    /// The runtime exited with this status while doing `what`; its own
    /// message is in `log.json`, where the daemon reads it.
    Runtime(&'static CStr, i32),
}

/// Where a result is told: the startup pipe's descriptor, then `reply`'s
/// (-1 for none), and the exit code of a failure now.
static STARTUP: AtomicI32 = AtomicI32::new(-1);
static REPLY: AtomicI32 = AtomicI32::new(-1);
static EXIT_CODE: AtomicI32 = AtomicI32::new(EXIT_SYSTEM);

/// Sets where results are told (-1: not there, or no longer).
pub(crate) fn tell_on(startup: i32, reply: i32) {
    STARTUP.store(startup, Ordering::Relaxed);
    REPLY.store(reply, Ordering::Relaxed);
}

/// The exit code of a failure from now on.
pub(crate) fn exit_code(code: i32) {
    EXIT_CODE.store(code, Ordering::Relaxed);
}

/// Tells the daemon `line`: on the startup pipe, or on `reply` when the
/// pipe's reader is gone.
pub(crate) fn tell(line: &mut Message) {
    let bytes = line.finish();
    if !crate::sys::write_fd(STARTUP.load(Ordering::Relaxed), bytes) {
        crate::sys::write_fd(REPLY.load(Ordering::Relaxed), bytes);
    }
}

/// Tells of `f` and ends the shim.
#[cold]
#[inline(never)]
pub(crate) fn fail(f: Failure) -> ! {
    tell(&mut failure(f));
    crate::sys::exit(EXIT_CODE.load(Ordering::Relaxed))
}

/// A system call's result, or the end of the shim saying what failed.
pub(crate) trait OrFail<T> {
    fn or_fail(self, what: &'static str) -> T;
}

impl<T> OrFail<T> for io::Result<T> {
    #[inline]
    fn or_fail(self, what: &'static str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => fail(Failure::Sys(what, e)),
        }
    }
}

/// For the failures that do not end the shim (a `start` that cannot be
/// spawned is answered, and the shim goes on).
pub(crate) fn sys(what: &'static str) -> impl FnOnce(Errno) -> Failure {
    move |e| Failure::Sys(what, e)
}

/// The line that tells of `f`.
pub(crate) fn failure(f: Failure) -> Message {
    let mut l;
    match f {
        Failure::Sys(what, e) => {
            l = Reply::Error(b"").line();
            push_errno(l.push(what.as_bytes()).push(b": "), e);
        }
        Failure::Runtime(verb, code) => {
            let verb = verb.to_bytes();
            l = Reply::Failed {
                verb,
                code: code as u32,
            }
            .line();
        }
    }
    // Also kept in the process dir: the daemon makes stderr `shim.log`.
    let _ = io::write(crate::sys::stderr(), l.finish());
    l
}

/// Appends an errno by name (`ENOENT`), or as `errno N`.
pub(crate) fn push_errno(l: &mut Message, e: Errno) -> &mut Message {
    let n = e.raw_os_error();
    match errno_name(n) {
        Some(name) => l.push(name.as_bytes()),
        None => l.push(b"errno ").push_int(n.into()),
    }
}
