//! Deadlines: no runtime call may run longer than `--start-timeout`. A
//! create (or exec) that does not finish is killed with its shim and
//! cleaned up; a
//! start that does not finish takes its shim with it (the container then
//! counts as lost, and is deleted through the runtime); a `kill` or `delete`
//! call is killed. The client gets `ERR timeout`. A client that asks
//! nothing for `--client-timeout` is closed.

use std::time::Instant;

use crate::server::container::{OpKind, ProcRef};
use crate::server::lifecycle::Status;
use crate::server::Effects;
use crate::server::{Daemon, Outcome};
use crate::slab::Ref;
use crate::wire::proto::{Code, Error};

impl<F: Effects> Daemon<F> {
    /// The earliest deadline of anything in flight.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let limit = self.cfg.start_timeout;
        let ops = self.containers.iter().filter_map(|(_, c)| {
            c.op.as_ref()
                .filter(|op| op.kind.uses_slot())
                .map(|op| op.since + limit)
        });
        let calls = self
            .calls
            .iter()
            .filter(|(_, call)| !call.timed_out)
            .map(|(_, call)| call.since + limit);
        let execs = self
            .execs
            .iter()
            .filter(|(_, e)| e.status == Status::Creating)
            .map(|(_, e)| e.since + limit);
        // The client idle longest is the first to reach the timeout.
        let idle = self
            .clients
            .iter()
            .filter(|(_, c)| c.idle() && !c.tty)
            .map(|(_, c)| c.last_active + self.cfg.client_timeout)
            .min();
        ops.chain(calls)
            .chain(execs)
            .chain(idle)
            .chain(self.next_restart())
            .chain(self.next_health())
            .chain(self.next_update())
            .chain(self.next_autostart())
            .chain(self.tty.as_ref().and_then(|t| t.reopen_at))
            .chain(self.next_pet())
            .min()
    }

    /// Ends whatever has run past its deadline, then pets the watchdog if
    /// that is due and the critical containers are well.
    pub(crate) fn expire(&mut self) {
        self.fire_restarts();
        self.autostart_tick();
        self.health_tick();
        self.update_tick();
        if self
            .tty
            .as_ref()
            .and_then(|t| t.reopen_at)
            .is_some_and(|at| at <= Instant::now())
        {
            self.open_tty();
        }
        let now = Instant::now();
        self.close_idle_clients(now);
        let limit = self.cfg.start_timeout;
        let late_ops = self.containers.refs_where(|c| {
            c.op.as_ref()
                .is_some_and(|op| op.kind.uses_slot() && now >= op.since + limit)
        });
        for r in late_ops {
            self.op_timed_out(r);
        }
        let late_execs = self
            .execs
            .refs_where(|e| e.status == Status::Creating && now >= e.since + limit);
        for e in late_execs {
            let err = self.timeout_error("exec");
            self.make_failed(ProcRef::Exec(e), err, true);
        }
        for r in self
            .calls
            .refs_where(|call| !call.timed_out && now >= call.since + limit)
        {
            if let Some(call) = self.calls.get_mut(r) {
                call.timed_out = true;
                let target = crate::server::effects::Target::Process(call.pid);
                self.fx.signal(target, rustix::process::Signal::KILL);
            }
        }
        self.watchdog_tick();
    }

    /// Closes the clients that have asked nothing for `--client-timeout`
    /// (a connection that sends nothing, or half a line, holds a place
    /// and memory): they are told so, if they still read.
    fn close_idle_clients(&mut self, now: Instant) {
        let timeout = self.cfg.client_timeout;
        let idle = self
            .clients
            .refs_where(|c| c.idle() && !c.tty && now >= c.last_active + timeout);
        for r in idle {
            self.metrics.clients_timed_out += 1;
            let e = Error::new(
                Code::Timeout,
                format!(
                    "no request for {} s (--client-timeout); closed",
                    timeout.as_secs()
                ),
            );
            self.close_quietly(r, &e);
        }
    }

    fn op_timed_out(&mut self, r: Ref) {
        let verb = match self
            .containers
            .get(r)
            .and_then(|c| c.op.as_ref())
            .map(|op| &op.kind)
        {
            Some(OpKind::Create { .. }) => "create",
            Some(OpKind::Start) => "start",
            _ => return,
        };
        let e = self.timeout_error(verb);
        if verb == "create" {
            return self.make_failed(ProcRef::Init(r), e, true);
        }
        // The shim's exit makes the container lost; it is then deleted
        // through the runtime, so nothing is left half-started.
        self.kill_shim(ProcRef::Init(r));
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        let client = c.op.take().and_then(|op| op.client);
        self.answer(client, Outcome::err(e));
    }

    pub(crate) fn timeout_error(&self, verb: &str) -> Error {
        let secs = self.cfg.start_timeout.as_secs();
        Error::new(
            Code::Timeout,
            format!(
                "runtime {verb} did not finish within {secs} s (--start-timeout); it was killed"
            ),
        )
    }
}
