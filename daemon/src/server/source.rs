//! Where an epoll event comes from, packed into the event's 64 bits.

use crate::slab::Ref;

/// Where an epoll event comes from; packed into the event's 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Listener,
    Signals,
    Client(Ref),
    Startup(Ref),
    Reply(Ref),
    Exit(Ref),
    /// A cgroup v1 OOM eventfd.
    Oom(Ref),
    /// The daemon's inotify descriptor (cgroup v2 `memory.events`).
    Inotify,
    /// An exec process's shim: its startup pipe, `reply`, `exit`.
    ExecStartup(Ref),
    ExecReply(Ref),
    ExecExit(Ref),
}

impl Source {
    pub(super) fn token(self) -> u64 {
        let (kind, r) = match self {
            Source::Listener => (1, None),
            Source::Signals => (2, None),
            Source::Client(r) => (3, Some(r)),
            Source::Startup(r) => (4, Some(r)),
            Source::Reply(r) => (5, Some(r)),
            Source::Exit(r) => (6, Some(r)),
            Source::Oom(r) => (7, Some(r)),
            Source::Inotify => (8, None),
            Source::ExecStartup(r) => (9, Some(r)),
            Source::ExecReply(r) => (10, Some(r)),
            Source::ExecExit(r) => (11, Some(r)),
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
            4 => Source::Startup(r),
            5 => Source::Reply(r),
            6 => Source::Exit(r),
            7 => Source::Oom(r),
            8 => Source::Inotify,
            9 => Source::ExecStartup(r),
            10 => Source::ExecReply(r),
            11 => Source::ExecExit(r),
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
            Source::Startup(r),
            Source::Reply(r),
            Source::Exit(r),
            Source::Oom(r),
            Source::Inotify,
            Source::ExecStartup(r),
            Source::ExecReply(r),
            Source::ExecExit(r),
        ] {
            assert_eq!(Source::from_token(s.token()), Some(s));
        }
        assert_eq!(Source::from_token(0), None);
    }
}
