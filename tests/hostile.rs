//! The daemon's promises, tried as a hostile user (or an unlucky device)
//! would: bundles that are too deep, fifos where files should be, files too
//! big for a pipe, clients that follow, idle or flood, exits raced against
//! restarts, a full state dir, paths into the daemon's own files, lines at
//! the length limit, and kill -9 at random moments. Each test states a
//! promise and fails if it is broken; none waits forever: a guard turns a
//! hang into a failure.
//!
//! The daemon's RSS and descriptor count are printed before, during and
//! after the load tests (`cargo test --test hostile -- --nocapture`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nanoctr_tests::{alive, bin, fields, Answer, Conn, Daemon, Launch, Runtime};

/// How long an answer may take here before it counts as a lock-out: far
/// above any answer's time, far below forever.
const GUARD: Duration = Duration::from_secs(10);

/// A connection whose answers must come within [`GUARD`].
fn guarded(d: &Daemon) -> Conn {
    let c = Conn::connect(&d.socket).expect("connect to nanoctrd");
    c.set_timeout(GUARD);
    c
}

/// Asks on a fresh guarded connection.
#[track_caller]
fn ask(d: &Daemon, line: &str) -> Answer {
    guarded(d).ask(line)
}

fn state(d: &Daemon, id: &str) -> HashMap<String, String> {
    fields(&ask(d, &format!("state {id}")).data[0])
}

/// The daemon's resident memory (KiB) and open descriptors.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

/// Whether `metrics` shows `n` clients in follower places.
fn followers_placed(d: &Daemon, n: usize) -> bool {
    let want = format!("| nanoctr_client_places{{place=\"follower\"}} {n}");
    ask(d, "metrics").data.contains(&want)
}

/// Raises this test process's own descriptor limit, for tests that hold
/// many connections.
fn allow_descriptors(n: u64) {
    let pid = std::process::id().to_string();
    let limit = format!("--nofile={n}:{n}");
    let ok = Command::new("prlimit")
        .args(["--pid", &pid, &limit])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "prlimit {limit}");
}

/// Runs a command to its end, or kills it and fails after `limit`.
#[track_caller]
fn run_within(cmd: &mut Command, limit: Duration) -> (Option<i32>, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut text = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            return (status.code(), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

/// A bundle whose config.json has `depth` nested arrays under a key of
/// its own (which a runtime ignores).
fn deep_bundle(d: &Daemon, name: &str, depth: usize) -> PathBuf {
    let b = d.bundle(name, &["true"]);
    let config = std::fs::read_to_string(b.join("config.json")).unwrap();
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let config = config.replacen("{", &format!("{{\n\t\"org.example.nested\": {deep},"), 1);
    std::fs::write(b.join("config.json"), config).unwrap();
    b
}

// ---- bundles that are hostile ----

#[test]
fn a_config_json_nested_a_hundred_thousand_deep_is_refused_and_the_daemon_lives() {
    let d = Daemon::start();
    let b = deep_bundle(&d, "deep", 100_000);
    let (rss_before, _) = footprint(d.pid());
    let m = ask(&d, &format!("create deep {}", b.display()))
        .err_code("invalid")
        .to_string();
    assert!(m.contains("nested deeper than 64 levels"), "{m}");
    assert!(ask(&d, "hello").ok().starts_with("nanoctr"));
    let (rss_after, _) = footprint(d.pid());
    eprintln!("a config.json 100,000 deep: ERR invalid; daemon RSS {rss_before} KiB before, {rss_after} KiB after");
    // One too big to read is refused as that, before it is read.
    let huge = deep_bundle(&d, "huge", 1_000_000);
    let m = ask(&d, &format!("create huge {}", huge.display()))
        .err_code("invalid")
        .to_string();
    assert!(m.contains("more than the 1048576 read at most"), "{m}");
    // A depth an OCI config could have still works.
    let ok = deep_bundle(&d, "fine", 8);
    ask(&d, &format!("run fine {}", ok.display())).ok();
    assert_eq!(ask(&d, "wait fine").ok(), "exit=0");
    assert!(d.container_dirs().iter().all(|c| c != "deep"));
}

#[test]
fn a_declared_container_with_such_a_bundle_does_not_stop_the_boot() {
    let mut d = Daemon::prepare(
        Runtime::Runc,
        Launch {
            config: Some(String::new()),
            ..Launch::default()
        },
    );
    let b = deep_bundle(&d, "deep", 200_000);
    let good = d.bundle("good", &["sleep", "1000"]);
    let section = format!(
        "[container deep]\nbundle = {}\n[container good]\nbundle = {}\n",
        b.display(),
        good.display()
    );
    std::fs::write(d.dir.join("conf/nanoctrd.conf"), section).unwrap();
    d.spawn();
    d.eventually("the good container to run", || {
        d.listed()
            .get("good")
            .is_some_and(|c| c["status"] == "running")
    });
    assert!(!d.listed().contains_key("deep"));
    assert!(
        d.log().contains("nested deeper than 64 levels"),
        "{}",
        d.log()
    );
}

#[test]
fn a_fifo_for_config_json_is_refused_without_blocking() {
    let d = Daemon::start();
    let b = d.dir.join("bundles/fifo");
    std::fs::create_dir_all(&b).unwrap();
    mkfifo(&b.join("config.json"));
    let m = ask(&d, &format!("create f {}", b.display()))
        .err_code("invalid")
        .to_string();
    assert!(m.contains("fifo"), "{m}");
    // A device is no better.
    let dev = d.dir.join("bundles/dev");
    std::fs::create_dir_all(&dev).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dev.join("config.json")).unwrap();
    let m = ask(&d, &format!("create z {}", dev.display()))
        .err_code("invalid")
        .to_string();
    assert!(m.contains("device"), "{m}");
    assert!(ask(&d, "hello").ok().starts_with("nanoctr"));
}

#[test]
fn a_fifo_in_containers_d_neither_hangs_check_config_nor_the_boot() {
    let d = Daemon::prepare(
        Runtime::Runc,
        Launch {
            config: Some(String::new()),
            ..Launch::default()
        },
    );
    let containers = d.dir.join("conf/containers.d");
    mkfifo(&containers.join("web.conf"));
    let conf = d.dir.join("conf/nanoctrd.conf");
    for extra in [&["--check-config"][..], &[]] {
        let (code, text) = run_within(
            Command::new(bin("nanoctrd"))
                .args(["--config", conf.to_str().unwrap()])
                .args(["--containers-dir", containers.to_str().unwrap()])
                .args(["--socket", d.socket.to_str().unwrap()])
                .args(["--state-dir", d.state.to_str().unwrap()])
                .args(extra),
            GUARD,
        );
        assert_eq!(code, Some(2), "{extra:?}: {text}");
        assert!(text.contains("web.conf") && text.contains("fifo"), "{text}");
    }
}

#[test]
fn a_restart_with_a_big_config_json_is_not_stalled_and_sees_it_running() {
    let mut d = Daemon::start();
    // Annotations bigger than a pipe holds: `runc state` prints them.
    let b = d.bundle("big", &["sleep", "1000"]);
    let config = std::fs::read_to_string(b.join("config.json")).unwrap();
    let note = "x".repeat(200 * 1024);
    let config = config.replacen(
        "{",
        &format!("{{\n\t\"annotations\": {{\"org.example.note\": \"{note}\"}},"),
        1,
    );
    std::fs::write(b.join("config.json"), config).unwrap();
    ask(&d, &format!("run big {}", b.display())).ok();
    d.kill9();
    let started = Instant::now();
    d.restart();
    let took = started.elapsed();
    eprintln!("restart with a 200 KiB config.json: serving after {took:?}");
    assert_eq!(state(&d, "big")["status"], "running");
    ask(&d, "kill big KILL").ok();
    assert_eq!(ask(&d, "wait big").ok(), "exit=137");
}

// ---- clients that hold on ----

#[test]
fn followers_do_not_lock_out_requests() {
    let d = Daemon::start();
    let b = d.bundle("s", &["sleep", "1000"]);
    let talk = d.bundle(
        "talk",
        &["sh", "-c", "while true; do echo hi; sleep 1; done"],
    );
    ask(&d, &format!("run s {}", b.display())).ok();
    ask(&d, &format!("run talk {}", talk.display())).ok();
    let before = footprint(d.pid());
    // 18 followers of the three kinds, more than the 16 places for requests.
    let mut followers = Vec::new();
    for i in 0..18 {
        let mut c = d.conn();
        match i % 3 {
            0 => c.send("events"),
            1 => c.send("wait s"),
            _ => c.send("logs talk follow"),
        }
        followers.push(c);
    }
    d.eventually("18 followers in place", || followers_placed(&d, 18));
    let during = footprint(d.pid());
    let started = Instant::now();
    assert_eq!(ask(&d, "list").ok(), "count=2");
    let m = ask(&d, "metrics");
    let followed = m
        .data
        .iter()
        .any(|l| l == "| nanoctr_client_places{place=\"follower\"} 18");
    assert!(followed, "{:?}", m.data);
    // The kill that ends the waits gets in.
    ask(&d, "kill s KILL").ok();
    for (i, c) in followers.iter_mut().enumerate() {
        if i % 3 == 1 {
            c.set_timeout(GUARD);
            assert_eq!(c.answer().ok(), "exit=137");
        }
    }
    eprintln!(
        "18 followers: a request answered in {:?}; daemon RSS/fds before {before:?}, during {during:?}",
        started.elapsed()
    );
    drop(followers);
    std::thread::sleep(Duration::from_millis(200));
    eprintln!("after: {:?}", footprint(d.pid()));
}

#[test]
fn a_follower_beyond_its_table_is_refused_clearly() {
    let d = Daemon::start_with(Runtime::Runc, &["--max-followers", "2"]);
    let mut a = d.conn();
    let mut b = d.conn();
    a.send("events");
    b.send("events");
    d.eventually("both followers in place", || followers_placed(&d, 2));
    let m = ask(&d, "events").err_code("full").to_string();
    assert!(m.contains("--max-followers"), "{m}");
    assert!(ask(&d, "hello").ok().starts_with("nanoctr"));
}

#[test]
fn clients_that_send_nothing_or_half_a_line_do_not_lock_out_requests() {
    let d = Daemon::start_with(Runtime::Runc, &["--client-timeout", "2"]);
    let mut silent: Vec<UnixStream> = Vec::new();
    for i in 0..32 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        if i % 2 == 1 {
            s.write_all(b"list ").unwrap();
        }
        silent.push(s);
    }
    // All 32 are in once the daemon has closed 16 of them to make room
    // for the others: the table holds 16.
    d.eventually("the silent clients to be taken in", || {
        silent
            .iter()
            .filter(|s| nanoctr_tests::sys::readable(*s))
            .count()
            >= 16
    });
    let started = Instant::now();
    assert_eq!(ask(&d, "list").ok(), "count=0");
    eprintln!(
        "32 silent clients: a request answered in {:?}",
        started.elapsed()
    );
    // Past --client-timeout those left are told so and closed.
    std::thread::sleep(Duration::from_millis(2500));
    let mut told = 0;
    for s in &mut silent {
        s.set_read_timeout(Some(GUARD)).unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        if text.contains("ERR timeout no request for 2 s") {
            told += 1;
        } else {
            assert!(text.contains("ERR busy closed to make room"), "{text:?}");
        }
    }
    assert!(told > 0, "nobody timed out");
    let m = ask(&d, "metrics");
    assert!(
        m.data
            .iter()
            .any(|l| l.starts_with("| nanoctr_clients_closed_total{why=\"idle\"} ")),
        "{:?}",
        m.data
    );
}

#[test]
fn a_thousand_clients_and_twenty_followers_while_a_normal_client_is_answered() {
    allow_descriptors(8192);
    let d = Daemon::start();
    let b = d.bundle("s", &["sleep", "1000"]);
    ask(&d, &format!("run s {}", b.display())).ok();
    let before = footprint(d.pid());
    let mut followers = Vec::new();
    for i in 0..20 {
        let mut c = d.conn();
        c.send(if i % 2 == 0 {
            "events since=0"
        } else {
            "wait s"
        });
        followers.push(c);
    }
    // A thousand more: silent, half a line, or asking without reading.
    let socket = d.socket.clone();
    let flood = std::thread::spawn(move || {
        let mut held = Vec::new();
        for i in 0..1000 {
            let Ok(mut s) = UnixStream::connect(&socket) else {
                continue;
            };
            let _ = match i % 3 {
                0 => Ok(()),
                1 => s.write_all(b"state s"),
                _ => s.write_all(b"list\nlist\nhello\n"),
            };
            held.push(s);
        }
        held
    });
    let mut took = Vec::new();
    let mut peak = before;
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(ask(&d, "list").ok(), "count=1");
        took.push(started.elapsed());
        let now = footprint(d.pid());
        peak = (peak.0.max(now.0), peak.1.max(now.1));
    }
    let held = flood.join().unwrap();
    let during = footprint(d.pid());
    took.sort();
    eprintln!(
        "1000 clients + 20 followers: {} held by the flood, a normal request answered in median {:?}, slowest {:?}",
        held.len(),
        took[took.len() / 2],
        took[took.len() - 1]
    );
    // Followers still follow.
    ask(&d, "kill s KILL").ok();
    for (i, c) in followers.iter_mut().enumerate() {
        c.set_timeout(GUARD);
        if i % 2 == 1 {
            assert_eq!(c.answer().ok(), "exit=137");
        }
    }
    drop(held);
    drop(followers);
    // The daemon closes them as it sees them hang up.
    let deadline = Instant::now() + GUARD;
    while footprint(d.pid()).1 > before.1 + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = footprint(d.pid());
    eprintln!(
        "daemon RSS KiB / fds: before {before:?}, peak during {peak:?}, after the flood {during:?}, after all left {after:?}"
    );
    // Bounded by the table, not by the flood.
    assert!(peak.1 < before.1 + 16 + 32 + 10, "{peak:?} descriptors");
    assert!(after.1 <= before.1 + 2, "descriptors left open: {after:?}");
}

// ---- exits that must not be lost ----

#[test]
fn an_exit_while_the_daemon_is_down_is_not_called_lost() {
    exit_while_the_daemon_is_down(Runtime::Runc);
}

#[test]
fn an_exit_while_the_daemon_is_down_is_not_called_lost_with_crun() {
    exit_while_the_daemon_is_down(Runtime::Crun);
}

fn exit_while_the_daemon_is_down(runtime: Runtime) {
    let mut d = Daemon::start_with(runtime, &[]);
    let b = d.bundle("e", &["sleep", "1000"]);
    ask(&d, &format!("run e {}", b.display())).ok();
    let init = nanoctr_tests::read_pid(&d.state.join("e/init/pid"));
    let shim = nanoctr_tests::read_pid(&d.state.join("e/init/shim.pid"));
    d.kill9();
    // The container exits while the daemon is down, and its shim is slow
    // to report it: still there when the daemon comes back.
    let signal = |sig: &str, pid: u32| {
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
    };
    signal("-STOP", shim);
    signal("-KILL", init);
    d.eventually("the init to be gone", || !alive(init));
    d.restart();
    let s = state(&d, "e");
    assert_ne!(
        s["status"], "unknown",
        "a live shim's container called lost"
    );
    signal("-CONT", shim);
    assert_eq!(ask(&d, "wait e").ok(), "exit=137");
    let mut sub = guarded(&d);
    sub.send("events since=0 id=e");
    let mut kinds = Vec::new();
    loop {
        let e = fields(&sub.line());
        kinds.push(e["type"].clone());
        if e["type"] == "exit" {
            assert_eq!(e["status"], "137");
            break;
        }
    }
    assert!(!kinds.contains(&"shim-lost".to_string()), "{kinds:?}");
}

#[test]
fn exit_statuses_survive_a_full_state_dir() {
    let d = Daemon::launch(
        Runtime::Runc,
        Launch {
            state_tmpfs_kib: Some(512),
            ..Launch::default()
        },
    );
    let sleeper = d.bundle("s", &["sleep", "1000"]);
    ask(&d, &format!("run s {}", sleeper.display())).ok();
    // A container that fills the state dir with its own output, then exits 4.
    let chatty = d.bundle(
        "c",
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do echo 0123456789abcdef0123456789abcdef; i=$((i+1)); done; exit 4",
        ],
    );
    ask(&d, &format!("run c {} log-size=4m", chatty.display())).ok();
    assert_eq!(ask(&d, "wait c").ok(), "exit=4");
    // And one killed while it is full.
    let filler = d.fill_state_dir();
    ask(&d, "kill s KILL").ok();
    assert_eq!(ask(&d, "wait s").ok(), "exit=137");
    for id in ["c", "s"] {
        assert_eq!(state(&d, id)["status"], "stopped");
        let tmp = d.state.join(id).join("init/.exitStatus.tmp");
        assert!(!tmp.exists(), "{} left behind", tmp.display());
    }
    std::fs::remove_file(&filler).unwrap();
}

#[test]
fn sequence_numbers_never_go_back_after_events_could_not_be_logged() {
    let mut d = Daemon::launch(
        Runtime::Runc,
        Launch {
            state_tmpfs_kib: Some(512),
            ..Launch::default()
        },
    );
    let b = d.bundle("p", &["sleep", "1000"]);
    ask(&d, &format!("run p {}", b.display())).ok();
    let mut sub = guarded(&d);
    sub.send("events since=0");
    let filler = d.fill_state_dir();
    // The log's last page may still have room: go on until it has none,
    // then a little more.
    let errors = || {
        let m = ask(&d, "metrics");
        m.data
            .iter()
            .find_map(|l| l.strip_prefix("| nanoctr_event_log_write_errors_total "))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let mut cycles = 0;
    let mut more = 3;
    while more > 0 {
        ask(&d, "pause p").ok();
        ask(&d, "resume p").ok();
        cycles += 1;
        if errors() > 0 {
            more -= 1;
        }
        assert!(
            cycles < 500,
            "events are still logged: the state dir is not full"
        );
    }
    // What the subscriber was served: up to the last resume.
    let mut served = 0;
    let mut resumes = 0;
    while resumes < cycles {
        let e = fields(&sub.line());
        served = served.max(e["seq"].parse::<u64>().unwrap());
        resumes += usize::from(e["type"] == "resume");
    }
    d.kill9();
    d.restart();
    let mut sub = guarded(&d);
    sub.send("events");
    ask(&d, "pause p").ok();
    let next = fields(&sub.line());
    assert_eq!(next["type"], "pause", "{next:?}");
    let seq: u64 = next["seq"].parse().unwrap();
    assert!(seq > served, "seq {seq} after {served} was served");
    std::fs::remove_file(&filler).unwrap();
}

// ---- paths a client names ----

#[test]
fn client_paths_may_not_reach_the_state_dir_devices_or_other_directories() {
    let d = Daemon::start();
    let b = d.bundle("p", &["sleep", "1000"]);
    for (path, code) in [
        (d.state.join(".events.0"), "denied"),
        (d.state.join("other/init/output"), "denied"),
        (PathBuf::from("/dev/zero"), "invalid"),
        (PathBuf::from("/tmp"), "invalid"),
    ] {
        let line = format!("run x {} stdout={}", b.display(), path.display());
        ask(&d, &line).err_code(code);
    }
    let log = d.dir.join("p.log");
    ask(
        &d,
        &format!("run p {} stdout={}", b.display(), log.display()),
    )
    .ok();
    // A directory that is not a checkpoint image is not removed.
    let victim = d.dir.join("victim");
    std::fs::create_dir_all(victim.join("keep")).unwrap();
    std::fs::write(victim.join("keep/precious"), "x").unwrap();
    let line = format!("checkpoint-delete p keep dir={}", victim.display());
    ask(&d, &line).err_code("invalid");
    assert!(victim.join("keep/precious").exists());
    // Nor listed.
    let a = ask(&d, "checkpoints p dir=/etc");
    assert_eq!(fields(a.ok())["count"], "0", "{a:?}");
    let line = format!("checkpoints p dir={}", d.state.display());
    ask(&d, &line).err_code("denied");
}

#[test]
fn the_event_log_is_never_written_through_a_symlink() {
    let mut d = Daemon::start();
    assert!(d.stop().success());
    let victim = d.dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    for seg in [".events.0", ".events.1"] {
        let _ = std::fs::remove_file(d.state.join(seg));
        std::os::unix::fs::symlink(&victim, d.state.join(seg)).unwrap();
    }
    d.restart();
    let b = d.bundle("t", &["true"]);
    ask(&d, &format!("run t {}", b.display())).ok();
    assert_eq!(ask(&d, "wait t").ok(), "exit=0");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

// ---- small ones ----

#[test]
fn a_line_of_exactly_4096_bytes_is_taken() {
    let d = Daemon::start();
    let mut c = guarded(&d);
    for end in ["\n", "\r\n"] {
        let mut line = "hello".to_string();
        line.push_str(&" ".repeat(4096 - line.len()));
        assert_eq!(line.len(), 4096);
        c.send_raw(format!("{line}{end}").as_bytes());
        assert!(c.answer().ok().starts_with("nanoctr"), "{end:?}");
        line.push(' ');
        c.send_raw(format!("{line}{end}").as_bytes());
        c.answer().err_code("too-long");
    }
}

#[test]
fn check_config_fails_for_a_missing_bundle_and_too_many_containers() {
    let d = Daemon::prepare(
        Runtime::Runc,
        Launch {
            config: Some(String::new()),
            ..Launch::default()
        },
    );
    let good = d.bundle("good", &["true"]);
    let conf = d.dir.join("conf/nanoctrd.conf");
    let check = |text: &str| {
        std::fs::write(&conf, text).unwrap();
        let out = Command::new(bin("nanoctrd"))
            .args(["--check-config", "--config", conf.to_str().unwrap()])
            .args([
                "--containers-dir",
                d.dir.join("conf/containers.d").to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stdout, stderr)
    };
    let (code, out, err) = check("[container m]\nbundle = /no/such/bundle\n");
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        !out.contains("ok") && err.contains("/no/such/bundle"),
        "{out}{err}"
    );
    let two = format!(
        "max-containers = 1\n[container a]\nbundle = {0}\n[container b]\nbundle = {0}\n",
        good.display()
    );
    let (code, out, err) = check(&two);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("more than --max-containers 1: b would not start"),
        "{err}"
    );
    // The verdict is the last word, on stdout.
    assert_eq!(out.lines().count(), 1, "{out}");
}

// ---- kill -9, again and again ----

/// xorshift, seeded: the same moments every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn thirty_rounds_of_kill_dash_nine_keep_every_status_and_exit_code() {
    let mut d = Daemon::start();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let naps = ["0", "0.05", "0.2", "0.4", "0.8"];
    let (mut carried, mut exits_checked, mut during_down) = (0, 0, 0);
    for round in 0..30 {
        // Containers with known exit codes, started on connections of their
        // own; the daemon is killed with some of these in flight.
        let mut expected: HashMap<String, String> = HashMap::new();
        let mut conns = Vec::new();
        for i in 0..6 {
            let id = format!("k{round}x{i}");
            let code = 20 + i;
            let nap = naps[rng.below(naps.len() as u64) as usize];
            let b = d.bundle(&id, &["sh", "-c", &format!("sleep {nap}; exit {code}")]);
            let mut c = d.conn();
            c.send(&format!("run {id} {}", b.display()));
            expected.insert(id.clone(), code.to_string());
            conns.push((id, c));
        }
        std::thread::sleep(Duration::from_millis(rng.below(500)));
        d.kill9();
        // Some exit while the daemon is down.
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        d.restart();
        let now = d.listed();
        for (id, mut c) in conns {
            if c.has_input() && c.answer().last.starts_with("OK") {
                assert!(
                    now.contains_key(&id),
                    "round {round}: {id} was made, then lost"
                );
                carried += 1;
            }
        }
        for (id, c) in &now {
            assert_ne!(c["status"], "unknown", "round {round}: {id} lost: {c:?}");
            if c["status"] == "stopped" {
                during_down += 1;
            }
        }
        // Every one that is there ends with its own exit code, also those
        // that exited while the daemon was down.
        // (A container being made is not listed until it is made.)
        d.eventually("creates cut short to settle", || {
            d.listed().len() == d.container_dirs().len()
        });
        for id in d.listed().keys() {
            let a = ask(&d, &format!("wait {id}"));
            assert_eq!(
                a.ok(),
                format!("exit={}", expected[id]),
                "round {round}: {id}"
            );
            exits_checked += 1;
            ask(&d, &format!("delete {id}")).ok();
        }
        assert!(
            d.runtime_ids().is_empty(),
            "round {round}: runtime state left: {:?}",
            d.runtime_ids()
        );
    }
    d.eventually("shims to be gone", || d.shims().is_empty());
    eprintln!(
        "30 kill -9 rounds: {carried} containers carried across a kill, {during_down} found stopped after one, {exits_checked} exit codes checked, all true"
    );
}
