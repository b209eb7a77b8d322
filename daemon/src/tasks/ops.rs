//! `pause`, `resume`, `update`: runtime calls whose success changes the
//! container; `stats` and `ps`: read from the container's cgroup files,
//! with no runtime process at all.

use crate::cgroup::stats::{read_pids, read_stats, Cgroups};
use crate::server::lifecycle::{Event, Status, Verb};
use crate::server::metrics::CallVerb;
use crate::server::Effects;
use crate::server::{Call, CallKind, Daemon, Outcome};
use crate::slab::Ref;
use crate::wire::event::Kind;
use crate::wire::proto::{Code, Error, Reply};
use crate::wire::{Resources, INIT};

use super::internal;
use nanoctr_shim::contract::container_dir;

impl<F: Effects> Daemon<F> {
    /// `pause ID` (`pause` true) or `resume ID`.
    pub(crate) fn pause(&mut self, client: Ref, id: &str, pause: bool) -> Result<Outcome, Error> {
        let (verb, call) = match pause {
            true => (Verb::Pause, CallVerb::Pause),
            false => (Verb::Resume, CallVerb::Resume),
        };
        let r = self.admit(id, verb)?;
        if !self.slot_free() {
            return Ok(Outcome::Stall);
        }
        let word = if pause { "pause" } else { "resume" };
        self.spawn_call(r, CallKind::Op { client, verb: call }, &[word, id])?;
        Ok(Outcome::Pending)
    }

    pub(crate) fn update(
        &mut self,
        client: Ref,
        id: &str,
        resources: &Resources,
    ) -> Result<Outcome, Error> {
        let r = self.admit(id, Verb::Update)?;
        if !self.slot_free() {
            return Ok(Outcome::Stall);
        }
        let flags = resources.args();
        let mut args: Vec<&str> = vec!["update"];
        args.extend(flags.iter().map(String::as_str));
        args.push(id);
        let verb = CallVerb::Update;
        self.spawn_call(r, CallKind::Op { client, verb }, &args)?;
        Ok(Outcome::Pending)
    }

    /// A `pause`, `resume`, `update` or `checkpoint` call has exited.
    pub(crate) fn op_done(&mut self, client: Ref, verb: CallVerb, call: &Call, code: i32) {
        self.metrics.call(verb, code == 0);
        let r = call.container;
        let id = self
            .containers
            .get(r)
            .map_or(String::new(), |c| c.id().to_string());
        if code != 0 {
            let word = match verb {
                CallVerb::Pause => "pause",
                CallVerb::Resume => "resume",
                CallVerb::Update => "update",
                _ => "checkpoint",
            };
            let mut e = self.call_failure(call, word, code);
            if let Some(dir) = &call.cleanup {
                // CRIU's own account is the one worth reading; it is kept
                // with the container, the half-written image is not.
                let log = self
                    .state
                    .container(&id)
                    .join(container_dir::CHECKPOINT_LOG.str);
                if std::fs::rename(dir.join("dump.log"), &log).is_ok()
                    || std::fs::copy(dir.join("dump.log"), &log).is_ok()
                {
                    e.message = format!("{} (CRIU's log: {})", e.message, log.display());
                }
                let _ = std::fs::remove_dir_all(dir);
            }
            return self.answer(Some(client), Outcome::err(e));
        }
        match verb {
            CallVerb::Pause => {
                self.apply(r, Event::Paused);
                self.emit(&id, Kind::Pause, &[]);
            }
            CallVerb::Resume => {
                self.apply(r, Event::Resumed);
                self.emit(&id, Kind::Resume, &[]);
            }
            CallVerb::Update => self.emit(&id, Kind::Update, &[]),
            _ => {}
        }
        self.answer(Some(client), Outcome::ok(&[]));
    }

    /// The container's cgroup, found through its init.
    fn cgroups(&self, id: &str) -> Result<(Ref, Cgroups), Error> {
        let r = self.admit(id, Verb::Inspect)?;
        let pid = self.containers.get(r).map_or(0, |c| c.init.pid);
        let cg = Cgroups::of(pid).ok_or_else(|| {
            Error::new(
                Code::State,
                format!("no cgroup found for container {id} (init pid {pid})"),
            )
        })?;
        Ok((r, cg))
    }

    /// `stats ID`: usage and limits, as `key=value` on the `OK` line.
    pub(crate) fn stats(&self, id: &str) -> Result<Outcome, Error> {
        let (_, cg) = self.cgroups(id)?;
        let pairs = read_stats(&cg).pairs();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Ok(Outcome::ok(&pairs))
    }

    /// `ps ID`: one `pid=N` line per process in the container's cgroup,
    /// with `proc=NAME` for the ones nanoctr started.
    pub(crate) fn ps(&self, id: &str) -> Result<Outcome, Error> {
        let (r, cg) = self.cgroups(id)?;
        let pids =
            read_pids(&cg).map_err(|e| internal(format!("reading the container's pids: {e}")))?;
        let mut named: Vec<(u32, &str)> = Vec::new();
        if let Some(c) = self.containers.get(r) {
            named.push((c.init.pid, INIT));
        }
        for e in self.execs_of(r) {
            if let Some(x) = self.execs.get(e).filter(|x| x.status == Status::Running) {
                named.push((x.process.pid, &x.name));
            }
        }
        let mut reply = Reply::new();
        for pid in &pids {
            let n = pid.to_string();
            match named.iter().find(|(p, _)| p == pid) {
                Some((_, name)) => reply.data(&[("pid", &n), ("proc", name)]),
                None => reply.data(&[("pid", &n)]),
            };
        }
        reply.ok(&[("count", &pids.len().to_string())]);
        Ok(Outcome::Reply(reply))
    }
}
