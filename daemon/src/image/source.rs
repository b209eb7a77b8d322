//! Where an image comes from: an OCI image layout (a directory, or a tar
//! of one: `oci-archive`), or a `docker save` tar with its legacy
//! `manifest.json`. Resolves the one image asked for (by tag and
//! platform, through nested indexes) to its config and layers, checking
//! the digest and size of every document before reading it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::digest::Digest;
use super::tar;
use super::{invalid, not_found, Result};
use crate::bundle::json;

/// The largest index, manifest or config read (they are a few KiB).
pub const MAX_DOC: u64 = 4 * 1024 * 1024;
/// How deep image indexes may nest.
const MAX_NESTING: usize = 4;

/// An opened source.
pub struct Source {
    path: PathBuf,
    /// A tar's regular members: name, data offset, size.
    members: Option<Vec<(String, u64, u64)>>,
}

/// A part of the source being read: a file, or a member of the tar.
pub struct Part {
    file: File,
    left: u64,
    pub size: u64,
}

impl Read for Part {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let step = (buf.len() as u64).min(self.left) as usize;
        if step == 0 {
            return Ok(0);
        }
        let n = self.file.read(&mut buf[..step])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl Part {
    /// The last `n` bytes (for a gzip trailer's size), read without
    /// moving past what is still to be read.
    pub fn tail(&mut self, n: u64) -> io::Result<Vec<u8>> {
        let here = self.file.stream_position()?;
        let n = n.min(self.left);
        self.file.seek(SeekFrom::Current((self.left - n) as i64))?;
        let mut v = vec![0u8; n as usize];
        self.file.read_exact(&mut v)?;
        self.file.seek(SeekFrom::Start(here))?;
        Ok(v)
    }
}

/// Where a layer's bytes are.
#[derive(Debug, Clone)]
pub enum BlobRef {
    Digest(Digest),
    Member(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    /// A `docker save` layer: told by its first bytes.
    Sniff,
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: BlobRef,
    pub compression: Compression,
    /// The descriptor's size, when there is one.
    pub size: Option<u64>,
    /// The uncompressed tar's digest, from the config's `rootfs.diff_ids`.
    pub diff_id: Digest,
}

/// The image asked for.
pub struct Image {
    /// The manifest's digest; a `docker save` tar has none, and the
    /// config's digest names the image.
    pub digest: Digest,
    pub config: Vec<u8>,
    pub layers: Vec<Layer>,
}

/// An OS/ARCH[/VARIANT] an image is built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this program runs on, in the image spec's words.
    pub fn own() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "mips" if cfg!(target_endian = "little") => "mipsle",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            a => a,
        };
        let variant = match arch {
            "arm" if cfg!(target_feature = "v7") => Some("v7"),
            "arm" if cfg!(target_feature = "v6") => Some("v6"),
            "arm" => Some("v5"),
            _ => None,
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    pub fn parse(s: &str) -> std::result::Result<Platform, String> {
        let mut parts = s.split('/');
        let (os, arch) = match (parts.next(), parts.next()) {
            (Some(o), Some(a)) if !o.is_empty() && !a.is_empty() => (o, a),
            _ => return Err(format!("--platform {s}: not OS/ARCH[/VARIANT]")),
        };
        let variant = parts.next().filter(|v| !v.is_empty()).map(Into::into);
        if parts.next().is_some() {
            return Err(format!("--platform {s}: not OS/ARCH[/VARIANT]"));
        }
        Ok(Platform {
            os: os.into(),
            arch: arch.into(),
            variant,
        })
    }

    /// Whether an image for `other` runs here: same OS and architecture,
    /// and the same variant when both name one.
    fn accepts(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.arch == other.arch
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

impl Source {
    /// Opens `spec`: a path, or `PATH:TAG` when no file has the whole
    /// name. Returns the source and the tag.
    pub fn open(spec: &str) -> Result<(Source, Option<String>)> {
        let (path, tag) = match std::fs::metadata(spec) {
            Ok(_) => (spec, None),
            Err(_) => match spec.rsplit_once(':') {
                Some((p, t)) if !t.is_empty() && !t.contains('/') && Path::new(p).exists() => {
                    (p, Some(t.to_string()))
                }
                _ => {
                    return Err(not_found(format!(
                        "{spec}: no such image directory or file"
                    )))
                }
            },
        };
        let meta = std::fs::metadata(path).map_err(|e| not_found(format!("{path}: {e}")))?;
        let mut source = Source {
            path: path.into(),
            members: None,
        };
        if meta.is_file() {
            source.members = Some(scan(Path::new(path))?);
        } else if !meta.is_dir() {
            return Err(invalid(format!(
                "{path} is neither an image directory nor a tar"
            )));
        }
        Ok((source, tag))
    }

    /// A file of the source by name (a member of the tar), if it has it.
    pub fn part(&self, name: &str) -> Result<Option<Part>> {
        let name = name.trim_start_matches("./");
        if name.is_empty()
            || name.starts_with('/')
            || name.split('/').any(|c| c == ".." || c.is_empty())
        {
            return Err(invalid(format!("the image names the file {name:?}")));
        }
        let shown = |e: io::Error| invalid(format!("{}: {name}: {e}", self.path.display()));
        match &self.members {
            Some(members) => {
                let Some(&(_, offset, size)) = members.iter().rev().find(|m| m.0 == name) else {
                    return Ok(None);
                };
                let mut file = File::open(&self.path).map_err(shown)?;
                file.seek(SeekFrom::Start(offset)).map_err(shown)?;
                Ok(Some(Part {
                    file,
                    left: size,
                    size,
                }))
            }
            None => {
                let path = self.path.join(name);
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(shown(e)),
                };
                let meta = file.metadata().map_err(shown)?;
                if !meta.is_file() {
                    return Err(invalid(format!("{}: not a regular file", path.display())));
                }
                Ok(Some(Part {
                    file,
                    left: meta.len(),
                    size: meta.len(),
                }))
            }
        }
    }

    fn need(&self, name: &str) -> Result<Part> {
        self.part(name)?.ok_or_else(|| {
            invalid(format!(
                "{} has no {name} (a blob the image needs is missing)",
                self.path.display()
            ))
        })
    }

    /// A small document, whole.
    fn doc(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let Some(mut part) = self.part(name)? else {
            return Ok(None);
        };
        if part.size > MAX_DOC {
            return Err(invalid(format!(
                "{name} is {} bytes, over {MAX_DOC}",
                part.size
            )));
        }
        let mut v = Vec::with_capacity(part.size as usize);
        part.read_to_end(&mut v)
            .map_err(|e| invalid(format!("{name}: {e}")))?;
        Ok(Some(v))
    }

    /// A blob's part by digest.
    pub fn blob(&self, blob: &BlobRef) -> Result<Part> {
        match blob {
            BlobRef::Digest(d) => self.need(&format!("blobs/sha256/{}", d.hex())),
            BlobRef::Member(m) => self.need(m),
        }
    }

    /// A document blob, checked against its descriptor's digest and size
    /// before it is parsed.
    fn verified(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let name = format!("blobs/sha256/{}", desc.digest.hex());
        if desc.size > MAX_DOC {
            return Err(invalid(format!(
                "{} claims {} bytes, over {MAX_DOC}",
                desc.digest, desc.size
            )));
        }
        let doc = self.doc(&name)?.ok_or_else(|| {
            invalid(format!(
                "{} has no blob {}",
                self.path.display(),
                desc.digest
            ))
        })?;
        check_blob(&doc, &desc.digest, desc.size)?;
        Ok(doc)
    }

    /// The refusal of a source that holds `n` images when none was named.
    fn several(&self, n: usize, tags: &[String]) -> super::Error {
        let path = self.path.display();
        invalid(format!(
            "{path} holds {n} images: name one as {path}:TAG (tags: {})",
            list(tags)
        ))
    }

    /// Resolves the image for `tag` (if given) and `platform`.
    pub fn image(&self, tag: Option<&str>, platform: &Platform) -> Result<Image> {
        if let Some(index) = self.doc("index.json")? {
            return self.oci(&index, tag, platform);
        }
        if let Some(manifest) = self.doc("manifest.json")? {
            return self.docker(&manifest, tag, platform);
        }
        Err(invalid(format!(
            "{} is not an image: it has neither index.json (an OCI layout) nor manifest.json (docker save)",
            self.path.display()
        )))
    }

    fn oci(&self, index: &[u8], tag: Option<&str>, platform: &Platform) -> Result<Image> {
        let mut doc = index.to_vec();
        let mut tag = tag;
        let mut nesting = 0;
        let manifest = loop {
            let mut descs = descriptors(&doc, "manifests", "index.json")?;
            if let Some(t) = tag.take() {
                let names: Vec<String> = descs.iter().filter_map(|d| d.ref_name.clone()).collect();
                descs.retain(|d| {
                    d.ref_name
                        .as_deref()
                        .is_some_and(|n| n == t || n.rsplit_once(':').is_some_and(|(_, x)| x == t))
                });
                if descs.is_empty() {
                    return Err(not_found(format!(
                        "no image tagged {t} in {} (tags: {})",
                        self.path.display(),
                        list(&names)
                    )));
                }
            }
            let with_platform = descs.iter().any(|d| d.platform.is_some());
            if with_platform {
                let all: Vec<String> = descs
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                    .collect();
                descs.retain(|d| d.platform.as_ref().is_none_or(|p| platform.accepts(p)));
                if descs.is_empty() {
                    return Err(not_found(format!(
                        "no image for {platform} in {} (it has: {})",
                        self.path.display(),
                        list(&all)
                    )));
                }
            }
            let desc = match descs.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(invalid(format!(
                        "{}: the index lists no image",
                        self.path.display()
                    )))
                }
                [first, ..] if with_platform => first.clone(),
                many => {
                    let names: Vec<String> =
                        many.iter().filter_map(|d| d.ref_name.clone()).collect();
                    return Err(self.several(many.len(), &names));
                }
            };
            match desc.media.as_str() {
                INDEX_OCI | INDEX_DOCKER => {
                    nesting += 1;
                    if nesting > MAX_NESTING {
                        return Err(invalid(format!(
                            "image indexes nested deeper than {MAX_NESTING}"
                        )));
                    }
                    doc = self.verified(&desc)?;
                }
                MANIFEST_OCI | MANIFEST_DOCKER => break desc,
                m => {
                    return Err(invalid(format!(
                        "{}: unknown media type {m:?} (not an image manifest or index)",
                        desc.digest
                    )))
                }
            }
        };
        let body = self.verified(&manifest)?;
        let config_desc = descriptor_at(&body, &["config"], "manifest")?;
        if !matches!(config_desc.media.as_str(), CONFIG_OCI | CONFIG_DOCKER) {
            return Err(invalid(format!(
                "{}: the config's media type {:?} is not an image config",
                manifest.digest, config_desc.media
            )));
        }
        let config = self.verified(&config_desc)?;
        let diff_ids = diff_ids(&config)?;
        let descs = descriptors(&body, "layers", "the manifest")?;
        if descs.len() != diff_ids.len() {
            return Err(invalid(format!(
                "the manifest lists {} layers, the config {}",
                descs.len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::with_capacity(descs.len());
        for (i, (d, diff_id)) in descs.into_iter().zip(diff_ids).enumerate() {
            let compression = match d.media.as_str() {
                "application/vnd.oci.image.layer.v1.tar"
                | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Compression::None,
                "application/vnd.oci.image.layer.v1.tar+gzip"
                | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
                | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Compression::Gzip,
                "application/vnd.oci.image.layer.v1.tar+zstd"
                | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                    Compression::Zstd
                }
                m => {
                    return Err(invalid(format!(
                        "layer {} ({}): unknown media type {m:?}",
                        i + 1,
                        d.digest
                    )))
                }
            };
            layers.push(Layer {
                blob: BlobRef::Digest(d.digest),
                compression,
                size: Some(d.size),
                diff_id,
            });
        }
        check_platform(&config, platform)?;
        Ok(Image {
            digest: manifest.digest,
            config,
            layers,
        })
    }

    fn docker(&self, manifest: &[u8], tag: Option<&str>, platform: &Platform) -> Result<Image> {
        let bad = |what: &str| invalid(format!("manifest.json: {what}"));
        json::check(manifest).map_err(|e| bad(&e.to_string()))?;
        let items = json::elements(manifest, 0..manifest.len()).ok_or_else(|| bad("not a list"))?;
        let mut chosen = Vec::new();
        let mut all_tags = Vec::new();
        for item in items {
            let tags = strings(manifest, item.clone(), "RepoTags").unwrap_or_default();
            all_tags.extend(tags.iter().cloned());
            let wanted = tag.is_none_or(|t| {
                tags.iter()
                    .any(|n| n == t || n.rsplit_once(':').is_some_and(|(_, x)| x == t))
            });
            if wanted {
                chosen.push(item);
            }
        }
        let item = match (chosen.as_slice(), tag) {
            ([one], _) => one.clone(),
            ([], Some(t)) => {
                return Err(not_found(format!(
                    "no image tagged {t} in {} (tags: {})",
                    self.path.display(),
                    list(&all_tags)
                )))
            }
            ([], None) => return Err(bad("lists no image")),
            (many, _) => return Err(self.several(many.len(), &all_tags)),
        };
        let sub = &manifest[item.clone()];
        let config_name = json::find(sub, &["Config"])
            .and_then(|r| json::text(sub, r))
            .ok_or_else(|| bad("an image without Config"))?;
        let layer_names =
            strings(manifest, item, "Layers").ok_or_else(|| bad("an image without Layers"))?;
        let config = self
            .doc(&config_name)?
            .ok_or_else(|| invalid(format!("{} has no {config_name}", self.path.display())))?;
        let digest = Digest::of(&config);
        // `docker save` and skopeo name the config by its digest.
        let stem = config_name
            .rsplit('/')
            .next()
            .unwrap_or("")
            .trim_end_matches(".json");
        if let Some(named) = Digest::from_hex(stem) {
            if named != digest {
                return Err(invalid(format!(
                    "{config_name}: its content's digest is {digest}"
                )));
            }
        }
        let diff_ids = diff_ids(&config)?;
        if diff_ids.len() != layer_names.len() {
            return Err(invalid(format!(
                "manifest.json lists {} layers, the config {}",
                layer_names.len(),
                diff_ids.len()
            )));
        }
        let layers = layer_names
            .into_iter()
            .zip(diff_ids)
            .map(|(name, diff_id)| Layer {
                blob: BlobRef::Member(name),
                compression: Compression::Sniff,
                size: None,
                diff_id,
            })
            .collect();
        check_platform(&config, platform)?;
        Ok(Image {
            digest,
            config,
            layers,
        })
    }
}

const INDEX_OCI: &str = "application/vnd.oci.image.index.v1+json";
const INDEX_DOCKER: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MANIFEST_OCI: &str = "application/vnd.oci.image.manifest.v1+json";
const MANIFEST_DOCKER: &str = "application/vnd.docker.distribution.manifest.v2+json";
const CONFIG_OCI: &str = "application/vnd.oci.image.config.v1+json";
const CONFIG_DOCKER: &str = "application/vnd.docker.container.image.v1+json";

#[derive(Debug, Clone)]
struct Descriptor {
    media: String,
    digest: Digest,
    size: u64,
    ref_name: Option<String>,
    platform: Option<Platform>,
}

fn list(names: &[String]) -> String {
    match names.is_empty() {
        true => "none".into(),
        false => names.join(", "),
    }
}

pub fn check_blob(bytes: &[u8], digest: &Digest, size: u64) -> Result<()> {
    if bytes.len() as u64 != size {
        return Err(invalid(format!(
            "blob {digest}: {} bytes where its descriptor says {size}",
            bytes.len()
        )));
    }
    let got = Digest::of(bytes);
    if got != *digest {
        return Err(invalid(format!(
            "blob {digest}: its content's digest is {got}"
        )));
    }
    Ok(())
}

fn strings(doc: &[u8], within: std::ops::Range<usize>, key: &str) -> Option<Vec<String>> {
    let sub = doc.get(within.clone())?;
    let r = json::find(sub, &[key])?;
    if &sub[r.clone()] == b"null" {
        return Some(Vec::new());
    }
    json::elements(sub, r)?
        .into_iter()
        .map(|e| json::text(sub, e))
        .collect()
}

/// The descriptors in the array at `key` of a document.
fn descriptors(doc: &[u8], key: &str, what: &str) -> Result<Vec<Descriptor>> {
    json::check(doc).map_err(|e| invalid(format!("{what}: {e}")))?;
    let r = json::find(doc, &[key]).ok_or_else(|| invalid(format!("{what} has no {key}")))?;
    let items =
        json::elements(doc, r).ok_or_else(|| invalid(format!("{what}: {key} is not a list")))?;
    items
        .into_iter()
        .map(|item| descriptor(&doc[item], what))
        .collect()
}

fn descriptor_at(doc: &[u8], path: &[&str], what: &str) -> Result<Descriptor> {
    json::check(doc).map_err(|e| invalid(format!("{what}: {e}")))?;
    let r = json::find(doc, path)
        .ok_or_else(|| invalid(format!("{what} has no {}", path.join("."))))?;
    descriptor(&doc[r], what)
}

fn descriptor(d: &[u8], what: &str) -> Result<Descriptor> {
    let s = |path: &[&str]| json::find(d, path).and_then(|r| json::text(d, r));
    let bad = |m: &str| invalid(format!("{what}: a descriptor {m}"));
    let digest = s(&["digest"]).ok_or_else(|| bad("without a digest"))?;
    let digest = Digest::parse(&digest).map_err(|e| invalid(format!("{what}: {e}")))?;
    let size = json::find(d, &["size"])
        .and_then(|r| std::str::from_utf8(&d[r]).ok()?.parse::<u64>().ok())
        .ok_or_else(|| bad("without a size"))?;
    let media = s(&["mediaType"]).unwrap_or_default();
    let platform = match (s(&["platform", "os"]), s(&["platform", "architecture"])) {
        (Some(os), Some(arch)) => Some(Platform {
            os,
            arch,
            variant: s(&["platform", "variant"]),
        }),
        _ => None,
    };
    Ok(Descriptor {
        media,
        digest,
        size,
        ref_name: s(&["annotations", "org.opencontainers.image.ref.name"]),
        platform,
    })
}

fn diff_ids(config: &[u8]) -> Result<Vec<Digest>> {
    json::check(config).map_err(|e| invalid(format!("the image config: {e}")))?;
    let ids: Vec<String> = json::find(config, &["rootfs", "diff_ids"])
        .and_then(|r| json::elements(config, r))
        .and_then(|items| items.into_iter().map(|e| json::text(config, e)).collect())
        .ok_or_else(|| invalid("the image config has no rootfs.diff_ids".to_string()))?;
    ids.iter()
        .map(|s| Digest::parse(s).map_err(|e| invalid(format!("the image config: {e}"))))
        .collect()
}

fn check_platform(config: &[u8], want: &Platform) -> Result<()> {
    let s = |k: &str| json::find(config, &[k]).and_then(|r| json::text(config, r));
    let (Some(os), Some(arch)) = (s("os"), s("architecture")) else {
        return Ok(());
    };
    let have = Platform {
        os,
        arch,
        variant: s("variant"),
    };
    match want.accepts(&have) {
        true => Ok(()),
        false => Err(not_found(format!(
            "the image is for {have}, not {want} (choose with --platform)"
        ))),
    }
}

/// The regular members of a tar source, each with where its data starts.
fn scan(path: &Path) -> Result<Vec<(String, u64, u64)>> {
    let file = File::open(path).map_err(|e| not_found(format!("{}: {e}", path.display())))?;
    let mut buffered = io::BufReader::with_capacity(64 * 1024, file);
    let mut r = tar::Reader::new(&mut buffered);
    let mut members = Vec::new();
    loop {
        let e = match r.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                return Err(invalid(format!(
                    "{}: not a readable tar ({e})",
                    path.display()
                )))
            }
        };
        if members.len() >= 100_000 {
            return Err(invalid(format!("{}: over 100000 members", path.display())));
        }
        if e.kind() == tar::Kind::File {
            let name = String::from_utf8_lossy(&e.path)
                .trim_start_matches("./")
                .to_string();
            members.push((name, r.data_offset(), e.size));
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
        let arm = Platform::parse("linux/arm").unwrap();
        assert!(p.accepts(&arm) && arm.accepts(&p));
        assert!(!p.accepts(&Platform::parse("linux/arm/v6").unwrap()));
        assert_eq!(Platform::own().os, "linux");
    }
}
