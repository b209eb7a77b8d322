//! `nanoctr attach ID`: joins a process's console (or its stdout, stderr
//! and stdin) through its shim's attach socket.
//!
//! The recent output is replayed first. On a terminal, the local terminal
//! is put in raw mode, so Ctrl-C, Ctrl-D, arrows and escape sequences reach
//! the container as they are, and is restored however the client ends.
//! The detach keys (docker's convention, default `ctrl-p,ctrl-q`) leave
//! the container running. SIGWINCH resizes the container's terminal. No
//! job control is needed: it works the same on a serial console.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::termios::{self, OptionalActions, Termios};

use crate::client::ask;
use crate::sys;

/// Parses docker-style detach keys: `ctrl-p,ctrl-q`, `ctrl-a,d`, ...
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, String> {
    let mut keys = Vec::new();
    for key in spec.split(',') {
        let byte = match key.strip_prefix("ctrl-") {
            Some(c) if c.len() == 1 => {
                let c = c.as_bytes()[0].to_ascii_uppercase();
                if !(b'@'..=b'_').contains(&c) {
                    return Err(format!("no such key: {key}"));
                }
                c & 0x1f
            }
            None if key.len() == 1 => key.as_bytes()[0],
            _ => return Err(format!("no such key: {key} (use ctrl-X or one character)")),
        };
        keys.push(byte);
    }
    Ok(keys)
}

/// Spots the detach sequence in what is typed. Bytes that might begin it
/// are held back; if the sequence does not complete, they are sent after
/// all.
pub struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachKeys {
    pub fn new(keys: Vec<u8>) -> Self {
        DetachKeys { keys, matched: 0 }
    }

    /// What of `input` goes to the container, and whether to detach.
    pub fn filter(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.keys.get(self.matched) == Some(&b) {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if self.keys.first() == Some(&b) {
                self.matched = 1;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// The local terminal in raw mode, put back when dropped.
struct RawMode(Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = io::stdin();
        if !termios::isatty(sys::fd(&stdin)) {
            return None;
        }
        let saved = termios::tcgetattr(sys::fd(&stdin)).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(sys::fd(&stdin), OptionalActions::Now, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(sys::fd(&io::stdin()), OptionalActions::Now, &self.0);
    }
}

/// Attaches; returns the client's exit status.
pub fn attach(socket: &Path, id: &str, proc: &str, keys: &[u8]) -> Result<Left, String> {
    let ok = ask(socket, &["attach", id, proc])?;
    let fields = crate::wire::proto::split_words(ok.as_bytes()).map_err(|e| e.to_string())?;
    let get = |k: &str| {
        fields
            .iter()
            .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
    };
    let path = get("path").ok_or("the daemon did not say where to attach")?;
    let terminal = get("terminal") == Some("1");
    let mut shim =
        UnixStream::connect(path).map_err(|e| format!("cannot attach to {path}: {e}"))?;
    let signals = sys::signalfd(&[libc::SIGWINCH, libc::SIGTERM, libc::SIGHUP, libc::SIGINT])
        .map_err(|e| format!("signalfd: {e}"))?;
    let raw = if terminal { RawMode::enter() } else { None };
    if terminal {
        resize(socket, id, proc);
    }
    let mut detach = DetachKeys::new(keys.to_vec());
    let (mut stdin, mut stdout) = (io::stdin(), io::stdout());
    let mut stdin_open = true;
    let mut buf = [0u8; 4096];
    let left = loop {
        let mut fds = vec![
            PollFd::from_borrowed_fd(sys::fd(&shim), PollFlags::IN),
            PollFd::from_borrowed_fd(sys::fd(&signals), PollFlags::IN),
        ];
        if stdin_open {
            fds.push(PollFd::from_borrowed_fd(sys::fd(&stdin), PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        if ready[0] {
            match shim.read(&mut buf) {
                Ok(0) | Err(_) => break Left::Ended,
                Ok(n) => {
                    if stdout
                        .write_all(&buf[..n])
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        break Left::Ended;
                    }
                }
            }
        }
        if ready[1] {
            let mut info = [0u8; 128];
            if let Ok(n @ 4..) = rustix::io::read(sys::fd(&signals), &mut info) {
                let _ = n;
                match i32::from_ne_bytes([info[0], info[1], info[2], info[3]]) {
                    libc::SIGWINCH if terminal => resize(socket, id, proc),
                    libc::SIGWINCH => {}
                    _ => break Left::Detached,
                }
            }
        }
        if stdin_open && ready[2] {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    // Piped input is used up: so is the container's.
                    stdin_open = false;
                    if !terminal {
                        let _ = ask(socket, &["closestdin", id, proc]);
                    }
                }
                Ok(n) => {
                    let (send, detached) = detach.filter(&buf[..n]);
                    if !send.is_empty() && shim.write_all(&send).is_err() {
                        break Left::Ended;
                    }
                    if detached {
                        break Left::Detached;
                    }
                }
            }
        }
    };
    drop(raw);
    if let Left::Ended = left {
        // The stream ends when the process does, or when the shim dropped
        // a client that could not keep up with it: then the shim is still
        // there to attach to a moment later.
        std::thread::sleep(std::time::Duration::from_millis(100));
        if UnixStream::connect(path).is_ok() {
            eprintln!("\r\nnanoctr: disconnected: the output came faster than this terminal took it; attach again");
        }
    }
    Ok(left)
}

/// How an attach ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// The stream ended: the process is gone (or the shim let go of a
    /// client too slow for it).
    Ended,
    /// The detach keys, or a signal to the client: the process runs on.
    Detached,
}

/// Gives the process's terminal the size of ours.
fn resize(socket: &Path, id: &str, proc: &str) {
    if let Ok(size) = termios::tcgetwinsize(sys::fd(&io::stdout())) {
        if size.ws_col > 0 && size.ws_row > 0 {
            let (c, r) = (size.ws_col.to_string(), size.ws_row.to_string());
            let _ = ask(socket, &["resize", id, proc, &c, &r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_key_specs() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), [0x10, 0x11]);
        assert_eq!(parse_detach_keys("ctrl-a,d").unwrap(), [0x01, b'd']);
        assert_eq!(parse_detach_keys("ctrl-@").unwrap(), [0x00]);
        assert!(parse_detach_keys("ctrl-pp").is_err());
        assert!(parse_detach_keys("alt-x").is_err());
        assert!(parse_detach_keys("ctrl-1").is_err());
    }

    #[test]
    fn detaching() {
        let mut d = DetachKeys::new(vec![0x10, 0x11]);
        assert_eq!(d.filter(b"ls\r"), (b"ls\r".to_vec(), false));
        // Split across reads.
        assert_eq!(d.filter(&[b'x', 0x10]), (b"x".to_vec(), false));
        assert_eq!(d.filter(&[0x11, b'y']), (vec![], true));
    }

    #[test]
    fn a_broken_sequence_is_sent_after_all() {
        let mut d = DetachKeys::new(vec![0x10, 0x11]);
        assert_eq!(d.filter(&[0x10, b'a']), (vec![0x10, b'a'], false));
        assert_eq!(d.filter(&[0x10, 0x10, 0x11]), (vec![0x10], true));
        let mut d = DetachKeys::new(vec![0x10, 0x11]);
        assert_eq!(
            d.filter(&[0x03, 0x04, 0x1b, b'[', b'A']),
            (vec![0x03, 0x04, 0x1b, b'[', b'A'], false)
        );
    }
}
