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
    // Time for gated to start, were it not held.
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
    // Time for b to be made again, were it to be.
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
    // Time for `of` to be restarted, were it to be (the delay is 100 ms).
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(state(&d, "of")["restarts"], "0");
    assert!(state(&d, "al")["restarts"].parse::<u32>().unwrap() >= 2);
    // Its output log is kept across restarts: the third run's line comes
    // some time after its start.
    d.eventually("three runs of al logged", || {
        d.ask("logs al").data.len() >= 3
    });
    let logs = d.ask("logs al").data.len();
    assert!(logs >= 3, "{logs}");
}

#[test]
fn a_killed_container_is_not_restarted() {
    let d = Daemon::start_with(Runtime::Runc, &["--restart-delay", "100"]);
    let b = d.bundle("s", &["sleep", "1000"]);
    let mut restarts = d.conn();
    restarts.send("events since=0 type=restart");
    d.ask(&format!("run k {} restart=always", b.display())).ok();
    d.ask("kill k KILL").ok();
    assert_eq!(d.ask("wait k").ok(), "exit=137");
    // Time for a restart (the delay is 100 ms), were there to be one.
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
    // Past the delay the restart had.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(state(&d, "p")["restarts"], "0");
    // And delete ends it for good.
    d.ask(&format!("run g {} restart=on-failure", q.display()))
        .ok();
    assert_eq!(fields(&restarts.line())["id"], "g");
    d.ask("delete g").ok();
    // Past the delay the restart had.
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
    d.await_exit_status("c", "init");
    d.restart();
    let mut exits = d.conn();
    exits.send("events since=0 id=c type=exit");
    assert_eq!(next(&mut exits)["status"], "4");
    d.eventually("a restart after the crash", || {
        state(&d, "c")["restarts"].parse::<u32>().unwrap() >= 1
    });
    assert_eq!(next(&mut exits)["status"], "4");
}

/// Reads what is there on a non-blocking descriptor until `pattern` has
/// come (or `wait` has passed); returns all that was read.
fn read_until(f: &mut std::fs::File, pattern: &str, wait: Duration) -> String {
    use std::io::Read;
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match f.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
        if String::from_utf8_lossy(&got).contains(pattern) {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A pty whose slave stands in for a serial device: the master (read
/// without blocking) and the slave's path.
fn serial_line() -> (std::fs::File, std::path::PathBuf) {
    let (master, slave) = nanoctr_tests::sys::openpty(80, 24).unwrap();
    let path = std::fs::read_link(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        slave.as_raw_fd()
    }))
    .unwrap();
    drop(slave);
    let master = std::fs::File::from(master);
    nanoctr_tests::sys::set_nonblocking(&master);
    (master, path)
}

#[test]
fn the_protocol_works_on_a_serial_line() {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("nct-tty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut first, path) = serial_line();
    // The daemon opens the device by a name that can be pointed elsewhere.
    let link = dir.join("ttyS1");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let d = Daemon::start_with(Runtime::Runc, &["--control-tty", link.to_str().unwrap()]);
    // Typed with a mistake and a backspace (DEL) over it.
    let mut answered = String::new();
    for _ in 0..50 {
        first.write_all(b"hellp\x7fo\n").unwrap();
        answered = read_until(&mut first, "OK nanoctr", Duration::from_millis(200));
        if answered.contains("OK nanoctr") {
            break;
        }
    }
    assert!(answered.contains("OK nanoctr protocol=1"), "{answered:?}");
    // The line was echoed as typed, the erase shown, and lines end in CRLF.
    assert!(answered.contains("hellp\x08 \x08o\r\n"), "{answered:?}");
    let b = d.bundle("s", &["sleep", "1000"]);
    first
        .write_all(format!("run web {}\n", b.display()).as_bytes())
        .unwrap();
    let got = read_until(&mut first, "OK pid=", Duration::from_secs(10));
    assert!(got.contains("OK pid="), "{got:?}");
    first.write_all(b"list\n").unwrap();
    let got = read_until(&mut first, "OK count=1\r\n", Duration::from_secs(5));
    assert!(got.contains("id=web status=running"), "{got:?}");
    first.write_all(b"bogus\n").unwrap();
    let got = read_until(&mut first, "ERR invalid", Duration::from_secs(5));
    assert!(got.contains("ERR invalid unknown verb bogus"), "{got:?}");
    // The line goes away (hangup); the daemon opens it again when it can.
    drop(first);
    let (mut second, path) = serial_line();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let mut answered = String::new();
    for _ in 0..40 {
        second.write_all(b"list\n").unwrap();
        answered = read_until(&mut second, "OK count=1", Duration::from_millis(200));
        if answered.contains("OK count=1") {
            break;
        }
    }
    assert!(answered.contains("OK count=1"), "{answered:?} {}", d.log());
    // The socket served throughout.
    assert_eq!(state(&d, "web")["status"], "running");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn readiness_comes_when_the_socket_accepts() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let d = Daemon::prepare(Runtime::Runc, Launch::default());
    let fifo = d.dir.join("ready");
    let pidfile = d.dir.join("nanoctrd.pid");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // Open first, without blocking, so the daemon's side can open too.
    let mut ready = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let notify = std::os::unix::net::UnixDatagram::bind(d.dir.join("notify.sock")).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" \"$@\" 3>\"$READY\"")
        .arg(bin("nanoctrd"))
        .args(["--socket", d.socket.to_str().unwrap()])
        .args(["--state-dir", d.state.to_str().unwrap()])
        .args(["--runtime-root", d.runtime_root.to_str().unwrap()])
        .args([
            "--config",
            d.dir.join("conf/nanoctrd.conf").to_str().unwrap(),
        ])
        .args([
            "--containers-dir",
            d.dir.join("conf/containers.d").to_str().unwrap(),
        ])
        .args(["--notify-fd", "3", "--pidfile", pidfile.to_str().unwrap()])
        .env("READY", &fifo)
        .env("NOTIFY_SOCKET", d.dir.join("notify.sock"))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    loop {
        let mut buf = [0u8; 16];
        match ready.read(&mut buf) {
            Ok(n) if n > 0 => {
                got.extend_from_slice(&buf[..n]);
                // Ready means answering, right now.
                let mut c = Conn::connect(&d.socket).expect("the socket accepts once ready");
                assert!(c.ask("hello").ok().starts_with("nanoctr"));
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
        assert!(Instant::now() < deadline, "no readiness newline");
    }
    assert_eq!(got, b"\n");
    let mut buf = [0u8; 128];
    let n = notify.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert_eq!(msg, format!("READY=1\nMAINPID={}", child.id()));
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(pid.trim(), child.id().to_string());
    // NOTIFY_SOCKET is not handed on: runc would wait for the container's
    // own READY=1 and never start it.
    let b = d.bundle("s", &["true"]);
    let mut c = Conn::connect(&d.socket).unwrap();
    c.ask(&format!("run n {}", b.display())).ok();
    assert_eq!(c.ask("wait n").ok(), "exit=0");
    Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
    assert!(!pidfile.exists());
}

#[test]
fn syslog_gets_the_daemon_log() {
    let d = Daemon::prepare(Runtime::Runc, Launch::default());
    let log = std::os::unix::net::UnixDatagram::bind(d.dir.join("log.sock")).unwrap();
    log.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut d = d;
    let sock = d.dir.join("log.sock");
    d.launch_flags(&["--log", "syslog", "--syslog-socket", sock.to_str().unwrap()]);
    d.spawn();
    let mut records = Vec::new();
    let mut buf = [0u8; 1100];
    while let Ok(n) = log.recv(&mut buf) {
        let r = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = r.contains("serving");
        records.push(r);
        if done {
            break;
        }
    }
    let serving = records.last().expect("records");
    // <daemon.info>Mmm dd hh:mm:ss nanoctrd[PID]: message
    let pid = d.pid();
    assert!(serving.starts_with("<30>"), "{serving}");
    assert!(
        serving.contains(&format!(" nanoctrd[{pid}]: serving ")),
        "{serving}"
    );
    // Nothing of it went to stderr.
    assert!(!d.log().contains("serving"), "{}", d.log());
}

#[test]
fn a_restart_that_fails_is_logged_and_tried_again() {
    let d = Daemon::start_with(Runtime::Runc, &["--restart-delay", "500"]);
    let b = d.bundle("f", &["sh", "-c", "exit 1"]);
    let mut restarts = d.conn();
    restarts.send("events since=0 id=f type=restart");
    d.ask(&format!("run f {} restart=on-failure:2", b.display()))
        .ok();
    assert_eq!(next(&mut restarts)["delay-ms"], "500");
    // The bundle breaks before the restart comes.
    let config = nanoctr_tests::bundle_config(&["/no/such/program"]);
    std::fs::write(b.join("config.json"), config).unwrap();
    // The failed restart counts, and the next comes after a longer delay.
    assert_eq!(next(&mut restarts)["delay-ms"], "1000");
    let s = state(&d, "f");
    assert_eq!(
        (s["status"].as_str(), s["restarts"].as_str()),
        ("stopped", "1")
    );
    // The shim tells of the failed call; the runtime's own reason, from
    // its log.json, is in the daemon's log.
    let shim_log = std::fs::read_to_string(d.state.join("f/init/shim.log")).unwrap();
    assert!(shim_log.contains("failed run 1"), "{shim_log}");
    let runtime_log = std::fs::read_to_string(d.state.join("f/init/log.json")).unwrap();
    assert!(runtime_log.contains("/no/such/program"), "{runtime_log}");
    let log = d.log();
    let failed = log
        .lines()
        .find(|l| l.contains("f: restart failed"))
        .unwrap_or("");
    assert!(failed.contains("/no/such/program"), "{log}");
}

#[test]
fn check_config_reports_without_starting() {
    let dir = std::env::temp_dir().join(format!("nct-check-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("none")).unwrap();
    for b in ["a", "b"] {
        std::fs::create_dir_all(dir.join(b)).unwrap();
        let config = nanoctr_tests::bundle_config(&["true"]);
        std::fs::write(dir.join(b).join("config.json"), config).unwrap();
    }
    let check = |config: &str| {
        let config = config.replace("BUNDLES", dir.to_str().unwrap());
        let file = dir.join(format!("c{}.conf", config.len()));
        std::fs::write(&file, &config).unwrap();
        let out = Command::new(bin("nanoctrd"))
            .args(["--check-config", "--config", file.to_str().unwrap()])
            .args(["--containers-dir", dir.join("none").to_str().unwrap()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let text = stdout.clone() + &String::from_utf8_lossy(&out.stderr);
        // A config that is read has a verdict: one line, and not "ok"
        // when anything is wrong.
        if out.status.code() != Some(2) {
            assert_eq!(stdout.lines().count(), 1, "{text}");
        }
        (out.status.code(), stdout, text)
    };
    let two = "[container b]\nbundle = BUNDLES/b\nafter = a\n[container a]\nbundle = BUNDLES/a\n";
    let (code, _, text) = check(two);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("config ok; containers started in this order: a b"),
        "{text}"
    );
    let (code, out, text) = check("[container b]\nbundle = BUNDLES/b\nafter = ghost\n");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("ghost") && !out.contains("ok"), "{text}");
    let (code, _, text) = check("max-calls = 0\n");
    assert_eq!(code, Some(2), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_daemon_restart_lifts_a_kill_for_always_only() {
    let mut d = Daemon::start_with(Runtime::Runc, &["--restart-delay", "100"]);
    let b = d.bundle("s", &["sleep", "1000"]);
    d.ask(&format!("run al {} restart=always", b.display()))
        .ok();
    d.ask(&format!("run us {} restart=unless-stopped", b.display()))
        .ok();
    for id in ["al", "us"] {
        d.ask(&format!("kill {id} KILL")).ok();
        d.ask(&format!("wait {id}")).ok();
    }
    d.kill9();
    d.restart();
    d.eventually("al to run again", || state(&d, "al")["status"] == "running");
    assert_eq!(state(&d, "al")["restarts"], "1");
    // Time for us to be restarted too (the delay is 100 ms), were it to be.
    std::thread::sleep(Duration::from_millis(400));
    let us = state(&d, "us");
    assert_eq!(
        (
            us["status"].as_str(),
            us["held"].as_str(),
            us["restarts"].as_str()
        ),
        ("stopped", "1", "0")
    );
}
