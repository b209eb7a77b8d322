//! nanoctr: a small OCI container supervisor for routers and IoT boards.
//!
//! This crate holds the daemon (`nanoctrd`) and the client (`nanoctr`),
//! which share the protocol code, and are one program (`multicall.rs`). See the project README and
//! `daemon/README.md` for the architecture.

pub mod bundle;
pub mod cgroup;
pub mod client;
pub mod config;
pub mod files;
#[cfg(test)]
mod fuzz;
pub mod image;
pub mod logger;
pub mod multicall;
pub mod net;
pub mod ota;
pub mod rootfs;
pub mod server;
pub mod slab;
pub mod store;
mod sys;
pub(crate) mod tasks;
pub mod wire;
