//! The protocol as the daemon reads it from a client: a byte stream cut
//! into lines by `conn::LineBuffer` (reads of any size), each line into
//! words (`proto::split_words`), the words into a request
//! (`request::Request::parse`), and a refusal into its `ERR` line
//! (`proto::Reply::err`), which a client reads back with
//! `proto::ReplyLine::parse`.
//!
//! Checked, beyond "never panics":
//! - the lines are those of the stream, whatever the read sizes: a line of
//!   at most `MAX_LINE` bytes besides its LF or CRLF as it is, a longer one
//!   as one `TooLong`;
//! - a refusal is exactly one line, `ERR CODE message`, and reads back as
//!   that code and message (control characters as spaces);
//! - every word, written with `proto::quote`, splits back to itself (a
//!   control character other than the tab comes back as a space).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanoctr::server::conn::{Line, LineBuffer};
use nanoctr::wire::proto::{quote, split_words, Code, Error, Reply, ReplyLine, MAX_LINE};
use nanoctr::wire::Request;
use nanoctr_fuzz::Reads;

fuzz_target!(|data: &[u8]| {
    let lines = read_lines(data);
    assert_eq!(lines, expected_lines(data));
    for line in &lines {
        match line {
            Line::TooLong => refusal(&Error::new(
                Code::TooLong,
                format!("request longer than {MAX_LINE} bytes"),
            )),
            Line::Complete(line) => request(line),
        }
    }
});

/// The lines a `LineBuffer` gives for the stream `data`, read in pieces.
fn read_lines(data: &[u8]) -> Vec<Line> {
    let mut reads = Reads::new(data);
    let mut buf = LineBuffer::with_capacity();
    let mut rest = data;
    let mut lines = Vec::new();
    let mut rounds = 0;
    loop {
        let take = rest.len().min(reads.size(2 * MAX_LINE));
        let mut piece = &rest[..take];
        let got = buf.fill(&mut piece).expect("a slice reads without error");
        assert!(got <= take);
        rest = &rest[got..];
        while let Some(line) = buf.next_line() {
            if let Line::Complete(l) = &line {
                assert!(l.len() <= MAX_LINE + 1 && !l.contains(&b'\n'));
            }
            lines.push(line);
            assert!(lines.len() <= data.len() + 1);
        }
        assert!(!buf.is_full(), "next_line leaves room for the next read");
        if rest.is_empty() && got == 0 {
            return lines;
        }
        rounds += 1;
        assert!(rounds <= data.len() + 1, "no progress");
    }
}

/// The same lines, from the whole stream at once.
fn expected_lines(data: &[u8]) -> Vec<Line> {
    let mut pieces: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    // The last piece has no newline: a line only once it cannot be one
    // that fits, with its CRLF.
    let last = pieces.pop().unwrap_or_default();
    let mut lines: Vec<Line> = pieces
        .into_iter()
        .map(|l| {
            let text = l.strip_suffix(b"\r").unwrap_or(l);
            match text.len() <= MAX_LINE {
                true => Line::Complete(l.to_vec()),
                false => Line::TooLong,
            }
        })
        .collect();
    if last.len() >= MAX_LINE + 2 {
        lines.push(Line::TooLong);
    }
    lines
}

/// One request line, as the daemon's server takes it.
fn request(line: &[u8]) {
    let words = match split_words(line) {
        Ok(words) => words,
        Err(e) => return refusal(&e),
    };
    quoted_words_come_back(&words);
    if words.is_empty() {
        // The daemon skips empty lines without an answer.
        return;
    }
    if let Err(e) = Request::parse(&words) {
        refusal(&e);
    }
}

/// A refusal's reply line, and how a client reads it.
fn refusal(e: &Error) {
    let mut r = Reply::new();
    r.err(e);
    let bytes = r.as_bytes();
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1, "{e:?}");
    assert!(
        bytes.starts_with(b"ERR ") && bytes.ends_with(b"\n"),
        "{e:?}"
    );
    let text = std::str::from_utf8(bytes).expect("a reply line is UTF-8");
    let parsed = ReplyLine::parse(text.strip_suffix('\n').unwrap_or(text));
    assert!(parsed.is_final());
    let message: String = e
        .message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    assert_eq!(
        parsed,
        ReplyLine::Err(e.code.as_str(), &message),
        "{e:?} as {text:?}"
    );
}

/// The words, quoted and joined into a line, split back into themselves.
fn quoted_words_come_back(words: &[String]) {
    let line: Vec<String> = words.iter().map(|w| quote(w).into_owned()).collect();
    let line = line.join(" ");
    let back = split_words(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
    let expected: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
                .collect()
        })
        .collect();
    assert_eq!(back, expected, "{line:?}");
}
