//! Just enough JSON to read and patch a bundle's `config.json`: the byte
//! range of the value at a key path. Edits are splices into the original
//! text, so everything else in the file stays as its author wrote it.

use std::ops::Range;

/// The byte range of the value at `path` (a list of object keys), if the
/// text is well-formed up to it.
pub fn find(json: &[u8], path: &[&str]) -> Option<Range<usize>> {
    let mut c = Cursor { s: json, i: 0 };
    c.find(path)
}

/// A JSON string's contents, for the simple strings found in configs
/// (`\"`, `\\`, `\/` unescaped; other escapes refused).
pub fn string(json: &[u8], r: Range<usize>) -> Option<String> {
    let raw = json.get(r)?.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        if b == b'\\' {
            match bytes.next()? {
                c @ (b'"' | b'\\' | b'/') => out.push(*c),
                _ => return None,
            }
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Sets the value at `path` to `value` (JSON text): replaces the value
/// there, or adds the key at the start of its parent object, which must
/// exist. `None` when the text or the parent is not there.
pub fn set(json: &mut Vec<u8>, path: &[&str], value: &str) -> Option<()> {
    if let Some(r) = find(json, path) {
        json.splice(r, value.bytes());
        return Some(());
    }
    let (key, parent) = path.split_last()?;
    let obj = find(json, parent)?;
    if json.get(obj.start) != Some(&b'{') {
        return None;
    }
    let empty = json[obj.start + 1..obj.end - 1]
        .iter()
        .all(u8::is_ascii_whitespace);
    let sep = if empty { "" } else { ", " };
    let entry = format!("{}: {value}{sep}", quote(key));
    json.splice(obj.start + 1..obj.start + 1, entry.bytes());
    Some(())
}

/// The ranges of the elements of the array at `r`, if it is one.
pub fn elements(json: &[u8], r: Range<usize>) -> Option<Vec<Range<usize>>> {
    let mut c = Cursor {
        s: json.get(..r.end)?,
        i: r.start,
    };
    c.eat(b'[')?;
    let mut out = Vec::new();
    loop {
        c.ws();
        if c.peek()? == b']' {
            return Some(out);
        }
        out.push(c.value()?);
        c.ws();
        match c.peek()? {
            b',' => c.i += 1,
            b']' => {}
            _ => return None,
        }
    }
}

/// A string as a JSON string literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.ws();
        (self.peek()? == b).then(|| self.i += 1)
    }

    fn find(&mut self, path: &[&str]) -> Option<Range<usize>> {
        self.ws();
        let Some((first, rest)) = path.split_first() else {
            return self.value();
        };
        self.eat(b'{')?;
        loop {
            self.ws();
            if self.peek()? == b'}' {
                return None;
            }
            let key = self.value()?;
            self.eat(b':')?;
            if self.s.get(key.start + 1..key.end - 1)? == first.as_bytes() {
                return self.find(rest);
            }
            self.value()?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                _ => return None,
            }
        }
    }

    /// Skips one value; returns its range.
    fn value(&mut self) -> Option<Range<usize>> {
        self.ws();
        let start = self.i;
        match self.peek()? {
            b'"' => {
                self.i += 1;
                loop {
                    match self.peek()? {
                        b'"' => break,
                        b'\\' => self.i += 2,
                        _ => self.i += 1,
                    }
                }
                self.i += 1;
            }
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                loop {
                    self.ws();
                    if self.peek()? == close {
                        self.i += 1;
                        break;
                    }
                    self.value()?;
                    self.ws();
                    match self.peek()? {
                        b',' | b':' => self.i += 1,
                        c if c == close => {}
                        _ => return None,
                    }
                }
            }
            _ => {
                while self.peek().is_some_and(|b| {
                    !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
                }) {
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
            }
        }
        Some(start..self.i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "args": ["sh", "-c", "echo \"}\""],
            "env": ["A=1"]
        },
        "root": { "path": "rootfs", "readonly": true },
        "linux": {"resources": {"memory": {"limit": 16777216}}}
    }"#;

    fn at(path: &[&str]) -> Option<&'static str> {
        find(CONFIG.as_bytes(), path).map(|r| &CONFIG[r])
    }

    #[test]
    fn finds_values_at_paths() {
        assert_eq!(at(&["process", "terminal"]), Some("false"));
        assert_eq!(at(&["root", "path"]), Some("\"rootfs\""));
        assert_eq!(
            at(&["linux", "resources", "memory", "limit"]),
            Some("16777216")
        );
        assert_eq!(
            at(&["process", "args"]),
            Some(r#"["sh", "-c", "echo \"}\""]"#)
        );
        assert!(at(&["process"]).unwrap().starts_with('{'));
        assert_eq!(at(&["process", "cwd"]), None);
        assert_eq!(at(&["nothing"]), None);
        assert_eq!(at(&["ociVersion", "deeper"]), None);
    }

    #[test]
    fn strings() {
        let r = find(CONFIG.as_bytes(), &["root", "path"]).unwrap();
        assert_eq!(string(CONFIG.as_bytes(), r).as_deref(), Some("rootfs"));
        assert_eq!(
            string(br#""a\"b\\c\/d""#, 0..12).as_deref(),
            Some(r#"a"b\c/d"#)
        );
        assert_eq!(string(br#""\u0041""#, 0..8), None);
        assert_eq!(quote("a\"b\\c\n"), r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn sets_values_and_adds_keys() {
        let mut doc = CONFIG.as_bytes().to_vec();
        set(&mut doc, &["process", "terminal"], "true").unwrap();
        set(&mut doc, &["process", "cwd"], "\"/tmp\"").unwrap();
        set(&mut doc, &["root", "path"], "\"/abs\"").unwrap();
        assert_eq!(
            find(&doc, &["process", "terminal"]).map(|r| &doc[r]),
            Some(&b"true"[..])
        );
        assert_eq!(
            find(&doc, &["process", "cwd"]).map(|r| &doc[r]),
            Some(&b"\"/tmp\""[..])
        );
        assert_eq!(
            find(&doc, &["root", "path"]).map(|r| &doc[r]),
            Some(&b"\"/abs\""[..])
        );
        assert_eq!(set(&mut doc, &["nothing", "x"], "1"), None);
        let mut empty = b"{\"user\": {}}".to_vec();
        set(&mut empty, &["user", "uid"], "5").unwrap();
        assert_eq!(empty, b"{\"user\": {\"uid\": 5}}");
        set(&mut empty, &["user", "gid"], "6").unwrap();
        assert_eq!(empty, b"{\"user\": {\"gid\": 6, \"uid\": 5}}");
    }

    #[test]
    fn array_elements() {
        let doc = CONFIG.as_bytes();
        let r = find(doc, &["process", "args"]).unwrap();
        let items: Vec<&str> = elements(doc, r)
            .unwrap()
            .into_iter()
            .map(|r| &CONFIG[r])
            .collect();
        assert_eq!(items, ["\"sh\"", "\"-c\"", r#""echo \"}\"""#]);
        assert_eq!(elements(b"[]", 0..2), Some(vec![]));
        assert_eq!(elements(b"{}", 0..2), None);
        assert_eq!(elements(b"[1, 2", 0..5), None);
    }

    #[test]
    fn broken_text_finds_nothing() {
        assert_eq!(
            find(b"{\"process\": {\"terminal\": ", &["process", "terminal"]),
            None
        );
        assert_eq!(find(b"not json", &["a"]), None);
        assert_eq!(find(b"", &["a"]), None);
    }
}
