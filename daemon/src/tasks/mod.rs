//! One module per request, each an `impl Daemon` block: the handler that
//! starts the work, and the handlers of the events that finish it.

mod checkpoint;
mod console;
mod create;
mod exec;
pub(crate) mod logs;
mod ops;

mod delete;
mod events;
mod exit;
pub(crate) mod health;
mod info;
mod kill;
pub(crate) mod net;
mod oom;
mod process;
mod start;
mod supervise;

mod timeout;
pub(crate) mod update;
mod wait;

use crate::server::container::{OpKind, ProcRef, Process};
use crate::server::effects::Target;
use crate::server::lifecycle::{admits, Event, Status, Verb};
use crate::server::Daemon;
use crate::server::Effects;
pub(crate) use crate::server::{internal, io_refusal};
use crate::slab::Ref;
use crate::wire::proto::{Code, Error};
use crate::wire::INIT;
use nanoctr_shim::contract::control::Control;
use nanoctr_shim::contract::proc_dir;
use rustix::process::Signal;

impl<F: Effects> Daemon<F> {
    /// Moves a container's status on; an event that cannot happen in the
    /// current status leaves it as it is.
    pub(crate) fn apply(&mut self, r: Ref, event: Event) {
        if let Some(c) = self.containers.get_mut(r) {
            if let Some(next) = crate::server::lifecycle::transition(c.status, event) {
                let started = event == Event::Started && next == Status::Running;
                if started {
                    c.sup.running_since = Some(std::time::Instant::now());
                    c.sup.respawning = false;
                }
                c.status = next;
                if started {
                    self.health_started(r);
                    self.drive(r);
                }
            }
        }
    }

    /// The container `id`, if it admits `verb` now: it exists, no
    /// operation in progress on it excludes the verb (a kill may overlap a
    /// start; `wait` and `state` overlap anything), and its status admits
    /// the verb ([`admits`]).
    pub(crate) fn admit(&self, id: &str, verb: Verb) -> Result<Ref, Error> {
        let r = self
            .find(id)
            .ok_or_else(|| Error::new(Code::NotFound, format!("no container {id}")))?;
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| internal("container vanished"))?;
        if let Some(op) = &c.op {
            let overlaps = match verb {
                Verb::Wait | Verb::State | Verb::Console | Verb::Inspect => true,
                Verb::Kill => op.kind == OpKind::Start,
                Verb::Start
                | Verb::Delete { .. }
                | Verb::Pause
                | Verb::Resume
                | Verb::Update
                | Verb::Exec
                | Verb::Checkpoint => false,
            };
            if !overlaps {
                return Err(op.kind.busy());
            }
        }
        if let Some(u) = c.update.as_ref().filter(|u| u.phase.moving()) {
            if !matches!(
                verb,
                Verb::Wait | Verb::State | Verb::Console | Verb::Inspect | Verb::Exec
            ) {
                let why = format!(
                    "container is busy (an update is in progress: {})",
                    u.phase.as_str()
                );
                return Err(Error::new(Code::Busy, why));
            }
        }
        admits(c.status, verb)?;
        Ok(r)
    }

    /// The process `proc` (`init` or an exec's name) of container `id`, if
    /// the container admits `verb` now.
    pub(crate) fn admit_process(
        &self,
        id: &str,
        proc: &str,
        verb: Verb,
    ) -> Result<(Ref, ProcRef), Error> {
        let r = self.admit(id, verb)?;
        if proc == INIT {
            return Ok((r, ProcRef::Init(r)));
        }
        let e = self.find_exec(r, proc).ok_or_else(|| {
            Error::new(
                Code::NotFound,
                format!("container {id} has no process {proc}"),
            )
        })?;
        Ok((r, ProcRef::Exec(e)))
    }

    /// The exec process of container `r` named `name`.
    pub(crate) fn find_exec(&self, r: Ref, name: &str) -> Option<Ref> {
        self.execs
            .iter()
            .find(|(_, e)| e.container == r && e.name == name)
            .map(|(e, _)| e)
    }

    /// Writes a line to the `control` fifo of the process in `dir`; fails
    /// at once when its shim is not there to read it.
    pub(crate) fn control(&mut self, dir: &std::path::Path, c: Control) -> Result<(), Error> {
        let fifo = dir.join(proc_dir::CONTROL.str);
        self.fx
            .write_fifo(&fifo, c.line().finish())
            .map_err(|e| internal(format!("cannot reach the shim: {e}")))
    }

    /// SIGKILL to a process's shim and its process group: the shim and any
    /// runtime call it is running (the container has a session of its
    /// own).
    pub(crate) fn kill_shim(&mut self, p: ProcRef) {
        if let Some(pid) = self.process(p).map(|x| x.shim_pid) {
            self.fx.signal(Target::Group(pid), Signal::KILL);
        }
    }

    pub(crate) fn process(&self, p: ProcRef) -> Option<&Process> {
        match p {
            ProcRef::Init(r) => self.containers.get(r).map(|c| &c.init),
            ProcRef::Exec(r) => self.execs.get(r).map(|e| &e.process),
        }
    }

    pub(crate) fn process_mut(&mut self, p: ProcRef) -> Option<&mut Process> {
        match p {
            ProcRef::Init(r) => self.containers.get_mut(r).map(|c| &mut c.init),
            ProcRef::Exec(r) => self.execs.get_mut(r).map(|e| &mut e.process),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
