//! sha256 digests: parsing `sha256:HEX`, and a reader that hashes and
//! counts what passes through it, so a blob is checked as it streams.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

/// A sha256 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// `sha256:` and 64 lowercase hex digits, as the image spec writes
    /// them; other algorithms are refused by name.
    pub fn parse(s: &str) -> Result<Digest, String> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("digest {s:?}: only sha256 is supported"))?;
        Digest::from_hex(hex).ok_or_else(|| format!("digest {s:?} is not sha256:<64 hex digits>"))
    }

    pub fn from_hex(hex: &str) -> Option<Digest> {
        let b = hex.as_bytes();
        if b.len() != 64 || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut d = [0u8; 32];
        for (i, pair) in b.chunks(2).enumerate() {
            let v = |c: u8| if c <= b'9' { c - b'0' } else { c - b'a' + 10 };
            d[i] = v(pair[0]) << 4 | v(pair[1]);
        }
        Some(Digest(d))
    }

    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

/// Hashes and counts the bytes read through it.
pub struct Hashing<R> {
    inner: R,
    hash: Sha256,
    pub count: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }

    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    pub fn finish(self) -> (Digest, u64) {
        (Digest(self.hash.finalize().into()), self.count)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(Digest::of(b"").hex(), empty);
        let d = Digest::parse(&format!("sha256:{empty}")).unwrap();
        assert_eq!(d.to_string(), format!("sha256:{empty}"));
        assert!(Digest::parse("sha512:00")
            .unwrap_err()
            .contains("only sha256"));
        assert!(Digest::parse("sha256:ABC").is_err());
        let mut h = Hashing::new(&b"abc"[..]);
        io::copy(&mut h, &mut io::sink()).unwrap();
        let (d, n) = h.finish();
        assert_eq!(n, 3);
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
