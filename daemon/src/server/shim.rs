//! Starting a shim, and the lines it sends back.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nanoctr_shim::contract::args::ShimArgs;
use nanoctr_shim::contract::{proc_dir, Name};
use nanoctr_shim::contract::{DEFAULT_COLS, DEFAULT_LOG_SIZE, DEFAULT_ROWS, MAX_REPLY_LINE};

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
    let exit = open_fifo_reader(&proc.join(proc_dir::EXIT.str))?;
    let reply = open_fifo_reader(&proc.join(proc_dir::REPLY.str))?;
    let (read, write) = pipe_with(PipeFlags::CLOEXEC).map_err(sys::io_error)?;
    let (read, write): (OwnedFd, OwnedFd) = (sys::own(read), sys::own(write));
    rustix::fs::fcntl_setfl(sys::fd(&read), rustix::fs::OFlags::NONBLOCK).map_err(sys::io_error)?;
    rustix::io::fcntl_setfd(sys::fd(&write), FdFlags::empty()).map_err(sys::io_error)?;

    let words = command_line(proc, how, std::os::fd::AsRawFd::as_raw_fd(&write));
    let mut cmd = Command::new(shim);
    cmd.current_dir(proc)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(shim_log(proc))
        .args(words);
    let child = cmd.spawn()?;
    drop(write);
    Ok(Spawned {
        pid: child.id(),
        startup: File::from(read),
        exit,
        reply,
    })
}

/// The shim's command line for a process in `proc`, made as `how` says,
/// its startup pipe at descriptor `startup_fd`: the words of the
/// contract's [`ShimArgs`], which the shim parses back.
fn command_line(proc: &Path, how: &ShimOptions<'_>, startup_fd: i32) -> Vec<OsString> {
    let file = |name: Name| c(proc.join(name.str).as_os_str());
    let opt = |s: Option<&str>| s.map(|s| c(s.as_ref()));
    let (id, bundle) = (c(how.id.as_ref()), c(how.bundle.as_os_str()));
    let runtime = c(how.runtime.path.as_os_str());
    let (log, pid_file) = (file(proc_dir::RUNTIME_LOG), file(proc_dir::PID));
    let console = how.terminal.then(|| file(proc_dir::CONSOLE_SOCK));
    let root = how.runtime.root.as_deref().map(|r| c(r.as_os_str()));
    let [stdin, stdout, stderr] = how.stdio.map(opt);
    let (exec, restore) = match how.make {
        Make::Exec(f) => (Some(c(f.as_os_str())), None),
        Make::Restore(d) => (None, Some(c(d.as_os_str()))),
        Make::Create | Make::Run => (None, None),
    };
    let args = ShimArgs {
        id: &id,
        bundle: &bundle,
        runtime: &runtime,
        log: &log,
        pid_file: &pid_file,
        root: root.as_deref(),
        stdin: stdin.as_deref(),
        stdout: stdout.as_deref(),
        stderr: stderr.as_deref(),
        startup_fd,
        oom_score_adj: Some(how.oom_score_adj),
        run: how.make == Make::Run,
        terminal: how.terminal,
        console: console.as_deref(),
        cols: how.size.0.unwrap_or(DEFAULT_COLS),
        rows: how.size.1.unwrap_or(DEFAULT_ROWS),
        log_size: how.log_size.unwrap_or(DEFAULT_LOG_SIZE),
        interactive: how.interactive,
        exec: exec.as_deref(),
        restore: restore.as_deref(),
    };
    let mut words = Vec::new();
    args.words(&mut |key, value| {
        let mut word = OsString::from(key);
        word.push("=");
        word.push(OsStr::from_bytes(value));
        words.push(word);
    });
    words
}

/// A value for the shim's command line. Paths and ids never hold a NUL
/// (the kernel's cannot, and requests refuse control characters); were
/// one there, the value would be empty, and the shim refuses that.
fn c(s: &OsStr) -> CString {
    CString::new(s.as_bytes()).unwrap_or_default()
}

/// Lines from a shim's pipe or fifo, read without blocking.
pub struct LineReader {
    pub file: File,
    buf: Vec<u8>,
}

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
                    let room = MAX_REPLY_LINE.saturating_sub(self.buf.len());
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

/// Most bytes `shim.log` grows to; past it, the next shim of the process
/// dir (a restart) starts it afresh.
const SHIM_LOG_CAP: u64 = 16 * 1024;

/// The shim's stderr: `shim.log` in its process dir, where it says why it
/// failed (the same message the daemon gets), kept across restarts.
fn shim_log(proc: &Path) -> Stdio {
    let path = proc.join(proc_dir::SHIM_LOG.str);
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
    fn the_shim_parses_the_command_line_the_daemon_writes() {
        let runtime = Runtime {
            path: "/usr/bin/runc".into(),
            root: Some("/run/r".into()),
        };
        let how = ShimOptions {
            id: "web",
            runtime: &runtime,
            bundle: Path::new("/b/web"),
            oom_score_adj: -500,
            make: Make::Exec(Path::new("/s/web/sh/process.json")),
            terminal: true,
            interactive: true,
            size: (Some(100), None),
            log_size: Some(8192),
            stdio: [None, Some("/tmp/out"), None],
        };
        let proc = Path::new("/s/web/sh");
        let words = command_line(proc, &how, 7);
        let words: Vec<CString> = words
            .iter()
            .map(|w| CString::new(w.as_bytes()).unwrap())
            .collect();
        let a = ShimArgs::parse(words.iter().map(CString::as_c_str)).unwrap();
        assert_eq!(a.id, c"web");
        assert_eq!(a.bundle, c"/b/web");
        assert_eq!(a.runtime, c"/usr/bin/runc");
        assert_eq!(a.root, Some(c"/run/r"));
        assert_eq!(a.log, c"/s/web/sh/log.json");
        assert_eq!(a.pid_file, c"/s/web/sh/pid");
        assert_eq!(a.startup_fd, 7);
        assert_eq!(a.oom_score_adj, Some(-500));
        assert!(a.terminal && a.interactive && !a.run);
        assert_eq!(a.console, Some(c"/s/web/sh/console.sock"));
        assert_eq!((a.cols, a.rows, a.log_size), (100, 24, 8192));
        assert_eq!(a.exec, Some(c"/s/web/sh/process.json"));
        assert_eq!(
            (a.stdin, a.stdout, a.stderr),
            (None, Some(c"/tmp/out"), None)
        );
        let plain = ShimOptions {
            make: Make::Run,
            terminal: false,
            interactive: false,
            ..how
        };
        let words = command_line(proc, &plain, 3);
        let words: Vec<CString> = words
            .iter()
            .map(|w| CString::new(w.as_bytes()).unwrap())
            .collect();
        let a = ShimArgs::parse(words.iter().map(CString::as_c_str)).unwrap();
        assert!(a.run && !a.terminal && a.console.is_none() && a.exec.is_none());
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
        assert_eq!(lines[0].len(), MAX_REPLY_LINE);
    }
}
