//! The image store: each layer once, extracted, shared by every image and
//! bundle that uses it.
//!
//! ```text
//! STORE/lock                  flock: shared while an import runs, exclusive to clean or gc
//! STORE/layers/HEX/tree/      a layer's files, HEX its diff_id (uncompressed digest)
//! STORE/layers/HEX/implicit   the directories it holds only as parents (NUL-separated)
//! STORE/layers/HEX/size       its bytes
//! STORE/images/NAME           a named image: `digest D` and one `layer D` line per layer
//! STORE/tmp/                  what imports are writing; all of it dead once no import runs
//! ```
//!
//! A bundle's files are hard links to the layer's, so the filesystem's
//! link count is the reference count: removing a layer from the store
//! frees only what no bundle still links. Everything enters the store by
//! one rename after a `syncfs`, and leaves it by a rename into `tmp/`
//! before it is removed, so a power cut never leaves a half layer under
//! `layers/`.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FlockOperation};

use super::digest::Digest;
use super::{invalid, Error, Result};
use crate::wire::proto::Code;

/// Where the store is unless `--store` says.
pub const DEFAULT_STORE: &str = "/var/lib/nanoctr/images";

pub struct Store {
    pub dir: PathBuf,
    lock: File,
}

/// A named image's record.
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub digest: String,
    pub layers: Vec<Digest>,
}

fn io_err(what: &Path, e: std::io::Error) -> Error {
    let code = match e.raw_os_error() {
        Some(libc::ENOSPC) => Code::Full,
        _ => Code::Invalid,
    };
    Error::new(code, format!("{}: {e}", what.display()))
}

/// fsync of a directory, so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// syncfs of the filesystem holding `path`: every file and directory
/// written there is on disk when it returns. One call in place of an
/// fsync per file of a layer.
pub fn sync_fs(path: &Path) -> Result<()> {
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    rfs::syncfs(crate::sys::fd(&f)).map_err(|e| io_err(path, crate::sys::io_error(e)))
}

/// Checks a name for `--name`: letters, digits and `._-:`, at most 128.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    match ok {
        true => Ok(()),
        false => Err(invalid(format!(
            "image name {name:?}: letters, digits and ._-: only (at most 128)"
        ))),
    }
}

impl Store {
    /// Opens the store, making its directories when missing.
    pub fn open(dir: &Path) -> Result<Store> {
        for sub in ["layers", "images", "tmp"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
        }
        let path = dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        Ok(Store {
            dir: dir.to_path_buf(),
            lock,
        })
    }

    /// Takes the store for an import: first, when no other import runs,
    /// removes what dead ones left in `tmp/`; then holds it shared.
    pub fn begin(&self) -> Result<usize> {
        let mut cleaned = 0;
        if rfs::flock(
            crate::sys::fd(&self.lock),
            FlockOperation::NonBlockingLockExclusive,
        )
        .is_ok()
        {
            cleaned = self.clean_tmp()?;
        }
        rfs::flock(crate::sys::fd(&self.lock), FlockOperation::LockShared)
            .map_err(|e| io_err(&self.dir, crate::sys::io_error(e)))?;
        Ok(cleaned)
    }

    /// Takes the store whole if no other import holds it.
    pub fn try_exclusive(&self) -> bool {
        rfs::flock(
            crate::sys::fd(&self.lock),
            FlockOperation::NonBlockingLockExclusive,
        )
        .is_ok()
    }

    /// Takes the store whole (gc), waiting for imports to end.
    pub fn exclusive(&self) -> Result<()> {
        rfs::flock(crate::sys::fd(&self.lock), FlockOperation::LockExclusive)
            .map_err(|e| io_err(&self.dir, crate::sys::io_error(e)))
    }

    /// Removes everything in `tmp/`: called with the lock held
    /// exclusively, when no import is running. Returns how many entries.
    pub fn clean_tmp(&self) -> Result<usize> {
        let tmp = self.dir.join("tmp");
        let mut n = 0;
        for e in std::fs::read_dir(&tmp).map_err(|e| io_err(&tmp, e))? {
            let e = e.map_err(|e| io_err(&tmp, e))?;
            super::compose::remove(&e.path()).map_err(|x| io_err(&e.path(), x))?;
            n += 1;
        }
        if n > 0 {
            sync_dir(&tmp)?;
        }
        Ok(n)
    }

    /// A new directory in `tmp/` for this import to write in.
    pub fn stage(&self, what: &str) -> Result<PathBuf> {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self
            .dir
            .join("tmp")
            .join(format!("{what}.{}.{n}", std::process::id()));
        let _ = super::compose::remove(&dir);
        std::fs::create_dir(&dir).map_err(|e| io_err(&dir, e))?;
        Ok(dir)
    }

    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.dir.join("layers").join(diff_id.hex())
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).join("tree").is_dir()
    }

    /// The directories a stored layer holds only as parents.
    pub fn implicit(&self, diff_id: &Digest) -> Result<Vec<Vec<u8>>> {
        let path = self.layer_dir(diff_id).join("implicit");
        let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
        let mut names: Vec<Vec<u8>> = bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
        names.pop(); // what follows the last NUL
        names.sort();
        Ok(names)
    }

    /// A layer's size in bytes, as recorded when it was stored.
    pub fn layer_size(&self, diff_id: &Digest) -> u64 {
        std::fs::read_to_string(self.layer_dir(diff_id).join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Moves a staged layer (`staged/tree`, written and checked) into the
    /// store, durably. Another import may have stored it first: then the
    /// staged copy is dropped.
    pub fn commit_layer(
        &self,
        staged: &Path,
        diff_id: &Digest,
        implicit: &[Vec<u8>],
        size: u64,
    ) -> Result<()> {
        // Each name ends with a NUL; the root's is the empty one.
        let mut list = Vec::new();
        for p in implicit {
            list.extend_from_slice(p);
            list.push(0);
        }
        std::fs::write(staged.join("implicit"), list).map_err(|e| io_err(staged, e))?;
        std::fs::write(staged.join("size"), size.to_string()).map_err(|e| io_err(staged, e))?;
        sync_fs(staged)?;
        let dest = self.layer_dir(diff_id);
        match std::fs::rename(staged, &dest) {
            Ok(()) => sync_dir(&self.dir.join("layers")),
            Err(_) if self.has_layer(diff_id) => {
                super::compose::remove(staged).map_err(|e| io_err(staged, e))
            }
            Err(e) => Err(io_err(&dest, e)),
        }
    }

    pub fn named(&self) -> Result<Vec<Named>> {
        let dir = self.dir.join("images");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let e = e.map_err(|e| io_err(&dir, e))?;
            let name = String::from_utf8_lossy(e.file_name().as_bytes()).into_owned();
            if name.ends_with(".tmp") || check_name(&name).is_err() {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).map_err(|x| io_err(&e.path(), x))?;
            let mut named = Named {
                name,
                digest: String::new(),
                layers: Vec::new(),
            };
            for line in text.lines() {
                match line.split_once(' ') {
                    Some(("digest", d)) => named.digest = d.into(),
                    Some(("layer", d)) => named.layers.push(
                        Digest::parse(d)
                            .map_err(|m| invalid(format!("{}: {m}", e.path().display())))?,
                    ),
                    _ => {}
                }
            }
            out.push(named);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Records (or replaces) a name, atomically and durably.
    pub fn name(&self, name: &str, digest: &Digest, layers: &[Digest]) -> Result<()> {
        let mut text = format!("digest {digest}\n");
        for l in layers {
            text.push_str(&format!("layer {l}\n"));
        }
        let path = self.dir.join("images").join(name);
        crate::store::statedir::write_atomic(&path, text.as_bytes())
            .map_err(|e| io_err(&path, e))?;
        sync_dir(&self.dir.join("images"))
    }

    pub fn unname(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let path = self.dir.join("images").join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir.join("images")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::new(
                Code::NotFound,
                format!("no image named {name} in {}", self.dir.display()),
            )),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    /// Removes every layer no name refers to (and what dead imports left);
    /// the lock must be held exclusively. Returns layers and bytes freed
    /// from the store (a bundle still linking a file keeps it).
    pub fn gc(&self) -> Result<(usize, u64)> {
        self.clean_tmp()?;
        let wanted: Vec<Digest> = self.named()?.into_iter().flat_map(|n| n.layers).collect();
        let dir = self.dir.join("layers");
        let (mut n, mut bytes) = (0, 0);
        for e in std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let e = e.map_err(|e| io_err(&dir, e))?;
            let name = String::from_utf8_lossy(e.file_name().as_bytes()).into_owned();
            if Digest::from_hex(&name).is_some_and(|d| wanted.contains(&d)) {
                continue;
            }
            bytes += Digest::from_hex(&name).map_or(0, |d| self.layer_size(&d));
            // Out of `layers/` in one step, then removed at leisure.
            let doomed = self.dir.join("tmp").join(format!("gc.{name}"));
            std::fs::rename(e.path(), &doomed).map_err(|x| io_err(&e.path(), x))?;
            n += 1;
        }
        if n > 0 {
            sync_dir(&dir)?;
            self.clean_tmp()?;
        }
        Ok((n, bytes))
    }
}
