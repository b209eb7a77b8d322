//! Read-only rootfs images, as Pantavisor and OpenWrt's uxc ship them: a
//! bundle whose `root.path` names a squashfs or erofs file, not a
//! directory.
//!
//! At `create` the daemon mounts, in the container's state dir:
//!
//! ```text
//! <state>/<id>/lower         the image, read-only, from a loop device
//! <state>/<id>/upper-tmpfs   a tmpfs (size=overlay-size) with upper/ and work/
//! <state>/<id>/rootfs        overlay: lowerdir=lower, upperdir, workdir
//! ```
//!
//! and the derived bundle's `root.path` is `<state>/<id>/rootfs`; the
//! bundle itself is never written to. With `overlay=DIR` the writable
//! layer is `DIR/upper` and `DIR/work` (no tmpfs); with `overlay=none`
//! the image is mounted at `rootfs` itself and there is no overlay.
//!
//! The loop device is set up read-only and auto-clearing, so it frees
//! itself when its mount goes: nothing of it outlives the mounts, also
//! when a create fails halfway or the daemon is killed before mounting.
//! Everything mounted under a container's dir goes when the dir does
//! (`delete`, a failed create, recovery of a half-made container); a
//! container recovery keeps gets its mounts back if they are missing.
//! The mount calls themselves are in [`mount`].

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::bundle::json;
use crate::wire::overlay::Overlay;
use crate::wire::proto::{Code, Error};

pub mod mount;

/// A filesystem an image rootfs may be in, known by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fs {
    /// `hsqs` at offset 0.
    Squashfs,
    /// 0xE0F5E1E2, little-endian, at offset 1024.
    Erofs,
}

impl Fs {
    /// Its name, as mount(2) and the container record know it.
    pub fn name(self) -> &'static str {
        match self {
            Fs::Squashfs => "squashfs",
            Fs::Erofs => "erofs",
        }
    }

    pub fn from_name(name: &str) -> Option<Fs> {
        [Fs::Squashfs, Fs::Erofs]
            .into_iter()
            .find(|f| f.name() == name)
    }

    /// The filesystem of an image whose first bytes are `head`.
    fn of(head: &[u8]) -> Option<Fs> {
        if head.starts_with(b"hsqs") {
            return Some(Fs::Squashfs);
        }
        let erofs = head.get(1024..1028)? == 0xE0F5_E1E2u32.to_le_bytes();
        erofs.then_some(Fs::Erofs)
    }
}

/// A container's image rootfs: the file and its filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Absolute.
    pub path: String,
    pub fs: Fs,
}

impl Image {
    /// `FS:PATH`, the word the container record keeps.
    pub fn word(&self) -> String {
        format!("{}:{}", self.fs.name(), self.path)
    }

    pub fn from_word(word: &str) -> Option<Image> {
        let (fs, path) = word.split_once(':')?;
        let path = crate::wire::check_path("image", path).ok()?;
        Some(Image {
            path,
            fs: Fs::from_name(fs)?,
        })
    }
}

/// The image a bundle's `config.json` names as its `root.path`, if it
/// names a file: `None` for a directory (or a path that is not there,
/// which the runtime reports). A file is read only after it is known to
/// be a regular one, without blocking, and only its first bytes; one that
/// is neither squashfs nor erofs is refused (`invalid`), as is a device,
/// a fifo or a socket.
pub fn detect(bundle: &str, config: &[u8]) -> Result<Option<Image>, Error> {
    let Some(path) = json::find(config, &["root", "path"]).and_then(|r| json::string(config, r))
    else {
        return Ok(None);
    };
    let path = Path::new(bundle).join(path);
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(None);
    };
    if meta.is_dir() {
        return Ok(None);
    }
    let invalid =
        |why: &str| Error::new(Code::Invalid, format!("root.path {} {why}", path.display()));
    if !meta.is_file() {
        return Err(invalid("is neither a directory nor a regular file"));
    }
    let mut head = [0u8; 1028];
    let n = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&path)
        .and_then(|f| f.read_at(&mut head, 0))
        .map_err(|e| invalid(&format!("cannot be read: {e}")))?;
    let fs = Fs::of(&head[..n])
        .ok_or_else(|| invalid("is a file but no squashfs or erofs image (by its magic)"))?;
    let path = crate::wire::check_path("root.path", &path.to_string_lossy())?;
    Ok(Some(Image { path, fs }))
}

/// Whether `overlay` may be asked for: only over an image, and its
/// directory never in the state dir (`state`), which is nanoctr's own.
pub fn check_overlay(
    image: Option<&Image>,
    overlay: Option<&Overlay>,
    state: &Path,
) -> Result<(), Error> {
    let refuse = |code, why: String| Err(Error::new(code, why));
    match (image, overlay) {
        (None, Some(_)) => refuse(
            Code::Invalid,
            "overlay= is for a bundle whose root.path is an image file (squashfs or erofs)".into(),
        ),
        (Some(_), Some(Overlay::Dir(d))) if crate::files::within(Path::new(d), state) => refuse(
            Code::Denied,
            format!("overlay={d} is in the state dir, which is nanoctr's own"),
        ),
        _ => Ok(()),
    }
}

/// A failed [`mount::mount`] as a refusal: a bad image (or a kernel
/// without its filesystem) is `invalid`.
pub fn refusal(image: &Image, e: &std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    let code = match e.kind() {
        K::PermissionDenied => Code::Denied,
        K::ResourceBusy | K::OutOfMemory => Code::Busy,
        K::StorageFull => Code::Full,
        K::NotFound => Code::Internal,
        _ => Code::Invalid,
    };
    let fs = image.fs.name();
    Error::new(code, format!("cannot mount {fs} image {}: {e}", image.path))
}

/// Where a container's rootfs is mounted, in its dir: the derived
/// bundle's `root.path`.
pub fn rootfs_of(dir: &Path) -> PathBuf {
    dir.join(nanoctr_shim::contract::container_dir::ROOTFS.str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_decides() {
        let dir =
            std::env::temp_dir().join(format!("nanoctr-rootfs-detect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tree")).unwrap();
        let mut erofs = vec![0u8; 2048];
        erofs[1024..1028].copy_from_slice(&[0xE2, 0xE1, 0xF5, 0xE0]);
        std::fs::write(dir.join("sq.img"), b"hsqs and the rest").unwrap();
        std::fs::write(dir.join("ero.img"), &erofs).unwrap();
        std::fs::write(dir.join("bad.img"), vec![7u8; 4096]).unwrap();
        let b = dir.to_str().unwrap();
        let config = |p: &str| format!(r#"{{"root": {{"path": "{p}"}}}}"#).into_bytes();
        let image = |p: &str| detect(b, &config(p));
        assert_eq!(image("tree").unwrap(), None);
        assert_eq!(image("missing").unwrap(), None);
        assert_eq!(detect(b, b"{}").unwrap(), None);
        let sq = image("sq.img").unwrap().unwrap();
        assert_eq!(
            (sq.fs, sq.path.clone()),
            (Fs::Squashfs, format!("{b}/sq.img"))
        );
        assert_eq!(Image::from_word(&sq.word()), Some(sq));
        let abs = format!("{b}/ero.img");
        assert_eq!(image(&abs).unwrap().unwrap().fs, Fs::Erofs);
        let e = image("bad.img").unwrap_err();
        assert_eq!(e.code, Code::Invalid);
        assert!(e.message.contains("no squashfs or erofs"), "{}", e.message);
        assert!(image("/dev/null").unwrap_err().message.contains("neither"));
        assert_eq!(Image::from_word("ext4:/x"), None);
        assert_eq!(Image::from_word("erofs:x"), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
