//! Talking to a test daemon: a connection and its answers, and byte
//! streams read until a pattern shows up (attach sockets, ptys).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nanoctr::wire::proto::ReplyLine;

use crate::{fields, ANSWER_TIMEOUT};

/// A whole answer: data lines, then the final line.
#[derive(Debug, Clone)]
pub struct Answer {
    pub data: Vec<String>,
    pub last: String,
}

impl Answer {
    /// Asserts `OK` and returns what follows it.
    #[track_caller]
    pub fn ok(&self) -> &str {
        match ReplyLine::parse(&self.last) {
            ReplyLine::Ok(rest) => rest,
            _ => panic!("expected OK, got {self:?}"),
        }
    }

    /// Asserts `ERR` and returns its code and message.
    #[track_caller]
    pub fn err(&self) -> (&str, &str) {
        match ReplyLine::parse(&self.last) {
            ReplyLine::Err(code, message) => (code, message),
            _ => panic!("expected ERR, got {self:?}"),
        }
    }

    /// Asserts `ERR CODE` and returns the message.
    #[track_caller]
    pub fn err_code(&self, code: &str) -> &str {
        let (got, message) = self.err();
        assert_eq!(got, code, "{self:?}");
        message
    }

    /// The value of `key` in the `OK` line.
    #[track_caller]
    pub fn ok_field(&self, key: &str) -> String {
        fields(self.ok())
            .remove(key)
            .unwrap_or_else(|| panic!("no {key}= in {self:?}"))
    }
}

/// A connection to a daemon.
pub struct Conn {
    pub(crate) writer: UnixStream,
    pub(crate) reader: BufReader<UnixStream>,
}

impl Conn {
    pub fn connect(socket: &Path) -> std::io::Result<Conn> {
        let writer = UnixStream::connect(socket)?;
        writer.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        let reader = BufReader::new(writer.try_clone()?);
        Ok(Conn { writer, reader })
    }

    /// Sends bytes. A daemon that turns a connection away answers and
    /// closes before reading, so a broken pipe here is not an error: the
    /// answer is still there to read.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        match self.writer.write_all(bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.expect("send to the daemon"),
        }
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Reads one whole answer.
    #[track_caller]
    pub fn answer(&mut self) -> Answer {
        let mut data = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .expect("read an answer (timed out?)");
            assert!(
                n > 0,
                "the daemon closed the connection; data so far: {data:?}"
            );
            let line = line.trim_end_matches('\n').to_string();
            if ReplyLine::parse(&line).is_final() {
                return Answer { data, last: line };
            }
            data.push(line);
        }
    }

    /// Reads one line (an event, on a subscription).
    #[track_caller]
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .expect("read a line (timed out?)");
        assert!(n > 0, "the daemon closed the connection");
        line.trim_end_matches('\n').to_string()
    }

    #[track_caller]
    pub fn ask(&mut self, line: &str) -> Answer {
        self.send(line);
        self.answer()
    }

    /// True if an answer (or anything) is waiting to be read, without
    /// blocking.
    pub fn has_input(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return true;
        }
        // The reader shares the socket (and so O_NONBLOCK); what it reads
        // here stays buffered for the next answer.
        self.writer.set_nonblocking(true).expect("nonblocking");
        let got = self.reader.fill_buf().map(|b| !b.is_empty());
        self.writer.set_nonblocking(false).expect("blocking");
        matches!(got, Ok(true))
    }

    /// How long a read may wait before the test fails.
    pub fn set_timeout(&self, limit: Duration) {
        self.writer
            .set_read_timeout(Some(limit))
            .expect("set a read timeout");
    }

    /// True once the daemon has closed the connection (and nothing is
    /// left to read).
    pub fn is_closed(&mut self) -> bool {
        matches!(self.reader.fill_buf(), Ok([]))
    }

    pub fn into_stream(self) -> UnixStream {
        self.writer
    }
}

/// A byte stream read until a pattern shows up: an attach socket, or the
/// master side of a pty a client runs on.
pub struct Stream<T> {
    pub io: T,
    pub seen: Vec<u8>,
}

impl<T: std::io::Read + std::io::Write> Stream<T> {
    pub fn new(io: T) -> Self {
        Stream {
            io,
            seen: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).expect("write");
    }

    /// Reads until `pattern` has come (in what was read since the last
    /// match), panicking after the answer timeout. Returns what came.
    #[track_caller]
    pub fn expect(&mut self, pattern: &str) -> String {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            if let Some(at) = find(&self.seen, pattern.as_bytes()) {
                let upto: Vec<u8> = self.seen.drain(..at + pattern.len()).collect();
                return String::from_utf8_lossy(&upto).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{pattern:?} did not come; got {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            let mut buf = [0u8; 4096];
            match self.io.read(&mut buf) {
                Ok(0) => panic!(
                    "EOF before {pattern:?}; got {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                    panic!(
                        "the other side is gone before {pattern:?}; got {:?}",
                        String::from_utf8_lossy(&self.seen)
                    )
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
