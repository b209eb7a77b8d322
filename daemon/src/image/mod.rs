//! `nanoctr import`: an OCI image (a layout directory, an `oci-archive`
//! tar, or a `docker save` tar) made into a runnable bundle, and the image
//! store that keeps each layer once (`images`, `image-rm`, `image-gc`).
//!
//! This runs in the client's process, never in the daemon's: an archive
//! is untrusted input, and parsing it is the client's risk, not the
//! supervisor's. Nothing is held whole: a layer streams from the source
//! through its decompressor, the digests and the tar reader into the
//! store, in buffers of fixed size.
//!
//! Durability: a layer is written under `STORE/tmp/`, checked against its
//! digests, synced (`syncfs`) and renamed into `STORE/layers/`; the bundle
//! is composed under `STORE/tmp/` too (or beside itself, on another
//! filesystem), synced, renamed into place, and both parents synced. A
//! power cut or a SIGKILL leaves no bundle or the whole one; what a dead
//! import left in `tmp/` is removed by the next import, gc, or daemon
//! start.

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub mod apply;
pub mod cli;
pub mod compose;
pub mod digest;
pub mod gzip;
pub mod source;
pub mod spec;
pub mod store;
pub mod tar;

use crate::wire::proto::Code;
use digest::{Digest, Hashing};
use source::{Compression, Platform, Source};
use store::Store;

pub type Error = crate::wire::proto::Error;
pub type Result<T> = std::result::Result<T, Error>;

pub fn invalid(m: impl Into<String>) -> Error {
    Error::new(Code::Invalid, m)
}
pub fn not_found(m: impl Into<String>) -> Error {
    Error::new(Code::NotFound, m)
}
pub fn full(m: impl Into<String>) -> Error {
    Error::new(Code::Full, m)
}

/// What `import` is asked.
#[derive(Debug, Default)]
pub struct Options {
    pub source: String,
    pub bundle: PathBuf,
    pub platform: Option<Platform>,
    pub name: Option<String>,
    pub store: PathBuf,
    pub overrides: spec::Overrides,
}

/// What an import did.
#[derive(Debug)]
pub struct Summary {
    pub digest: Digest,
    pub layers: usize,
    /// Layers extracted now (the rest were in the store).
    pub extracted: usize,
    /// Bytes of files the new layers hold.
    pub bytes: u64,
    pub copied: u64,
}

/// Room kept free on the store's filesystem beyond what layers need.
const RESERVE: u64 = 1024 * 1024;
/// What a compressed layer of unknown size is guessed to grow to.
const GUESS_RATIO: u64 = 4;

pub fn import(o: &Options) -> Result<Summary> {
    let bundle = std::path::absolute(&o.bundle)
        .map_err(|e| invalid(format!("{}: {e}", o.bundle.display())))?;
    if std::fs::symlink_metadata(&bundle).is_ok() {
        return Err(Error::new(
            Code::Exists,
            format!("{} exists: import makes a new bundle", bundle.display()),
        ));
    }
    let parent = bundle
        .parent()
        .filter(|p| p.is_dir())
        .ok_or_else(|| {
            not_found(format!(
                "{}: its directory does not exist",
                bundle.display()
            ))
        })?
        .to_path_buf();
    let base = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| invalid(format!("{}: not a directory name", bundle.display())))?;
    if let Some(n) = &o.name {
        store::check_name(n)?;
    }
    let platform = o.platform.clone().unwrap_or_else(Platform::own);
    let (source, tag) = Source::open(&o.source)?;
    let image = source.image(tag.as_deref(), &platform)?;

    let store = Store::open(&o.store)?;
    store.begin()?;
    clean_beside(&parent);

    // The room the new layers need, before anything is written.
    let mut needed = RESERVE;
    let mut total = 0u64;
    for l in image.layers.iter().filter(|l| !store.has_layer(&l.diff_id)) {
        let mut part = source.blob(&l.blob)?;
        total += part.size;
        needed += estimate(&mut part, l.compression);
    }
    let free = free_bytes(&store.dir)?;
    if needed > free {
        return Err(full(format!(
            "needed={needed} free={free} (in {})",
            store.dir.display()
        )));
    }
    let mut budget = free - RESERVE;
    let mut progress = Progress::new(image.layers.len(), total);
    let mut summary = Summary {
        digest: image.digest,
        layers: image.layers.len(),
        extracted: 0,
        bytes: 0,
        copied: 0,
    };
    for (i, l) in image.layers.iter().enumerate() {
        progress.layer = i + 1;
        if store.has_layer(&l.diff_id) {
            continue;
        }
        let staged = store.stage("layer")?;
        let applied = extract(&source, l, i + 1, &staged, &mut budget, &mut progress);
        let applied = match applied {
            Ok(a) => a,
            Err(e) => {
                let _ = compose::remove(&staged);
                return Err(e);
            }
        };
        store.commit_layer(&staged, &l.diff_id, &applied.implicit, applied.bytes)?;
        summary.extracted += 1;
        summary.bytes += applied.bytes;
    }
    progress.finish();

    // The bundle, composed where one rename puts it in place.
    let same_fs = dev_of(&store.dir.join("tmp")) == dev_of(&parent);
    let staging = match same_fs {
        true => store.stage("bundle")?,
        false => {
            let d = parent.join(format!("{BESIDE}{base}.{}", std::process::id()));
            let _ = compose::remove(&d);
            std::fs::create_dir(&d).map_err(|e| invalid(format!("{}: {e}", d.display())))?;
            d
        }
    };
    let made = (|| {
        let rootfs = staging.join("rootfs");
        std::fs::create_dir(&rootfs).map_err(|e| invalid(format!("{}: {e}", rootfs.display())))?;
        let implicit: Vec<_> = image
            .layers
            .iter()
            .map(|l| store.implicit(&l.diff_id))
            .collect::<Result<_>>()?;
        let trees: Vec<compose::Tree> = image
            .layers
            .iter()
            .zip(&implicit)
            .enumerate()
            .map(|(i, (l, imp))| compose::Tree {
                dir: store.layer_dir(&l.diff_id).join("tree"),
                implicit: imp,
                name: format!("{} ({})", i + 1, l.diff_id),
            })
            .collect();
        let composed = compose::compose(&trees, &rootfs)?;
        summary.copied = composed.copied;
        let config = spec::config_json(&image.config, &rootfs, &base, &o.overrides)?;
        let path = staging.join("config.json");
        std::fs::write(&path, config).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        store::sync_fs(&staging)?;
        std::fs::rename(&staging, &bundle).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => Error::new(
                Code::Exists,
                format!("{} was made by someone else meanwhile", bundle.display()),
            ),
            _ => invalid(format!("{}: {e}", bundle.display())),
        })?;
        store::sync_dir(&parent)?;
        store::sync_dir(staging.parent().unwrap_or(&parent))
    })();
    if let Err(e) = made {
        let _ = compose::remove(&staging);
        return Err(e);
    }
    let ids: Vec<Digest> = image.layers.iter().map(|l| l.diff_id).collect();
    match &o.name {
        Some(n) => store.name(n, &image.digest, &ids)?,
        // Unnamed, the layers leave the store: the bundle's links keep
        // the files. While another import runs, the next gc does it.
        None => {
            if store.try_exclusive() {
                store.gc()?;
            }
        }
    }
    Ok(summary)
}

/// Staging dirs beside bundles (a bundle on another filesystem than the
/// store) are named so.
const BESIDE: &str = ".nanoctr-import.";

/// Removes what dead imports left beside bundles in `parent`: a staging
/// dir whose pid no longer runs.
fn clean_beside(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(BESIDE) else {
            continue;
        };
        let pid: Option<i32> = rest.rsplit('.').next().and_then(|p| p.parse().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = compose::remove(&e.path());
        }
    }
}

fn dev_of(p: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| m.dev())
}

fn free_bytes(dir: &Path) -> Result<u64> {
    let f = std::fs::File::open(dir).map_err(|e| invalid(format!("{}: {e}", dir.display())))?;
    let st = rustix::fs::fstatvfs(crate::sys::fd(&f))
        .map_err(|e| invalid(format!("{}: {e}", dir.display())))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// How many bytes a layer will take once extracted: a gzip stream says
/// (its trailer's size, modulo 4 GiB), a zstd frame may; else a guess.
fn estimate(part: &mut source::Part, c: Compression) -> u64 {
    let guess = part.size.saturating_mul(GUESS_RATIO);
    match c {
        Compression::None => part.size,
        Compression::Gzip => part
            .tail(4)
            .ok()
            .filter(|t| t.len() == 4)
            .map_or(guess, |t| {
                u64::from(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
            }),
        Compression::Zstd | Compression::Sniff => guess,
    }
}

/// A reader that counts into a cell, for progress.
struct Counted<'a, R> {
    inner: R,
    n: &'a Cell<u64>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n.set(self.n.get() + n as u64);
        Ok(n)
    }
}

/// zstd, frame after frame until the blob ends.
#[cfg(feature = "zstd")]
struct Zstd<R: Read> {
    decoder: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
}

#[cfg(feature = "zstd")]
impl<R: BufRead> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(0);
            };
            let n = decoder.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if decoder.get_mut().fill_buf()?.is_empty() {
                return Ok(0);
            }
            // Another frame follows.
            let (src, dec) = self
                .decoder
                .take()
                .map(|d| d.into_parts())
                .unwrap_or_else(|| unreachable!());
            self.decoder = Some(
                ruzstd::decoding::StreamingDecoder::new_with_decoder(src, dec)
                    .map_err(io::Error::other)?,
            );
        }
    }
}

fn extract(
    source: &Source,
    l: &source::Layer,
    index: usize,
    staged: &Path,
    budget: &mut u64,
    progress: &mut Progress,
) -> Result<apply::Applied> {
    let tree = staged.join("tree");
    std::fs::create_dir(&tree).map_err(|e| invalid(format!("{}: {e}", tree.display())))?;
    let part = source.blob(&l.blob)?;
    let what = match &l.blob {
        source::BlobRef::Digest(d) => d.to_string(),
        source::BlobRef::Member(m) => m.clone(),
    };
    if let Some(size) = l.size {
        if part.size != size {
            return Err(invalid(format!(
                "layer {index} ({what}): {} bytes where its descriptor says {size}",
                part.size
            )));
        }
    }
    let read = Cell::new(0u64);
    let mut outer = Hashing::new(Counted {
        inner: part,
        n: &read,
    });
    let mut buffered = BufReader::with_capacity(64 * 1024, &mut outer);
    let compression = match l.compression {
        Compression::Sniff => {
            let head = buffered
                .fill_buf()
                .map_err(|e| invalid(format!("layer {index}: {e}")))?;
            match head {
                [0x1f, 0x8b, ..] => Compression::Gzip,
                [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
                _ => Compression::None,
            }
        }
        c => c,
    };
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::Gzip => Box::new(gzip::Gzip::new(buffered)),
        #[cfg(feature = "zstd")]
        Compression::Zstd => Box::new(Zstd {
            decoder: Some(
                ruzstd::decoding::StreamingDecoder::new(buffered)
                    .map_err(|e| invalid(format!("layer {index} ({what}): not zstd: {e}")))?,
            ),
        }),
        #[cfg(not(feature = "zstd"))]
        Compression::Zstd => {
            return Err(invalid(format!(
                "layer {index} ({what}) is zstd, and this nanoctr is built without zstd"
            )))
        }
        _ => Box::new(buffered),
    };
    let mut inner = Hashing::new(decoded);
    let mut tar = tar::Reader::new(&mut inner);
    let layer_err = |e: Error| Error::new(e.code, format!("layer {index} ({what}): {}", e.message));
    let applied = apply::apply(&mut tar, &tree, budget, &mut || {
        progress.show(read.get());
    })
    .map_err(layer_err)?;
    tar.drain()
        .map_err(|e| invalid(format!("layer {index} ({what}): {e}")))?;
    let (diff, _) = inner.finish();
    if diff != l.diff_id {
        return Err(invalid(format!(
            "layer {index} ({what}): its content's digest is {diff}, the config says {}",
            l.diff_id
        )));
    }
    let (got, _) = outer.finish();
    if let source::BlobRef::Digest(d) = &l.blob {
        if got != *d {
            return Err(invalid(format!(
                "layer {index}: blob {d}: its content's digest is {got}"
            )));
        }
    }
    progress.done += read.get();
    Ok(applied)
}

/// Layers i/n, bytes and rate on stderr, when it is a terminal.
struct Progress {
    tty: bool,
    layer: usize,
    layers: usize,
    done: u64,
    total: u64,
    start: Instant,
    last: Option<Instant>,
}

impl Progress {
    fn new(layers: usize, total: u64) -> Self {
        Progress {
            tty: rustix::termios::isatty(crate::sys::fd(&std::io::stderr())),
            layer: 0,
            layers,
            done: 0,
            total,
            start: Instant::now(),
            last: None,
        }
    }

    fn show(&mut self, in_layer: u64) {
        if !self.tty || self.last.is_some_and(|t| t.elapsed().as_millis() < 200) {
            return;
        }
        self.last = Some(Instant::now());
        let done = self.done + in_layer;
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let mb = |b: u64| b as f64 / 1e6;
        eprint!(
            "\r\x1b[Klayer {}/{}  {:.1}/{:.1} MB  {:.1} MB/s",
            self.layer,
            self.layers,
            mb(done),
            mb(self.total),
            mb(done) / secs
        );
    }

    fn finish(&mut self) {
        if self.tty && self.last.is_some() {
            self.last = None;
            self.show(0);
            eprintln!();
        }
    }
}
