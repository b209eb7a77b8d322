//! The Mender Update Module (`daemon/src/ota/mender.rs`) driven by the real
//! Mender client (Debian's mender-client 3.4) in standalone mode, with
//! artifacts made by the real mender-artifact:
//! `mender install`, `mender commit`, `mender rollback`.
//!
//! Each test is a device of its own: a daemon whose config names an image
//! store in the test's dir (so bundles go to `bundles/` beside it), and
//! Mender's config, data dir and `artifact_info` there too. Mender reads
//! `/etc/mender/artifact_info` and runs modules from
//! `/usr/share/mender/modules/v3/`, paths no flag moves: each `mender` runs
//! in a private mount namespace with the test's dirs bound over those two,
//! so the host's are never written. The module there is a link to the
//! release `nanoctr`, as on a device; it finds the daemon through
//! `NANOCTR_SOCKET` and the store through `NANOCTR_CONFIG`, which Mender
//! passes on.
//!
//! The images (`tests/images/mender.py`) are a busybox httpd serving its
//! version on 127.0.0.1:8080 with a Docker health check (v1, v2), one whose
//! health check always fails (sick), and one whose process exits (dead).

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nanoctr_tests::{alive, bin, fields, rootfs, workspace, Daemon, Launch, Runtime};

const DEVICE_TYPE: &str = "nanoctr-test";

/// The images, built once into `target/test-mender-images` (again when
/// the script changes).
fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("target/test-mender-images");
        let script = workspace().join("tests/images/mender.py");
        let now = std::fs::read(&script).unwrap();
        if std::fs::read(dir.join("mender.py")).is_ok_and(|b| b == now) {
            return dir;
        }
        let tmp = workspace().join(format!("target/test-mender-images.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let out = Command::new("python3")
            .arg(&script)
            .arg(&tmp)
            .arg(rootfs())
            .output()
            .expect("run python3 (tests/setup.sh)");
        assert!(out.status.success(), "mender.py: {out:?}");
        std::fs::write(tmp.join("mender.py"), now).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        // Another test process may have won the race; either copy is whole.
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        dir
    })
}

/// A device: nanoctrd with an image store, and Mender's files.
struct Device {
    d: Daemon,
    /// Mender's dirs: `etc/` (bound over /etc/mender), `modules/` (over
    /// /usr/share/mender/modules/v3), `data/`, `mender.conf`.
    mender: PathBuf,
    store: PathBuf,
}

impl Device {
    fn new() -> Device {
        let mut d = Daemon::prepare(Runtime::Runc, Launch::default());
        let store = d.dir.join("var/images");
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(
            d.dir.join("conf/nanoctrd.conf"),
            format!("image-store = {}\n", store.display()),
        )
        .unwrap();
        d.spawn();
        let mender = d.dir.join("mender");
        for sub in ["etc", "modules", "data"] {
            std::fs::create_dir_all(mender.join(sub)).unwrap();
        }
        std::fs::write(mender.join("etc/artifact_info"), "artifact_name=factory\n").unwrap();
        let device_type = format!("device_type={DEVICE_TYPE}\n");
        std::fs::write(mender.join("data/device_type"), device_type).unwrap();
        std::fs::write(
            mender.join("mender.conf"),
            r#"{"DBus": {"Enabled": false}, "ModuleTimeoutSeconds": 300}"#,
        )
        .unwrap();
        symlink(bin("nanoctr"), mender.join("modules/nanoctr")).unwrap();
        Device { d, mender, store }
    }

    /// `mender ARGS` as on the device: in a mount namespace of its own.
    fn mender_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount --bind \"$1\" /etc/mender && \
                 mount --bind \"$2\" /usr/share/mender/modules/v3 && shift 2 && exec \"$@\"",
            )
            .arg("sh")
            .arg(self.mender.join("etc"))
            .arg(self.mender.join("modules"))
            .args(["mender", "--no-syslog", "--config"])
            .arg(self.mender.join("mender.conf"))
            .arg("--data")
            .arg(self.mender.join("data"))
            .args(args)
            .env("NANOCTR_SOCKET", &self.d.socket)
            .env("NANOCTR_CONFIG", self.d.dir.join("conf/nanoctrd.conf"))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs mender; its output (stdout and stderr, with Mender's log of
    /// what the module printed) and whether it succeeded.
    fn mender(&self, args: &[&str]) -> (bool, String) {
        let out: Output = self.mender_cmd(args).output().expect("run mender");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    #[track_caller]
    fn must(&self, args: &[&str]) -> String {
        let (ok, text) = self.mender(args);
        assert!(ok, "mender {args:?} failed:\n{text}\n{}", self.d.log());
        text
    }

    /// `mender install` and `mender commit` of `artifact`.
    #[track_caller]
    fn update(&self, artifact: &Path) {
        self.must(&["install", artifact.to_str().unwrap()]);
        self.must(&["commit"]);
    }

    /// An artifact `name` of image `image` (v1, v2, sick, dead) with
    /// `manifest` as its nanoctr.conf; `extra` files go in too.
    fn artifact(&self, name: &str, image: &str, manifest: &str, extra: &[&Path]) -> PathBuf {
        let dir = self.d.dir.join("artifacts").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("nanoctr.conf");
        std::fs::write(&conf, manifest).unwrap();
        let out = dir.join(format!("{name}.mender"));
        let mut cmd = Command::new("mender-artifact");
        cmd.args([
            "write",
            "module-image",
            "-T",
            "nanoctr",
            "-t",
            DEVICE_TYPE,
            "-n",
            name,
        ])
        .arg("-o")
        .arg(&out)
        .arg("-f")
        .arg(images().join(format!("{image}.tar")))
        .arg("-f")
        .arg(&conf);
        for f in extra {
            cmd.arg("-f").arg(f);
        }
        let done = cmd.output().expect("run mender-artifact (tests/setup.sh)");
        assert!(done.status.success(), "mender-artifact: {done:?}");
        out
    }

    /// What the one container `web` serves, and checks that it is the one
    /// container, running, healthy, on the bundle named `artifact`, that
    /// the runtime has it alone, and that its bundle is the only one left.
    #[track_caller]
    fn serves(&self, artifact: &str) -> String {
        // A version brought back by a rollback is started again: healthy
        // once its probes pass.
        self.d.eventually("web to be healthy", || {
            self.d
                .listed()
                .get("web")
                .is_some_and(|w| w.get("health").is_some_and(|h| h == "healthy"))
        });
        let listed = self.d.listed();
        assert_eq!(listed.len(), 1, "{listed:?}");
        let web = &listed["web"];
        assert_eq!(web["status"], "running", "{web:?}");
        assert_eq!(web["health"], "healthy", "{web:?}");
        let bundle = self
            .store
            .with_file_name("bundles")
            .join("web")
            .join(artifact);
        assert_eq!(Path::new(&web["bundle"]), bundle, "{web:?}");
        assert_eq!(self.d.runtime_ids(), ["web"]);
        assert_eq!(self.bundles(), [artifact], "bundles left");
        assert_eq!(self.installed(), artifact);
        let out = self.d.nanoctr(&[
            "exec",
            "web",
            "get",
            "--",
            "/bin/busybox",
            "wget",
            "-q",
            "-O",
            "-",
            "http://127.0.0.1:8080/",
        ]);
        assert!(out.status.success(), "wget in web: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// What Mender says is installed (`mender show-artifact`).
    fn installed(&self) -> String {
        let out = self.mender_cmd(&["show-artifact"]).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The bundles of `web` on disk.
    fn bundles(&self) -> Vec<String> {
        let dir = self.store.with_file_name("bundles").join("web");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// v1, installed as a first install and committed.
    fn with_v1(&self, manifest: &str) {
        let a = self.artifact("web-v1", "v1", manifest, &[]);
        self.update(&a);
        assert_eq!(self.serves("web-v1"), "v1");
    }
}

/// A manifest with a short trial, so failures are seen soon.
const MANIFEST: &str = "[container web]\nswap-timeout = 8\n";

#[test]
fn first_install_and_a_failed_one() {
    let dev = Device::new();
    assert_eq!(dev.installed(), "factory");
    dev.with_v1(MANIFEST);
    let state = fields(&dev.d.ask("state web").data[0]);
    assert_eq!(state["health"], "healthy");

    // A first install whose process exits: refused, and nothing is left.
    let other = Device::new();
    let dead = other.artifact(
        "web-dead",
        "dead",
        "[container web]\nswap-timeout = 2\n",
        &[],
    );
    let (ok, text) = other.mender(&["install", dead.to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(text.contains("Rolling back"), "{text}");
    assert!(other.d.listed().is_empty());
    assert!(other.d.runtime_ids().is_empty());
    assert!(other.bundles().is_empty(), "{:?}", other.bundles());
    assert_eq!(other.installed(), "factory");
}

#[test]
fn bad_manifests_change_nothing() {
    let dev = Device::new();
    dev.with_v1(MANIFEST);
    let second = images().join("sick.tar");
    for (manifest, extra, says) in [
        (
            "[container web]\ncolour = red\n",
            None,
            "unknown container key colour",
        ),
        ("swap-timeout = 5\n", None, "only [container ID] sections"),
        (
            "[container web]\nbundle = /srv/web\n",
            None,
            "no place in a manifest",
        ),
        (
            "[container web]\noptions = bogus=1\n",
            None,
            "unknown option bogus=1",
        ),
        (
            MANIFEST,
            Some(second.as_path()),
            "2 images beside the manifest",
        ),
    ] {
        let extra: Vec<&Path> = extra.into_iter().collect();
        let a = dev.artifact("web-bad", "v2", manifest, &extra);
        let (ok, text) = dev.mender(&["install", a.to_str().unwrap()]);
        assert!(!ok, "{manifest}: {text}");
        // What the module said on stderr is in Mender's log.
        assert!(text.contains(says), "{manifest}: {text}");
        assert_eq!(dev.serves("web-v1"), "v1", "{manifest}");
    }
}

#[test]
fn a_good_update_is_committed() {
    let dev = Device::new();
    dev.with_v1(MANIFEST);
    let v2 = dev.artifact("web-v2", "v2", MANIFEST, &[]);
    dev.must(&["install", v2.to_str().unwrap()]);
    // Installed, not committed: v2 runs, v1 is kept for a rollback.
    let web = &dev.d.listed()["web"];
    assert!(web["bundle"].ends_with("/web-v2"), "{web:?}");
    assert_eq!(dev.bundles(), ["web-v1", "web-v2"]);
    dev.must(&["commit"]);
    assert_eq!(dev.serves("web-v2"), "v2");
    // The same artifact name again, over itself: a bundle of its own.
    dev.update(&v2);
    let web = &dev.d.listed()["web"];
    assert!(web["bundle"].ends_with("/web-v2.2"), "{web:?}");
    assert_eq!(dev.bundles(), ["web-v2.2"]);
}

#[test]
fn bad_updates_roll_back() {
    let dev = Device::new();
    dev.with_v1(MANIFEST);
    for image in ["sick", "dead"] {
        let a = dev.artifact(&format!("web-{image}"), image, MANIFEST, &[]);
        let (ok, text) = dev.mender(&["install", a.to_str().unwrap()]);
        assert!(!ok, "{image}: {text}");
        assert!(text.contains("Rolling back"), "{image}: {text}");
        assert_eq!(dev.serves("web-v1"), "v1", "{image}");
    }
    // And one that was fine, rolled back by hand before its commit.
    let v2 = dev.artifact("web-v2", "v2", MANIFEST, &[]);
    dev.must(&["install", v2.to_str().unwrap()]);
    dev.must(&["rollback"]);
    assert_eq!(dev.serves("web-v1"), "v1");
}

/// The processes of the module that run `state`, by pid.
fn modules_in(state: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args
            .first()
            .is_some_and(|a| a.ends_with(b"/modules/v3/nanoctr"))
            && args.get(1) == Some(&state.as_bytes())
            && alive(pid)
        {
            found.push(pid);
        }
    }
    found
}

fn kill9(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// A power cut while the daemon tries a new version (the sick one, which
/// never gets healthy, under a long trial): Mender, the module and the
/// daemon all killed. After the daemon's restart the container runs one
/// version (the old one: the daemon rolls back what it finds under way),
/// and a new install of a good one brings a consistent state, the sick
/// version's bundle removed.
#[test]
fn a_power_cut_mid_swap_is_recovered() {
    let mut dev = Device::new();
    dev.with_v1(MANIFEST);
    let sick = dev.artifact(
        "web-sick",
        "sick",
        "[container web]\nswap-timeout = 60\n",
        &[],
    );
    let mut mender: Child = dev
        .mender_cmd(&["install", sick.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = dev.d.ask("state web");
        let line = state.data.first().cloned().unwrap_or_default();
        if line.contains("web-sick") {
            break;
        }
        assert!(Instant::now() < deadline, "no swap began: {line}");
        std::thread::sleep(Duration::from_millis(100));
    }
    mender.kill().unwrap();
    mender.wait().unwrap();
    for pid in modules_in("ArtifactInstall") {
        kill9(pid);
    }
    dev.d.kill9();
    dev.d.restart();
    // One version runs, whichever the daemon's recovery chose.
    dev.d
        .eventually("web to run one version, the daemon's recovery over", || {
            let listed = dev.d.listed();
            let state = fields(&dev.d.ask("state web").data[0]);
            let update = state.get("update").map_or("", String::as_str);
            let moving = ["swap", "trial", "rollback"].contains(&update);
            listed.len() == 1 && state["status"] == "running" && !moving
        });
    assert_eq!(dev.d.runtime_ids(), ["web"]);
    // The daemon rolls back what it finds under way: v1.
    let web = &dev.d.listed()["web"];
    assert!(web["bundle"].ends_with("/web-v1"), "{web:?}");
    // A good update from there: v2, and nothing else left.
    let v2 = dev.artifact("web-v2", "v2", MANIFEST, &[]);
    dev.update(&v2);
    assert_eq!(dev.serves("web-v2"), "v2");
}

/// The daemon killed between install and commit: after its restart,
/// `mender rollback` brings v1 back.
#[test]
fn a_power_cut_before_the_commit_rolls_back() {
    let mut dev = Device::new();
    dev.with_v1(MANIFEST);
    let v2 = dev.artifact("web-v2", "v2", MANIFEST, &[]);
    dev.must(&["install", v2.to_str().unwrap()]);
    dev.d.kill9();
    dev.d.restart();
    dev.must(&["rollback"]);
    assert_eq!(dev.serves("web-v1"), "v1");
}
