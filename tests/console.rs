//! Consoles, stdio, the capped log and attach, with real runc; the client
//! itself is driven through a pty, as a person at a serial console would.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use nanoctr_tests::{bin, fields, sys, Daemon, Stream};

fn status(d: &Daemon, id: &str) -> String {
    fields(&d.ask(&format!("state {id}")).data[0])["status"].clone()
}

/// Whether a process runs `sleep SECONDS`; the duration is unique to a
/// test, so it finds that test's process.
fn sleeping(seconds: &str) -> bool {
    let wanted = format!("sleep\0{seconds}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes()))
}

/// Types Ctrl-C until the sleep is gone. The sleep can show before its
/// shell has made it the terminal's foreground group, and a ^C in that
/// moment goes to the shell (which ignores it), so one may not be enough.
fn interrupt(d: &Daemon, seconds: &str, mut send: impl FnMut(&[u8])) {
    d.eventually(&format!("sleep {seconds} to run"), || sleeping(seconds));
    d.eventually(&format!("^C to end sleep {seconds}"), || {
        send(b"\x03");
        std::thread::sleep(std::time::Duration::from_millis(100));
        !sleeping(seconds)
    });
}

#[test]
fn an_interactive_shell_in_a_terminal_container() {
    let d = Daemon::start();
    let b = d.bundle("sh", &["sh"]);
    d.ask(&format!("run t {} terminal", b.display())).ok();
    let mut a = d.attach("t");
    a.send(b"echo hi-$((6*7))\n");
    a.expect("hi-42\r\n");
    d.ask("kill t KILL").ok();
}

#[test]
fn stty_size_follows_the_size_given_and_resize() {
    let d = Daemon::start();
    let b = d.bundle("sh", &["sh"]);
    d.ask(&format!("run t {} terminal cols=100 rows=30", b.display()))
        .ok();
    let mut a = d.attach("t");
    a.send(b"stty size\n");
    a.expect("30 100\r\n");
    d.ask("resize t init 132 43").ok();
    a.send(b"stty size\n");
    a.expect("43 132\r\n");
    d.ask("kill t KILL").ok();
}

#[test]
fn the_bundle_can_be_told_to_have_a_terminal_or_not() {
    let d = Daemon::start();
    let b = d.bundle(
        "tty",
        &[
            "sh",
            "-c",
            "if [ -t 0 ]; then echo tty; else echo no-tty; fi",
        ],
    );
    let before = std::fs::read(b.join("config.json")).unwrap();
    d.ask(&format!("run with {} terminal", b.display())).ok();
    d.ask("wait with").ok();
    assert!(std::fs::read_to_string(d.state.join("with/init/output"))
        .unwrap()
        .contains("tty"));
    d.ask(&format!("run without {}", b.display())).ok();
    d.ask("wait without").ok();
    assert_eq!(
        std::fs::read_to_string(d.state.join("without/init/output")).unwrap(),
        "no-tty\n"
    );
    assert_eq!(
        std::fs::read(b.join("config.json")).unwrap(),
        before,
        "the bundle was written to"
    );
}

#[test]
fn cat_exits_when_stdin_is_closed() {
    let d = Daemon::start();
    let b = d.bundle("cat", &["cat"]);
    d.ask(&format!("run c {} interactive", b.display())).ok();
    let mut a = d.attach("c");
    a.send(b"through the pipe\n");
    a.expect("through the pipe\n");
    d.ask("closestdin c").ok();
    assert_eq!(d.ask("wait c").ok(), "exit=0");

    // On a terminal, closestdin is end-of-file (^D).
    d.ask(&format!("run tc {} terminal", b.display())).ok();
    d.ask("closestdin tc").ok();
    assert_eq!(d.ask("wait tc").ok(), "exit=0");
}

#[test]
fn ctrl_c_interrupts_a_sleep_but_not_the_shell() {
    let d = Daemon::start();
    let b = d.bundle("sh", &["sh"]);
    d.ask(&format!("run t {} terminal", b.display())).ok();
    let mut a = d.attach("t");
    a.send(b"sleep 1001; echo after-$((1+1))\n");
    interrupt(&d, "1001", |b| a.send(b));
    a.send(b"echo alive-$((2+3))\n");
    a.expect("alive-5\r\n");
    assert_eq!(status(&d, "t"), "running");
    d.ask("kill t KILL").ok();
}

#[test]
fn the_log_is_capped_and_keeps_the_newest_output() {
    let d = Daemon::start();
    let b = d.bundle("chatty", &["seq", "1", "1500000"]);
    d.ask(&format!("run s {}", b.display())).ok();
    assert_eq!(d.ask("wait s").ok(), "exit=0");
    let dir = d.state.join("s/init");
    let out = std::fs::read_to_string(dir.join("output")).unwrap();
    let old = std::fs::metadata(dir.join("output.1")).unwrap().len();
    assert!(
        out.len() as u64 <= 65536 && old <= 65536,
        "output {} bytes, output.1 {old}",
        out.len()
    );
    assert!(
        out.ends_with("1499999\n1500000\n"),
        "{}",
        &out[out.len().saturating_sub(40)..]
    );
    let logs = d.ask("logs s tail=2");
    assert_eq!(logs.data, ["| 1499999", "| 1500000"]);
    // A smaller cap, per container.
    d.ask(&format!("run small {} log-size=8192", b.display()))
        .ok();
    d.ask("wait small").ok();
    assert!(
        std::fs::metadata(d.state.join("small/init/output"))
            .unwrap()
            .len()
            <= 8192
    );
}

#[test]
fn logs_follow_streams_until_the_container_stops() {
    let d = Daemon::start();
    let b = d.bundle("cat", &["cat"]);
    d.ask(&format!("run f {} interactive", b.display())).ok();
    let mut a = d.attach("f");
    a.send(b"first\n");
    a.expect("first\n");
    let mut follow = d.conn();
    follow.send("logs f follow");
    assert_eq!(follow.line(), "| first");
    a.send(b"second\n");
    assert_eq!(follow.line(), "| second");
    d.ask("closestdin f").ok();
    assert_eq!(
        follow.answer().last,
        "OK",
        "the stream ends when the container stops"
    );
}

#[test]
fn a_late_attacher_gets_the_scrollback_and_two_see_the_same() {
    let d = Daemon::start();
    let b = d.bundle("sh", &["sh", "-c", "echo banner-$((3*3)); exec cat"]);
    d.ask(&format!("run late {} interactive", b.display())).ok();
    d.eventually("the banner to be written", || {
        std::fs::read_to_string(d.state.join("late/init/output"))
            .is_ok_and(|s| s.contains("banner-9"))
    });
    let mut one = d.attach("late");
    one.expect("banner-9\n");
    let mut two = d.attach("late");
    two.expect("banner-9\n");
    one.send(b"for both\n");
    one.expect("for both\n");
    two.expect("for both\n");
    d.ask("kill late KILL").ok();
}

#[test]
fn console_requests_that_cannot_be_done() {
    let d = Daemon::start();
    let b = d.bundle("sleep", &["sleep", "1000"]);
    d.ask(&format!("run plain {}", b.display())).ok();
    assert!(d
        .ask("resize plain init 80 24")
        .err_code("state")
        .contains("terminal"));
    assert!(d
        .ask("closestdin plain")
        .err_code("state")
        .contains("interactive"));
    d.ask("attach plain other").err_code("not-found");
    d.ask("attach ghost").err_code("not-found");
    d.ask("logs ghost").err_code("not-found");
    d.ask(&format!("run bad {} terminal stdout=/tmp/x", b.display()))
        .err_code("invalid");
    let tty = d.bundle("sh", &["sh"]);
    d.ask(&format!("run t {} terminal", tty.display())).ok();
    d.ask("kill plain KILL").ok();
    d.ask("wait plain").ok();
    d.ask("attach plain").err_code("state");
    d.ask("kill t KILL").ok();
}

/// Runs `nanoctr attach ID` on the slave side of a pty, as at a console.
fn client_on_a_pty(d: &Daemon, id: &str) -> (std::process::Child, Stream<File>, OwnedFd) {
    let (master, slave) = sys::openpty(80, 24).expect("openpty");
    let child = Command::new(bin("nanoctr"))
        .args(["attach", id])
        .env("NANOCTR_SOCKET", &d.socket)
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .spawn()
        .expect("start nanoctr attach");
    sys::set_nonblocking(&master);
    (child, Stream::new(File::from(master)), slave)
}

/// The container terminal's size, as `stty size` says it. The marker is
/// computed by the shell, so the echo of what was typed never matches it.
fn stty_size(d: &Daemon, id: &str, n: u32) -> String {
    let mut a = d.attach(id);
    a.send(format!("stty size; echo size-done-$(({n}+1000))\n").as_bytes());
    a.expect(&format!("size-done-{}", n + 1000))
}

#[test]
fn the_client_on_a_pty_relays_detaches_and_restores_the_terminal() {
    let d = Daemon::start();
    let b = d.bundle("sh", &["sh"]);
    d.ask(&format!("run p {} terminal", b.display())).ok();
    let (mut child, mut tty, slave) = client_on_a_pty(&d, "p");
    // Keys as a person types them; the client sends them as they are.
    tty.send(b"echo typed-$((4*4))\r");
    tty.expect("typed-16");
    tty.send(b"sleep 1002\r");
    interrupt(&d, "1002", |b| tty.send(b));
    tty.send(b"echo still-$((5*5))\r");
    tty.expect("still-25");
    assert!(!sys::is_cooked(&slave), "the client runs its terminal raw");
    // The window changes: the client passes the new size on.
    sys::set_size(&tty.io, 100, 33);
    Command::new("kill")
        .args(["-WINCH", &child.id().to_string()])
        .status()
        .unwrap();
    let mut n = 0;
    d.eventually("the new size to reach the container", || {
        n += 1;
        stty_size(&d, "p", n).contains("33 100")
    });
    // Ctrl-P Ctrl-Q: the client leaves, the container stays.
    tty.send(b"\x10\x11");
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit}");
    assert!(sys::is_cooked(&slave), "the client put its terminal back");
    assert_eq!(status(&d, "p"), "running");
    d.ask("kill p KILL").ok();
}
