//! Exec processes: an extra process in a running container, with its own
//! shim, through real runc (and crun).

use nanoctr_tests::{alive, fields, Daemon, Runtime};

/// A running container `id` whose init sleeps.
fn sleeper(d: &Daemon, id: &str) -> u32 {
    let b = d.bundle(id, &["sleep", "1000"]);
    let pid = d.ask(&format!("run {id} {}", b.display())).ok_field("pid");
    pid.parse().unwrap()
}

/// The text lines of `logs ID PROC`.
fn logs(d: &Daemon, id: &str, proc: &str) -> Vec<String> {
    d.ask(&format!("logs {id} {proc}"))
        .data
        .iter()
        .map(|l| l.strip_prefix("| ").unwrap_or(l).to_string())
        .collect()
}

/// The retained events matching `filter` (`id=... type=...`): the replay
/// of a subscription from the start, read until it goes quiet.
fn history(d: &Daemon, filter: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut sub = d.conn();
    sub.send(&format!("events since=0 {filter}"));
    let mut out = Vec::new();
    let mut quiet = 0;
    while quiet < 4 {
        if sub.has_input() {
            out.push(fields(&sub.line()));
            quiet = 0;
        } else {
            std::thread::sleep(std::time::Duration::from_millis(50));
            quiet += 1;
        }
    }
    out
}

/// The exec processes `state` lists, by name.
fn procs(d: &Daemon, id: &str) -> Vec<std::collections::HashMap<String, String>> {
    d.ask(&format!("state {id}")).data[1..]
        .iter()
        .map(|l| fields(l))
        .collect()
}

#[test]
fn exec_echo_gives_its_output_and_exit_status() {
    let d = Daemon::start();
    sleeper(&d, "c1");
    let mut events = d.conn();
    events.send("events since=0 id=c1 type=exec-added");
    let pid = d
        .ask("exec c1 e1 -- sh -c \"echo hello from exec; exit 3\"")
        .ok_field("pid");
    assert!(pid.parse::<u32>().unwrap() > 0);
    assert_eq!(d.ask("wait c1 e1").ok(), "exit=3");
    // Answered from the record once exited.
    assert_eq!(d.ask("wait c1 e1").ok(), "exit=3");
    assert_eq!(logs(&d, "c1", "e1"), ["hello from exec"]);
    let added = fields(&events.line());
    assert_eq!(
        (added["proc"].as_str(), added["pid"].as_str()),
        ("e1", pid.as_str())
    );
    let exits = history(&d, "id=c1 type=exit");
    let exit = exits
        .iter()
        .find(|f| f.get("proc").is_some_and(|p| p == "e1"));
    assert_eq!(exit.expect("an exit event for e1")["status"], "3");
    let p = &procs(&d, "c1")[0];
    assert_eq!(
        (p["proc"].as_str(), p["status"].as_str(), p["exit"].as_str()),
        ("e1", "stopped", "3")
    );
    // The init is untouched.
    assert_eq!(fields(&d.ask("state c1").data[0])["status"], "running");
    // The name can be used again once the process has exited.
    d.ask("exec c1 e1 -- true").ok();
    assert_eq!(d.ask("wait c1 e1").ok(), "exit=0");
    assert_eq!(procs(&d, "c1").len(), 1);
}

#[test]
fn exec_needs_a_running_container() {
    let d = Daemon::start();
    let b = d.bundle("quick", &["true"]);
    d.ask(&format!("run done {}", b.display())).ok();
    d.ask("wait done").ok();
    let m = d.ask("exec done p -- true").err_code("state").to_string();
    assert!(m.contains("stopped"), "{m}");
    let b = d.bundle("idle", &["sleep", "100"]);
    d.ask(&format!("create fresh {}", b.display())).ok();
    d.ask("exec fresh p -- true").err_code("state");
    d.ask("exec ghost p -- true").err_code("not-found");
    // Nothing was made for the refused requests.
    assert!(!d.state.join("done/p").exists() && !d.state.join("fresh/p").exists());
}

#[test]
fn env_cwd_and_user_reach_the_process() {
    let d = Daemon::start();
    sleeper(&d, "c3");
    d.ask(
        "exec c3 who env=GREETING=hi env=TERM=dumb cwd=/proc user=1000:1001 -- \
         sh -c \"echo $GREETING $TERM; pwd; id -u; id -g; echo $PATH\"",
    )
    .ok();
    assert_eq!(d.ask("wait c3 who").ok(), "exit=0");
    // TERM replaces the bundle's; PATH is still the bundle's.
    assert_eq!(
        logs(&d, "c3", "who"),
        ["hi dumb", "/proc", "1000", "1001", "/bin"]
    );
}

#[test]
fn killing_an_exec_process_leaves_the_init_running() {
    let d = Daemon::start();
    let init = sleeper(&d, "c4");
    let pid: u32 = d
        .ask("exec c4 s1 -- sleep 1000")
        .ok_field("pid")
        .parse()
        .unwrap();
    assert!(alive(pid));
    let mut waiter = d.conn();
    waiter.send("wait c4 s1");
    d.ask("kill c4 KILL proc=s1").ok();
    assert_eq!(waiter.answer().ok(), "exit=137");
    assert!(alive(init));
    assert_eq!(fields(&d.ask("state c4").data[0])["status"], "running");
    // An exited process cannot be signalled; an unknown one is not found.
    d.ask("kill c4 KILL proc=s1").err_code("state");
    d.ask("kill c4 KILL proc=nope").err_code("not-found");
    d.ask("wait c4 nope").err_code("not-found");
}

#[test]
fn kill_all_reaches_every_process() {
    let d = Daemon::start();
    sleeper(&d, "c5");
    d.ask("exec c5 s1 -- sleep 1000").ok();
    let mut init = d.conn();
    init.send("wait c5");
    d.ask("kill c5 KILL all").ok();
    assert_eq!(init.answer().ok(), "exit=137");
    assert_eq!(d.ask("wait c5 s1").ok(), "exit=137");
}

#[test]
fn a_name_in_use_and_bad_requests_are_refused() {
    let d = Daemon::start();
    sleeper(&d, "c6");
    d.ask("exec c6 s1 -- sleep 1000").ok();
    d.ask("exec c6 s1 -- true").err_code("exists");
    for bad in [
        "exec c6",
        "exec c6 p",
        "exec c6 p true",
        "exec c6 p --",
        "exec c6 init -- true",
        "exec c6 ../p -- true",
        "exec c6 p cwd=relative -- true",
        "exec c6 p user=nobody -- true",
        "exec c6 p bogus -- true",
    ] {
        d.ask(bad).err_code("invalid");
    }
    // A command the runtime cannot run: ERR runtime, and no trace.
    let m = d
        .ask("exec c6 p -- /no/such/program")
        .err_code("runtime")
        .to_string();
    assert!(m.contains("no such file") || m.contains("not found"), "{m}");
    assert!(!d.state.join("c6/p").exists());
    assert_eq!(procs(&d, "c6").len(), 1);
}

#[test]
fn a_full_exec_table_reuses_the_room_of_exited_ones() {
    let d = Daemon::start_with(Runtime::Runc, &["--max-execs", "2"]);
    sleeper(&d, "c7");
    d.ask("exec c7 a -- true").ok();
    d.ask("wait c7 a").ok();
    d.ask("exec c7 b -- sleep 1000").ok();
    // a has exited: its room goes to x.
    d.ask("exec c7 x -- sleep 1000").ok();
    let names: Vec<String> = procs(&d, "c7").iter().map(|p| p["proc"].clone()).collect();
    assert_eq!(names, ["b", "x"]);
    assert!(!d.state.join("c7/a").exists());
    let m = d.ask("exec c7 d -- true").err_code("full").to_string();
    assert!(m.contains("--max-execs"), "{m}");
}

#[test]
fn a_terminal_exec_is_attached_and_resized() {
    let d = Daemon::start();
    sleeper(&d, "c8");
    d.ask("exec c8 t terminal cols=100 rows=30 -- sh").ok();
    let mut s = d.attach_proc("c8", "t");
    s.send(b"stty size; echo done-$((40+2))\n");
    s.expect("30 100");
    s.expect("done-42");
    d.ask("resize c8 t 120 40").ok();
    s.send(b"stty size\n");
    s.expect("40 120");
    // The ^D that closestdin types must reach the shell at its prompt: one
    // typed while stty still runs goes to the terminal in its cooked mode,
    // and the shell's line editor, switching to raw mode, never sees it.
    s.expect("# ");
    d.ask("closestdin c8 t").ok();
    assert_eq!(d.ask("wait c8 t").ok(), "exit=0");
    d.ask("attach c8 t").err_code("state");
}

#[test]
fn interactive_exec_reads_what_is_sent() {
    let d = Daemon::start();
    sleeper(&d, "c9");
    d.ask("exec c9 cat interactive -- cat").ok();
    let mut s = d.attach_proc("c9", "cat");
    s.send(b"through the pipe\n");
    s.expect("through the pipe");
    d.ask("closestdin c9 cat").ok();
    assert_eq!(d.ask("wait c9 cat").ok(), "exit=0");
    assert_eq!(logs(&d, "c9", "cat"), ["through the pipe"]);
}

#[test]
fn the_client_runs_exec_like_a_command() {
    let d = Daemon::start();
    sleeper(&d, "c10");
    let out = d.nanoctr(&[
        "exec",
        "c10",
        "x",
        "--",
        "sh",
        "-c",
        "echo one; echo two; exit 4",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\n");
    assert_eq!(out.status.code(), Some(4));
    let out = d.nanoctr(&["exec", "-d", "c10", "y", "--", "sleep", "1000"]);
    assert!(out.status.success(), "{out:?}");
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(pid.starts_with("pid="), "{pid}");
    let ps = d.nanoctr(&["ps", "c10"]);
    assert!(
        String::from_utf8_lossy(&ps.stdout).contains(&format!("{pid} proc=y")),
        "{ps:?}"
    );
    let out = d.nanoctr(&["exec", "c10", "x", "--", "true"]);
    assert_eq!(out.status.code(), Some(0));
    let out = d.nanoctr(&["exec", "ghost", "x", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn delete_force_waits_for_every_shim() {
    let d = Daemon::start();
    sleeper(&d, "c11");
    let pid: u32 = d
        .ask("exec c11 s -- sleep 1000")
        .ok_field("pid")
        .parse()
        .unwrap();
    let mut waiter = d.conn();
    waiter.send("wait c11 s");
    d.ask("delete c11 force").ok();
    assert_eq!(waiter.answer().ok(), "exit=137");
    assert!(!alive(pid));
    assert!(d.shims().is_empty(), "{:?}", d.shims());
    assert!(d.container_dirs().is_empty());
    d.ask("state c11").err_code("not-found");
}

#[test]
fn execs_survive_a_daemon_restart() {
    let mut d = Daemon::start();
    sleeper(&d, "c12");
    d.ask("exec c12 long -- sleep 1000").ok();
    d.ask("exec c12 soon -- sh -c \"sleep 0.5; exit 6\"").ok();
    d.ask("exec c12 done -- sh -c \"exit 2\"").ok();
    d.ask("wait c12 done").ok();
    d.kill9();
    // `soon` exits while no daemon is there.
    d.await_exit_status("c12", "soon");
    d.restart();
    let by_name = |d: &Daemon| {
        procs(d, "c12")
            .into_iter()
            .map(|p| (p["proc"].clone(), p))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let p = by_name(&d);
    assert_eq!(p["long"]["status"], "running");
    assert_eq!(
        (p["soon"]["status"].as_str(), p["soon"]["exit"].as_str()),
        ("stopped", "6")
    );
    assert_eq!(p["done"]["exit"], "2");
    assert_eq!(d.ask("wait c12 soon").ok(), "exit=6");
    // The exit that happened while the daemon was away is an event, once.
    let exits = history(&d, "id=c12 type=exit");
    let soon = exits
        .iter()
        .filter(|f| f.get("proc").is_some_and(|p| p == "soon"));
    assert_eq!(soon.count(), 1, "{exits:?}");
    // The restarted daemon still supervises the running one.
    let mut waiter = d.conn();
    waiter.send("wait c12 long");
    d.ask("kill c12 TERM proc=long").ok();
    assert_eq!(waiter.answer().ok(), "exit=143");
}

#[test]
fn exec_with_crun() {
    let d = Daemon::start_with(Runtime::Crun, &[]);
    sleeper(&d, "c13");
    d.ask("exec c13 e env=X=crun -- sh -c \"echo via $X; exit 5\"")
        .ok();
    assert_eq!(d.ask("wait c13 e").ok(), "exit=5");
    assert_eq!(logs(&d, "c13", "e"), ["via crun"]);
}
