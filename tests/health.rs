//! Health checks with real runc: probes run inside the container through
//! the exec path; a failing check makes the container unhealthy and its
//! restart policy makes it again; a hanging probe is killed at its
//! timeout; `wait ID healthy` answers once it is healthy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nanoctr_tests::{alive, fields, Conn, Daemon};

/// A probe that passes until `/tmp/broken` exists in the container.
const UNTIL_BROKEN: &str = "\"health-cmd=sh -c \\\"test ! -e /tmp/broken\\\"\"";

fn sleeper(d: &Daemon, id: &str, opts: &str) {
    let b = d.bundle(id, &["sleep", "1000"]);
    d.ask(&format!("run {id} {} {opts}", b.display())).ok();
}

fn state(d: &Daemon, id: &str) -> HashMap<String, String> {
    let a = d.ask(&format!("state {id}"));
    a.ok();
    fields(&a.data[0])
}

/// Reads events from a subscription until one of type `kind` whose
/// fields include `want`; panics at the connection's timeout.
fn next_event(sub: &mut Conn, kind: &str, want: &[(&str, &str)]) -> HashMap<String, String> {
    loop {
        let e = fields(&sub.line());
        if e.get("type").map(String::as_str) == Some(kind)
            && want
                .iter()
                .all(|(k, v)| e.get(*k).map(String::as_str) == Some(*v))
        {
            return e;
        }
    }
}

#[test]
fn a_failing_check_makes_it_unhealthy_and_on_failure_restarts_it() {
    let d = Daemon::start();
    let mut sub = d.conn();
    sub.send("events since=0 id=web");
    sleeper(
        &d,
        "web",
        &format!("{UNTIL_BROKEN} health-interval=300ms health-retries=2 restart=on-failure:3"),
    );
    assert_eq!(state(&d, "web")["health"], "starting");
    assert_eq!(d.ask("wait web healthy timeout=20s").ok(), "health=healthy");
    let s = state(&d, "web");
    assert_eq!(s["health"], "healthy");
    assert_eq!(s["health-exit"], "0");
    assert_eq!(d.listed()["web"]["health"], "healthy");
    next_event(&mut sub, "health", &[("status", "healthy")]);
    let pid = s["pid"].clone();

    d.ask("exec web mark -- touch /tmp/broken").ok();
    let unhealthy = next_event(&mut sub, "health", &[("status", "unhealthy")]);
    assert_eq!(unhealthy["failures"], "2");
    assert_eq!(unhealthy["exit"], "1");
    // A failure for the policy: killed, then made again.
    next_event(&mut sub, "exit", &[("proc", "init"), ("status", "137")]);
    next_event(&mut sub, "restart", &[("count", "1")]);
    // A fresh /tmp: healthy again.
    next_event(&mut sub, "health", &[("status", "starting")]);
    next_event(&mut sub, "health", &[("status", "healthy")]);
    let s = state(&d, "web");
    assert_eq!(s["restarts"], "1");
    assert_ne!(s["pid"], pid);
    assert_eq!(s["status"], "running");
    // The probes themselves are not events.
    let mut all = d.conn();
    all.send("events since=0 id=web type=exec-added");
    let mut added = Vec::new();
    let mut quiet = 0;
    while quiet < 10 {
        if all.has_input() {
            added.push(fields(&all.line()));
            quiet = 0;
        } else {
            std::thread::sleep(Duration::from_millis(50));
            quiet += 1;
        }
    }
    let procs: Vec<&str> = added.iter().map(|e| e["proc"].as_str()).collect();
    assert_eq!(procs, ["mark"], "only the user's exec is an event");
}

#[test]
fn without_a_policy_it_stays_unhealthy_and_running() {
    let d = Daemon::start();
    sleeper(
        &d,
        "c1",
        &format!("{UNTIL_BROKEN} health-interval=200ms health-retries=1"),
    );
    assert_eq!(d.ask("wait c1 healthy").ok(), "health=healthy");
    let mut waiter = d.conn();
    d.ask("exec c1 mark -- touch /tmp/broken").ok();
    d.eventually("unhealthy", || state(&d, "c1")["health"] == "unhealthy");
    let s = state(&d, "c1");
    assert_eq!(s["status"], "running");
    assert_eq!(s["health-exit"], "1");
    // Waiting for health now is refused at once.
    assert_eq!(
        waiter.ask("wait c1 healthy").err_code("state"),
        "container c1 is unhealthy"
    );
    // And a success makes it healthy again.
    d.ask("exec c1 fix -- rm /tmp/broken").ok();
    d.eventually("healthy again", || state(&d, "c1")["health"] == "healthy");
}

#[test]
fn a_hanging_probe_is_killed_at_its_timeout() {
    let d = Daemon::start();
    sleeper(
        &d,
        "hang",
        "\"health-cmd=sleep 1000\" health-interval=400ms health-timeout=300ms health-retries=2",
    );
    // At most one probe at a time, however long each hangs.
    let started = Instant::now();
    let mut probes = std::collections::HashSet::new();
    while state(&d, "hang")["health"] != "unhealthy" {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never unhealthy"
        );
        let a = d.ask("state hang");
        let running: Vec<_> = a.data[1..]
            .iter()
            .map(|l| fields(l))
            .filter(|p| p["proc"] == "health" && p["status"] == "running")
            .collect();
        assert!(running.len() <= 1, "two probes at once: {:?}", a.data);
        for p in running {
            probes.insert(p["pid"].parse::<u32>().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = state(&d, "hang");
    assert_eq!(s["health-output"], "timed out after 300 ms");
    assert!(
        !s.contains_key("health-exit"),
        "a killed probe has no exit: {s:?}"
    );
    assert!(!probes.is_empty(), "no probe was seen running");
    d.eventually("every probe killed", || probes.iter().all(|p| !alive(*p)));
}

#[test]
fn wait_healthy_times_out_or_ends_with_the_container() {
    let d = Daemon::start();
    // Failing, but within its grace period: starting, never unhealthy.
    sleeper(
        &d,
        "slow",
        "health-cmd=false health-interval=200ms health-start=1h",
    );
    let a = d.ask("wait slow healthy timeout=1s");
    assert_eq!(a.err().0, "timeout");
    let s = state(&d, "slow");
    assert_eq!(s["health"], "starting");
    assert_eq!(s["health-failures"], "0");
    // A container that stops ends the wait.
    let mut waiter = d.conn();
    waiter.send("wait slow healthy");
    std::thread::sleep(Duration::from_millis(200));
    d.ask("kill slow KILL").ok();
    assert_eq!(waiter.answer().err_code("state"), "container slow stopped");
    // No check: refused.
    sleeper(&d, "plain", "");
    assert!(d
        .ask("wait plain healthy")
        .err_code("invalid")
        .contains("no health check"));
    assert!(!state(&d, "plain").contains_key("health"));
    // Bad options.
    let b = d.bundle("bad", &["true"]);
    for bad in [
        "health-cmd=",
        "health-interval=0",
        "health-retries=0",
        "health-timeout=soon",
    ] {
        d.ask(&format!("run bad {} {bad}", b.display()))
            .err_code("invalid");
    }
    d.ask("wait plain healthy timeout=never")
        .err_code("invalid");
}

#[test]
fn an_image_healthcheck_is_the_default_and_options_win() {
    let d = Daemon::start();
    let b = d.bundle("img", &["sleep", "1000"]);
    // As `nanoctr import` keeps a Docker Healthcheck.
    let check =
        r#"{"Test":["CMD-SHELL","test ! -e /tmp/broken"],"Interval":200000000,"Retries":1}"#;
    let config = std::fs::read_to_string(b.join("config.json")).unwrap();
    let quoted = nanoctr::bundle::json::quote(check);
    let config = config.replacen(
        '{',
        &format!("{{\"annotations\": {{\"org.nanoctr.healthcheck\": {quoted}}},"),
        1,
    );
    std::fs::write(b.join("config.json"), config).unwrap();
    d.ask(&format!("run img {}", b.display())).ok();
    assert_eq!(d.ask("wait img healthy timeout=20s").ok(), "health=healthy");
    d.ask("exec img mark -- touch /tmp/broken").ok();
    d.eventually("unhealthy", || state(&d, "img")["health"] == "unhealthy");
    // health-cmd=none turns it off.
    d.ask(&format!("run img2 {} health-cmd=none", b.display()))
        .ok();
    assert!(!state(&d, "img2").contains_key("health"));
}

#[test]
fn a_restarted_daemon_checks_again() {
    let mut d = Daemon::start();
    sleeper(
        &d,
        "kept",
        &format!("{UNTIL_BROKEN} health-interval=200ms health-retries=1"),
    );
    assert_eq!(d.ask("wait kept healthy").ok(), "health=healthy");
    d.kill9();
    d.restart();
    let s = state(&d, "kept");
    assert_eq!(s["health"], "starting");
    assert_eq!(
        d.ask("wait kept healthy timeout=20s").ok(),
        "health=healthy"
    );
    d.ask("exec kept mark -- touch /tmp/broken").ok();
    d.eventually("unhealthy", || state(&d, "kept")["health"] == "unhealthy");
}
