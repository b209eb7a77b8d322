//! Update records: for each container that was swapped, which version
//! runs and, until `commit`, the one before it. They live on persistent
//! storage (`--update-dir`, default `/var/lib/nanoctr/updates`, one file
//! per container id), so they survive a power cut that takes the state
//! dir's tmpfs with it:
//!
//! ```text
//! phase=trial
//! current id=web bundle=/srv/web-2 runtime=/usr/bin/runc created=1700000100
//! previous id=web bundle=/srv/web-1 runtime=/usr/bin/runc created=1700000000
//! ```
//!
//! `current` and `previous` are container records (`record.rs`). Each
//! write goes to a temporary beside the file, is fsync'd, renamed, and the
//! directory fsync'd: a reader finds the old record or the new one, never
//! a mix.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::record::Record;
use nanoctr_shim::contract::TMP;

/// Where an update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The old version is being stopped and the new one made.
    Swap,
    /// The new version runs, and must get healthy (or stay running).
    Trial,
    /// It did: kept until `commit` (or `rollback`).
    Done,
    /// The previous version is being brought back.
    Rollback,
    /// Nothing pending: `current` is the version.
    Committed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Swap => "swap",
            Phase::Trial => "trial",
            Phase::Done => "done",
            Phase::Rollback => "rollback",
            Phase::Committed => "committed",
        }
    }

    fn parse(word: &str) -> Option<Phase> {
        [
            Phase::Swap,
            Phase::Trial,
            Phase::Done,
            Phase::Rollback,
            Phase::Committed,
        ]
        .into_iter()
        .find(|p| p.as_str() == word)
    }

    /// Under way: the container is the update's to move.
    pub fn moving(self) -> bool {
        matches!(self, Phase::Swap | Phase::Trial | Phase::Rollback)
    }
}

/// One container's update record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRecord {
    pub phase: Phase,
    pub current: Record,
    /// `None` with a pending phase: a first install, which a rollback
    /// removes.
    pub previous: Option<Record>,
}

impl UpdateRecord {
    pub fn encode(&self) -> String {
        let mut text = format!("phase={}\n", self.phase.as_str());
        text.push_str("current ");
        text.push_str(&self.current.encode());
        if let Some(p) = &self.previous {
            text.push_str("previous ");
            text.push_str(&p.encode());
        }
        text
    }

    pub fn decode(text: &str) -> Result<UpdateRecord, String> {
        let mut lines = text.lines();
        let phase = lines
            .next()
            .and_then(|l| l.strip_prefix("phase="))
            .and_then(Phase::parse)
            .ok_or("no phase= line")?;
        let record = |line: Option<&str>, key: &str| -> Result<Option<Record>, String> {
            let Some(line) = line else {
                return Ok(None);
            };
            let rest = line
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or_else(|| format!("a line that is not {key}"))?;
            Record::decode(rest)
                .map(Some)
                .map_err(|e| format!("{key}: {}", e.message))
        };
        let current = record(lines.next(), "current")?.ok_or("no current line")?;
        let previous = record(lines.next(), "previous")?;
        if lines.next().is_some() {
            return Err("lines after previous".into());
        }
        Ok(UpdateRecord {
            phase,
            current,
            previous,
        })
    }
}

/// The update records in `dir`.
pub struct Updates {
    dir: PathBuf,
}

impl Updates {
    pub fn new(dir: &Path) -> Updates {
        Updates { dir: dir.into() }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// The record of `id`; `Ok(None)` when it has none.
    pub fn read(&self, id: &str) -> Result<Option<UpdateRecord>, String> {
        let path = self.path(id);
        match crate::files::read_bounded_text(&path, 64 * 1024, crate::files::Links::Refuse) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
            Ok(text) => UpdateRecord::decode(&text)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
        }
    }

    /// Where a write of `id`'s record goes before its rename: a name no
    /// id can have (ids never start with a dot).
    fn staging(&self, id: &str) -> PathBuf {
        self.dir.join(format!(".{id}{TMP}"))
    }

    /// Writes the record of `id` durably (the dir is made if missing).
    pub fn write(&self, id: &str, record: &UpdateRecord) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        fs::create_dir_all(&self.dir)?;
        let tmp = self.staging(id);
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(record.encode().as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, self.path(id))?;
        fs::File::open(&self.dir)?.sync_all()
    }

    /// Removes the record of `id` durably.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match fs::File::open(&self.dir) {
            Ok(d) => d.sync_all(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The ids that have a record, sorted; a write a power cut
    /// interrupted (its temporary) is removed.
    pub fn ids(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        for e in entries.filter_map(|e| e.ok()) {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') && name.ends_with(TMP) {
                let _ = fs::remove_file(self.dir.join(&name));
            } else if crate::wire::check_id(&name).is_ok() {
                ids.push(name);
            }
        }
        crate::slab::sort_small(&mut ids, |a, b| a < b);
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bundle: &str) -> Record {
        Record::decode(&format!(
            "id=web bundle={} runtime=/usr/bin/runc created=1 restart=always",
            crate::wire::proto::quote(bundle)
        ))
        .unwrap()
    }

    #[test]
    fn round_trip_and_refusals() {
        let u = UpdateRecord {
            phase: Phase::Trial,
            current: record("/srv/web-2"),
            previous: Some(record("/srv/web 1")),
        };
        assert_eq!(UpdateRecord::decode(&u.encode()).unwrap(), u);
        let first = UpdateRecord {
            phase: Phase::Committed,
            previous: None,
            ..u.clone()
        };
        assert_eq!(UpdateRecord::decode(&first.encode()).unwrap(), first);
        let text = u.encode();
        for bad in [
            "",
            "phase=later\n",
            "phase=trial\n",
            &text.replace("current ", "now "),
            &format!("{text}extra\n"),
            &text[..text.len() - 20],
        ] {
            assert!(UpdateRecord::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn written_durably_and_listed() {
        let dir = std::env::temp_dir().join(format!("nanoctr-updates-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let updates = Updates::new(&dir);
        assert_eq!(updates.read("web").unwrap(), None);
        assert!(updates.ids().is_empty());
        let u = UpdateRecord {
            phase: Phase::Done,
            current: record("/srv/web-2"),
            previous: None,
        };
        updates.write("web", &u).unwrap();
        fs::write(dir.join(format!(".db{TMP}")), "half").unwrap();
        assert_eq!(updates.ids(), ["web"]);
        assert!(
            !dir.join(format!(".db{TMP}")).exists(),
            "a torn write is removed"
        );
        assert_eq!(updates.read("web").unwrap(), Some(u));
        fs::write(dir.join("bad"), "phase=trial\n").unwrap();
        assert!(updates.read("bad").is_err());
        updates.remove("web").unwrap();
        updates.remove("web").unwrap();
        assert_eq!(updates.read("web").unwrap(), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
