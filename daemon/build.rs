//! Link settings for nanoctrd and nanoctr on musl targets (linked with
//! rust-lld, see `.cargo/config.toml`): `cross/no-unwind-tables.ld` drops
//! the unwind tables, which nothing uses since every profile aborts on
//! panic: 50 KiB of the daemon.
use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../cross/no-unwind-tables.ld");
    if env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("musl") {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    for arg in [
        format!("-T{dir}/../cross/no-unwind-tables.ld"),
        "--no-eh-frame-hdr".into(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
