//! The runtime's JSON log (runc, crun: one object per line), from which
//! the daemon takes the message of the last error:
//! `nanoctr::server::runtime_log::last_error`, into buffers of 0, 1, 900 and
//! 1024 bytes.
//!
//! Checked, beyond "never panics": the length is within the buffer, and
//! the buffers agree: the same record is found in each, and a smaller
//! buffer holds the start of what a larger one holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanoctr::server::runtime_log::last_error;

const SIZES: [usize; 4] = [0, 1, 900, 1024];

fuzz_target!(|data: &[u8]| {
    let mut bufs = SIZES.map(|n| vec![0xa5u8; n]);
    let got: Vec<Option<usize>> = bufs.iter_mut().map(|b| last_error(data, b)).collect();
    for (n, size) in got.iter().zip(SIZES) {
        assert!(n.is_none_or(|n| n <= size), "{n:?} into {size}");
    }
    let Some(full) = got[3] else {
        assert!(got.iter().all(Option::is_none), "{got:?}");
        return;
    };
    for (i, size) in SIZES.iter().enumerate() {
        let n = got[i].unwrap_or_else(|| panic!("found with 1024 bytes, not with {size}"));
        assert_eq!(n, full.min(*size), "into {size}");
        assert_eq!(bufs[i][..n], bufs[3][..n], "into {size}");
    }
});
