//! `create` and `run`: prepare the state dir, start a shim, and wait for its
//! `created PID` (`process.rs` reads it; for `run`, go on to `start`).
//!
//! A failed create leaves nothing behind: the runtime is told to
//! `delete --force` whatever it may have made, an image rootfs is
//! unmounted, the state dir is removed, and only then does the client get
//! `ERR runtime` with the runtime's own message.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::bundle::json;
use crate::config::find_program;
use crate::server::container::{AfterCreate, Container, Creation, Op, OpKind, ProcRef, Process};
use crate::server::lifecycle::{Event, Status};
use crate::server::runtime::Runtime;
use crate::server::shim::{Make, ShimOptions};
use crate::server::Effects;
use crate::server::{CallKind, Daemon, Outcome};
use crate::slab::Ref;
use crate::store::record::Record;
use crate::wire::event::Kind;
use crate::wire::overlay::Overlay;
use crate::wire::proto::{refuse, Code, Error};
use crate::wire::Spec;

use super::{internal, io_refusal};
use nanoctr_shim::contract::container_dir;

impl<F: Effects> Daemon<F> {
    pub(crate) fn create(
        &mut self,
        client: Option<Ref>,
        spec: &Spec,
        how: &Creation,
    ) -> Result<Outcome, Error> {
        if self.find(&spec.id).is_some() {
            return refuse(Code::Exists, format!("container {} exists", spec.id));
        }
        if self.containers.is_full() {
            let n = self.cfg.max_containers;
            return refuse(
                Code::Full,
                format!("{n} containers exist already (--max-containers)"),
            );
        }
        let Checked {
            config,
            image,
            terminal,
            bundle_terminal,
            runtime,
        } = self.check_new(spec, None)?;
        if !self.slot_free() {
            return Ok(Outcome::Stall);
        }
        let proc = self.state.prepare(&spec.id).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => {
                Error::new(Code::Exists, format!("{} exists in the state dir", spec.id))
            }
            _ => internal(format!("state dir: {e}")),
        })?;
        // The record keeps the terminal as resolved, for a restarted daemon.
        let spec = &Spec {
            terminal: Some(terminal),
            ..spec.clone()
        };
        let record = Record {
            spec: spec.clone(),
            runtime: runtime.path.clone(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            restarts: 0,
            streak: 0,
            held: false,
            image: image.clone(),
        };
        let record_line = record.encode();
        let dir = self.state.container(&spec.id);
        let made = (|| -> Result<_, Error> {
            let shim_failed = |e| io_refusal("cannot start the shim", &e);
            let record = dir.join(container_dir::RECORD.str);
            self.fx
                .write_file(&record, record_line.as_bytes())
                .map_err(shim_failed)?;
            super::update::make_lock(&dir).map_err(|e| io_refusal("update lock", &e))?;
            let (plan, net) = self.net_up(&dir, spec)?;
            let bundle = self.prepare_root(
                &dir,
                spec,
                &config,
                image.as_ref(),
                (terminal, bundle_terminal),
                &plan,
            )?;
            let make = match how {
                Creation::Create => Make::Create,
                // A terminal gets its size between create and start, so
                // that the process sees it from its first instruction.
                Creation::Run if terminal => Make::Create,
                Creation::Run => Make::Run,
                Creation::Restore(image) => Make::Restore(image),
            };
            let mut options = ShimOptions::init(spec, &runtime, &bundle, make);
            options.oom_score_adj = self.cfg.shim_oom_score_adj;
            let spawned = self
                .fx
                .spawn_shim(&self.cfg.shim, &proc, &options)
                .map_err(shim_failed)?;
            Ok((spawned, net))
        })();
        let (spawned, net) = match made {
            Ok(s) => s,
            Err(e) => {
                let _ = self.remove_state(&spec.id);
                return Err(e);
            }
        };
        let next = match how {
            Creation::Create => AfterCreate::Answer,
            Creation::Run if terminal => AfterCreate::Start,
            Creation::Run | Creation::Restore(_) => AfterCreate::AwaitStarted,
        };
        let mut init = Process::new(proc, terminal, spec.interactive);
        init.adopt_shim(spawned);
        let container = Container {
            spec: spec.clone(),
            runtime,
            created: record.created,
            status: Status::Creating,
            init,
            op: Some(Op::new(OpKind::Create { next }, client)),
            oom: None,
            sup: Default::default(),
            image,
            health: super::health::check_of(spec, &config).map(super::health::Health::new),
            update: None,
            net,
        };
        let on_bridge = container.net.is_some();
        let Ok(r) = self.containers.insert(container) else {
            return Err(internal("container table full"));
        };
        if on_bridge {
            self.net_changed();
        }
        if let Err(e) = self.watch_shim(ProcRef::Init(r)) {
            self.make_failed(ProcRef::Init(r), internal(format!("epoll: {e}")), true);
        }
        Ok(Outcome::Pending)
    }

    /// Checks what a new container (or a new version of `current`, whose
    /// runtime it keeps unless the spec names one) would be made from,
    /// before anything is made.
    pub(crate) fn check_new(
        &self,
        spec: &Spec,
        current: Option<&Runtime>,
    ) -> Result<Checked, Error> {
        let config = crate::bundle::bundle_config(&spec.bundle)?;
        self.check_net(spec)?;
        let image = crate::rootfs::detect(&spec.bundle, &config)?;
        crate::rootfs::check_overlay(image.as_ref(), spec.overlay.as_ref(), self.state.root())?;
        for (what, path, may_create) in [
            ("stdin", &spec.stdin, false),
            ("stdout", &spec.stdout, true),
            ("stderr", &spec.stderr, true),
        ] {
            if let Some(path) = path {
                crate::files::check_stdio(what, path, self.state.root(), may_create)?;
            }
        }
        let bundle_terminal =
            json::find(&config, &["process", "terminal"]).is_some_and(|r| &config[r] == b"true");
        let terminal = spec.terminal.unwrap_or(bundle_terminal);
        if terminal && (spec.stdin.is_some() || spec.stdout.is_some() || spec.stderr.is_some()) {
            return refuse(
                Code::Invalid,
                "the bundle asks for a terminal: a terminal container's stdio is its terminal (no stdin=, stdout=, stderr=)",
            );
        }
        let runtime = Runtime {
            path: match (&spec.runtime, current) {
                (Some(name), _) => find_program(name).ok_or_else(|| {
                    Error::new(Code::Invalid, format!("runtime {name} not found"))
                })?,
                (None, Some(current)) => current.path.clone(),
                (None, None) => self.cfg.runtime.clone(),
            },
            root: self.cfg.runtime_root.clone(),
        };
        Ok(Checked {
            config,
            image,
            terminal,
            bundle_terminal,
            runtime,
        })
    }

    /// Mounts an image rootfs in the container's dir, and writes the
    /// derived config a terminal other than the bundle's, or an image
    /// rootfs, needs (the bundle itself is never written to): the bundle
    /// dir the runtime gets.
    pub(crate) fn prepare_root(
        &mut self,
        dir: &std::path::Path,
        spec: &Spec,
        config: &[u8],
        image: Option<&crate::rootfs::Image>,
        (terminal, bundle_terminal): (bool, bool),
        plan: &super::net::NetPlan,
    ) -> Result<PathBuf, Error> {
        let root = match image {
            Some(image) => {
                let overlay = spec.overlay.as_ref().unwrap_or(&Overlay::DEFAULT);
                self.fx
                    .mount_rootfs(dir, image, overlay)
                    .map_err(|e| crate::rootfs::refusal(image, &e))?;
                Some(crate::rootfs::rootfs_of(dir))
            }
            None => None,
        };
        let mut files = Vec::new();
        let network = plan.network(&mut files);
        if terminal == bundle_terminal && root.is_none() && !network.changes() {
            return Ok(PathBuf::from(&spec.bundle));
        }
        let derived = dir.join(container_dir::BUNDLE.str);
        crate::bundle::config::derive(&spec.bundle, config, terminal, root.as_deref(), &network)
            .and_then(|text| {
                fs::create_dir_all(&derived)?;
                self.fx
                    .write_file(&derived.join(container_dir::CONFIG.str), &text)
            })
            .map_err(|e| io_refusal("cannot start the shim", &e))?;
        Ok(derived)
    }

    /// The runtime made the container's init (see `process.rs`): the
    /// container is created, and its operation goes on as it asks.
    pub(crate) fn init_made(&mut self, r: Ref, pid: u32) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        let op = c.op.take();
        let id = c.id().to_string();
        self.apply(r, Event::Created);
        self.emit(&id, Kind::Create, &[("pid", &pid.to_string())]);
        self.watch_oom(r, pid);
        let Some(Op {
            kind: OpKind::Create { next },
            client,
            since,
        }) = op
        else {
            return;
        };
        match next {
            AfterCreate::Answer => {
                self.answer(client, Outcome::ok(&[("pid", &pid.to_string())]));
            }
            AfterCreate::Start => {
                if let Err(e) = self.begin_start(r, client, since) {
                    self.answer(client, Outcome::err(e));
                }
            }
            AfterCreate::AwaitStarted => {
                if let Some(c) = self.containers.get_mut(r) {
                    c.op = Some(Op {
                        kind: OpKind::Start,
                        client,
                        since,
                    });
                }
            }
        }
    }

    /// Ends a create that did not succeed (see `process.rs`): stop
    /// watching the shim, let the runtime delete what it made, then
    /// [`Daemon::discard`].
    pub(crate) fn create_failed(&mut self, r: Ref, error: Error) {
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        c.init.startup = None;
        c.init.reply = None;
        c.init.exit = None;
        let client = c.op.take().and_then(|op| op.client);
        let id = c.id().to_string();
        let error = self.with_cni_error(&id, error);
        let Some(c) = self.containers.get_mut(r) else {
            return;
        };
        c.op = Some(Op::new(OpKind::Discard(error), client));
        if self
            .spawn_call(r, CallKind::Delete, &["delete", "--force", &id])
            .is_err()
        {
            self.discard(r);
        }
    }

    /// Removes a container that failed to be created, and answers.
    pub(crate) fn discard(&mut self, r: Ref) {
        if let Some(c) = self.containers.get_mut(r).filter(|c| c.sup.respawning) {
            if let Some(Op {
                kind: OpKind::Discard(error),
                ..
            }) = c.op.take()
            {
                return self.respawn_failed(r, &error);
            }
        }
        let Some(c) = self.containers.remove(r) else {
            return;
        };
        let _ = self.remove_state(c.id());
        if let Some(u) = &c.update {
            // A first install that was not made: nothing to keep.
            let _ = crate::store::update::Updates::new(&self.cfg.update_dir).remove(c.id());
            if let Some(Op {
                kind: OpKind::Discard(error),
                ..
            }) = &c.op
            {
                self.answer(u.client, Outcome::err(error.clone()));
            }
        }
        let not_created = Error::new(
            Code::NotFound,
            format!("container {} was not created", c.id()),
        );
        for w in self.waiters(ProcRef::Init(r)) {
            self.answer(Some(w), Outcome::err(not_created.clone()));
        }
        if let Some(Op {
            kind: OpKind::Discard(error),
            client,
            ..
        }) = c.op
        {
            self.answer(client, Outcome::err(error));
        }
    }
}

/// What [`Daemon::check_new`] found.
pub(crate) struct Checked {
    pub config: Vec<u8>,
    pub image: Option<crate::rootfs::Image>,
    /// As it will be, and as the bundle says.
    pub terminal: bool,
    pub bundle_terminal: bool,
    pub runtime: Runtime,
}
