//! OOM kills: a container's memory cgroup is watched from its create until
//! its exit; every kill the kernel counts becomes an `oom` event.

use crate::cgroup::oom::{Memcg, OomWatch, Watch};
use crate::server::container::ProcRef;
use crate::server::Effects;
use crate::server::{Daemon, Source};
use crate::slab::Ref;
use crate::wire::event::Kind;

impl<F: Effects> Daemon<F> {
    /// Starts watching the memory cgroup of the container's init. A
    /// container without one (no memory controller) is simply not watched.
    pub(crate) fn watch_oom(&mut self, r: Ref, pid: u32) {
        let Some(memcg) = Memcg::of(pid) else {
            return;
        };
        let Ok(watch) = OomWatch::start(&memcg, &self.inotify) else {
            return;
        };
        if let Watch::V1 { eventfd, .. } = &watch.how {
            let flags = rustix::event::epoll::EventFlags::IN;
            if self.watch(eventfd, Source::Oom(r), flags).is_err() {
                return;
            }
        }
        if let Some(c) = self.containers.get_mut(r) {
            c.oom = Some(watch);
        }
    }

    /// Emits `oom` if the container's cgroup counted new kills.
    pub(crate) fn check_oom(&mut self, r: Ref) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        let Some(watch) = c.oom.as_mut() else {
            return;
        };
        let kills = watch.new_kills();
        if kills > 0 {
            let id = c.id().to_string();
            self.emit(&id, Kind::Oom, &[("kills", &kills.to_string())]);
        }
    }

    pub(crate) fn stop_oom(&mut self, r: Ref) {
        if let Some(watch) = self.containers.get_mut(r).and_then(|c| c.oom.take()) {
            watch.stop(&self.inotify);
        }
    }

    /// The daemon's inotify descriptor is readable: cgroup v2 `memory.events`
    /// files changed, or the output of a container that clients follow.
    pub(crate) fn on_inotify(&mut self) {
        let mut buf = [std::mem::MaybeUninit::uninit(); 1024];
        let mut changed = Vec::new();
        let mut reader = rustix::fs::inotify::Reader::new(crate::sys::fd(&self.inotify), &mut buf);
        while let Ok(ev) = reader.next() {
            changed.push(ev.wd());
        }
        for wd in changed {
            let init = self
                .containers
                .iter()
                .find(|(_, c)| c.init.logs_watch == Some(wd))
                .map(|(r, _)| ProcRef::Init(r));
            let exec = self
                .execs
                .iter()
                .find(|(_, e)| e.process.logs_watch == Some(wd))
                .map(|(r, _)| ProcRef::Exec(r));
            if let Some(p) = init.or(exec) {
                self.logs_changed(p);
            }
            let owner = self.containers.iter().find_map(|(r, c)| {
                matches!(c.oom.as_ref().map(|w| &w.how), Some(Watch::V2 { wd: w }) if *w == wd)
                    .then_some(r)
            });
            if let Some(r) = owner {
                self.check_oom(r);
            }
        }
    }
}
