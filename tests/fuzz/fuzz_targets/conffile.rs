//! The config file (`nanoctrd.conf` and the files of `containers.d`):
//! `nanoctr::config::file::parse` in both modes, and `start_order` on what it
//! declares.
//!
//! Checked, beyond "never panics":
//! - an error names the file and a line of it (`/f:LINE: ...`);
//! - the two modes agree: a file without settings reads the same with
//!   settings allowed or not, and one with settings only where allowed;
//! - each declared container's spec, written as a `create` request line,
//!   parses back to the same spec;
//! - `start_order` places each declaration at most once, after those it
//!   names, and gives a reason for every one it leaves out.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nanoctr::config::file::{parse, start_order, ConfFile, Decl};
use nanoctr::wire::proto::{quote, split_words};
use nanoctr::wire::Request;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    let name = Path::new("/f");
    let with = parse(name, &text, true);
    let without = parse(name, &text, false);
    for r in [&with, &without] {
        if let Err(e) = r {
            names_a_line(e, lines);
        }
    }
    match (&with, &without) {
        (Ok(w), Ok(wo)) => {
            assert!(wo.settings.is_empty());
            assert_eq!(w, wo);
        }
        (Ok(w), Err(_)) => assert!(!w.settings.is_empty(), "refused without settings: {w:?}"),
        (Err(e), Ok(wo)) => panic!("refused with settings allowed ({e}), read without: {wo:?}"),
        (Err(_), Err(_)) => {}
    }
    if let Ok(conf) = &with {
        declarations(conf);
    }
});

fn names_a_line(e: &str, lines: usize) {
    let line: usize = e
        .strip_prefix("/f:")
        .and_then(|r| r.split(':').next())
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no /f:LINE in {e:?}"));
    assert!((1..=lines).contains(&line), "line {line} of {lines}: {e:?}");
}

fn declarations(conf: &ConfFile) {
    for d in &conf.containers {
        create_line_round_trip(d);
    }
    let decls = &conf.containers;
    let (order, problems) = start_order(decls);
    let mut placed = vec![None; decls.len()];
    for (at, &i) in order.iter().enumerate() {
        assert!(i < decls.len(), "{i} of {}", decls.len());
        assert!(placed[i].is_none(), "{i} placed twice: {order:?}");
        placed[i] = Some(at);
    }
    for &i in &order {
        for a in &decls[i].after {
            let j = decls
                .iter()
                .position(|d| &d.spec.id == a)
                .expect("after names a declared one");
            assert!(
                placed[j].is_some_and(|pj| Some(pj) < placed[i]),
                "{} before {a}: {order:?}",
                decls[i].spec.id
            );
        }
    }
    let left_out = placed.iter().filter(|p| p.is_none()).count();
    assert!(
        problems.len() >= left_out,
        "{left_out} left out, {problems:?}"
    );
}

/// A declaration's spec as the `create` line that makes the same container.
fn create_line_round_trip(d: &Decl) {
    let s = &d.spec;
    let mut words = vec![
        "create".to_string(),
        quote(&s.id).into_owned(),
        quote(&s.bundle).into_owned(),
    ];
    if let Some(r) = &s.runtime {
        words.push(format!("runtime={}", quote(r)));
    }
    words.extend(s.options());
    let line = words.join(" ");
    let words = split_words(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e:?}"));
    match Request::parse(&words) {
        Ok(Request::Create(back)) => assert_eq!(&back, s, "{line:?}"),
        other => panic!("{line:?}: {other:?}"),
    }
}
