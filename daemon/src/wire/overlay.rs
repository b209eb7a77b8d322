//! The writable layer over an image rootfs (`overlay=`, `overlay-size=`):
//! what a container whose bundle's `root.path` is a squashfs or erofs
//! file writes to `/` (see `crate::rootfs`).
//!
//! - `overlay=tmpfs` (the default): a tmpfs of `overlay-size=` bytes
//!   (default 16 MiB), gone when the container is deleted.
//! - `overlay=DIR`: `DIR/upper` and `DIR/work` on a persistent
//!   filesystem (made if missing), kept across deletes; never in the
//!   state dir.
//! - `overlay=none`: no writable layer; `/` is the image itself, read-only.

use super::checks::check_path;
use super::proto::{refuse, Code, Error};

/// The tmpfs layer's size when `overlay-size=` does not say.
pub const DEFAULT_SIZE: u64 = 16 << 20;

/// The smallest tmpfs layer: one page. (A tmpfs of size 0 would have no
/// limit at all.)
pub const MIN_SIZE: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// A tmpfs of this many bytes.
    Tmpfs(u64),
    /// `DIR/upper` and `DIR/work`.
    Dir(String),
    /// Read-only, no writable layer.
    Off,
}

impl Overlay {
    /// The layer when none is asked for.
    pub const DEFAULT: Overlay = Overlay::Tmpfs(DEFAULT_SIZE);

    /// `overlay=WORD` and `overlay-size=BYTES`, as given (each `None` when
    /// absent), as one layer.
    pub fn parse(word: Option<&str>, size: Option<&str>) -> Result<Overlay, Error> {
        let size = match size {
            None => None,
            Some(v) => Some(
                super::resources::parse_bytes(v)
                    .map(|n| n as u64)
                    .filter(|&n| n >= MIN_SIZE)
                    .ok_or_else(|| {
                        Error::new(Code::Invalid, "overlay-size must be 4k or more (16m, 1g)")
                    })?,
            ),
        };
        let overlay = match word {
            None | Some("tmpfs") => Overlay::Tmpfs(size.unwrap_or(DEFAULT_SIZE)),
            Some("none") => Overlay::Off,
            Some(dir) if dir.starts_with('/') => {
                // Overlayfs options are split at ',' and its lower layers
                // at ':'; such a path cannot be said to it.
                if dir.contains(',') || dir.contains(':') {
                    return refuse(Code::Invalid, "overlay=DIR must not contain ',' or ':'");
                }
                Overlay::Dir(check_path("overlay", dir)?)
            }
            Some(w) => {
                return refuse(
                    Code::Invalid,
                    format!("overlay is tmpfs, none or an absolute directory, not {w}"),
                )
            }
        };
        if size.is_some() && !matches!(overlay, Overlay::Tmpfs(_)) {
            return refuse(Code::Invalid, "overlay-size is for overlay=tmpfs");
        }
        Ok(overlay)
    }

    /// The option word [`Overlay::parse`] reads back (a size says tmpfs).
    pub fn word(&self) -> String {
        match self {
            Overlay::Tmpfs(n) => format!("overlay-size={n}"),
            Overlay::Dir(d) => format!("overlay={}", super::proto::quote(d)),
            Overlay::Off => "overlay=none".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_sizes() {
        assert_eq!(Overlay::parse(None, None).unwrap(), Overlay::DEFAULT);
        assert_eq!(
            Overlay::parse(None, Some("32m")).unwrap(),
            Overlay::Tmpfs(32 << 20)
        );
        assert_eq!(
            Overlay::parse(Some("/data/web"), None).unwrap(),
            Overlay::Dir("/data/web".into())
        );
        assert_eq!(Overlay::parse(Some("none"), None).unwrap(), Overlay::Off);
        for (word, size, why) in [
            (Some("data"), None, "absolute"),
            (Some("/a,b"), None, "','"),
            (Some("/a:b"), None, "','"),
            (Some("none"), Some("1m"), "overlay-size is for"),
            (Some("/d"), Some("1m"), "overlay-size is for"),
            (None, Some("0"), "4k or more"),
            (None, Some("lots"), "4k or more"),
        ] {
            let e = Overlay::parse(word, size).unwrap_err();
            assert!(e.message.contains(why), "{word:?} {size:?}: {}", e.message);
        }
        for o in [
            Overlay::Tmpfs(8192),
            Overlay::Dir("/d d".into()),
            Overlay::Off,
        ] {
            let word = o.word();
            let value = |key: &str| word.strip_prefix(key).map(|v| v.trim_matches('"'));
            let (w, s) = (value("overlay="), value("overlay-size="));
            assert_eq!(Overlay::parse(w, s).unwrap(), o);
        }
    }
}
