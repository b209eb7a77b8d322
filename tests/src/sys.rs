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
