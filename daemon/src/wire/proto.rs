//! The control protocol, version 1: the words of a line and the lines of a
//! reply. The daemon and the client share this module, and a person on a
//! serial console types the same lines.
//!
//! A request is one line of at most [`MAX_LINE`] bytes (LF, or CRLF).
//! Words are separated by spaces or tabs; a double-quoted part may hold
//! spaces, with `\"` and `\\` inside it, and quoted and plain parts join into
//! one word (`label.note="two words"`).
//!
//! A reply is zero or more data lines, then exactly one final line:
//! `OK [key=value ...]` or `ERR CODE message`. A data line is `key=value`
//! words, or `| ` followed by free text, so no data line can be mistaken for
//! a final line.

use std::borrow::Cow;
use std::fmt;

/// Protocol version announced by `hello`.
pub const PROTOCOL: u32 = 1;

/// Longest request line, not counting its end (LF, or CRLF).
pub const MAX_LINE: usize = 4096;

/// The `CODE` of an `ERR` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Invalid,
    NotFound,
    Exists,
    State,
    Busy,
    Full,
    TooLong,
    Denied,
    Runtime,
    Timeout,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Invalid => "invalid",
            Code::NotFound => "not-found",
            Code::Exists => "exists",
            Code::State => "state",
            Code::Busy => "busy",
            Code::Full => "full",
            Code::TooLong => "too-long",
            Code::Denied => "denied",
            Code::Runtime => "runtime",
            Code::Timeout => "timeout",
            Code::Internal => "internal",
        }
    }
}

/// A refusal: becomes the reply line `ERR CODE message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code.as_str(), self.message)
    }
}

/// Shorthand for `Err(Error::new(code, message))`.
pub fn refuse<T>(code: Code, message: impl Into<String>) -> Result<T, Error> {
    Err(Error::new(code, message))
}

/// Splits a request line (without its LF) into words.
pub fn split_words(line: &[u8]) -> Result<Vec<String>, Error> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line)
        .map_err(|_| Error::new(Code::Invalid, "request is not valid UTF-8"))?;
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|&c| c == ' ' || c == '\t').is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|&c| c != ' ' && c != '\t') {
            if c != '"' {
                word.push(c);
                continue;
            }
            loop {
                match chars.next() {
                    None => return refuse(Code::Invalid, "unterminated quote"),
                    Some('"') => break,
                    Some('\\') if matches!(chars.peek(), Some('"' | '\\')) => {
                        word.push(chars.next().unwrap_or('\\'))
                    }
                    Some(c) => word.push(c),
                }
            }
        }
        words.push(word);
    }
}

/// A word as it must be written so that [`split_words`] gives it back.
pub fn quote(word: &str) -> Cow<'_, str> {
    let plain = !word.is_empty()
        && !word
            .chars()
            .any(|c| c == ' ' || c == '\t' || c == '"' || c == '\\' || c.is_control());
    if plain {
        return Cow::Borrowed(word);
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            // A line cannot hold a newline; a tab survives inside quotes.
            c if c.is_control() && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// Builds reply lines.
#[derive(Default)]
pub struct Reply {
    buf: Vec<u8>,
}

impl Reply {
    pub fn new() -> Self {
        Reply::default()
    }

    /// A data line of `key=value` words.
    pub fn data(&mut self, pairs: &[(&str, &str)]) -> &mut Self {
        self.pairs(pairs);
        self.buf.push(b'\n');
        self
    }

    /// A free-text data line: `| text`.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.buf.extend_from_slice(b"| ");
        self.push_text(text);
        self.buf.push(b'\n');
        self
    }

    /// The final line `OK [key=value ...]`.
    pub fn ok(&mut self, pairs: &[(&str, &str)]) -> &mut Self {
        self.buf.extend_from_slice(b"OK");
        if !pairs.is_empty() {
            self.buf.push(b' ');
            self.pairs(pairs);
        }
        self.buf.push(b'\n');
        self
    }

    /// The final line `OK` followed by words written as they are.
    pub fn ok_words(&mut self, words: &str) -> &mut Self {
        self.buf.extend_from_slice(b"OK ");
        self.push_text(words);
        self.buf.push(b'\n');
        self
    }

    /// The final line `ERR CODE message`.
    pub fn err(&mut self, e: &Error) -> &mut Self {
        self.buf.extend_from_slice(b"ERR ");
        self.buf.extend_from_slice(e.code.as_str().as_bytes());
        self.buf.push(b' ');
        self.push_text(&e.message);
        self.buf.push(b'\n');
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    fn pairs(&mut self, pairs: &[(&str, &str)]) {
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                self.buf.push(b' ');
            }
            self.buf.extend_from_slice(k.as_bytes());
            self.buf.push(b'=');
            self.buf.extend_from_slice(quote(v).as_bytes());
        }
    }

    /// Free text stays on its line: control characters become spaces.
    fn push_text(&mut self, text: &str) {
        for c in text.chars() {
            let c = if c.is_control() { ' ' } else { c };
            let mut utf8 = [0u8; 4];
            self.buf
                .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
    }
}

/// What a reply line is, as a client reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum ReplyLine<'a> {
    /// `OK` and what follows it (possibly empty).
    Ok(&'a str),
    /// `ERR CODE message`: the code word and the message.
    Err(&'a str, &'a str),
    /// `| text`: the text.
    Text(&'a str),
    /// `EVENT ...`: the whole line.
    Event(&'a str),
    /// `key=value ...`: the whole line.
    Data(&'a str),
}

impl<'a> ReplyLine<'a> {
    pub fn parse(line: &'a str) -> ReplyLine<'a> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line == "OK" {
            ReplyLine::Ok("")
        } else if let Some(rest) = line.strip_prefix("OK ") {
            ReplyLine::Ok(rest)
        } else if let Some(rest) = line.strip_prefix("ERR ") {
            let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
            ReplyLine::Err(code, message)
        } else if let Some(text) = line.strip_prefix("| ") {
            ReplyLine::Text(text)
        } else if line.starts_with("EVENT ") {
            ReplyLine::Event(line)
        } else {
            ReplyLine::Data(line)
        }
    }

    /// True for the line that ends a reply.
    pub fn is_final(&self) -> bool {
        matches!(self, ReplyLine::Ok(_) | ReplyLine::Err(..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_words(line.as_bytes()).unwrap()
    }

    #[test]
    fn splits_on_spaces_and_tabs() {
        assert_eq!(words("  run  web\t/b  "), ["run", "web", "/b"]);
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words("   \t "), Vec::<String>::new());
        assert_eq!(words("list\r"), ["list"]);
    }

    #[test]
    fn quoted_words() {
        assert_eq!(words(r#"a "b c" d"#), ["a", "b c", "d"]);
        assert_eq!(words(r#"label.x="two words""#), ["label.x=two words"]);
        assert_eq!(
            words(r#""say \"hi\"" "back\\slash""#),
            [r#"say "hi""#, r"back\slash"]
        );
        assert_eq!(words(r#""""#), [""]);
        assert_eq!(words(r#""a\b""#), [r"a\b"]);
        assert_eq!(words(r#"x"y z"w"#), ["xy zw"]);
    }

    #[test]
    fn bad_lines() {
        assert_eq!(split_words(b"a \"b").unwrap_err().code, Code::Invalid);
        assert_eq!(split_words(b"a \xff").unwrap_err().code, Code::Invalid);
    }

    #[test]
    fn quote_round_trips() {
        for w in [
            "plain",
            "",
            "two words",
            "q\"uote",
            "back\\slash",
            "tab\there",
            "ünï",
        ] {
            let line = format!("x {} y", quote(w));
            assert_eq!(words(&line), ["x", w, "y"], "{line}");
        }
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a\nb"), "\"a b\"");
    }

    #[test]
    fn reply_lines() {
        let mut r = Reply::new();
        r.data(&[("id", "web"), ("bundle", "/my bundle")])
            .text("free\ntext")
            .ok(&[("count", "1")]);
        assert_eq!(
            std::str::from_utf8(r.as_bytes()).unwrap(),
            "id=web bundle=\"/my bundle\"\n| free text\nOK count=1\n"
        );
        let mut r = Reply::new();
        r.ok(&[])
            .err(&Error::new(Code::NotFound, "no container\nx"));
        assert_eq!(
            std::str::from_utf8(r.as_bytes()).unwrap(),
            "OK\nERR not-found no container x\n"
        );
    }

    #[test]
    fn classifies_reply_lines() {
        assert_eq!(ReplyLine::parse("OK"), ReplyLine::Ok(""));
        assert_eq!(ReplyLine::parse("OK exit=0"), ReplyLine::Ok("exit=0"));
        assert_eq!(
            ReplyLine::parse("ERR state is running"),
            ReplyLine::Err("state", "is running")
        );
        assert_eq!(ReplyLine::parse("ERR busy"), ReplyLine::Err("busy", ""));
        assert_eq!(
            ReplyLine::parse("| OK not final"),
            ReplyLine::Text("OK not final")
        );
        assert_eq!(ReplyLine::parse("id=OK"), ReplyLine::Data("id=OK"));
        assert!(!ReplyLine::parse("OKAY").is_final());
        assert!(ReplyLine::parse("ERR x y").is_final());
    }
}
