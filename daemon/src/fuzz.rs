//! Randomized tests of everything that reads untrusted text: request lines
//! (bytes to lines, lines to words, words to requests, errors to answer
//! lines), records from the state dir and the config file. Each runs many
//! thousands of generated inputs from a fixed seed, so a failure is
//! repeatable; the inputs mix the protocol's own words (verbs, options,
//! ids, quotes) with arbitrary bytes, which reaches much deeper than bytes
//! alone would.

use std::path::Path;

use crate::config::file;
use crate::server::conn::{Line, LineBuffer};
use crate::store::record::Record;
use crate::wire::proto::{quote, split_words, Reply, MAX_LINE};
use crate::wire::{Request, VERBS};

/// xorshift64*: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

const PIECES: &[&str] = &[
    "web",
    "db",
    "init",
    "../x",
    "a/b",
    "",
    " ",
    "  ",
    "\t",
    "\"",
    "\\",
    "\"a b\"",
    "\"x\\\"y\"",
    "=",
    "k=v",
    "/srv/b",
    "relative",
    "terminal",
    "terminal=no",
    "interactive",
    "cols=80",
    "rows=0",
    "log-size=4k",
    "log-size=1g",
    "label.a=b",
    "label.=x",
    "restart=always",
    "restart=on-failure:3",
    "restart=on-failure:0",
    "memory=16m",
    "pids=-1",
    "cpu-quota=x",
    "--",
    "-c",
    "sh",
    "since=1",
    "type=exit",
    "id=web",
    "proc=p",
    "all",
    "KILL",
    "9",
    "SIGTERM",
    "tail=5",
    "follow",
    "force",
    "exit",
    "dir=/d",
    "checkpoint=c",
    "env=A=B",
    "cwd=/",
    "user=1:2",
    "user=x",
    "é",
    "\u{7f}",
    "\r",
    "\u{0}",
    "9999999999999999999999",
    "-1",
];

/// A line built from protocol words and noise.
fn line(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let verbs: Vec<&str> = VERBS.iter().map(|v| v.0).collect();
    if rng.below(8) != 0 {
        out.extend_from_slice(rng.pick(&verbs).as_bytes());
    }
    for _ in 0..rng.below(8) {
        if rng.below(2) == 0 {
            out.push(b' ');
        }
        match rng.below(10) {
            0 => out.extend((0..rng.below(6)).map(|_| rng.next() as u8)),
            _ => out.extend_from_slice(rng.pick(PIECES).as_bytes()),
        }
    }
    out
}

#[test]
fn request_lines_never_panic_and_errors_stay_on_one_line() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..60_000 {
        let bytes = line(&mut rng);
        let parsed = split_words(&bytes).and_then(|w| Request::parse(&w).map(|_| ()));
        if let Err(e) = parsed {
            let mut r = Reply::new();
            r.err(&e);
            let text = r.as_bytes();
            assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 1, "{e:?}");
            assert!(text.starts_with(b"ERR ") && text.ends_with(b"\n"));
        }
    }
}

#[test]
fn quoted_words_come_back_as_they_were() {
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let words: Vec<String> = (0..1 + rng.below(4))
            .map(|_| {
                let mut w = String::new();
                for _ in 0..rng.below(4) {
                    w.push_str(rng.pick(PIECES));
                }
                // A line holds no control characters but the tab.
                w.chars()
                    .filter(|c| !c.is_control() || *c == '\t')
                    .collect()
            })
            .collect();
        let line: Vec<String> = words.iter().map(|w| quote(w).into_owned()).collect();
        let back = split_words(line.join(" ").as_bytes()).unwrap();
        assert_eq!(back, words, "{line:?}");
    }
}

#[test]
fn the_line_buffer_bounds_every_line() {
    let mut rng = Rng(7);
    for _ in 0..300 {
        let mut stream = Vec::new();
        for _ in 0..rng.below(20) {
            let n = match rng.below(4) {
                0 => MAX_LINE + rng.below(3 * MAX_LINE),
                _ => rng.below(64),
            };
            stream.extend((0..n).map(|_| b'a' + (rng.next() % 26) as u8));
            if rng.below(5) != 0 {
                stream.push(b'\n');
            }
        }
        let mut buf = LineBuffer::with_capacity();
        let mut rest = &stream[..];
        let mut lines = 0;
        loop {
            // Reads of random sizes, as a socket gives them.
            let take = rest.len().min(1 + rng.below(2 * MAX_LINE));
            let mut chunk = &rest[..take];
            let got = buf.fill(&mut chunk).unwrap();
            rest = &rest[got..];
            while let Some(l) = buf.next_line() {
                if let Line::Complete(l) = l {
                    assert!(l.len() <= MAX_LINE + 1 && !l.contains(&b'\n'));
                }
                lines += 1;
                assert!(lines <= stream.len() + 1);
            }
            if rest.is_empty() && got == 0 {
                break;
            }
        }
    }
}

#[test]
fn records_and_config_files_never_panic() {
    let mut rng = Rng(0xdead_beef);
    let keys = [
        "id", "bundle", "runtime", "created", "restarts", "streak", "held",
    ];
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..rng.below(8) {
            let k = rng.pick(&keys);
            text.push_str(&format!("{k}={} ", quote(rng.pick(PIECES))));
            if rng.below(4) == 0 {
                text.push_str(rng.pick(PIECES));
            }
        }
        let _ = Record::decode(&text);
    }
    let lines = [
        "[container web]",
        "[container ../x]",
        "[container",
        "bundle = /b",
        "bundle = ",
        "after = web db",
        "after = web",
        "ready = file:/x",
        "ready = exited0",
        "restart = on-failure:2",
        "options = cols=3 \"label.x=a b\"",
        "options = \"",
        "max-calls = 2",
        "log = syslog",
        "retain = -1",
        "# comment",
        "",
        "=",
        "key",
    ];
    for _ in 0..20_000 {
        let n = rng.below(10);
        let text: Vec<&str> = (0..n).map(|_| rng.pick(&lines)).collect();
        if let Err(e) = file::parse(Path::new("/f"), &text.join("\n"), rng.below(2) == 0) {
            let line: usize = e
                .strip_prefix("/f:")
                .and_then(|r| r.split(':').next())
                .and_then(|l| l.parse().ok())
                .unwrap_or_else(|| panic!("{e}"));
            assert!((1..=n).contains(&line), "{e}");
        }
    }
}
