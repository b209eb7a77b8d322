//! The `config.json` of a container's derived bundle, spliced from its
//! bundle's.

use std::io;
use std::path::Path;

use super::json;

/// The config of a container's derived bundle: the bundle's config with
/// `process.terminal` set to `terminal` and `root.path` set to `root` (an
/// image rootfs's mount) or, without one, made absolute (so the rootfs is
/// still the bundle's). The rest is copied byte for byte.
pub fn derive(
    bundle: &str,
    config: &[u8],
    terminal: bool,
    root: Option<&Path>,
) -> io::Result<Vec<u8>> {
    let bad =
        |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("config.json: {what}"));
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let value = if terminal { "true" } else { "false" };
    match json::find(config, &["process", "terminal"]) {
        Some(r) => edits.push((r, value.into())),
        None => {
            let process = json::find(config, &["process"]).ok_or_else(|| bad("no process"))?;
            let at = process.start + 1;
            edits.push((at..at, format!("\"terminal\": {value}, ")));
        }
    }
    let at = json::find(config, &["root", "path"]).ok_or_else(|| bad("no root.path"))?;
    let path =
        json::string(config, at.clone()).ok_or_else(|| bad("root.path is not a plain string"))?;
    match root {
        Some(mounted) => edits.push((at, json::quote(&mounted.to_string_lossy()))),
        None if !path.starts_with('/') => edits.push((
            at,
            json::quote(&Path::new(bundle).join(path).to_string_lossy()),
        )),
        None => {}
    }
    crate::slab::sort_small(&mut edits, |a, b| a.0.start > b.0.start);
    let mut out = config.to_vec();
    for (range, text) in edits {
        out.splice(range, text.bytes());
    }
    Ok(out)
}
