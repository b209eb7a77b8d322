//! Lines from the shim to the daemon: on its startup pipe the result of the
//! runtime call that makes its process (`created PID`, `failed VERB CODE`
//! or `error MESSAGE`), and on `reply` the answers to control lines
//! (`started`, `failed start CODE`, `error MESSAGE`), with the make result
//! again when the daemon that started the shim was gone before it could
//! read it.
//!
//! `failed VERB CODE` says the runtime exited with status CODE; its own
//! message is in the process dir's `log.json`, where the daemon reads it
//! (the shim does not parse JSON).

use crate::line::Line;

use super::MAX_REPLY_LINE;

/// The words that begin them.
pub mod word {
    pub const CREATED: &str = "created";
    pub const STARTED: &str = "started";
    pub const FAILED: &str = "failed";
    pub const ERROR: &str = "error";
}

/// A line from the shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The runtime made the process; its pid.
    Created(u32),
    /// `start` succeeded.
    Started,
    /// The runtime call `verb` exited with status `code`.
    Failed { verb: &'a [u8], code: u32 },
    /// What failed, for a person (one line of text).
    Error(&'a [u8]),
    /// Anything else (from a newer shim); ignored.
    Other,
}

impl<'a> Reply<'a> {
    /// Reads a line, without its newline.
    pub fn parse(line: &'a [u8]) -> Reply<'a> {
        let (first, rest) = match line.iter().position(|&b| b == b' ') {
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (line, &line[line.len()..]),
        };
        let is = |w: &str| first == w.as_bytes();
        if is(word::CREATED) {
            super::args::parse_u32(rest).map_or(Reply::Other, Reply::Created)
        } else if is(word::STARTED) {
            Reply::Started
        } else if is(word::FAILED) {
            let (verb, code) = match rest.iter().position(|&b| b == b' ') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => return Reply::Other,
            };
            match super::args::parse_u32(code) {
                Some(code) if !verb.is_empty() => Reply::Failed { verb, code },
                _ => Reply::Other,
            }
        } else if is(word::ERROR) {
            Reply::Error(rest)
        } else {
            Reply::Other
        }
    }

    /// The line, as [`Reply::parse`] reads it back; an error's text is
    /// put on one line (control bytes become spaces), and more of it may
    /// be pushed after.
    pub fn line(self) -> Line<MAX_REPLY_LINE> {
        let mut l = Line::new();
        match self {
            Reply::Created(pid) => l
                .push(word::CREATED.as_bytes())
                .push(b" ")
                .push_int(pid.into()),
            Reply::Started => l.push(word::STARTED.as_bytes()),
            Reply::Failed { verb, code } => l
                .push(word::FAILED.as_bytes())
                .push(b" ")
                .push_text(verb)
                .push(b" ")
                .push_int(code.into()),
            Reply::Error(text) => l.push(word::ERROR.as_bytes()).push(b" ").push_text(text),
            Reply::Other => &mut l,
        };
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies() {
        assert_eq!(Reply::parse(b"created 42"), Reply::Created(42));
        assert_eq!(Reply::parse(b"created x"), Reply::Other);
        assert_eq!(Reply::parse(b"created"), Reply::Other);
        assert_eq!(Reply::parse(b"started"), Reply::Started);
        assert_eq!(
            Reply::parse(b"error runc said no"),
            Reply::Error(b"runc said no")
        );
        assert_eq!(Reply::parse(b"error"), Reply::Error(b""));
        assert_eq!(
            Reply::parse(b"failed create 1"),
            Reply::Failed {
                verb: b"create",
                code: 1
            }
        );
        assert_eq!(Reply::parse(b"failed create"), Reply::Other);
        assert_eq!(Reply::parse(b"failed  1"), Reply::Other);
        assert_eq!(Reply::parse(b"failed start x"), Reply::Other);
        assert_eq!(Reply::parse(b"hello"), Reply::Other);
    }

    #[test]
    fn lines_parse_back_to_the_same() {
        for r in [
            Reply::Created(u32::MAX),
            Reply::Started,
            Reply::Failed {
                verb: b"start",
                code: 255,
            },
            Reply::Error(b"runtime create exited with status 1"),
        ] {
            let mut line = r.line();
            let bytes = line.finish();
            assert_eq!(Reply::parse(&bytes[..bytes.len() - 1]), r);
        }
        let mut l = Reply::Error(b"two\nlines").line();
        assert_eq!(l.finish(), b"error two lines\n");
    }
}
