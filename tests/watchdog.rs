//! The hardware watchdog (`--watchdog`) with real runc containers and a
//! fake device: a fifo, whose reader (the test) keeps each byte the daemon
//! writes with the time it came, and sees when no writer is left. A real
//! watchdog would reset this machine; `cross/firmware/run.py` tests one
//! (the kernel's softdog) on a board under qemu.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nanoctr_tests::{bin, fields, Conn, Daemon, Launch, Runtime};

/// What the fake device got.
#[derive(Default)]
struct Seen {
    /// Each byte written, with when the reader had it.
    bytes: Vec<(Instant, u8)>,
    /// When the last writer closed it.
    closed: Option<Instant>,
}

/// A fifo standing in for a watchdog device.
struct Device {
    path: PathBuf,
    reader: Arc<std::fs::File>,
    seen: Arc<Mutex<Seen>>,
}

impl Device {
    /// Makes the fifo in `dir` and opens its read end, which must be open
    /// before the daemon opens the write end (it does, without blocking).
    fn new(dir: &Path) -> Device {
        let path = dir.join("watchdog");
        let status = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(status.success(), "mkfifo");
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        Device {
            path,
            reader: Arc::new(reader),
            seen: Arc::default(),
        }
    }

    /// Reads what comes, once the daemon holds the fifo open (before,
    /// an empty read would pass for a close), until no writer is left.
    fn read(&self) {
        let (reader, seen) = (self.reader.clone(), self.seen.clone());
        seen.lock().unwrap().closed = None;
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                match (&*reader).read(&mut buf) {
                    Ok(0) => {
                        seen.lock().unwrap().closed = Some(Instant::now());
                        return;
                    }
                    Ok(n) => {
                        let now = Instant::now();
                        let mut s = seen.lock().unwrap();
                        s.bytes.extend(buf[..n].iter().map(|&b| (now, b)));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => panic!("read the fifo: {e}"),
                }
            }
        });
    }

    /// When each pet came (every byte but the magic close's).
    fn pets(&self) -> Vec<Instant> {
        let s = self.seen.lock().unwrap();
        s.bytes
            .iter()
            .filter(|b| b.1 != b'V')
            .map(|b| b.0)
            .collect()
    }

    fn pets_between(&self, from: Instant, to: Instant) -> usize {
        self.pets().iter().filter(|&&t| t > from && t < to).count()
    }

    /// Every byte written, as text.
    fn text(&self) -> String {
        let s = self.seen.lock().unwrap();
        s.bytes.iter().map(|b| b.1 as char).collect()
    }

    /// Waits until no writer is left.
    #[track_caller]
    fn await_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.seen.lock().unwrap().closed.is_none() {
            assert!(Instant::now() < deadline, "the device is still open");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A daemon with the fake device as its watchdog, and `flags`.
fn daemon(flags: &[&str]) -> (Daemon, Device) {
    let mut d = Daemon::prepare(Runtime::Runc, Launch::default());
    let dev = Device::new(&d.dir);
    d.launch_flags(&["--watchdog", dev.path.to_str().unwrap()]);
    d.launch_flags(flags);
    d.spawn();
    dev.read();
    (d, dev)
}

fn state(d: &Daemon, id: &str) -> HashMap<String, String> {
    fields(&d.ask(&format!("state {id}")).data[0])
}

/// The value of one metric, as `metrics` shows it.
fn metric(d: &Daemon, name: &str) -> u64 {
    let a = d.ask("metrics");
    let prefix = format!("| {name} ");
    let line = a.data.iter().find(|l| l.starts_with(&prefix));
    let line = line.unwrap_or_else(|| panic!("no {name} in {:?}", a.data));
    line[prefix.len()..].parse().unwrap()
}

/// The next event of type `kind` on the subscription, and when it came.
fn next_event(sub: &mut Conn, kind: &str) -> (HashMap<String, String>, Instant) {
    loop {
        let line = sub.line();
        let f = fields(&line);
        if f.get("type").map(String::as_str) == Some(kind) {
            return (f, Instant::now());
        }
    }
}

fn gaps(pets: &[Instant]) -> Vec<f64> {
    pets.windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

#[test]
fn pets_come_at_the_interval_while_a_critical_container_runs_and_a_stop_disarms() {
    let (mut d, dev) = daemon(&["--watchdog-interval", "1"]);
    let b = d.bundle("c", &["sleep", "1000"]);
    d.ask(&format!("run c {} critical", b.display())).ok();
    assert_eq!(state(&d, "c")["critical"], "yes");
    let from = Instant::now();
    std::thread::sleep(Duration::from_millis(5500));
    let pets = dev.pets();
    let n = dev.pets_between(from, Instant::now());
    let g = gaps(&pets);
    eprintln!("{n} pets in 5.5 s at a 1 s interval; gaps between pets {g:.2?}");
    assert!((3..=8).contains(&n), "{n} pets in 5.5 s");
    assert!(g.iter().all(|&s| s < 3.0), "{g:?}");
    assert!(!dev.text().contains('V'), "no magic close while it runs");
    assert!(metric(&d, "nanoctr_watchdog_pets_total") >= pets.len() as u64);
    assert_eq!(metric(&d, "nanoctr_watchdog_petting"), 1);
    // A clean stop: the magic close, then the device is closed.
    assert!(d.stop().success());
    dev.await_closed();
    let text = dev.text();
    assert!(
        text.ends_with('V') && text.matches('V').count() == 1,
        "{text:?}"
    );
}

#[test]
fn petting_stops_once_a_critical_containers_restarts_are_spent_not_before() {
    let (mut d, dev) = daemon(&["--watchdog-interval", "1", "--restart-delay", "100"]);
    let b = d.bundle("c", &["sh", "-c", "sleep 3; exit 3"]);
    let mut sub = d.conn();
    sub.send("events since=0 id=c");
    d.ask(&format!(
        "run c {} critical restart=on-failure:1",
        b.display()
    ))
    .ok();
    let (first, t1) = next_event(&mut sub, "exit");
    assert_eq!(first["status"], "3");
    let (second, t2) = next_event(&mut sub, "exit");
    assert_eq!(second["status"], "3");
    let (stopped, tw) = next_event(&mut sub, "watchdog");
    assert_eq!(
        (&*stopped["state"], &*stopped["why"]),
        ("stopped", "stopped")
    );
    // Petted between the exits: a restart was to come.
    let between = dev.pets_between(t1, t2);
    eprintln!(
        "{between} pets in the {:.2} s between the exits; the watchdog event {:.2} s after the second",
        (t2 - t1).as_secs_f64(),
        (tw - t2).as_secs_f64()
    );
    assert!(between >= 2, "{between} pets between the two exits");
    // Then never again: three intervals pass without a pet.
    std::thread::sleep(Duration::from_millis(500));
    let after = dev.pets().len();
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(dev.pets().len(), after, "petted after it stopped");
    assert_eq!(metric(&d, "nanoctr_watchdog_petting"), 0);
    assert!(
        d.log()
            .contains("critical container c is stopped with no restart to come"),
        "{}",
        d.log()
    );
    // A clean stop now leaves it armed: the reset that is due comes.
    assert!(d.stop().success());
    dev.await_closed();
    assert!(!dev.text().contains('V'), "{:?}", dev.text());
}

#[test]
fn an_unhealthy_critical_container_stops_the_petting_once_its_restarts_are_spent() {
    let (d, dev) = daemon(&["--watchdog-interval", "1", "--restart-delay", "100"]);
    let b = d.bundle("h", &["sleep", "1000"]);
    let mut sub = d.conn();
    sub.send("events since=0 id=h");
    // Healthy until /tmp/broken exists; a restart gives it a fresh /tmp.
    d.ask(&format!(
        "run h {} critical restart=on-failure:1 \"health-cmd=sh -c \\\"test ! -e /tmp/broken\\\"\" \
         health-interval=300ms health-retries=2",
        b.display()
    ))
    .ok();
    assert_eq!(d.ask("wait h healthy timeout=20s").ok(), "health=healthy");
    let t0 = Instant::now();
    d.ask("exec h mark -- touch /tmp/broken").ok();
    next_event(&mut sub, "restart");
    // Made again: starting, then healthy.
    d.eventually("healthy again", || {
        let s = state(&d, "h");
        s["restarts"] == "1" && s["health"] == "healthy"
    });
    std::thread::sleep(Duration::from_millis(1500));
    let t1 = Instant::now();
    d.ask("exec h mark -- touch /tmp/broken").ok();
    let (stopped, _) = next_event(&mut sub, "watchdog");
    assert_eq!(
        (&*stopped["state"], &*stopped["why"]),
        ("stopped", "unhealthy")
    );
    // Unhealthy the first time, with a restart to come: still petted.
    let between = dev.pets_between(t0, t1);
    eprintln!(
        "{between} pets in the {:.2} s from the first failure to the second",
        (t1 - t0).as_secs_f64()
    );
    assert!(between >= 2, "{between} pets");
    // Running, unhealthy, no restart left, and no pet any more.
    assert_eq!(state(&d, "h")["status"], "running");
    assert_eq!(state(&d, "h")["health"], "unhealthy");
    std::thread::sleep(Duration::from_millis(500));
    let after = dev.pets().len();
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(dev.pets().len(), after, "petted after it stopped");
}

#[test]
fn a_failing_container_not_critical_or_a_critical_one_stopped_on_purpose_leaves_it_petted() {
    let (d, dev) = daemon(&["--watchdog-interval", "1"]);
    let other = d.bundle("other", &["sh", "-c", "exit 3"]);
    d.ask(&format!("run other {}", other.display())).ok();
    assert_eq!(d.ask("wait other").ok(), "exit=3");
    let sleeper = d.bundle("sleeper", &["sleep", "1000"]);
    d.ask(&format!(
        "run killed {} critical restart=on-failure:2",
        sleeper.display()
    ))
    .ok();
    d.ask("kill killed KILL").ok();
    assert_eq!(d.ask("wait killed").ok(), "exit=137");
    d.ask(&format!("run deleted {} critical", sleeper.display()))
        .ok();
    d.ask("delete deleted force").ok();
    let from = Instant::now();
    std::thread::sleep(Duration::from_millis(3500));
    let n = dev.pets_between(from, Instant::now());
    assert!(n >= 2, "{n} pets in 3.5 s");
    assert_eq!(metric(&d, "nanoctr_watchdog_petting"), 1);
    assert!(!d.log().contains("petting stopped"), "{}", d.log());
}

#[test]
fn a_killed_daemon_leaves_it_armed_and_a_new_one_pets_it_at_once() {
    let (mut d, dev) = daemon(&["--watchdog-interval", "1"]);
    let b = d.bundle("c", &["sleep", "1000"]);
    d.ask(&format!("run c {} critical", b.display())).ok();
    d.eventually("a pet", || !dev.pets().is_empty());
    // No shim or runtime call holds it open: it closes with the daemon.
    d.kill9();
    dev.await_closed();
    assert!(!dev.text().contains('V'), "{:?}", dev.text());
    let before = dev.pets().len();
    d.restart();
    dev.read();
    d.eventually("a pet from the new daemon", || dev.pets().len() > before);
    assert_eq!(state(&d, "c")["status"], "running");
}

#[test]
fn a_device_that_cannot_be_opened_or_given_its_timeout_stops_the_daemon() {
    let d = Daemon::prepare(Runtime::Runc, Launch::default());
    let dev = Device::new(&d.dir);
    let run = |extra: &[&str]| {
        let dir = |p: &str| d.dir.join(p).to_string_lossy().into_owned();
        let out = Command::new(bin("nanoctrd"))
            .args(["--socket", &dir("s.sock"), "--state-dir", &dir("state")])
            .args(["--runtime", "runc", "--config", &dir("conf/nanoctrd.conf")])
            .args(["--containers-dir", &dir("conf/containers.d")])
            .args(["--shim", bin("nanoctr-shim").to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let missing = d.dir.join("no-such-watchdog");
    let (code, err) = run(&["--watchdog", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("watchdog {}: No such file", missing.display())),
        "{err}"
    );
    // A fifo takes no timeout: refused, and disarmed first.
    let fifo = dev.path.to_str().unwrap();
    let (code, err) = run(&["--watchdog", fifo, "--watchdog-timeout", "10"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot set its timeout to 10 s"), "{err}");
    dev.read();
    dev.await_closed();
    assert_eq!(dev.text(), "V");
}
