//! Bad input gets a clear ERR, loses nothing, and the daemon keeps serving.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use nanoctr::wire::proto::MAX_LINE;
use nanoctr_tests::{bin, fields, Daemon};

/// The daemon still answers, on a fresh connection.
#[track_caller]
fn still_serving(d: &Daemon) {
    assert!(d.ask("hello").ok().starts_with("nanoctr protocol=1"));
}

#[test]
fn unknown_verbs_and_wrong_arguments() {
    let d = Daemon::start();
    let mut c = d.conn();
    assert!(c
        .ask("frobnicate now")
        .err_code("invalid")
        .contains("unknown verb frobnicate"));
    assert!(c
        .ask("start")
        .err_code("invalid")
        .contains("usage: start ID"));
    assert!(c
        .ask("kill x SIGNOPE")
        .err_code("invalid")
        .contains("unknown signal"));
    c.ask("delete x later").err_code("invalid");
    c.ask("create x /b bogus=1").err_code("invalid");
    c.ask("create x relative/bundle").err_code("invalid");
    c.ask("create x /b stdout=relative").err_code("invalid");
    c.ask("create x /b stdout=/a stdout=/b").err_code("invalid");
    // The same connection goes on working.
    assert!(c.ask("hello").ok().starts_with("nanoctr"));
}

#[test]
fn malformed_lines() {
    let d = Daemon::start();
    let mut c = d.conn();
    c.send_raw(b"hello \xff\xfe\n");
    c.answer().err_code("invalid");
    c.ask("state \"unterminated").err_code("invalid");
    // Empty lines are no requests; CRLF ends a line too.
    c.send_raw(b"\n   \n\r\nhello\r\n");
    assert!(c.answer().ok().starts_with("nanoctr"));
    still_serving(&d);
}

#[test]
fn an_over_long_line_is_refused_and_the_connection_stays_usable() {
    let d = Daemon::start();
    let mut c = d.conn();
    let mut line = b"state ".to_vec();
    line.resize(3 * MAX_LINE, b'x');
    line.extend_from_slice(b"\nhello\n");
    c.send_raw(&line);
    c.answer().err_code("too-long");
    assert!(c.answer().ok().starts_with("nanoctr"));
    // The longest allowed line is still a request.
    let mut longest = b"state ".to_vec();
    longest.resize(MAX_LINE - 1, b'a');
    longest.push(b'\n');
    c.send_raw(&longest);
    c.answer().err_code("invalid");
}

#[test]
fn hostile_ids() {
    let d = Daemon::start();
    let b = d.bundle("ok", &["true"]);
    let long = "a".repeat(65);
    for id in [
        "../x", "..", "a/b", "/abs", "\"\"", "\"a b\"", ".hidden", "-dash", "a..b", &long,
        "\"a\tb\"",
    ] {
        let answer = d.ask(&format!("create {id} {}", b.display()));
        assert!(
            answer.err_code("invalid").contains("bad id"),
            "{id}: {answer:?}"
        );
        d.ask(&format!("state {id}")).err_code("invalid");
    }
    // Nothing was made anywhere near the state dir.
    assert_eq!(d.container_dirs().len(), 0);
    assert!(!d.dir.join("x").exists());
    still_serving(&d);
}

#[test]
fn missing_bundles() {
    let d = Daemon::start();
    let missing = d.dir.join("nope");
    assert!(d
        .ask(&format!("run m {}", missing.display()))
        .err_code("invalid")
        .contains("nope"));
    let empty = d.dir.join("empty-bundle");
    std::fs::create_dir_all(&empty).unwrap();
    let msg = d
        .ask(&format!("run m {}", empty.display()))
        .err_code("invalid")
        .to_string();
    assert!(msg.contains("no config.json"), "{msg}");
    let file = d.dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    d.ask(&format!("run m {}", file.display()))
        .err_code("invalid");
    assert_eq!(d.ask("list").ok(), "count=0");
    assert_eq!(d.container_dirs().len(), 0);
}

#[test]
fn duplicate_ids() {
    let d = Daemon::start();
    let b = d.bundle("dup", &["sleep", "1000"]);
    d.ask(&format!("create dup {}", b.display())).ok();
    d.ask(&format!("create dup {}", b.display()))
        .err_code("exists");
    d.ask(&format!("run dup {}", b.display()))
        .err_code("exists");
    // The first one is untouched.
    assert_eq!(fields(&d.ask("state dup").data[0])["status"], "created");
}

#[test]
fn wrong_states() {
    let d = Daemon::start();
    let b = d.bundle("st", &["sleep", "1000"]);
    d.ask(&format!("run st {}", b.display())).ok();
    assert!(d.ask("start st").err_code("state").contains("running"));
    assert!(d.ask("delete st").err_code("state").contains("force"));
    d.ask("kill st KILL").ok();
    d.ask("wait st").ok();
    d.ask("kill st").err_code("state");
    d.ask("start st").err_code("state");
    for verb in ["start", "wait", "state", "kill", "delete"] {
        d.ask(&format!("{verb} ghost")).err_code("not-found");
    }
}

#[test]
fn a_missing_program_is_a_runtime_error_and_leaves_nothing() {
    let d = Daemon::start();
    let b = d.bundle("noprog", &["/no/such/program"]);
    let msg = d
        .ask(&format!("run np {}", b.display()))
        .err_code("runtime")
        .to_string();
    assert!(
        msg.contains("/no/such/program") && msg.contains("no such file"),
        "{msg}"
    );
    assert!(!d.state.join("np").exists(), "state dir left behind");
    assert!(d.runtime_ids().is_empty(), "runtime state left behind");
    assert_eq!(d.ask("list").ok(), "count=0");
    // The id can be used again.
    let good = d.bundle("good", &["true"]);
    d.ask(&format!("run np {}", good.display())).ok();
    assert_eq!(d.ask("wait np").ok(), "exit=0");
}

#[test]
fn an_unknown_runtime_is_refused() {
    let d = Daemon::start();
    let b = d.bundle("rt", &["true"]);
    let msg = d
        .ask(&format!("run r {} runtime=no-such-runtime", b.display()))
        .err_code("invalid")
        .to_string();
    assert!(msg.contains("no-such-runtime"), "{msg}");
    d.ask(&format!("run r {} runtime=/no/such/runtime", b.display()))
        .err_code("invalid");
    assert_eq!(d.container_dirs().len(), 0);
}

#[test]
fn a_full_table() {
    let d = Daemon::start_with(nanoctr_tests::Runtime::Runc, &["--max-containers", "2"]);
    let b = d.bundle("full", &["sleep", "1000"]);
    d.ask(&format!("create f1 {}", b.display())).ok();
    d.ask(&format!("create f2 {}", b.display())).ok();
    assert!(d
        .ask(&format!("create f3 {}", b.display()))
        .err_code("full")
        .contains("2 containers"));
    assert!(!d.state.join("f3").exists());
    d.ask("delete f1").ok();
    d.ask(&format!("create f3 {}", b.display())).ok();
    assert_eq!(d.ask("list").ok(), "count=2");
}

#[test]
fn a_client_that_leaves_mid_line_or_mid_request() {
    let d = Daemon::start();
    let b = d.bundle("mid", &["sleep", "1000"]);
    {
        let mut c = d.conn();
        c.send_raw(b"crea");
    }
    {
        // Gone before the answer comes: the create still completes.
        let mut c = d.conn();
        c.send(&format!("create mid {}", b.display()));
    }
    still_serving(&d);
    d.eventually("the abandoned create to finish", || {
        d.ask("state mid").last.starts_with("OK")
    });
    assert_eq!(fields(&d.ask("state mid").data[0])["status"], "created");
}

#[test]
fn a_client_that_half_closes_gets_its_answers() {
    let d = Daemon::start();
    let mut s = d.conn().into_stream();
    s.write_all(b"hello\nlist\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = String::new();
    std::io::Read::read_to_string(&mut s, &mut all).unwrap();
    assert!(
        all.starts_with("OK nanoctr") && all.ends_with("OK count=0\n"),
        "{all:?}"
    );
}

#[test]
fn other_users_are_denied() {
    let d = Daemon::start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode");
    // Open the file mode, so only the peer credential check stands.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new(bin("nanoctr"))
        .args(["--socket", d.socket.to_str().unwrap(), "list"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(denied)"),
        "{out:?}"
    );
    still_serving(&d);
}
