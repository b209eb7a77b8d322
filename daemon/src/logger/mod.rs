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

/// The most bytes in one record (RFC 3164).
pub const MAX_RECORD: usize = 1024;

/// syslog facility `daemon`.
const FACILITY_DAEMON: u8 = 3;

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

/// A record being built: bytes past [`MAX_RECORD`] are dropped.
struct Buf {
    b: [u8; MAX_RECORD],
    len: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            b: [0; MAX_RECORD],
            len: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.b[..self.len]
    }

    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(MAX_RECORD - self.len);
        self.b[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    /// `n` in decimal, zero-padded (or space-padded) to `width` digits.
    fn num(&mut self, mut n: u64, width: usize, pad: u8) {
        let mut d = [pad; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let i = i.min(d.len() - width);
        self.push(&d[i..]);
    }

    /// The message, newlines and carriage returns as spaces, trailing ones
    /// dropped.
    fn message(&mut self, msg: &str) {
        for &c in msg.trim_end_matches(['\n', '\r']).as_bytes() {
            self.push(&[if c == b'\n' || c == b'\r' { b' ' } else { c }]);
        }
    }
}

/// `<PRI>Mmm dd hh:mm:ss nanoctrd[PID]: msg` for `time` (seconds since
/// the epoch, shown in UTC).
fn syslog_record(out: &mut Buf, level: Level, time: u64, pid: u32, msg: &str) {
    const MONTHS: &[u8; 36] = b"JanFebMarAprMayJunJulAugSepOctNovDec";
    let (_, month, day) = civil_from_days(time / 86400);
    let secs = time % 86400;
    out.push(b"<");
    out.num(u64::from(FACILITY_DAEMON * 8 + level.severity()), 1, b'0');
    out.push(b">");
    let m = (month as usize - 1) * 3;
    out.push(&MONTHS[m..m + 3]);
    out.push(b" ");
    out.num(u64::from(day), 2, b' ');
    out.push(b" ");
    out.num(secs / 3600, 2, b'0');
    out.push(b":");
    out.num(secs / 60 % 60, 2, b'0');
    out.push(b":");
    out.num(secs % 60, 2, b'0');
    out.push(b" nanoctrd[");
    out.num(u64::from(pid), 1, b'0');
    out.push(b"]: ");
    out.message(msg);
}

/// `nanoctrd: [error: |warning: ]msg\n`, at most [`MAX_RECORD`] bytes.
fn stderr_line(out: &mut Buf, level: Level, msg: &str) {
    out.push(match level {
        Level::Error => b"nanoctrd: error: ",
        Level::Warn => b"nanoctrd: warning: ",
        Level::Info | Level::Debug => b"nanoctrd: ",
    });
    out.message(msg);
    out.len = out.len.min(MAX_RECORD - 1);
    out.push(b"\n");
}

/// The proleptic Gregorian (year, month 1-12, day 1-31) of a day counted
/// from 1970-01-01 (H. Hinnant's `civil_from_days`, for days >= 0).
fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of the 400-year era
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0-11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::RecvTimeoutError;
    use std::time::Duration;

    fn days(y: u64, m: u32, d: u32) -> u64 {
        // Counted the slow way, to check the fast one.
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let mut n = (1970..y)
            .map(|y| if leap(y) { 366 } else { 365 })
            .sum::<u64>();
        let lens = [
            31,
            if leap(y) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        n += lens[..m as usize - 1].iter().sum::<u64>();
        n + u64::from(d) - 1
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(10_956), (1999, 12, 31));
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        for (y, m, d) in [(1972, 2, 29), (2023, 12, 31), (2038, 1, 19), (2400, 2, 29)] {
            assert_eq!(civil_from_days(days(y, m, d)), (y, m, d));
        }
        // Every day for 150 years follows the one before it.
        let mut prev = civil_from_days(0);
        for n in 1..days(2120, 1, 1) {
            let (y, m, d) = civil_from_days(n);
            let next_day = (prev.0, prev.1, prev.2 + 1);
            let next_month = (prev.0, prev.1 + 1, 1);
            let next_year = (prev.0 + 1, 1, 1);
            assert!(
                [next_day, next_month, next_year].contains(&(y, m, d)),
                "{n}: {prev:?} -> {:?}",
                (y, m, d)
            );
            prev = (y, m, d);
        }
    }

    fn record(level: Level, time: u64, pid: u32, msg: &str) -> String {
        let mut b = Buf::new();
        syslog_record(&mut b, level, time, pid, msg);
        String::from_utf8(b.bytes().to_vec()).unwrap()
    }

    #[test]
    fn syslog_framing() {
        // 2024-11-09 08:05:03 UTC
        let t = days(2024, 11, 9) * 86400 + 8 * 3600 + 5 * 60 + 3;
        assert_eq!(
            record(Level::Info, t, 42, "serving"),
            "<30>Nov  9 08:05:03 nanoctrd[42]: serving"
        );
        assert_eq!(
            record(Level::Error, 0, 1, "x"),
            "<27>Jan  1 00:00:00 nanoctrd[1]: x"
        );
        assert_eq!(record(Level::Warn, 0, 1, "x").get(..4), Some("<28>"));
        assert_eq!(record(Level::Debug, 0, 1, "x").get(..4), Some("<31>"));
        let t = days(2000, 12, 31) * 86400 + 86399;
        assert_eq!(
            record(Level::Info, t, 4_294_967_295, "a\nb\r\nc\n"),
            "<30>Dec 31 23:59:59 nanoctrd[4294967295]: a b  c"
        );
    }

    #[test]
    fn truncated_at_1024() {
        let long = "x".repeat(2000);
        let r = record(Level::Info, 0, 7, &long);
        assert_eq!(r.len(), MAX_RECORD);
        assert!(r.starts_with("<30>Jan  1 00:00:00 nanoctrd[7]: xxx"));

        let mut b = Buf::new();
        stderr_line(&mut b, Level::Warn, &long);
        assert_eq!(b.len, MAX_RECORD);
        assert_eq!(b.bytes()[MAX_RECORD - 1], b'\n');
    }

    #[test]
    fn stderr_lines() {
        let line = |level, msg| {
            let mut b = Buf::new();
            stderr_line(&mut b, level, msg);
            String::from_utf8(b.bytes().to_vec()).unwrap()
        };
        assert_eq!(line(Level::Error, "bad"), "nanoctrd: error: bad\n");
        assert_eq!(line(Level::Warn, "odd"), "nanoctrd: warning: odd\n");
        assert_eq!(line(Level::Info, "serving x"), "nanoctrd: serving x\n");
        assert_eq!(line(Level::Debug, "a\nb\n"), "nanoctrd: a b\n");
    }

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
