//! nanoctr-shim: supervises one container process.
//!
//! The daemon starts one shim per process, with the process's state dir
//! (`<state-dir>/<id>/init/`) as its working directory. The shim
//!
//! 1. blocks SIGCHLD (taken through a signalfd in its loop, never in a
//!    handler), becomes a child subreaper and leaves the daemon's session,
//! 2. opens the `exit` fifo for writing and holds it for its whole life, so
//!    that the daemon sees EOF exactly when the shim is gone,
//! 3. runs `<runtime> create` with the container's stdio and reports
//!    `created PID`, `failed create CODE` or `error MESSAGE` on the startup
//!    fd (or, with `run=1`,
//!    `<runtime> run --detach`, and with `restore=DIR` `<runtime> restore
//!    --detach`, and then says `started` on `reply` too; with `exec=FILE`,
//!    `<runtime> exec --detach --process FILE`: an extra process in a
//!    running container, started once created),
//! 4. runs `<runtime> start` when `start` arrives on the `control` fifo and
//!    answers `started`, `failed start CODE` or `error MESSAGE` on the
//!    `reply` fifo,
//! 5. relays the container's stdio: a terminal's pty master (received from
//!    the runtime over a console socket) or pipes; what the container
//!    writes goes to a size-capped `output` log, a scrollback ring and
//!    every client attached on `attach.sock`; what they type goes back,
//! 6. reaps every child, and when the container's init exits writes
//!    `exitStatus` atomically (the exit code, or 128 + signal) and exits.
//!
//! It has no heap: every buffer is fixed and on the stack. Exit codes follow
//! s6: 100 for a bad command line, 111 when a system call fails, 101 for a
//! bug; 0 once `exitStatus` is written, 1 when `create` failed.
#![no_std]
#![no_main]
// Inline assembly on MIPS (the entry point and system calls in `sys.rs`)
// needs nightly, which that target is built with (as rustix's own MIPS
// system calls are).
#![cfg_attr(target_arch = "mips", feature(asm_experimental_arch))]

mod failure;
mod files;
mod relay;
mod supervise;
mod sys;

use failure::{tell, Message, OrFail, EXIT_CREATE_FAILED, EXIT_SYSTEM, EXIT_USAGE};
use files::write_atomic;
use nanoctr_shim::contract::args::{ArgError, ShimArgs};
use nanoctr_shim::contract::proc_dir;
use nanoctr_shim::contract::reply::Reply;
use rustix::fd::AsRawFd;
use rustix::fs::{self, Mode, OFlags};
use rustix::io;
use supervise::Shim;

fn main(words: sys::Args) -> i32 {
    let args = match ShimArgs::parse(words) {
        Ok(args) => args,
        Err(e) => {
            let mut l = Message::new();
            l.push(ArgError::PREFIX.as_bytes()).push(e.0.as_bytes());
            let _ = io::write(sys::stderr(), l.finish());
            return EXIT_USAGE;
        }
    };
    let startup = match sys::adopt_fd(args.startup_fd) {
        Ok(fd) => fd,
        Err(_) => return EXIT_USAGE,
    };
    let _ = io::fcntl_setfd(&startup, io::FdFlags::CLOEXEC);
    // Failures from here on are told on the startup pipe, and end the shim.
    failure::tell_on(startup.as_raw_fd(), -1);
    ensure_stdio();
    let mut shim = Shim::setup(&args);
    failure::tell_on(startup.as_raw_fd(), shim.reply.as_raw_fd());
    failure::exit_code(EXIT_CREATE_FAILED);
    let init = shim.create();
    tell(&mut Reply::Created(init.as_raw_pid() as u32).line());
    failure::tell_on(-1, -1);
    failure::exit_code(EXIT_SYSTEM);
    drop(startup);
    if args.run || args.restore.is_some() {
        let _ = io::write(&shim.reply, Reply::Started.line().finish());
    }

    let code = shim.supervise(init);
    match write_atomic(
        proc_dir::EXIT_STATUS.c,
        proc_dir::EXIT_STATUS_TMP.c,
        Message::new().push_int(code.into()),
    ) {
        Ok(()) => 0,
        Err(_) => EXIT_SYSTEM,
    }
}

/// Makes sure descriptors 0, 1 and 2 are open (on /dev/null if nothing
/// else), so no descriptor the shim opens can land on them.
fn ensure_stdio() {
    loop {
        let fd = fs::open(c"/dev/null", OFlags::RDWR, Mode::empty()).or_fail("open /dev/null");
        if fd.as_raw_fd() > 2 {
            return;
        }
        core::mem::forget(fd);
    }
}
