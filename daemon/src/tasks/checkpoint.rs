//! Checkpoints: `checkpoint` saves a live container's processes with the
//! runtime's `checkpoint` (CRIU underneath) into `DIR/NAME`, `restore`
//! makes a new container from one (its shim runs `<runtime> restore
//! --detach` in place of `create`), `checkpoints` lists them and
//! `checkpoint-delete` removes one. DIR is `BUNDLE/checkpoints` unless the
//! request says `dir=`, and is never in the state dir. An image is a
//! directory holding CRIU's `inventory.img`: nothing else is listed or
//! removed, so `dir=` cannot point these at any other directory.
//!
//! A checkpoint that fails leaves the container as it was (the runtime's
//! own guarantee: CRIU resumes what it froze) and removes what it wrote; a
//! restore that fails leaves nothing, as a failed create does.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::server::container::Creation;
use crate::server::lifecycle::Verb;
use crate::server::metrics::CallVerb;
use crate::server::Effects;
use crate::server::{CallKind, Daemon, Outcome};
use crate::slab::Ref;
use crate::wire::proto::{refuse, Code, Error, Reply};
use crate::wire::Spec;

use super::{internal, io_refusal};

impl<F: Effects> Daemon<F> {
    pub(crate) fn checkpoint(
        &mut self,
        client: Ref,
        id: &str,
        name: &str,
        exit: bool,
        dir: Option<&str>,
    ) -> Result<Outcome, Error> {
        let r = self.admit(id, Verb::Checkpoint)?;
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| internal("container vanished"))?;
        let image = self.checkpoint_dir(&c.spec.bundle, dir)?.join(name);
        if fs::symlink_metadata(&image).is_ok() {
            return refuse(
                Code::Exists,
                format!("checkpoint {} exists", image.display()),
            );
        }
        let terminal = c.init.terminal;
        if !self.slot_free() {
            return Ok(Outcome::Stall);
        }
        let image_arg = image.to_string_lossy().into_owned();
        let mut args = vec!["checkpoint", "--image-path", &image_arg];
        if !exit {
            args.push("--leave-running");
        }
        if terminal {
            // The container's terminal is the shim's pty, outside it.
            args.push("--shell-job");
        }
        args.push(id);
        let verb = CallVerb::Checkpoint;
        let call = self.spawn_call(r, CallKind::Op { client, verb }, &args)?;
        if let Some(call) = self.calls.get_mut(call) {
            call.cleanup = Some(image);
        }
        Ok(Outcome::Pending)
    }

    /// `restore ID BUNDLE checkpoint=NAME`: a new container, made from the
    /// checkpoint and running.
    pub(crate) fn restore_checkpoint(
        &mut self,
        client: Ref,
        spec: &Spec,
        name: &str,
        dir: Option<&str>,
    ) -> Result<Outcome, Error> {
        let image = self.checkpoint_dir(&spec.bundle, dir)?.join(name);
        if !image.is_dir() {
            return refuse(Code::NotFound, format!("no checkpoint {}", image.display()));
        }
        self.create(Some(client), spec, &Creation::Restore(image))
    }

    /// `checkpoints ID`: one `name=NAME` line per checkpoint.
    pub(crate) fn checkpoints(&self, id: &str, dir: Option<&str>) -> Result<Outcome, Error> {
        let base = self.checkpoint_base(id, dir)?;
        let mut names: Vec<String> = match fs::read_dir(&base) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .filter(|e| is_image(&e.path()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_refusal(&base.display().to_string(), &e)),
        };
        crate::slab::sort_small(&mut names, |a, b| a < b);
        let mut reply = Reply::new();
        for name in &names {
            reply.data(&[("name", name)]);
        }
        reply.ok(&[
            ("count", &names.len().to_string()),
            ("dir", &base.to_string_lossy()),
        ]);
        Ok(Outcome::Reply(reply))
    }

    pub(crate) fn checkpoint_delete(
        &self,
        id: &str,
        name: &str,
        dir: Option<&str>,
    ) -> Result<Outcome, Error> {
        let image = self.checkpoint_base(id, dir)?.join(name);
        if fs::symlink_metadata(&image).is_err() {
            return refuse(Code::NotFound, format!("no checkpoint {}", image.display()));
        }
        if !is_image(&image) {
            return refuse(
                Code::Invalid,
                format!(
                    "{} is not a checkpoint image (a directory with CRIU's {IMAGE_MARK}); not removed",
                    image.display()
                ),
            );
        }
        match fs::remove_dir_all(&image) {
            Ok(()) => Ok(Outcome::ok(&[])),
            Err(e) => Err(io_refusal(&image.display().to_string(), &e)),
        }
    }

    fn checkpoint_base(&self, id: &str, dir: Option<&str>) -> Result<PathBuf, Error> {
        let r = self.admit(id, Verb::State)?;
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| internal("container vanished"))?;
        self.checkpoint_dir(&c.spec.bundle, dir)
    }

    /// Where a bundle's checkpoints are kept: `dir`, or
    /// `BUNDLE/checkpoints`; never in the state dir, which is nanoctr's
    /// own.
    fn checkpoint_dir(&self, bundle: &str, dir: Option<&str>) -> Result<PathBuf, Error> {
        let base = match dir {
            Some(d) => PathBuf::from(d),
            None => Path::new(bundle).join("checkpoints"),
        };
        if crate::files::within(&base, self.state.root()) {
            return refuse(
                Code::Denied,
                format!(
                    "{} is in the state dir, which is nanoctr's own",
                    base.display()
                ),
            );
        }
        Ok(base)
    }
}

/// The file CRIU writes into every image it dumps.
const IMAGE_MARK: &str = "inventory.img";

/// A checkpoint image: a directory (not a link to one) holding CRIU's
/// [`IMAGE_MARK`]. `checkpoints` lists only these and `checkpoint-delete`
/// removes only these, so neither can be pointed at any other directory.
fn is_image(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        && fs::symlink_metadata(path.join(IMAGE_MARK)).is_ok_and(|m| m.is_file())
}
