//! Lines from the `control` fifo (daemon to shim), and the assembly of lines
//! from a byte stream in a fixed buffer.

/// A request on the control fifo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Run `<runtime> start ID`.
    Start,
    /// `resize COLS ROWS`: the pty's new size.
    Resize { cols: u16, rows: u16 },
    /// `closestdin`: end the container's input.
    CloseStdin,
    /// `kill SIGNAL`: signal the supervised process, unless it has been
    /// reaped already (so a recycled pid is never hit).
    Kill { signal: i32 },
    /// Anything else; ignored, so an older shim survives a newer daemon.
    Unknown,
}

impl Control {
    pub fn parse(line: &[u8]) -> Control {
        let line = trim(line);
        let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let number = |w: Option<&[u8]>| {
            w.and_then(crate::args::parse_u32)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&n| n > 0)
        };
        match words.next() {
            Some(b"start") if line == b"start" => Control::Start,
            Some(b"closestdin") if line == b"closestdin" => Control::CloseStdin,
            Some(b"kill") => match (number(words.next()), words.next()) {
                (Some(signal @ 1..=64), None) => Control::Kill {
                    signal: signal.into(),
                },
                _ => Control::Unknown,
            },
            Some(b"resize") => match (number(words.next()), number(words.next()), words.next()) {
                (Some(cols), Some(rows), None) => Control::Resize { cols, rows },
                _ => Control::Unknown,
            },
            _ => Control::Unknown,
        }
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b' '] = s {
        s = rest;
    }
    s
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
    fn parses_control_words() {
        assert_eq!(Control::parse(b"start"), Control::Start);
        assert_eq!(Control::parse(b"start\r"), Control::Start);
        assert_eq!(Control::parse(b"start now"), Control::Unknown);
        assert_eq!(Control::parse(b""), Control::Unknown);
        assert_eq!(
            Control::parse(b"resize 100 30"),
            Control::Resize {
                cols: 100,
                rows: 30
            }
        );
        assert_eq!(Control::parse(b"resize 0 30"), Control::Unknown);
        assert_eq!(Control::parse(b"resize 100"), Control::Unknown);
        assert_eq!(Control::parse(b"resize 100 30 1"), Control::Unknown);
        assert_eq!(Control::parse(b"resize 70000 30"), Control::Unknown);
        assert_eq!(Control::parse(b"closestdin\r"), Control::CloseStdin);
        assert_eq!(Control::parse(b"kill 9"), Control::Kill { signal: 9 });
        assert_eq!(Control::parse(b"kill 64"), Control::Kill { signal: 64 });
        assert_eq!(Control::parse(b"kill 65"), Control::Unknown);
        assert_eq!(Control::parse(b"kill 0"), Control::Unknown);
        assert_eq!(Control::parse(b"kill"), Control::Unknown);
        assert_eq!(Control::parse(b"kill 9 9"), Control::Unknown);
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
