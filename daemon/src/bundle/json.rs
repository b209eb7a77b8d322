//! Just enough JSON to read and patch a bundle's `config.json`: the byte
//! range of the value at a key path. Edits are splices into the original
//! text, so everything else in the file stays as its author wrote it.

use std::fmt;
use std::ops::Range;

/// How deep arrays and objects may nest. An OCI `config.json` nests about
/// six levels; anything past this is refused rather than walked.
pub const MAX_DEPTH: usize = 64;

/// Why a text is not a JSON document this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Not well-formed at this byte offset.
    Malformed(usize),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::TooDeep => write!(f, "nested deeper than {MAX_DEPTH} levels"),
            Invalid::Malformed(at) => write!(f, "not well-formed JSON at byte {at}"),
        }
    }
}

/// Checks that `json` is one well-formed value (with whitespace around
/// it) nested at most [`MAX_DEPTH`] deep: what a file from a bundle must
/// pass before anything is looked up in it.
pub fn check(json: &[u8]) -> Result<(), Invalid> {
    let mut c = Cursor { s: json, i: 0 };
    c.value()?;
    c.ws();
    match c.i == json.len() {
        true => Ok(()),
        false => Err(Invalid::Malformed(c.i)),
    }
}

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
        out.push(c.value().ok()?);
        c.ws();
        match c.peek()? {
            b',' => c.i += 1,
            b']' => {}
            _ => return None,
        }
    }
}

/// The members of the object at `r`, if it is one: each key's text
/// (unescaped) and its value's range.
pub fn members(json: &[u8], r: Range<usize>) -> Option<Vec<(String, Range<usize>)>> {
    let mut c = Cursor {
        s: json.get(..r.end)?,
        i: r.start,
    };
    c.eat(b'{')?;
    let mut out = Vec::new();
    loop {
        c.ws();
        if c.peek()? == b'}' {
            return Some(out);
        }
        let key = c.value().ok()?;
        c.eat(b':')?;
        let value = c.value().ok()?;
        out.push((text(json, key)?, value));
        c.ws();
        match c.peek()? {
            b',' => c.i += 1,
            b'}' => {}
            _ => return None,
        }
    }
}

/// A JSON string's text with every escape decoded (`\uXXXX` and its
/// surrogate pairs included), for documents written by other programs.
pub fn text(json: &[u8], r: Range<usize>) -> Option<String> {
    let raw = json.get(r)?.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let raw = std::str::from_utf8(raw).ok()?;
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    let hex4 = |chars: &mut std::str::Chars| -> Option<u32> {
        let s: String = chars.by_ref().take(4).collect();
        (s.len() == 4).then(|| u32::from_str_radix(&s, 16).ok())?
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            c @ ('"' | '\\' | '/') => c,
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hi = hex4(&mut chars)?;
                let code = if (0xd800..0xdc00).contains(&hi) {
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let lo = hex4(&mut chars)?;
                    0x10000 + ((hi - 0xd800) << 10) + lo.checked_sub(0xdc00)?
                } else {
                    hi
                };
                char::from_u32(code)?
            }
            _ => return None,
        });
    }
    Some(out)
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

    /// Walks the objects on `path`; their depth is the path's length, and
    /// the value found is skipped by [`Cursor::value`], which is bounded.
    fn find(&mut self, path: &[&str]) -> Option<Range<usize>> {
        let mut path = path;
        loop {
            self.ws();
            let Some((first, rest)) = path.split_first() else {
                return self.value().ok();
            };
            self.eat(b'{')?;
            // Keys are matched as `quote` writes them, so what `set` adds
            // is found again.
            let wanted = quote(first);
            loop {
                self.ws();
                if self.peek()? == b'}' {
                    return None;
                }
                let key = self.value().ok()?;
                self.eat(b':')?;
                if self.s.get(key) == Some(wanted.as_bytes()) {
                    break;
                }
                self.value().ok()?;
                self.ws();
                match self.peek()? {
                    b',' => self.i += 1,
                    _ => return None,
                }
            }
            path = rest;
        }
    }

    /// Skips one value and returns its range. No recursion: the open
    /// arrays and objects are a stack of bits (1 for an object), so a
    /// hostile file costs no stack, and more than [`MAX_DEPTH`] of them is
    /// refused.
    fn value(&mut self) -> Result<Range<usize>, Invalid> {
        let malformed = |c: &Self| Invalid::Malformed(c.i);
        let mut open: u64 = 0;
        let mut depth = 0;
        self.ws();
        let start = self.i;
        loop {
            // One scalar, or the start of an array or object.
            self.ws();
            match self.peek().ok_or(malformed(self))? {
                b'"' => self.string().ok_or(malformed(self))?,
                b @ (b'{' | b'[') => {
                    if depth == MAX_DEPTH {
                        return Err(Invalid::TooDeep);
                    }
                    open = open << 1 | u64::from(b == b'{');
                    depth += 1;
                    self.i += 1;
                    self.ws();
                    let close = if b == b'{' { b'}' } else { b']' };
                    if self.peek() != Some(close) {
                        if b == b'{' {
                            self.key().ok_or(malformed(self))?;
                        }
                        continue;
                    }
                    // Empty: closed below.
                }
                _ => {
                    let from = self.i;
                    while self.peek().is_some_and(|b| {
                        !matches!(b, b',' | b':' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
                    }) {
                        self.i += 1;
                    }
                    if self.i == from {
                        return Err(malformed(self));
                    }
                }
            }
            // After a value: close what ends here, or go on to the next
            // element of the innermost array or object.
            loop {
                if depth == 0 {
                    return Ok(start..self.i);
                }
                self.ws();
                let object = open & 1 == 1;
                match (self.peek(), object) {
                    (Some(b'}'), true) | (Some(b']'), false) => {
                        self.i += 1;
                        open >>= 1;
                        depth -= 1;
                    }
                    (Some(b','), _) => {
                        self.i += 1;
                        if object {
                            self.key().ok_or(malformed(self))?;
                        }
                        break;
                    }
                    _ => return Err(malformed(self)),
                }
            }
        }
    }

    /// A string, from its opening quote to past its closing one.
    fn string(&mut self) -> Option<()> {
        self.i += 1;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => self.i += 2,
                _ => self.i += 1,
            }
        }
        self.i += 1;
        Some(())
    }

    /// An object member's `"key":`, up to its value.
    fn key(&mut self) -> Option<()> {
        self.ws();
        if self.peek()? != b'"' {
            return None;
        }
        self.string()?;
        self.eat(b':')
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
        // A key that needs escaping is found again once set, not added twice.
        let mut odd = b"{}".to_vec();
        for _ in 0..2 {
            set(&mut odd, &["a\"b\\c"], "1").unwrap();
        }
        assert_eq!(odd, br#"{"a\"b\\c": 1}"#);
        let mut empty = b"{\"user\": {}}".to_vec();
        set(&mut empty, &["user", "uid"], "5").unwrap();
        assert_eq!(empty, b"{\"user\": {\"uid\": 5}}");
        set(&mut empty, &["user", "gid"], "6").unwrap();
        assert_eq!(empty, b"{\"user\": {\"gid\": 6, \"uid\": 5}}");
    }

    #[test]
    fn members_and_text() {
        let doc = br#"{"a": 1, "b\u00e9": {"c": [2]}}"#;
        let m = members(doc, 0..doc.len()).unwrap();
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b\u{e9}"]);
        assert_eq!(&doc[m[1].1.clone()], br#"{"c": [2]}"#);
        assert_eq!(members(b"[]", 0..2), None);
        let t = br#""x\n\t\u0041\ud83d\ude00\"""#;
        assert_eq!(text(t, 0..t.len()).as_deref(), Some("x\n\tA\u{1f600}\""));
        assert_eq!(text(br#""\ud83d""#, 0..8), None);
        assert_eq!(text(br#""\q""#, 0..4), None);
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
    fn nesting_is_bounded_without_recursion() {
        // Deep enough to overflow any stack the reader could have used.
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
        assert_eq!(check(&deep(MAX_DEPTH)), Ok(()));
        assert_eq!(check(&deep(MAX_DEPTH + 1)), Err(Invalid::TooDeep));
        assert_eq!(check(&deep(1_000_000)), Err(Invalid::TooDeep));
        let open = "[".repeat(1_000_000).into_bytes();
        assert_eq!(check(&open), Err(Invalid::TooDeep));
        let mut doc = b"{\"process\": ".to_vec();
        doc.extend_from_slice(&deep(100_000));
        doc.push(b'}');
        assert_eq!(find(&doc, &["process"]), None);
        assert_eq!(find(&doc, &["process", "terminal"]), None);
        let objects = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(check(objects.as_bytes()), Ok(()));
        let path = vec!["a"; MAX_DEPTH];
        assert_eq!(
            find(objects.as_bytes(), &path).map(|r| &objects[r]),
            Some("1")
        );
        assert_eq!(
            Invalid::TooDeep.to_string(),
            format!("nested deeper than {MAX_DEPTH} levels")
        );
    }

    #[test]
    fn check_wants_one_well_formed_value() {
        assert_eq!(check(CONFIG.as_bytes()), Ok(()));
        for good in [
            "{}",
            " [ ] ",
            "[1, \"a\", {\"b\": [true, null]}]",
            "\"s\"",
            "7",
        ] {
            assert_eq!(check(good.as_bytes()), Ok(()), "{good}");
        }
        for bad in [
            "",
            "{",
            "[1,",
            "{\"a\" 1}",
            "{\"a\": 1,}",
            "[1 2]",
            "{1: 2}",
            "[}",
            "{]",
            "[] []",
            "\"open",
            "{\"a\": }",
            ",",
        ] {
            assert!(
                matches!(check(bad.as_bytes()), Err(Invalid::Malformed(_))),
                "{bad:?}"
            );
        }
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
