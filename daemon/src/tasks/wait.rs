//! `wait`: answers `OK exit=N` once the container's init has exited, at
//! once if it has already.

use crate::lifecycle::{Status, Verb};
use crate::proto::Error;
use crate::server::{Daemon, Outcome};
use crate::slab::Ref;

use super::exit::exit_outcome;

impl Daemon {
    pub(crate) fn wait(&mut self, client: Ref, id: &str) -> Result<Outcome, Error> {
        let r = self.admit(id, Verb::Wait)?;
        match self.containers.get(r) {
            Some(c) if c.status == Status::Stopped => Ok(exit_outcome(c.exit_code)),
            _ => {
                self.await_exit(client, r);
                Ok(Outcome::Pending)
            }
        }
    }
}
