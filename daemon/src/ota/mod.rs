//! Over-the-air updates: adapters through which a fleet system drives the
//! device, as modes of nanoctr's own binary (chosen in `multicall.rs`).
//! Each speaks the daemon's protocol through the client's request code
//! and imports images with the client's importer, as a person at the
//! console would: no second protocol, no shell.
//!
//! - `mender.rs`: a Mender Update Module v3, installed (a link or a copy)
//!   as `/usr/share/mender/modules/v3/nanoctr`, that updates one container
//!   from an image in the artifact;
//! - `manifest.rs`: the `nanoctr.conf` beside the image, naming the
//!   container and its options.

pub mod manifest;
pub mod mender;
