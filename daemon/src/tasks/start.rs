//! `start`: tell the shim `start` on its control fifo; it runs
//! `<runtime> start` and answers `started` or `error MESSAGE` on `reply`.

use std::time::Instant;

use crate::server::container::{Op, OpKind};
use crate::server::lifecycle::{Event, Verb};
use crate::server::metrics::CallVerb;
use crate::server::Effects;
use crate::server::{Daemon, Outcome};
use crate::slab::Ref;
use crate::wire::event::Kind;
use crate::wire::proto::Error;

use super::internal;
use nanoctr_shim::contract::control::Control;

impl<F: Effects> Daemon<F> {
    pub(crate) fn start(&mut self, client: Ref, id: &str) -> Result<Outcome, Error> {
        let r = self.admit(id, Verb::Start)?;
        if !self.slot_free() {
            return Ok(Outcome::Stall);
        }
        self.begin_start(r, Some(client), Instant::now())?;
        Ok(Outcome::Pending)
    }

    /// Sends `start` to the shim; the answer comes to [`Daemon::on_reply`]
    /// and then [`Daemon::start_answered`].
    /// `since` is when the request came, for the start-latency histogram.
    pub(crate) fn begin_start(
        &mut self,
        r: Ref,
        client: Option<Ref>,
        since: Instant,
    ) -> Result<(), Error> {
        let dir = self
            .containers
            .get(r)
            .ok_or_else(|| internal("container vanished"))?
            .init
            .dir
            .clone();
        self.control(&dir, Control::Start)?;
        let c = self
            .containers
            .get_mut(r)
            .ok_or_else(|| internal("container vanished"))?;
        c.op = Some(Op {
            kind: OpKind::Start,
            client,
            since,
        });
        Ok(())
    }

    /// The shim answered `start` (see `process.rs`): `started`, or the
    /// runtime's error.
    pub(crate) fn start_answered(&mut self, r: Ref, answer: Result<(), Error>) {
        self.metrics.call(CallVerb::Start, answer.is_ok());
        let op = self.containers.get_mut(r).and_then(|c| {
            let is_start = c.op.as_ref().is_some_and(|op| op.kind == OpKind::Start);
            if is_start {
                c.op.take()
            } else {
                None
            }
        });
        let outcome = match answer {
            Ok(()) => {
                self.apply(r, Event::Started);
                let (id, pid) = self
                    .containers
                    .get(r)
                    .map_or((String::new(), 0), |c| (c.id().to_string(), c.init.pid));
                let pid = pid.to_string();
                self.emit(&id, Kind::Start, &[("pid", &pid)]);
                if let Some(op) = &op {
                    self.metrics.started(op.since.elapsed());
                }
                Outcome::ok(&[("pid", &pid)])
            }
            Err(e) => Outcome::err(e),
        };
        if let Some(op) = op {
            self.answer(op.client, outcome);
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
