//! The `container` record in the state dir (`nanoctr::store::record`), read back
//! at every daemon start: `Record::decode` of any text, and `encode` of
//! whatever decodes.
//!
//! Checked, beyond "never panics": an encoded record is one line, ending
//! with its newline, and decodes to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanoctr::store::record::Record;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(record) = Record::decode(&text) else {
        return;
    };
    let line = record.encode();
    assert!(line.ends_with('\n'), "{line:?}");
    assert_eq!(line.matches('\n').count(), 1, "{line:?}");
    assert_eq!(Record::decode(&line), Ok(record), "{line:?}");
});
