//! Crash-only: kill -9 the daemon at any moment and lose nothing; survive
//! lost shims, faulty runtimes, a full state dir and a lack of file
//! descriptors. Real runc throughout; the fault-injecting wrapper only does
//! what runc cannot be made to do on demand (hang, crash, print garbage,
//! wait at a gate).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nanoctr_tests::{alive, fields, read_pid, Conn, Daemon, Fault, Launch, Runtime};

fn status(d: &Daemon, id: &str) -> String {
    fields(&d.ask(&format!("state {id}")).data[0])["status"].clone()
}

/// What must hold after any restart: the daemon's statuses agree with the
/// runtime's, the runtime has nothing the daemon does not list, and every
/// live shim belongs to a listed container that is not stopped. The daemon
/// and the runtime are asked one after the other, and a container can exit
/// in between, so they must come to agree, within the answer timeout.
#[track_caller]
fn consistent(d: &Daemon) {
    let mut last = String::new();
    d.eventually(
        "the daemon and the runtime to agree",
        || match disagreement(d) {
            None => true,
            Some(why) => {
                last = why;
                false
            }
        },
    );
    assert!(disagreement(d).is_none(), "{last}");
}

fn disagreement(d: &Daemon) -> Option<String> {
    let list = d.listed();
    for id in d.runtime_ids() {
        let Some(c) = list.get(&id) else {
            return Some(format!("runtime has {id}, the daemon does not list it"));
        };
        let rt = d.runtime_status(&id).unwrap_or_default();
        let agree = match c["status"].as_str() {
            "created" | "running" | "paused" => c["status"] == rt,
            "stopped" => rt == "stopped" || rt.is_empty(),
            _ => false,
        };
        if !agree {
            return Some(format!(
                "{id}: the daemon says {}, the runtime {rt}",
                c["status"]
            ));
        }
    }
    for (id, pid) in d.shims() {
        match list.get(&id) {
            None => return Some(format!("orphaned shim {pid} for {id}")),
            Some(c) if c["status"] == "stopped" => {
                return Some(format!("shim {pid} alive for stopped {id}"));
            }
            Some(_) => {}
        }
    }
    None
}

/// Deletes everything and checks nothing is left, and the ids work again.
#[track_caller]
fn clean_slate(d: &Daemon) {
    for id in d.listed().keys() {
        d.ask(&format!("delete {id} force")).ok();
    }
    assert_eq!(d.ask("list").ok(), "count=0");
    assert!(
        d.runtime_ids().is_empty(),
        "runtime state left: {:?}",
        d.runtime_ids()
    );
    d.eventually("shims to be gone", || d.shims().is_empty());
    assert!(d.container_dirs().is_empty(), "{:?}", d.container_dirs());
}

#[test]
fn restart_while_idle_keeps_every_container_and_exit_code() {
    let mut d = Daemon::start();
    let sleeper = d.bundle("sleep", &["sleep", "1000"]);
    let three = d.bundle("three", &["sh", "-c", "exit 3"]);
    d.ask(&format!("run a {}", sleeper.display())).ok();
    d.ask(&format!("run b {}", sleeper.display())).ok();
    d.ask(&format!("create c {}", sleeper.display())).ok();
    d.ask(&format!("run x {}", three.display())).ok();
    d.ask("wait x").ok();
    let before = d.listed();

    d.kill9();
    d.restart();
    assert_eq!(d.listed(), before, "the table came back as it was");
    assert_eq!(fields(&d.ask("state x").data[0])["exit"], "3");
    consistent(&d);
    // The re-attached shims still report.
    d.ask("kill a KILL").ok();
    assert_eq!(d.ask("wait a").ok(), "exit=137");
    d.ask("start c").ok();
    assert_eq!(status(&d, "c"), "running");
    clean_slate(&d);
}

#[test]
fn restart_during_create() {
    let mut d = Daemon::start();
    let faults = d.faulty_runtime();
    faults.set("create", Fault::Gate);
    let b = d.bundle("s", &["sleep", "1000"]);
    let mut c = d.conn();
    c.send(&format!("create mid {} {}", b.display(), faults.option()));
    d.eventually("the create to reach the runtime", || {
        d.state.join("mid/init/shim.pid").exists()
    });

    d.kill9();
    d.restart();
    d.ask("state mid").err_code("busy");
    faults.open_gate("create");
    // The shim tells the new daemon on its reply fifo.
    d.eventually("the create to finish", || d.ask("state mid").last == "OK");
    assert_eq!(status(&d, "mid"), "created");
    d.ask("start mid").ok();
    consistent(&d);
    d.ask("kill mid KILL").ok();
    assert_eq!(d.ask("wait mid").ok(), "exit=137");
    clean_slate(&d);
}

#[test]
fn restart_during_a_create_that_fails() {
    let mut d = Daemon::start();
    let faults = d.faulty_runtime();
    faults.set("create", Fault::Gate);
    let b = d.bundle("bad", &["/no/such/program"]);
    d.conn()
        .send(&format!("create bad {} {}", b.display(), faults.option()));
    d.eventually("the create to reach the runtime", || {
        d.state.join("bad/init/shim.pid").exists()
    });
    d.kill9();
    d.restart();
    faults.open_gate("create");
    d.eventually("the failed create to be cleaned up", || {
        d.ask("state bad").last.starts_with("ERR not-found")
    });
    assert!(!d.state.join("bad").exists());
    assert!(d.runtime_ids().is_empty());
    let good = d.bundle("good", &["true"]);
    d.ask(&format!("run bad {}", good.display())).ok();
    clean_slate(&d);
}

#[test]
fn restart_between_create_and_start() {
    let mut d = Daemon::start();
    let b = d.bundle("s", &["sh", "-c", "exit 9"]);
    d.ask(&format!("create cs {}", b.display())).ok();
    d.kill9();
    d.restart();
    assert_eq!(status(&d, "cs"), "created");
    d.ask("start cs").ok();
    assert_eq!(d.ask("wait cs").ok(), "exit=9");
    clean_slate(&d);
}

#[test]
fn restart_while_a_container_exits() {
    let mut d = Daemon::start();
    let b = d.bundle("s", &["sh", "-c", "sleep 0.3; exit 5"]);
    d.ask(&format!("run ex {}", b.display())).ok();
    let init = read_pid(&d.state.join("ex/init/pid"));
    d.kill9();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(init) || d.state.join("ex/init/exitStatus").metadata().is_err() {
        assert!(Instant::now() < deadline, "the container did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    d.restart();
    assert_eq!(d.ask("wait ex").ok(), "exit=5");
    let mut sub = d.conn();
    sub.send("events since=0 id=ex");
    let kinds: Vec<String> = (0..3)
        .map(|_| fields(&sub.line())["type"].clone())
        .collect();
    assert_eq!(kinds, ["create", "start", "exit"], "the exit event, once");
    assert!(!sub.has_input());
    clean_slate(&d);
}

#[test]
fn restart_during_delete() {
    let mut d = Daemon::start();
    let faults = d.faulty_runtime();
    let b = d.bundle("s", &["sleep", "1000"]);
    d.ask(&format!("run del {} {}", b.display(), faults.option()))
        .ok();
    faults.set("delete", Fault::Gate);
    d.conn().send("delete del force");
    d.eventually("the delete to reach the runtime", || {
        d.ask("state del").last.starts_with("OK")
            && d.ask("delete del").last.starts_with("ERR busy")
    });
    d.kill9();
    d.restart();
    assert_eq!(status(&d, "del"), "running");
    consistent(&d);
    // The old daemon's runtime delete goes through now: the new daemon
    // sees the container die, and can delete what is left.
    faults.clear("delete");
    faults.open_gate("delete");
    assert_eq!(d.ask("wait del").ok(), "exit=137");
    d.ask("delete del").ok();
    clean_slate(&d);
}

/// A small deterministic generator for the restart rounds.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn twenty_rounds_of_kill_dash_nine_at_random_moments() {
    let mut d = Daemon::start();
    let sleeper = d.bundle("sleep", &["sleep", "1000"]);
    let quick = d.bundle("quick", &["sh", "-c", "exit 4"]);
    let mut rng = Lcg(0x5eed);
    // The exit codes each container may truly have: a sleeper only dies by
    // a forced delete's SIGKILL; the quick one exits 4, unless a forced
    // delete caught it still running.
    let mut allowed: HashMap<String, &[&str]> = HashMap::new();
    let (mut answered, mut carried, mut codes_checked) = (0, 0, 0);
    for round in 0..20 {
        // Requests in flight, some answered, some not, when the daemon dies.
        let mut conns: Vec<(String, Conn)> = Vec::new();
        for i in 0..4 {
            let id = format!("r{round}c{i}");
            let (line, codes): (String, &[&str]) = match rng.next(4) {
                0 => (format!("create {id} {}", sleeper.display()), &["137"]),
                1 => (format!("run {id} {}", quick.display()), &["4", "137"]),
                _ => (format!("run {id} {}", sleeper.display()), &["137"]),
            };
            allowed.insert(id.clone(), codes);
            let mut c = d.conn();
            c.send(&line);
            conns.push((id, c));
        }
        let victim = d.listed().keys().next().cloned();
        if let Some(victim) = &victim {
            d.conn().send(&format!("delete {victim} force"));
        }
        std::thread::sleep(Duration::from_millis(rng.next(150)));
        d.kill9();
        d.restart();
        // Creates cut short finish or are cleaned up, by themselves.
        d.eventually("restored creates to settle", || {
            d.listed().len() == d.container_dirs().len()
        });
        consistent(&d);
        let now = d.listed();
        // Every container the old daemon said OK to is still there.
        for (id, mut c) in conns {
            if c.has_input() && c.answer().last.starts_with("OK") {
                answered += 1;
                assert!(now.contains_key(&id), "{id} was created, then lost");
                carried += 1;
            }
        }
        for (id, c) in &now {
            if c["status"] == "stopped" {
                let code = fields(&d.ask(&format!("state {id}")).data[0])["exit"].clone();
                assert!(allowed[id].contains(&code.as_str()), "{id}: exit {code}");
                codes_checked += 1;
            }
        }
        if round % 5 == 4 {
            clean_slate(&d);
            // An id used before the crashes is free again.
            let reused = format!("r{round}c0");
            d.ask(&format!("run {reused} {}", quick.display())).ok();
            assert_eq!(d.ask(&format!("wait {reused}")).ok(), "exit=4");
            d.ask(&format!("delete {reused}")).ok();
        }
    }
    clean_slate(&d);
    eprintln!(
        "20 kill -9 rounds: {answered} creates answered OK before the kill, {carried} of them \
         carried across; {codes_checked} exit codes checked after restarts, all true"
    );
}

#[test]
fn a_killed_shim_is_lost_and_its_container_removed() {
    let d = Daemon::start();
    let b = d.bundle("s", &["sleep", "1000"]);
    d.ask(&format!("run lost {}", b.display())).ok();
    let shim = read_pid(&d.state.join("lost/init/shim.pid"));
    let init = read_pid(&d.state.join("lost/init/pid"));
    let mut sub = d.conn();
    sub.send("events since=0 id=lost type=shim-lost");
    let mut waiter = d.conn();
    waiter.send("wait lost");
    std::process::Command::new("kill")
        .args(["-KILL", &shim.to_string()])
        .status()
        .unwrap();

    let e = fields(&sub.line());
    assert_eq!(
        (e["type"].as_str(), e["proc"].as_str()),
        ("shim-lost", "init")
    );
    assert!(waiter.answer().err_code("state").contains("lost"));
    assert_eq!(status(&d, "lost"), "unknown");
    d.eventually("the runtime to delete the container", || {
        d.runtime_ids().is_empty()
    });
    d.eventually("the container's init to be gone", || !alive(init));
    d.ask("delete lost").ok();
    clean_slate(&d);
}

#[test]
fn a_hanging_create_times_out_and_leaves_nothing() {
    let d = Daemon::start_with(Runtime::Runc, &["--start-timeout", "2"]);
    let faults = d.faulty_runtime();
    faults.set("create", Fault::Hang);
    faults.set("run", Fault::Hang);
    let b = d.bundle("s", &["sleep", "1000"]);
    for verb in ["create", "run"] {
        let mut c = d.conn();
        let started = Instant::now();
        c.send(&format!("{verb} hang {} {}", b.display(), faults.option()));
        // Others are served meanwhile.
        assert!(d.ask("hello").ok().starts_with("nanoctr"));
        let msg = c.answer().err_code("timeout").to_string();
        assert!(msg.contains("create") && msg.contains("2 s"), "{msg}");
        assert!(started.elapsed() >= Duration::from_secs(2));
        d.eventually("the cleanup to finish", || !d.state.join("hang").exists());
        assert!(d.runtime_ids().is_empty());
        d.eventually("the shim and the hung runtime to be gone", || {
            d.shims().is_empty()
        });
    }
}

#[test]
fn a_hanging_start_times_out_and_the_container_is_removed_from_the_runtime() {
    let d = Daemon::start_with(Runtime::Runc, &["--start-timeout", "2"]);
    let faults = d.faulty_runtime();
    faults.set("start", Fault::Hang);
    let b = d.bundle("s", &["sleep", "1000"]);
    d.ask(&format!("create hs {} {}", b.display(), faults.option()))
        .ok();
    d.ask("start hs").err_code("timeout");
    d.eventually("the container to be deleted in the runtime", || {
        d.runtime_ids().is_empty()
    });
    assert_eq!(status(&d, "hs"), "unknown");
    d.ask("delete hs").ok();
    clean_slate(&d);
}

#[test]
fn a_hanging_kill_times_out_and_the_container_is_untouched() {
    let d = Daemon::start_with(Runtime::Runc, &["--start-timeout", "2"]);
    let faults = d.faulty_runtime();
    let b = d.bundle("s", &["sleep", "1000"]);
    d.ask(&format!("run hk {} {}", b.display(), faults.option()))
        .ok();
    faults.set("kill", Fault::Hang);
    assert!(d.ask("kill hk KILL").err_code("timeout").contains("kill"));
    assert_eq!(status(&d, "hk"), "running");
    faults.clear("kill");
    d.ask("kill hk KILL").ok();
    assert_eq!(d.ask("wait hk").ok(), "exit=137");
    clean_slate(&d);
}

#[test]
fn a_crashing_or_babbling_runtime_is_a_clear_error() {
    let d = Daemon::start();
    let faults = d.faulty_runtime();
    let b = d.bundle("s", &["sleep", "1000"]);
    for verb in ["create", "run"] {
        let line = format!("{verb} cr {} {}", b.display(), faults.option());
        faults.set(verb, Fault::Crash);
        let msg = d.ask(&line).err_code("runtime").to_string();
        assert!(msg.contains("exited with status 139"), "{msg}");
        faults.set(verb, Fault::Garbage);
        let msg = d.ask(&line).err_code("runtime").to_string();
        assert!(msg.contains("exited with status 1"), "{msg}");
        faults.clear(verb);
        assert!(d.container_dirs().is_empty());
        assert!(d.runtime_ids().is_empty());
    }

    d.ask(&format!("run cr {} {}", b.display(), faults.option()))
        .ok();
    faults.set("delete", Fault::Garbage);
    d.ask("delete cr force").err_code("runtime");
    assert_eq!(
        status(&d, "cr"),
        "running",
        "a failed delete leaves the container as it was"
    );
    faults.clear("delete");
    clean_slate(&d);
}

#[test]
fn a_full_state_dir_is_an_error_until_space_is_freed() {
    let d = Daemon::launch(
        Runtime::Runc,
        Launch {
            state_tmpfs_kib: Some(256),
            ..Launch::default()
        },
    );
    let filler = d.fill_state_dir();
    let b = d.bundle("s", &["true"]);
    let answer = d.ask(&format!("run full {}", b.display()));
    let (code, msg) = answer.err();
    assert!(code == "full" || code == "runtime", "{code} {msg}");
    assert!(msg.contains("space") || msg.contains("ENOSPC"), "{msg}");
    assert!(d.ask("hello").ok().starts_with("nanoctr"));
    assert!(d.container_dirs().is_empty());
    std::fs::remove_file(&filler).unwrap();
    d.ask(&format!("run full {}", b.display())).ok();
    assert_eq!(d.ask("wait full").ok(), "exit=0");
    clean_slate(&d);
}

#[test]
fn out_of_file_descriptors_is_busy_and_passes() {
    let d = Daemon::launch(
        Runtime::Runc,
        Launch {
            flags: vec!["--max-clients".into(), "200".into()],
            prefix: vec!["prlimit".into(), "--nofile=40:4096".into(), "--".into()],
            ..Launch::default()
        },
    );
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let mut c = d.conn();
        c.send("hello");
        let a = c.answer();
        if a.last.starts_with("ERR busy") {
            refused += 1;
        } else {
            a.ok();
            held.push(c);
        }
    }
    assert!(refused > 0, "no client was refused at 40 descriptors");
    assert!(held.len() > 20);
    drop(held);
    d.eventually("descriptors to be free again", || {
        d.ask("hello").last.starts_with("OK")
    });
    let b = d.bundle("s", &["true"]);
    d.ask(&format!("run fd {}", b.display())).ok();
    assert_eq!(d.ask("wait fd").ok(), "exit=0");
    clean_slate(&d);
}

#[test]
fn oom_score_adj_protects_supervisors_not_containers() {
    // Lowering oom_score_adj needs CAP_SYS_RESOURCE, which a test sandbox
    // may lack; raising does not, so positive values show the mechanism.
    let d = Daemon::start_with(
        Runtime::Runc,
        &["--oom-score-adj", "100", "--shim-oom-score-adj", "200"],
    );
    let b = d.bundle("s", &["sleep", "1000"]);
    d.ask(&format!("run adj {}", b.display())).ok();
    let adj = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(adj(d.pid()), "100");
    assert_eq!(adj(read_pid(&d.state.join("adj/init/shim.pid"))), "200");
    assert_eq!(adj(read_pid(&d.state.join("adj/init/pid"))), "0");
    clean_slate(&d);
}

#[test]
fn an_unreadable_record_makes_the_container_unknown_not_the_daemon_crash() {
    let mut d = Daemon::start();
    let b = d.bundle("s", &["sleep", "1000"]);
    d.ask(&format!("run torn {}", b.display())).ok();
    d.kill9();
    std::fs::write(
        d.state.join("torn/container"),
        "id=torn bundle=\"/unterminated",
    )
    .unwrap();
    d.restart();
    assert_eq!(status(&d, "torn"), "unknown");
    d.ask("delete torn").ok();
    clean_slate(&d);
}
