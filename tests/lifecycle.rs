//! A container's life through the daemon, with real runc.

use std::path::Path;

use nanoctr_tests::{alive, fields, read_pid, Daemon};

#[test]
fn echo_output_reaches_the_stdout_file() {
    let d = Daemon::start();
    let b = d.bundle("echo", &["echo", "hello from nanoctr"]);
    let out = d.dir.join("out.txt");
    let pid = d
        .ask(&format!("run e {} stdout={}", b.display(), out.display()))
        .ok_field("pid");
    assert!(pid.parse::<u32>().unwrap() > 0);
    assert_eq!(d.ask("wait e").ok(), "exit=0");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "hello from nanoctr\n"
    );
}

#[test]
fn exit_code_is_reported() {
    let d = Daemon::start();
    let b = d.bundle("seven", &["sh", "-c", "exit 7"]);
    d.ask(&format!("run s {}", b.display())).ok();
    assert_eq!(d.ask("wait s").ok(), "exit=7");
    // wait again: answered at once, from the record.
    assert_eq!(d.ask("wait s").ok(), "exit=7");
    let state = fields(&d.ask("state s").data[0]);
    assert_eq!(state["status"], "stopped");
    assert_eq!(state["exit"], "7");
}

#[test]
fn kill_with_a_signal_gives_128_plus_signal() {
    let d = Daemon::start();
    let b = d.bundle("sleep", &["sleep", "1000"]);
    d.ask(&format!("run z {}", b.display())).ok();
    assert_eq!(fields(&d.ask("state z").data[0])["status"], "running");
    assert_eq!(d.ask("kill z KILL").ok(), "");
    assert_eq!(d.ask("wait z").ok(), "exit=137");
}

#[test]
fn kill_sends_term_by_default() {
    let d = Daemon::start();
    let script = "trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done";
    let b = d.bundle("trap", &["sh", "-c", script]);
    let out = d.dir.join("trap.out");
    d.ask(&format!("run t {} stdout={}", b.display(), out.display()))
        .ok();
    d.eventually("the trap to be set", || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("ready"))
    });
    let mut waiter = d.conn();
    waiter.send("wait t");
    d.ask("kill t").ok();
    assert_eq!(waiter.answer().ok(), "exit=3");
}

#[test]
fn output_goes_to_the_state_dir_by_default() {
    let d = Daemon::start();
    let b = d.bundle("both", &["sh", "-c", "echo out; echo err >&2"]);
    d.ask(&format!("run o {}", b.display())).ok();
    d.ask("wait o").ok();
    let output = std::fs::read_to_string(d.state.join("o/init/output")).unwrap();
    assert!(
        output.contains("out\n") && output.contains("err\n"),
        "{output:?}"
    );
}

#[test]
fn stderr_and_stdin_paths() {
    let d = Daemon::start();
    let input = d.dir.join("in.txt");
    std::fs::write(&input, "from stdin\n").unwrap();
    let b = d.bundle("cat", &["sh", "-c", "cat; echo oops >&2"]);
    let (out, err) = (d.dir.join("o.txt"), d.dir.join("e.txt"));
    let line = format!(
        "run c {} stdin={} stdout={} stderr={}",
        b.display(),
        input.display(),
        out.display(),
        err.display()
    );
    d.ask(&line).ok();
    assert_eq!(d.ask("wait c").ok(), "exit=0");
    assert_eq!(std::fs::read_to_string(out).unwrap(), "from stdin\n");
    assert_eq!(std::fs::read_to_string(err).unwrap(), "oops\n");
}

#[test]
fn list_and_state_through_the_lifecycle() {
    let d = Daemon::start();
    let b = d.bundle("life", &["sleep", "1000"]);
    assert_eq!(d.ask("list").ok(), "count=0");

    let pid = d
        .ask(&format!(
            "create l {} label.app=demo \"label.note=two words\"",
            b.display()
        ))
        .ok_field("pid");
    assert_eq!(d.runtime_status("l").as_deref(), Some("created"));
    let list = d.ask("list");
    assert_eq!(list.ok(), "count=1");
    let row = fields(&list.data[0]);
    assert_eq!(row["id"], "l");
    assert_eq!(row["status"], "created");
    assert_eq!(row["pid"], pid);
    assert_eq!(Path::new(&row["bundle"]), b);

    let state = d.ask("state l");
    state.ok();
    let st = fields(&state.data[0]);
    assert_eq!(st["status"], "created");
    assert_eq!(st["label.app"], "demo");
    assert_eq!(st["label.note"], "two words");
    assert!(st["created"].parse::<u64>().unwrap() > 1_600_000_000);
    assert!(!st.contains_key("exit"));

    assert_eq!(d.ask("start l").ok_field("pid"), pid);
    assert_eq!(d.runtime_status("l").as_deref(), Some("running"));
    assert_eq!(fields(&d.ask("list").data[0])["status"], "running");

    d.ask("kill l 9").ok();
    assert_eq!(d.ask("wait l").ok(), "exit=137");
    let st = fields(&d.ask("state l").data[0]);
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["exit"], "137");

    d.ask("delete l").ok();
    assert_eq!(d.ask("list").ok(), "count=0");
    d.ask("state l").err_code("not-found");
}

#[test]
fn delete_leaves_nothing_behind() {
    let d = Daemon::start();
    let b = d.bundle("gone", &["sleep", "1000"]);
    d.ask(&format!("run g {}", b.display())).ok();
    let shim = read_pid(&d.state.join("g/init/shim.pid"));
    let init = read_pid(&d.state.join("g/init/pid"));
    assert!(alive(shim) && alive(init));
    assert_eq!(d.runtime_ids(), ["g"]);

    // A waiter sees the forced delete's kill.
    let mut waiter = d.conn();
    waiter.send("wait g");
    d.ask("delete g").err_code("state");
    d.ask("delete g force").ok();
    assert_eq!(waiter.answer().ok(), "exit=137");

    assert!(!d.state.join("g").exists(), "state dir left behind");
    assert!(d.runtime_ids().is_empty(), "runtime state left behind");
    assert!(!alive(shim), "shim left behind");
    assert!(!alive(init), "container process left behind");
    // The id is free again.
    d.ask(&format!("run g {}", b.display())).ok();
    d.ask("delete g force").ok();
}

#[test]
fn a_created_container_can_be_deleted_without_force() {
    let d = Daemon::start();
    let b = d.bundle("made", &["sleep", "1000"]);
    d.ask(&format!("create m {}", b.display())).ok();
    d.ask("delete m").ok();
    assert!(d.runtime_ids().is_empty());
    assert!(!d.state.join("m").exists());
}

#[test]
fn the_daemon_stops_on_sigterm_and_leaves_containers_running() {
    let mut d = Daemon::start();
    let b = d.bundle("stay", &["sleep", "1000"]);
    d.ask(&format!("run k {}", b.display())).ok();
    let shim = read_pid(&d.state.join("k/init/shim.pid"));
    let mut waiter = d.conn();
    waiter.send("wait k");

    let status = d.stop();
    assert!(status.success(), "nanoctrd exited with {status}");
    assert!(!d.socket.exists(), "socket left behind");
    waiter.answer().err_code("busy");
    assert!(alive(shim), "the shim died with the daemon");
    assert_eq!(d.runtime_status("k").as_deref(), Some("running"));
}

#[test]
fn the_client_prints_answers_and_exits_by_them() {
    let d = Daemon::start();
    let b = d.bundle("cli", &["sh", "-c", "exit 4"]);
    let hello = d.nanoctr(&["hello"]);
    assert!(hello.status.success());
    assert!(String::from_utf8_lossy(&hello.stdout).starts_with("nanoctr protocol=1 version="));

    let run = d.nanoctr(&["run", "cli", b.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let wait = d.nanoctr(&["wait", "cli"]);
    assert_eq!(String::from_utf8_lossy(&wait.stdout), "exit=4\n");

    let list = d.nanoctr(&["list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("id=cli status=stopped") && text.ends_with("count=1\n"),
        "{text}"
    );

    let again = d.nanoctr(&["run", "cli", b.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(again.stdout.is_empty());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    let help = d.nanoctr(&["help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("delete ID [force]"));

    let usage = d.nanoctr(&[]);
    assert_eq!(usage.status.code(), Some(2));
    let nobody = std::process::Command::new(nanoctr_tests::bin("nanoctr"))
        .args(["--socket", "/nonexistent/sock", "list"])
        .output()
        .unwrap();
    assert_eq!(nobody.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("is nanoctrd running?"));
}

#[test]
fn the_client_makes_relative_paths_absolute() {
    let d = Daemon::start();
    d.bundle("rel", &["echo", "relative"]);
    let out = std::process::Command::new(nanoctr_tests::bin("nanoctr"))
        .args(["run", "r", "bundles/rel", "stdout=r.out"])
        .current_dir(&d.dir)
        .env("NANOCTR_SOCKET", &d.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    d.ask("wait r").ok();
    assert_eq!(
        std::fs::read_to_string(d.dir.join("r.out")).unwrap(),
        "relative\n"
    );
}

#[test]
fn one_program_is_the_daemon_by_its_name() {
    let d = Daemon::start();
    let nanoctr = nanoctr_tests::bin("nanoctr");
    let link = nanoctr_tests::bin("nanoctrd");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("nanoctr"));
    let conf = d.dir.join("empty.conf");
    std::fs::write(&conf, "").unwrap();
    let check = |cmd: &mut std::process::Command| {
        let out = cmd
            .args(["--check-config", "--config"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Run as nanoctrd, or asked for it by its first word: the daemon.
    let by_link = check(&mut std::process::Command::new(&link));
    let by_word = check(std::process::Command::new(&nanoctr).arg("nanoctrd"));
    assert_eq!(by_link, "config ok; no containers to start\n");
    assert_eq!(by_word, by_link);
    // By any other name: the client.
    let other = d.dir.join("ctl");
    std::fs::copy(&nanoctr, &other).unwrap();
    let out = std::process::Command::new(&other)
        .env("NANOCTR_SOCKET", &d.socket)
        .arg("hello")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nanoctr protocol=1"));
}
