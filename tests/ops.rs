//! Operations on a live container through real runc: pause/resume,
//! update, stats and ps read from the cgroup files, and checkpoint/restore
//! as far as this machine's CRIU lets them go.

use std::time::{Duration, Instant};

use nanoctr_tests::{alive, fields, Daemon};

/// A running container whose init prints a growing counter.
fn counter(d: &Daemon, id: &str) {
    let b = d.bundle(
        id,
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done",
        ],
    );
    d.ask(&format!("run {id} {}", b.display())).ok();
}

/// A running container whose init sleeps; its init pid.
fn sleeper(d: &Daemon, id: &str) -> u32 {
    let b = d.bundle(id, &["sleep", "1000"]);
    d.ask(&format!("run {id} {}", b.display()))
        .ok_field("pid")
        .parse()
        .unwrap()
}

fn lines_logged(d: &Daemon, id: &str) -> usize {
    d.ask(&format!("logs {id}")).data.len()
}

fn status(d: &Daemon, id: &str) -> String {
    fields(&d.ask(&format!("state {id}")).data[0])["status"].clone()
}

fn stats(d: &Daemon, id: &str) -> std::collections::HashMap<String, String> {
    let a = d.ask(&format!("stats {id}"));
    fields(a.ok())
}

#[test]
fn pause_stops_the_processes_and_resume_goes_on() {
    let d = Daemon::start();
    counter(&d, "c1");
    d.eventually("the counter to run", || lines_logged(&d, "c1") >= 3);
    let mut events = d.conn();
    events.send("events since=0 id=c1");
    d.ask("pause c1").ok();
    assert_eq!(status(&d, "c1"), "paused");
    let list = d.ask("list");
    assert!(
        list.data
            .iter()
            .any(|l| l.contains("id=c1") && l.contains("status=paused")),
        "{list:?}"
    );
    // Frozen: nothing more is written while paused.
    std::thread::sleep(Duration::from_millis(150));
    let frozen = lines_logged(&d, "c1");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lines_logged(&d, "c1"), frozen);
    // A paused container can be inspected but not paused again.
    d.ask("pause c1").err_code("state");
    assert!(stats(&d, "c1").contains_key("memory.usage"));
    d.ask("resume c1").ok();
    assert_eq!(status(&d, "c1"), "running");
    d.eventually("the counter to go on", || {
        lines_logged(&d, "c1") > frozen + 2
    });
    d.ask("resume c1").err_code("state");
    let kinds: Vec<String> = std::iter::from_fn(|| Some(fields(&events.line())["type"].clone()))
        .filter(|t| t == "pause" || t == "resume")
        .take(2)
        .collect();
    assert_eq!(kinds, ["pause", "resume"]);
}

#[test]
fn a_paused_container_can_be_killed_and_deleted() {
    let d = Daemon::start();
    let pid = sleeper(&d, "c2");
    d.ask("pause c2").ok();
    d.ask("delete c2 force").ok();
    assert!(!alive(pid));
    d.ask("state c2").err_code("not-found");
    assert!(d.container_dirs().is_empty());
}

#[test]
fn update_changes_the_limit_that_stats_reads() {
    let d = Daemon::start();
    sleeper(&d, "c3");
    // The bundle's own limit, read from the cgroup.
    let s = stats(&d, "c3");
    assert_eq!(s["memory.limit"], (16u64 << 20).to_string(), "{s:?}");
    assert_eq!(s["pids.limit"], "32");
    let mut events = d.conn();
    events.send("events since=0 id=c3 type=update");
    d.ask("update c3 memory=32m pids=64 cpu-shares=512").ok();
    let s = stats(&d, "c3");
    assert_eq!(s["memory.limit"], "33554432", "{s:?}");
    assert_eq!(s["pids.limit"], "64");
    assert_eq!(fields(&events.line())["type"], "update");
    // The runtime's own view agrees.
    let out = d.runtime_cmd(&["events", "--stats", "c3"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("33554432"), "{text}");
}

#[test]
fn stats_follow_what_the_container_does() {
    let d = Daemon::start();
    sleeper(&d, "c4");
    let before = stats(&d, "c4");
    for key in [
        "memory.usage",
        "memory.limit",
        "memory.max-usage",
        "cpu.usage-ns",
        "pids.current",
        "pids.limit",
    ] {
        assert!(before.contains_key(key), "{key} missing: {before:?}");
    }
    assert_eq!(before["pids.current"], "1");
    let used = |s: &std::collections::HashMap<String, String>| -> u64 {
        s["memory.usage"].parse().unwrap()
    };
    // About 6 MB held in a shell variable.
    d.ask(
        "exec c4 hog -- sh -c \"x=$(head -c 6000000 /dev/zero | tr '\\\\0' a); \
         sleep 1000; echo $#x\"",
    )
    .ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = stats(&d, "c4");
        // Held once the pipeline that made it is gone: init, sh, sleep.
        if used(&now) >= used(&before) + 5_000_000 && now["pids.current"] == "3" {
            let cpu: u64 = now["cpu.usage-ns"].parse().unwrap();
            assert!(cpu > before["cpu.usage-ns"].parse::<u64>().unwrap());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "memory did not grow: {before:?} -> {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ps_lists_every_process_and_names_the_known_ones() {
    let d = Daemon::start();
    let init = sleeper(&d, "c5");
    let e: u32 = d
        .ask("exec c5 side -- sleep 1000")
        .ok_field("pid")
        .parse()
        .unwrap();
    // A grandchild nanoctr did not start itself.
    d.ask("exec c5 fork -- sh -c \"sleep 1000 & wait\"").ok();
    // The exec is answered once its shell runs; its child comes moments
    // later.
    let deadline = Instant::now() + Duration::from_secs(10);
    let a = loop {
        let a = d.ask("ps c5");
        if fields(a.ok())["count"] == "4" || Instant::now() > deadline {
            break a;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(fields(a.ok())["count"], "4", "{a:?}");
    let rows: Vec<_> = a.data.iter().map(|l| fields(l)).collect();
    let name_of = |pid: u32| {
        rows.iter()
            .find(|r| r["pid"] == pid.to_string())
            .map(|r| r.get("proc").cloned().unwrap_or_default())
    };
    assert_eq!(name_of(init).as_deref(), Some("init"));
    assert_eq!(name_of(e).as_deref(), Some("side"));
    assert_eq!(rows.iter().filter(|r| !r.contains_key("proc")).count(), 1);
    // Once the exec process has gone, it is gone from ps.
    d.ask("kill c5 KILL proc=side").ok();
    d.ask("wait c5 side").ok();
    assert_eq!(fields(d.ask("ps c5").ok())["count"], "3");
}

#[test]
fn bad_requests_for_each_verb() {
    let d = Daemon::start();
    sleeper(&d, "c6");
    let b = d.bundle("idle", &["sleep", "100"]);
    d.ask(&format!("create fresh {}", b.display())).ok();
    let q = d.bundle("quick", &["true"]);
    d.ask(&format!("run done {}", q.display())).ok();
    d.ask("wait done").ok();
    for bad in [
        "pause",
        "pause c6 extra",
        "resume",
        "update c6",
        "update c6 memory=lots",
        "update c6 memory=-5",
        "update c6 bogus=1",
        "update c6 memory",
        "stats",
        "stats c6 more",
        "ps",
        "checkpoint c6",
        "checkpoint c6 ../up",
        "checkpoint c6 one dir=relative",
        "checkpoint c6 one sideways",
        "checkpoints",
        "checkpoint-delete c6",
        "restore r",
        &format!("restore r {}", b.display()),
        &format!("restore r {} checkpoint=../x", b.display()),
    ] {
        d.ask(bad).err_code("invalid");
    }
    for ghost in [
        "pause ghost",
        "resume ghost",
        "update ghost memory=1m",
        "stats ghost",
        "ps ghost",
        "checkpoint ghost one",
        "checkpoints ghost",
        "checkpoint-delete ghost one",
    ] {
        d.ask(ghost).err_code("not-found");
    }
    // Verbs that need a live container.
    d.ask("pause fresh").err_code("state");
    d.ask("resume c6").err_code("state");
    d.ask("stats done").err_code("state");
    d.ask("ps done").err_code("state");
    d.ask("pause done").err_code("state");
    d.ask("update done memory=1m").err_code("state");
    d.ask("checkpoint done one").err_code("state");
    d.ask("checkpoint fresh one").err_code("state");
    // None of that touched the running container.
    assert_eq!(status(&d, "c6"), "running");
}

#[test]
fn the_client_has_each_verb() {
    let d = Daemon::start();
    sleeper(&d, "c7");
    let run = |args: &[&str]| {
        let out = d.nanoctr(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["pause", "c7"]);
    assert_eq!(status(&d, "c7"), "paused");
    run(&["resume", "c7"]);
    run(&["update", "c7", "memory=20m"]);
    assert!(run(&["stats", "c7"]).contains("memory.limit=20971520"));
    assert!(run(&["ps", "c7"]).contains("proc=init"));
    assert!(run(&["checkpoints", "c7"]).contains("count=0"));
    let out = d.nanoctr(&["pause", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    for verb in [
        "exec",
        "pause",
        "update",
        "stats",
        "ps",
        "checkpoint",
        "restore",
    ] {
        let help = d.nanoctr(&[verb, "--help"]);
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.status.success() && text.contains(verb),
            "{verb}: {help:?}"
        );
    }
}

#[test]
fn a_failed_checkpoint_leaves_the_container_running() {
    let d = Daemon::start();
    let b = d.bundle("c8", &["sleep", "1000"]);
    let pid: u32 = d
        .ask(&format!("run c8 {}", b.display()))
        .ok_field("pid")
        .parse()
        .unwrap();
    for exit in ["", " exit"] {
        // CRIU cannot checkpoint on this machine's kernel (or is absent).
        let m = d
            .ask(&format!("checkpoint c8 one{exit}"))
            .err_code("runtime")
            .to_string();
        assert!(m.contains("criu") || m.contains("checkpoint"), "{m}");
        // CRIU's log, when it wrote one, is kept with the container.
        if let Some((_, log)) = m.split_once("CRIU's log: ") {
            let log = log.trim_end_matches(')');
            assert!(std::path::Path::new(log).starts_with(&d.state), "{log}");
            assert!(std::fs::metadata(log).is_ok_and(|m| m.len() > 0), "{log}");
        }
        assert!(alive(pid));
        assert_eq!(status(&d, "c8"), "running");
        assert_eq!(d.runtime_status("c8").as_deref(), Some("running"));
        // What the failed attempt wrote is gone.
        assert!(!b.join("checkpoints/one").exists());
        assert_eq!(fields(d.ask("checkpoints c8").ok())["count"], "0");
    }
    // The container still works as before.
    d.ask("exec c8 after -- true").ok();
    assert_eq!(d.ask("wait c8 after").ok(), "exit=0");
}

#[test]
fn checkpoints_are_listed_and_deleted() {
    let d = Daemon::start();
    let b = d.bundle("c9", &["sleep", "1000"]);
    d.ask(&format!("run c9 {}", b.display())).ok();
    // Images as a successful checkpoint leaves them: a directory per name.
    let other = d.state.parent().unwrap().join("images");
    for dir in [
        b.join("checkpoints/one"),
        b.join("checkpoints/two"),
        other.join("three"),
    ] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("inventory.img"), b"x").unwrap();
    }
    let a = d.ask("checkpoints c9");
    assert_eq!(fields(a.ok())["count"], "2");
    let names: Vec<_> = a.data.iter().map(|l| fields(l)["name"].clone()).collect();
    assert_eq!(names, ["one", "two"]);
    let a = d.ask(&format!("checkpoints c9 dir={}", other.display()));
    assert_eq!(fields(a.ok())["count"], "1");
    // A name in use is refused before the runtime is asked.
    d.ask("checkpoint c9 one").err_code("exists");
    d.ask("checkpoint-delete c9 one").ok();
    assert!(!b.join("checkpoints/one").exists());
    d.ask("checkpoint-delete c9 one").err_code("not-found");
    d.ask(&format!(
        "checkpoint-delete c9 three dir={}",
        other.display()
    ))
    .ok();
    assert!(!other.join("three").exists());
}

#[test]
fn a_failed_restore_leaves_nothing() {
    let d = Daemon::start();
    let b = d.bundle("r", &["sleep", "1000"]);
    d.ask(&format!("restore r {} checkpoint=missing", b.display()))
        .err_code("not-found");
    // An image directory CRIU cannot restore from.
    std::fs::create_dir_all(b.join("checkpoints/broken")).unwrap();
    let m = d
        .ask(&format!("restore r {} checkpoint=broken", b.display()))
        .err_code("runtime")
        .to_string();
    assert!(!m.is_empty());
    d.ask("state r").err_code("not-found");
    assert!(d.container_dirs().is_empty(), "{:?}", d.container_dirs());
    assert!(d.shims().is_empty(), "{:?}", d.shims());
    assert!(d.runtime_ids().is_empty(), "{:?}", d.runtime_ids());
    // The id is free again.
    d.ask(&format!("run r {}", b.display())).ok();
    assert_eq!(status(&d, "r"), "running");
}
