//! Lines on the `control` fifo, from the daemon to the shim.

use crate::line::Line;

use super::MAX_CONTROL_LINE;

/// The words that begin them.
pub mod word {
    pub const START: &str = "start";
    pub const RESIZE: &str = "resize";
    pub const CLOSE_STDIN: &str = "closestdin";
    pub const KILL: &str = "kill";
}

/// A request on the control fifo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Run `<runtime> start ID`.
    Start,
    /// `resize COLS ROWS`: the pty's new size.
    Resize { cols: u16, rows: u16 },
    /// `closestdin`: end the container's input.
    CloseStdin,
    /// `kill SIGNAL`: signal the supervised process, unless it has been
    /// reaped already (so a recycled pid is never hit).
    Kill { signal: i32 },
    /// Anything else; ignored, so an older shim survives a newer daemon.
    Unknown,
}

impl Control {
    pub fn parse(line: &[u8]) -> Control {
        let line = trim(line);
        let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let number = |w: Option<&[u8]>| {
            w.and_then(super::args::parse_u32)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&n| n > 0)
        };
        let Some(first) = words.next() else {
            return Control::Unknown;
        };
        let is = |w: &str| first == w.as_bytes();
        if is(word::START) && line == first {
            Control::Start
        } else if is(word::CLOSE_STDIN) && line == first {
            Control::CloseStdin
        } else if is(word::KILL) {
            match (number(words.next()), words.next()) {
                (Some(signal @ 1..=64), None) => Control::Kill {
                    signal: signal.into(),
                },
                _ => Control::Unknown,
            }
        } else if is(word::RESIZE) {
            match (number(words.next()), number(words.next()), words.next()) {
                (Some(cols), Some(rows), None) => Control::Resize { cols, rows },
                _ => Control::Unknown,
            }
        } else {
            Control::Unknown
        }
    }

    /// The line, as [`Control::parse`] reads it back (`Unknown` is an
    /// empty line).
    pub fn line(self) -> Line<MAX_CONTROL_LINE> {
        let mut l = Line::new();
        match self {
            Control::Start => l.push(word::START.as_bytes()),
            Control::CloseStdin => l.push(word::CLOSE_STDIN.as_bytes()),
            Control::Kill { signal } => l
                .push(word::KILL.as_bytes())
                .push(b" ")
                .push_int(signal.into()),
            Control::Resize { cols, rows } => l
                .push(word::RESIZE.as_bytes())
                .push(b" ")
                .push_int(cols.into())
                .push(b" ")
                .push_int(rows.into()),
            Control::Unknown => &mut l,
        };
        l
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b' '] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_control_words() {
        assert_eq!(Control::parse(b"start"), Control::Start);
        assert_eq!(Control::parse(b"start\r"), Control::Start);
        assert_eq!(Control::parse(b"start now"), Control::Unknown);
        assert_eq!(Control::parse(b""), Control::Unknown);
        assert_eq!(
            Control::parse(b"resize 100 30"),
            Control::Resize {
                cols: 100,
                rows: 30
            }
        );
        assert_eq!(Control::parse(b"resize 0 30"), Control::Unknown);
        assert_eq!(Control::parse(b"resize 100"), Control::Unknown);
        assert_eq!(Control::parse(b"resize 100 30 1"), Control::Unknown);
        assert_eq!(Control::parse(b"resize 70000 30"), Control::Unknown);
        assert_eq!(Control::parse(b"closestdin\r"), Control::CloseStdin);
        assert_eq!(Control::parse(b"kill 9"), Control::Kill { signal: 9 });
        assert_eq!(Control::parse(b"kill 64"), Control::Kill { signal: 64 });
        assert_eq!(Control::parse(b"kill 65"), Control::Unknown);
        assert_eq!(Control::parse(b"kill 0"), Control::Unknown);
        assert_eq!(Control::parse(b"kill"), Control::Unknown);
        assert_eq!(Control::parse(b"kill 9 9"), Control::Unknown);
    }

    #[test]
    fn lines_parse_back_to_the_same() {
        for c in [
            Control::Start,
            Control::CloseStdin,
            Control::Kill { signal: 64 },
            Control::Resize {
                cols: 65535,
                rows: 1,
            },
        ] {
            let mut line = c.line();
            let bytes = line.finish();
            assert_eq!(bytes.last(), Some(&b'\n'));
            assert_eq!(Control::parse(&bytes[..bytes.len() - 1]), c);
        }
    }
}
