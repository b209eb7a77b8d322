//! The event log's segments in the state dir, read back at every daemon
//! start: `nanoctr::wire::event::Event::parse` of each whole line, as the log
//! reads a segment (up to its last newline, as UTF-8 with replacements).
//!
//! Checked, beyond "never panics": a parsed event keeps its line as it
//! was and parses again to the same event; its kind's name reads back as
//! that kind; its id is the line's `id=` word and passes a filter on that
//! id and kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanoctr::wire::event::{Event, Filter, Kind};

fuzz_target!(|data: &[u8]| {
    let whole = data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let text = String::from_utf8_lossy(&data[..whole]);
    for line in text.split_inclusive('\n') {
        let Some(e) = Event::parse(line) else {
            continue;
        };
        assert_eq!(e.line(), line);
        assert_eq!(Event::parse(e.line()).as_ref(), Some(&e));
        assert_eq!(Kind::parse(e.kind.as_str()), Some(e.kind));
        let id = e.id();
        let word = format!(" id={id}");
        let at = line.find(&word).expect("the id is an id= word");
        assert!(matches!(line.as_bytes()[at + word.len()], b' ' | b'\n'), "{line:?}");
        let filter = Filter {
            since: Some(e.seq),
            id: Some(id.to_string()),
            kind: Some(e.kind),
        };
        assert!(filter.matches(&e), "{filter:?} {line:?}");
        assert!(Filter::default().matches(&e));
        let _ = e.field("seq");
        let _ = e.field("time");
        let _ = e.field("status");
        let _ = e.field("");
    }
});
