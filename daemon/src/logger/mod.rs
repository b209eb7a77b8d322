//! The daemon's log: to stderr, or to syslog.
//!
//! One global logger is set at start-up with [`init`]; [`error`], [`warn`]
//! and [`info`] write to it. Before `init` the log goes to stderr at level
//! info. The global is a `Logger` writing to the process's stderr; the
//! tests below make their own, whose stderr is a buffer they read.
//!
//! Records are built in a fixed buffer on the stack, never on the heap.
//!
//! - Stderr: one line per record, `nanoctrd: error: msg`,
//!   `nanoctrd: warning: msg`, or `nanoctrd: msg` for info and debug.
//! - Syslog: RFC 3164 framing, `<PRI>Mmm dd hh:mm:ss nanoctrd[PID]: msg`,
//!   facility daemon, sent as one datagram on a unix socket (usually
//!   `/dev/log`). The timestamp is the system clock in UTC: boards often
//!   have no time zone set, and the syslog daemon, which knows its own
//!   zone, usually writes its own time anyway.
//!
//! Newlines (and carriage returns) in a message become spaces, so a
//! record is always one line and one datagram. A record is cut at 1024
//! bytes, the RFC 3164 limit (the stderr line too, newline included).
//!
//! Nothing here blocks the loop on syslog: a datagram is sent with
//! `MSG_DONTWAIT`. If the send fails (no socket, syslog daemon restarted,
//! its queue full), the logger reconnects once and resends; if that fails
//! too the record goes to stderr instead.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::net::SendFlags;

use crate::sys;

mod record;

use record::{stderr_line, syslog_record, Buf};

/// The most bytes in one record (RFC 3164).
pub const MAX_RECORD: usize = 1024;

/// How much a record matters; a logger passes records at its level and
/// above (`Error` is the highest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    /// `error`, `warn`, `info` or `debug`.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "error" => Level::Error,
            "warn" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }

    /// The syslog severity: err (3), warning (4), info (6), debug (7).
    fn severity(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug => 7,
        }
    }
}

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    /// A syslog daemon's unix datagram socket, usually `/dev/log`.
    Syslog(PathBuf),
}

/// A logger: its level, its syslog socket if it has one, and where stderr
/// lines go (the process's stderr, or a test's buffer).
struct Logger<W = io::Stderr> {
    level: Level,
    pid: u32,
    syslog: Option<Syslog>,
    stderr: W,
}

struct Syslog {
    path: PathBuf,
    sock: Option<UnixDatagram>,
}

impl Syslog {
    fn connect(&mut self) -> bool {
        self.sock = UnixDatagram::unbound()
            .and_then(|s| s.connect(&self.path).map(|()| s))
            .ok();
        self.sock.is_some()
    }

    fn send(&self, record: &[u8]) -> bool {
        match &self.sock {
            Some(s) => rustix::net::send(sys::fd(s), record, SendFlags::DONTWAIT).is_ok(),
            None => false,
        }
    }
}

impl<W: Write> Logger<W> {
    /// A logger writing records at `level` and above to `sink`, and stderr
    /// lines to `stderr`. A syslog socket is connected now if it can be,
    /// else at the first record.
    fn new(sink: Sink, level: Level, stderr: W) -> Logger<W> {
        let syslog = match sink {
            Sink::Stderr => None,
            Sink::Syslog(path) => {
                let mut s = Syslog { path, sock: None };
                s.connect();
                Some(s)
            }
        };
        Logger {
            level,
            pid: std::process::id(),
            syslog,
            stderr,
        }
    }

    /// Whether a record at `level` would be written.
    fn enabled(&self, level: Level) -> bool {
        level <= self.level
    }

    /// Writes `msg` if `level` passes.
    fn log(&mut self, level: Level, msg: &str) {
        if !self.enabled(level) {
            return;
        }
        if let Some(s) = &mut self.syslog {
            let mut rec = Buf::new();
            syslog_record(&mut rec, level, now(), self.pid, msg);
            if s.send(rec.bytes()) || (s.connect() && s.send(rec.bytes())) {
                return;
            }
        }
        let mut line = Buf::new();
        stderr_line(&mut line, level, msg);
        let _ = self.stderr.write_all(line.bytes());
    }
}

static GLOBAL: Mutex<Option<Logger>> = Mutex::new(None);

/// Writes `msg` to the global logger.
fn log(level: Level, msg: &str) {
    let mut g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(|| Logger::new(Sink::Stderr, Level::Info, io::stderr()))
        .log(level, msg)
}

/// Sets the global logger; called once at start-up (a second call replaces
/// the first).
pub fn init(sink: Sink, level: Level) {
    let l = Logger::new(sink, level, io::stderr());
    *GLOBAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(l);
}

/// A record at level error to the global logger.
pub fn error(msg: &str) {
    log(Level::Error, msg)
}

/// A record at level warn to the global logger.
pub fn warn(msg: &str) {
    log(Level::Warn, msg)
}

/// A record at level info to the global logger.
pub fn info(msg: &str) {
    log(Level::Info, msg)
}

/// Seconds since the epoch by the system clock (0 if it is before 1970).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::Duration;

    #[test]
    fn levels() {
        assert_eq!(Level::parse("warn"), Some(Level::Warn));
        assert_eq!(Level::parse("debug"), Some(Level::Debug));
        assert_eq!(Level::parse("WARN"), None);
        assert_eq!(Level::parse("notice"), None);
        let mut l = Logger::new(Sink::Stderr, Level::Warn, Vec::new());
        assert!(l.enabled(Level::Error) && l.enabled(Level::Warn));
        assert!(!l.enabled(Level::Info) && !l.enabled(Level::Debug));
        // What passes is written, in order; what does not, is not.
        for level in [Level::Debug, Level::Warn, Level::Info, Level::Error] {
            l.log(level, &format!("{level:?}"));
        }
        assert_eq!(
            text(&l.stderr),
            "nanoctrd: warning: Warn\nnanoctrd: error: Error\n"
        );
        let l = Logger::new(Sink::Stderr, Level::Debug, Vec::new());
        assert!(l.enabled(Level::Debug));
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nanoctr-logger-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn recv(sock: &UnixDatagram) -> Option<String> {
        let mut b = [0u8; 2048];
        sock.recv(&mut b)
            .ok()
            .map(|n| String::from_utf8(b[..n].to_vec()).unwrap())
    }

    #[test]
    fn syslog_socket() {
        let dir = temp_dir("socket");
        let path = dir.join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut l = Logger::new(Sink::Syslog(path.clone()), Level::Info, Vec::new());
        l.log(Level::Warn, "disk full");
        l.log(Level::Debug, "not sent");
        l.log(Level::Info, "3 of 4");
        let pid = std::process::id();
        let got = recv(&server).unwrap();
        assert!(got.starts_with("<28>"), "{got}");
        assert!(
            got.ends_with(&format!(" nanoctrd[{pid}]: disk full")),
            "{got}"
        );
        // The timestamp is "Mmm dd hh:mm:ss" of now.
        let ts = &got[4..19];
        assert!(
            ts.as_bytes()[3] == b' ' && ts.as_bytes()[6] == b' ' && &ts[9..10] == ":",
            "{ts}"
        );
        let got = recv(&server).unwrap();
        assert!(
            got.starts_with("<30>") && got.ends_with("]: 3 of 4"),
            "{got}"
        );

        // The syslog daemon restarts: a new socket at the same path. The
        // logger reconnects and the record is not lost.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        l.log(Level::Error, "again");
        let got = recv(&server).unwrap();
        assert!(
            got.starts_with("<27>") && got.ends_with("]: again"),
            "{got}"
        );

        // Everything so far went to syslog.
        assert_eq!(text(&l.stderr), "");

        // The syslog daemon goes away: the record goes to stderr instead.
        drop(server);
        std::fs::remove_file(&path).unwrap();
        l.log(Level::Error, "to stderr");
        assert_eq!(text(&l.stderr), "nanoctrd: error: to stderr\n");
        // There never was one: the same.
        let missing = Sink::Syslog(dir.join("missing"));
        let mut l = Logger::new(missing, Level::Info, Vec::new());
        l.log(Level::Info, "to stderr too");
        assert_eq!(text(&l.stderr), "nanoctrd: to stderr too\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn syslog_full_queue_does_not_block() {
        let dir = temp_dir("full");
        let path = dir.join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        // Nobody reads: the queue (net.unix.max_dgram_qlen, 10 by default)
        // fills, and the logger goes on, to stderr. Logged on a thread of
        // its own, so a send that blocks fails the test instead of hanging
        // it.
        let mut l = Logger::new(Sink::Syslog(path), Level::Info, Vec::new());
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut n = 0;
            // Until three records have gone to stderr.
            while l.stderr.iter().filter(|&&b| b == b'\n').count() < 3 {
                assert!(n < 10_000, "the queue never filled");
                l.log(Level::Info, &format!("record {n}"));
                n += 1;
            }
            done.send((l, n)).unwrap();
        });
        let (l, n) = match finished.recv_timeout(Duration::from_secs(10)) {
            Ok(got) => got,
            Err(RecvTimeoutError::Timeout) => panic!("logging to a full syslog queue blocked"),
            Err(RecvTimeoutError::Disconnected) => panic!("the logging thread failed"),
        };
        // Each record went to exactly one place, in order: the first ones
        // to syslog while the queue had room, the rest to stderr.
        let mut sent = Vec::new();
        while let Some(got) = recv(&server) {
            let msg = got.split_once("]: ").expect("a syslog record").1;
            sent.push(msg.to_string());
        }
        let stderr: Vec<String> = text(&l.stderr)
            .lines()
            .map(|line| line.strip_prefix("nanoctrd: ").unwrap().to_string())
            .collect();
        assert!(!sent.is_empty(), "nothing reached syslog");
        let all: Vec<String> = sent.iter().chain(&stderr).cloned().collect();
        let want: Vec<String> = (0..n).map(|i| format!("record {i}")).collect();
        assert_eq!(all, want, "{} to syslog, then stderr", sent.len());
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
