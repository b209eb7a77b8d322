//! What `nanoctr import` reads from an image: a layer's gzip and tar
//! streams (`nanoctr::image::{gzip, tar}`), an image config made into a bundle's
//! `config.json` (`nanoctr::image::spec`), and the JSON reader's object
//! members and full string unescaping (`bundle::json::{members, text}`).
//!
//! The whole input is each of them. Checked, beyond "never panics":
//! - every entry's name and link are at most `MAX_PATH` bytes without a
//!   NUL, and a regular file's data reads back as exactly its size, or
//!   the stream is refused;
//! - a `config.json` made from the input passes `check`;
//! - `members` gives ranges inside the object, and `text` of a quoted
//!   string gives the string back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nanoctr::bundle::json::{check, find, members, quote, text};
use std::io::Read;

use nanoctr::image::{gzip, spec, tar};

fuzz_target!(|data: &[u8]| {
    layer(data);
    // A gzip stream: never a panic, at most 16 MiB out of any input.
    let mut out = Vec::new();
    let _ = gzip::Gzip::new(data).take(16 << 20).read_to_end(&mut out);
    if let Ok(config) = spec::config_json(
        data,
        std::path::Path::new("/nonexistent-rootfs"),
        "fuzz",
        &spec::Overrides::default(),
    ) {
        assert_eq!(check(config.as_bytes()), Ok(()), "{config}");
    }
    if let Some(r) = find(data, &[]) {
        if let Some(m) = members(data, r.clone()) {
            for (_, v) in m {
                assert!(r.start < v.start && v.end <= r.end, "{v:?} in {r:?}");
            }
        }
        if let Some(s) = text(data, r) {
            let q = quote(&s);
            assert_eq!(text(q.as_bytes(), 0..q.len()).as_deref(), Some(s.as_str()));
        }
    }
});

fn layer(data: &[u8]) {
    let mut data = data;
    let mut r = tar::Reader::new(&mut data);
    let mut buf = [0u8; 700];
    while let Ok(Some(e)) = r.next_entry() {
        assert!(e.path.len() <= tar::MAX_PATH && e.link.len() <= tar::MAX_PATH);
        assert!(!e.path.contains(&0) && !e.link.contains(&0));
        let mut got = 0u64;
        loop {
            match r.read_data(&mut buf) {
                Ok(0) => {
                    assert_eq!(got, e.size, "{}", e.name());
                    break;
                }
                Ok(n) => got += n as u64,
                Err(_) => return,
            }
        }
    }
}
