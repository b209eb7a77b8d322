//! The OCI runtime (runc, crun, or any runtime with runc's command line)
//! as the daemon calls it: `<runtime> [--root R] --log LOG --log-format
//! json VERB ...`, its stdio on /dev/null (but the stdout of `state`,
//! which is read). The daemon runs
//!
//! - `kill ID SIGNAL` and `kill --all ID SIGNAL` (`kill`),
//! - `delete --force ID` (`delete`; after a failed create or a lost shim;
//!   before a restart; for a half-made container found at start-up),
//! - `pause ID`, `resume ID`, and `update` with resource flags,
//! - `checkpoint --image-path DIR [--leave-running] [--shell-job] ID`,
//! - `state ID` at start-up, for the status of a container whose shim
//!   lives (`server/recovery.rs`, run before the loop by `run_to_end`).
//!
//! The shim makes the calls that make and start a process: `create` and
//! `start`, `run --detach`, `exec --detach --process FILE`, and `restore
//! --detach --image-path DIR`. `ps` and `stats` are read from the
//! container's cgroup; no runtime is asked.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::runtime_log;

/// A runtime binary and the state root it is told to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    pub path: PathBuf,
    pub root: Option<PathBuf>,
}

impl Runtime {
    /// `<runtime> [--root R] --log LOG --log-format json ARGS...`, with its
    /// stdio on /dev/null: its account of a failure goes to LOG.
    pub fn command(&self, log: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.path);
        if let Some(root) = &self.root {
            cmd.arg("--root").arg(root);
        }
        cmd.arg("--log")
            .arg(log)
            .args(["--log-format", "json"])
            .args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }
}

/// The most of a runtime's stdout the daemon keeps (`state` prints a few
/// hundred bytes, plus the bundle's annotations); the rest is read and
/// dropped, so the runtime never blocks on a full pipe.
pub const MAX_RUNTIME_OUTPUT: usize = 64 * 1024;

impl Runtime {
    /// Runs `<runtime> ARGS` to the end, waiting at most `limit`; for use
    /// before the event loop runs (recovery at start-up). Its stdout is read while it
    /// runs (a runtime that prints more than a pipe holds would otherwise
    /// wait forever to finish writing) and kept up to
    /// [`MAX_RUNTIME_OUTPUT`]. Returns its exit code and what was kept, or
    /// `None` if it could not run or was killed for time.
    pub fn run_to_end(&self, log: &Path, args: &[&str], limit: Duration) -> Option<(i32, Vec<u8>)> {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut child = self
            .command(log, args)
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        let mut stdout = child.stdout.take();
        let status = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let exited = match child.try_wait() {
                Ok(Some(status)) => Some(status),
                Ok(None) if !left.is_zero() => None,
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            };
            let Some(pipe) = &mut stdout else {
                match exited {
                    Some(status) => break status,
                    None => std::thread::sleep(left.min(Duration::from_millis(5))),
                }
                continue;
            };
            // Wake for output, or now and then to see whether it exited;
            // once it has, take what is in the pipe without waiting (a
            // process it left behind may hold the pipe open).
            let wait = match exited {
                Some(_) => Duration::ZERO,
                None => left.min(Duration::from_millis(50)),
            };
            let wait = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: wait.as_nanos() as i64,
            };
            let mut fds = [PollFd::from_borrowed_fd(
                crate::sys::fd(&*pipe),
                PollFlags::IN,
            )];
            let mut buf = [0u8; 4096];
            let got = match poll(&mut fds, Some(&wait)) {
                Ok(0) => None,
                Ok(_) => match pipe.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Some(0),
                    other => Some(other.unwrap_or(0)),
                },
                Err(_) => Some(0),
            };
            match got {
                Some(0) => stdout = None,
                Some(n) => {
                    let room = MAX_RUNTIME_OUTPUT.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
                None if exited.is_some() => stdout = None,
                None => {}
            }
        };
        Some((status.code().unwrap_or(255), out))
    }
}

/// The `status` of `<runtime> state` output: a top-level field of its JSON
/// object, so an annotation that happens to be called `status` is not
/// taken for it.
pub fn state_status(out: &[u8]) -> Option<String> {
    let r = crate::bundle::json::find(out, &["status"])?;
    crate::bundle::json::string(out, r)
}

/// The runtime's last error message in its JSON log, if any.
pub fn last_error(log: &Path) -> Option<String> {
    let mut f = File::open(log).ok()?;
    let len = f.seek(SeekFrom::End(0)).ok()?;
    f.seek(SeekFrom::Start(
        len.saturating_sub(runtime_log::TAIL as u64),
    ))
    .ok()?;
    let mut tail = Vec::with_capacity(runtime_log::TAIL);
    f.take(runtime_log::TAIL as u64)
        .read_to_end(&mut tail)
        .ok()?;
    let mut msg = [0u8; 1024];
    let n = runtime_log::last_error(&tail, &mut msg)?;
    Some(String::from_utf8_lossy(&msg[..n]).into_owned())
}

/// What a failed runtime call tells the user: the runtime's own message
/// from its `log` (when there is one), or its exit status.
pub fn failure(log: Option<&Path>, what: &str, code: i32) -> String {
    log.and_then(last_error)
        .unwrap_or_else(|| format!("runtime {what} exited with status {code}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_output_is_read_while_the_runtime_runs() {
        // More than a pipe holds, before the status: the runtime must not
        // wait on a reader that only reads after it exits.
        let big = "x".repeat(200 * 1024);
        let script = format!(
            "printf '{{\\\"annotations\\\": {{\\\"status\\\": \\\"fake\\\", \\\"a\\\": \\\"{big}\\\"}}, \\\"status\\\": \\\"running\\\"}}'"
        );
        let dir = std::env::temp_dir().join(format!("nanoctr-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = dir.join("rt");
        std::fs::write(&rt, format!("#!/bin/sh\n{script}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o755)).unwrap();
        let runtime = Runtime {
            path: rt,
            root: None,
        };
        let started = Instant::now();
        let (code, out) = runtime
            .run_to_end(&dir.join("log"), &["state", "x"], Duration::from_secs(20))
            .expect("it finishes");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!((code, out.len()), (0, MAX_RUNTIME_OUTPUT));
        // What was kept is cut, so the real status (after the annotation
        // that says otherwise) is past the cap: nothing is guessed.
        assert_eq!(state_status(&out), None);
        let small = br#"{"annotations": {"status": "fake"}, "status": "running"}"#;
        assert_eq!(state_status(small).as_deref(), Some("running"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reads_the_status_from_state_output() {
        let runc = "{\n  \"ociVersion\": \"1.0.2\",\n  \"id\": \"web\",\n  \"pid\": 42,\n  \"status\": \"running\",\n  \"bundle\": \"/b\"\n}";
        assert_eq!(state_status(runc.as_bytes()).as_deref(), Some("running"));
        assert_eq!(
            state_status(b"{\"status\":\"created\"}").as_deref(),
            Some("created")
        );
        assert_eq!(state_status(b"{\"pid\": 1}"), None);
        assert_eq!(state_status(b"{\"status\": 3}"), None);
    }
}
