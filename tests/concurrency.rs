//! The loop never waits for a runtime: other clients are served while a
//! create hangs, and requests beyond the call slots queue up.
//!
//! A real runc cannot hang on demand, so a wrapper holds `runc create`
//! until the test opens a gate (a fifo); every other call goes straight to
//! runc.

use std::path::{Path, PathBuf};

use nanoctr_tests::{fields, Daemon, Runtime};

/// Writes the gated runtime; returns it and its gate.
fn gated_runc(d: &Daemon) -> (PathBuf, PathBuf) {
    let gate = d.dir.join("gate");
    let status = std::process::Command::new("mkfifo")
        .arg(&gate)
        .status()
        .unwrap();
    assert!(status.success());
    let script = d.dir.join("gated-runc");
    let body = format!(
        "#!/bin/sh\n# Holds create until {gate} is opened for writing.\n\
         for a in \"$@\"; do [ \"$a\" = create ] && cat {gate} >/dev/null; done\n\
         exec runc \"$@\"\n",
        gate = gate.display()
    );
    std::fs::write(&script, body).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script, gate)
}

fn open_gate(gate: &Path) {
    // Opening the write end lets the reader's `cat` finish.
    drop(std::fs::OpenOptions::new().write(true).open(gate).unwrap());
}

#[test]
fn two_clients_are_served_while_a_third_container_is_being_created() {
    let d = Daemon::start();
    let (gated, gate) = gated_runc(&d);
    let slow = d.bundle("slow", &["sleep", "1000"]);
    let quick = d.bundle("quick", &["sh", "-c", "echo quick; exit 5"]);

    let mut creator = d.conn();
    creator.send(&format!(
        "create slow {} runtime={}",
        slow.display(),
        gated.display()
    ));
    d.eventually("the gated create to start", || {
        std::fs::read_dir(d.state.join("slow/init")).is_ok()
    });

    let mut a = d.conn();
    let mut b = d.conn();
    assert!(a.ask("hello").ok().starts_with("nanoctr"));
    b.ask(&format!("run quick {}", quick.display())).ok();
    assert_eq!(a.ask("wait quick").ok(), "exit=5");
    assert_eq!(
        b.ask("list").ok(),
        "count=1",
        "a container being created is not listed"
    );
    b.ask("state slow").err_code("busy");
    b.ask("delete slow force").err_code("busy");
    assert!(!creator.has_input(), "the gated create answered early");

    open_gate(&gate);
    assert!(creator.answer().ok_field("pid").parse::<u32>().unwrap() > 0);
    assert_eq!(fields(&a.ask("state slow").data[0])["status"], "created");
}

#[test]
fn requests_beyond_the_call_slots_wait_their_turn() {
    let d = Daemon::start_with(Runtime::Runc, &["--max-calls", "1"]);
    let (gated, gate) = gated_runc(&d);
    let slow = d.bundle("slow", &["sleep", "1000"]);
    let quick = d.bundle("quick", &["true"]);

    let mut first = d.conn();
    first.send(&format!(
        "create slow {} runtime={}",
        slow.display(),
        gated.display()
    ));
    d.eventually("the gated create to start", || {
        d.state.join("slow/init").exists()
    });

    let mut second = d.conn();
    second.send(&format!("run quick {}", quick.display()));
    // Requests that need no runtime call are answered meanwhile.
    assert!(d.ask("hello").ok().starts_with("nanoctr"));
    assert_eq!(d.ask("list").ok(), "count=0");
    assert!(
        !second.has_input(),
        "the queued run ran before a slot was free"
    );

    open_gate(&gate);
    first.answer().ok();
    second.answer().ok();
    assert_eq!(second.ask("wait quick").ok(), "exit=0");
}
