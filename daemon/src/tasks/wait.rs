//! `wait`: answers `OK exit=N` once the container's init has exited, at
//! once if it has already.

use crate::lifecycle::{admits, Status, Verb};
use crate::server::{Daemon, Outcome};
use crate::slab::Ref;

use super::exit::exit_outcome;

impl Daemon {
    pub(crate) fn wait(&mut self, client: Ref, id: &str) -> Outcome {
        let r = match self.lookup(id) {
            Ok(r) => r,
            Err(e) => return Outcome::err(e),
        };
        let Some(c) = self.containers.get(r) else {
            return Outcome::err(super::internal("container vanished"));
        };
        if let Err(e) = admits(c.status, Verb::Wait) {
            return Outcome::err(e);
        }
        if c.status == Status::Stopped {
            return exit_outcome(c.exit_code);
        }
        self.await_exit(client, r);
        Outcome::Pending
    }
}
