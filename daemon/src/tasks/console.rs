//! `attach`, `resize`, `closestdin`: a process's console and stdio. The
//! shim serves them; the daemon says where (`attach`) or passes a control
//! line on.

use crate::server::container::Process;
use crate::server::lifecycle::Verb;
use crate::server::Effects;
use crate::server::{Daemon, Outcome};
use crate::wire::proto::{Code, Error};

use super::internal;
use nanoctr_shim::contract::control::Control;
use nanoctr_shim::contract::proc_dir;

impl<F: Effects> Daemon<F> {
    /// Where the process's shim serves attachers, and whether it is a
    /// terminal.
    pub(crate) fn attach(&self, id: &str, proc: &str) -> Result<Outcome, Error> {
        let p = self.console_of(id, proc)?;
        let path = p.dir.join(proc_dir::ATTACH_SOCK.str);
        let terminal = if p.terminal { "1" } else { "0" };
        Ok(Outcome::ok(&[
            ("path", &path.to_string_lossy()),
            ("terminal", terminal),
        ]))
    }

    pub(crate) fn resize(
        &mut self,
        id: &str,
        proc: &str,
        cols: u16,
        rows: u16,
    ) -> Result<Outcome, Error> {
        let p = self.console_of(id, proc)?;
        if !p.terminal {
            return Err(Error::new(Code::State, "the process has no terminal"));
        }
        let dir = p.dir.clone();
        self.control(&dir, Control::Resize { cols, rows })?;
        Ok(Outcome::ok(&[]))
    }

    pub(crate) fn close_stdin(&mut self, id: &str, proc: &str) -> Result<Outcome, Error> {
        let p = self.console_of(id, proc)?;
        if !p.terminal && !p.interactive {
            return Err(Error::new(
                Code::State,
                "the process's stdin is neither a terminal nor a pipe (start it with interactive)",
            ));
        }
        let dir = p.dir.clone();
        self.control(&dir, Control::CloseStdin)?;
        Ok(Outcome::ok(&[]))
    }

    /// A process whose shim is there to serve its console.
    fn console_of(&self, id: &str, proc: &str) -> Result<&Process, Error> {
        let (_, p) = self.admit_process(id, proc, Verb::Console)?;
        let p = self
            .process(p)
            .ok_or_else(|| internal("process vanished"))?;
        if !p.shim_alive() {
            return Err(Error::new(
                Code::State,
                format!("process {proc} has exited"),
            ));
        }
        Ok(p)
    }
}
