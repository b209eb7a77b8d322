//! nanoctr: a small OCI container supervisor for routers and IoT boards.
//!
//! This crate holds the daemon (`nanoctrd`) and the client (`nanoctr`),
//! which share the protocol code. See the project README and
//! `daemon/README.md` for the architecture.
#![deny(unsafe_code)]

pub mod attach;
pub mod cgroup;
pub mod client;
pub mod conffile;
pub mod config;
pub mod conn;
pub mod container;
pub mod events;
pub mod exec_spec;
pub mod files;
#[cfg(test)]
mod fuzz;
pub mod json;

pub mod lifecycle;
pub mod logger;
pub mod metrics;
pub mod notify;
pub mod proto;
pub mod record;
pub mod request;
pub mod resources;
pub mod restart;
pub mod restore;
pub mod runtime;
pub mod server;
pub mod shim;
pub mod signal;
pub mod slab;
pub mod statedir;
pub mod stats;
mod sys;
pub(crate) mod tasks;
pub mod tty;
