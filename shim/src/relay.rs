//! The container's stdio as the shim relays it: what it writes goes to a
//! size-capped log (with one rotated generation), to the scrollback and to
//! every attacher; what attachers type goes to the container. Fixed
//! buffers only; nothing here ever blocks the shim.

use core::ffi::CStr;

use nanoctr_shim::ring::Ring;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{self, Mode, OFlags, SeekFrom};
use rustix::io::{self, Errno};
use rustix::net::{self, SocketFlags};

/// Most clients attached at once; more are turned away.
pub const MAX_ATTACHERS: usize = 4;

pub struct Relay {
    /// What the container writes: the pty master, or the read end of its
    /// stdout/stderr pipe; `None` when not captured or once closed.
    pub output: Option<OwnedFd>,
    /// Where attachers' input goes: the pty master (a second descriptor)
    /// or the write end of the container's stdin pipe.
    pub input: Option<OwnedFd>,
    pub terminal: bool,
    log: Option<Log>,
    ring: Ring,
    /// `attach.sock`.
    pub listener: OwnedFd,
    pub attachers: [Option<OwnedFd>; MAX_ATTACHERS],
}

impl Relay {
    pub fn new(listener: OwnedFd, log_size: u32) -> Relay {
        Relay {
            output: None,
            input: None,
            terminal: false,
            log: Log::open(log_size).ok(),
            ring: Ring::default(),
            listener,
            attachers: [const { None }; MAX_ATTACHERS],
        }
    }

    /// Reads what the container wrote and passes it on. Returns false when
    /// there was nothing (or nothing more) to read.
    pub fn on_output(&mut self) -> bool {
        let Some(out) = &self.output else {
            return false;
        };
        // Read into the scrollback itself: no second 4 KiB buffer on the
        // stack, whose pages would stay resident for the shim's life.
        let n = match io::read(out, self.ring.room()) {
            Ok(n) if n > 0 => n,
            Err(Errno::AGAIN | Errno::INTR) => return false,
            // EOF on a pipe, EIO on a pty whose other side is gone.
            _ => {
                self.output = None;
                return false;
            }
        };
        let data = self.ring.commit(n);
        if let Some(log) = &mut self.log {
            log.write(data);
        }
        for slot in &mut self.attachers {
            if slot.as_ref().is_some_and(|a| !write_all(a, data)) {
                // Too slow or gone: dropped rather than waited for.
                *slot = None;
            }
        }
        true
    }

    /// Reads what is left to read, after the container has exited.
    pub fn drain(&mut self) {
        for _ in 0..256 {
            if !self.on_output() {
                return;
            }
        }
    }

    /// A client connects: it gets the scrollback, then what comes.
    pub fn on_listener(&mut self) {
        let Ok(client) =
            net::accept_with(&self.listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
        else {
            return;
        };
        let (a, b) = self.ring.parts();
        if let Some(slot) = self.attachers.iter_mut().find(|s| s.is_none()) {
            if write_all(&client, a) && write_all(&client, b) {
                *slot = Some(client);
            }
        }
    }

    /// An attacher typed something (or left).
    pub fn on_attacher(&mut self, i: usize) {
        let Some(a) = &self.attachers[i] else {
            return;
        };
        let mut buf = [0u8; 1024];
        match io::read(a, &mut buf) {
            Ok(n) if n > 0 => {
                if let Some(input) = &self.input {
                    let _ = write_all(input, &buf[..n]);
                }
            }
            Err(Errno::AGAIN | Errno::INTR) => {}
            _ => self.attachers[i] = None,
        }
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        if let (true, Some(pty)) = (self.terminal, &self.output) {
            let size = rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let _ = rustix::termios::tcsetwinsize(pty, size);
        }
    }

    /// Ends the container's input: end-of-file (^D) on a terminal, the
    /// stdin pipe closed otherwise.
    pub fn close_stdin(&mut self) {
        if self.terminal {
            if let Some(pty) = &self.input {
                let _ = write_all(pty, b"\x04");
            }
        } else {
            self.input = None;
        }
    }
}

/// Writes all of `data` to a non-blocking descriptor, or reports that it
/// could not.
fn write_all(fd: impl AsFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match io::write(&fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// `output`, capped: past `cap` bytes it becomes `output.1` (replacing the
/// one before) and a new `output` starts, so at most twice the cap is on
/// disk, and the newest output is always there.
struct Log {
    fd: OwnedFd,
    size: u64,
    cap: u64,
}

const OUTPUT: &CStr = nanoctr_shim::contract::proc_dir::OUTPUT.c;
const OUTPUT_1: &CStr = nanoctr_shim::contract::proc_dir::OUTPUT_OLD.c;

impl Log {
    fn open(cap: u32) -> io::Result<Log> {
        let fd = open_output(OFlags::APPEND)?;
        let size = fs::seek(&fd, SeekFrom::End(0))?;
        Ok(Log {
            fd,
            size,
            cap: cap.into(),
        })
    }

    fn write(&mut self, data: &[u8]) {
        if self.size + data.len() as u64 > self.cap {
            if fs::rename(OUTPUT, OUTPUT_1).is_err() {
                return;
            }
            match open_output(OFlags::TRUNC) {
                Ok(fd) => self.fd = fd,
                Err(_) => return,
            }
            self.size = 0;
        }
        if write_all(&self.fd, data) {
            self.size += data.len() as u64;
        }
    }
}

fn open_output(extra: OFlags) -> io::Result<OwnedFd> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::APPEND | extra;
    fs::open(OUTPUT, flags, Mode::from_raw_mode(0o640))
}

/// Takes the pty master the runtime sent over the console socket
/// (SCM_RIGHTS). The runtime has exited by now, so the connection is
/// waiting, or never came.
pub fn receive_console(listener: &OwnedFd) -> io::Result<OwnedFd> {
    let conn = net::accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    crate::sys::receive_fd(conn.as_fd())
}
