//! Cgroups.

pub mod oom;
pub mod stats;
