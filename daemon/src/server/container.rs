//! A container as the daemon holds it.

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use crate::cgroup::oom::OomWatch;

use crate::server::lifecycle::Status;
use crate::server::runtime::Runtime;
use crate::server::shim::LineReader;
use crate::slab::Ref;
use crate::wire::proto::Error;
use crate::wire::Spec;
use nanoctr_shim::contract::proc_dir;

pub struct Container {
    pub spec: Spec,
    pub runtime: Runtime,
    /// Seconds since the epoch.
    pub created: u64,
    pub status: Status,
    /// The container's init and its shim.
    pub init: Process,
    /// The request being carried out, if any.
    pub op: Option<Op>,
    /// The watch on its memory cgroup's OOM kills, while it runs.
    pub oom: Option<OomWatch>,
    /// What its restart policy keeps track of.
    pub sup: Supervision,
    /// Its image rootfs, mounted in its dir from create to delete.
    pub image: Option<crate::rootfs::Image>,
    /// Its health check and what the probes found (`tasks/health.rs`).
    pub health: Option<crate::tasks::health::Health>,
    /// A swap or rollback under way, or one done and not committed
    /// (`tasks/update.rs`).
    pub update: Option<crate::tasks::update::Update>,
    /// Its place on a bridge (`tasks/net.rs`).
    pub net: Option<crate::tasks::net::OnBridge>,
}

/// What the restart policy knows of a container.
#[derive(Debug, Default, Clone, Copy)]
pub struct Supervision {
    /// Times it was made again: in all, and in the current row.
    pub restarts: u32,
    pub streak: u32,
    /// Stopped on purpose (`kill`): no restart.
    pub held: bool,
    /// A `kill` is on its way: an exit seen meanwhile is its doing.
    pub killing: bool,
    /// When the pending restart is due.
    pub due: Option<Instant>,
    /// When it last started running, for `--restart-window`.
    pub running_since: Option<Instant>,
    /// Its init is being made again: a failure leaves it stopped, to be
    /// tried again, instead of removing it as a failed create would.
    pub respawning: bool,
}

/// A process of a container (its init, or one added with `exec`) as its
/// shim supervises it in its process dir.
pub struct Process {
    /// The process's pid once the runtime has made it (0 before).
    pub pid: u32,
    pub exit_code: Option<i32>,
    pub shim_pid: u32,
    /// `<state-dir>/<id>/<proc>`.
    pub dir: PathBuf,
    /// Read end of `exit`; `None` once the shim is gone.
    pub exit: Option<File>,
    /// Startup pipe; `None` once the create result is in.
    pub startup: Option<LineReader>,
    /// Read end of `reply`; `None` once the shim is gone.
    pub reply: Option<LineReader>,
    /// It has a terminal (a pty the shim holds).
    pub terminal: bool,
    /// Its stdin is a pipe the shim feeds from attachers.
    pub interactive: bool,
    /// The inotify watch on its dir while clients follow its log.
    pub logs_watch: Option<i32>,
}

impl Process {
    /// A process whose shim is not (or no longer) watched.
    pub fn new(dir: PathBuf, terminal: bool, interactive: bool) -> Process {
        Process {
            pid: 0,
            exit_code: None,
            shim_pid: 0,
            dir,
            exit: None,
            startup: None,
            reply: None,
            terminal,
            interactive,
            logs_watch: None,
        }
    }

    /// Takes a newly started shim's ends.
    pub fn adopt_shim(&mut self, spawned: crate::server::shim::Spawned) {
        self.shim_pid = spawned.pid;
        self.exit = Some(spawned.exit);
        self.startup = Some(LineReader::new(spawned.startup));
        self.reply = Some(LineReader::new(spawned.reply));
    }

    /// The runtime's JSON log for calls about this process.
    pub fn log(&self) -> PathBuf {
        self.dir.join(proc_dir::RUNTIME_LOG.str)
    }

    pub fn shim_alive(&self) -> bool {
        self.exit.is_some()
    }

    /// Reads the `exit` fifo dry; true at EOF (no writer left: the shim is
    /// gone).
    pub fn exit_fifo_at_eof(&mut self) -> bool {
        let Some(fifo) = self.exit.as_mut() else {
            return false;
        };
        let mut buf = [0u8; 64];
        loop {
            match std::io::Read::read(fifo, &mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// A process the daemon can address: a container's init (by the
/// container's ref) or an exec process (by its ref in the exec table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcRef {
    Init(Ref),
    Exec(Ref),
}

/// An extra process of a running container (`exec`), with its own shim.
pub struct Exec {
    /// Its container.
    pub container: Ref,
    /// Its name (`PROC`).
    pub name: String,
    /// Creating (the runtime's `exec` is running), Running, Stopped, or
    /// Unknown (its shim was lost).
    pub status: Status,
    pub process: Process,
    /// The `exec` request waiting for the runtime's answer.
    pub client: Option<Ref>,
    /// When the request came, for its deadline.
    pub since: Instant,
    /// Its container's health probe (`tasks/health.rs`), not a user's.
    pub probe: bool,
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
    /// Waiting for the shim's `created`, then what `next` says.
    Create { next: AfterCreate },
    /// Create failed: the runtime is cleaning up before the answer.
    Discard(Error),
    /// Waiting for the shim's answer to `start`.
    Start,
    /// The runtime is deleting the container; once its call is done
    /// (`awaiting_shim`), the shim must be gone too.
    Delete { awaiting_shim: bool },
}

/// What follows a successful create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCreate {
    /// The client gets its answer (`create`).
    Answer,
    /// The daemon starts the container (`run` of a terminal container,
    /// whose size is set in between).
    Start,
    /// The shim's runtime call started it too (`run`, `restore`): its
    /// `started` comes on `reply`.
    AwaitStarted,
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

    /// `ERR busy`, for a request that cannot overlap it.
    pub fn busy(&self) -> Error {
        let why = format!("container is busy ({})", self.describe());
        Error::new(crate::wire::proto::Code::Busy, why)
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

    /// Its `container` file as it should be now.
    pub fn record(&self) -> crate::store::record::Record {
        crate::store::record::Record {
            spec: self.spec.clone(),
            runtime: self.runtime.path.clone(),
            created: self.created,
            restarts: self.sup.restarts,
            streak: self.sup.streak,
            held: self.sup.held,
            image: self.image.clone(),
        }
    }
}

/// How a new container is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Creation {
    /// `create`: made, not started.
    Create,
    /// `run`: made and started.
    Run,
    /// `restore`: made from the checkpoint image in this dir, running.
    Restore(PathBuf),
}
