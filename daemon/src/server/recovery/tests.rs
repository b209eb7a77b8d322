//! Recovery at start-up, driven through the recording fake: a daemon is
//! stopped as `kill -9` stops it (nothing cleaned up, its shims live on),
//! what its shims and the runtime did meanwhile is played, and a new
//! daemon over the same state dir must find each container as it is.

use crate::server::fake::{Effect, Rig};

/// The runtime's answer to `state ID` for a container in `status`.
fn says(id: &str, status: &str) -> (String, (i32, Vec<u8>)) {
    let json = format!(r#"{{"ociVersion":"1.0.2","id":"{id}","status":"{status}","pid":42}}"#);
    (format!("state {id}"), (0, json.into_bytes()))
}

#[test]
fn a_running_container_is_adopted_as_it_is() {
    let mut rig = Rig::new("rlive");
    rig.running("a", 42);
    let mut rig = rig.restart(|f| f.answers.push(says("a", "running")));
    assert_eq!(rig.recovered.live, 1);
    assert_eq!(rig.state("a", "status"), "running");
    assert_eq!(rig.state("a", "pid"), "42");
    assert!(rig.d.fx.done.contains(&Effect::Run {
        args: "state a".into()
    }));
    assert_eq!(rig.events("a", "init"), ["create", "start"], "none twice");
    // The adopted shim is watched: its exit is seen.
    rig.send("wait a");
    rig.settle();
    rig.d.fx.shim().exit(4);
    assert_eq!(rig.answer(), ["OK exit=4"]);
    assert_eq!(rig.events("a", "init"), ["create", "start", "exit"]);
    assert!(rig.d.fx.calls().is_empty(), "nothing was killed or deleted");
}

#[test]
fn a_paused_or_created_container_keeps_its_status() {
    let mut rig = Rig::new("rstatus");
    rig.running("p", 42);
    rig.created("c", 43);
    let mut rig = rig.restart(|f| {
        f.answers.push(says("p", "paused"));
        f.answers.push(says("c", "created"));
    });
    assert_eq!(rig.recovered.live, 2);
    assert_eq!(rig.state("p", "status"), "paused");
    assert_eq!(rig.state("c", "status"), "created");
}

#[test]
fn when_the_runtime_cannot_say_the_events_do() {
    let mut rig = Rig::new("rsilent");
    rig.running("a", 42);
    rig.created("b", 43);
    // No answers: `state` could not run.
    let mut rig = rig.restart(|_| {});
    assert_eq!(rig.state("a", "status"), "running");
    assert_eq!(rig.state("b", "status"), "created");
    assert_eq!(rig.recovered.live, 2);
}

#[test]
fn an_exit_while_the_daemon_was_down_keeps_its_status() {
    let mut rig = Rig::new("rexited");
    rig.running("a", 42);
    rig.d.fx.shim().exit(7);
    // The daemon is gone before it saw the exit.
    let mut rig = rig.restart(|_| {});
    assert_eq!(rig.recovered.stopped, 1);
    assert_eq!(rig.state("a", "status"), "stopped");
    assert_eq!(rig.state("a", "exit"), "7");
    assert_eq!(rig.events("a", "init"), ["create", "start", "exit"]);
    assert_eq!(rig.ask("wait a"), "OK exit=7");
    // Once more: still nothing emitted twice.
    let mut rig = rig.restart(|_| {});
    assert_eq!(rig.events("a", "init"), ["create", "start", "exit"]);
    rig.deleted("a");
}

#[test]
fn a_shim_lost_while_the_daemon_was_down() {
    let mut rig = Rig::new("rlost");
    rig.running("a", 42);
    rig.d.fx.shim().vanish();
    let mut rig = rig.restart(|_| {});
    assert_eq!(rig.recovered.lost, 1);
    assert_eq!(rig.state("a", "status"), "unknown");
    assert_eq!(rig.events("a", "init"), ["create", "start", "shim-lost"]);
    // What is left of it is deleted through the runtime; the record stays
    // until the user deletes it.
    rig.call_ends("delete --force a", 0);
    assert_eq!(rig.state("a", "status"), "unknown");
    rig.deleted("a");
}

#[test]
fn a_half_made_container_is_cleaned_up() {
    let mut rig = Rig::new("rhalf");
    rig.send(&format!("create h {}", rig.bundle.display()));
    rig.settle();
    // The shim dies before the runtime wrote a pid, and so does the
    // daemon.
    rig.d.fx.shim().vanish();
    let mut rig = rig.restart(|_| {});
    assert_eq!(rig.recovered.cleaned, 1);
    assert!(rig.d.fx.done.contains(&Effect::Run {
        args: "delete --force h".into()
    }));
    assert!(!rig.d.state.container("h").exists());
    assert!(rig.ask("state h").starts_with("ERR not-found"));
    // The id can be used again.
    rig.created("h", 9);
}

#[test]
fn a_directory_without_a_record_is_cleaned_up() {
    let mut rig = Rig::new("rnorecord");
    rig.running("a", 42);
    let stray = rig.d.state.container("stray");
    std::fs::create_dir_all(stray.join("init")).unwrap();
    let rig = rig.restart(|f| f.answers.push(says("a", "running")));
    assert_eq!(rig.recovered.cleaned, 1);
    assert_eq!(rig.recovered.live, 1);
    assert!(!stray.exists());
}

#[test]
fn a_create_in_progress_is_reported_on_reply() {
    let mut rig = Rig::new("rcreating");
    rig.send(&format!("create c {}", rig.bundle.display()));
    rig.settle();
    // The daemon is gone before the runtime answered; its shim lives on.
    let mut rig = rig.restart(|_| {});
    assert_eq!(rig.recovered.live, 1);
    assert_eq!(rig.ask("state c"), "ERR busy container is being created");
    // The shim finds its startup pipe without a reader and says it on
    // `reply` instead.
    std::fs::write(rig.d.fx.shim().dir.join("pid"), "42").unwrap();
    rig.d.fx.shim().reply("created 42");
    rig.settle();
    assert_eq!(rig.state("c", "status"), "created");
    assert_eq!(rig.state("c", "pid"), "42");
    assert_eq!(rig.events("c", "init"), ["create"]);
}

#[test]
fn an_unreadable_record_is_listed_as_unknown() {
    let mut rig = Rig::new("rcorrupt");
    rig.running("a", 42);
    rig.d.fx.shim().exit(0);
    let record = rig.d.state.container("a").join("container");
    std::fs::write(&record, b"\x00garbage\n").unwrap();
    let mut rig = rig.restart(|_| {});
    assert_eq!(rig.recovered.unknown, 1);
    assert_eq!(rig.state("a", "status"), "unknown");
    rig.deleted("a");
    assert!(!rig.d.state.container("a").exists());
}

#[test]
fn an_interrupted_write_leaves_no_temporary() {
    let mut rig = Rig::new("rtmp");
    rig.running("a", 42);
    rig.d.fx.shim().exit(0);
    let dir = rig.d.state.container("a");
    std::fs::write(dir.join("container.tmp"), b"half").unwrap();
    std::fs::write(dir.join("init").join(".exitStatus.tmp"), b"1").unwrap();
    let mut rig = rig.restart(|_| {});
    assert!(!dir.join("container.tmp").exists());
    assert!(!dir.join("init").join(".exitStatus.tmp").exists());
    assert_eq!(rig.state("a", "exit"), "0");
}

/// `running` with an exec process `x` made, pid 77.
fn with_exec(name: &str) -> Rig {
    let mut rig = Rig::new(name);
    rig.running("a", 42);
    rig.send("exec a x -- sh");
    rig.settle();
    rig.d.fx.shim().created(77);
    assert_eq!(rig.answer(), ["OK pid=77"]);
    rig
}

#[test]
fn a_live_exec_is_adopted() {
    let rig = with_exec("rexeclive");
    let mut rig = rig.restart(|f| f.answers.push(says("a", "running")));
    assert_eq!(rig.d.execs.len(), 1);
    assert_eq!(rig.events("a", "x"), ["exec-added"], "none twice");
    rig.send("wait a x");
    rig.settle();
    rig.d.fx.shim().exit(5);
    assert_eq!(rig.answer(), ["OK exit=5"]);
    assert_eq!(rig.events("a", "x"), ["exec-added", "exit"]);
}

#[test]
fn an_exec_that_exited_while_the_daemon_was_down() {
    let mut rig = with_exec("rexecexit");
    rig.d.fx.shim().exit(5);
    let mut rig = rig.restart(|f| f.answers.push(says("a", "running")));
    assert_eq!(rig.ask("wait a x"), "OK exit=5");
    assert_eq!(rig.events("a", "x"), ["exec-added", "exit"]);
    assert_eq!(rig.state("a", "status"), "running");
}

#[test]
fn an_exec_lost_or_never_made_while_the_daemon_was_down() {
    let mut rig = with_exec("rexeclost");
    rig.d.fx.shim().vanish();
    // A second exec whose shim died before the runtime made it.
    rig.send("exec a y -- sh");
    rig.settle();
    rig.d.fx.shim().vanish();
    let dir = rig.d.state.container("a");
    let mut rig = rig.restart(|f| f.answers.push(says("a", "running")));
    assert_eq!(rig.events("a", "x"), ["exec-added", "shim-lost"]);
    let answer = rig.ask("wait a x");
    assert!(
        answer.starts_with("ERR state process x's shim was lost"),
        "{answer}"
    );
    assert!(
        !dir.join("y").exists(),
        "one that never was leaves no trace"
    );
    assert!(rig.events("a", "y").is_empty());
}

#[test]
fn a_kept_container_keeps_its_image_rootfs_and_a_half_made_one_loses_it() {
    let mut rig = Rig::new("rimage");
    let bundle = crate::tasks::tests::image_bundle(&rig);
    rig.send(&format!("create live {}", bundle.display()));
    rig.settle();
    rig.d.fx.shim().created(42);
    rig.answer();
    // `gone`'s shim dies with the daemon, before the runtime made anything.
    rig.send(&format!("create gone {}", bundle.display()));
    rig.settle();
    rig.d.fx.shim().vanish();
    let (live, gone) = (rig.d.state.container("live"), rig.d.state.container("gone"));
    let mut rig = rig.restart(|f| f.answers.push(says("live", "created")));
    assert_eq!((rig.recovered.live, rig.recovered.cleaned), (1, 1));
    assert!(rig
        .d
        .fx
        .done
        .iter()
        .any(|e| matches!(e, Effect::Mount { dir, .. } if *dir == live)));
    assert!(!rig
        .d
        .fx
        .done
        .contains(&Effect::Unmount { dir: live.clone() }));
    assert!(rig
        .d
        .fx
        .done
        .contains(&Effect::Unmount { dir: gone.clone() }));
    assert!(!gone.exists());
    assert_eq!(rig.state("live", "rootfs"), "image:squashfs");
}
