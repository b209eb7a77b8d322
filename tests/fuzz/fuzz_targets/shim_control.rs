//! The shim's control fifo (daemon to shim): bytes in reads of any size
//! through `nanoctr_shim::line::LineAssembler::<MAX_CONTROL_LINE>` (the
//! shim's size), each line through `Control::parse`.
//!
//! Checked, beyond "never panics": the lines are those of the stream,
//! whatever the read sizes (one of more than 128 bytes is dropped whole);
//! a parsed request has values in range and, written out in its plain
//! form (`kill 9`, `resize 80 24`), parses again to itself, and is the line
//! the daemon writes for it (`Control::line`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanoctr_fuzz::Reads;
use nanoctr_shim::contract::control::Control;
use nanoctr_shim::contract::MAX_CONTROL_LINE as N;
use nanoctr_shim::line::LineAssembler;

fuzz_target!(|data: &[u8]| {
    let mut reads = Reads::new(data);
    let mut a = LineAssembler::<N>::new();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let take = rest.len().min(reads.size(3 * N));
        a.feed(&rest[..take], |l| lines.push(l.to_vec()));
        rest = &rest[take..];
    }
    let mut pieces: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    pieces.pop();
    let expected: Vec<Vec<u8>> = pieces
        .into_iter()
        .filter(|l| l.len() <= N)
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(lines, expected);
    for line in &lines {
        let c = Control::parse(line);
        let again = match c {
            Control::Start => "start".to_string(),
            Control::CloseStdin => "closestdin".to_string(),
            Control::Kill { signal } => {
                assert!((1..=64).contains(&signal), "{c:?}");
                format!("kill {signal}")
            }
            Control::Resize { cols, rows } => {
                assert!(cols > 0 && rows > 0, "{c:?}");
                format!("resize {cols} {rows}")
            }
            Control::Unknown => continue,
        };
        assert_eq!(Control::parse(again.as_bytes()), c, "{line:?}");
        let mut written = c.line();
        assert_eq!(written.finish(), format!("{again}\n").as_bytes());
    }
});
