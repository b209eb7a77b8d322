//! Every task handler driven through the recording fake (`server/fake.rs`):
//! each request from the socket to the effects it asks for and back, and
//! at each step a runtime that fails, a call that runs out of time and a
//! shim that is lost. The same paths run with real runc and crun in the
//! integration tests; these reach the failures a real runtime cannot be
//! made to produce on demand, without root.

use std::time::{Duration, Instant};

use crate::bundle::json;
use crate::server::container::OpKind;
use crate::server::effects::Target;
use crate::server::fake::{Effect, Fault, Rig};

/// Moves every deadline of what is in progress past `--start-timeout`.
fn overdue(rig: &mut Rig) {
    let past = Instant::now() - Duration::from_secs(60);
    for r in rig.d.containers.refs_where(|_| true) {
        if let Some(op) = rig.d.containers.get_mut(r).and_then(|c| c.op.as_mut()) {
            op.since = past;
        }
    }
    for e in rig.d.execs.refs_where(|_| true) {
        rig.d.execs.get_mut(e).unwrap().since = past;
    }
    for r in rig.d.calls.refs_where(|_| true) {
        rig.d.calls.get_mut(r).unwrap().since = past;
    }
}

fn shim_killed(rig: &Rig) -> bool {
    let pid = rig.d.fx.shims.last().unwrap().pid;
    rig.d.fx.done.contains(&Effect::Signal {
        target: Target::Group(pid),
        signal: libc::SIGKILL,
    })
}

#[test]
fn create_start_exit_wait() {
    let mut rig = Rig::new("life");
    rig.created("a", 42);
    assert_eq!(rig.state("a", "status"), "created");
    let shim = rig.d.fx.shims.last().unwrap();
    assert_eq!(
        rig.d.fx.done[..2],
        [
            Effect::Write {
                path: rig.d.state.container("a").join("container")
            },
            Effect::Shim {
                dir: shim.dir.clone(),
                make: "Create".into()
            },
        ]
    );
    rig.send("start a");
    rig.settle();
    assert_eq!(rig.d.fx.control_lines(), ["start"]);
    rig.d.fx.shim().reply("started");
    assert_eq!(rig.answer(), ["OK pid=42"]);
    assert_eq!(rig.state("a", "status"), "running");
    rig.send("wait a");
    assert!(!rig.answered(), "wait answers only at the exit");
    rig.d.fx.shim().exit(3);
    assert_eq!(rig.answer(), ["OK exit=3"]);
    assert_eq!(rig.state("a", "status"), "stopped");
    assert_eq!(rig.state("a", "exit"), "3");
    assert_eq!(rig.events("a", "init"), ["create", "start", "exit"]);
    assert!(rig.d.fx.calls().is_empty(), "no runtime call was needed");
}

#[test]
fn run_is_created_and_started_by_the_shim() {
    let mut rig = Rig::new("run");
    rig.send(&format!("run r {}", rig.bundle.display()));
    rig.settle();
    let make = match &rig.d.fx.done[1] {
        Effect::Shim { make, .. } => make.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(make, "Run");
    rig.d.fx.shim().say("created 7");
    assert!(!rig.answered(), "run answers once started");
    rig.d.fx.shim().reply("started");
    assert_eq!(rig.answer(), ["OK pid=7"]);
    assert_eq!(rig.state("r", "status"), "running");
}

#[test]
fn a_failed_create_is_deleted_then_answered() {
    let mut rig = Rig::new("createfail");
    rig.send(&format!("create f {}", rig.bundle.display()));
    rig.settle();
    // The shim says the runtime failed; its message is in `log.json`.
    let log = rig.d.state.process("f").join("log.json");
    let record = r#"{"level":"error","msg":"runc: exec format error","time":"x"}"#;
    std::fs::write(
        &log,
        format!("{{\"level\":\"info\",\"msg\":\"hi\"}}\n{record}\n"),
    )
    .unwrap();
    rig.d.fx.shim().say("failed create 1");
    assert!(!rig.answered(), "the runtime deletes what it made first");
    rig.call_ends("delete --force f", 0);
    assert_eq!(rig.answer(), ["ERR runtime runc: exec format error"]);
    assert!(rig.ask("state f").starts_with("ERR not-found"));
    assert!(!rig.d.state.container("f").exists(), "nothing is left");
}

#[test]
fn a_shim_lost_during_create() {
    let mut rig = Rig::new("createlost");
    rig.send(&format!("create l {}", rig.bundle.display()));
    rig.settle();
    rig.d.fx.shim().vanish();
    rig.settle();
    rig.call_ends("delete --force l", 0);
    assert_eq!(
        rig.answer(),
        ["ERR runtime the shim exited before reporting the create"]
    );
    assert!(!rig.d.state.container("l").exists());
}

#[test]
fn a_create_that_runs_out_of_time() {
    let mut rig = Rig::new("createlate");
    rig.send(&format!("create t {}", rig.bundle.display()));
    rig.settle();
    overdue(&mut rig);
    rig.settle();
    assert!(
        shim_killed(&rig),
        "the shim and its runtime call are killed"
    );
    rig.call_ends("delete --force t", 0);
    let answer = rig.answer().pop().unwrap();
    assert!(answer.starts_with("ERR timeout runtime create did not finish within 5 s"));
    assert!(!rig.d.state.container("t").exists());
}

#[test]
fn a_create_whose_shim_cannot_start_or_whose_disk_is_full() {
    let mut rig = Rig::new("createfx");
    rig.d.fx.faults.push(Fault::Shim);
    let answer = rig.ask(&format!("create s {}", rig.bundle.display()));
    assert!(
        answer.starts_with("ERR busy cannot start the shim"),
        "{answer}"
    );
    assert!(!rig.d.state.container("s").exists());
    rig.d.fx.faults.push(Fault::Write);
    let answer = rig.ask(&format!("create s {}", rig.bundle.display()));
    assert!(
        answer.starts_with("ERR full cannot start the shim"),
        "{answer}"
    );
    assert!(!rig.d.state.container("s").exists());
    assert!(
        rig.d.fx.shims.is_empty(),
        "no shim for a record not written"
    );
    // Nothing of either stays in the way.
    rig.created("s", 5);
}

#[test]
fn a_start_that_fails_leaves_the_container_created() {
    let mut rig = Rig::new("startfail");
    rig.created("a", 42);
    rig.send("start a");
    rig.settle();
    rig.d.fx.shim().reply("error open /dev/null: EMFILE");
    assert_eq!(rig.answer(), ["ERR runtime open /dev/null: EMFILE"]);
    assert_eq!(rig.state("a", "status"), "created");
    // A runtime that failed and left no message: its status is told.
    rig.send("start a");
    rig.settle();
    rig.d.fx.shim().reply("failed start 3");
    assert_eq!(
        rig.answer(),
        ["ERR runtime runtime start exited with status 3"]
    );
    // One that left its message in `log.json` (crun's spacing).
    let log = rig.d.state.process("a").join("log.json");
    let record = r#"{"msg": "crun: cannot start", "level": "error", "time": "x"}"#;
    std::fs::write(&log, format!("{record}\n")).unwrap();
    rig.send("start a");
    rig.settle();
    rig.d.fx.shim().reply("failed start 1");
    assert_eq!(rig.answer(), ["ERR runtime crun: cannot start"]);
    assert_eq!(rig.state("a", "status"), "created");
    // A shim that does not read its control fifo any more.
    rig.d.fx.faults.push(Fault::Fifo);
    let answer = rig.ask("start a");
    assert!(
        answer.starts_with("ERR internal cannot reach the shim"),
        "{answer}"
    );
}

#[test]
fn a_start_that_runs_out_of_time_or_loses_its_shim() {
    let mut rig = Rig::new("startlate");
    rig.created("a", 42);
    rig.send("start a");
    rig.settle();
    overdue(&mut rig);
    let answer = rig.answer().pop().unwrap();
    assert!(answer.starts_with("ERR timeout runtime start did not finish"));
    assert!(shim_killed(&rig));
    // The killed shim goes: the container is lost and deleted.
    rig.d.fx.shim().vanish();
    rig.settle();
    assert_eq!(rig.state("a", "status"), "unknown");
    assert_eq!(rig.events("a", "init"), ["create", "shim-lost"]);
    rig.call_ends("delete --force a", 0);

    rig.created("b", 43);
    rig.send("start b");
    rig.settle();
    rig.d.fx.shim().vanish();
    assert_eq!(
        rig.answer(),
        ["ERR runtime the shim exited before answering start"]
    );
}

#[test]
fn a_shim_lost_while_running() {
    let mut rig = Rig::new("runlost");
    rig.running("a", 42);
    rig.send("wait a");
    rig.settle();
    rig.d.fx.shim().vanish();
    let answer = rig.answer().pop().unwrap();
    assert!(
        answer.starts_with("ERR state the shim was lost"),
        "{answer}"
    );
    assert_eq!(rig.state("a", "status"), "unknown");
    assert_eq!(rig.events("a", "init"), ["create", "start", "shim-lost"]);
    // What is left of it could no longer be supervised.
    assert!(rig
        .d
        .fx
        .calls()
        .iter()
        .any(|(_, a)| a == "delete --force a"));
}

#[test]
fn kill_through_the_runtime() {
    let mut rig = Rig::new("kill");
    rig.running("a", 42);
    rig.send("kill a");
    rig.settle();
    rig.call_ends("kill a 15", 0);
    assert_eq!(rig.answer(), ["OK"]);
    rig.send("kill a 9 all");
    rig.settle();
    rig.call_ends("kill --all a 9", 1);
    let answer = rig.answer().pop().unwrap();
    assert!(answer.starts_with("ERR runtime runtime kill exited with status 1"));
    rig.d.fx.faults.push(Fault::Call);
    let answer = rig.ask("kill a");
    assert!(
        answer.starts_with("ERR internal cannot run /bin/true"),
        "{answer}"
    );
    // A call that runs out of time is killed, and says so.
    rig.send("kill a");
    rig.settle();
    overdue(&mut rig);
    rig.settle();
    let (pid, _) = rig.d.fx.calls().pop().unwrap();
    assert!(rig.d.fx.done.contains(&Effect::Signal {
        target: Target::Process(pid),
        signal: libc::SIGKILL,
    }));
    rig.call_ends("kill a 15", 137);
    let answer = rig.answer().pop().unwrap();
    assert!(
        answer.starts_with("ERR timeout runtime kill did not finish"),
        "{answer}"
    );
}

#[test]
fn delete_waits_for_the_runtime_and_the_shim() {
    let mut rig = Rig::new("delete");
    rig.running("a", 42);
    assert!(
        rig.ask("delete a").starts_with("ERR state"),
        "running needs force"
    );
    rig.send("delete a force");
    rig.settle();
    rig.call_ends("delete --force a", 1);
    let answer = rig.answer().pop().unwrap();
    assert!(answer.starts_with("ERR runtime"), "{answer}");
    assert!(rig.d.state.container("a").exists());
    rig.send("delete a force");
    rig.settle();
    rig.call_ends("delete --force a", 0);
    assert!(!rig.answered(), "the shim is still there");
    rig.d.fx.shim().exit(137);
    assert_eq!(rig.answer(), ["OK"]);
    assert!(!rig.d.state.container("a").exists());
    assert!(rig.ask("state a").starts_with("ERR not-found"));
    let all = rig.all_events("a");
    assert_eq!(all, ["create", "start", "exit", "delete"]);
}

#[test]
fn pause_resume_update_through_the_runtime() {
    let mut rig = Rig::new("ops");
    rig.running("a", 42);
    rig.send("pause a");
    rig.settle();
    rig.call_ends("pause a", 0);
    assert_eq!(rig.answer(), ["OK"]);
    assert_eq!(rig.state("a", "status"), "paused");
    rig.send("resume a");
    rig.settle();
    rig.call_ends("resume a", 1);
    let answer = rig.answer().pop().unwrap();
    assert!(answer.starts_with("ERR runtime runtime resume exited with status 1"));
    assert_eq!(
        rig.state("a", "status"),
        "paused",
        "a failed resume changes nothing"
    );
    rig.send("resume a");
    rig.settle();
    rig.call_ends("resume a", 0);
    assert_eq!(rig.answer(), ["OK"]);
    assert_eq!(rig.state("a", "status"), "running");
    rig.send("update a memory=67108864 pids=10");
    rig.settle();
    let (_, args) = rig.d.fx.calls().pop().unwrap();
    assert!(
        args.starts_with("update ") && args.ends_with(" a"),
        "{args}"
    );
    assert!(args.contains("--memory 67108864") && args.contains("--pids-limit 10"));
    rig.call_ends(&args, 0);
    assert_eq!(rig.answer(), ["OK"]);
}

#[test]
fn checkpoint_through_the_runtime() {
    let mut rig = Rig::new("checkpoint");
    rig.running("a", 42);
    rig.send("checkpoint a one");
    rig.settle();
    let (_, args) = rig.d.fx.calls().pop().unwrap();
    assert!(args.starts_with("checkpoint --image-path ") && args.ends_with(" a"));
    rig.call_ends(&args, 1);
    let answer = rig.answer().pop().unwrap();
    assert!(answer.starts_with("ERR runtime"), "{answer}");
    assert_eq!(rig.state("a", "status"), "running");
    rig.send("checkpoint a one");
    rig.settle();
    let (_, args) = rig.d.fx.calls().pop().unwrap();
    rig.call_ends(&args, 0);
    assert!(rig.answer().pop().unwrap().starts_with("OK"));
    assert_eq!(rig.state("a", "status"), "running");
}

#[test]
fn exec_made_exited_and_waited_for() {
    let mut rig = Rig::new("exec");
    rig.running("a", 42);
    rig.send("exec a sh1 -- sh");
    rig.settle();
    let dir = rig.d.state.container("a").join("sh1");
    assert!(matches!(
        rig.d.fx.done.iter().rev().find(|e| matches!(e, Effect::Shim { .. })),
        Some(Effect::Shim { make, .. }) if make.starts_with("Exec(")
    ));
    assert!(dir.join("process.json").is_file() && dir.join("exec").is_file());
    rig.d.fx.shim().say("created 77");
    assert_eq!(rig.answer(), ["OK pid=77"]);
    assert_eq!(rig.events("a", "sh1"), ["exec-added"]);
    rig.send("kill a 2 proc=sh1");
    assert_eq!(rig.answer(), ["OK"]);
    assert_eq!(rig.d.fx.control_lines().last().unwrap(), "kill 2");
    rig.send("wait a sh1");
    rig.settle();
    rig.d.fx.shim().exit(130);
    assert_eq!(rig.answer(), ["OK exit=130"]);
    assert_eq!(rig.events("a", "sh1"), ["exec-added", "exit"]);
    assert_eq!(rig.events("a", "init"), ["create", "start"]);
    assert_eq!(rig.state("a", "status"), "running", "the init runs on");
}

#[test]
fn exec_failures_leave_nothing() {
    let mut rig = Rig::new("execfail");
    rig.running("a", 42);
    let dir = rig.d.state.container("a").join("x");
    // The runtime refuses.
    rig.send("exec a x -- sh");
    rig.settle();
    rig.d.fx.shim().say("error runc: no such file");
    assert_eq!(rig.answer(), ["ERR runtime runc: no such file"]);
    assert!(!dir.exists());
    // The shim is lost before it reports.
    rig.send("exec a x -- sh");
    rig.settle();
    rig.d.fx.shim().vanish();
    assert_eq!(
        rig.answer(),
        ["ERR runtime the shim exited before reporting the exec"]
    );
    assert!(!dir.exists());
    // The runtime takes too long.
    rig.send("exec a x -- sh");
    rig.settle();
    overdue(&mut rig);
    let answer = rig.answer().pop().unwrap();
    assert!(answer.starts_with("ERR timeout runtime exec did not finish"));
    assert!(shim_killed(&rig));
    assert!(!dir.exists());
    // The shim cannot start, or the disk is full.
    rig.d.fx.faults.push(Fault::Shim);
    assert!(rig
        .ask("exec a x -- sh")
        .starts_with("ERR busy cannot start the shim"));
    rig.d.fx.faults.push(Fault::Write);
    assert!(rig
        .ask("exec a x -- sh")
        .starts_with("ERR full cannot start the shim"));
    assert!(!dir.exists());
    assert!(rig.d.execs.is_empty());
    assert!(rig.events("a", "x").is_empty());
}

#[test]
fn an_exec_whose_shim_is_lost() {
    let mut rig = Rig::new("execlost");
    rig.running("a", 42);
    rig.send("exec a x -- sh");
    rig.settle();
    rig.d.fx.shim().say("created 77");
    assert_eq!(rig.answer(), ["OK pid=77"]);
    rig.send("wait a x");
    rig.settle();
    rig.d.fx.shim().vanish();
    assert!(rig
        .answer()
        .pop()
        .unwrap()
        .starts_with("ERR state the shim was lost"));
    assert_eq!(rig.events("a", "x"), ["exec-added", "shim-lost"]);
    assert_eq!(rig.state("a", "status"), "running");
}

#[test]
fn a_restart_policy_makes_the_container_again() {
    let mut rig = Rig::new("restart");
    rig.send(&format!("run a {} restart=always", rig.bundle.display()));
    rig.settle();
    rig.d.fx.shim().say("created 42");
    rig.d.fx.shim().reply("started");
    assert_eq!(rig.answer(), ["OK pid=42"]);
    rig.d.fx.shim().exit(1);
    rig.settle();
    // Past its delay, the runtime deletes the old one, then a new shim
    // runs it in the same process dir.
    rig.settle_until_called("delete --force a");
    rig.call_ends("delete --force a", 0);
    assert_eq!(rig.d.fx.shims.len(), 2);
    assert!(rig
        .d
        .containers
        .iter()
        .any(|(_, c)| matches!(c.op.as_ref().map(|o| &o.kind), Some(OpKind::Create { .. }))));
    rig.d.fx.shim().say("created 43");
    rig.d.fx.shim().reply("started");
    rig.settle();
    assert_eq!(rig.state("a", "status"), "running");
    assert_eq!(rig.state("a", "pid"), "43");
    assert_eq!(rig.state("a", "restarts"), "1");
}

/// A bundle beside the rig's whose `root.path` is a (fake) squashfs
/// image: its magic is all the daemon reads of it.
pub(crate) fn image_bundle(rig: &Rig) -> std::path::PathBuf {
    let bundle = rig.bundle.with_file_name("image-bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(bundle.join("root.img"), b"hsqs and then some").unwrap();
    std::fs::write(
        bundle.join("config.json"),
        br#"{"ociVersion":"1.0.2","process":{"terminal":false,"args":["sh"],"cwd":"/"},"root":{"path":"root.img"}}"#,
    )
    .unwrap();
    bundle
}

#[test]
fn an_image_rootfs_is_mounted_before_the_shim_and_unmounted_after_delete() {
    let mut rig = Rig::new("image");
    let bundle = image_bundle(&rig);
    rig.send(&format!("create i {} overlay-size=8m", bundle.display()));
    rig.settle();
    let dir = rig.d.state.container("i");
    let image = format!("squashfs:{}", bundle.join("root.img").display());
    let at = |e: &Effect| rig.d.fx.done.iter().position(|x| x == e).unwrap();
    let mount = Effect::Mount {
        dir: dir.clone(),
        image: image.clone(),
    };
    let shim = rig
        .d
        .fx
        .done
        .iter()
        .position(|e| matches!(e, Effect::Shim { .. }));
    assert!(at(&mount) < shim.unwrap(), "{:?}", rig.d.fx.done);
    // The runtime gets a derived bundle whose root is the mount; the
    // bundle is as it was.
    let derived = std::fs::read_to_string(dir.join("bundle/config.json")).unwrap();
    let root = format!("\"path\":\"{}\"", dir.join("rootfs").display());
    assert!(derived.contains(&root), "{derived}");
    assert!(std::fs::read_to_string(bundle.join("config.json"))
        .unwrap()
        .contains("root.img"));
    let record = std::fs::read_to_string(dir.join("container")).unwrap();
    assert!(
        record.contains(&format!("image={image}")) && record.contains("overlay-size=8388608"),
        "{record}"
    );
    rig.d.fx.shim().created(42);
    assert_eq!(rig.answer(), ["OK pid=42"]);
    assert_eq!(rig.state("i", "rootfs"), "image:squashfs");
    rig.d.fx.shim().exit(0);
    rig.settle();
    rig.send("delete i");
    rig.settle();
    let unmount = Effect::Unmount { dir: dir.clone() };
    assert!(
        !rig.d.fx.done.contains(&unmount),
        "not before the runtime's delete"
    );
    rig.call_ends("delete --force i", 0);
    assert_eq!(rig.answer(), ["OK"]);
    assert!(rig.d.fx.done.contains(&unmount));
    assert!(!dir.exists());
}

#[test]
fn an_image_that_cannot_be_mounted_leaves_nothing() {
    let mut rig = Rig::new("imagebad");
    let bundle = image_bundle(&rig);
    rig.d.fx.faults.push(Fault::Mount);
    let answer = rig.ask(&format!("run i {}", bundle.display()));
    assert!(
        answer.starts_with("ERR invalid cannot mount squashfs image"),
        "{answer}"
    );
    assert!(rig.d.fx.shims.is_empty(), "no shim was started");
    assert!(!rig.d.state.container("i").exists());
    assert!(rig.d.fx.done.contains(&Effect::Unmount {
        dir: rig.d.state.container("i")
    }));
    // A runtime that fails the create: unmounted once it has deleted it.
    rig.send(&format!("run j {}", bundle.display()));
    rig.settle();
    rig.d.fx.shim().say("failed run 1");
    rig.settle();
    let unmount = Effect::Unmount {
        dir: rig.d.state.container("j"),
    };
    assert!(!rig.d.fx.done.contains(&unmount));
    rig.call_ends("delete --force j", 0);
    assert!(rig.answer().pop().unwrap().starts_with("ERR runtime"));
    assert!(rig.d.fx.done.contains(&unmount));
    assert!(!rig.d.state.container("j").exists());
}

#[test]
fn overlay_options_are_for_images() {
    let mut rig = Rig::new("overlayopts");
    let answer = rig.ask(&format!("create d {} overlay=none", rig.bundle.display()));
    assert!(
        answer.starts_with("ERR invalid overlay= is for a bundle whose root.path is an image"),
        "{answer}"
    );
    let bundle = image_bundle(&rig);
    let inside = rig.d.state.root().join("upper");
    let answer = rig.ask(&format!(
        "create d {} overlay={}",
        bundle.display(),
        inside.display()
    ));
    assert!(answer.starts_with("ERR denied"), "{answer}");
    std::fs::write(bundle.join("root.img"), b"not an image at all").unwrap();
    let answer = rig.ask(&format!("create d {}", bundle.display()));
    assert!(answer.starts_with("ERR invalid root.path"), "{answer}");
    assert!(answer.contains("no squashfs or erofs"), "{answer}");
    assert!(!rig
        .d
        .fx
        .done
        .iter()
        .any(|e| matches!(e, Effect::Mount { .. })));
}

#[test]
fn a_restart_mounts_the_image_again_before_its_shim() {
    let mut rig = Rig::new("imagerestart");
    let bundle = image_bundle(&rig);
    rig.send(&format!("run a {} restart=always", bundle.display()));
    rig.settle();
    rig.d.fx.shim().say("created 42");
    rig.d.fx.shim().reply("started");
    assert_eq!(rig.answer(), ["OK pid=42"]);
    rig.d.fx.done.clear();
    rig.d.fx.shim().exit(1);
    rig.settle_until_called("delete --force a");
    rig.call_ends("delete --force a", 0);
    let mount = rig
        .d
        .fx
        .done
        .iter()
        .position(|e| matches!(e, Effect::Mount { .. }));
    let shim = rig
        .d
        .fx
        .done
        .iter()
        .position(|e| matches!(e, Effect::Shim { .. }));
    assert!(mount.unwrap() < shim.unwrap(), "{:?}", rig.d.fx.done);
    assert!(!rig
        .d
        .fx
        .done
        .iter()
        .any(|e| matches!(e, Effect::Unmount { .. })));
}

/// A rig whose daemon has a watchdog, on `fake`, with more flags.
fn watchdog_rig(name: &str, flags: &[&str], fake: crate::server::fake::Fake) -> Rig {
    let mut all = vec!["--watchdog", "/dev/watchdog"];
    all.extend_from_slice(flags);
    Rig::with_flags(name, &all, fake)
}

/// The pets so far.
fn pets(rig: &Rig) -> usize {
    rig.d.fx.done.iter().filter(|e| **e == Effect::Pet).count()
}

/// The next pet is due now; the loop turns.
fn pet_due(rig: &mut Rig) {
    rig.d.watchdog.as_mut().unwrap().next = Instant::now();
    rig.settle();
}

/// `run ID BUNDLE OPTIONS`, the shim reporting it created and started.
fn run(rig: &mut Rig, id: &str, pid: u32, options: &str) {
    rig.send(&format!("run {id} {} {options}", rig.bundle.display()));
    rig.settle();
    rig.d.fx.shim().say(&format!("created {pid}"));
    rig.d.fx.shim().reply("started");
    assert_eq!(rig.answer(), [format!("OK pid={pid}")]);
}

/// The watchdog's events of `id`, as their lines.
fn watchdog_events(rig: &Rig, id: &str) -> Vec<String> {
    let filter = crate::wire::event::Filter {
        id: Some(id.to_string()),
        kind: Some(crate::wire::event::Kind::Watchdog),
        ..Default::default()
    };
    let events = rig.d.events.replay(0, &filter);
    events.map(|e| e.line().trim_end().to_string()).collect()
}

#[test]
fn the_watchdog_is_petted_until_a_critical_container_has_no_restart_to_come() {
    let mut fake = crate::server::fake::Fake::default();
    fake.watchdog_timeout = Some(9);
    let mut rig = watchdog_rig("wdfail", &[], fake);
    assert!(rig
        .d
        .fx
        .done
        .contains(&Effect::WatchdogOpen { timeout: None }));
    // A third of the device's timeout.
    let w = rig.d.watchdog.as_ref().unwrap();
    assert_eq!(w.interval, Duration::from_secs(3));
    rig.settle();
    assert_eq!(pets(&rig), 1, "petted at once");
    rig.settle();
    assert_eq!(pets(&rig), 1, "then not before its interval");
    run(&mut rig, "a", 42, "critical restart=on-failure:1");
    assert_eq!(rig.state("a", "critical"), "yes");
    pet_due(&mut rig);
    assert_eq!(pets(&rig), 2);
    // It fails once: a restart is to come, so it is well.
    rig.d.fx.shim().exit(1);
    rig.settle();
    pet_due(&mut rig);
    assert_eq!(pets(&rig), 3, "petted while its restart is pending");
    rig.settle_until_called("delete --force a");
    pet_due(&mut rig);
    assert_eq!(pets(&rig), 4, "petted while it is made again");
    rig.call_ends("delete --force a", 0);
    rig.d.fx.shim().say("created 43");
    rig.d.fx.shim().reply("started");
    pet_due(&mut rig);
    assert_eq!(pets(&rig), 5);
    assert!(watchdog_events(&rig, "a").is_empty());
    // It fails again, and its policy gives up: petting stops for good.
    rig.d.fx.shim().exit(1);
    rig.settle();
    let stopped = watchdog_events(&rig, "a");
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(stopped[0].ends_with(" id=a type=watchdog state=stopped why=stopped"));
    pet_due(&mut rig);
    assert_eq!(pets(&rig), 5, "never petted again");
    rig.send("metrics");
    let metrics = rig.answer();
    assert!(metrics.contains(&"| nanoctr_watchdog_pets_total 5".to_string()));
    assert!(metrics.contains(&"| nanoctr_watchdog_petting 0".to_string()));
    // A clean stop leaves the device armed: the reset that is due comes.
    rig.d.close_watchdog();
    assert!(!rig.d.fx.done.contains(&Effect::MagicClose));
    // A daemon started again does not pet it for that container either.
    let mut rig = rig.restart(|_| {});
    rig.settle();
    pet_due(&mut rig);
    assert_eq!(pets(&rig), 0);
    assert_eq!(watchdog_events(&rig, "a").len(), 2);
}

#[test]
fn a_lost_critical_container_stops_the_petting() {
    let mut rig = watchdog_rig("wdlost", &["--watchdog-interval", "2"], Default::default());
    assert_eq!(
        rig.d.watchdog.as_ref().unwrap().interval,
        Duration::from_secs(2)
    );
    run(&mut rig, "a", 42, "critical");
    rig.d.fx.shim().vanish();
    rig.settle();
    let stopped = watchdog_events(&rig, "a");
    assert!(
        stopped[0].ends_with(" type=watchdog state=stopped why=lost"),
        "{stopped:?}"
    );
    let before = pets(&rig);
    pet_due(&mut rig);
    assert_eq!(pets(&rig), before);
}

#[test]
fn what_is_done_on_purpose_or_to_others_leaves_the_watchdog_petted() {
    let mut rig = watchdog_rig("wdwell", &[], Default::default());
    // A device that cannot tell its timeout.
    let w = rig.d.watchdog.as_ref().unwrap();
    assert_eq!(w.interval, Duration::from_secs(5));
    // A container that is not critical fails.
    run(&mut rig, "other", 41, "");
    rig.d.fx.shim().exit(1);
    rig.settle();
    // A critical one is killed on purpose, another deleted, one paused.
    run(&mut rig, "killed", 42, "critical restart=on-failure:3");
    rig.send("kill killed");
    rig.settle();
    rig.d.fx.shim().exit(143);
    rig.settle();
    rig.call_ends("kill killed 15", 0);
    assert_eq!(rig.answer(), ["OK"]);
    assert_eq!(rig.state("killed", "status"), "stopped");
    run(&mut rig, "deleted", 43, "critical");
    rig.send("delete deleted force");
    rig.settle();
    rig.call_ends("delete --force deleted", 0);
    rig.d.fx.shim().exit(137);
    assert_eq!(rig.answer(), ["OK"]);
    run(&mut rig, "paused", 44, "critical");
    rig.send("pause paused");
    rig.settle();
    rig.call_ends("pause paused", 0);
    assert_eq!(rig.answer(), ["OK"]);
    let before = pets(&rig);
    for _ in 0..3 {
        pet_due(&mut rig);
    }
    assert_eq!(pets(&rig), before + 3);
    for id in ["other", "killed", "deleted", "paused"] {
        assert!(watchdog_events(&rig, id).is_empty(), "{id}");
    }
    // A clean stop: the magic close.
    rig.d.close_watchdog();
    assert_eq!(rig.d.fx.done.last(), Some(&Effect::MagicClose));
}

#[test]
fn a_watchdog_that_cannot_be_opened_or_petted_in_time_is_refused() {
    let mut rig = Rig::new("wdbad");
    rig.d.cfg.watchdog = Some("/dev/watchdog".into());
    rig.d.fx.faults.push(Fault::Watchdog);
    let e = rig.d.start_watchdog().unwrap_err();
    assert!(e.starts_with("watchdog /dev/watchdog: "), "{e}");
    // An interval not below the device's timeout: disarmed again.
    rig.d.fx.watchdog_timeout = Some(9);
    rig.d.cfg.watchdog_interval = Some(Duration::from_secs(9));
    let e = rig.d.start_watchdog().unwrap_err();
    assert!(
        e.contains("watchdog-interval must be below its timeout, 9 s"),
        "{e}"
    );
    assert_eq!(rig.d.fx.done.last(), Some(&Effect::MagicClose));
    assert!(rig.d.watchdog.is_none());
}

/// The programs started for the network (`nft -f -`, the hook), as
/// `name args` with their input.
fn programs(rig: &Rig) -> Vec<(String, String)> {
    rig.d
        .fx
        .done
        .iter()
        .filter_map(|e| match e {
            Effect::Program { args, input } => Some((args.clone(), input.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_bridge_container_gets_an_address_names_and_nat_and_gives_them_back() {
    let mut rig = Rig::new("bridge");
    let b = rig.bundle.display().to_string();
    rig.send(&format!("create web {b} net=bridge publish=8080:80"));
    rig.settle();
    rig.d.fx.shim().created(7);
    assert_eq!(rig.answer(), ["OK pid=7"]);
    assert!(rig
        .d
        .fx
        .done
        .contains(&Effect::NetAttach { id: "web".into() }));
    let ip = rig.state("web", "ip");
    assert!(ip.starts_with("10.88.0."), "{ip}");
    let dir = rig.d.state.container("web");
    let hosts = std::fs::read_to_string(dir.join("hosts")).unwrap();
    assert!(hosts.contains(&format!("{ip}\tweb\n")), "{hosts}");
    let config = std::fs::read_to_string(dir.join("bundle/config.json")).unwrap();
    assert!(
        config.contains(&dir.join("netns").display().to_string()),
        "{config}"
    );
    assert!(config.contains("/etc/hosts"), "{config}");

    // A second container: each one's hosts names the other.
    rig.send(&format!("create db {b} net=bridge"));
    rig.settle();
    rig.d.fx.shim().created(8);
    assert_eq!(rig.answer(), ["OK pid=8"]);
    let db_ip = rig.state("db", "ip");
    assert_ne!(db_ip, ip);
    let hosts = std::fs::read_to_string(dir.join("hosts")).unwrap();
    assert!(hosts.contains(&format!("{db_ip}\tdb\n")), "{hosts}");

    // The port is web's: another container cannot have it.
    let taken = rig.ask(&format!("create x {b} net=bridge publish=8080:81"));
    assert!(
        taken.starts_with("ERR exists publish=8080:81/tcp: port 8080/tcp is published by web"),
        "{taken}"
    );
    let outside = rig.ask(&format!("create x {b} net=bridge ip=10.9.0.5"));
    assert!(outside.starts_with("ERR invalid ip=10.9.0.5"), "{outside}");

    // One nft run at a time; the table made again with both.
    let runs = programs(&rig);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].0, "nft -f -");
    assert!(
        runs[0]
            .1
            .contains(&format!("tcp dport 8080 dnat to {ip}:80")),
        "{}",
        runs[0].1
    );
    let nft = rig.d.net_programs_pids()[0];
    rig.d.child_exited(nft, 0);
    let runs = programs(&rig);
    assert_eq!(runs.len(), 2, "the change meanwhile is applied: {runs:?}");

    rig.send("delete web");
    rig.settle();
    rig.call_ends("delete --force web", 0);
    rig.d.fx.shims[0].vanish();
    assert_eq!(rig.answer(), ["OK"]);
    assert!(rig.d.fx.done.contains(&Effect::NetDetach {
        id: "web".into(),
        keep_address: false
    }));
    rig.send("metrics");
    let metrics = rig.answer().join("\n");
    assert!(metrics.contains("nanoctr_bridge_addresses 1"), "{metrics}");
    let ipam =
        crate::net::ipam::Ipam::open(&rig.d.cfg.net_dir.join("nanoctr0"), rig.d.cfg.bridge_subnet)
            .unwrap();
    assert_eq!(
        ipam.lookup("web").unwrap(),
        None,
        "web's address is free again"
    );
    assert_eq!(
        ipam.lookup("db").unwrap().map(|i| i.to_string()),
        Some(db_ip)
    );
}

#[test]
fn a_failed_attach_leaves_nothing() {
    let mut rig = Rig::new("bridge-fails");
    rig.d.fx.faults.push(Fault::Net);
    let b = rig.bundle.display().to_string();
    let e = rig.ask(&format!("create web {b} net=bridge"));
    assert!(e.starts_with("ERR internal net=bridge: "), "{e}");
    // strerror differs between libcs ("Device or resource busy", "Resource busy").
    assert!(e.contains("add veth: ") && e.contains("busy"), "{e}");
    assert!(!rig.d.state.container("web").exists());
    assert!(rig.d.fx.shims.is_empty());
    let ipam =
        crate::net::ipam::Ipam::open(&rig.d.cfg.net_dir.join("nanoctr0"), rig.d.cfg.bridge_subnet)
            .unwrap();
    assert!(ipam.list().unwrap().is_empty());
}

#[test]
fn a_cni_container_is_added_by_the_runtimes_hook_and_deleted_by_a_child() {
    let mut rig = Rig::new("cni");
    let conf = rig.d.state.root().join("../net.d");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("10-lan.conflist"),
        r#"{"cniVersion": "1.0.0", "name": "lan", "plugins": [{"type": "bridge"},
            {"type": "portmap", "capabilities": {"portMappings": true}}]}"#,
    )
    .unwrap();
    std::fs::write(
        conf.join("20-plain.conf"),
        r#"{"cniVersion": "1.0.0", "name": "plain", "type": "bridge"}"#,
    )
    .unwrap();
    rig.d.cfg.cni_conf_dir = conf;
    let b = rig.bundle.display().to_string();

    // Refused before anything is made: a network not there, ports to
    // publish with no plugin for them.
    let e = rig.ask(&format!("create web {b} net=cni:wan"));
    assert!(
        e.starts_with("ERR invalid net=cni:wan: network wan: not found"),
        "{e}"
    );
    let e = rig.ask(&format!("create web {b} net=cni:plain publish=8080:80"));
    assert!(
        e.contains("no plugin of") && e.contains("portMappings"),
        "{e}"
    );
    assert!(!rig.d.state.container("web").exists());

    rig.send(&format!("create web {b} net=cni:lan publish=8080:80"));
    rig.settle();
    rig.d.fx.shim().created(7);
    assert_eq!(rig.answer(), ["OK pid=7"]);
    let at = rig.d.state.root().join(".cni/web");
    assert_eq!(
        std::fs::read_to_string(at.join("network")).unwrap(),
        "lan\n[{\"hostPort\": 8080, \"containerPort\": 80, \"protocol\": \"tcp\"}]\n"
    );
    let dir = rig.d.state.container("web");
    let config = std::fs::read(dir.join("bundle/config.json")).unwrap();
    let text = String::from_utf8_lossy(&config).into_owned();
    let netns = at.join("netns").display().to_string();
    assert!(text.contains(&format!("\"path\": \"{netns}\"")), "{text}");
    let r = json::find(&config, &["hooks", "createRuntime"]).unwrap();
    let hook = String::from_utf8_lossy(&config[r]).into_owned();
    for word in [
        "\"cni-exec\", \"add\", \"--name\", \"lan\", \"--id\", \"web\"",
        "\"--reuse\"",
        "portMappings=[{",
    ] {
        assert!(hook.contains(word), "{word}: {hook}");
    }

    // The addresses ADD gave are in `state`.
    std::fs::write(
        at.join("cni-result.json"),
        r#"{"cniVersion": "1.0.0", "ips": [{"address": "10.22.0.5/16"}, {"address": "fd22::5/64"}]}"#,
    )
    .unwrap();
    assert_eq!(rig.state("web", "ip"), "10.22.0.5");
    assert_eq!(rig.state("web", "ips"), "10.22.0.5/16,fd22::5/64");

    // CHECK in a child; the answer when it ends.
    rig.send("state web check");
    rig.settle();
    let check = programs(&rig).pop().unwrap().0;
    assert!(
        check.contains("cni-exec check --name lan --id web"),
        "{check}"
    );
    let pid = *rig.d.net_programs.checks_pids().last().unwrap();
    std::fs::write(
        at.join("check.log"),
        "nanoctr cni-exec: plugin bridge: no eth0\n",
    )
    .unwrap();
    rig.d.child_exited(pid, 1);
    let a = rig.answer();
    assert_eq!(
        a,
        ["ERR runtime web: CNI check failed (1): nanoctr cni-exec: plugin bridge: no eth0"]
    );

    // Deleted: DEL in a child, which removes the attachment; the id
    // cannot be made again until it has ended.
    rig.send("delete web");
    rig.settle();
    rig.call_ends("delete --force web", 0);
    rig.d.fx.shims[0].vanish();
    assert_eq!(rig.answer(), ["OK"]);
    let del = programs(&rig).pop().unwrap().0;
    assert!(del.contains("cni-exec del --name lan --id web"), "{del}");
    assert!(
        del.contains(&format!("--remove-dir {}", at.display())),
        "{del}"
    );
    assert!(del.contains("--cap portMappings=[{"), "{del}");
    let e = rig.ask(&format!("create web {b} net=cni:lan"));
    assert!(
        e.starts_with("ERR busy net=cni: web's last network is being removed"),
        "{e}"
    );
    let pid = *rig.d.net_programs_pids().last().unwrap();
    std::fs::remove_dir_all(&at).unwrap();
    rig.d.child_exited(pid, 0);
    rig.send(&format!("create web {b} net=cni:lan"));
    rig.settle();
    rig.d.fx.shim().created(8);
    assert_eq!(rig.answer(), ["OK pid=8"]);
    let e = rig.ask("state web2 check");
    assert!(e.starts_with("ERR not-found"), "{e}");
}
