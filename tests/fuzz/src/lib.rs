//! What the fuzz targets share: read sizes drawn from the input, and the
//! nesting depth of a JSON value.
//!
//! A socket or fifo hands a reader its bytes in pieces of any size; the
//! parsers that assemble lines must give the same lines whatever the
//! pieces. The targets take the sizes from [`Reads`], a generator seeded
//! by a hash of the whole input, so an input is still a plain text file
//! (a corpus entry reads as what it is) and replays the same way every
//! time.

/// Read sizes for one input: xorshift64* seeded by FNV-1a of the input.
pub struct Reads(u64);

impl Reads {
    pub fn new(input: &[u8]) -> Reads {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in input {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Reads(h | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// The size of the next read, 1 to `max`: often a single byte or a
    /// few, as from a person typing, otherwise anything up to `max`.
    pub fn size(&mut self, max: usize) -> usize {
        match self.below(4) {
            0 => 1,
            1 => 1 + self.below(16.min(max)),
            _ => 1 + self.below(max),
        }
    }
}

/// How deep arrays and objects nest in a well-formed JSON value (0 for a
/// scalar), counted as `nanoctr::bundle::json::check` counts them.
pub fn json_depth(value: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut bytes = value.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'"' => {
                while let Some(&c) = bytes.next() {
                    match c {
                        b'"' => break,
                        b'\\' => {
                            bytes.next();
                        }
                        _ => {}
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}
