//! Updates with real runc: `swap` to a new version, `commit`, `rollback`,
//! the automatic rollback of a version that fails its trial, the update
//! lock, and kill -9 of the daemon (and a power cut) at any point of a
//! swap: afterwards exactly one version runs, and the records say which.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nanoctr_tests::{fields, Daemon};

/// A version: its bundle writes its name to /tmp/version and sleeps
/// until its stop signal (TERM); its health check is that file.
fn version(d: &Daemon, name: &str) -> PathBuf {
    let script = format!("echo {name} > /tmp/version; trap \"exit 0\" TERM; sleep 1000 & wait");
    d.bundle(name, &["sh", "-c", &script])
}

/// A version that starts and dies at once.
fn crashing(d: &Daemon, name: &str) -> PathBuf {
    d.bundle(name, &["sh", "-c", "exit 3"])
}

const HEALTHY: &str = "\"health-cmd=test -e /tmp/version\" health-interval=200ms health-retries=2";

fn state(d: &Daemon, id: &str) -> HashMap<String, String> {
    let a = d.ask(&format!("state {id}"));
    a.ok();
    fields(&a.data[0])
}

/// The bundle the runtime itself runs for `id` (`runc state`).
fn runtime_bundle(d: &Daemon, id: &str) -> Option<String> {
    let out = d.runtime_cmd(&["state", id]);
    let text = String::from_utf8_lossy(&out.stdout);
    let at = text.find("\"bundle\":")?;
    let rest = text[at + 9..].trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// What the running version says it is, from inside.
fn running_version(d: &Daemon, id: &str) -> String {
    let a = d.ask(&format!("exec {id} v -- cat /tmp/version"));
    a.ok();
    assert_eq!(d.ask(&format!("wait {id} v")).ok(), "exit=0");
    let logs = d.ask(&format!("logs {id} v"));
    logs.data
        .iter()
        .map(|l| l.trim_start_matches("| ").to_string())
        .collect::<Vec<_>>()
        .join("")
}

fn update_record(d: &Daemon, id: &str) -> String {
    std::fs::read_to_string(d.dir.join("updates").join(id)).unwrap_or_default()
}

fn events(d: &Daemon, id: &str) -> Vec<HashMap<String, String>> {
    let mut sub = d.conn();
    sub.send(&format!("events since=0 id={id}"));
    let mut out = Vec::new();
    let mut quiet = 0;
    while quiet < 6 {
        if sub.has_input() {
            out.push(fields(&sub.line()));
            quiet = 0;
        } else {
            std::thread::sleep(Duration::from_millis(50));
            quiet += 1;
        }
    }
    out
}

fn kinds(events: &[HashMap<String, String>], of: &[&str]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].clone())
        .filter(|t| of.contains(&t.as_str()))
        .collect()
}

#[test]
fn a_healthy_version_is_swapped_in_and_committed() {
    let d = Daemon::start();
    let (v1, v2) = (version(&d, "v1"), version(&d, "v2"));
    d.ask(&format!(
        "run web {} {HEALTHY} restart=on-failure",
        v1.display()
    ))
    .ok();
    d.ask("wait web healthy timeout=20s").ok();
    let a = d.ask(&format!("swap web {} swap-timeout=30s", v2.display()));
    let ok = fields(a.ok());
    assert_eq!(ok["bundle"], v2.to_str().unwrap());
    assert_eq!(ok["previous"], v1.to_str().unwrap());
    let s = state(&d, "web");
    assert_eq!(s["status"], "running");
    assert_eq!(s["bundle"], v2.to_str().unwrap());
    assert_eq!(s["update"], "done");
    assert_eq!(s["previous"], v1.to_str().unwrap());
    // The options went with it.
    assert_eq!(s["health"], "healthy");
    assert_eq!(s["restart"], "on-failure");
    assert_eq!(runtime_bundle(&d, "web").as_deref(), v2.to_str());
    assert_eq!(running_version(&d, "web"), "v2");
    assert!(update_record(&d, "web").starts_with("phase=done\n"));
    assert_eq!(d.ask("commit web").ok(), format!("bundle={}", v2.display()));
    assert!(!state(&d, "web").contains_key("update"));
    assert!(update_record(&d, "web").starts_with("phase=committed\n"));
    assert!(!update_record(&d, "web").contains("previous"));
    d.ask("commit web").err_code("state");
    d.ask("rollback web").err_code("state");
    let seen = kinds(&events(&d, "web"), &["swap", "commit", "rollback"]);
    assert_eq!(seen, ["swap", "commit"]);
}

#[test]
fn a_broken_version_is_rolled_back_by_itself() {
    let d = Daemon::start();
    let v1 = version(&d, "v1");
    d.ask(&format!("run web {} {HEALTHY}", v1.display())).ok();
    d.ask("wait web healthy timeout=20s").ok();
    // One that exits at once.
    let bad = crashing(&d, "crash");
    let e = d
        .ask(&format!("swap web {} swap-timeout=20s", bad.display()))
        .err_code("state")
        .to_string();
    assert!(e.contains("rolled back to"), "{e}");
    let s = state(&d, "web");
    assert_eq!(
        (s["status"].as_str(), s["bundle"].as_str()),
        ("running", v1.to_str().unwrap())
    );
    assert!(!s.contains_key("update"));
    assert_eq!(d.ask("wait web healthy timeout=20s").ok(), "health=healthy");
    assert_eq!(running_version(&d, "web"), "v1");
    // One that runs but never gets healthy (its options say how to check).
    let sick = version(&d, "sick");
    let e = d
        .ask(&format!(
            "swap web {} swap-timeout=2s health-cmd=false health-interval=200ms",
            sick.display()
        ))
        .err_code("state")
        .to_string();
    assert!(e.contains("rolled back"), "{e}");
    assert_eq!(d.ask("wait web healthy timeout=20s").ok(), "health=healthy");
    let s = state(&d, "web");
    assert_eq!(s["bundle"], v1.to_str().unwrap());
    assert_eq!(runtime_bundle(&d, "web").as_deref(), v1.to_str());
    assert!(update_record(&d, "web").starts_with("phase=committed\n"));
    assert!(update_record(&d, "web").contains(&format!("bundle={}", v1.display())));
    let rollbacks: Vec<_> = events(&d, "web")
        .into_iter()
        .filter(|e| e["type"] == "rollback")
        .collect();
    assert_eq!(rollbacks.len(), 2);
    assert!(rollbacks
        .iter()
        .all(|e| e["bundle"] == v1.to_str().unwrap()));
    // A missing bundle is refused before anything is stopped.
    d.ask("swap web /nonexistent/bundle").err_code("invalid");
    assert_eq!(state(&d, "web")["status"], "running");
}

#[test]
fn without_a_check_it_must_stay_running_and_rollback_brings_it_back() {
    let d = Daemon::start();
    let (v1, v2) = (version(&d, "v1"), version(&d, "v2"));
    d.ask(&format!("run web {}", v1.display())).ok();
    let started = Instant::now();
    d.ask(&format!("swap web {} swap-timeout=1s", v2.display()))
        .ok();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(running_version(&d, "web"), "v2");
    assert_eq!(
        d.ask("rollback web").ok(),
        format!("bundle={}", v1.display())
    );
    let s = state(&d, "web");
    assert_eq!(
        (s["status"].as_str(), s["bundle"].as_str()),
        ("running", v1.to_str().unwrap())
    );
    assert_eq!(running_version(&d, "web"), "v1");
    // One swap at a time.
    let mut first = d.conn();
    first.send(&format!("swap web {} swap-timeout=3s", v2.display()));
    d.eventually("the swap under way", || {
        state(&d, "web").contains_key("update")
    });
    d.ask(&format!("swap web {}", v2.display()))
        .err_code("busy");
    d.ask("delete web force").err_code("busy");
    assert!(first.answer().ok().contains("bundle="));
    assert_eq!(state(&d, "web")["update"], "done");
}

#[test]
fn the_update_lock_defers_a_swap() {
    let d = Daemon::start();
    let (v1, v2) = (version(&d, "v1"), version(&d, "v2"));
    d.ask(&format!("run web {}", v1.display())).ok();
    let lock = d.state.join("web/lock/update");
    assert!(lock.is_file(), "the lock file is made with the container");
    // Held as a process in the container would hold it, through a bind
    // mount of the lock dir: the same file, the same kernel lock.
    let holder = std::fs::File::open(&lock).unwrap();
    nanoctr_tests::sys::flock_exclusive(&holder).unwrap();
    let started = Instant::now();
    let e = d
        .ask(&format!("swap web {} swap-timeout=1s", v2.display()))
        .err_code("busy")
        .to_string();
    assert!(e.starts_with("locked"), "{e}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(running_version(&d, "web"), "v1");
    // Let go during the wait: the swap goes on.
    let mut swap = d.conn();
    swap.send(&format!("swap web {} swap-timeout=1s", v2.display()));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state(&d, "web")["update"], "locked");
    drop(holder);
    assert!(swap.answer().ok().contains("bundle="));
    assert_eq!(running_version(&d, "web"), "v2");
}

#[test]
fn a_first_install_by_swap_is_removed_by_its_rollback() {
    let d = Daemon::start();
    let v1 = version(&d, "v1");
    let a = d.ask(&format!("swap new {} {HEALTHY}", v1.display()));
    assert!(a.ok().contains("previous=none"), "{}", a.last);
    assert_eq!(state(&d, "new")["update"], "done");
    assert_eq!(d.ask("rollback new").ok(), "bundle=none");
    d.ask("state new").err_code("not-found");
    assert!(d.runtime_ids().is_empty());
    assert_eq!(update_record(&d, "new"), "");
    // A first install that fails its trial goes by itself.
    let bad = crashing(&d, "crash");
    d.ask(&format!("swap new {} swap-timeout=5s", bad.display()))
        .err_code("state");
    d.ask("state new").err_code("not-found");
    assert_eq!(update_record(&d, "new"), "");
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// After a daemon restart (or a boot), the update has settled: exactly
/// one version of `id` runs, the runtime's, which the daemon's state and
/// the update record both name; none under way.
fn settled(d: &Daemon, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = d.ask(&format!("state {id}"));
        if !a.last.starts_with("OK") {
            assert!(
                Instant::now() < deadline,
                "never settled: {}\n{}",
                a.last,
                tail(&d.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let s = fields(&a.data[0]);
        let moving = s.get("update").is_some_and(|u| u != "done");
        if s["status"] == "running" && !moving {
            let bundle = s["bundle"].clone();
            assert_eq!(d.runtime_ids(), [id], "one container in the runtime");
            assert_eq!(runtime_bundle(d, id).as_deref(), Some(bundle.as_str()));
            // No record: the daemon died before the swap began.
            let record = update_record(d, id);
            assert!(
                record.is_empty()
                    || record
                        .lines()
                        .nth(1)
                        .is_some_and(|l| l.contains(&format!("bundle={bundle} "))),
                "the update record names {bundle}: {record}"
            );
            return bundle;
        }
        assert!(
            Instant::now() < deadline,
            "never settled: {s:?}\n{}",
            tail(&d.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kill_9_at_any_point_of_a_swap_leaves_one_version() {
    let mut d = Daemon::start();
    let (v1, v2) = (version(&d, "v1"), version(&d, "v2"));
    d.ask(&format!("run web {} {HEALTHY}", v1.display())).ok();
    d.ask("wait web healthy timeout=20s").ok();
    let v1s = v1.to_str().unwrap().to_string();
    let v2s = v2.to_str().unwrap().to_string();
    // Points in the swap: before its stop, while stopping, between the
    // versions, during the trial, after it (done, not committed).
    let points_ms = [0u64, 40, 150, 300, 600, 1200];
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for round in 0..20 {
        let current = state(&d, "web")["bundle"].clone();
        let next = if current == v1s { &v2s } else { &v1s };
        let mut swap = d.conn();
        swap.send(&format!("swap web {next} swap-timeout=20s"));
        let wait = points_ms[round % points_ms.len()] + (round as u64 * 7) % 40;
        std::thread::sleep(Duration::from_millis(wait));
        d.kill9();
        // Where the swap was when the daemon died, as its record says.
        let record = update_record(&d, "web");
        let at = match record.lines().next() {
            Some(_) if !record.contains("previous ") => "not begun",
            Some(l) => l.trim_start_matches("phase="),
            None => "not begun",
        }
        .to_string();
        d.restart();
        let after = settled(&d, "web");
        // Interrupted: back where it was; or done (then it is kept until
        // commit, and the next round commits it).
        let s = state(&d, "web");
        let what = match s.get("update").map(String::as_str) {
            Some("done") => {
                assert_eq!(&after, next);
                d.ask("commit web").ok();
                "done, committed"
            }
            _ => {
                assert_eq!(after, current, "round {round}: rolled back");
                "rolled back"
            }
        };
        *outcomes
            .entry(format!("killed in {at}: {what}"))
            .or_default() += 1;
        drop(swap);
    }
    eprintln!("kill -9 during a swap, 20 rounds: {outcomes:?}");
    let rolled = outcomes
        .keys()
        .filter(|k| k.ends_with("rolled back"))
        .count();
    let done = outcomes.keys().filter(|k| k.ends_with("committed")).count();
    assert!(rolled > 0 && done > 0, "both ends reached: {outcomes:?}");
}

#[test]
fn after_a_power_cut_the_recorded_version_runs() {
    let mut d = Daemon::start();
    let (v1, v2, v3) = (version(&d, "v1"), version(&d, "v2"), version(&d, "v3"));
    d.ask(&format!("run web {}", v1.display())).ok();
    d.ask(&format!("swap web {} swap-timeout=1s", v2.display()))
        .ok();
    d.ask("commit web").ok();
    // v3 swapped in, not committed.
    d.ask(&format!("swap web {} swap-timeout=1s", v3.display()))
        .ok();
    power_cut(&mut d);
    assert_eq!(
        settled(&d, "web"),
        v2.to_str().unwrap(),
        "v3 was not committed"
    );
    assert_eq!(running_version(&d, "web"), "v2");
    // Committed this time.
    d.ask(&format!("swap web {} swap-timeout=1s", v3.display()))
        .ok();
    d.ask("commit web").ok();
    power_cut(&mut d);
    assert_eq!(settled(&d, "web"), v3.to_str().unwrap());
    // Deleted for good: not made again.
    d.ask("delete web force").ok();
    power_cut(&mut d);
    std::thread::sleep(Duration::from_millis(500));
    d.ask("state web").err_code("not-found");
}

/// What a power cut does: every process gone, and the state dir (a
/// tmpfs) empty; the update dir (flash) kept.
fn power_cut(d: &mut Daemon) {
    d.kill9();
    for (_, pid) in d.shims() {
        kill_pid(pid);
    }
    for id in d.runtime_ids() {
        d.runtime_cmd(&["delete", "--force", &id]);
    }
    empty(&d.state);
    d.restart();
}

fn kill_pid(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}

fn empty(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        // An image rootfs is not used here: nothing is mounted below.
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
}
