//! `logs ID [PROC] [tail=N] [follow]`: the output a process's shim
//! captured (`output.1`, then `output`), and with `follow` what comes
//! after, line by line, until the process stops.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::inotify;

use crate::server::conn::{Busy, LogFollow};
use crate::server::container::ProcRef;
use crate::server::lifecycle::Verb;
use crate::server::Effects;
use crate::server::{Daemon, Outcome};
use crate::slab::Ref;
use crate::sys;
use crate::wire::proto::{Error, Reply};

use super::internal;
use crate::server::conn::MAX_LOGS_ANSWER;
use nanoctr_shim::contract::proc_dir;

/// A line longer than this is sent in pieces.
const MAX_LOG_LINE: usize = 4000;

impl<F: Effects> Daemon<F> {
    pub(crate) fn logs(
        &mut self,
        client: Ref,
        id: &str,
        proc: &str,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<Outcome, Error> {
        let (_, p) = self.admit_process(id, proc, Verb::State)?;
        let process = self
            .process(p)
            .ok_or_else(|| internal("process vanished"))?;
        let (dir, alive) = (process.dir.clone(), process.shim_alive());
        let mut text =
            read_tail(&dir.join(proc_dir::OUTPUT_OLD.str), MAX_LOGS_ANSWER).unwrap_or_default();
        let mut current = File::open(dir.join(proc_dir::OUTPUT.str)).ok();
        if let Some(f) = &mut current {
            let mut rest = Vec::new();
            if f.read_to_end(&mut rest).is_ok() {
                text.extend_from_slice(&rest);
            }
        }
        let cut = text.len().saturating_sub(MAX_LOGS_ANSWER as usize);
        text.drain(..cut);
        // Following, an unfinished last line waits for the rest of it.
        let following = follow && alive && current.is_some();
        if following {
            self.room_to_follow(client)?;
        }
        let partial = match (following, text.iter().rposition(|&b| b == b'\n')) {
            (true, Some(end)) => text.split_off(end + 1),
            (true, None) => std::mem::take(&mut text),
            (false, _) => Vec::new(),
        };
        let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        if text.last() == Some(&b'\n') || text.is_empty() {
            lines.pop();
        }
        let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
        let mut reply = Reply::new();
        for line in &lines[skip..] {
            push_line(&mut reply, line);
        }
        if !following {
            reply.ok(&[]);
            return Ok(Outcome::Reply(reply));
        }
        let file = current.ok_or_else(|| internal("output vanished"))?;
        let inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
        self.watch_logs(p, &dir)?;
        if let Some(cl) = self.clients.get_mut(client) {
            cl.output.extend_from_slice(reply.as_bytes());
            cl.busy = Some(Busy::Logs);
            cl.follow = Some(LogFollow {
                process: p,
                file,
                inode,
                partial,
            });
        }
        self.pump_logs(client);
        Ok(Outcome::Pending)
    }

    /// Watches the process dir, so followers hear of new output.
    fn watch_logs(&mut self, p: ProcRef, dir: &Path) -> Result<(), Error> {
        if self.process(p).is_some_and(|p| p.logs_watch.is_some()) {
            return Ok(());
        }
        let path = crate::store::statedir::c_path(dir).map_err(|e| internal(e.to_string()))?;
        let wd = inotify::add_watch(sys::fd(&self.inotify), &*path, inotify::WatchFlags::MODIFY)
            .map_err(|e| internal(format!("inotify: {e}")))?;
        if let Some(p) = self.process_mut(p) {
            p.logs_watch = Some(wd);
        }
        Ok(())
    }

    /// New output in a process dir: on to its followers.
    pub(crate) fn logs_changed(&mut self, p: ProcRef) {
        for client in self
            .clients
            .refs_where(|c| c.follow.as_ref().is_some_and(|f| f.process == p))
        {
            self.pump_logs(client);
        }
    }

    /// Sends a follower the whole lines written since it last read,
    /// reading on into a new `output` when the shim has rotated it.
    pub(crate) fn pump_logs(&mut self, client: Ref) {
        let Some(p) = self
            .clients
            .get(client)
            .and_then(|c| c.follow.as_ref())
            .map(|f| f.process)
        else {
            return;
        };
        let Some(dir) = self.process(p).map(|p| p.dir.clone()) else {
            return;
        };
        let Some(c) = self.clients.get_mut(client) else {
            return;
        };
        let Some(f) = c.follow.as_mut() else {
            return;
        };

        let mut reply = Reply::new();
        loop {
            let mut chunk = [0u8; 4096];
            match f.file.read(&mut chunk) {
                Ok(0) | Err(_) => {}
                Ok(n) => {
                    f.partial.extend_from_slice(&chunk[..n]);
                    while let Some(end) = f.partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = f.partial.drain(..=end).collect();
                        push_line(&mut reply, &line[..end]);
                    }
                    if f.partial.len() > MAX_LOG_LINE {
                        push_line(&mut reply, &std::mem::take(&mut f.partial));
                    }
                    continue;
                }
            }
            // At the end of this file: has `output` become a new one?
            match fs::metadata(dir.join(proc_dir::OUTPUT.str)) {
                Ok(m) if m.ino() != f.inode => match File::open(dir.join(proc_dir::OUTPUT.str)) {
                    Ok(new) => {
                        f.file = new;
                        f.inode = m.ino();
                    }
                    Err(_) => break,
                },
                _ => break,
            }
        }
        c.output.extend_from_slice(reply.as_bytes());
        if c.flush().is_err() || c.output.len() > crate::server::conn::MAX_PENDING_OUTPUT {
            return self.close_client(client);
        }
        self.settle(client);
    }

    /// The process stopped: its followers get what is left, then `OK`.
    pub(crate) fn end_logs(&mut self, p: ProcRef) {
        for client in self
            .clients
            .refs_where(|c| c.follow.as_ref().is_some_and(|f| f.process == p))
        {
            self.pump_logs(client);
            let Some(c) = self.clients.get_mut(client) else {
                continue;
            };
            let mut reply = Reply::new();
            if let Some(f) = c.follow.take().filter(|f| !f.partial.is_empty()) {
                push_line(&mut reply, &f.partial);
            }
            reply.ok(&[]);
            c.busy = None;
            self.answer(Some(client), Outcome::Reply(reply));
        }
        if let Some(wd) = self.process_mut(p).and_then(|p| p.logs_watch.take()) {
            let _ = inotify::remove_watch(sys::fd(&self.inotify), wd);
        }
    }
}

/// A line of the log as a data line; a terminal's `\r` before the newline
/// goes.
fn push_line(reply: &mut Reply, line: &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    reply.text(&String::from_utf8_lossy(line));
}

/// The last `max` bytes of a file.
fn read_tail(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let len = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}
