//! What can go wrong, and how the shim says so: the line `error MESSAGE`
//! or `failed VERB CODE` it tells the daemon (and writes to its stderr,
//! `shim.log`), and its exit codes, which follow s6.

use core::ffi::CStr;

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
