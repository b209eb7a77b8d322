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

use std::collections::HashMap;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use nanoctr::wire::proto::split_words;

pub mod sys;

mod conn;
mod daemon;
mod faults;

pub use conn::*;
pub use daemon::*;
pub use faults::*;

/// How long any single answer may take before a test fails instead of
/// hanging. Generous: this is a guard, not a measurement.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
}

/// The directory holding nanoctr, the link nanoctrd to it, and
/// nanoctr-shim, as they are installed.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = match std::env::var_os("NANOCTR_BIN_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => {
                let dir = workspace().join("target");
                release_build(&dir, &["-p", "nanoctr", "-p", "nanoctr-shim"]);
                dir.join(TARGET).join("release")
            }
        };
        link_daemon(&dir);
        dir
    })
}

/// Makes `nanoctrd` in `dir` the link to `nanoctr` it is when installed
/// (replacing a program of its own from a `split` build). Test processes
/// may race to it; any of them making it is as good.
fn link_daemon(dir: &Path) {
    let link = dir.join("nanoctrd");
    let linked = || std::fs::read_link(&link).is_ok_and(|t| t == Path::new("nanoctr"));
    if linked() {
        return;
    }
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink("nanoctr", &link) {
        assert!(linked(), "link {}: {e}", link.display());
    }
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

/// nanoctrd (the link to nanoctr) built with `--features heap-stats` (heap
/// gauges in `metrics`), in a target dir of its own.
pub fn heap_stats_daemon() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = workspace().join("target/heap-stats");
        let args = [
            "-p",
            "nanoctr",
            "--bin",
            "nanoctr",
            "--features",
            "heap-stats",
        ];
        release_build(&dir, &args);
        let bins = dir.join(TARGET).join("release");
        link_daemon(&bins);
        bins.join("nanoctrd")
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
        // Named anew when mkrootfs.sh makes more (2: /etc/hosts).
        let dir = workspace().join("target/test-rootfs2");
        if dir.join("bin/busybox").is_file() {
            return dir;
        }
        let tmp = workspace().join(format!("target/test-rootfs2.{}", std::process::id()));
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

/// The mount points in a mountinfo table, in its order (the kernel writes
/// a space in a path as `\040`; test paths have none).
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// The loop devices bound to `file` (`/sys/block/loop*/loop/backing_file`).
pub fn loops_backed_by(file: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let backing = e.path().join("loop/backing_file");
            std::fs::read_to_string(backing).is_ok_and(|b| Path::new(b.trim_end()) == file)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
