//! The wire format.

pub mod checks;
pub mod event;
pub mod exec;
pub mod health;
pub mod net;
pub mod overlay;
pub mod proto;
pub mod request;
pub mod resources;
pub mod restart;
pub mod signal;
pub mod spec;
pub mod verbs;

pub use checks::{check_id, check_path, HEALTH, INIT, MAX_ID};
pub use exec::ExecSpec;
pub use request::{KillTarget, Request};
pub use resources::Resources;
pub use spec::{Spec, MIN_LOG_SIZE};
pub use verbs::{usage, VERBS};
