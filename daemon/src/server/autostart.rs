//! The containers declared in the config, on their way up at daemon
//! start (their order and their starting are `tasks::supervise`'s).

use crate::config::file::Decl;

/// A declared container on its way up.
pub(crate) struct Auto {
    pub decl: Decl,
    pub state: AutoState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AutoState {
    /// Waiting for the containers it comes after.
    Waiting,
    /// Asked for (or found running after a daemon restart).
    Made,
    /// Deleted by hand since this state dir's autostart: left alone.
    Skipped,
    Failed,
}
