//! A container as the daemon holds it.

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use crate::cgroup::OomWatch;

use crate::lifecycle::Status;
use crate::proto::Error;
use crate::request::Spec;
use crate::runtime::Runtime;
use crate::shim::LineReader;
use crate::slab::Ref;

pub struct Container {
    pub spec: Spec,
    pub runtime: Runtime,
    /// Seconds since the epoch.
    pub created: u64,
    pub status: Status,
    /// The init's pid once created (0 before).
    pub pid: u32,
    pub exit_code: Option<i32>,
    pub shim_pid: u32,
    /// `<state-dir>/<id>/init`.
    pub proc_dir: PathBuf,
    /// Read end of `exit`; `None` once the shim is gone.
    pub exit: Option<File>,
    /// Startup pipe; `None` once the create result is in.
    pub startup: Option<LineReader>,
    /// Read end of `reply`; `None` once the shim is gone.
    pub reply: Option<LineReader>,
    /// The request being carried out, if any.
    pub op: Option<Op>,
    /// The watch on its memory cgroup's OOM kills, while it runs.
    pub oom: Option<OomWatch>,
    /// Its process has a terminal (a pty the shim holds).
    pub terminal: bool,
    /// The inotify watch on its process dir while clients follow its log.
    pub logs_watch: Option<i32>,
}

/// A request on a container that waits for a shim or a runtime call. At
/// most one runs per container; `client` gets the answer (if still there).
#[derive(Debug)]
pub struct Op {
    pub kind: OpKind,
    pub client: Option<Ref>,
    /// When the request came (for `run`, the create request).
    pub since: Instant,
}

impl Op {
    pub fn new(kind: OpKind, client: Option<Ref>) -> Op {
        Op {
            kind,
            client,
            since: Instant::now(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Waiting for the shim's `created`; `run` starts right after.
    Create { then_start: bool },
    /// Create failed: the runtime is cleaning up before the answer.
    Discard(Error),
    /// Waiting for the shim's answer to `start`.
    Start,
    /// The runtime is deleting the container; once its call is done
    /// (`awaiting_shim`), the shim must be gone too.
    Delete { awaiting_shim: bool },
}

impl OpKind {
    /// For `ERR busy`: what the container is doing.
    pub fn describe(&self) -> &'static str {
        match self {
            OpKind::Create { .. } => "being created",
            OpKind::Discard(_) => "being removed after a failed create",
            OpKind::Start => "being started",
            OpKind::Delete { .. } => "being deleted",
        }
    }

    /// Create and start are runtime calls made by the shim: they take one
    /// of the daemon's call slots while they run.
    pub fn uses_slot(&self) -> bool {
        matches!(self, OpKind::Create { .. } | OpKind::Start)
    }
}

impl Container {
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    pub fn log(&self) -> PathBuf {
        self.proc_dir.join("log.json")
    }

    pub fn shim_alive(&self) -> bool {
        self.exit.is_some()
    }

    /// SIGKILL to the shim's process group: the shim and any runtime call
    /// it is running (the container has a session of its own).
    pub fn kill_shim(&self) {
        if let Some(pgid) = rustix::process::Pid::from_raw(self.shim_pid as i32) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}
