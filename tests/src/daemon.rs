//! A daemon of a test's own: its dirs, the runtime it uses, starting,
//! asking, restarting and killing it, and what it leaves behind.

use std::collections::HashMap;

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{
    alive, bin, bundle_config, fields, read_pid, rootfs, Answer, Conn, Faults, Stream,
    ANSWER_TIMEOUT,
};

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
    /// And this nanoctr-shim.
    pub shim: Option<PathBuf>,
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

        let shim = (self.launch.shim.clone()).unwrap_or_else(|| bin("nanoctr-shim"));
        let updates = self.dir.join("updates");
        let net = self.dir.join("net");
        let mut argv: Vec<&str> = self.launch.prefix.iter().map(String::as_str).collect();
        argv.extend_from_slice(&[
            daemon.to_str().unwrap(),
            "--socket",
            self.socket.to_str().unwrap(),
            "--state-dir",
            self.state.to_str().unwrap(),
            "--update-dir",
            updates.to_str().unwrap(),
            "--net-dir",
            net.to_str().unwrap(),
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

    /// The mount points at or under `dir`, in the daemon's mount namespace
    /// (crun's daemon has one of its own) while it runs, else in the
    /// test's.
    pub fn mounts_under(&self, dir: &Path) -> Vec<String> {
        let table = match &self.child {
            Some(child) => format!("/proc/{}/mountinfo", child.id()),
            None => "/proc/self/mountinfo".into(),
        };
        crate::mount_points(&std::fs::read_to_string(table).unwrap_or_default())
            .into_iter()
            .filter(|p| Path::new(p).starts_with(dir))
            .collect()
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
        // What a failed test left mounted (an image rootfs), newest first,
        // so that removing the dir never reaches into a mount.
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for point in crate::mount_points(&table).iter().rev() {
            if Path::new(point).starts_with(&self.dir) {
                let _ = Command::new("umount").arg("-l").arg(point).status();
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
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
