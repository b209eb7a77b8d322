//! The task queue: each request goes to its handler in `tasks`; one that
//! needs a runtime-call slot while none is free waits its turn.

use super::{Daemon, Outcome};
use crate::server::container::Creation;
use crate::server::Effects;
use crate::slab::Ref;
use crate::wire::Request;

impl<F: Effects> Daemon<F> {
    /// Runs a request, or queues it when it needs a runtime-call slot and
    /// none is free.
    pub(super) fn execute(&mut self, client: Ref, req: Request) -> Outcome {
        let outcome = match &req {
            Request::Hello => Ok(self.hello()),
            Request::Version => Ok(self.version()),
            Request::Help => Ok(self.help()),
            Request::List => Ok(self.list()),
            Request::State(id) => self.state(id),
            Request::StateCheck(id) => self.net_check(client, id),
            Request::Create(spec) => self.create(Some(client), spec, &Creation::Create),
            Request::Run(spec) => self.create(Some(client), spec, &Creation::Run),
            Request::Start(id) => self.start(client, id),
            Request::Exec(spec) => self.exec(client, spec),
            Request::Wait { id, proc } => self.wait(client, id, proc),
            Request::WaitHealthy { id, timeout } => self.wait_healthy(client, id, *timeout),
            Request::Swap {
                spec,
                options,
                timeout,
            } => self.swap(client, spec, *options, *timeout),
            Request::Commit(id) => self.commit(id),
            Request::Rollback(id) => self.rollback(client, id),

            Request::Kill { id, signal, target } => self.kill(client, id, *signal, target),
            Request::Pause(id) => self.pause(client, id, true),
            Request::Resume(id) => self.pause(client, id, false),
            Request::Update { id, resources } => self.update(client, id, resources),
            Request::Stats(id) => self.stats(id),
            Request::Ps(id) => self.ps(id),
            Request::Checkpoint {
                id,
                name,
                exit,
                dir,
            } => self.checkpoint(client, id, name, *exit, dir.as_deref()),
            Request::Restore { spec, name, dir } => {
                self.restore_checkpoint(client, spec, name, dir.as_deref())
            }
            Request::Checkpoints { id, dir } => self.checkpoints(id, dir.as_deref()),
            Request::CheckpointDelete { id, name, dir } => {
                self.checkpoint_delete(id, name, dir.as_deref())
            }
            Request::Delete { id, force } => self.delete(client, id, *force),
            Request::Events(filter) => self.subscribe(client, filter),
            Request::Metrics => Ok(self.metrics_text()),
            Request::Attach { id, proc } => self.attach(id, proc),
            Request::Resize {
                id,
                proc,
                cols,
                rows,
            } => self.resize(id, proc, *cols, *rows),
            Request::CloseStdin { id, proc } => self.close_stdin(id, proc),
            Request::Logs {
                id,
                proc,
                tail,
                follow,
            } => self.logs(client, id, proc, *tail, *follow),
        }
        .unwrap_or_else(Outcome::err);
        if let Outcome::Stall = outcome {
            if let Some(c) = self.clients.get_mut(client) {
                c.stalled = Some(req);
                self.stalled.push_back(client);
            }
        }
        outcome
    }

    /// Runs answered clients' further lines, then stalled requests while
    /// slots are free.
    pub(super) fn run_ready(&mut self) {
        while let Some(r) = self.ready.pop() {
            self.run_lines(r);
        }
        while self.slot_free() {
            let Some(r) = self.stalled.pop_front() else {
                break;
            };
            let Some(req) = self.clients.get_mut(r).and_then(|c| c.stalled.take()) else {
                continue;
            };
            let outcome = self.execute(r, req);
            self.send(r, outcome);
            self.run_lines(r);
        }
    }
}
