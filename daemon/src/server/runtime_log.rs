//! The runtime's own account of a failure.
//!
//! The shim and the daemon run the runtime with `--log log.json
//! --log-format json`; a shim tells of a failed runtime call as `failed
//! VERB CODE`, and the daemon reads the message here. runc
//! writes one object per line (`{"level":"error","msg":"...","time":"..."}`),
//! crun the same with spaces after the colons. The last record at level
//! `error` (or `fatal`/`panic`) is what the user should read, so this module
//! finds it in the tail of the log and unescapes its `msg`.

/// How many bytes of the log's tail are read.
pub const TAIL: usize = 4096;

/// Unescapes the `msg` of the last error record in `log` into `out`; returns
/// its length, or `None` when the log holds no error record.
pub fn last_error(log: &[u8], out: &mut [u8]) -> Option<usize> {
    for line in log.rsplit(|&b| b == b'\n') {
        let mut level = [0u8; 8];
        if let Some((lvl, msg)) = record(line, &mut level, out) {
            if matches!(&level[..lvl], b"error" | b"fatal" | b"panic") {
                return Some(msg);
            }
        }
    }
    None
}

/// Reads the `level` and `msg` string fields of one JSON object. Returns
/// their unescaped lengths, or `None` if the line is not a whole object
/// (such as a tail cut in the middle of a record).
fn record(line: &[u8], level: &mut [u8], msg: &mut [u8]) -> Option<(usize, usize)> {
    let mut c = Cursor { s: line, i: 0 };
    let (mut lvl, mut text) = (None, None);
    c.ws();
    c.eat(b'{')?;
    loop {
        c.ws();
        if c.eat(b'}').is_some() {
            break;
        }
        let mut key = [0u8; 8];
        let k = c.string(&mut key)?;
        c.ws();
        c.eat(b':')?;
        c.ws();
        match (&key[..k], c.peek()?) {
            (b"level", b'"') => lvl = Some(c.string(level)?),
            (b"msg", b'"') => text = Some(c.string(msg)?),
            _ => c.skip_value()?,
        }
        c.ws();
        if c.eat(b',').is_none() {
            c.eat(b'}')?;
            break;
        }
    }
    Some((lvl?, text?))
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.i += 1)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.i += 1;
        }
    }

    /// Reads a string starting at its opening quote, unescaping into `out`
    /// (cut short if `out` is full). Returns the number of bytes written.
    fn string(&mut self, out: &mut [u8]) -> Option<usize> {
        self.eat(b'"')?;
        let mut n = 0;
        let mut put = |b: u8| {
            if let Some(slot) = out.get_mut(n) {
                *slot = b;
                n += 1;
            }
        };
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'n' | b'r' | b't' | b'b' | b'f' => put(b' '),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4)?;
                            self.i += 4;
                            let mut cp: u32 = 0;
                            for &h in hex {
                                cp = cp * 16 + (h as char).to_digit(16)?;
                            }
                            let mut utf8 = [0u8; 4];
                            let ch = char::from_u32(cp).unwrap_or('?');
                            ch.encode_utf8(&mut utf8).bytes().for_each(&mut put);
                        }
                        other => put(other),
                    }
                }
                other => put(other),
            }
        }
        Some(n)
    }

    /// Skips a non-string value: a number, `true`/`false`/`null`, or a
    /// nested object or array.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string(&mut [])?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => depth -= 1,
                b',' | b'}' if depth == 0 => return Some(()),
                _ => {}
            }
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(log: &str) -> Option<String> {
        let mut out = [0u8; 256];
        last_error(log.as_bytes(), &mut out)
            .map(|n| String::from_utf8_lossy(&out[..n]).into_owned())
    }

    #[test]
    fn runc_record() {
        let log = r#"{"level":"error","msg":"runc create failed: unable to start container process: exec: \"nonexist\": executable file not found in $PATH","time":"2026-11-29T12:30:07Z"}"#;
        assert_eq!(
            err(log).unwrap(),
            r#"runc create failed: unable to start container process: exec: "nonexist": executable file not found in $PATH"#
        );
    }

    #[test]
    fn crun_record_with_spaces() {
        let log = "{\"msg\": \"open `/x/config.json`: No such file\", \"level\": \"error\", \"time\": \"2026\"}\n";
        assert_eq!(err(log).unwrap(), "open `/x/config.json`: No such file");
    }

    #[test]
    fn last_error_wins_and_other_levels_are_skipped() {
        let log = concat!(
            "{\"level\":\"error\",\"msg\":\"first\"}\n",
            "{\"level\":\"error\",\"msg\":\"second\"}\n",
            "{\"level\":\"warning\",\"msg\":\"later warning\"}\n",
            "{\"level\":\"info\",\"msg\":\"x\",\"n\":3,\"o\":{\"a\":[1,\"}\"]}}\n",
        );
        assert_eq!(err(log).unwrap(), "second");
    }

    #[test]
    fn escapes() {
        let log = r#"{"level":"fatal","msg":"a\\b\/c\nd\u00e9\u0041"}"#;
        assert_eq!(err(log).unwrap(), "a\\b/c déA");
    }

    #[test]
    fn torn_and_garbage_lines_are_ignored() {
        assert_eq!(err("l\":\"error\",\"msg\":\"cut\"}\n"), None);
        assert_eq!(err("{\"level\":\"error\",\"msg\":\"unterminated"), None);
        assert_eq!(err("not json at all\n\n"), None);
        assert_eq!(err(""), None);
        assert_eq!(err("{\"level\":\"error\"}"), None);
        let log = "garbage\n{\"level\":\"error\",\"msg\":\"real\"}\n{\"lev";
        assert_eq!(err(log).unwrap(), "real");
    }

    #[test]
    fn long_message_is_cut_to_the_buffer() {
        let long = "x".repeat(1000);
        let log = format!("{{\"level\":\"error\",\"msg\":\"{long}\"}}");
        let mut out = [0u8; 16];
        assert_eq!(last_error(log.as_bytes(), &mut out), Some(16));
    }
}
