//! A Mender Update Module v3 that updates one container: nanoctr's binary
//! run as `/usr/share/mender/modules/v3/nanoctr STATE DIR` (a link or a
//! copy), or as `nanoctr STATE DIR`.
//!
//! The payload (`DIR/files/`) is an image `nanoctr import` takes and the
//! manifest `nanoctr.conf` (`manifest.rs`). The states:
//!
//! - `SupportsRollback`: `Yes`; `NeedsArtifactReboot`: `No`.
//! - `ArtifactInstall`: checks the payload; waits for an update of the
//!   container under way to end, and rolls back one a dead install left
//!   uncommitted; imports the image into a
//!   new bundle `BUNDLES/ID/NAME` (BUNDLES is `bundles/` beside the image
//!   store, so the import hard-links; NAME the artifact's name); then
//!   `swap ID BUNDLE`, which the daemon takes for a first install too: it
//!   starts the new version and waits for it to get healthy (or, without
//!   a health check, to stay running for the swap timeout), or rolls back
//!   by itself. Exits 0 only when the new version is up.
//! - `ArtifactCommit`: `commit ID`.
//! - `ArtifactRollback`: the old version back (`rollback ID`, or a swap
//!   back after a commit); for a first install the new container removed.
//!   Done already (the daemon rolled back by itself) counts as done, once
//!   the old version runs.
//! - `ArtifactFailure`: the same (it follows a rollback; each finds what
//!   is done already done).
//! - `Cleanup`: removes the container's bundles under `BUNDLES/ID/` that
//!   the daemon neither runs nor keeps as the previous version.
//! - `Download` and every other state: nothing (Mender stores the files).
//!
//! What an install did is recorded in `DIR/tmp/nanoctr` before each step
//! (atomically), and every state decides from that record and what the
//! daemon says now, so each may run again after a power cut.
//!
//! The helpers several states call are `#[inline(never)]`: a copy of each
//! in every state costs more bytes than the calls.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::manifest::{self, Manifest};
use crate::client::{self, Failure};
use crate::files::{read_bounded_text, Links, MAX_CONFIG_FILE};
use crate::wire::check_id;
use crate::wire::proto::split_words;

/// The states of the protocol the module knows. None is a client verb
/// (those are lower case), so `nanoctr STATE DIR` never shadows one.
pub const STATES: [&str; 12] = [
    "Download",
    "ArtifactInstall",
    "NeedsArtifactReboot",
    "SupportsRollback",
    "ArtifactReboot",
    "ArtifactVerifyReboot",
    "ArtifactCommit",
    "ArtifactRollback",
    "ArtifactRollbackReboot",
    "ArtifactVerifyRollbackReboot",
    "ArtifactFailure",
    "Cleanup",
];

/// Where Mender runs the module from, as the end of its path.
pub const PATH: &str = "/modules/v3/nanoctr";

/// The daemon, as the module asks it: one request, its data lines and
/// what follows `OK`.
pub trait Daemon {
    fn ask(&mut self, words: &[&str]) -> Result<(Vec<String>, String), Failure>;
}

/// The real daemon, on its socket.
struct Socket(PathBuf);

impl Daemon for Socket {
    fn ask(&mut self, words: &[&str]) -> Result<(Vec<String>, String), Failure> {
        client::request(&self.0, words)
    }
}

/// Runs the module with its arguments, `STATE DIR`; the exit status.
pub fn main(args: &[String]) -> i32 {
    let state = args.first().map_or("", String::as_str);
    let answer = match state {
        "SupportsRollback" => "Yes",
        "NeedsArtifactReboot" => "No",
        "ArtifactInstall" | "ArtifactCommit" | "ArtifactRollback" | "ArtifactFailure"
        | "Cleanup" => "",
        _ => return 0,
    };
    if !answer.is_empty() {
        println!("{answer}");
        return 0;
    }
    let Some(dir) = args.get(1).map(PathBuf::from) else {
        eprintln!("nanoctr: usage: {PATH} STATE DIR");
        return 2;
    };
    let socket = std::env::var("NANOCTR_SOCKET")
        .ok()
        .or_else(client::configured_socket)
        .unwrap_or_else(|| client::DEFAULT_SOCKET.into());
    let store = client::configured("image-store")
        .unwrap_or_else(|| crate::image::store::DEFAULT_STORE.into());
    let tree = Tree {
        dir,
        bundles: Path::new(&store).with_file_name("bundles"),
        store: store.into(),
    };
    let d = &mut Socket(socket.into());
    let done = match state {
        "ArtifactInstall" => install(&tree, d),
        "ArtifactCommit" => commit(&tree, d),
        "ArtifactRollback" | "ArtifactFailure" => rollback(&tree, d),
        _ => cleanup(&tree, d),
    };
    match done {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nanoctr: {state}: {e}");
            1
        }
    }
}

/// The module's file tree, and where images and bundles go.
struct Tree {
    dir: PathBuf,
    store: PathBuf,
    bundles: PathBuf,
}

impl Tree {
    fn record(&self) -> PathBuf {
        self.dir.join("tmp/nanoctr")
    }
}

/// What an install did: written before each step, read by the later
/// states. Three lines: the id, the new bundle, the previous bundle (empty
/// for a first install).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    id: String,
    /// The new version's bundle.
    bundle: String,
    /// The bundle the container ran before; none for a first install.
    previous: Option<String>,
}

impl Record {
    fn write(&self, t: &Tree) -> Result<(), String> {
        let previous = self.previous.as_deref().unwrap_or_default();
        let text = format!("{}\n{}\n{previous}\n", self.id, self.bundle);
        let path = t.record();
        crate::store::statedir::write_atomic(&path, text.as_bytes()).map_err(at(&path))?;
        crate::image::store::sync_dir(&t.dir.join("tmp")).map_err(|e| e.message)
    }

    /// The record, if an install made one.
    #[inline(never)]
    fn read(t: &Tree) -> Result<Option<Record>, String> {
        let path = t.record();
        let text = match read_bounded_text(&path, MAX_CONFIG_FILE, Links::Refuse) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            r => r.map_err(at(&path))?,
        };
        let mut lines = text.lines().map(str::to_string);
        match (lines.next(), lines.next(), lines.next()) {
            (Some(id), Some(bundle), Some(previous)) => Ok(Some(Record {
                id,
                bundle,
                previous: Some(previous).filter(|p| !p.is_empty()),
            })),
            _ => Err(format!("{}: not a record of an install", path.display())),
        }
    }
}

/// An error of the file at `p`, for `map_err`.
fn at(p: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", p.display())
}

/// The `key=value` words of a line.
struct Fields(Vec<String>);

impl Fields {
    fn of(line: &str) -> Fields {
        Fields(split_words(line.trim_end().as_bytes()).unwrap_or_default())
    }

    fn get(&self, key: &str) -> Option<String> {
        self.0.iter().find_map(|w| match w.split_once('=') {
            Some((k, v)) if k == key => Some(v.to_string()),
            _ => None,
        })
    }
}

/// What `state ID` says of a container, as far as an update cares.
#[derive(Debug, Default)]
struct Seen {
    bundle: String,
    status: String,
    /// `swap`, `trial`, `done`, `locked` or `rollback`, during and after a
    /// swap.
    update: Option<String>,
    previous: Option<String>,
}

impl Seen {
    /// A swap not committed or rolled back yet (`none` or a bundle as its
    /// previous version).
    fn pending(&self) -> bool {
        !matches!(
            self.update.as_deref(),
            None | Some("rollback" | "committed")
        )
    }
}

/// The container as the daemon has it; `None` if it has none of that id.
#[inline(never)]
fn seen(d: &mut impl Daemon, id: &str) -> Result<Option<Seen>, String> {
    let data = match d.ask(&["state", id]) {
        Ok((data, _)) => data,
        Err(e) if e.code == "not-found" => return Ok(None),
        Err(e) => return Err(format!("state {id}: {e}")),
    };
    let f = Fields::of(data.first().map_or("", String::as_str));
    Ok(Some(Seen {
        bundle: f.get("bundle").unwrap_or_default(),
        status: f.get("status").unwrap_or_default(),
        update: f.get("update"),
        previous: f.get("previous").filter(|p| p != "none"),
    }))
}

/// One request that must be answered `OK`.
#[inline(never)]
fn must(d: &mut impl Daemon, words: &[&str]) -> Result<String, String> {
    let line = words.join(" ");
    println!("nanoctr: {line}");
    d.ask(words)
        .map(|(_, ok)| ok)
        .map_err(|e| format!("{line}: {e}"))
}

/// The image and the manifest of the payload in `files`.
#[inline(never)]
fn payload(files: &Path) -> Result<(PathBuf, Manifest), String> {
    let path = files.join(manifest::NAME);
    let text = read_bounded_text(&path, MAX_CONFIG_FILE, Links::Refuse).map_err(at(&path))?;
    let m = manifest::parse(&path, &text)?;
    let mut images = std::fs::read_dir(files)
        .map_err(at(files))?
        .flatten()
        .filter(|e| e.file_name() != manifest::NAME)
        .map(|e| e.path());
    match (images.next(), images.count()) {
        (Some(image), 0) => Ok((image, m)),
        (none, more) => Err(format!(
            "{}: {} images beside the manifest, not one",
            files.display(),
            more + usize::from(none.is_some())
        )),
    }
}

/// `ArtifactInstall`.
#[inline(never)]
fn install(t: &Tree, d: &mut impl Daemon) -> Result<(), String> {
    let (image, m) = payload(&t.dir.join("files"))?;
    let record = prepare(t, d, &m)?;
    let o = crate::image::Options {
        source: image.to_string_lossy().into_owned(),
        bundle: record.bundle.clone().into(),
        platform: m.platform.clone(),
        store: t.store.clone(),
        ..Default::default()
    };
    crate::image::import(&o).map_err(|e| format!("import: {} {}", e.code.as_str(), e.message))?;
    let timeout = m.swap_timeout.map(|s| format!("swap-timeout={s}"));
    let mut words = vec!["swap", &m.id, &record.bundle];
    words.extend(timeout.as_deref());
    words.extend(m.options.iter().map(String::as_str));
    must(d, &words).map(drop)
}

/// Everything before the import: an uncommitted update a dead install
/// left rolled back, the new bundle's place chosen and emptied, and the
/// record written.
#[inline(never)]
fn prepare(t: &Tree, d: &mut impl Daemon, m: &Manifest) -> Result<Record, String> {
    let id = m.id.as_str();
    let mut now = seen(d, id)?;
    // An update under way (the daemon's own rollback after a restart, say)
    // ends by itself: it is waited for, up to five minutes.
    for _ in 0..300 {
        let update = now.as_ref().and_then(|s| s.update.as_deref());
        if !matches!(update, Some("swap" | "trial" | "rollback" | "locked")) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        now = seen(d, id)?;
    }
    if now.as_ref().is_some_and(Seen::pending) {
        println!("nanoctr: {id} has an update nobody committed: rolled back first");
        must(d, &["rollback", id])?;
        now = seen(d, id)?;
    }
    let previous = now.map(|s| s.bundle);
    // The artifact's name where it is a fit name for a directory.
    let name = std::fs::read_to_string(t.dir.join("header/artifact_name")).unwrap_or_default();
    let name = check_id(name.trim()).unwrap_or_else(|_| "artifact".into());
    let dir = t.bundles.join(id);
    std::fs::create_dir_all(&dir).map_err(at(&dir))?;
    // The artifact's name, or, for the name the container runs, NAME.2.
    let mut bundle = format!("{}/{name}", dir.display());
    if previous.as_ref() == Some(&bundle) {
        bundle.push_str(".2");
    }
    // What is there is what a dead install left.
    let _ = crate::image::compose::remove(Path::new(&bundle));
    let record = Record {
        id: id.into(),
        bundle,
        previous,
    };
    record.write(t)?;
    Ok(record)
}
/// The record and the container now; an error when there is no record
/// and `needed`.
type Now = Option<(Record, Option<Seen>)>;

#[inline(never)]
fn now(t: &Tree, d: &mut impl Daemon, needed: bool) -> Result<Now, String> {
    let Some(r) = Record::read(t)? else {
        return match needed {
            true => Err(format!("{}: no install was recorded", t.record().display())),
            false => Ok(None),
        };
    };
    let s = seen(d, &r.id)?;
    Ok(Some((r, s)))
}

/// The error for a container that is not as an update left it.
fn unlike(id: &str, s: Option<Seen>, want: &str) -> String {
    let s = s.unwrap_or_default();
    format!(
        "{id} runs {:?} (status={:?}), where {want} should run",
        s.bundle, s.status
    )
}

/// `ArtifactCommit`.
#[inline(never)]
fn commit(t: &Tree, d: &mut impl Daemon) -> Result<(), String> {
    let Some((r, s)) = now(t, d, true)? else {
        return Ok(());
    };
    match s {
        Some(s) if s.bundle == r.bundle && s.status == "running" => match s.pending() {
            true => must(d, &["commit", &r.id]).map(drop),
            false => Ok(()),
        },
        s => Err(unlike(&r.id, s, &r.bundle)),
    }
}

/// `ArtifactRollback` and `ArtifactFailure`: the container as it was
/// before the install, its old version running.
#[inline(never)]
fn rollback(t: &Tree, d: &mut impl Daemon) -> Result<(), String> {
    let Some((r, s)) = now(t, d, false)? else {
        return Ok(());
    };
    let id = r.id.as_str();
    match (&r.previous, s) {
        // A first install: the new container goes.
        (None, None) => Ok(()),
        (None, Some(s)) if s.bundle == r.bundle => {
            let undo: &[&str] = match s.pending() {
                true => &["rollback", id],
                false => &["delete", id, "force"],
            };
            must(d, undo).map(drop)
        }
        // Back already (the daemon rolled back by itself).
        (Some(old), Some(s)) if s.bundle == *old && s.status == "running" => Ok(()),
        (Some(_), Some(s)) if s.bundle == r.bundle && s.pending() => {
            must(d, &["rollback", id]).map(drop)
        }
        // Committed already: a swap back, committed too.
        (Some(old), Some(s)) if s.bundle == r.bundle => {
            must(d, &["swap", id, old])?;
            must(d, &["commit", id]).map(drop)
        }
        (old, s) => Err(unlike(id, s, old.as_deref().unwrap_or("nothing"))),
    }
}

/// `Cleanup`: the container's bundles that nothing uses, removed.
#[inline(never)]
fn cleanup(t: &Tree, d: &mut impl Daemon) -> Result<(), String> {
    let (r, s) = match now(t, d, false) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(()),
        Err(e) => {
            eprintln!("nanoctr: Cleanup: {e}: unused bundles stay until the next update");
            return Ok(());
        }
    };
    let s = s.unwrap_or_default();
    let keep = [Some(s.bundle), s.previous];
    let dir = Path::new(&r.bundle).parent().unwrap_or(Path::new("/"));
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        let hidden = e.file_name().as_encoded_bytes().starts_with(b".");
        if hidden
            || keep
                .iter()
                .flatten()
                .any(|k| path.as_os_str() == k.as_str())
        {
            continue;
        }
        crate::image::compose::remove(&path).map_err(at(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon that answers from a script and records what it is asked.
    #[derive(Default)]
    struct Scripted {
        answers: Vec<(&'static str, Result<&'static str, &'static str>)>,
        asked: Vec<String>,
    }

    impl Scripted {
        fn new(answers: &[(&'static str, Result<&'static str, &'static str>)]) -> Scripted {
            Scripted {
                answers: answers.to_vec(),
                asked: Vec::new(),
            }
        }
    }

    impl Daemon for Scripted {
        /// The next answer, for a request that must start as its script
        /// says; `Ok("DATA")` is a `state` data line, `Err("CODE")` an ERR.
        fn ask(&mut self, words: &[&str]) -> Result<(Vec<String>, String), Failure> {
            let line = words.join(" ");
            self.asked.push(line.clone());
            assert!(!self.answers.is_empty(), "unexpected request {line}");
            let (want, answer) = self.answers.remove(0);
            assert!(line.starts_with(want), "asked {line}, expected {want}");
            match answer {
                Ok(data) => Ok((vec![data.to_string()], String::new())),
                Err(code) => Err(Failure {
                    status: 1,
                    code: code.into(),
                    message: format!("refused ({code})"),
                }),
            }
        }
    }

    fn tree(name: &str) -> Tree {
        let dir =
            std::env::temp_dir().join(format!("nanoctr-mender-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["tmp", "files", "header", "bundles"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        Tree {
            store: dir.join("images"),
            bundles: dir.join("bundles"),
            dir,
        }
    }

    fn record(t: &Tree, previous: Option<&str>) -> Record {
        let r = Record {
            id: "web".into(),
            bundle: t.bundles.join("web/v2").to_string_lossy().into_owned(),
            previous: previous.map(Into::into),
        };
        r.write(t).unwrap();
        r
    }

    #[test]
    fn states_are_no_verbs() {
        for s in STATES {
            assert!(!crate::wire::VERBS.iter().any(|v| v.0 == s), "{s}");
            assert!(!crate::image::cli::VERBS.contains(&s), "{s}");
            assert!(s.starts_with(|c: char| c.is_ascii_uppercase()), "{s}");
        }
    }

    #[test]
    fn queries_and_unknown_states() {
        assert_eq!(main(&["SupportsRollback".into()]), 0);
        assert_eq!(main(&["NeedsArtifactReboot".into()]), 0);
        assert_eq!(main(&["ProvidePayloadFileSizes".into(), "/x".into()]), 0);
        assert_eq!(main(&["Download".into(), "/nowhere".into()]), 0);
        assert_eq!(main(&[]), 0);
        assert_eq!(main(&["ArtifactInstall".into()]), 2);
    }

    #[test]
    fn records_round_trip() {
        let t = tree("record");
        assert_eq!(Record::read(&t).unwrap(), None);
        let r = record(&t, Some("/srv/my web"));
        assert_eq!(Record::read(&t).unwrap(), Some(r));
        let first = record(&t, None);
        assert_eq!(Record::read(&t).unwrap().unwrap().previous, None);
        assert_eq!(first.previous, None);
        std::fs::write(t.record(), "garbage\n").unwrap();
        assert!(Record::read(&t).is_err());
    }

    #[test]
    fn payloads_are_checked() {
        let t = tree("payload");
        let files = t.dir.join("files");
        let e = payload(&files).unwrap_err();
        assert!(e.contains("nanoctr.conf"), "{e}");
        std::fs::write(files.join("nanoctr.conf"), "[container web]\n").unwrap();
        assert!(payload(&files).unwrap_err().contains("0 images"));
        std::fs::write(files.join("web.tar"), "").unwrap();
        let (image, m) = payload(&files).unwrap();
        assert_eq!((image, m.id.as_str()), (files.join("web.tar"), "web"));
        std::fs::write(files.join("db.tar"), "").unwrap();
        let e = payload(&files).unwrap_err();
        assert!(e.contains("2 images"), "{e}");
        std::fs::write(files.join("nanoctr.conf"), "[container web]\nimage = x\n").unwrap();
        assert!(payload(&files)
            .unwrap_err()
            .contains("unknown container key image"));
    }

    #[test]
    fn prepare_names_the_bundle_and_rolls_back_what_was_left() {
        let t = tree("prepare");
        std::fs::write(t.dir.join("header/artifact_name"), "web-v2\n").unwrap();
        let m = manifest::parse(Path::new("m"), "[container web]\n").unwrap();
        let dir = t.bundles.join("web");
        let v2 = dir.join("web-v2").to_string_lossy().into_owned();
        // A first install, over what a dead install left there.
        std::fs::create_dir_all(Path::new(&v2).join("rootfs")).unwrap();
        let mut d = Scripted::new(&[("state web", Err("not-found"))]);
        let r = prepare(&t, &mut d, &m).unwrap();
        assert_eq!(
            (r.bundle.as_str(), r.previous.as_deref()),
            (v2.as_str(), None)
        );
        assert!(!Path::new(&v2).exists());
        assert_eq!(Record::read(&t).unwrap(), Some(r));
        // Over an update a dead install left: rolled back first; the
        // name the container runs taken by the next one.
        let old = "id=web status=running bundle=/old update=done previous=/older";
        let back = Box::leak(format!("id=web status=running bundle={v2}").into_boxed_str());
        let mut d = Scripted::new(&[
            ("state web", Ok(old)),
            ("rollback web", Ok("")),
            ("state web", Ok(back)),
        ]);
        let r = prepare(&t, &mut d, &m).unwrap();
        assert_eq!(r.bundle, format!("{v2}.2"));
        assert_eq!(r.previous.as_deref(), Some(v2.as_str()));
        // An update under way (the daemon's own rollback): waited for.
        let moving = "id=web status=running bundle=/v1 update=rollback previous=/v2";
        let mut d = Scripted::new(&[
            ("state web", Ok(moving)),
            ("state web", Ok("id=web status=running bundle=/v1")),
        ]);
        assert_eq!(
            prepare(&t, &mut d, &m).unwrap().previous.as_deref(),
            Some("/v1")
        );
        // A name unfit for a directory.
        std::fs::write(t.dir.join("header/artifact_name"), "web v2/../x").unwrap();
        let mut d = Scripted::new(&[("state web", Err("not-found"))]);
        let r = prepare(&t, &mut d, &m).unwrap();
        assert!(r.bundle.ends_with("/web/artifact"), "{}", r.bundle);
    }

    #[test]
    fn commit_commits_only_the_new_version() {
        let t = tree("commit");
        assert!(commit(&t, &mut Scripted::default()).is_err());
        let r = record(&t, Some("/v1"));
        let trial = format!(
            "id=web status=running bundle={} update=done previous=/v1",
            r.bundle
        );
        let trial: &'static str = Box::leak(trial.into_boxed_str());
        let mut d = Scripted::new(&[("state web", Ok(trial)), ("commit web", Ok(""))]);
        commit(&t, &mut d).unwrap();
        // Again after a power cut: committed already.
        let done = Box::leak(format!("id=web status=running bundle={}", r.bundle).into_boxed_str());
        commit(&t, &mut Scripted::new(&[("state web", Ok(done))])).unwrap();
        // The daemon went back to the old version meanwhile.
        let back = "id=web status=running bundle=/v1";
        let e = commit(&t, &mut Scripted::new(&[("state web", Ok(back))])).unwrap_err();
        assert!(e.contains("runs \"/v1\"") && e.contains(&r.bundle), "{e}");
        // A first install: nothing to commit.
        record(&t, None);
        commit(&t, &mut Scripted::new(&[("state web", Ok(done))])).unwrap();
    }

    #[test]
    fn rollback_is_idempotent() {
        let t = tree("rollback");
        // Nothing recorded: nothing was done.
        rollback(&t, &mut Scripted::default()).unwrap();
        let r = record(&t, Some("/v1"));
        let new = |extra: &str| -> &'static str {
            Box::leak(format!("id=web status=running bundle={}{extra}", r.bundle).into_boxed_str())
        };
        // Swapped, not committed.
        let mut d = Scripted::new(&[
            ("state web", Ok(new(" update=done previous=/v1"))),
            ("rollback web", Ok("bundle=/v1")),
        ]);
        rollback(&t, &mut d).unwrap();
        // The daemon rolled back by itself, or a rollback ran already.
        let old = "id=web status=running bundle=/v1 update=rollback previous=/x";
        rollback(&t, &mut Scripted::new(&[("state web", Ok(old))])).unwrap();
        // Committed already: swapped back.
        let mut d = Scripted::new(&[
            ("state web", Ok(new(""))),
            ("swap web /v1", Ok("")),
            ("commit web", Ok("")),
        ]);
        rollback(&t, &mut d).unwrap();
        // Something else runs: not ours to touch.
        let other = "id=web status=running bundle=/v9";
        let e = rollback(&t, &mut Scripted::new(&[("state web", Ok(other))])).unwrap_err();
        assert!(e.contains("runs \"/v9\""), "{e}");
        // A first install: the new container goes, once.
        record(&t, None);
        let pending = new(" update=done previous=none");
        let mut d = Scripted::new(&[("state web", Ok(pending)), ("rollback web", Ok(""))]);
        rollback(&t, &mut d).unwrap();
        let mut d = Scripted::new(&[("state web", Ok(new(""))), ("delete web force", Ok(""))]);
        rollback(&t, &mut d).unwrap();
        rollback(&t, &mut Scripted::new(&[("state web", Err("not-found"))])).unwrap();
    }

    #[test]
    fn rollback_wants_the_old_version_running() {
        let t = tree("failure");
        record(&t, Some("/v1"));
        let stopped = "id=web status=stopped bundle=/v1";
        let e = rollback(&t, &mut Scripted::new(&[("state web", Ok(stopped))])).unwrap_err();
        assert!(
            e.contains("\"stopped\"") && e.contains("/v1 should run"),
            "{e}"
        );
        let running = "id=web status=running bundle=/v1";
        rollback(&t, &mut Scripted::new(&[("state web", Ok(running))])).unwrap();
    }

    #[test]
    fn cleanup_removes_what_nothing_uses() {
        let t = tree("cleanup");
        cleanup(&t, &mut Scripted::default()).unwrap();
        let r = record(&t, Some("/v1"));
        let dir = t.bundles.join("web");
        for b in ["v1", "v2", "v3", ".staging"] {
            std::fs::create_dir_all(dir.join(b).join("rootfs/bin")).unwrap();
        }
        let v1 = dir.join("v1").to_string_lossy().into_owned();
        let now = format!("id=web status=running bundle={} previous={v1}", r.bundle);
        let now: &'static str = Box::leak(now.into_boxed_str());
        cleanup(&t, &mut Scripted::new(&[("state web", Ok(now))])).unwrap();
        let mut left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".staging", "v1", "v2"]);
        // The daemon out of reach: nothing removed, and no failure.
        cleanup(&t, &mut Scripted::new(&[("state web", Err("busy"))])).unwrap();
        // The container gone: none of its bundles is used.
        cleanup(&t, &mut Scripted::new(&[("state web", Err("not-found"))])).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    }
}
