//! The parts of `nanoctr-shim` that make no system calls: the contract
//! with the daemon (the state dir's names, the shim's command line, the
//! lines both ways, the shared limits), fixed-capacity lines, the output
//! ring.
//!
//! They live in a library so that they are unit-tested on the host; the
//! binary (`main.rs`) is `no_std`, has no heap, and links only these pieces,
//! `rustix` and the C library's string functions.
#![cfg_attr(not(test), no_std)]

pub mod contract;
pub mod errno;
pub mod line;
pub mod ring;
