//! A streaming reader of tar archives, as image layers are written:
//! ustar and GNU headers, GNU long names, pax extended headers (path,
//! linkpath, size, ownership, mtime, `SCHILY.xattr.*`). It never holds an
//! entry's data: the caller reads it, or the next [`Reader::next_entry`] skips
//! it. Every limit is fixed: a name or link longer than [`MAX_PATH`], a pax
//! header over [`MAX_PAX`], an unknown entry type, a sparse file, a bad
//! header checksum, or an archive that ends before its end marker is an
//! error that names the entry.

use std::io::{self, Read};

/// The longest name or link target taken, as Linux's `PATH_MAX`.
pub const MAX_PATH: usize = 4096;
/// The largest pax extended header taken (names, links, xattrs).
pub const MAX_PAX: u64 = 256 * 1024;

const BLOCK: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Hardlink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

/// One entry's header, with its long name and pax records applied.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: Option<Kind>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    pub size: u64,
    pub link: Vec<u8>,
    pub dev: (u32, u32),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    pub fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::File)
    }

    /// The name as the archive gives it, for messages.
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// Why an archive is refused.
#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                write!(f, "the archive is truncated")
            }
            Error::Io(e) => write!(f, "{e}"),
            Error::Bad(m) => f.write_str(m),
        }
    }
}

fn bad<T>(m: impl Into<String>) -> Result<T, Error> {
    Err(Error::Bad(m.into()))
}

/// Not generic: one copy of the reader, whatever it reads from.
pub struct Reader<'a> {
    r: &'a mut dyn Read,
    /// Data of the current entry not read yet, and its padding.
    left: u64,
    pad: u64,
    /// Bytes of the archive consumed.
    pos: u64,
    done: bool,
}

impl<'a> Reader<'a> {
    pub fn new(r: &'a mut dyn Read) -> Self {
        Reader {
            r,
            left: 0,
            pad: 0,
            pos: 0,
            done: false,
        }
    }

    /// Where the current entry's data starts in the archive, once
    /// [`Reader::next_entry`] returned it.
    pub fn data_offset(&self) -> u64 {
        self.pos
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        self.r.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, mut n: u64) -> Result<(), Error> {
        let mut scratch = [0u8; 4096];
        while n > 0 {
            let step = n.min(scratch.len() as u64) as usize;
            self.fill(&mut scratch[..step])?;
            n -= step as u64;
        }
        Ok(())
    }

    /// Reads the current entry's data; 0 at its end.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.left == 0 {
            return Ok(0);
        }
        let step = (buf.len() as u64).min(self.left) as usize;
        let n = self.r.read(&mut buf[..step])?;
        if n == 0 {
            return Err(Error::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        self.left -= n as u64;
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads the rest of the underlying stream after the end marker, so
    /// that a digest over it, or a decompressor's trailer check, sees all.
    pub fn drain(&mut self) -> Result<(), Error> {
        let mut scratch = [0u8; 4096];
        while self.r.read(&mut scratch)? > 0 {}
        Ok(())
    }

    /// The next entry, skipping what is left of the current one; `None`
    /// after the end marker.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        if self.done {
            return Ok(None);
        }
        let rest = self.left + self.pad;
        self.skip(rest)?;
        self.left = 0;
        self.pad = 0;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Vec<Record> = Vec::new();
        let mut block = [0u8; BLOCK];
        loop {
            match self.r.read(&mut block[..1])? {
                0 => return bad("the archive ends without its end marker (truncated?)"),
                _ => self.fill(&mut block[1..])?,
            }
            self.pos += 1;
            if block.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            let name = field(&block[0..100]);
            let shown = || String::from_utf8_lossy(name).into_owned();
            if !checksum_ok(&block) {
                return bad(format!(
                    "entry {:?}: bad header checksum (corrupt archive)",
                    shown()
                ));
            }
            let size = number(&block[124..136])
                .ok_or_else(|| Error::Bad(format!("entry {:?}: bad size field", shown())))?;
            let typeflag = block[156];
            match typeflag {
                b'L' | b'K' => {
                    if size > MAX_PATH as u64 + 1 {
                        return bad(format!(
                            "a GNU long {} of {size} bytes (at most {MAX_PATH})",
                            if typeflag == b'L' { "name" } else { "link" }
                        ));
                    }
                    let mut v = self.small(size)?;
                    while v.last() == Some(&0) {
                        v.pop();
                    }
                    match typeflag {
                        b'L' => long_name = Some(v),
                        _ => long_link = Some(v),
                    }
                    continue;
                }
                b'x' | b'g' => {
                    if size > MAX_PAX {
                        return bad(format!("a pax header of {size} bytes (at most {MAX_PAX})"));
                    }
                    let text = self.small(size)?;
                    // Global headers set defaults for what follows; image
                    // layers have none that matter, so they are read past.
                    if typeflag == b'x' {
                        pax = parse_pax(&text)?;
                    }
                    continue;
                }
                _ => {}
            }
            let mut e = Entry {
                mode: number(&block[100..108]).unwrap_or(0) as u32 & 0o7777,
                uid: number(&block[108..116]).unwrap_or(0) as u32,
                gid: number(&block[116..124]).unwrap_or(0) as u32,
                mtime: (number(&block[136..148]).unwrap_or(0) as i64, 0),
                size,
                link: field(&block[157..257]).to_vec(),
                dev: (
                    number(&block[329..337]).unwrap_or(0) as u32,
                    number(&block[337..345]).unwrap_or(0) as u32,
                ),
                ..Entry::default()
            };
            let mut path = name.to_vec();
            // POSIX ustar keeps a prefix; GNU's magic has other fields there.
            if &block[257..263] == b"ustar\0" {
                let prefix = field(&block[345..500]);
                if !prefix.is_empty() {
                    let mut p = prefix.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(&path);
                    path = p;
                }
            }
            e.path = long_name.take().unwrap_or(path);
            if let Some(l) = long_link.take() {
                e.link = l;
            }
            for (k, v) in pax.drain(..) {
                apply_pax(&mut e, &k, v)?;
            }
            e.kind = Some(match typeflag {
                b'0' | 0 | b'7' => Kind::File,
                b'1' => Kind::Hardlink,
                b'2' => Kind::Symlink,
                b'3' => Kind::Char,
                b'4' => Kind::Block,
                b'5' => Kind::Dir,
                b'6' => Kind::Fifo,
                b'S' => {
                    return bad(format!(
                        "entry {:?} is a GNU sparse file, which image layers do not use",
                        e.name()
                    ))
                }
                t => {
                    return bad(format!(
                        "entry {:?} has the unknown type {:?}",
                        e.name(),
                        t as char
                    ))
                }
            });
            if e.path.len() > MAX_PATH || e.link.len() > MAX_PATH {
                return bad(format!(
                    "entry {:?}...: a name or link longer than {MAX_PATH} bytes",
                    String::from_utf8_lossy(&e.path[..e.path.len().min(64)])
                ));
            }
            if e.path.contains(&0) || e.link.contains(&0) {
                return bad(format!("entry {:?}: a NUL byte in its name", e.name()));
            }
            // Only regular files carry data; a link's or a directory's
            // size field is read past as if it were.
            let data = match e.kind() {
                Kind::File => e.size,
                _ => {
                    let n = e.size;
                    e.size = 0;
                    n
                }
            };
            self.left = data;
            self.pad = (BLOCK as u64 - data % BLOCK as u64) % BLOCK as u64;
            if e.kind() != Kind::File {
                // Not data the caller reads: skipped with the padding.
                self.pad += self.left;
                self.left = 0;
            }
            return Ok(Some(e));
        }
    }

    /// A header's own data (long names, pax records), which is small.
    fn small(&mut self, size: u64) -> Result<Vec<u8>, Error> {
        let mut v = vec![0u8; size as usize];
        self.fill(&mut v)?;
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.skip(pad)?;
        Ok(v)
    }
}

/// A NUL-terminated header field.
fn field(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// An octal field (spaces and NULs around it), or GNU's base-256 form.
fn number(b: &[u8]) -> Option<u64> {
    if b[0] & 0x80 != 0 {
        if b[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut n: u64 = u64::from(b[0] & 0x3f);
        for &c in &b[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(c))?;
        }
        return Some(n);
    }
    let s = b
        .iter()
        .copied()
        .skip_while(|&c| c == b' ' || c == 0)
        .take_while(|&c| c != b' ' && c != 0);
    let mut n: u64 = 0;
    let mut any = false;
    for c in s {
        if !(b'0'..=b'7').contains(&c) {
            return None;
        }
        n = n.checked_mul(8)?.checked_add(u64::from(c - b'0'))?;
        any = true;
    }
    any.then_some(n).or(Some(0))
}

fn checksum_ok(block: &[u8; BLOCK]) -> bool {
    let Some(want) = number(&block[148..156]) else {
        return false;
    };
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    sum == want
}

/// Pax records: `LEN KEY=VALUE\n`, LEN counting the whole record.
/// A pax record's key and value.
type Record = (Vec<u8>, Vec<u8>);

fn parse_pax(mut text: &[u8]) -> Result<Vec<Record>, Error> {
    let mut out = Vec::new();
    while !text.is_empty() {
        let sp = text
            .iter()
            .position(|&c| c == b' ')
            .ok_or(Error::Bad("a malformed pax record".into()))?;
        let len: usize = std::str::from_utf8(&text[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l| l > sp + 1 && l <= text.len())
            .ok_or(Error::Bad("a malformed pax record length".into()))?;
        let record = &text[sp + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or(Error::Bad("a pax record without its newline".into()))?;
        let eq = record
            .iter()
            .position(|&c| c == b'=')
            .ok_or(Error::Bad("a pax record without '='".into()))?;
        out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        text = &text[len..];
    }
    Ok(out)
}

fn apply_pax(e: &mut Entry, key: &[u8], value: Vec<u8>) -> Result<(), Error> {
    let num = |v: &[u8]| -> Result<u64, Error> {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Error::Bad(format!(
                "a bad pax {} value",
                String::from_utf8_lossy(key)
            )))
    };
    match key {
        b"path" => e.path = value,
        b"linkpath" => e.link = value,
        b"size" => e.size = num(&value)?,
        b"uid" => e.uid = num(&value)? as u32,
        b"gid" => e.gid = num(&value)? as u32,
        b"mtime" => {
            let s = std::str::from_utf8(&value).unwrap_or("");
            let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
            let secs: i64 = secs
                .parse()
                .map_err(|_| Error::Bad("a bad pax mtime".into()))?;
            let mut nanos: u32 = 0;
            for (i, c) in frac.bytes().take(9).enumerate() {
                if !c.is_ascii_digit() {
                    return bad("a bad pax mtime");
                }
                nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
            }
            e.mtime = (secs, nanos);
        }
        k if k.starts_with(b"SCHILY.xattr.") => {
            e.xattrs.push((k[b"SCHILY.xattr.".len()..].to_vec(), value));
        }
        k if k.starts_with(b"GNU.sparse.") => {
            return bad(format!(
                "entry {:?} is a sparse file, which image layers do not use",
                e.name()
            ))
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, kind: u8, size: u64, link: &str) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..name.len()].copy_from_slice(name.as_bytes());
        b[100..107].copy_from_slice(b"0000644");
        b[108..115].copy_from_slice(b"0001750");
        b[116..123].copy_from_slice(b"0000012");
        b[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        b[136..147].copy_from_slice(b"14000000000");
        b[156] = kind;
        b[157..157 + link.len()].copy_from_slice(link.as_bytes());
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        let sum: u64 = b.iter().map(|&c| u64::from(c)).sum::<u64>() + 8 * 32;
        b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        b[155] = b' ';
        b
    }

    fn archive(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(p);
            v.resize(v.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        v.extend_from_slice(&[0u8; BLOCK * 2]);
        v
    }

    #[test]
    fn reads_entries_and_data() {
        let tar = archive(&[
            &header("a/b.txt", b'0', 5, ""),
            b"hello",
            &header("a/", b'5', 0, ""),
            &header("l", b'2', 0, "a/b.txt"),
        ]);
        let mut src = &tar[..];
        let mut r = Reader::new(&mut src);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, b"a/b.txt");
        assert_eq!(
            (e.kind(), e.size, e.mode, e.uid, e.gid),
            (Kind::File, 5, 0o644, 1000, 10)
        );
        let mut buf = [0u8; 16];
        let n = r.read_data(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(r.read_data(&mut buf).unwrap(), 0);
        assert_eq!(r.next_entry().unwrap().unwrap().kind(), Kind::Dir);
        let l = r.next_entry().unwrap().unwrap();
        assert_eq!((l.kind(), &l.link[..]), (Kind::Symlink, &b"a/b.txt"[..]));
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn pax_and_long_names() {
        let long = "d/".repeat(80) + "f";
        let rec = |k: &str, v: &str| {
            let body = format!(" {k}={v}\n");
            let mut n = body.len() + 1;
            while n.to_string().len() + body.len() != n {
                n = n.to_string().len() + body.len();
            }
            format!("{n}{body}")
        };
        let pax = rec("path", &long) + &rec("SCHILY.xattr.user.x", "v") + &rec("mtime", "1.5");
        let tar = archive(&[
            &header("././@PaxHeader", b'x', pax.len() as u64, ""),
            pax.as_bytes(),
            &header("short", b'0', 0, ""),
            &header("././@LongLink", b'L', 4, ""),
            b"abc\0",
            &header("x", b'1', 0, "short"),
        ]);
        let mut src = &tar[..];
        let mut r = Reader::new(&mut src);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, long.as_bytes());
        assert_eq!(e.xattrs, vec![(b"user.x".to_vec(), b"v".to_vec())]);
        assert_eq!(e.mtime, (1, 500_000_000));
        let h = r.next_entry().unwrap().unwrap();
        assert_eq!((h.path.as_slice(), h.kind()), (&b"abc"[..], Kind::Hardlink));
    }

    #[test]
    fn refuses_what_it_cannot_trust() {
        let mut corrupt = header("a", b'0', 0, "");
        corrupt[0] = b'b';
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (archive(&[&corrupt]), "checksum"),
            (archive(&[&header("s", b'S', 0, "")]), "sparse"),
            (archive(&[&header("v", b'V', 0, "")]), "unknown type"),
            (header("a", b'0', 9, "").to_vec(), "truncated"),
            (
                [header("a", b'0', 0, "").to_vec(), vec![]].concat(),
                "end marker",
            ),
            (
                archive(&[&header("././@LongLink", b'L', 5000, "")]),
                "long name",
            ),
        ];
        for (tar, want) in cases {
            let mut src = &tar[..];
            let mut r = Reader::new(&mut src);
            let err = loop {
                match r.next_entry() {
                    Ok(Some(_)) => {
                        let mut buf = [0u8; 64];
                        if let Err(e) = r.read_data(&mut buf) {
                            break e;
                        }
                    }
                    Ok(None) => panic!("{want}: accepted"),
                    Err(e) => break e,
                }
            };
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000644 \0"), Some(0o644));
        assert_eq!(number(b"        "), Some(0));
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(number(b"0009"), None);
    }
}
