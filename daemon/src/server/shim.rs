//! Starting a shim, and the lines it sends back.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};

use rustix::io::FdFlags;
use rustix::pipe::{pipe_with, PipeFlags};

use crate::server::runtime::Runtime;
use crate::store::statedir::open_fifo_reader;
use crate::sys;
use crate::wire::Spec;

/// The daemon's ends of a new shim.
pub struct Spawned {
    pub pid: u32,
    /// Read end of the startup pipe: `created PID` or `error MESSAGE`.
    pub startup: File,
    /// Read end of `exit`: EOF when the shim is gone.
    pub exit: File,
    /// Read end of `reply`: the answers to control lines.
    pub reply: File,
}

/// How the shim has the runtime make its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Make<'a> {
    /// `create`; `start` comes later on the control fifo.
    Create,
    /// `run --detach`: created and started in one runtime call.
    Run,
    /// `exec --detach --process FILE`: an extra process in a running
    /// container.
    Exec(&'a Path),
    /// `restore --detach --image-path DIR`: a container from a checkpoint,
    /// running once made.
    Restore(&'a Path),
}

/// How a shim is to run its process.
pub struct ShimOptions<'a> {
    pub id: &'a str,
    pub runtime: &'a Runtime,
    /// The bundle the runtime gets: the container's, or one derived from it
    /// in the state dir (see `create`).
    pub bundle: &'a Path,
    pub oom_score_adj: i32,
    pub make: Make<'a>,
    /// The process has a terminal: the shim receives its pty.
    pub terminal: bool,
    /// Its stdin is a pipe fed from attachers.
    pub interactive: bool,
    /// A terminal's first size (default 80x24).
    pub size: (Option<u16>, Option<u16>),
    pub log_size: Option<u32>,
    /// stdin, stdout, stderr paths; the shim's defaults where `None`.
    pub stdio: [Option<&'a str>; 3],
}

impl<'a> ShimOptions<'a> {
    /// For a container's init, as `spec` asks.
    pub fn init(spec: &'a Spec, runtime: &'a Runtime, bundle: &'a Path, make: Make<'a>) -> Self {
        ShimOptions {
            id: &spec.id,
            runtime,
            bundle,
            oom_score_adj: 0,
            make,
            terminal: spec.terminal == Some(true),
            interactive: spec.interactive,
            size: (spec.cols, spec.rows),
            log_size: spec.log_size,
            stdio: [
                spec.stdin.as_deref(),
                spec.stdout.as_deref(),
                spec.stderr.as_deref(),
            ],
        }
    }
}

/// Starts `nanoctr-shim` in `proc` (a prepared process dir).
///
/// The fifos' read ends are opened first, so the shim's opens for writing
/// never block. The startup pipe's write end is the only descriptor the
/// shim inherits besides stdio (everything else the daemon holds is
/// close-on-exec, and the daemon has one thread, so no other spawn can
/// pick it up in between); the shim is told its number.
pub fn spawn(shim: &Path, proc: &Path, how: &ShimOptions<'_>) -> io::Result<Spawned> {
    let runtime = how.runtime;
    let exit = open_fifo_reader(&proc.join("exit"))?;
    let reply = open_fifo_reader(&proc.join("reply"))?;
    let (read, write) = pipe_with(PipeFlags::CLOEXEC).map_err(sys::io_error)?;
    let (read, write): (OwnedFd, OwnedFd) = (sys::own(read), sys::own(write));
    rustix::fs::fcntl_setfl(sys::fd(&read), rustix::fs::OFlags::NONBLOCK).map_err(sys::io_error)?;
    rustix::io::fcntl_setfd(sys::fd(&write), FdFlags::empty()).map_err(sys::io_error)?;

    let mut cmd = Command::new(shim);
    cmd.current_dir(proc)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(shim_log(proc));
    let path = |name: &str| proc.join(name).to_string_lossy().into_owned();
    cmd.arg(kv("id", how.id))
        .arg(kv("bundle", &how.bundle.to_string_lossy()))
        .arg(kv("runtime", &runtime.path.to_string_lossy()))
        .arg(kv("log", &path("log.json")))
        .arg(kv("pid-file", &path("pid")))
        .arg(format!(
            "startup-fd={}",
            std::os::fd::AsRawFd::as_raw_fd(&write)
        ))
        .arg(format!("oom-score-adj={}", how.oom_score_adj));
    if let Some(root) = &runtime.root {
        cmd.arg(kv("root", &root.to_string_lossy()));
    }
    match how.make {
        Make::Create => {}
        Make::Run => {
            cmd.arg("run=1");
        }
        Make::Exec(file) => {
            cmd.arg(kv("exec", &file.to_string_lossy()));
        }
        Make::Restore(dir) => {
            cmd.arg(kv("restore", &dir.to_string_lossy()));
        }
    }
    if how.terminal {
        cmd.arg("terminal=1")
            .arg(kv("console", &path("console.sock")));
        cmd.arg(format!("cols={}", how.size.0.unwrap_or(80)));
        cmd.arg(format!("rows={}", how.size.1.unwrap_or(24)));
    }
    if how.interactive {
        cmd.arg("interactive=1");
    }
    if let Some(n) = how.log_size {
        cmd.arg(format!("log-size={n}"));
    }
    for (key, value) in ["stdin", "stdout", "stderr"].into_iter().zip(how.stdio) {
        if let Some(v) = value {
            cmd.arg(kv(key, v));
        }
    }
    let child = cmd.spawn()?;
    drop(write);
    Ok(Spawned {
        pid: child.id(),
        startup: File::from(read),
        exit,
        reply,
    })
}

fn kv(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// Lines from a shim's pipe or fifo, read without blocking.
pub struct LineReader {
    pub file: File,
    buf: Vec<u8>,
}

/// Longest line a shim sends; more is cut.
pub(crate) const MAX_SHIM_LINE: usize = 2048;

impl LineReader {
    pub fn new(file: File) -> Self {
        LineReader {
            file,
            buf: Vec::new(),
        }
    }

    /// Reads what is there. Returns the complete lines and whether the
    /// writer is gone (EOF); an unterminated last line at EOF counts.
    pub fn read_lines(&mut self) -> (Vec<String>, bool) {
        let mut chunk = [0u8; 1024];
        let eof = loop {
            match self.file.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => {
                    let room = MAX_SHIM_LINE.saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&chunk[..n.min(room)]);
                    if n > room && !self.buf.contains(&b'\n') {
                        self.buf.push(b'\n');
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        let mut lines = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            lines.push(String::from_utf8_lossy(&line[..pos]).into_owned());
        }
        if eof && !self.buf.is_empty() {
            lines.push(String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned());
        }
        (lines, eof)
    }
}

/// A line from the shim.
#[derive(Debug, PartialEq, Eq)]
pub enum ShimLine {
    Created(u32),
    Started,
    Error(String),
    /// Anything else (a newer shim); ignored.
    Other,
}

impl ShimLine {
    pub fn parse(line: &str) -> ShimLine {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "created" => rest.parse().map_or(ShimLine::Other, ShimLine::Created),
            "started" => ShimLine::Started,
            "error" => ShimLine::Error(rest.to_string()),
            _ => ShimLine::Other,
        }
    }
}

/// Most bytes `shim.log` grows to; past it, the next shim of the process
/// dir (a restart) starts it afresh.
const SHIM_LOG_CAP: u64 = 16 * 1024;

/// The shim's stderr: `shim.log` in its process dir, where it says why it
/// failed (the same message the daemon gets), kept across restarts.
fn shim_log(proc: &Path) -> Stdio {
    let path = proc.join("shim.log");
    let big = std::fs::metadata(&path).is_ok_and(|m| m.len() > SHIM_LOG_CAP);
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(!big)
        .write(true)
        .truncate(big)
        .mode(0o600)
        .open(&path);
    file.map_or_else(|_| Stdio::null(), Stdio::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_shim_lines() {
        assert_eq!(ShimLine::parse("created 42"), ShimLine::Created(42));
        assert_eq!(ShimLine::parse("created x"), ShimLine::Other);
        assert_eq!(ShimLine::parse("started"), ShimLine::Started);
        assert_eq!(
            ShimLine::parse("error runc said no"),
            ShimLine::Error("runc said no".into())
        );
        assert_eq!(ShimLine::parse("hello"), ShimLine::Other);
    }

    #[test]
    fn reads_lines_until_eof() {
        let (r, w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap();
        let mut w = File::from(sys::own(w));
        let mut lr = LineReader::new(File::from(sys::own(r)));
        w.write_all(b"created 7\nerr").unwrap();
        assert_eq!(lr.read_lines(), (vec!["created 7".to_string()], false));
        w.write_all(b"or x").unwrap();
        drop(w);
        assert_eq!(lr.read_lines(), (vec!["error x".to_string()], true));
    }

    #[test]
    fn cuts_over_long_lines() {
        let (r, w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap();
        let mut w = File::from(sys::own(w));
        let mut lr = LineReader::new(File::from(sys::own(r)));
        w.write_all(&vec![b'x'; 5000]).unwrap();
        let (lines, _) = lr.read_lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_SHIM_LINE);
    }
}
