//! The scrollback: the last few KiB a process wrote, replayed to whoever
//! attaches, in a fixed buffer.

/// Bytes of scrollback a shim keeps.
pub const SCROLLBACK: usize = 4096;

pub struct Ring {
    buf: [u8; SCROLLBACK],
    /// Where the oldest byte is.
    start: usize,
    len: usize,
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            buf: [0; SCROLLBACK],
            start: 0,
            len: 0,
        }
    }
}

impl Ring {
    /// Keeps `data`, forgetting the oldest bytes to make room.
    pub fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(SCROLLBACK)..];
        let mut end = (self.start + self.len) % SCROLLBACK;
        for &b in data {
            self.buf[end] = b;
            end = (end + 1) % SCROLLBACK;
        }
        let total = self.len + data.len();
        if total > SCROLLBACK {
            self.start = (self.start + total - SCROLLBACK) % SCROLLBACK;
            self.len = SCROLLBACK;
        } else {
            self.len = total;
        }
    }

    /// Where the next bytes go, to read into in place: from the end of the
    /// contents to the end of the buffer (at least one byte). What is
    /// there is the oldest of the contents, or nothing.
    pub fn room(&mut self) -> &mut [u8] {
        let end = (self.start + self.len) % SCROLLBACK;
        &mut self.buf[end..]
    }

    /// Keeps the first `n` bytes of [`Ring::room`] (written there since),
    /// forgetting as many of the oldest as they replace; returns them.
    pub fn commit(&mut self, n: usize) -> &[u8] {
        let end = (self.start + self.len) % SCROLLBACK;
        let n = n.min(SCROLLBACK - end);
        let total = self.len + n;
        if total > SCROLLBACK {
            self.start = (self.start + total - SCROLLBACK) % SCROLLBACK;
            self.len = SCROLLBACK;
        } else {
            self.len = total;
        }
        &self.buf[end..end + n]
    }

    /// The contents, oldest first, in at most two pieces.
    pub fn parts(&self) -> (&[u8], &[u8]) {
        let first = (SCROLLBACK - self.start).min(self.len);
        (
            &self.buf[self.start..self.start + first],
            &self.buf[..self.len - first],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(r: &Ring) -> Vec<u8> {
        let (a, b) = r.parts();
        [a, b].concat()
    }

    #[test]
    fn keeps_what_fits() {
        let mut r = Ring::default();
        assert!(contents(&r).is_empty());
        r.push(b"hello ");
        r.push(b"world");
        assert_eq!(contents(&r), b"hello world");
    }

    #[test]
    fn forgets_the_oldest() {
        let mut r = Ring::default();
        let first: Vec<u8> = (0..SCROLLBACK).map(|i| (i % 251) as u8).collect();
        r.push(&first);
        r.push(b"tail");
        let got = contents(&r);
        assert_eq!(got.len(), SCROLLBACK);
        assert_eq!(&got[..SCROLLBACK - 4], &first[4..]);
        assert!(got.ends_with(b"tail"));
        // A push larger than the ring keeps its own end.
        let big: Vec<u8> = (0..3 * SCROLLBACK).map(|i| (i % 7) as u8).collect();
        r.push(&big);
        assert_eq!(contents(&r), &big[2 * SCROLLBACK..]);
    }

    /// Reading into the room and committing keeps the same as a push.
    #[test]
    fn reads_in_place_as_a_push_would() {
        let (mut a, mut b) = (Ring::default(), Ring::default());
        let mut next = 0u32;
        for size in [1, 700, 4095, 3, 4096, 9000, 1, 2048, 5000] {
            let data: Vec<u8> = (0..size)
                .map(|_| {
                    next += 1;
                    (next % 253) as u8
                })
                .collect();
            a.push(&data);
            let mut rest = &data[..];
            while !rest.is_empty() {
                let room = b.room();
                assert!(!room.is_empty());
                let n = room.len().min(rest.len());
                room[..n].copy_from_slice(&rest[..n]);
                assert_eq!(b.commit(n), &rest[..n], "the bytes kept are given back");
                rest = &rest[n..];
            }
            assert_eq!(contents(&a), contents(&b), "after {size} bytes");
        }
    }
}
