//! The OCI runtime as the daemon calls it (`kill`, `delete`); the shim makes
//! the `create` and `start` calls.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
