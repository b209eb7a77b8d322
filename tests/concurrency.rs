//! The loop never waits for a runtime: other clients are served while a
//! create hangs, and requests beyond the call slots queue up. A real runc
//! cannot hang on demand, so `Fault::Gate` holds `runc create` until the
//! test opens the gate; every other call goes straight to runc.

use nanoctr_tests::{fields, Daemon, Fault, Runtime};

#[test]
fn two_clients_are_served_while_a_third_container_is_being_created() {
    let d = Daemon::start();
    let faults = d.faulty_runtime();
    faults.set("create", Fault::Gate);
    let slow = d.bundle("slow", &["sleep", "1000"]);
    let quick = d.bundle("quick", &["sh", "-c", "echo quick; exit 5"]);

    let mut creator = d.conn();
    creator.send(&format!(
        "create slow {} {}",
        slow.display(),
        faults.option()
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

    faults.open_gate("create");
    assert!(creator.answer().ok_field("pid").parse::<u32>().unwrap() > 0);
    assert_eq!(fields(&a.ask("state slow").data[0])["status"], "created");
}

#[test]
fn requests_beyond_the_call_slots_wait_their_turn() {
    let d = Daemon::start_with(Runtime::Runc, &["--max-calls", "1"]);
    let faults = d.faulty_runtime();
    faults.set("create", Fault::Gate);
    let slow = d.bundle("slow", &["sleep", "1000"]);
    let quick = d.bundle("quick", &["true"]);

    let mut first = d.conn();
    first.send(&format!(
        "create slow {} {}",
        slow.display(),
        faults.option()
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

    faults.open_gate("create");
    first.answer().ok();
    second.answer().ok();
    assert_eq!(second.ask("wait quick").ok(), "exit=0");
}

#[test]
fn clients_beyond_the_table_wait_while_every_place_is_busy() {
    let d = Daemon::start_with(Runtime::Runc, &["--max-clients", "2"]);
    let faults = d.faulty_runtime();
    faults.set("create", Fault::Gate);
    let slow = d.bundle("slow", &["sleep", "1000"]);
    // Both places ask something that takes a while.
    let mut first = d.conn();
    let mut second = d.conn();
    for (c, id) in [(&mut first, "s1"), (&mut second, "s2")] {
        c.send(&format!(
            "create {id} {} {}",
            slow.display(),
            faults.option()
        ));
    }
    d.eventually("both gated creates to start", || {
        d.state.join("s1/init").exists() && d.state.join("s2/init").exists()
    });
    // A third connection waits, unanswered, not refused.
    let mut third = d.conn();
    third.send("list");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!third.has_input(), "a third client was served or refused");
    faults.open_gate("create");
    first.answer().ok();
    // A place is quiet again: the third is served (the second create may
    // still be on its way, so it lists one container or both).
    let listed = third.answer().ok().to_string();
    assert!(listed == "count=1" || listed == "count=2", "{listed}");
    second.answer().ok();
}

#[test]
fn a_new_client_takes_the_place_of_the_one_idle_longest() {
    let d = Daemon::start_with(Runtime::Runc, &["--max-clients", "2"]);
    let mut first = d.conn();
    let mut second = d.conn();
    assert!(first.ask("hello").ok().starts_with("nanoctr"));
    assert!(second.ask("hello").ok().starts_with("nanoctr"));
    // The table is full of clients that ask nothing: the one idle longest
    // is closed, told why, and the new one is answered at once.
    let mut third = d.conn();
    assert_eq!(third.ask("list").ok(), "count=0");
    let why = first.answer().err_code("busy").to_string();
    assert!(
        why.contains("make room") && why.contains("--max-clients"),
        "{why}"
    );
    assert!(first.is_closed(), "the client that made room is closed");
    assert!(second.ask("hello").ok().starts_with("nanoctr"));
    assert!(third.ask("hello").ok().starts_with("nanoctr"));
}
