//! The harness for nanoctr's integration tests.
//!
//! Tests run the real, statically linked release binaries against real
//! runtimes (runc, crun) on a busybox bundle built here from busybox-static
//! with `configs/bundles/busybox/mkrootfs.sh`. Each test gets a daemon of
//! its own, with its own state dir, socket and runtime root, so tests run
//! in parallel and `runc list` shows only their containers.
//!
//! Binaries come from `$NANOCTR_BIN_DIR`, or are built once by
//! `cargo build --release --target x86_64-unknown-linux-musl`.

#![deny(unsafe_code)]

use std::collections::HashMap;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nanoctr::wire::proto::{split_words, ReplyLine};

pub mod sys;

/// How long any single answer may take before a test fails instead of
/// hanging. Generous: this is a guard, not a measurement.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
}

/// The directory holding nanoctrd, nanoctr and nanoctr-shim.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("NANOCTR_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let dir = workspace().join("target");
        release_build(&dir, &["-p", "nanoctr", "-p", "nanoctr-shim"]);
        dir.join(TARGET).join("release")
    })
}

/// The target the tests run the binaries of.
const TARGET: &str = "x86_64-unknown-linux-musl";

/// `cargo build --release --target TARGET --target-dir DIR ARGS...`.
fn release_build(dir: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(dir)
        .args(args)
        .current_dir(workspace())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build {args:?} failed");
}

/// nanoctrd built with `--features heap-stats` (heap gauges in `metrics`),
/// in a target dir of its own.
pub fn heap_stats_daemon() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = workspace().join("target/heap-stats");
        let args = [
            "-p",
            "nanoctr",
            "--bin",
            "nanoctrd",
            "--features",
            "heap-stats",
        ];
        release_build(&dir, &args);
        dir.join(TARGET).join("release/nanoctrd")
    })
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// A busybox root filesystem shared (read-only) by every test bundle.
pub fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = workspace().join("target/test-rootfs");
        if dir.join("bin/busybox").is_file() {
            return dir;
        }
        let tmp = workspace().join(format!("target/test-rootfs.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let script = workspace().join("configs/bundles/busybox/mkrootfs.sh");
        let status = Command::new("sh")
            .arg(&script)
            .arg(&tmp)
            .status()
            .expect("run mkrootfs.sh");
        assert!(
            status.success(),
            "mkrootfs.sh failed (is busybox-static installed?)"
        );
        // Another test binary may have won the race; either copy is whole.
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        dir
    })
}

/// The example bundle's config.json with `args` and an absolute rootfs.
pub fn bundle_config(args: &[&str]) -> String {
    let template = std::fs::read_to_string(workspace().join("configs/bundles/busybox/config.json"))
        .expect("read the example bundle's config.json");
    let args_json: Vec<String> = args
        .iter()
        .map(|a| nanoctr::bundle::json::quote(a))
        .collect();
    let mut replaced = (0, 0);
    let out: Vec<String> = template
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            if trimmed.starts_with("\"args\":") {
                replaced.0 += 1;
                format!("{indent}\"args\": [{}],", args_json.join(", "))
            } else if trimmed == "\"path\": \"rootfs\"," {
                replaced.1 += 1;
                format!(
                    "{indent}\"path\": {},",
                    nanoctr::bundle::json::quote(&rootfs().to_string_lossy())
                )
            } else {
                line.to_string()
            }
        })
        .collect();
    assert_eq!(
        replaced,
        (1, 1),
        "the template's args and root.path lines moved"
    );
    out.join("\n")
}

/// Parses `key=value` words of a data line.
pub fn fields(line: &str) -> HashMap<String, String> {
    split_words(line.as_bytes())
        .expect("a data line splits into words")
        .into_iter()
        .filter_map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// A whole answer: data lines, then the final line.
#[derive(Debug, Clone)]
pub struct Answer {
    pub data: Vec<String>,
    pub last: String,
}

impl Answer {
    /// Asserts `OK` and returns what follows it.
    #[track_caller]
    pub fn ok(&self) -> &str {
        match ReplyLine::parse(&self.last) {
            ReplyLine::Ok(rest) => rest,
            _ => panic!("expected OK, got {self:?}"),
        }
    }

    /// Asserts `ERR` and returns its code and message.
    #[track_caller]
    pub fn err(&self) -> (&str, &str) {
        match ReplyLine::parse(&self.last) {
            ReplyLine::Err(code, message) => (code, message),
            _ => panic!("expected ERR, got {self:?}"),
        }
    }

    /// Asserts `ERR CODE` and returns the message.
    #[track_caller]
    pub fn err_code(&self, code: &str) -> &str {
        let (got, message) = self.err();
        assert_eq!(got, code, "{self:?}");
        message
    }

    /// The value of `key` in the `OK` line.
    #[track_caller]
    pub fn ok_field(&self, key: &str) -> String {
        fields(self.ok())
            .remove(key)
            .unwrap_or_else(|| panic!("no {key}= in {self:?}"))
    }
}

/// A connection to a daemon.
pub struct Conn {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Conn {
    pub fn connect(socket: &Path) -> std::io::Result<Conn> {
        let writer = UnixStream::connect(socket)?;
        writer.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        let reader = BufReader::new(writer.try_clone()?);
        Ok(Conn { writer, reader })
    }

    /// Sends bytes. A daemon that turns a connection away answers and
    /// closes before reading, so a broken pipe here is not an error: the
    /// answer is still there to read.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        match self.writer.write_all(bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.expect("send to the daemon"),
        }
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Reads one whole answer.
    #[track_caller]
    pub fn answer(&mut self) -> Answer {
        let mut data = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .expect("read an answer (timed out?)");
            assert!(
                n > 0,
                "the daemon closed the connection; data so far: {data:?}"
            );
            let line = line.trim_end_matches('\n').to_string();
            if ReplyLine::parse(&line).is_final() {
                return Answer { data, last: line };
            }
            data.push(line);
        }
    }

    /// Reads one line (an event, on a subscription).
    #[track_caller]
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .expect("read a line (timed out?)");
        assert!(n > 0, "the daemon closed the connection");
        line.trim_end_matches('\n').to_string()
    }

    #[track_caller]
    pub fn ask(&mut self, line: &str) -> Answer {
        self.send(line);
        self.answer()
    }

    /// True if an answer (or anything) is waiting to be read, without
    /// blocking.
    pub fn has_input(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return true;
        }
        // The reader shares the socket (and so O_NONBLOCK); what it reads
        // here stays buffered for the next answer.
        self.writer.set_nonblocking(true).expect("nonblocking");
        let got = self.reader.fill_buf().map(|b| !b.is_empty());
        self.writer.set_nonblocking(false).expect("blocking");
        matches!(got, Ok(true))
    }

    /// How long a read may wait before the test fails.
    pub fn set_timeout(&self, limit: Duration) {
        self.writer
            .set_read_timeout(Some(limit))
            .expect("set a read timeout");
    }

    /// True once the daemon has closed the connection (and nothing is
    /// left to read).
    pub fn is_closed(&mut self) -> bool {
        matches!(self.reader.fill_buf(), Ok([]))
    }

    pub fn into_stream(self) -> UnixStream {
        self.writer
    }
}

/// The runtime a test daemon uses by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Runc,
    /// crun 1.8 refuses hybrid cgroups; the daemon (and so its shims and
    /// crun) runs in a private mount namespace with cgroup v2's controller
    /// list hidden. On a pure cgroup v2 host this is not needed.
    Crun,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }

    /// A command that runs `argv` where this runtime works.
    fn wrap(self, dir: &Path, argv: &[&str]) -> Command {
        match self {
            Runtime::Runc => {
                let mut cmd = Command::new(argv[0]);
                cmd.args(&argv[1..]);
                cmd
            }
            Runtime::Crun => {
                let empty = dir.join("empty-controllers");
                std::fs::write(&empty, "").expect("write an empty file");
                let mut cmd = Command::new("unshare");
                cmd.args(["-m", "--propagation", "private", "sh", "-c"])
                    .arg(
                        "mount --bind \"$0\" /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; exec \"$@\"",
                    )
                    .arg(&empty)
                    .args(argv);
                cmd
            }
        }
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// How a test daemon is started, beyond its own dirs.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Extra nanoctrd flags.
    pub flags: Vec<String>,
    /// A command the daemon runs under (`prlimit --nofile=...`).
    pub prefix: Vec<String>,
    /// Mount a tmpfs of this many KiB as the state dir.
    pub state_tmpfs_kib: Option<u32>,
    /// Run this nanoctrd instead of the release one.
    pub daemon: Option<PathBuf>,
    /// The config file's text (empty when `None`): `conf/nanoctrd.conf`,
    /// with `conf/containers.d/` as the containers dir.
    pub config: Option<String>,
}

/// A daemon of a test's own.
pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub runtime_root: PathBuf,
    pub runtime: Runtime,
    launch: Launch,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(Runtime::Runc, &[])
    }

    /// Starts `nanoctrd` with the test's dirs plus `extra` flags, and waits
    /// until it accepts connections.
    pub fn start_with(runtime: Runtime, extra: &[&str]) -> Daemon {
        let launch = Launch {
            flags: extra.iter().map(|s| s.to_string()).collect(),
            ..Launch::default()
        };
        Daemon::launch(runtime, launch)
    }

    pub fn launch(runtime: Runtime, launch: Launch) -> Daemon {
        let mut d = Daemon::prepare(runtime, launch);
        d.spawn();
        d
    }

    /// The daemon's dirs and config, without starting it: for bundles the
    /// config names, which must be there when it starts. [`Daemon::spawn`]
    /// starts it.
    pub fn prepare(runtime: Runtime, launch: Launch) -> Daemon {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("nct-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("make the test dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let d = Daemon {
            child: None,
            socket: dir.join("s.sock"),
            state: dir.join("state"),
            runtime_root: dir.join("rt"),
            dir,
            runtime,
            launch,
        };
        if let Some(kib) = d.launch.state_tmpfs_kib {
            std::fs::create_dir_all(&d.state).unwrap();
            let status = Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={kib}k,mode=0711"),
                    "tmpfs",
                ])
                .arg(&d.state)
                .status()
                .unwrap();
            assert!(status.success(), "mount a tmpfs state dir");
        }
        let conf = d.dir.join("conf");
        std::fs::create_dir_all(conf.join("containers.d")).expect("make the config dir");
        let text = d.launch.config.clone().unwrap_or_default();
        std::fs::write(conf.join("nanoctrd.conf"), text).expect("write the config");
        rootfs();
        d
    }

    /// More flags for the next [`Daemon::spawn`].
    pub fn launch_flags(&mut self, flags: &[&str]) {
        self.launch
            .flags
            .extend(flags.iter().map(|s| s.to_string()));
    }

    /// Starts the daemon and waits until it answers.
    pub fn spawn(&mut self) {
        let daemon = self
            .launch
            .daemon
            .clone()
            .unwrap_or_else(|| bin("nanoctrd"));

        let shim = bin("nanoctr-shim");
        let mut argv: Vec<&str> = self.launch.prefix.iter().map(String::as_str).collect();
        argv.extend_from_slice(&[
            daemon.to_str().unwrap(),
            "--socket",
            self.socket.to_str().unwrap(),
            "--state-dir",
            self.state.to_str().unwrap(),
            "--runtime",
            self.runtime.name(),
            "--runtime-root",
            self.runtime_root.to_str().unwrap(),
            "--shim",
            shim.to_str().unwrap(),
        ]);
        let conf = self.dir.join("conf");
        let (config, containers) = (conf.join("nanoctrd.conf"), conf.join("containers.d"));
        argv.extend_from_slice(&[
            "--config",
            config.to_str().unwrap(),
            "--containers-dir",
            containers.to_str().unwrap(),
        ]);
        argv.extend(self.launch.flags.iter().map(String::as_str));
        let log = std::fs::File::create(self.dir.join("daemon.log")).expect("daemon log");
        let child = self
            .runtime
            .wrap(&self.dir, &argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nanoctrd");
        self.child = Some(child);
        // Ready means answering: a bare connect can reach the socket of a
        // daemon killed a moment ago, held by a child of it between fork
        // and exec.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers_hello() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("nanoctrd exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "nanoctrd did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn answers_hello(&self) -> bool {
        let Ok(mut c) = Conn::connect(&self.socket) else {
            return false;
        };
        let _ = c.writer.set_read_timeout(Some(Duration::from_millis(500)));
        c.send("hello");
        let mut line = String::new();
        c.reader.read_line(&mut line).is_ok() && line.starts_with("OK nanoctr")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(&self.socket).expect("connect to nanoctrd")
    }

    /// One request on a fresh connection.
    #[track_caller]
    pub fn ask(&self, line: &str) -> Answer {
        self.conn().ask(line)
    }

    /// A bundle named `name` that runs `args`.
    pub fn bundle(&self, name: &str, args: &[&str]) -> PathBuf {
        let dir = self.dir.join("bundles").join(name);
        std::fs::create_dir_all(&dir).expect("make bundle dir");
        std::fs::write(dir.join("config.json"), bundle_config(args)).expect("write config.json");
        dir
    }

    /// `list`, as id -> its fields.
    #[track_caller]
    pub fn listed(&self) -> HashMap<String, HashMap<String, String>> {
        let a = self.ask("list");
        a.ok();
        a.data
            .iter()
            .map(|l| fields(l))
            .map(|f| (f["id"].clone(), f))
            .collect()
    }

    /// Fills the state dir (a small tmpfs, [`Launch::state_tmpfs_kib`])
    /// to the last byte with a file; removing it makes the room again.
    pub fn fill_state_dir(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.state.join(".filler");
        let mut f = std::fs::File::create(&filler).expect("make the filler");
        while f.write_all(&[0u8; 4096]).is_ok() {}
        while f.write_all(&[0u8; 1]).is_ok() {}
        filler
    }

    /// The container directories in the state dir (the daemon's own files
    /// start with a dot, which no container id can).
    pub fn container_dirs(&self) -> Vec<String> {
        std::fs::read_dir(&self.state)
            .expect("read the state dir")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.'))
            .collect()
    }

    /// Runs the `nanoctr` client against this daemon.
    pub fn nanoctr(&self, args: &[&str]) -> Output {
        Command::new(bin("nanoctr"))
            .args(args)
            .env("NANOCTR_SOCKET", &self.socket)
            .output()
            .expect("run nanoctr")
    }

    /// Runs the runtime itself on this daemon's root.
    pub fn runtime_cmd(&self, args: &[&str]) -> Output {
        let root = self.runtime_root.to_str().unwrap();
        let mut argv = vec![self.runtime.name(), "--root", root];
        argv.extend_from_slice(args);
        self.runtime
            .wrap(&self.dir, &argv)
            .output()
            .expect("run the runtime")
    }

    /// The ids the runtime knows on this daemon's root.
    pub fn runtime_ids(&self) -> Vec<String> {
        if !self.runtime_root.exists() {
            return Vec::new();
        }
        let out = self.runtime_cmd(&["list", "-q"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The runtime's view of a container's status (`runc state`).
    pub fn runtime_status(&self, id: &str) -> Option<String> {
        let out = self.runtime_cmd(&["state", id]);
        let text = String::from_utf8_lossy(&out.stdout);
        let at = text.find("\"status\":")?;
        let rest = text[at + 9..].trim_start().strip_prefix('"')?;
        Some(rest[..rest.find('"')?].to_string())
    }

    /// SIGTERM to the daemon; waits for it and returns how it ended.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the daemon is running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().expect("wait for nanoctrd")
    }

    /// SIGKILL to the daemon, as a crash or the OOM killer would.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the daemon is running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts the daemon again on the same dirs, with the same flags.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon is running").id()
    }

    /// Live shims working in this daemon's state dir, by container id.
    pub fn shims(&self) -> Vec<(String, u32)> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.trim() != "nanoctr-shim" || !alive(pid) {
                continue;
            }
            let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
                continue;
            };
            if let Ok(rel) = cwd.strip_prefix(&self.state) {
                let id = rel
                    .components()
                    .next()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned());
                found.push((id.unwrap_or_default(), pid));
            }
        }
        found
    }

    /// Writes a runtime that injects faults a real one cannot produce on
    /// demand, per verb, as [`Faults`] says; otherwise it runs the real one.
    pub fn faulty_runtime(&self) -> Faults {
        Faults::new(&self.dir.join("faults"), self.runtime.name())
    }

    /// Waits until `cond` holds, polling; panics after the answer timeout.
    #[track_caller]
    pub fn eventually(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until process `proc` (`init` or an exec's name) of container
    /// `id` has exited and its shim is done with it: `exitStatus` written
    /// and the shim gone. With the daemon down, that is an exit a daemon
    /// started next finds only in the state dir.
    #[track_caller]
    pub fn await_exit_status(&self, id: &str, proc: &str) {
        let dir = self.state.join(id).join(proc);
        let shim = read_pid(&dir.join("shim.pid"));
        self.eventually(&format!("{id}/{proc} to exit and its shim to go"), || {
            dir.join("exitStatus").is_file() && !alive(shim)
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for id in self.runtime_ids() {
            let _ = self.runtime_cmd(&["delete", "--force", &id]);
        }
        for (_, pid) in self.shims() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        if self.launch.state_tmpfs_kib.is_some() {
            let _ = Command::new("umount").arg("-l").arg(&self.state).status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Is a process alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// The pid in a file (`shim.pid`, `pid`).
pub fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .expect("a pid")
}

/// A runtime wrapper that injects faults, per verb: `create`, `run`,
/// `start`, `kill`, `delete`, `state` (`run` is what the shim calls for a
/// `run` request: create and start in one). What each verb does is a file
/// in its directory, so a test can change it while the daemon runs.
pub struct Faults {
    dir: PathBuf,
    pub runtime: PathBuf,
}

/// A fault for one verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Wait until [`Faults::open_gate`], then run the real runtime.
    Gate,
    /// Never finish.
    Hang,
    /// Die of SIGSEGV.
    Crash,
    /// Write garbage to the log and stdout and exit 1.
    Garbage,
}

impl Faults {
    fn new(dir: &Path, real: &str) -> Faults {
        std::fs::create_dir_all(dir).unwrap();
        let runtime = dir.join("faulty-runtime");
        let script = format!(
            r#"#!/bin/sh
# Injects what a real runtime cannot do on demand, per verb, as the files
# {dir}/fault.VERB say; otherwise runs {real}.
dir={dir}
verb=""; log=""; prev=""
for a in "$@"; do
	[ "$prev" = --log ] && log=$a
	prev=$a
	if [ -z "$verb" ]; then
		case "$a" in create|run|start|kill|delete|state) verb=$a ;; esac
	fi
done
if [ -n "$verb" ] && [ -f "$dir/fault.$verb" ]; then
	case "$(cat "$dir/fault.$verb")" in
	gate) cat "$dir/gate.$verb" >/dev/null ;;
	hang) exec sleep 100000 ;;
	crash) kill -SEGV $$ ;;
	garbage) printf '\001\002 not json {{{{\n' >>"$log"; echo "garbage on stdout"; exit 1 ;;
	esac
fi
exec {real} "$@"
"#,
            dir = dir.display()
        );
        std::fs::write(&runtime, script).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
        Faults {
            dir: dir.to_path_buf(),
            runtime,
        }
    }

    /// Makes `verb` do `fault` from now on.
    pub fn set(&self, verb: &str, fault: Fault) {
        let word = match fault {
            Fault::Gate => {
                let gate = self.dir.join(format!("gate.{verb}"));
                if !gate.exists() {
                    let ok = Command::new("mkfifo")
                        .arg(&gate)
                        .status()
                        .unwrap()
                        .success();
                    assert!(ok, "mkfifo");
                }
                "gate"
            }
            Fault::Hang => "hang",
            Fault::Crash => "crash",
            Fault::Garbage => "garbage",
        };
        std::fs::write(self.dir.join(format!("fault.{verb}")), word).unwrap();
    }

    /// Makes `verb` run the real runtime again (a call held at the gate
    /// stays there until [`Faults::open_gate`]).
    pub fn clear(&self, verb: &str) {
        let _ = std::fs::remove_file(self.dir.join(format!("fault.{verb}")));
    }

    /// Lets the calls held at `verb`'s gate go on.
    pub fn open_gate(&self, verb: &str) {
        // Opening the write end ends the reader's `cat`.
        drop(
            std::fs::OpenOptions::new()
                .write(true)
                .open(self.dir.join(format!("gate.{verb}")))
                .unwrap(),
        );
    }

    /// `runtime=PATH` for a request.
    pub fn option(&self) -> String {
        format!("runtime={}", self.runtime.display())
    }
}

/// A byte stream read until a pattern shows up: an attach socket, or the
/// master side of a pty a client runs on.
pub struct Stream<T> {
    pub io: T,
    pub seen: Vec<u8>,
}

impl<T: std::io::Read + std::io::Write> Stream<T> {
    pub fn new(io: T) -> Self {
        Stream {
            io,
            seen: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).expect("write");
    }

    /// Reads until `pattern` has come (in what was read since the last
    /// match), panicking after the answer timeout. Returns what came.
    #[track_caller]
    pub fn expect(&mut self, pattern: &str) -> String {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            if let Some(at) = find(&self.seen, pattern.as_bytes()) {
                let upto: Vec<u8> = self.seen.drain(..at + pattern.len()).collect();
                return String::from_utf8_lossy(&upto).into_owned();
            }
            assert!(
                Instant::now() < deadline,
                "{pattern:?} did not come; got {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            let mut buf = [0u8; 4096];
            match self.io.read(&mut buf) {
                Ok(0) => panic!(
                    "EOF before {pattern:?}; got {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                    panic!(
                        "the other side is gone before {pattern:?}; got {:?}",
                        String::from_utf8_lossy(&self.seen)
                    )
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Daemon {
    /// Attaches to a container's init through its shim's socket, as the
    /// client does.
    pub fn attach(&self, id: &str) -> Stream<UnixStream> {
        self.attach_proc(id, "init")
    }

    /// Attaches to one process of a container (`init` or an exec's name).
    pub fn attach_proc(&self, id: &str, proc: &str) -> Stream<UnixStream> {
        let ok = self.ask(&format!("attach {id} {proc}")).ok_field("path");
        let s = UnixStream::connect(&ok).expect("connect to the attach socket");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Stream::new(s)
    }
}
