//! Where an epoll event comes from, packed into the event's 64 bits.

use crate::server::container::ProcRef;
use crate::slab::Ref;

/// Where an epoll event comes from; packed into the event's 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Listener,
    Signals,
    Client(Ref),
    /// A process's shim (a container's init, or an exec process): its
    /// startup pipe, `reply` and `exit`.
    Startup(ProcRef),
    Reply(ProcRef),
    Exit(ProcRef),
    /// A cgroup v1 OOM eventfd.
    Oom(Ref),
    /// The daemon's inotify descriptor (cgroup v2 `memory.events`).
    Inotify,
}

impl Source {
    pub(super) fn token(self) -> u64 {
        let (kind, r) = match self {
            Source::Listener => (1, None),
            Source::Signals => (2, None),
            Source::Client(r) => (3, Some(r)),
            Source::Startup(ProcRef::Init(r)) => (4, Some(r)),
            Source::Reply(ProcRef::Init(r)) => (5, Some(r)),
            Source::Exit(ProcRef::Init(r)) => (6, Some(r)),
            Source::Oom(r) => (7, Some(r)),
            Source::Inotify => (8, None),
            Source::Startup(ProcRef::Exec(r)) => (9, Some(r)),
            Source::Reply(ProcRef::Exec(r)) => (10, Some(r)),
            Source::Exit(ProcRef::Exec(r)) => (11, Some(r)),
        };
        let r = r.map_or(0, |r| u64::from(r.index) << 32 | u64::from(r.generation));
        kind << 56 | r
    }

    pub(super) fn from_token(t: u64) -> Option<Source> {
        let r = Ref {
            index: ((t >> 32) & 0x00ff_ffff) as u32,
            generation: t as u32,
        };
        Some(match t >> 56 {
            1 => Source::Listener,
            2 => Source::Signals,
            3 => Source::Client(r),
            4 => Source::Startup(ProcRef::Init(r)),
            5 => Source::Reply(ProcRef::Init(r)),
            6 => Source::Exit(ProcRef::Init(r)),
            7 => Source::Oom(r),
            8 => Source::Inotify,
            9 => Source::Startup(ProcRef::Exec(r)),
            10 => Source::Reply(ProcRef::Exec(r)),
            11 => Source::Exit(ProcRef::Exec(r)),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn tokens_round_trip() {
        let r = Ref {
            index: 0x00ab_cdef,
            generation: 0xdead_beef,
        };
        for s in [
            Source::Listener,
            Source::Signals,
            Source::Client(r),
            Source::Startup(ProcRef::Init(r)),
            Source::Reply(ProcRef::Init(r)),
            Source::Exit(ProcRef::Init(r)),
            Source::Oom(r),
            Source::Inotify,
            Source::Startup(ProcRef::Exec(r)),
            Source::Reply(ProcRef::Exec(r)),
            Source::Exit(ProcRef::Exec(r)),
        ] {
            assert_eq!(Source::from_token(s.token()), Some(s));
        }
        assert_eq!(Source::from_token(0), None);
    }
}
