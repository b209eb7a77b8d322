//! The listening socket: binding it (a stale socket replaced, a live
//! daemon's left alone), taking clients while there is room, and turning
//! away, with an answer, those that may not or cannot be served (peer
//! credentials, no descriptor left).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use rustix::event::epoll::{self, EventData, EventFlags};

use super::conn::{Client, Role};
use super::source::Source;
use super::Daemon;
use crate::server::Effects;
use crate::sys;
use crate::wire::proto::{Code, Error, Reply};

/// Answers a connection that is turned away, without blocking, and drops
/// it.
fn refuse_connection(stream: &UnixStream, refusal: &Error) {
    let mut r = Reply::new();
    r.err(refusal);
    let _ = stream
        .set_nonblocking(true)
        .and_then(|()| io::Write::write_all(&mut &*stream, r.as_bytes()));
}

/// Is a daemon answering on `path`? A connect alone can succeed on the
/// socket of a dead daemon: a child it was starting when it was killed
/// holds the listening socket until that child's exec. Only an answer to
/// `hello` counts.
fn serving(path: &Path) -> bool {
    use std::io::{BufRead, BufReader, Write};
    let Ok(mut s) = UnixStream::connect(path) else {
        return false;
    };
    let limit = Some(std::time::Duration::from_secs(2));
    let _ = s
        .set_read_timeout(limit)
        .and_then(|()| s.set_write_timeout(limit));
    let mut answer = String::new();
    s.write_all(b"hello\n").is_ok()
        && BufReader::new(&s).read_line(&mut answer).is_ok()
        && answer.starts_with("OK nanoctr")
}

/// Binds the socket with mode 0600. A stale socket (nobody accepting) is
/// replaced; a live one or any other file is left alone.
pub(super) fn bind(path: &Path) -> Result<UnixListener, String> {
    let shown = path.display();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if serving(path) {
                return Err(format!("{shown}: another nanoctrd is serving it"));
            }
            std::fs::remove_file(path).map_err(|e| format!("{shown}: {e}"))?;
        }
        Ok(_) => return Err(format!("{shown} exists and is not a socket")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{shown}: {e}")),
    }
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    let listener = bound.map_err(|e| format!("bind {shown}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(listener)
}

impl<F: Effects> Daemon<F> {
    /// Takes new connections while there is room for them: a request
    /// place that is free, or one a quiet client gives up (the one idle
    /// longest is closed, and told why). What a new client sent with its
    /// connect is read and run at once, so it is answered before it could
    /// be the one to give way.
    pub(super) fn accept_clients(&mut self) {
        loop {
            let full = self.count(Role::Request) >= self.cfg.max_clients;
            if full && self.longest_quiet().is_none() {
                return self.listen_while_room();
            }
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    return self.refuse_for_lack_of_descriptors();
                }
                Err(_) => return,
            };
            if let Some(refusal) = self.refusal(&stream) {
                refuse_connection(&stream, &refusal);
                continue;
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if full {
                if let Some(quiet) = self.longest_quiet() {
                    self.make_room(quiet);
                }
            }
            let stream = std::fs::File::from(OwnedFd::from(stream));
            let r = match self.clients.insert(Client::new(stream, false)) {
                Ok(r) => r,
                Err(c) => {
                    let e = Error::new(Code::Busy, "the client table is full; try again");
                    let stream = UnixStream::from(OwnedFd::from(c.stream));
                    refuse_connection(&stream, &e);
                    continue;
                }
            };
            let Some(c) = self.clients.get_mut(r) else {
                continue;
            };
            c.interest = c.wanted_interest();
            let token = EventData::new_u64(Source::Client(r).token());
            if epoll::add(&self.epoll, sys::fd(&c.stream), token, c.interest).is_err() {
                self.clients.remove(r);
                continue;
            }
            self.on_client(r, EventFlags::IN);
        }
    }

    /// Out of descriptors: give the spare one up to accept the client and
    /// tell it so, then take the spare back.
    pub(super) fn refuse_for_lack_of_descriptors(&mut self) {
        self.spare = None;
        if let Ok((stream, _)) = self.listener.accept() {
            let e = Error::new(Code::Busy, "nanoctrd is out of file descriptors; try again");
            refuse_connection(&stream, &e);
        }
        self.spare = std::fs::File::open("/dev/null").ok();
    }

    /// Why a new connection is turned away, if it is.
    pub(super) fn refusal(&self, stream: &UnixStream) -> Option<Error> {
        let uid = match rustix::net::sockopt::socket_peercred(sys::fd(stream)) {
            Ok(cred) => cred.uid.as_raw(),
            Err(_) => return Some(Error::new(Code::Denied, "cannot read peer credentials")),
        };
        if uid != 0 && uid != self.own_uid {
            return Some(Error::new(
                Code::Denied,
                format!("uid {uid} may not use nanoctrd"),
            ));
        }
        None
    }

    /// Watches the listener only while a new client could be taken: a
    /// request place is free, or a quiet client would give one up. When
    /// every place is busy with a request, new connections wait in the
    /// kernel's listen backlog until one is answered: nobody is turned
    /// away, and a full table cannot spin the loop.
    pub(crate) fn listen_while_room(&mut self) {
        let want =
            self.count(Role::Request) < self.cfg.max_clients || self.longest_quiet().is_some();
        if want == self.listening {
            return;
        }
        let flags = if want {
            EventFlags::IN
        } else {
            EventFlags::empty()
        };
        let token = EventData::new_u64(Source::Listener.token());
        if epoll::modify(&self.epoll, sys::fd(&self.listener), token, flags).is_ok() {
            self.listening = want;
        }
    }
}
