//! One record, built in a fixed buffer on the stack: the syslog framing
//! (RFC 3164, with the date in UTC from the epoch seconds) and the stderr
//! line.

use super::{Level, MAX_RECORD};

/// syslog facility `daemon`.
const FACILITY_DAEMON: u8 = 3;

/// A record being built: bytes past [`MAX_RECORD`] are dropped.
pub(super) struct Buf {
    b: [u8; MAX_RECORD],
    len: usize,
}

impl Buf {
    pub(super) fn new() -> Buf {
        Buf {
            b: [0; MAX_RECORD],
            len: 0,
        }
    }

    pub(super) fn bytes(&self) -> &[u8] {
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
pub(super) fn syslog_record(out: &mut Buf, level: Level, time: u64, pid: u32, msg: &str) {
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
pub(super) fn stderr_line(out: &mut Buf, level: Level, msg: &str) {
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
}
