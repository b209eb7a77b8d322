//! `attach`, `resize`, `closestdin`: a process's console and stdio. The
//! shim serves them; the daemon says where (`attach`) or passes a control
//! line on.

use crate::lifecycle::Verb;
use crate::proto::{Code, Error};
use crate::server::{Daemon, Outcome};
use crate::slab::Ref;
use crate::statedir::write_fifo;

use super::internal;

impl Daemon {
    /// Where the process's shim serves attachers, and whether it is a
    /// terminal.
    pub(crate) fn attach(&self, id: &str) -> Result<Outcome, Error> {
        let r = self.admit(id, Verb::Console)?;
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| internal("container vanished"))?;
        let path = c.proc_dir.join("attach.sock");
        let terminal = if c.terminal { "1" } else { "0" };
        Ok(Outcome::ok(&[
            ("path", &path.to_string_lossy()),
            ("terminal", terminal),
        ]))
    }

    pub(crate) fn resize(&self, id: &str, cols: u16, rows: u16) -> Result<Outcome, Error> {
        let r = self.admit(id, Verb::Console)?;
        if !self.containers.get(r).is_some_and(|c| c.terminal) {
            return Err(Error::new(Code::State, "the process has no terminal"));
        }
        self.control(r, &format!("resize {cols} {rows}\n"))
    }

    pub(crate) fn close_stdin(&self, id: &str) -> Result<Outcome, Error> {
        let r = self.admit(id, Verb::Console)?;
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| internal("container vanished"))?;
        if !c.terminal && !c.spec.interactive {
            return Err(Error::new(
                Code::State,
                "the process's stdin is neither a terminal nor a pipe (create it with interactive)",
            ));
        }
        self.control(r, "closestdin\n")
    }

    /// Writes a line to the shim's control fifo.
    fn control(&self, r: Ref, line: &str) -> Result<Outcome, Error> {
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| internal("container vanished"))?;
        write_fifo(&c.proc_dir.join("control"), line.as_bytes())
            .map_err(|e| internal(format!("cannot reach the shim: {e}")))?;
        Ok(Outcome::ok(&[]))
    }
}
