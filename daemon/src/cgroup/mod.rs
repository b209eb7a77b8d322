//! Cgroups, v1 and v2: where a container's are (`mountinfo`), its OOM
//! kills (`oom`), and its usage and processes (`stats`).

pub mod mountinfo;
pub mod oom;
pub mod stats;
