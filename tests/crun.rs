//! The same lifecycle with crun: the daemon drives any runtime with runc's
//! command line.

use nanoctr_tests::{alive, read_pid, Daemon, Runtime};

#[test]
fn a_container_runs_with_crun() {
    let d = Daemon::start_with(Runtime::Crun, &[]);
    let b = d.bundle("c", &["sh", "-c", "echo crun says hi; exit 9"]);
    let out = d.dir.join("crun.out");
    d.ask(&format!("run c {} stdout={}", b.display(), out.display()))
        .ok();
    assert_eq!(d.ask("wait c").ok(), "exit=9");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "crun says hi\n");
    d.ask("delete c").ok();
    assert!(d.runtime_ids().is_empty());
}

#[test]
fn crun_kill_and_forced_delete() {
    let d = Daemon::start_with(Runtime::Crun, &[]);
    let b = d.bundle("s", &["sleep", "1000"]);
    d.ask(&format!("run s {}", b.display())).ok();
    let shim = read_pid(&d.state.join("s/init/shim.pid"));
    d.ask("kill s KILL").ok();
    assert_eq!(d.ask("wait s").ok(), "exit=137");
    d.ask(&format!("run s2 {}", b.display())).ok();
    d.ask("delete s2 force").ok();
    d.ask("delete s").ok();
    assert!(d.runtime_ids().is_empty());
    assert!(!alive(shim));
    assert_eq!(d.container_dirs().len(), 0);
}

#[test]
fn a_crun_failure_carries_cruns_message() {
    let d = Daemon::start_with(Runtime::Crun, &[]);
    let b = d.bundle("bad", &["/no/such/program"]);
    let msg = d
        .ask(&format!("run bad {}", b.display()))
        .err_code("runtime")
        .to_string();
    assert!(msg.contains("/no/such/program"), "{msg}");
    assert!(d.runtime_ids().is_empty());
    assert!(!d.state.join("bad").exists());
}
