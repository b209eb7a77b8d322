//! gzip (RFC 1952) as layers use it: members one after another, each a
//! header, a deflate stream (miniz_oxide) and a trailer whose CRC-32 and
//! length are checked. A stream that ends early, a bad header, a corrupt
//! deflate stream or a wrong trailer is an error.

use std::io::{self, BufRead, Read};

use miniz_oxide::inflate::stream::{inflate, InflateState};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};

pub struct Gzip<R> {
    src: R,
    state: Box<InflateState>,
    crc: u32,
    len: u32,
    /// Before a member's header (true), or in its deflate stream.
    at_header: bool,
    done: bool,
}

fn bad(m: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("gzip: {m}"))
}

impl<R: BufRead> Gzip<R> {
    pub fn new(src: R) -> Self {
        Gzip {
            src,
            state: InflateState::new_boxed(DataFormat::Raw),
            crc: 0,
            len: 0,
            at_header: true,
            done: false,
        }
    }

    fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.src.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn header(&mut self) -> io::Result<()> {
        let mut h = [0u8; 10];
        self.src.read_exact(&mut h)?;
        if h[0..3] != [0x1f, 0x8b, 8] {
            return Err(bad("not a gzip member (bad magic or method)"));
        }
        let flags = h[3];
        if flags & 0xe0 != 0 {
            return Err(bad("reserved header flags set"));
        }
        if flags & 4 != 0 {
            let mut x = [0u8; 2];
            self.src.read_exact(&mut x)?;
            let n = u64::from(u16::from_le_bytes(x));
            io::copy(&mut (&mut self.src).take(n), &mut io::sink())?;
        }
        for bit in [8, 16] {
            if flags & bit != 0 {
                while self.byte()? != 0 {}
            }
        }
        if flags & 2 != 0 {
            self.byte()?;
            self.byte()?;
        }
        self.state = InflateState::new_boxed(DataFormat::Raw);
        self.crc = 0;
        self.len = 0;
        Ok(())
    }

    fn trailer(&mut self) -> io::Result<()> {
        let mut t = [0u8; 8];
        self.src.read_exact(&mut t)?;
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let len = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if crc != self.crc || len != self.len {
            return Err(bad("the trailer's checksum or length does not match"));
        }
        Ok(())
    }
}

impl<R: BufRead> Read for Gzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            if self.at_header {
                self.header()?;
                self.at_header = false;
            }
            let input = self.src.fill_buf()?;
            let ended = input.is_empty();
            let r = inflate(&mut self.state, input, buf, MZFlush::None);
            self.src.consume(r.bytes_consumed);
            let out = &buf[..r.bytes_written];
            self.crc = crc32(self.crc, out);
            self.len = self.len.wrapping_add(out.len() as u32);
            match r.status {
                Ok(MZStatus::StreamEnd) => {
                    self.trailer()?;
                    self.at_header = true;
                    self.done = self.src.fill_buf()?.is_empty();
                }
                _ if ended => return Err(bad("the stream is truncated")),
                Ok(_) if r.bytes_consumed == 0 && r.bytes_written == 0 => {
                    return Err(bad("a corrupt deflate stream"));
                }
                Ok(_) => {}
                Err(_) => return Err(bad("a corrupt deflate stream")),
            }
            if r.bytes_written > 0 {
                return Ok(r.bytes_written);
            }
        }
    }
}

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = table();

/// CRC-32 (IEEE), continued from `crc` over `bytes`.
pub fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc() {
        assert_eq!(crc32(0, b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(crc32(0, b"1234"), b"56789"), 0xcbf4_3926);
    }

    // `printf 'hello\n' | gzip -n`, twice: two members.
    const HELLO: [u8; 26] = [
        0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xe7, 2, 0, 0x20, 0x30,
        0x3a, 0x36, 6, 0, 0, 0,
    ];

    fn gunzip(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Gzip::new(data).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_and_damage() {
        assert_eq!(gunzip(&HELLO).unwrap(), b"hello\n");
        let two = [HELLO, HELLO].concat();
        assert_eq!(gunzip(&two).unwrap(), b"hello\nhello\n");
        let mut crc = HELLO;
        crc[18] ^= 1;
        assert!(gunzip(&crc).unwrap_err().to_string().contains("checksum"));
        assert!(gunzip(&HELLO[..20]).is_err());
        assert!(gunzip(&HELLO[..12]).is_err());
        assert!(gunzip(&[HELLO.as_slice(), b"junk"].concat()).is_err());
    }
}
