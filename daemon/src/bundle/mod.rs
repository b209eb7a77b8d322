//! Bundles: reading a bundle's `config.json` safely, and splicing from it
//! the files the runtime gets (a derived `config.json`, an exec's
//! `process.json`). The JSON reader never recurses and never allocates
//! per value.

use std::io;
use std::path::Path;

use crate::files::{read_bounded, Links};
use crate::wire::proto::{Code, Error};

pub mod config;
pub mod json;
pub mod process;

/// The most of a bundle's `config.json` (or an exec's process file) the
/// daemon reads. runc's `spec` writes about 3 KiB; this leaves room for
/// long annotations and hooks, while a request never holds more than a
/// few copies of this at once.
pub const MAX_BUNDLE_CONFIG: u64 = 1024 * 1024;

/// A bundle is a directory with a `config.json`: reads the config, which
/// must be a regular file within [`MAX_BUNDLE_CONFIG`] holding one JSON
/// value nested at most [`json::MAX_DEPTH`] deep. Every refusal is
/// `invalid` and names the bundle and why.
pub fn bundle_config(bundle: &str) -> Result<Vec<u8>, crate::wire::proto::Error> {
    let invalid = |why: String| Error::new(Code::Invalid, format!("bundle {bundle}{why}"));
    match std::fs::metadata(bundle) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(invalid(" is not a directory".into())),
        Err(e) => return Err(invalid(format!(": {e}"))),
    }
    let path = Path::new(bundle).join(nanoctr_shim::contract::container_dir::CONFIG.str);
    let config =
        read_bounded(&path, MAX_BUNDLE_CONFIG, Links::Follow).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => invalid(" has no config.json".into()),
            _ => invalid(format!(": config.json {e}")),
        })?;
    json::check(&config).map_err(|e| invalid(format!(": config.json is {e}")))?;
    Ok(config)
}
