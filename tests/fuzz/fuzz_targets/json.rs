//! `nanoctr::bundle::json`, which reads and patches a bundle's `config.json`.
//!
//! An input is three parts, one line each for the first two:
//!
//! ```text
//! process/terminal         a key path, keys separated by '/' (empty: the root)
//! true                     a value (JSON text) to set there
//! { "ociVersion": ... }    the document: the rest of the input
//! ```
//!
//! Checked, beyond "never panics" (also for the whole input taken as the
//! document):
//! - `find` and `elements` give non-empty ranges inside the text;
//! - in a document `check` accepts, every value found (and every element)
//!   passes `check` itself, and a path whose prefix is missing is missing;
//! - `set` on such a document, of a value `check` accepts, at any path of
//!   keys nested no deeper than `MAX_DEPTH` in all, gives a document
//!   `check` accepts, in which `find` of the path gives the value back
//!   (keys are matched as `quote` writes them);
//! - `quote` then `string` gives back a string without control characters,
//!   and `check` accepts every quoted string;
//! - `bundle::process::process_json`, the process file `exec` derives from the
//!   bundle's config with these calls, gives a document `check` accepts
//!   when the config is one.
#![no_main]

use std::ops::Range;

use libfuzzer_sys::fuzz_target;
use nanoctr::bundle::json::{check, elements, find, quote, set, string, MAX_DEPTH};
use nanoctr::wire::proto::split_words;
use nanoctr::wire::Request;
use nanoctr_fuzz::{json_depth, Reads};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let path_line = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let value = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let doc = parts.next().unwrap_or_default();
    let path: Vec<&str> = match path_line.trim_end_matches('\r') {
        "" => Vec::new(),
        p => p.split('/').collect(),
    };
    let mut reads = Reads::new(data);

    for doc in [doc, data] {
        let well_formed = check(doc).is_ok();
        look_up(doc, &path, well_formed);
        for _ in 0..4 {
            // Ranges that need not be values, nor inside the text.
            let a = reads.below(doc.len() + 2);
            let b = reads.below(doc.len() + 2);
            let _ = string(doc, a..b);
            if let Some(items) = elements(doc, a..b) {
                for r in items {
                    assert!(
                        r.start < r.end && r.end <= b.min(doc.len()),
                        "{r:?} in {a}..{b}"
                    );
                }
            }
        }
    }
    set_and_find(doc, &path, &value);
    for s in [
        value.as_str(),
        path_line.as_str(),
        &String::from_utf8_lossy(doc),
    ] {
        quoted(s);
    }
    for key in &path {
        quoted(key);
    }
    exec_process(doc);
});

/// The process files of two `exec` requests, from `doc` as the bundle's
/// `config.json`.
fn exec_process(doc: &[u8]) {
    for line in [
        "exec web p1 -- sh -c \"echo \\\"hi\\\"\"",
        "exec web p2 terminal cwd=/tmp env=PATH=/bin env=A=\"b c\" user=1000:100 cols=132 -- top",
    ] {
        let words = split_words(line.as_bytes()).expect("a well-formed line");
        let Ok(Request::Exec(spec)) = Request::parse(&words) else {
            panic!("{line:?} is an exec request");
        };
        let Ok(p) = nanoctr::bundle::process::process_json(&spec, doc) else {
            continue;
        };
        if check(doc).is_ok() {
            let shown = || String::from_utf8_lossy(&p).into_owned();
            assert_eq!(check(&p), Ok(()), "{line:?}: {}", shown());
            let args = find(&p, &["args"]).unwrap_or_else(|| panic!("no args: {}", shown()));
            assert_eq!(elements(&p, args).map(|a| a.len()), Some(spec.args.len()));
        }
    }
}

/// `find` at each prefix of `path`, and what is found there.
fn look_up(doc: &[u8], path: &[&str], well_formed: bool) {
    let mut missing = false;
    for n in 0..=path.len() {
        let Some(r) = find(doc, &path[..n]) else {
            missing = true;
            continue;
        };
        in_text(doc, &r);
        if well_formed {
            assert!(!missing, "{:?} found under a missing prefix", &path[..n]);
            assert_eq!(check(&doc[r.clone()]), Ok(()), "value at {:?}", &path[..n]);
        }
        if let Some(s) = string(doc, r.clone()) {
            if !s.chars().any(|c| (c as u32) < 0x20) {
                assert_eq!(string(quote(&s).as_bytes(), 0..quote(&s).len()), Some(s));
            }
        }
        match elements(doc, r.clone()) {
            Some(items) => {
                let mut from = r.start;
                for e in items {
                    assert!(
                        from <= e.start && e.start < e.end && e.end <= r.end,
                        "{e:?} in {r:?}"
                    );
                    from = e.end;
                    if well_formed {
                        assert_eq!(check(&doc[e.clone()]), Ok(()), "element {e:?}");
                    }
                    let _ = string(doc, e);
                }
            }
            None => assert!(
                !(well_formed && doc[r.start] == b'['),
                "an array at {:?} has no elements",
                &path[..n]
            ),
        }
    }
}

fn in_text(doc: &[u8], r: &Range<usize>) {
    assert!(
        r.start < r.end && r.end <= doc.len(),
        "{r:?} of {}",
        doc.len()
    );
}

/// `set`, then `find` of the same path.
fn set_and_find(doc: &[u8], path: &[&str], value: &str) {
    let mut edited = doc.to_vec();
    let done = set(&mut edited, path, value);
    let found_before = find(doc, path).is_some();
    if found_before {
        assert!(done.is_some(), "a value that is there can be replaced");
    }
    if done.is_none()
        || check(doc).is_err()
        || check(value.as_bytes()).is_err()
        || path.len() + json_depth(value.as_bytes()) > MAX_DEPTH
    {
        return;
    }
    let shown = || String::from_utf8_lossy(&edited).into_owned();
    assert_eq!(check(&edited), Ok(()), "after set: {}", shown());
    let r = find(&edited, path).unwrap_or_else(|| panic!("{path:?} not found in {}", shown()));
    let value = value.trim_matches([' ', '\t', '\r', '\n']);
    assert_eq!(&edited[r], value.as_bytes(), "at {path:?} in {}", shown());
}

/// A string as a JSON literal, and back.
fn quoted(s: &str) {
    let q = quote(s);
    assert_eq!(check(q.as_bytes()), Ok(()), "{q}");
    let r = find(q.as_bytes(), &[]).expect("a literal is a value");
    assert_eq!(r, 0..q.len());
    if !s.chars().any(|c| (c as u32) < 0x20) {
        assert_eq!(string(q.as_bytes(), r).as_deref(), Some(s), "{q}");
    }
}
