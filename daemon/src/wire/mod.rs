//! The wire format.

pub mod exec;
pub mod proto;
pub mod request;
pub mod resources;
pub mod restart;
pub mod signal;
