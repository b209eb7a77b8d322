//! `wait ID [PROC]`: answers `OK exit=N` once the process has exited, at
//! once if it has already.

use crate::server::container::ProcRef;
use crate::server::lifecycle::{Status, Verb};
use crate::server::Effects;
use crate::server::{Daemon, Outcome};
use crate::slab::Ref;
use crate::wire::proto::{Code, Error};

use super::exit::exit_outcome;

impl<F: Effects> Daemon<F> {
    pub(crate) fn wait(&mut self, client: Ref, id: &str, proc: &str) -> Result<Outcome, Error> {
        let (r, p) = self.admit_process(id, proc, Verb::Wait)?;
        let exited = match p {
            ProcRef::Init(_) => self
                .containers
                .get(r)
                .and_then(|c| (c.status == Status::Stopped).then_some(c.init.exit_code)),
            ProcRef::Exec(e) => match self.execs.get(e).map(|x| x.status) {
                Some(Status::Stopped) => self.execs.get(e).map(|x| x.process.exit_code),
                Some(Status::Unknown) => {
                    return Err(Error::new(
                        Code::State,
                        format!("process {proc}'s shim was lost: exit status unknown"),
                    ))
                }
                _ => None,
            },
        };
        match exited {
            Some(code) => Ok(exit_outcome(code)),
            None => {
                self.room_to_follow(client)?;
                self.await_exit(client, p);
                Ok(Outcome::Pending)
            }
        }
    }
}
