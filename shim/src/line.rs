//! Fixed-capacity lines: the shim's messages and state files, and the
//! assembly of lines from a byte stream.

/// A line built in a fixed buffer. Text past the capacity is dropped, but a
/// line always has room for its final newline, so a message is cut short
/// rather than lost or run together with the next one.
pub struct Line<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Line<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Line<N> {
    pub const fn new() -> Self {
        Line {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends bytes as they are.
    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        append(&mut self.buf, &mut self.len, bytes);
        self
    }

    /// Appends free text with every control byte turned into a space, so
    /// that text from elsewhere (a runtime's message) stays on one line.
    pub fn push_text(&mut self, text: &[u8]) -> &mut Self {
        for &b in text {
            self.push(&[if b < 0x20 || b == 0x7f { b' ' } else { b }]);
        }
        self
    }

    /// Appends a number in decimal (ufmt's, without core::fmt).
    pub fn push_int(&mut self, n: i64) -> &mut Self {
        let _ = ufmt::uwrite!(self, "{}", n);
        self
    }

    /// What has been pushed, without a newline.
    pub fn text(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The line with its newline.
    pub fn finish(&mut self) -> &[u8] {
        self.buf[self.len] = b'\n';
        &self.buf[..=self.len]
    }
}

/// A line is ufmt's output: `uwrite!(line, ...)`; what does not fit is
/// dropped, as with [`Line::push`].
impl<const N: usize> ufmt::uWrite for Line<N> {
    type Error = core::convert::Infallible;
    fn write_str(&mut self, s: &str) -> Result<(), Self::Error> {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// Appends what fits of `bytes` to the `len` bytes used in `buf`, keeping
/// the last byte for the newline (one copy of the code for every `N`).
fn append(buf: &mut [u8], len: &mut usize, bytes: &[u8]) {
    let room = (buf.len() - 1).saturating_sub(*len);
    let take = bytes.len().min(room);
    buf[*len..*len + take].copy_from_slice(&bytes[..take]);
    *len += take;
}

/// Collects bytes into lines in a fixed buffer. A line longer than the
/// buffer is dropped whole (up to its newline) instead of being cut into
/// pieces that could read as other requests.
pub struct LineAssembler<const N: usize> {
    buf: [u8; N],
    len: usize,
    discarding: bool,
}

impl<const N: usize> Default for LineAssembler<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineAssembler<N> {
    pub const fn new() -> Self {
        LineAssembler {
            buf: [0; N],
            len: 0,
            discarding: false,
        }
    }

    /// Feeds `input` and calls `each` with every complete line, without its
    /// newline.
    pub fn feed(&mut self, input: &[u8], mut each: impl FnMut(&[u8])) {
        for &b in input {
            if b == b'\n' {
                if !self.discarding {
                    each(&self.buf[..self.len]);
                }
                self.len = 0;
                self.discarding = false;
            } else if self.discarding {
            } else if self.len == N {
                self.discarding = true;
                self.len = 0;
            } else {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines<const N: usize>(a: &mut LineAssembler<N>, input: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        a.feed(input, |l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn builds_lines() {
        let mut l = Line::<32>::new();
        l.push(b"created ").push_int(4242);
        assert_eq!(l.finish(), b"created 4242\n");
        let mut l = Line::<32>::new();
        l.push_int(0)
            .push(b" ")
            .push_int(-17)
            .push(b" ")
            .push_int(i64::MIN);
        assert_eq!(l.finish(), b"0 -17 -9223372036854775808\n");
    }

    #[test]
    fn control_bytes_become_spaces() {
        let mut l = Line::<32>::new();
        l.push_text(b"a\nb\tc\x7f");
        assert_eq!(l.finish(), b"a b c \n");
    }

    #[test]
    fn decimals() {
        let text = |n: i64| {
            let mut l = Line::<24>::new();
            l.push_int(n);
            l.finish().to_vec()
        };
        assert_eq!(text(0), b"0\n");
        assert_eq!(text(-42), b"-42\n");
        assert_eq!(text(i64::MIN), b"-9223372036854775808\n");
        assert_eq!(text(i64::MAX), b"9223372036854775807\n");
    }

    #[test]
    fn overflow_keeps_the_newline() {
        let mut l = Line::<8>::new();
        l.push(b"error ").push_text(b"a very long message");
        assert_eq!(l.finish(), b"error a\n");
        l.push(b"more");
        assert_eq!(l.finish(), b"error a\n");
    }

    #[test]
    fn assembles_across_reads() {
        let mut a = LineAssembler::<16>::new();
        assert!(lines(&mut a, b"sta").is_empty());
        assert_eq!(
            lines(&mut a, b"rt\nx\n"),
            vec![b"start".to_vec(), b"x".to_vec()]
        );
    }

    #[test]
    fn drops_over_long_lines_whole() {
        let mut a = LineAssembler::<4>::new();
        assert_eq!(lines(&mut a, b"startstart\nok\n"), vec![b"ok".to_vec()]);
        assert_eq!(lines(&mut a, b"abcd\n"), vec![b"abcd".to_vec()]);
    }
}
