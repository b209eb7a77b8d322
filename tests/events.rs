//! Events (ordered, replayable, kept across restarts, bounded for slow
//! subscribers), OOM kills and metrics, with real runc.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use nanoctr_tests::{bin, fields, Conn, Daemon, Runtime};

/// Reads `n` event lines from a subscription.
fn events(sub: &mut Conn, n: usize) -> Vec<HashMap<String, String>> {
    (0..n)
        .map(|_| {
            let line = sub.line();
            assert!(line.starts_with("EVENT "), "{line}");
            fields(&line)
        })
        .collect()
}

fn kinds(evs: &[HashMap<String, String>]) -> Vec<&str> {
    evs.iter().map(|e| e["type"].as_str()).collect()
}

fn seqs(evs: &[HashMap<String, String>]) -> Vec<u64> {
    evs.iter().map(|e| e["seq"].parse().unwrap()).collect()
}

#[test]
fn a_subscriber_sees_create_start_exit_delete_in_order() {
    let d = Daemon::start();
    let mut sub = d.conn();
    sub.send("events since=0");
    let b = d.bundle("e", &["sh", "-c", "exit 3"]);
    d.ask(&format!("run e {}", b.display())).ok();
    d.ask("wait e").ok();
    d.ask("delete e").ok();
    let evs = events(&mut sub, 4);
    assert_eq!(kinds(&evs), ["create", "start", "exit", "delete"]);
    assert!(evs.iter().all(|e| e["id"] == "e"));
    let s = seqs(&evs);
    assert!(s.windows(2).all(|w| w[1] == w[0] + 1), "{s:?}");
    assert_eq!(evs[2]["status"], "3");
    assert_eq!(evs[2]["proc"], "init");
    assert!(evs[0]["pid"].parse::<u32>().unwrap() > 0);
    assert!(evs[0]["time"].parse::<u64>().unwrap() > 1_600_000_000);
}

#[test]
fn since_replays_exactly_the_missed_events_and_filters_apply() {
    let d = Daemon::start();
    let b = d.bundle("r", &["true"]);
    for id in ["r1", "r2"] {
        d.ask(&format!("run {id} {}", b.display())).ok();
        d.ask(&format!("wait {id}")).ok();
    }
    let mut all = d.conn();
    all.send("events since=0");
    let first = events(&mut all, 6);
    assert_eq!(seqs(&first), [1, 2, 3, 4, 5, 6]);

    // Missed while away: everything after seq 4, nothing before.
    let mut late = d.conn();
    late.send("events since=4");
    assert_eq!(seqs(&events(&mut late, 2)), [5, 6]);
    d.ask("delete r1").ok();
    let live = events(&mut late, 1);
    assert_eq!(
        (live[0]["seq"].as_str(), live[0]["type"].as_str()),
        ("7", "delete")
    );

    let mut exits = d.conn();
    exits.send("events since=0 type=exit id=r2");
    let e = events(&mut exits, 1);
    assert_eq!((e[0]["id"].as_str(), e[0]["type"].as_str()), ("r2", "exit"));
    d.ask("delete r2").ok();
    d.ask(&format!("run r3 {}", b.display())).ok();
    d.ask("wait r3").ok();
    assert!(!exits.has_input(), "a filtered-out event was sent");

    d.ask("events since=x").err_code("invalid");
    d.ask("events type=nope").err_code("invalid");
}

#[test]
fn the_sequence_goes_on_across_a_restart_and_old_events_replay() {
    let mut d = Daemon::start();
    let b = d.bundle("p", &["true"]);
    d.ask(&format!("run p {}", b.display())).ok();
    d.ask("wait p").ok();
    d.ask("delete p").ok();
    let mut sub = d.conn();
    sub.send("events since=0");
    let before = events(&mut sub, 4);
    assert!(d.stop().success());

    d.restart();
    let mut sub = d.conn();
    sub.send("events since=0");
    assert_eq!(
        events(&mut sub, 4),
        before,
        "old events are replayed as they were"
    );
    d.ask(&format!("run p {}", b.display())).ok();
    let next = events(&mut sub, 1);
    assert_eq!(next[0]["seq"], "5");
    assert_eq!(next[0]["type"], "create");
}

#[test]
fn a_subscriber_that_never_reads_is_cut_off_and_others_are_served() {
    let d = Daemon::start_with(Runtime::Runc, &["--retain", "8"]);
    let stuck = d.conn();
    let mut stuck = stuck.into_stream();
    std::io::Write::write_all(&mut stuck, b"events\n").unwrap();
    let b = d.bundle("s", &["sleep", "1000"]);
    for i in 0..30 {
        d.ask(&format!("create s{i} {}", b.display())).ok();
        d.ask(&format!("delete s{i}")).ok();
        assert_eq!(d.ask("list").ok(), "count=0");
    }
    // Now read what the stuck subscriber was sent: events, the overflow
    // line, then the end of the stream.
    stuck
        .set_read_timeout(Some(nanoctr_tests::ANSWER_TIMEOUT))
        .unwrap();
    let mut text = String::new();
    stuck.read_to_string(&mut text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let last = lines.last().expect("something was sent");
    assert!(last.starts_with("EVENT type=overflow next="), "{last}");
    let next: u64 = fields(last)["next"].parse().unwrap();
    let delivered = &lines[..lines.len() - 1];
    assert_eq!(
        delivered.len() as u64,
        next - 1,
        "events 1..next-1 came whole, in order"
    );
    for (i, l) in delivered.iter().enumerate() {
        assert_eq!(fields(l)["seq"], (i + 1).to_string());
    }
    assert!(next < 60, "cut off only at the end: next={next}");
}

#[test]
fn an_oom_kill_is_an_event_before_the_exit() {
    let d = Daemon::start();
    // The example bundle limits memory to 16 MiB; tail of /dev/zero keeps
    // everything it reads.
    let b = d.bundle("oom", &["tail", "/dev/zero"]);
    let mut sub = d.conn();
    sub.send("events since=0 id=hog");
    d.ask(&format!("run hog {}", b.display())).ok();
    assert_eq!(d.ask("wait hog").ok(), "exit=137");
    let evs = events(&mut sub, 4);
    assert_eq!(kinds(&evs), ["create", "start", "oom", "exit"]);
    assert_eq!(evs[2]["kills"], "1");
    assert_eq!(evs[3]["status"], "137");
}

/// A small Prometheus text-format reader: `# HELP`/`# TYPE` lines, then
/// samples `name{labels} value`. Panics on anything else.
fn prometheus(text: &str) -> HashMap<String, f64> {
    let mut types = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split(',') {
                    let (k, v) = pair.split_once('=').expect("label k=v");
                    assert!(
                        !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                        "{line}"
                    );
                }
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "no TYPE before {line}");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        samples.insert(series.to_string(), v);
    }
    samples
}

#[test]
fn metrics_parse_as_prometheus_text_and_move() {
    let d = Daemon::start();
    let metrics = || {
        let out = d.nanoctr(&["metrics"]);
        assert!(out.status.success(), "{out:?}");
        prometheus(&String::from_utf8(out.stdout).unwrap())
    };
    let before = metrics();
    assert_eq!(before["nanoctr_containers{status=\"running\"}"], 0.0);
    assert!(before["process_resident_memory_bytes"] > 0.0);

    let b = d.bundle("m", &["sleep", "1000"]);
    d.ask(&format!("run m {}", b.display())).ok();
    let bad = d.bundle("bad", &["/no/such/program"]);
    d.ask(&format!("run bad {}", bad.display()))
        .err_code("runtime");
    let after = metrics();
    let moved = |k: &str| after[k] - before[k];
    assert_eq!(after["nanoctr_containers{status=\"running\"}"], 1.0);
    assert_eq!(moved("nanoctr_runtime_calls_total{verb=\"create\"}"), 2.0);
    assert_eq!(
        moved("nanoctr_runtime_call_failures_total{verb=\"create\"}"),
        1.0
    );
    assert_eq!(moved("nanoctr_runtime_calls_total{verb=\"start\"}"), 1.0);
    // The failed create's cleanup is a delete call too.
    assert_eq!(moved("nanoctr_runtime_calls_total{verb=\"delete\"}"), 1.0);
    assert_eq!(moved("nanoctr_start_duration_seconds_count"), 1.0);
    assert_eq!(
        after["nanoctr_start_duration_seconds_bucket{le=\"+Inf\"}"],
        1.0
    );
    assert_eq!(moved("nanoctr_events_total"), 2.0);
    assert!(after["nanoctr_clients"] >= 1.0);
    d.ask("delete m force").ok();
}

#[test]
fn the_client_follows_the_stream() {
    let d = Daemon::start();
    let mut child = Command::new(bin("nanoctr"))
        .args(["events", "type=exit"])
        .env("NANOCTR_SOCKET", &d.socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    d.eventually("the client to subscribe", || {
        d.ask("metrics")
            .data
            .iter()
            .any(|l| l == "| nanoctr_event_subscribers 1")
    });
    let b = d.bundle("f", &["sh", "-c", "exit 6"]);
    d.ask(&format!("run f {}", b.display())).ok();
    let line = lines.next().unwrap().unwrap();
    let e = fields(&line);
    assert_eq!(
        (e["id"].as_str(), e["type"].as_str(), e["status"].as_str()),
        ("f", "exit", "6")
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
