//! Bundles.

pub mod json;
