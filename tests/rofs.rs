//! Read-only rootfs images: bundles whose root.path is a squashfs or an
//! erofs file, built here with the real mksquashfs and mkfs.erofs from the
//! busybox test rootfs, run by real runc (and crun) through the daemon.
//! Each checks what the kernel says afterwards: the mounts in the
//! daemon's mount table and the loop devices bound to the image.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nanoctr_tests::{
    bundle_config, fields, loops_backed_by, read_pid, rootfs, workspace, Daemon, Fault, Runtime,
};

/// The test rootfs as an image of filesystem `fs` (`squashfs`, `erofs`),
/// built once per test run.
fn image(fs: &str) -> PathBuf {
    static IMAGES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (squashfs, erofs) = IMAGES.get_or_init(|| {
        let dir = workspace().join("target/test-images");
        std::fs::create_dir_all(&dir).unwrap();
        let (src, pid) = (rootfs(), std::process::id());
        let make = |name: &str, mut cmd: Command, tmp: &Path| {
            let _ = std::fs::remove_file(tmp);
            let status = cmd.status().unwrap_or_else(|e| {
                panic!("{cmd:?}: {e} (apt-get install squashfs-tools erofs-utils)")
            });
            assert!(status.success(), "{cmd:?} failed");
            // Another test binary may have made it meanwhile; either is whole.
            let done = dir.join(name);
            std::fs::rename(tmp, &done).unwrap();
            done
        };
        let tmp = dir.join(format!("rootfs.sqfs.{pid}"));
        let mut sq = Command::new("mksquashfs");
        sq.arg(src)
            .arg(&tmp)
            .args(["-noappend", "-quiet", "-no-progress", "-all-root"]);
        let tmp_e = dir.join(format!("rootfs.erofs.{pid}"));
        let mut ero = Command::new("mkfs.erofs");
        ero.args(["--quiet", "--all-root"]).arg(&tmp_e).arg(src);
        (
            make("rootfs.sqfs", sq, &tmp),
            make("rootfs.erofs", ero, &tmp_e),
        )
    });
    match fs {
        "squashfs" => squashfs.clone(),
        "erofs" => erofs.clone(),
        _ => panic!("no image of {fs}"),
    }
}

/// A copy of [`image`] of the test's own, so that the loop devices bound
/// to it are its own too.
fn own_image(d: &Daemon, fs: &str) -> PathBuf {
    let copy = d.dir.join(format!("root.{fs}"));
    std::fs::copy(image(fs), &copy).unwrap();
    copy
}

/// A bundle whose root.path is `image`, writable (root.readonly false),
/// that runs `args`.
fn image_bundle(d: &Daemon, name: &str, image: &Path, args: &[&str]) -> PathBuf {
    let root = nanoctr::bundle::json::quote(&rootfs().to_string_lossy());
    let config = bundle_config(args)
        .replace(
            &root,
            &nanoctr::bundle::json::quote(&image.to_string_lossy()),
        )
        .replace("\"readonly\": true", "\"readonly\": false");
    let dir = d.dir.join("bundles").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    dir
}

/// Waits until nothing is mounted in the state dir and no loop device is
/// bound to `image` (an auto-clearing loop device lets go once its last
/// mount is gone).
#[track_caller]
fn nothing_left(d: &Daemon, image: &Path) {
    assert_eq!(d.mounts_under(&d.state), Vec::<String>::new());
    d.eventually("the loop device to free itself", || {
        loops_backed_by(image).is_empty()
    });
}

/// The mounts of container `id`'s image rootfs, as names in its dir.
fn mounts_of(d: &Daemon, id: &str) -> Vec<String> {
    let dir = d.state.join(id);
    d.mounts_under(&dir)
        .iter()
        .map(|p| {
            Path::new(p)
                .strip_prefix(&dir)
                .unwrap()
                .display()
                .to_string()
        })
        .collect()
}

/// The output of a container that has exited.
fn output(d: &Daemon, id: &str) -> String {
    std::fs::read_to_string(d.state.join(id).join("init/output")).unwrap_or_default()
}

#[test]
fn a_squashfs_rootfs_is_seen_written_over_and_gone_after_delete() {
    let d = Daemon::start();
    let img = own_image(&d, "squashfs");
    let script = "cat /etc/passwd; test -e /note && echo seen-before; \
                  echo written > /note && cat /note; sleep 1000";
    let b = image_bundle(&d, "sq", &img, &["sh", "-c", script]);
    let config = std::fs::read(b.join("config.json")).unwrap();
    d.ask(&format!("run sq {}", b.display())).ok();
    let state = fields(&d.ask("state sq").data[0]);
    assert_eq!(state["rootfs"], "image:squashfs");
    assert_eq!(mounts_of(&d, "sq"), ["lower", "upper-tmpfs", "rootfs"]);
    assert_eq!(loops_backed_by(&img).len(), 1);
    d.eventually("the container to write to /", || {
        output(&d, "sq").contains("written")
    });
    let out = output(&d, "sq");
    assert!(out.starts_with("root:x:0:0"), "{out}");
    assert!(!out.contains("seen-before"), "{out}");
    // The write is in the tmpfs layer, not in the image.
    let upper = d.state.join("sq/upper-tmpfs/upper/note");
    assert_eq!(std::fs::read_to_string(upper).unwrap(), "written\n");
    // exec sees the same root.
    d.ask("exec sq look -- cat /note").ok();
    assert_eq!(d.ask("wait sq look").ok(), "exit=0");

    d.ask("delete sq force").ok();
    nothing_left(&d, &img);
    assert!(d.container_dirs().is_empty());
    assert_eq!(
        std::fs::read(b.join("config.json")).unwrap(),
        config,
        "the bundle is as it was"
    );

    // A new container from the same image starts from the image alone.
    d.ask(&format!("run sq {}", b.display())).ok();
    d.eventually("the second run to write", || {
        output(&d, "sq").contains("written")
    });
    assert!(!output(&d, "sq").contains("seen-before"));
    d.ask("delete sq force").ok();
    nothing_left(&d, &img);
}

#[test]
fn an_erofs_rootfs_with_a_persistent_overlay_keeps_its_writes() {
    let d = Daemon::start();
    let img = own_image(&d, "erofs");
    let keep = d.dir.join("persist/web");
    let script = "cat /count 2>/dev/null; echo x >> /count";
    let b = image_bundle(&d, "ero", &img, &["sh", "-c", script]);
    for round in 1..=2 {
        d.ask(&format!(
            "run ero {} overlay={}",
            b.display(),
            keep.display()
        ))
        .ok();
        assert_eq!(fields(&d.ask("state ero").data[0])["rootfs"], "image:erofs");
        assert_eq!(d.ask("wait ero").ok(), "exit=0");
        assert_eq!(mounts_of(&d, "ero"), ["lower", "rootfs"], "no tmpfs");
        assert_eq!(output(&d, "ero"), "x\n".repeat(round - 1));
        d.ask("delete ero").ok();
        nothing_left(&d, &img);
        let kept = std::fs::read_to_string(keep.join("upper/count")).unwrap();
        assert_eq!(kept, "x\n".repeat(round));
    }
    // The state dir is nanoctr's own: no overlay there.
    let inside = d.state.join("upper");
    let e = d
        .ask(&format!(
            "run ero {} overlay={}",
            b.display(),
            inside.display()
        ))
        .err_code("denied")
        .to_string();
    assert!(e.contains("state dir"), "{e}");
}

#[test]
fn overlay_none_is_the_image_alone_read_only() {
    let d = Daemon::start();
    let img = own_image(&d, "squashfs");
    let b = image_bundle(
        &d,
        "ro",
        &img,
        &["sh", "-c", "ls /bin/busybox && echo x > /x"],
    );
    d.ask(&format!("run ro {} overlay=none", b.display())).ok();
    assert_ne!(d.ask("wait ro").ok(), "exit=0");
    assert_eq!(mounts_of(&d, "ro"), ["rootfs"]);
    let out = output(&d, "ro");
    assert!(
        out.contains("/bin/busybox") && out.contains("Read-only file system"),
        "{out}"
    );
    d.ask("delete ro").ok();
    nothing_left(&d, &img);
}

#[test]
fn a_file_that_is_no_image_is_invalid_and_nothing_is_mounted() {
    let d = Daemon::start();
    let junk = d.dir.join("junk.img");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    let b = image_bundle(&d, "junk", &junk, &["true"]);
    let e = d
        .ask(&format!("run j {}", b.display()))
        .err_code("invalid")
        .to_string();
    assert!(e.contains("no squashfs or erofs image"), "{e}");
    // A squashfs magic on a superblock the kernel refuses (version 9.0):
    // the mount fails, and neither a mount nor a loop device is left.
    let mut bad = std::fs::read(image("squashfs")).unwrap();
    bad[28..30].copy_from_slice(&9u16.to_le_bytes());
    let corrupt = d.dir.join("corrupt.sqfs");
    std::fs::write(&corrupt, bad).unwrap();
    let b = image_bundle(&d, "corrupt", &corrupt, &["true"]);
    let e = d
        .ask(&format!("run c {}", b.display()))
        .err_code("invalid")
        .to_string();
    assert!(e.contains("cannot mount squashfs image"), "{e}");
    nothing_left(&d, &corrupt);
    assert!(d.container_dirs().is_empty(), "{:?}", d.container_dirs());
    // overlay= on a directory rootfs says what it is for.
    let plain = d.bundle("plain", &["true"]);
    let e = d
        .ask(&format!("run p {} overlay=none", plain.display()))
        .err_code("invalid")
        .to_string();
    assert!(e.contains("image file"), "{e}");
    assert_eq!(d.ask("list").ok(), "count=0");
}

#[test]
fn kill_9_keeps_a_running_image_container_running_and_mounted() {
    let mut d = Daemon::start();
    let img = own_image(&d, "squashfs");
    let b = image_bundle(
        &d,
        "sleep",
        &img,
        &["sh", "-c", "echo hi > /hi; sleep 1000"],
    );
    d.ask(&format!("run k {}", b.display())).ok();
    let init = read_pid(&d.state.join("k/init/pid"));
    d.kill9();
    d.restart();
    assert_eq!(fields(&d.ask("state k").data[0])["status"], "running");
    assert_eq!(mounts_of(&d, "k"), ["lower", "upper-tmpfs", "rootfs"]);
    assert_eq!(loops_backed_by(&img).len(), 1, "mounted once, not twice");
    d.ask("exec k cat -- cat /hi").ok();
    assert_eq!(d.ask("wait k cat").ok(), "exit=0");

    // Its mounts gone while the daemon was down (by hand): the next daemon
    // mounts them again. The container runs on in its own copy.
    d.kill9();
    for point in d.mounts_under(&d.state.join("k")).iter().rev() {
        assert!(Command::new("umount")
            .arg(point)
            .status()
            .unwrap()
            .success());
    }
    d.restart();
    assert_eq!(fields(&d.ask("state k").data[0])["status"], "running");
    assert_eq!(mounts_of(&d, "k"), ["lower", "upper-tmpfs", "rootfs"]);
    assert!(nanoctr_tests::alive(init));
    d.ask("delete k force").ok();
    nothing_left(&d, &img);
}

#[test]
fn kill_9_during_a_delete_and_the_next_start_cleans_up() {
    let mut d = Daemon::start();
    let faults = d.faulty_runtime();
    let img = own_image(&d, "erofs");
    let b = image_bundle(&d, "sleep", &img, &["sleep", "1000"]);
    d.ask(&format!("run del {} {}", b.display(), faults.option()))
        .ok();
    faults.set("delete", Fault::Gate);
    d.conn().send("delete del force");
    d.eventually("the delete to reach the runtime", || {
        d.ask("delete del").last.starts_with("ERR busy")
    });
    d.kill9();
    // Once the call is at the gate (opening it waits for that), it goes on.
    faults.open_gate("delete");
    faults.clear("delete");
    d.restart();
    // The killed daemon's runtime call went through: the container is
    // stopped and still listed, with its mounts, until it is deleted.
    assert_eq!(d.ask("wait del").ok(), "exit=137");
    assert_eq!(mounts_of(&d, "del"), ["lower", "upper-tmpfs", "rootfs"]);
    d.ask("delete del").ok();
    nothing_left(&d, &img);

    // Killed after a delete removed the record but before it unmounted:
    // what is left is half made, and the next start removes it all.
    d.ask(&format!("run gone {}", b.display())).ok();
    d.ask("kill gone KILL").ok();
    d.ask("wait gone").ok();
    d.kill9();
    std::fs::remove_file(d.state.join("gone/container")).unwrap();
    d.restart();
    assert_eq!(d.ask("list").ok(), "count=0");
    nothing_left(&d, &img);
    assert!(d.container_dirs().is_empty(), "{:?}", d.container_dirs());
}

#[test]
fn a_create_that_dies_with_its_daemon_leaves_no_mount() {
    let mut d = Daemon::start();
    let faults = d.faulty_runtime();
    let img = own_image(&d, "squashfs");
    let b = image_bundle(&d, "sleep", &img, &["sleep", "1000"]);
    faults.set("create", Fault::Gate);
    d.conn()
        .send(&format!("create half {} {}", b.display(), faults.option()));
    d.eventually("the shim to be in the runtime's create", || {
        d.shims().len() == 1 && mounts_of(&d, "half").len() == 3
    });
    // The daemon, the shim and its runtime call die together.
    let shim = d.shims()[0].1;
    d.kill9();
    let group = format!("-{shim}");
    assert!(Command::new("kill")
        .args(["-KILL", "--", &group])
        .status()
        .unwrap()
        .success());
    d.eventually("the shim to be gone", || d.shims().is_empty());
    faults.clear("create");
    d.restart();
    assert_eq!(d.ask("list").ok(), "count=0");
    nothing_left(&d, &img);
    assert!(d.container_dirs().is_empty(), "{:?}", d.container_dirs());
}

#[test]
fn crun_runs_an_image_rootfs_too() {
    let d = Daemon::start_with(Runtime::Crun, &[]);
    let img = own_image(&d, "squashfs");
    let b = image_bundle(
        &d,
        "c",
        &img,
        &["sh", "-c", "echo crun > /w && cat /w /etc/group"],
    );
    d.ask(&format!("run c {}", b.display())).ok();
    assert_eq!(d.ask("wait c").ok(), "exit=0");
    assert_eq!(output(&d, "c"), "crun\nroot:x:0:\n");
    // crun's daemon has a mount namespace of its own (see Runtime::Crun):
    // the mounts are there, not in the test's.
    assert_eq!(mounts_of(&d, "c"), ["lower", "upper-tmpfs", "rootfs"]);
    d.ask("delete c").ok();
    nothing_left(&d, &img);
}

#[test]
fn a_restart_policy_keeps_the_writable_layer() {
    let d = Daemon::start();
    let img = own_image(&d, "squashfs");
    let script = "test -e /again && exit 0; touch /again; exit 1";
    let b = image_bundle(&d, "again", &img, &["sh", "-c", script]);
    d.ask(&format!("run r {} restart=on-failure:3", b.display()))
        .ok();
    d.eventually("the second run to find the first one's file", || {
        let state = fields(&d.ask("state r").data[0]);
        state["status"] == "stopped" && state.get("exit").map(String::as_str) == Some("0")
    });
    assert_eq!(fields(&d.ask("state r").data[0])["restarts"], "1");
    d.ask("delete r").ok();
    nothing_left(&d, &img);
}
