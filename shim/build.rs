//! Link settings for the shim.
//!
//! On musl targets the shim starts at its own entry point,
//! `nanoctr_shim_start` (`src/sys.rs`), not the C library's `_start`:
//! the linker's garbage collection then drops the C library's start-up
//! code, which is all the shim would take from it but the string functions
//! (`memcpy` and the like) the compiler calls. The `libc` crate links
//! `-lc` only inside `std`, so the static C library is named here. On
//! glibc (host builds for tests) the C library starts the shim as usual.
//!
//! The workspace links musl targets with rust-lld (`.cargo/config.toml`)
//! and these size settings apply to the shim alone:
//! - `cross/no-unwind-tables.ld` discards unwind tables: nothing unwinds;
//! - `cross/shim-entry.ld` discards the constructor tables: nothing runs
//!   them without the C library's start-up code;
//! - `-z norelro` and `--no-rosegment` drop the page-aligned RELRO and
//!   read-only segments, two pages of padding in a file this small.
use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Thumb code (the firmware build for armv7): the entry point must be
    // marked as a Thumb function (`src/sys.rs`).
    println!("cargo::rustc-check-cfg=cfg(thumb_mode)");
    let features = env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    if features.split(',').any(|f| f == "thumb-mode") {
        println!("cargo:rustc-cfg=thumb_mode");
    }
    println!("cargo:rerun-if-changed=../cross/no-unwind-tables.ld");
    println!("cargo:rerun-if-changed=../cross/shim-entry.ld");
    if env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("musl") {
        return;
    }
    println!("cargo:rustc-link-lib=static:-bundle=c");
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    for arg in [
        "--entry=nanoctr_shim_start".into(),
        format!("-T{dir}/../cross/shim-entry.ld"),
        format!("-T{dir}/../cross/no-unwind-tables.ld"),
        "--no-eh-frame-hdr".into(),
        "-znorelro".into(),
        "--no-rosegment".into(),
    ] {
        println!("cargo:rustc-link-arg-bin=nanoctr-shim={arg}");
    }
}
