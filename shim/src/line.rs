//! Fixed-capacity lines for the shim's messages and state files.

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
        let room = (N - 1).saturating_sub(self.len);
        let take = bytes.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
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

    /// Appends a number in decimal.
    pub fn push_int(&mut self, n: i64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut v = n.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if n < 0 {
            self.push(b"-");
        }
        self.push(&digits[at..])
    }

    /// The line with its newline.
    pub fn finish(&mut self) -> &[u8] {
        self.buf[self.len] = b'\n';
        &self.buf[..=self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn overflow_keeps_the_newline() {
        let mut l = Line::<8>::new();
        l.push(b"error ").push_text(b"a very long message");
        assert_eq!(l.finish(), b"error a\n");
        l.push(b"more");
        assert_eq!(l.finish(), b"error a\n");
    }
}
