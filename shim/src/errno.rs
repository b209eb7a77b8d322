//! Names for the errors a shim reports most, so a person reads `ENOSPC`
//! rather than `errno 28`; the rest are shown by number.

/// The symbolic name of a Linux errno (the same on every architecture for
/// these).
pub fn errno_name(n: i32) -> Option<&'static str> {
    Some(match n {
        1 => "EPERM",
        2 => "ENOENT",
        6 => "ENXIO",
        12 => "ENOMEM",
        13 => "EACCES",
        17 => "EEXIST",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 => "ENFILE",
        24 => "EMFILE",
        28 => "ENOSPC",
        30 => "EROFS",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_libc() {
        for (n, name) in [
            (libc::ENOENT, "ENOENT"),
            (libc::ENXIO, "ENXIO"),
            (libc::EINVAL, "EINVAL"),
            (libc::ENOSPC, "ENOSPC"),
            (libc::EMFILE, "EMFILE"),
            (libc::EROFS, "EROFS"),
        ] {
            assert_eq!(errno_name(n), Some(name));
        }
        assert_eq!(errno_name(9999), None);
    }
}
