//! The state dir.

pub mod events;
pub mod record;
pub mod statedir;
