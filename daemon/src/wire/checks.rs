//! Checks of the words a request names: ids, process and checkpoint
//! names, paths, runtimes, labels; each refusal says what is wrong.

use super::proto::{refuse, Code, Error};

/// The name of a container's own process (and of its process dir).
pub const INIT: &str = nanoctr_shim::contract::container_dir::INIT.str;
/// The process dir and name of a container's health probe: no exec process
/// may take it.
pub const HEALTH: &str = "health";

/// A process of a container: `init` (the default) or an exec process's
/// name.
pub(crate) fn check_proc(proc: Option<&&str>) -> Result<String, Error> {
    match proc.copied() {
        None => Ok(INIT.into()),
        Some(p) => {
            check_name(p).map_err(|e| Error::new(e.code, e.message.replace("id", "process name")))
        }
    }
}

/// A checkpoint or process name: the rules of an id (one safe path
/// component).
pub(crate) fn check_name(name: &str) -> Result<String, Error> {
    check_id(name).map_err(|e| Error::new(e.code, e.message.replacen("bad id", "bad name", 1)))
}

/// Longest container id.
pub const MAX_ID: usize = 64;

/// Checks a container id: `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}` and no `..`,
/// so that it is always one safe path component.
pub fn check_id(id: &str) -> Result<String, Error> {
    let bad = |why: &str| refuse(Code::Invalid, format!("bad id: {why}"));
    let Some(first) = id.bytes().next() else {
        return bad("empty");
    };
    if id.len() > MAX_ID {
        return bad("longer than 64 bytes");
    }
    if !first.is_ascii_alphanumeric() {
        return bad("must start with a letter or digit");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return bad("only letters, digits, '_', '.' and '-' are allowed");
    }
    if id.contains("..") {
        return bad("must not contain '..'");
    }
    Ok(id.to_string())
}

/// Checks a path given in a request: absolute, with no control characters.
pub fn check_path(what: &str, path: &str) -> Result<String, Error> {
    if !path.starts_with('/') {
        return refuse(Code::Invalid, format!("{what} must be an absolute path"));
    }
    if path.chars().any(char::is_control) {
        return refuse(Code::Invalid, format!("{what} contains control characters"));
    }
    Ok(path.to_string())
}

/// A runtime is a plain program name (looked up in `PATH`) or an absolute
/// path.
pub(crate) fn check_runtime(name: &str) -> Result<String, Error> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b));
    if plain && !name.starts_with('.') {
        Ok(name.to_string())
    } else {
        check_path("runtime", name)
    }
}

pub(crate) fn check_label(key: &str, value: &str) -> Result<String, Error> {
    let ok_key = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b));
    if !ok_key {
        return refuse(Code::Invalid, format!("bad label name {key:?}"));
    }
    if value.chars().any(char::is_control) {
        return refuse(
            Code::Invalid,
            format!("label {key} contains control characters"),
        );
    }
    Ok(key.to_string())
}
