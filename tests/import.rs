//! `nanoctr import` and the store verbs (`images`, `image-rm`, `image-gc`)
//! on images made by the real tools. `tests/images/make.py` builds an OCI
//! layout with umoci (whiteouts, an opaque directory, hardlinks, symlinks,
//! setuid/setgid/sticky modes, a fifo, xattrs, numeric owners, a named
//! user) and turns it with skopeo into a docker-archive, an oci-archive and
//! a layout with zstd layers; `umoci unpack` of it is the tree every import
//! must equal, entry by entry (`tests/images/compare.py`).
//! `tests/images/hostile.py` writes layouts an import must refuse, quickly,
//! without writing outside its staging dir and leaving nothing behind. The
//! images are built once into `target/test-images`, again when the scripts
//! change.
//!
//! Every import is given a `--store` of the test's own. The client runs
//! with `NANOCTR_SOCKET` naming no socket: an import needs no daemon.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nanoctr::bundle::json;
use nanoctr_tests::{bin, rootfs, workspace, Daemon};

/// How long one import may take before the test fails instead of hanging.
const GUARD: Duration = Duration::from_secs(60);

/// How long refusing a 10 GiB claim may take: far less than writing it.
const QUICK: Duration = Duration::from_secs(10);

/// The file size limit hostile imports run under: a refusal writes far
/// less, and a 10 GiB claim written out ends in SIGXFSZ.
const FSIZE_LIMIT: u64 = 1 << 30;

/// The staging entries an import may make next to its bundle.
const STAGING_PREFIX: &str = ".nanoctr-import";

/// Where hostile.py's escapes aim (its CANARY).
const CANARY: &str = "/tmp/nanoctr-import-canary";

// ---------------------------------------------------------------------
// The images.

/// The built images: `oci/`, `oci-typechange/`, `docker.tar`, `oci.tar`,
/// `oci-zstd/`, the references `unpacked/` and `unpacked-typechange/`,
/// `expect`, and `hostile/` (one layout a case, and `hostile/cases`).
fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("target/test-images");
        let scripts = workspace().join("tests/images");
        if built_by(&dir, &scripts) {
            return dir;
        }
        let tmp = workspace().join(format!("target/test-images.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        python(
            &scripts.join("make.py"),
            &[tmp.as_os_str(), rootfs().as_os_str()],
        );
        python(
            &scripts.join("hostile.py"),
            &[tmp.join("hostile").as_os_str()],
        );
        std::fs::create_dir(tmp.join("scripts")).unwrap();
        for script in SCRIPTS {
            std::fs::copy(scripts.join(script), tmp.join("scripts").join(script)).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
        // Another test process may have won the race; either copy is whole.
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        dir
    })
}

const SCRIPTS: [&str; 3] = ["make.py", "hostile.py", "compare.py"];

/// Whether `dir` holds images built by the scripts as they are now.
fn built_by(dir: &Path, scripts: &Path) -> bool {
    SCRIPTS.iter().all(|s| {
        let built = std::fs::read(dir.join("scripts").join(s));
        built.is_ok_and(|b| std::fs::read(scripts.join(s)).is_ok_and(|now| now == b))
    })
}

/// Runs a script of tests/images with python3; fails the test with its
/// output if it fails.
fn python(script: &Path, args: &[&OsStr]) -> String {
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run python3 {}: {e} (tests/setup.sh)", script.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} failed ({}):\n{text}",
        script.display(),
        out.status
    );
    text
}

/// compare.py of two trees: `Ok` with its summary when they are equal,
/// `Err` with every difference when not.
fn compare(a: &Path, b: &Path) -> Result<String, String> {
    let out = Command::new("python3")
        .arg(workspace().join("tests/images/compare.py"))
        .args([a, b])
        .output()
        .expect("run compare.py");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match out.status.code() {
        Some(0) => Ok(text),
        Some(1) => Err(text),
        _ => panic!(
            "compare.py {} {}: {}: {text}{}",
            a.display(),
            b.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Asserts that a bundle's rootfs is the reference tree.
#[track_caller]
fn assert_same_tree(reference: &Path, bundle: &Path) {
    if let Err(diffs) = compare(reference, &bundle.join("rootfs")) {
        panic!("{} differs from umoci's unpack:\n{diffs}", bundle.display());
    }
}

fn reference() -> PathBuf {
    images().join("unpacked/rootfs")
}

/// What a bundle made from the test image must say: `images()/expect`,
/// make.py's reading of the image config.
struct Expect {
    args: Vec<String>,
    env: Vec<String>,
    cwd: String,
    uid: u32,
    gid: u32,
    stop_signal: String,
    ports: BTreeSet<String>,
}

fn expect() -> &'static Expect {
    static EXPECT: OnceLock<Expect> = OnceLock::new();
    EXPECT.get_or_init(|| {
        let text = std::fs::read_to_string(images().join("expect")).expect("read expect");
        let mut e = Expect {
            args: Vec::new(),
            env: Vec::new(),
            cwd: String::new(),
            uid: u32::MAX,
            gid: u32::MAX,
            stop_signal: String::new(),
            ports: BTreeSet::new(),
        };
        for line in text.lines() {
            let (key, value) = line.split_once('=').expect("key=value");
            let value = value.to_string();
            match key {
                "arg" => e.args.push(value),
                "env" => e.env.push(value),
                "cwd" => e.cwd = value,
                "uid" => e.uid = value.parse().unwrap(),
                "gid" => e.gid = value.parse().unwrap(),
                "stopSignal" => e.stop_signal = value,
                "exposedPort" => {
                    e.ports.insert(value);
                }
                "user" => {}
                _ => panic!("expect: unknown key {key}"),
            }
        }
        assert_eq!((e.uid, e.gid), (1000, 1000), "the image's user is app");
        e
    })
}

/// The layers of the `test` manifest of an OCI layout, and the digests of
/// that manifest and of its config.
fn manifest_facts(layout: &Path) -> (usize, String, String) {
    let index = Json::read(&layout.join("index.json"));
    let manifests = index.elements(&["manifests"]);
    assert_eq!(manifests.len(), 1, "one manifest in {}", layout.display());
    let digest = manifests[0].str(&["digest"]).unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest = Json::read(&blob(&digest));
    let config = manifest.str(&["config", "digest"]).unwrap();
    (manifest.elements(&["layers"]).len(), digest, config)
}

// ---------------------------------------------------------------------
// A test's own dirs and the client.

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A test's dir: its store, a parent dir for bundles, the client's output.
/// Removed at the end unless the test failed.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        images();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("nct-import-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bundles")).expect("make the test dir");
        Scratch { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// Where bundles go: the parent an import stages in.
    fn bundles(&self) -> PathBuf {
        self.dir.join("bundles")
    }

    fn bundle(&self, name: &str) -> PathBuf {
        self.bundles().join(name)
    }

    /// `nanoctr ARGS`, within [`GUARD`].
    fn nanoctr<S: AsRef<OsStr>>(&self, args: &[S]) -> Outcome {
        self.nanoctr_under(&[], args)
    }

    /// `PREFIX... nanoctr ARGS` (`prlimit --fsize=N`), within [`GUARD`].
    fn nanoctr_under<S: AsRef<OsStr>>(&self, prefix: &[&str], args: &[S]) -> Outcome {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let (out, err) = (
            self.dir.join(format!("{n}.out")),
            self.dir.join(format!("{n}.err")),
        );
        let client = bin("nanoctr");
        let mut argv: Vec<OsString> = prefix.iter().map(OsString::from).collect();
        argv.push(client.into_os_string());
        argv.extend(args.iter().map(|a| a.as_ref().to_os_string()));
        let started = Instant::now();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .env("NANOCTR_SOCKET", self.dir.join("no-daemon.sock"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("run nanoctr");
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > GUARD {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{argv:?} did not finish within {GUARD:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Outcome {
            argv: argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            code: status.code(),
            signal: status.signal(),
            stdout: std::fs::read_to_string(out).unwrap(),
            stderr: std::fs::read_to_string(err).unwrap(),
            took: started.elapsed(),
        }
    }

    /// `nanoctr import --store STORE ARGS... SOURCE BUNDLE`.
    fn import(&self, args: &[&str], source: &Path, bundle: &Path) -> Outcome {
        let mut argv: Vec<OsString> = vec!["import".into(), "--store".into()];
        argv.push(self.store().into());
        argv.extend(args.iter().map(OsString::from));
        argv.push(source.into());
        argv.push(bundle.into());
        self.nanoctr(&argv)
    }

    /// The store verbs: `nanoctr VERB --store STORE ARGS...`.
    fn store_verb(&self, verb: &str, args: &[&str]) -> Outcome {
        let mut argv: Vec<OsString> = vec![verb.into(), "--store".into()];
        argv.push(self.store().into());
        argv.extend(args.iter().map(OsString::from));
        self.nanoctr(&argv)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// How a client run ended.
struct Outcome {
    argv: Vec<String>,
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A refusal may quote a 64 KiB name; the start says enough.
        let cut = |s: &str| match s.char_indices().nth(2000) {
            Some((at, _)) => format!("{}... ({} bytes)", &s[..at], s.len()),
            None => s.to_string(),
        };
        writeln!(f, "{}", self.argv.join(" "))?;
        match self.signal {
            Some(sig) => writeln!(f, "  killed by signal {sig} after {:?}", self.took)?,
            None => writeln!(f, "  exit {:?} after {:?}", self.code, self.took)?,
        }
        writeln!(f, "  stdout: {}", cut(&self.stdout))?;
        write!(f, "  stderr: {}", cut(&self.stderr))
    }
}

impl Outcome {
    /// Asserts exit 0; returns stdout.
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success: {self:?}");
        &self.stdout
    }

    /// Asserts exit 1 with one line `nanoctr: ERR CODE message`, CODE one
    /// of `codes`; returns the line.
    #[track_caller]
    fn err(&self, codes: &[&str]) -> &str {
        assert_eq!(self.code, Some(1), "expected exit 1: {self:?}");
        let line = self.stderr.trim_end_matches('\n');
        assert!(!line.contains('\n'), "more than one line: {self:?}");
        let code = line
            .strip_prefix("nanoctr: ERR ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("not `nanoctr: ERR CODE message`: {self:?}"));
        assert!(codes.contains(&code), "expected ERR {codes:?}: {self:?}");
        line
    }

    /// Asserts exit 2 (a usage error).
    #[track_caller]
    fn usage(&self) {
        assert_eq!(self.code, Some(2), "expected a usage error: {self:?}");
    }
}

/// Entries of `dir`, by name; none when it does not exist.
fn names(dir: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

/// Asserts that no import left staging entries next to its bundles or in
/// the store's tmp dir.
#[track_caller]
fn assert_no_staging(parent: &Path, store: &Path) {
    let staged: Vec<String> = names(parent)
        .into_iter()
        .filter(|n| n.starts_with(STAGING_PREFIX))
        .collect();
    assert!(
        staged.is_empty(),
        "left in {}: {staged:?}",
        parent.display()
    );
    let tmp = names(&store.join("tmp"));
    assert!(tmp.is_empty(), "left in {}/tmp: {tmp:?}", store.display());
}

// ---------------------------------------------------------------------
// config.json, read with the daemon's own JSON reader.

/// A JSON document, or one value inside one.
struct Json {
    text: Vec<u8>,
}

impl Json {
    #[track_caller]
    fn read(path: &Path) -> Json {
        let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(e) = json::check(&text) {
            panic!("{}: {e}", path.display());
        }
        Json { text }
    }

    /// The raw text of the value at `path` (a number, `true`).
    fn raw(&self, path: &[&str]) -> Option<String> {
        let r = json::find(&self.text, path)?;
        Some(String::from_utf8_lossy(&self.text[r]).into_owned())
    }

    fn str(&self, path: &[&str]) -> Option<String> {
        json::string(&self.text, json::find(&self.text, path)?)
    }

    /// The elements of the array at `path` (none when it is not there).
    fn elements(&self, path: &[&str]) -> Vec<Json> {
        let Some(r) = json::find(&self.text, path) else {
            return Vec::new();
        };
        json::elements(&self.text, r)
            .expect("an array")
            .into_iter()
            .map(|e| Json {
                text: self.text[e].to_vec(),
            })
            .collect()
    }

    fn strs(&self, path: &[&str]) -> Vec<String> {
        self.elements(path)
            .iter()
            .map(|e| json::string(&e.text, 0..e.text.len()).expect("a string"))
            .collect()
    }
}

/// Asserts what every bundle of the test image says, whatever the args,
/// env, cwd and user.
#[track_caller]
fn assert_bundle_basics(bundle: &Path) -> Json {
    let config = Json::read(&bundle.join("config.json"));
    assert_eq!(config.str(&["root", "path"]).as_deref(), Some("rootfs"));
    assert_eq!(config.raw(&["root", "readonly"]).as_deref(), Some("true"));
    let tmpfs: BTreeSet<String> = config
        .elements(&["mounts"])
        .iter()
        .filter(|m| m.str(&["type"]).as_deref() == Some("tmpfs"))
        .filter_map(|m| m.str(&["destination"]))
        .collect();
    for dest in ["/tmp", "/run"] {
        assert!(tmpfs.contains(dest), "no tmpfs at {dest}: {tmpfs:?}");
    }
    let e = expect();
    let annotation = |key: &str| config.str(&["annotations", key]);
    assert_eq!(
        annotation("org.opencontainers.image.stopSignal").as_deref(),
        Some(e.stop_signal.as_str())
    );
    let ports = annotation("org.opencontainers.image.exposedPorts").expect("exposedPorts");
    let ports: BTreeSet<String> = ports.split(',').map(str::to_string).collect();
    assert_eq!(ports, e.ports);
    config
}

/// Asserts the bundle is the image as its config says it runs.
#[track_caller]
fn assert_image_config(bundle: &Path) {
    let config = assert_bundle_basics(bundle);
    let e = expect();
    assert_eq!(config.strs(&["process", "args"]), e.args);
    assert_eq!(config.strs(&["process", "env"]), e.env);
    assert_eq!(config.str(&["process", "cwd"]), Some(e.cwd.clone()));
    assert_eq!(user(&config), (e.uid, e.gid));
}

fn user(config: &Json) -> (u32, u32) {
    let id = |key: &str| {
        config
            .raw(&["process", "user", key])
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no numeric process.user.{key}"))
    };
    (id("uid"), id("gid"))
}

/// Imports `source` into a fresh bundle and checks tree, config and that
/// nothing is left staged.
fn imports_as_umoci_unpacks(source: &str) {
    let s = Scratch::new();
    let b = s.bundle("b");
    let out = s.import(&[], &images().join(source), &b);
    out.ok();
    assert_same_tree(&reference(), &b);
    assert_image_config(&b);
    assert_no_staging(&s.bundles(), &s.store());
    assert_eq!(names(&s.bundles()), BTreeSet::from(["b".to_string()]));
}

// ---------------------------------------------------------------------
// The comparison itself.

/// compare.py finds each kind of difference it is there to find, so an
/// import that passes it is whole.
#[test]
fn compare_finds_every_kind_of_difference() {
    let s = Scratch::new();
    let copy = s.dir.join("copy");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(reference())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success(), "cp -a the reference");
    let same = compare(&reference(), &copy).expect("a copy compares equal");
    assert!(same.contains(" 0 differences"), "{same}");

    let sh = |script: &str| {
        let ok = Command::new("sh")
            .args(["-ec", script])
            .current_dir(&copy)
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script}");
    };
    let py = |code: &str| {
        let ok = Command::new("python3")
            .args(["-c", code])
            .current_dir(&copy)
            .status()
            .unwrap()
            .success();
        assert!(ok, "{code}");
    };
    // One change of each kind, each to a different path.
    sh("chmod 0644 data/numeric");
    sh("chmod 0755 bin/suid-tool");
    sh("chmod 0777 data/sticky");
    sh("chown 1:1 data/xattr");
    sh("touch -r data/keep/kept t && printf 'KEPT\\n' > data/keep/kept && touch -r t data/keep/kept && rm t");
    sh("touch -r home/app/profile t && echo more >> home/app/profile && touch -r t home/app/profile && rm t");
    sh("touch -d @1 bin/sgid-tool");
    sh("ln -sfn elsewhere data/rel-link && touch -h -d @1600086400 data/rel-link");
    sh("cp -p data/hl-a t && rm data/hl-b && mv t data/hl-b");
    sh("rm data/fifo && touch -d @1600086400 data/fifo && chmod 0620 data/fifo");
    sh("rm opq/fresh && echo extra > opq/extra");
    sh("setcap -r bin/capped");
    py("import os; os.setxattr('etc/passwd', 'user.test', b'added')");
    let diffs = compare(&reference(), &copy).expect_err("the changes are found");
    for (path, what) in [
        ("/data/numeric", "mode"),
        ("/bin/suid-tool", "mode"),
        ("/data/sticky", "mode"),
        ("/data/xattr", "owner"),
        ("/data/keep/kept", "sha256"),
        ("/home/app/profile", "size"),
        ("/bin/sgid-tool", "mtime"),
        ("/data/rel-link", "target"),
        ("/data/hl-a", "links"),
        ("/data/hl-b", "links"),
        ("/data/fifo", "type"),
        ("/opq/fresh", "only in"),
        ("/opq/extra", "only in"),
        ("/bin/capped", "xattrs"),
        ("/etc/passwd", "xattrs"),
    ] {
        let want = format!("{path}: {what}");
        assert!(diffs.contains(&want), "compare.py missed {want}:\n{diffs}");
    }
    assert!(diffs.contains(" 16 differences"), "{diffs}");
}

// ---------------------------------------------------------------------
// Imports of each source kind.

#[test]
fn oci_layout_imports_as_umoci_unpacks_it() {
    imports_as_umoci_unpacks("oci");
}

#[test]
fn oci_layout_with_a_tag_imports_as_umoci_unpacks_it() {
    imports_as_umoci_unpacks("oci:test");
}

#[test]
fn docker_archive_imports_as_umoci_unpacks_it() {
    imports_as_umoci_unpacks("docker.tar");
}

#[test]
fn oci_archive_imports_as_umoci_unpacks_it() {
    imports_as_umoci_unpacks("oci.tar");
    imports_as_umoci_unpacks("oci.tar:test");
}

#[test]
fn zstd_layers_import_as_umoci_unpacks_them() {
    imports_as_umoci_unpacks("oci-zstd");
}

/// A layer in which a file becomes a directory, a directory a symlink
/// (with umoci's whiteout under it), a symlink a file, a file a symlink.
#[test]
fn entries_that_change_type_import_as_umoci_unpacks_them() {
    let s = Scratch::new();
    let b = s.bundle("b");
    s.import(&[], &images().join("oci-typechange"), &b).ok();
    assert_same_tree(&images().join("unpacked-typechange/rootfs"), &b);
    assert_image_config(&b);
    assert_no_staging(&s.bundles(), &s.store());
}

#[test]
fn the_platform_picks_or_refuses() {
    let s = Scratch::new();
    let b = s.bundle("amd64");
    s.import(&["--platform", "linux/amd64"], &images().join("oci"), &b)
        .ok();
    assert_same_tree(&reference(), &b);
    let other = s.bundle("s390x");
    s.import(
        &["--platform", "linux/s390x"],
        &images().join("oci"),
        &other,
    )
    .err(&["not-found", "invalid"]);
    assert!(!other.exists());
    assert_no_staging(&s.bundles(), &s.store());
}

#[test]
fn the_options_override_the_image() {
    let s = Scratch::new();
    let b = s.bundle("b");
    let mut argv: Vec<OsString> = ["import", "--store"].map(OsString::from).to_vec();
    argv.push(s.store().into());
    for a in [
        "--env",
        "EXTRA=yes",
        "--cwd",
        "/data",
        "--user",
        "1234:5678",
    ] {
        argv.push(a.into());
    }
    argv.push(images().join("oci").into());
    argv.push(b.clone().into());
    for a in ["--", "/bin/echo", "hi", "--not-an-option"] {
        argv.push(a.into());
    }
    s.nanoctr(&argv).ok();
    let config = assert_bundle_basics(&b);
    assert_eq!(
        config.strs(&["process", "args"]),
        ["/bin/echo", "hi", "--not-an-option"]
    );
    let env: BTreeSet<String> = config.strs(&["process", "env"]).into_iter().collect();
    let mut want: BTreeSet<String> = expect().env.iter().cloned().collect();
    want.insert("EXTRA=yes".into());
    assert_eq!(env, want);
    assert_eq!(config.str(&["process", "cwd"]).as_deref(), Some("/data"));
    assert_eq!(user(&config), (1234, 5678));
    assert_same_tree(&reference(), &b);

    // Names, looked up in the image's /etc/passwd and /etc/group.
    let named = s.bundle("named");
    s.import(&["--user", "root:app"], &images().join("oci"), &named)
        .ok();
    assert_eq!(user(&Json::read(&named.join("config.json"))), (0, 1000));
    let unknown = s.bundle("unknown");
    s.import(&["--user", "nobody-here"], &images().join("oci"), &unknown)
        .err(&["invalid"]);
    assert!(!unknown.exists());
    assert_no_staging(&s.bundles(), &s.store());
}

// ---------------------------------------------------------------------
// The imported bundle, run.

/// runc runs the bundle through the daemon: the process has the image's
/// args, env, working dir and user, and its root is not changed by it.
#[test]
fn the_imported_bundle_runs_as_the_image_says() {
    let d = Daemon::start();
    let s = Scratch::new();
    let b = s.bundle("app");
    s.import(&[], &images().join("oci"), &b).ok();
    let out = d.dir.join("app.out");
    d.ask(&format!("run app {} stdout={}", b.display(), out.display()))
        .ok();
    let exit = d.ask("wait app");
    let output = std::fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(exit.ok(), "exit=0", "output: {output}\n{}", d.log());

    let e = expect();
    let values = |key: &str| -> Vec<String> {
        output
            .lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(values("arg"), e.args, "{output}");
    assert_eq!(values("cwd"), std::slice::from_ref(&e.cwd), "{output}");
    assert_eq!(values("uid"), [e.uid.to_string()], "{output}");
    assert_eq!(values("gid"), [e.gid.to_string()], "{output}");
    let env = values("env");
    for want in &e.env {
        assert!(
            env.contains(want),
            "{want} not in the process's env: {env:?}"
        );
    }
    d.ask("delete app").ok();
    assert_same_tree(&reference(), &b);
}

// ---------------------------------------------------------------------
// Refusals.

#[test]
fn a_missing_source_is_not_found() {
    let s = Scratch::new();
    let b = s.bundle("b");
    s.import(&[], &s.dir.join("no-such-image"), &b)
        .err(&["not-found"]);
    s.import(&[], &s.dir.join("no-such-image.tar"), &b)
        .err(&["not-found"]);
    let untagged = PathBuf::from(format!("{}:no-such-tag", images().join("oci").display()));
    s.import(&[], &untagged, &b).err(&["not-found"]);
    assert!(!b.exists());
    assert_no_staging(&s.bundles(), &s.store());
}

#[test]
fn an_existing_bundle_dir_is_left_alone() {
    let s = Scratch::new();
    let b = s.bundle("b");
    std::fs::create_dir(&b).unwrap();
    std::fs::write(b.join("mine"), "mine\n").unwrap();
    s.import(&[], &images().join("oci"), &b).err(&["exists"]);
    assert_eq!(names(&b), BTreeSet::from(["mine".to_string()]));
    assert_eq!(std::fs::read_to_string(b.join("mine")).unwrap(), "mine\n");
    assert_no_staging(&s.bundles(), &s.store());
}

#[test]
fn usage_errors_exit_2() {
    let s = Scratch::new();
    let oci = images().join("oci");
    let oci = oci.to_str().unwrap();
    let b = s.bundle("b");
    let b = b.to_str().unwrap();
    let store = s.store();
    let store = store.to_str().unwrap();
    for argv in [
        vec!["import"],
        vec!["import", "--store", store],
        vec!["import", "--store", store, oci],
        vec!["import", "--store", store, "--bogus", oci, b],
        vec!["import", "--store", store, oci, b, "extra"],
        vec!["import", "--store", store, "--platform"],
        vec!["import", "--store", store, oci, b, "--name"],
        vec!["import", "--store"],
        vec!["images", "--store", store, "extra"],
        vec!["image-rm", "--store", store],
        vec!["image-rm", "--store", store, "a", "b"],
        vec!["image-gc", "--store", store, "extra"],
    ] {
        let out = s.nanoctr(&argv);
        out.usage();
        assert!(!Path::new(b).exists(), "{argv:?} made the bundle");
    }
}

// ---------------------------------------------------------------------
// The store.

/// Two imports of one named image share the store's inodes; `images`
/// lists it; `image-rm` and `image-gc` free its layers and leave the
/// bundles whole.
#[test]
fn named_images_share_the_store_until_removed() {
    let s = Scratch::new();
    let (first, second) = (s.bundle("first"), s.bundle("second"));
    s.import(&["--name", "app"], &images().join("oci"), &first)
        .ok();
    s.import(&["--name", "app"], &images().join("oci"), &second)
        .ok();
    assert_same_tree(&reference(), &second);
    for file in ["bin/busybox", "data/hl-a", "etc/passwd"] {
        let ino = |b: &Path| {
            std::fs::metadata(b.join("rootfs").join(file))
                .unwrap()
                .ino()
        };
        assert_eq!(ino(&first), ino(&second), "{file} is not shared");
    }

    let (layers, manifest, config) = manifest_facts(&images().join("oci"));
    let listed = s.store_verb("images", &[]).ok().to_string();
    let rows: Vec<&str> = listed.lines().collect();
    assert_eq!(rows.len(), 1, "{listed}");
    let row = nanoctr_tests::fields(rows[0]);
    assert_eq!(row["name"], "app", "{listed}");
    assert!(
        [&manifest, &config].contains(&&row["digest"]),
        "digest {} is neither the manifest's {manifest} nor the config's {config}",
        row["digest"]
    );
    assert_eq!(row["layers"], layers.to_string(), "{listed}");
    let size: u64 = row["size"].parse().expect("size=BYTES");
    let shared: u64 = row["shared"].parse().expect("shared=BYTES");
    assert!(size > 1_000_000, "busybox alone is 1 MB: {listed}");
    assert!(shared <= size, "{listed}");
    assert!(
        !names(&s.store().join("layers")).is_empty(),
        "no layers in the store"
    );

    s.store_verb("image-rm", &["app"]).ok();
    assert_eq!(s.store_verb("images", &[]).ok(), "");
    s.store_verb("image-gc", &[]).ok();
    let left = names(&s.store().join("layers"));
    assert!(left.is_empty(), "layers left after gc: {left:?}");
    s.store_verb("image-rm", &["app"]).err(&["not-found"]);
    // The bundles hold their own links to the files.
    assert_same_tree(&reference(), &first);
    assert_same_tree(&reference(), &second);
    assert_no_staging(&s.bundles(), &s.store());
}

// ---------------------------------------------------------------------
// Hostile images.

/// One line of hostile/cases.
struct Case {
    codes: Vec<String>,
    names: Option<String>,
}

fn cases() -> Vec<(String, Case)> {
    let text = std::fs::read_to_string(images().join("hostile/cases")).expect("hostile/cases");
    text.lines()
        .map(|line| {
            let mut words = line.split(' ');
            let name = words.next().unwrap().to_string();
            let mut case = Case {
                codes: Vec::new(),
                names: None,
            };
            for w in words {
                match w.split_once('=').expect("key=value") {
                    ("codes", v) => case.codes = v.split(',').map(str::to_string).collect(),
                    ("names", v) => case.names = Some(v.to_string()),
                    (k, _) => panic!("hostile/cases: unknown key {k}"),
                }
            }
            (name, case)
        })
        .collect()
}

/// The cases a test below runs: every case hostile.py writes.
const HOSTILE: [&str; 16] = [
    "control",
    "absolute-name",
    "dotdot-name",
    "symlink-then-write",
    "symlink-across-layers",
    "hardlink-dotdot",
    "hardlink-absolute",
    "truncated-gzip",
    "corrupt-gzip",
    "wrong-digest",
    "wrong-size-long",
    "wrong-size-short",
    "unknown-media-type",
    "huge-pax-name",
    "huge-size-claim",
    "gnu-sparse",
];

#[test]
fn every_hostile_case_has_a_test() {
    let written: BTreeSet<String> = cases().into_iter().map(|(name, _)| name).collect();
    let tested: BTreeSet<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    assert_eq!(written, tested);
}

/// Imports hostile case `name` under a file size limit, with its canary
/// dir (and a host file in it) in place: a refusal with one of the case's
/// codes, quickly for the size claims, naming the entry where the case
/// says so, and afterwards no bundle, no staging, nothing new next to the
/// bundle and the canary as it was.
fn refuses(name: &str) {
    let (_, case) = cases()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("hostile.py writes no case {name}"));
    let canary = Path::new(CANARY).join(name);
    let host_file = canary.join("host-file");
    let _ = std::fs::remove_dir_all(&canary);
    std::fs::create_dir_all(&canary).unwrap();
    std::fs::write(&host_file, "host\n").unwrap();

    let s = Scratch::new();
    std::fs::write(s.bundles().join("neighbour"), "neighbour\n").unwrap();
    let b = s.bundle("b");
    let fsize = format!("--fsize={FSIZE_LIMIT}");
    let mut argv: Vec<OsString> = ["import", "--store"].map(OsString::from).to_vec();
    argv.push(s.store().into());
    argv.push(images().join("hostile").join(name).into());
    argv.push(b.clone().into());
    let out = s.nanoctr_under(&["prlimit", &fsize, "--"], &argv);
    assert_eq!(out.signal, None, "killed by a signal: {out:?}");
    let codes: Vec<&str> = case.codes.iter().map(String::as_str).collect();
    let line = out.err(&codes);
    if let Some(entry) = &case.names {
        assert!(
            line.contains(entry.as_str()),
            "the error names no {entry}: {line}"
        );
    }
    if codes.contains(&"full") {
        assert!(out.took < QUICK, "took {:?}: {out:?}", out.took);
    }

    assert!(!b.exists(), "{} was made", b.display());
    assert_eq!(
        names(&s.bundles()),
        BTreeSet::from(["neighbour".to_string()]),
        "the import left or wrote next to its bundle"
    );
    assert_no_staging(&s.bundles(), &s.store());
    assert_eq!(
        names(&canary),
        BTreeSet::from(["host-file".to_string()]),
        "written outside: {}",
        canary.display()
    );
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "host\n");
    assert_eq!(std::fs::metadata(&host_file).unwrap().nlink(), 1);
    let _ = std::fs::remove_dir_all(&canary);
}

/// The hostile cases' harmless sibling, from the same writer: imports.
#[test]
fn hostile_control_imports() {
    let s = Scratch::new();
    let b = s.bundle("b");
    s.import(&[], &images().join("hostile/control"), &b).ok();
    let rootfs = b.join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/hello")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/more")).unwrap(),
        "more\n"
    );
    assert!(
        !rootfs.join("etc/link").exists(),
        "the whiteout was ignored"
    );
    let ino = |p: &str| std::fs::metadata(rootfs.join(p)).unwrap().ino();
    assert_eq!(ino("etc/hard"), ino("etc/hello"));
    assert_eq!(
        std::fs::metadata(rootfs.join("big")).unwrap().len(),
        256 * 1024
    );
    assert_no_staging(&s.bundles(), &s.store());
}

#[test]
fn refuses_an_absolute_name() {
    refuses("absolute-name");
}

#[test]
fn refuses_a_dotdot_name() {
    refuses("dotdot-name");
}

#[test]
fn refuses_a_write_through_a_symlink_of_the_same_layer() {
    refuses("symlink-then-write");
}

#[test]
fn refuses_a_write_through_a_symlink_of_a_lower_layer() {
    refuses("symlink-across-layers");
}

#[test]
fn refuses_a_hardlink_out_by_dotdot() {
    refuses("hardlink-dotdot");
}

#[test]
fn refuses_a_hardlink_to_an_absolute_path() {
    refuses("hardlink-absolute");
}

#[test]
fn refuses_a_truncated_gzip_layer() {
    refuses("truncated-gzip");
}

#[test]
fn refuses_a_gzip_layer_with_a_bad_crc() {
    refuses("corrupt-gzip");
}

#[test]
fn refuses_a_blob_that_is_not_its_digest() {
    refuses("wrong-digest");
}

#[test]
fn refuses_a_blob_shorter_than_its_descriptor() {
    refuses("wrong-size-long");
}

#[test]
fn refuses_a_blob_longer_than_its_descriptor() {
    refuses("wrong-size-short");
}

#[test]
fn refuses_an_unknown_layer_media_type() {
    refuses("unknown-media-type");
}

#[test]
fn refuses_a_64_kib_pax_name() {
    refuses("huge-pax-name");
}

#[test]
fn refuses_a_10_gib_claim_with_a_short_body() {
    refuses("huge-size-claim");
}

#[test]
fn refuses_a_10_gib_gnu_sparse_entry() {
    refuses("gnu-sparse");
}

// ---------------------------------------------------------------------
// Kill -9 at random moments.

/// A small xorshift generator: the tests have no rand crate, and a seed
/// printed is a run repeatable (`NANOCTR_IMPORT_SEED`).
struct Rng(u64);

impl Rng {
    fn seeded() -> (Rng, u64) {
        let seed = match std::env::var("NANOCTR_IMPORT_SEED") {
            Ok(s) => s.parse().expect("NANOCTR_IMPORT_SEED is a number"),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        };
        (Rng(seed | 1), seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Imports killed by SIGKILL at random moments from start to end, half of
/// them into a store kept across rounds (so a killed import's leftovers
/// meet the next one), half into a fresh store: each bundle is afterwards
/// absent or whole, never half; a later import into the same parent and
/// store succeeds and leaves no staging entries.
#[test]
fn a_killed_import_leaves_no_half_bundle() {
    const ROUNDS: usize = 30;
    let s = Scratch::new();
    let source = images().join("oci");
    let timed = Instant::now();
    s.import(&[], &source, &s.bundle("timing")).ok();
    let full = timed.elapsed();
    std::fs::remove_dir_all(s.bundle("timing")).unwrap();
    let _ = std::fs::remove_dir_all(s.store());

    let (mut rng, seed) = Rng::seeded();
    let (mut killed, mut finished, mut whole, mut absent, mut half) = (0, 0, 0, 0, 0);
    for round in 0..ROUNDS {
        let store = match round % 2 {
            0 => s.store(),
            _ => s.dir.join(format!("store-{round}")),
        };
        let b = s.bundle(&format!("b{round}"));
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64));
        let mut child = Command::new(bin("nanoctr"))
            .arg("import")
            .arg("--store")
            .arg(&store)
            .arg(&source)
            .arg(&b)
            .env("NANOCTR_SOCKET", s.dir.join("no-daemon.sock"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nanoctr import");
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        match (status.signal(), status.code()) {
            (Some(9), _) => killed += 1,
            (None, Some(0)) => finished += 1,
            _ => panic!("round {round}: the import ended with {status} (seed {seed})"),
        }
        if !b.exists() {
            absent += 1;
            continue;
        }
        let config_ok =
            std::fs::read(b.join("config.json")).is_ok_and(|text| json::check(&text).is_ok());
        match (config_ok, compare(&reference(), &b.join("rootfs"))) {
            (true, Ok(_)) => whole += 1,
            (_, diffs) => {
                half += 1;
                eprintln!(
                    "round {round}: half a bundle after {delay:?} (config.json whole: {config_ok}): {diffs:?}"
                );
            }
        }
    }
    println!(
        "kill loop: rounds={ROUNDS} killed={killed} finished={finished} whole={whole} \
         absent={absent} half={half} full_import={full:?} seed={seed}"
    );
    assert_eq!(half, 0, "half bundles (seed {seed})");
    assert!(
        killed > 0,
        "no round killed an import in flight (seed {seed})"
    );

    let last = s.bundle("last");
    s.import(&[], &source, &last).ok();
    assert_same_tree(&reference(), &last);
    assert_no_staging(&s.bundles(), &s.store());
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(ok.success(), "mount a tmpfs at {} (root?)", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_store_without_room_is_refused_before_anything_is_written() {
    let s = Scratch::new();
    let small = Tmpfs::mount(&s.dir.join("small"), "1m");
    let store = small.0.join("store");
    let bundles = small.0.join("bundles");
    std::fs::create_dir(&bundles).unwrap();
    let b = bundles.join("b");
    let oci = images().join("oci");
    let args: Vec<&OsStr> = vec![
        "import".as_ref(),
        "--store".as_ref(),
        store.as_os_str(),
        oci.as_os_str(),
        b.as_os_str(),
    ];
    let line = s.nanoctr(&args).err(&["full"]).to_string();
    let field = |k: &str| -> u64 {
        line.split(' ')
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k}N in {line:?}"))
    };
    assert!(field("needed=") > field("free="), "{line}");
    assert!(!b.exists());
    assert!(names(&store.join("layers")).is_empty(), "a layer was kept");
    assert!(names(&store.join("tmp")).is_empty(), "staging was left");
    assert_no_staging(&bundles, &store);
}

#[test]
fn progress_shows_on_a_terminal_and_not_on_a_pipe() {
    use std::io::Read;
    let s = Scratch::new();
    // On a pipe (as every other test runs it): nothing on stderr.
    let quiet = s.import(&[], &images().join("oci"), &s.bundle("piped"));
    quiet.ok();
    assert_eq!(quiet.stderr, "", "progress on a pipe");
    let (master, slave) = nanoctr_tests::sys::openpty(80, 24).expect("openpty");
    let mut child = Command::new(bin("nanoctr"))
        .args(["import", "--store"])
        .arg(s.store())
        .arg(images().join("oci-zstd"))
        .arg(s.bundle("tty"))
        .env("NANOCTR_SOCKET", s.dir.join("no-daemon.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::from(slave))
        .spawn()
        .expect("run nanoctr");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    // The child is gone and with it the last slave: what it wrote is
    // still buffered, then reads fail.
    let mut master = std::fs::File::from(master);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    let layers = manifest_facts(&images().join("oci-zstd")).0;
    assert!(
        seen.contains(&format!("/{layers}")) && seen.contains(" MB ") && seen.contains("MB/s"),
        "no progress on the terminal: {seen:?}"
    );
}
