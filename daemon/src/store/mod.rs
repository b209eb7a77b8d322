//! The state dir.

pub mod events;
pub mod record;
mod segments;
pub mod statedir;
pub mod update;
