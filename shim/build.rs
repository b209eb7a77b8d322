//! Link settings for the shim.
//!
//! The shim is `no_std` but starts through the C library's start-up code
//! (`_start` -> `__libc_start_main` -> `main`) and uses it for execve and
//! signal masks. On glibc the `libc` crate links `-lc` itself; on musl it
//! only does so inside `std`, so the static C library is named here.
//!
//! On musl targets the workspace links with rust-lld (`.cargo/config.toml`)
//! and these size settings apply to the shim alone:
//! - `cross/no-unwind-tables.ld` discards unwind tables: nothing unwinds;
//! - `-z norelro` and `--no-rosegment` drop the page-aligned RELRO and
//!   read-only segments, two pages of padding in a file this small.
use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../cross/no-unwind-tables.ld");
    if env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("musl") {
        return;
    }
    println!("cargo:rustc-link-lib=static:-bundle=c");
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    for arg in [
        format!("-T{dir}/../cross/no-unwind-tables.ld"),
        "--no-eh-frame-hdr".into(),
        "-znorelro".into(),
        "--no-rosegment".into(),
    ] {
        println!("cargo:rustc-link-arg-bin=nanoctr-shim={arg}");
    }
}
