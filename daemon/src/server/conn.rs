//! A client connection: request lines in, reply bytes out, both bounded.

use std::fs::File;
use std::io::{self, Read, Write};

use rustix::event::epoll::EventFlags;

use crate::server::container::ProcRef;
use crate::wire::event::Filter;
use crate::wire::proto::MAX_LINE;
use crate::wire::Request;

/// Most reply bytes held for a client that does not read them; past this
/// the client is dropped rather than the daemon's memory growing.
pub const MAX_PENDING_OUTPUT: usize = 256 * 1024;

/// Most of the log one `logs` answer carries: it must fit a client's
/// output buffer. With the default 64 KiB cap the whole log always does.
pub(crate) const MAX_LOGS_ANSWER: u64 = 192 * 1024;

/// Request lines assembled from a byte stream: each at most [`MAX_LINE`]
/// bytes, and its end (LF, or CRLF).
#[derive(Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// Dropping the rest of an over-long line, up to its newline.
    discarding: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Complete(Vec<u8>),
    /// A line longer than [`MAX_LINE`] bytes; the rest of it, up to its
    /// newline, is dropped.
    TooLong,
}

/// Room for the longest line and its CRLF.
const LINE_ROOM: usize = MAX_LINE + 2;

impl LineBuffer {
    pub fn with_capacity() -> Self {
        LineBuffer {
            buf: Vec::with_capacity(LINE_ROOM),
            discarding: false,
        }
    }

    /// Reads once from `r` into the free room. `Ok(0)` is EOF (or a full
    /// buffer, which `next_line` empties first).
    pub fn fill(&mut self, r: &mut impl Read) -> io::Result<usize> {
        let len = self.buf.len();
        if len == LINE_ROOM {
            return Ok(0);
        }
        self.buf.resize(LINE_ROOM, 0);
        let got = r.read(&mut self.buf[len..]);
        self.buf.truncate(len + *got.as_ref().unwrap_or(&0));
        got
    }

    pub fn is_full(&self) -> bool {
        self.buf.len() == LINE_ROOM
    }

    /// Some bytes of a line are here, but not yet its end.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next complete line, without its newline.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            match self.buf.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                    line.pop();
                    if std::mem::take(&mut self.discarding) {
                        continue;
                    }
                    let text = line.strip_suffix(b"\r").unwrap_or(&line);
                    if text.len() > MAX_LINE {
                        return Some(Line::TooLong);
                    }
                    return Some(Line::Complete(line));
                }
                None if self.discarding => {
                    self.buf.clear();
                    return None;
                }
                None if self.buf.len() >= LINE_ROOM => {
                    self.buf.clear();
                    self.discarding = true;
                    return Some(Line::TooLong);
                }
                None => return None,
            }
        }
    }
}

/// The parts of the client table. Each has its own bound, so clients
/// following the event stream or waiting for exits can never take the
/// places of those asking something, and the control tty always has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connected to ask: `--max-clients` of them.
    Request,
    /// Waiting or following (`wait`, `events`, `logs follow`):
    /// `--max-followers` of them.
    Follower,
    /// The control tty's own place.
    Tty,
}

/// What a client waits for after sending a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The answer of a container operation or runtime call.
    Op,
    /// The exit of a process (`wait`).
    Wait(ProcRef),
    /// Following the event stream until it leaves.
    Events,
    /// Following a container's output log (`logs follow`).
    Logs,
    /// `wait ID healthy`: the container's health, until the deadline.
    Healthy(crate::slab::Ref, Option<std::time::Instant>),
}

/// A client following a process's output log: where it has read to.
pub struct LogFollow {
    pub process: ProcRef,
    /// `output` as it was opened; read to its end before moving on to a
    /// new `output` after a rotation.
    pub file: std::fs::File,
    pub inode: u64,
    /// The start of a line not finished yet.
    pub partial: Vec<u8>,
}

/// A client following the event stream. It holds no copies of events, only
/// its place in the daemon's retained log: a subscriber costs no memory,
/// and one that falls out of the retained window is cut off.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub filter: Filter,
    /// The sequence number to deliver next (if it matches).
    pub next: u64,
}

pub struct Client {
    /// A unix stream socket, or the control tty.
    pub stream: File,
    /// The control tty: a person typing lines at a serial console. It is
    /// never at its end (a ^D is only an empty read), and when it goes
    /// away it is opened again.
    pub tty: bool,
    pub input: LineBuffer,
    pub output: Vec<u8>,
    pub busy: Option<Busy>,
    /// A request that waits for a free runtime-call slot.
    pub stalled: Option<Request>,
    /// The client shut its writing side: answer what it sent, then close.
    pub eof: bool,
    /// The peer is gone altogether (HUP): what it sent still runs, but
    /// answers are dropped, and the socket is no longer watched.
    pub hung_up: bool,
    /// The epoll interest currently registered.
    pub interest: EventFlags,
    pub subscription: Option<Subscription>,
    pub follow: Option<LogFollow>,
    /// When it last sent a whole request line or was answered: an idle
    /// client is closed past `--client-timeout`, and the one idle longest
    /// makes room for a new client when the table is full.
    pub last_active: std::time::Instant,
}

impl Client {
    pub fn new(stream: File, tty: bool) -> Self {
        Client {
            last_active: std::time::Instant::now(),
            stream,
            tty,
            input: LineBuffer::with_capacity(),
            output: Vec::new(),
            busy: None,
            stalled: None,
            eof: false,
            hung_up: false,
            interest: EventFlags::empty(),
            subscription: None,
            follow: None,
        }
    }

    /// Ready to take its next request line.
    pub fn idle(&self) -> bool {
        self.busy.is_none() && self.stalled.is_none()
    }

    /// Following something that may last (`wait`, `events`, `logs
    /// follow`): it holds a follower's place, not a request's.
    pub fn following(&self) -> bool {
        matches!(
            self.busy,
            Some(Busy::Wait(_) | Busy::Events | Busy::Logs | Busy::Healthy(..))
        )
    }

    /// Which part of the client table it takes.
    pub fn role(&self) -> Role {
        match (self.tty, self.following()) {
            (true, _) => Role::Tty,
            (false, true) => Role::Follower,
            (false, false) => Role::Request,
        }
    }

    /// Nothing asked and nothing owed: it may be closed for being idle, or
    /// to make room, and loses nothing.
    pub fn quiet(&self) -> bool {
        !self.tty && self.idle() && self.output.is_empty()
    }

    /// Writes what it can of the pending output.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.output.is_empty() {
            match self.stream.write(&self.output) {
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The epoll interest this client needs now.
    pub fn wanted_interest(&self) -> EventFlags {
        let mut f = EventFlags::empty();
        if self.idle() && !self.eof && !self.input.is_full() {
            f |= EventFlags::IN | EventFlags::RDHUP;
        }
        if !self.output.is_empty() {
            f |= EventFlags::OUT;
        }
        f
    }

    /// Done with: it left, and everything it asked is answered and sent
    /// (or dropped, if it hung up).
    pub fn finished(&self) -> bool {
        self.eof && self.idle() && (self.output.is_empty() || self.hung_up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lb: &mut LineBuffer, mut bytes: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        loop {
            while let Some(l) = lb.next_line() {
                out.push(l);
            }
            if bytes.is_empty() {
                return out;
            }
            let n = lb.fill(&mut bytes).unwrap();
            assert!(n > 0 || lb.is_full());
        }
    }

    fn complete(s: &str) -> Line {
        Line::Complete(s.as_bytes().to_vec())
    }

    #[test]
    fn splits_lines() {
        let mut lb = LineBuffer::with_capacity();
        assert_eq!(
            feed(&mut lb, b"hello\nlist\r\nsta"),
            [complete("hello"), complete("list\r")]
        );
        assert_eq!(feed(&mut lb, b"te x\n"), [complete("state x")]);
    }

    #[test]
    fn longest_line_fits_with_either_end() {
        for end in [&b"\n"[..], b"\r\n"] {
            let mut lb = LineBuffer::with_capacity();
            let mut line = vec![b'a'; MAX_LINE];
            line.extend_from_slice(end);
            line.extend_from_slice(b"list\n");
            let got = feed(&mut lb, &line);
            assert_eq!(got.len(), 2, "{end:?}");
            let text = |l: &Line| match l {
                Line::Complete(l) => l.strip_suffix(b"\r").unwrap_or(l).len(),
                Line::TooLong => usize::MAX,
            };
            assert_eq!(text(&got[0]), MAX_LINE, "{end:?}");
            assert_eq!(got[1], complete("list"));
        }
        // One byte more is too long, however it ends.
        for end in [&b"\n"[..], b"\r\n"] {
            let mut lb = LineBuffer::with_capacity();
            let mut line = vec![b'a'; MAX_LINE + 1];
            line.extend_from_slice(end);
            line.extend_from_slice(b"list\n");
            assert_eq!(feed(&mut lb, &line), [Line::TooLong, complete("list")]);
        }
    }

    #[test]
    fn over_long_line_is_refused_once_and_dropped() {
        let mut lb = LineBuffer::with_capacity();
        let mut input = vec![b'x'; 3 * MAX_LINE];
        input.extend_from_slice(b"tail\nlist\n");
        assert_eq!(feed(&mut lb, &input), [Line::TooLong, complete("list")]);
        let mut input = vec![b'y'; MAX_LINE + 1];
        input.extend_from_slice(b"\nhello\n");
        assert_eq!(feed(&mut lb, &input), [Line::TooLong, complete("hello")]);
    }
}
