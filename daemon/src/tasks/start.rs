//! `start`: tell the shim `start` on its control fifo; it runs
//! `<runtime> start` and answers `started` or `error MESSAGE` on `reply`.

use crate::container::{Op, OpKind};
use crate::lifecycle::{Event, Verb};
use crate::proto::{Code, Error};
use crate::server::{Daemon, Outcome};
use crate::shim::ShimLine;
use crate::slab::Ref;
use crate::statedir::write_fifo;

use super::internal;

impl Daemon {
    pub(crate) fn start(&mut self, client: Ref, id: &str) -> Result<Outcome, Error> {
        let r = self.admit(id, Verb::Start)?;
        if !self.slot_free() {
            return Ok(Outcome::Stall);
        }
        self.begin_start(r, Some(client))?;
        Ok(Outcome::Pending)
    }

    /// Sends `start` to the shim; the answer comes to [`Daemon::on_reply`].
    pub(crate) fn begin_start(&mut self, r: Ref, client: Option<Ref>) -> Result<(), Error> {
        let c = self
            .containers
            .get_mut(r)
            .ok_or_else(|| internal("container vanished"))?;
        write_fifo(&c.proc_dir.join("control"), b"start\n")
            .map_err(|e| internal(format!("cannot reach the shim: {e}")))?;
        c.op = Some(Op {
            kind: OpKind::Start,
            client,
        });
        Ok(())
    }

    /// The shim's `reply` fifo has lines.
    pub(crate) fn on_reply(&mut self, r: Ref) {
        let Some(reader) = self.containers.get_mut(r).and_then(|c| c.reply.as_mut()) else {
            return;
        };
        let (lines, eof) = reader.read_lines();
        for line in lines {
            let outcome = match ShimLine::parse(&line) {
                ShimLine::Started => {
                    self.apply(r, Event::Started);
                    let pid = self.containers.get(r).map_or(0, |c| c.pid);
                    Outcome::ok(&[("pid", &pid.to_string())])
                }
                ShimLine::Error(msg) => Outcome::err(Error::new(Code::Runtime, msg)),
                _ => continue,
            };
            if let Some(client) = self.take_op(r, &OpKind::Start) {
                self.answer(client, outcome);
            }
        }
        if eof {
            if let Some(c) = self.containers.get_mut(r) {
                c.reply = None;
            }
        }
    }

    /// Ends the container's operation if it is `kind`; returns its client.
    pub(crate) fn take_op(&mut self, r: Ref, kind: &OpKind) -> Option<Option<Ref>> {
        let c = self.containers.get_mut(r)?;
        if c.op.as_ref().map(|op| &op.kind) != Some(kind) {
            return None;
        }
        c.op.take().map(|op| op.client)
    }
}
