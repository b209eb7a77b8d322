//! Boot integration with real runc: the config file, containers declared
//! there started in order, and restart policies.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use nanoctr_tests::{bin, fields, Conn, Daemon, Launch, Runtime};

/// A daemon whose config file is `config`; `bundles` are made first (name,
/// args), and `{B}` in the config stands for the bundles' directory.
fn boot(config: &str, bundles: &[(&str, &[&str])], flags: &[&str]) -> Daemon {
    let launch = Launch {
        flags: flags.iter().map(|s| s.to_string()).collect(),
        ..Launch::default()
    };
    let mut d = Daemon::prepare(Runtime::Runc, launch);
    for (name, args) in bundles {
        d.bundle(name, args);
    }
    let text = config.replace("{B}", &d.dir.join("bundles").to_string_lossy());
    std::fs::write(d.dir.join("conf/nanoctrd.conf"), text).unwrap();
    d.spawn();
    d
}

/// The next event line, as fields.
fn next(sub: &mut Conn) -> HashMap<String, String> {
    let line = sub.line();
    assert!(line.starts_with("EVENT "), "{line}");
    fields(&line)
}

fn state(d: &Daemon, id: &str) -> HashMap<String, String> {
    fields(&d.ask(&format!("state {id}")).data[0])
}

/// Runs nanoctrd with `config` and returns its exit code and stderr.
fn refused(config: &str, extra: &[&str]) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("nct-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("c{}.conf", config.len()));
    std::fs::write(&file, config).unwrap();
    let out = Command::new(bin("nanoctrd"))
        .arg("--config")
        .arg(&file)
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).replace(&*file.to_string_lossy(), "FILE");
    (out.status.code(), text)
}

#[test]
fn config_errors_name_the_line_and_stop_the_daemon() {
    for (config, want) in [
        (
            "# fine\nmax-containers = 4\nbogus = 1\n",
            "FILE:3: unknown key bogus",
        ),
        (
            "\nmax-clients = lots\n",
            "FILE:2: max-clients: must be a number from 1 to 65536",
        ),
        ("log = loud\n", "FILE:1: log: must be stderr or syslog"),
        (
            "socket = relative.sock\n",
            "FILE:1: socket: must be an absolute path",
        ),
        (
            "[container web]\nbundle = /b\nrestart = often\n",
            "FILE:3: restart is no,",
        ),
        (
            "[container web]\nruntime = runc\n",
            "FILE:1: container web: bundle is missing",
        ),
        ("retain 5\n", "FILE:1: expected key = value"),
    ] {
        let (code, err) = refused(config, &[]);
        assert_eq!(code, Some(2), "{config:?}: {err}");
        assert!(
            err.starts_with(&format!("nanoctrd: {want}")),
            "{config:?}: {err}"
        );
    }
    // A flag's bad value names the flag.
    let (code, err) = refused("", &["--retain", "0"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--retain: must be a number from 1 to 65536"),
        "{err}"
    );
    // A --config that is not there is an error too.
    let out = Command::new(bin("nanoctrd"))
        .args(["--config", "/nonexistent/nanoctrd.conf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/nanoctrd.conf"));
}

#[test]
fn flags_win_over_the_file() {
    let d = boot(
        "max-containers = 1\nretain = 9\n",
        &[("s", &["sleep", "1000"])],
        &[],
    );
    let b = d.dir.join("bundles/s");
    d.ask(&format!("run one {}", b.display())).ok();
    let m = d
        .ask(&format!("run two {}", b.display()))
        .err_code("full")
        .to_string();
    assert!(m.contains("--max-containers"), "{m}");
    drop(d);
    let d = boot(
        "max-containers = 1\n",
        &[("s", &["sleep", "1000"])],
        &["--max-containers", "2"],
    );
    let b = d.dir.join("bundles/s");
    d.ask(&format!("run one {}", b.display())).ok();
    d.ask(&format!("run two {}", b.display())).ok();
}

#[test]
fn declared_containers_start_in_order() {
    let config = "\
# web needs db's set-up job done, cache needs web running.
[container cache]
bundle = {B}/sleeper
after = web

[container web]
bundle = {B}/sleeper
after = db
options = label.role=front

[container db]
bundle = {B}/job
ready = exited0

[container stray]
bundle = {B}/sleeper
after = ghost

[container gated]
bundle = {B}/sleeper
after = flag

[container flag]
bundle = {B}/sleeper
ready = file:{B}/flag-ready
";
    let d = boot(
        config,
        &[
            ("sleeper", &["sleep", "1000"]),
            ("job", &["sh", "-c", "sleep 0.3; exit 0"]),
        ],
        &[],
    );
    let b = d.dir.join("bundles");
    d.eventually("web and cache to run", || {
        ["web", "cache"].iter().all(|id| {
            d.ask(&format!("state {id}"))
                .data
                .first()
                .is_some_and(|l| l.contains("status=running"))
        })
    });
    let mut sub = d.conn();
    sub.send("events since=0");
    let mut seen: Vec<(String, String)> = Vec::new();
    while seen.len() < 9 {
        let e = next(&mut sub);
        seen.push((e["id"].clone(), e["type"].clone()));
    }
    let at = |id: &str, ty: &str| {
        seen.iter()
            .position(|(i, t)| i == id && t == ty)
            .unwrap_or_else(|| panic!("no {ty} of {id} in {seen:?}"))
    };
    assert!(at("db", "exit") < at("web", "create"), "{seen:?}");
    assert!(at("web", "start") < at("cache", "create"), "{seen:?}");
    assert_eq!(state(&d, "web")["label.role"], "front");
    // A missing dependency: an error that names it; the rest started.
    d.ask("state stray").err_code("not-found");
    let log = d.log();
    assert!(
        log.contains("container stray") && log.contains("ghost"),
        "{log}"
    );
    // ready = file: holds its dependents until the file is there.
    assert_eq!(state(&d, "flag")["status"], "running");
    std::thread::sleep(Duration::from_millis(400));
    d.ask("state gated").err_code("not-found");
    std::fs::write(b.join("flag-ready"), b"").unwrap();
    d.eventually("gated to start", || {
        d.ask("state gated").last.starts_with("OK")
    });
}

#[test]
fn a_restarted_daemon_does_not_start_them_twice() {
    let config = "[container a]\nbundle = {B}/s\nrestart = always\n[container b]\nbundle = {B}/s\n";
    let mut d = boot(config, &[("s", &["sleep", "1000"])], &[]);
    d.eventually("a and b", || d.ask("list").data.len() == 2);
    let pid_a = state(&d, "a")["pid"].clone();
    d.ask("delete b force").ok();
    d.kill9();
    d.restart();
    // a is adopted, not made again; b was deleted by hand and stays so.
    assert_eq!(state(&d, "a")["pid"], pid_a);
    std::thread::sleep(Duration::from_millis(300));
    d.ask("state b").err_code("not-found");
}

/// Events of `id` from a subscription, until `n` have come.
fn events_of(sub: &mut Conn, n: usize) -> Vec<(Instant, HashMap<String, String>)> {
    (0..n).map(|_| (Instant::now(), next(sub))).collect()
}

#[test]
fn on_failure_restarts_with_growing_delays_then_gives_up() {
    let d = Daemon::start_with(Runtime::Runc, &["--restart-delay", "200"]);
    let b = d.bundle("fail", &["sh", "-c", "exit 3"]);
    let mut sub = d.conn();
    sub.send("events since=0 id=f type=exit");
    let mut restarts = d.conn();
    restarts.send("events since=0 id=f type=restart");
    let mut starts = d.conn();
    starts.send("events since=0 id=f type=start");
    d.ask(&format!("run f {} restart=on-failure:3", b.display()))
        .ok();
    let exits = events_of(&mut sub, 4);
    let planned: Vec<String> = events_of(&mut restarts, 3)
        .into_iter()
        .map(|(_, e)| e["delay-ms"].clone())
        .collect();
    assert_eq!(planned, ["200", "400", "800"]);
    let started = events_of(&mut starts, 4);
    for (i, want) in [200u64, 400, 800].iter().enumerate() {
        let gap = started[i + 1].0 - exits[i].0;
        assert!(gap >= Duration::from_millis(*want), "restart {i}: {gap:?}");
    }
    assert!(exits.iter().all(|(_, e)| e["status"] == "3"));
    // Three restarts, then it stays stopped.
    std::thread::sleep(Duration::from_millis(1800));
    assert!(!starts.has_input() && !restarts.has_input());
    let s = state(&d, "f");
    assert_eq!(
        (
            s["status"].as_str(),
            s["restarts"].as_str(),
            s["exit"].as_str()
        ),
        ("stopped", "3", "3")
    );
    assert_eq!(s["restart"], "on-failure:3");
}

#[test]
fn on_failure_leaves_a_clean_exit_alone_and_always_does_not() {
    let d = Daemon::start();
    let b = d.bundle("ok", &["sh", "-c", "echo ran; exit 0"]);
    let mut starts = d.conn();
    starts.send("events since=0 id=al type=start");
    d.ask(&format!("run of {} restart=on-failure", b.display()))
        .ok();
    d.ask(&format!("run al {} restart=always", b.display()))
        .ok();
    assert_eq!(d.ask("wait of").ok(), "exit=0");
    events_of(&mut starts, 3);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(state(&d, "of")["restarts"], "0");
    assert!(state(&d, "al")["restarts"].parse::<u32>().unwrap() >= 2);
    // Its output log is kept across restarts.
    let logs = d.ask("logs al").data.len();
    assert!(logs >= 3, "{logs}");
}

#[test]
fn a_killed_container_is_not_restarted() {
    let d = Daemon::start_with(Runtime::Runc, &["--restart-delay", "100"]);
    let b = d.bundle("s", &["sleep", "1000"]);
    let mut restarts = d.conn();
    restarts.send("events type=restart");
    d.ask(&format!("run k {} restart=always", b.display())).ok();
    d.ask("kill k KILL").ok();
    assert_eq!(d.ask("wait k").ok(), "exit=137");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!restarts.has_input());
    let s = state(&d, "k");
    assert_eq!((s["status"].as_str(), s["held"].as_str()), ("stopped", "1"));
    // A kill while a restart is pending calls it off.
    let q = d.bundle("q", &["sh", "-c", "exit 1"]);
    d.ask(&format!("run p {} restart=on-failure", q.display()))
        .ok();
    assert_eq!(fields(&restarts.line())["id"], "p");
    let a = d.ask("kill p");
    assert_eq!(fields(a.ok())["restart"], "cancelled");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(state(&d, "p")["restarts"], "0");
    // And delete ends it for good.
    d.ask(&format!("run g {} restart=on-failure", q.display()))
        .ok();
    assert_eq!(fields(&restarts.line())["id"], "g");
    d.ask("delete g").ok();
    std::thread::sleep(Duration::from_millis(400));
    d.ask("state g").err_code("not-found");
}

#[test]
fn a_long_run_resets_the_backoff() {
    let d = Daemon::start_with(
        Runtime::Runc,
        &["--restart-delay", "100", "--restart-window", "1"],
    );
    let b = d.bundle("w", &["sh", "-c", "sleep 1.2; exit 1"]);
    let mut restarts = d.conn();
    restarts.send("events since=0 id=w type=restart");
    d.ask(&format!("run w {} restart=on-failure", b.display()))
        .ok();
    let delays: Vec<String> = events_of(&mut restarts, 3)
        .into_iter()
        .map(|(_, e)| e["delay-ms"].clone())
        .collect();
    assert_eq!(delays, ["100", "100", "100"]);
}

#[test]
fn restarts_go_on_across_a_daemon_crash() {
    let mut d = Daemon::start_with(Runtime::Runc, &["--restart-delay", "100"]);
    let b = d.bundle("c", &["sh", "-c", "sleep 0.3; exit 4"]);
    d.ask(&format!("run c {} restart=on-failure:5", b.display()))
        .ok();
    d.kill9();
    // It exits while no daemon is there.
    std::thread::sleep(Duration::from_millis(700));
    d.restart();
    let mut exits = d.conn();
    exits.send("events since=0 id=c type=exit");
    assert_eq!(next(&mut exits)["status"], "4");
    d.eventually("a restart after the crash", || {
        state(&d, "c")["restarts"].parse::<u32>().unwrap() >= 1
    });
    assert_eq!(next(&mut exits)["status"], "4");
}
