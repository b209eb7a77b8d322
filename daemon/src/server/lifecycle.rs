//! A container's lifecycle: one enum of states, one of events, one `match`
//! of transitions, and the table of which requests each state admits.

use crate::wire::proto::{Code, Error};

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The shim is running `<runtime> create`. Not shown by `list`, and
    /// `state` answers `ERR busy`, until the create has succeeded.
    Creating,
    /// Created by the runtime; its init waits for `start`.
    Created,
    Running,
    Paused,
    /// The init has exited; its exit code is known.
    Stopped,
    /// The shim went away without recording an exit status.
    Unknown,
}

impl Status {
    /// The word `list` and `state` show.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
            Status::Unknown => "unknown",
        }
    }

    /// True while the container's init may be alive.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
}

/// What happens to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The shim reported `created PID`.
    Created,
    /// The shim reported `started`.
    Started,
    /// The shim exited after writing `exitStatus`.
    Exited,
    /// The shim exited without an `exitStatus`.
    ShimLost,
    /// The runtime paused the container.
    Paused,
    /// The runtime resumed it.
    Resumed,
    /// Its restart policy makes it again.
    Restarting,
}

/// The state after `event` in `status`, or `None` when the event cannot
/// happen there (the caller keeps the old state and says so).
pub fn transition(status: Status, event: Event) -> Option<Status> {
    use Event as E;
    use Status as S;
    match (status, event) {
        (S::Creating, E::Created) => Some(S::Created),
        (S::Created, E::Started) => Some(S::Running),
        // The init can exit before the shim's `started` is read.
        (S::Stopped, E::Started) => Some(S::Stopped),
        (S::Creating | S::Created | S::Running | S::Paused, E::Exited) => Some(S::Stopped),
        (S::Creating | S::Created | S::Running | S::Paused, E::ShimLost) => Some(S::Unknown),
        (S::Running, E::Paused) => Some(S::Paused),
        (S::Paused, E::Resumed) => Some(S::Running),
        (S::Stopped | S::Unknown, E::Restarting) => Some(S::Creating),
        _ => None,
    }
}

/// A request that acts on an existing container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Kill,
    Delete {
        force: bool,
    },
    Wait,
    State,
    /// `attach`, `resize`, `closestdin`: the process's shim must be there.
    Console,
    Pause,
    Resume,
    /// `update`: a live container's limits.
    Update,
    /// `exec`: a new process needs a running container.
    Exec,
    /// `stats`, `ps`: read from a live container's cgroup.
    Inspect,
    Checkpoint,
}

/// Whether `status` admits `verb`; the refusal says why.
pub fn admits(status: Status, verb: Verb) -> Result<(), Error> {
    use Status as S;
    use Verb as V;
    let refuse = |code, why: &str| Err(Error::new(code, format!("container {why}")));
    match (status, verb) {
        (S::Creating, V::Wait) => Ok(()),
        (S::Creating, _) => refuse(Code::Busy, "is being created"),
        (S::Created, V::Start) => Ok(()),
        (_, V::Start) => refuse(Code::State, &format!("is {}, not created", status.as_str())),
        (S::Created | S::Running | S::Paused, V::Kill) => Ok(()),
        (_, V::Kill) => refuse(Code::State, &format!("is {}", status.as_str())),
        (S::Running | S::Paused, V::Delete { force: false }) => refuse(
            Code::State,
            &format!(
                "is {}; stop it first or use delete ID force",
                status.as_str()
            ),
        ),
        (_, V::Delete { .. }) => Ok(()),
        (S::Unknown, V::Wait) => refuse(Code::State, "status is unknown: its shim was lost"),
        (_, V::Wait | V::State) => Ok(()),
        (S::Created | S::Running | S::Paused, V::Console | V::Update | V::Inspect) => Ok(()),
        (_, V::Console | V::Update | V::Inspect) => {
            refuse(Code::State, &format!("is {}", status.as_str()))
        }
        (S::Running, V::Pause | V::Exec) | (S::Paused, V::Resume) => Ok(()),
        (_, V::Pause | V::Exec) => {
            refuse(Code::State, &format!("is {}, not running", status.as_str()))
        }
        (_, V::Resume) => refuse(Code::State, &format!("is {}, not paused", status.as_str())),
        (S::Running | S::Paused, V::Checkpoint) => Ok(()),
        (_, V::Checkpoint) => refuse(
            Code::State,
            &format!(
                "is {}: only a live process can be checkpointed",
                status.as_str()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use Status as S;

    const ALL: [Status; 6] = [
        S::Creating,
        S::Created,
        S::Running,
        S::Paused,
        S::Stopped,
        S::Unknown,
    ];

    #[test]
    fn normal_life() {
        let mut s = S::Creating;
        for (e, expect) in [
            (E::Created, S::Created),
            (E::Started, S::Running),
            (E::Exited, S::Stopped),
        ] {
            s = transition(s, e).unwrap();
            assert_eq!(s, expect);
        }
    }

    #[test]
    fn exits_from_every_live_state() {
        for s in [S::Creating, S::Created, S::Running, S::Paused] {
            assert_eq!(transition(s, E::Exited), Some(S::Stopped));
            assert_eq!(transition(s, E::ShimLost), Some(S::Unknown));
        }
        for s in [S::Stopped, S::Unknown] {
            assert_eq!(transition(s, E::Exited), None);
            assert_eq!(transition(s, E::Created), None);
        }
    }

    #[test]
    fn late_started_keeps_stopped() {
        assert_eq!(transition(S::Stopped, E::Started), Some(S::Stopped));
        assert_eq!(transition(S::Running, E::Started), None);
        assert_eq!(transition(S::Unknown, E::Started), None);
    }

    #[test]
    fn start_only_when_created() {
        for s in ALL {
            let r = admits(s, Verb::Start);
            match s {
                S::Created => assert!(r.is_ok()),
                S::Creating => assert_eq!(r.unwrap_err().code, Code::Busy),
                _ => assert_eq!(r.unwrap_err().code, Code::State),
            }
        }
    }

    #[test]
    fn delete_running_needs_force() {
        for s in [S::Running, S::Paused] {
            assert_eq!(
                admits(s, Verb::Delete { force: false }).unwrap_err().code,
                Code::State
            );
            assert!(admits(s, Verb::Delete { force: true }).is_ok());
        }
        for s in [S::Created, S::Stopped, S::Unknown] {
            assert!(admits(s, Verb::Delete { force: false }).is_ok());
        }
        assert_eq!(
            admits(S::Creating, Verb::Delete { force: true })
                .unwrap_err()
                .code,
            Code::Busy
        );
    }

    #[test]
    fn pause_resume_exec_and_inspection() {
        assert_eq!(transition(S::Running, E::Paused), Some(S::Paused));
        assert_eq!(transition(S::Paused, E::Resumed), Some(S::Running));
        assert_eq!(transition(S::Created, E::Paused), None);
        assert_eq!(transition(S::Paused, E::Exited), Some(S::Stopped));
        for s in ALL {
            let only = |verb, wanted: &[Status]| {
                let r = admits(s, verb);
                assert_eq!(r.is_ok(), wanted.contains(&s), "{verb:?} in {s:?}");
                if let Err(e) = r {
                    let busy = s == S::Creating;
                    assert_eq!(e.code, if busy { Code::Busy } else { Code::State });
                }
            };
            only(Verb::Pause, &[S::Running]);
            only(Verb::Exec, &[S::Running]);
            only(Verb::Resume, &[S::Paused]);
            only(Verb::Checkpoint, &[S::Running, S::Paused]);
            only(Verb::Update, &[S::Created, S::Running, S::Paused]);
            only(Verb::Inspect, &[S::Created, S::Running, S::Paused]);
        }
    }

    #[test]
    fn kill_and_wait() {
        for s in ALL {
            assert_eq!(admits(s, Verb::Kill).is_ok(), s.is_live(), "{s:?}");
        }
        assert!(admits(S::Stopped, Verb::Wait).is_ok());
        assert_eq!(
            admits(S::Unknown, Verb::Wait).unwrap_err().code,
            Code::State
        );
        for s in ALL {
            assert_eq!(admits(s, Verb::State).is_ok(), s != S::Creating);
        }
        assert!(admits(S::Creating, Verb::Wait).is_ok());
    }
}
