//! The shim's command line (`nanoctr_shim::contract::args::ShimArgs::parse`): the
//! input is the words after `argv[0]`, each ended by a NUL byte, as the
//! kernel lays them out.
//!
//! Checked, beyond "never panics": what parses has the required values,
//! values in range and the combinations the shim relies on (a terminal has
//! a console; at most one of run, exec, restore); every value is the tail
//! of one of the words, up to its NUL (the shim hands values on without a
//! copy); and the arguments, written out again as the daemon writes them
//! (`ShimArgs::words`), parse to the same.
#![no_main]

use std::ffi::{CStr, CString};

use libfuzzer_sys::fuzz_target;
use nanoctr_shim::contract::args::ShimArgs;
use nanoctr_shim::contract::MIN_LOG_SIZE;

fuzz_target!(|data: &[u8]| {
    let mut pieces: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    if pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    let words: Vec<CString> = pieces
        .into_iter()
        .map(|p| CString::new(p).expect("split at every NUL"))
        .collect();
    let Ok(args) = ShimArgs::parse(words.iter().map(CString::as_c_str)) else {
        return;
    };
    assert!(args.startup_fd > 2, "{args:?}");
    assert!(args.log_size >= MIN_LOG_SIZE, "{args:?}");
    assert!(!args.terminal || args.console.is_some(), "{args:?}");
    let makes = [args.run, args.exec.is_some(), args.restore.is_some()];
    assert!(makes.iter().filter(|&&m| m).count() <= 1, "{args:?}");
    assert!(args
        .oom_score_adj
        .is_none_or(|a| (-1000..=1000).contains(&a)));
    for v in values(&args) {
        assert!(!v.is_empty(), "{args:?}");
        let tail_of_a_word = words.iter().any(|w| {
            let (w, v) = (w.to_bytes_with_nul(), v.to_bytes_with_nul());
            let (ws, vs) = (w.as_ptr() as usize, v.as_ptr() as usize);
            ws <= vs && vs + v.len() == ws + w.len()
        });
        assert!(tail_of_a_word, "{v:?} is not in the words");
    }

    let again = words_of(&args);
    let back = ShimArgs::parse(again.iter().map(CString::as_c_str));
    assert_eq!(back, Ok(args), "{again:?}");
});

fn values<'a>(a: &ShimArgs<'a>) -> Vec<&'a CStr> {
    let mut v = vec![a.id, a.bundle, a.runtime, a.log, a.pid_file];
    for o in [
        a.root, a.stdin, a.stdout, a.stderr, a.console, a.exec, a.restore,
    ] {
        v.extend(o);
    }
    v
}

/// The command line for `a`, as the daemon writes it.
fn words_of(a: &ShimArgs<'_>) -> Vec<CString> {
    let mut words = Vec::new();
    a.words(&mut |k, v| {
        let mut w = format!("{k}=").into_bytes();
        w.extend_from_slice(v);
        words.push(CString::new(w).expect("no NUL inside a C string"));
    });
    words
}
