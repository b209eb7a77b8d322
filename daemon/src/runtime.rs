//! The OCI runtime as the daemon calls it (`kill`, `delete`); the shim makes
//! the `create` and `start` calls.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nanoctr_shim::runtime_log;

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

impl Runtime {
    /// Runs `<runtime> ARGS` to the end, waiting at most `limit`; for use
    /// before the event loop runs (restore). Returns its exit code and
    /// stdout, or `None` if it could not run or was killed for time.
    pub fn run_to_end(&self, log: &Path, args: &[&str], limit: Duration) -> Option<(i32, Vec<u8>)> {
        let mut child = self
            .command(log, args)
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + limit;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        };
        let mut out = Vec::new();
        child.stdout.take()?.read_to_end(&mut out).ok()?;
        Some((status.code().unwrap_or(255), out))
    }

    /// The runtime's view of a container's status (`<runtime> state ID`).
    pub fn status(&self, log: &Path, id: &str, limit: Duration) -> Option<String> {
        let (0, out) = self.run_to_end(log, &["state", id], limit)? else {
            return None;
        };
        json_string_field(&String::from_utf8_lossy(&out), "status")
    }
}

/// The string value of `"key"` in a flat JSON object, as `state` prints it.
pub fn json_string_field(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
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

/// What a failed runtime call tells the user: the runtime's own message, or
/// its exit status when it left none.
pub fn failure(log: &Path, what: &str, code: i32) -> String {
    last_error(log).unwrap_or_else(|| format!("runtime {what} exited with status {code}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_from_state_output() {
        let runc = "{\n  \"ociVersion\": \"1.0.2\",\n  \"id\": \"web\",\n  \"pid\": 42,\n  \"status\": \"running\",\n  \"bundle\": \"/b\"\n}";
        assert_eq!(
            json_string_field(runc, "status").as_deref(),
            Some("running")
        );
        assert_eq!(
            json_string_field("{\"status\":\"created\"}", "status").as_deref(),
            Some("created")
        );
        assert_eq!(json_string_field("{\"pid\": 1}", "status"), None);
        assert_eq!(json_string_field("{\"status\": 3}", "status"), None);
    }
}
