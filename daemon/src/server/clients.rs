//! The client table: reading request lines, running them, queueing the
//! answers, places for requests and for followers, and closing clients
//! that left, idled, or must make room.

use std::io;
use std::time::Instant;

use rustix::event::epoll::{self, EventData, EventFlags};

use super::conn::{Busy, Line, Role, MAX_PENDING_OUTPUT};
use super::container::ProcRef;
use super::control_tty::TTY_REOPEN;
use super::source::Source;
use super::{Daemon, Outcome};
use crate::server::Effects;
use crate::slab::Ref;
use crate::sys;
use crate::wire::proto::{split_words, Code, Error, Reply};
use crate::wire::Request;

impl<F: Effects> Daemon<F> {
    /// How many clients hold a place of this kind.
    pub(crate) fn count(&self, role: Role) -> usize {
        self.clients
            .iter()
            .filter(|(_, c)| c.role() == role)
            .count()
    }

    /// The quiet client (connected to ask, nothing asked, nothing owed)
    /// idle longest.
    pub(super) fn longest_quiet(&self) -> Option<Ref> {
        self.clients
            .iter()
            .filter(|(_, c)| c.role() == Role::Request && c.quiet() && !c.hung_up)
            .min_by_key(|(_, c)| c.last_active)
            .map(|(r, _)| r)
    }

    /// Closes a quiet client to make room for a new one, telling it why.
    pub(super) fn make_room(&mut self, r: Ref) {
        let n = self.cfg.max_clients;
        self.metrics.clients_made_room += 1;
        self.close_quietly(
            r,
            &Error::new(
                Code::Busy,
                format!("closed to make room for a new client: {n} were connected (--max-clients) and this one was idle longest"),
            ),
        );
    }

    /// Closes a client that asked nothing and is owed nothing, with a last
    /// line saying why (best effort: it may not be reading).
    pub(crate) fn close_quietly(&mut self, r: Ref, why: &Error) {
        if let Some(c) = self.clients.get_mut(r) {
            let mut reply = Reply::new();
            reply.err(why);
            c.output.extend_from_slice(reply.as_bytes());
            let _ = c.flush();
        }
        self.close_client(r);
    }

    /// A client is about to follow (`wait`, `events`, `logs follow`): is
    /// there a follower's place for it? The control tty always has its own.
    pub(crate) fn room_to_follow(&mut self, client: Ref) -> Result<(), Error> {
        let tty = self.clients.get(client).is_some_and(|c| c.tty);
        if tty || self.count(Role::Follower) < self.cfg.max_followers {
            return Ok(());
        }
        self.metrics.followers_refused += 1;
        Err(Error::new(
            Code::Full,
            format!(
                "{} clients are waiting or following already (--max-followers); wait, events and logs follow each take one",
                self.cfg.max_followers
            ),
        ))
    }

    pub(super) fn on_client(&mut self, r: Ref, flags: EventFlags) {
        let Some(c) = self.clients.get_mut(r) else {
            return;
        };
        if c.tty && flags.intersects(EventFlags::ERR | EventFlags::HUP) {
            // The line is gone (hung up, or the device went away): it is
            // opened again after a while.
            return self.close_client(r);
        }
        if flags.intersects(EventFlags::ERR | EventFlags::HUP) {
            // Gone for good. Requests it sent before leaving still run (a
            // request that arrived is never lost); waiting on its behalf
            // is pointless, and the socket, which would report HUP
            // forever, is no longer watched.
            c.hung_up = true;
            if c.following() {
                c.busy = None;
                c.subscription = None;
                c.follow = None;
            }
            let _ = epoll::delete(&self.epoll, sys::fd(&c.stream));
        } else if flags.contains(EventFlags::OUT) {
            if c.subscription.is_some() {
                return self.pump(r);
            }
            if c.flush().is_err() {
                return self.close_client(r);
            }
        }
        if flags.contains(EventFlags::IN) && !self.read_client(r) {
            return self.close_client(r);
        }
        self.run_lines(r);
    }

    /// Reads once into the client's line buffer. False on a read error;
    /// EOF marks the client as having left.
    pub(super) fn read_client(&mut self, r: Ref) -> bool {
        let Some(c) = self.clients.get_mut(r) else {
            return false;
        };
        if !c.idle() || c.eof {
            return true;
        }
        match c.input.fill(&mut c.stream) {
            Ok(0) if !c.input.is_full() && !c.tty => c.eof = true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.eof |= c.hung_up,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
        true
    }

    /// Runs the client's complete request lines until one has to wait.
    pub(super) fn run_lines(&mut self, r: Ref) {
        loop {
            let Some(c) = self.clients.get_mut(r) else {
                return;
            };
            if !c.idle() {
                break;
            }
            let Some(line) = c
                .input
                .next_line()
                .inspect(|_| c.last_active = Instant::now())
            else {
                // A client that hung up is no longer watched: read on here
                // until what it sent is used up (or the read fails: a peer
                // that left unread data behind resets the connection).
                if c.hung_up && !c.eof {
                    if !self.read_client(r) {
                        return self.close_client(r);
                    }
                    continue;
                }
                break;
            };

            let outcome = match line {
                Line::TooLong => Outcome::err(Error::new(
                    Code::TooLong,
                    format!("request longer than {} bytes", crate::wire::proto::MAX_LINE),
                )),
                Line::Complete(line) => match split_words(&line) {
                    Ok(words) if words.is_empty() => continue,
                    Ok(words) => match Request::parse(&words) {
                        Ok(req) => self.execute(r, req),
                        Err(e) => Outcome::err(e),
                    },
                    Err(e) => Outcome::err(e),
                },
            };
            self.send(r, outcome);
        }
        self.settle(r);
    }

    /// Queues an answer; `Pending` marks the client busy instead.
    pub(super) fn send(&mut self, r: Ref, outcome: Outcome) {
        let Some(c) = self.clients.get_mut(r) else {
            return;
        };
        match outcome {
            Outcome::Reply(_) if c.hung_up => {}
            Outcome::Reply(reply) => {
                c.output.extend_from_slice(reply.as_bytes());
                if c.flush().is_err() || c.output.len() > MAX_PENDING_OUTPUT {
                    self.close_client(r);
                }
            }
            Outcome::Pending => {
                if c.busy.is_none() {
                    c.busy = Some(Busy::Op);
                }
            }
            Outcome::Stall => {}
        }
    }

    /// Answers a client that was waiting; its next lines run after the
    /// current event is handled.
    pub(crate) fn answer(&mut self, client: Option<Ref>, outcome: Outcome) {
        let Some(r) = client else {
            return;
        };
        let Some(c) = self.clients.get_mut(r) else {
            return;
        };
        c.busy = None;
        c.last_active = Instant::now();
        self.send(r, outcome);
        self.ready.push(r);
    }

    /// Marks a client as waiting for a process's exit.
    pub(crate) fn await_exit(&mut self, client: Ref, p: ProcRef) {
        if let Some(c) = self.clients.get_mut(client) {
            c.busy = Some(Busy::Wait(p));
        }
    }

    /// Clients waiting for a process to exit.
    pub(crate) fn waiters(&self, p: ProcRef) -> Vec<Ref> {
        self.clients.refs_where(|c| c.busy == Some(Busy::Wait(p)))
    }

    /// Brings the client's epoll interest up to date, or closes it when it
    /// is finished.
    pub(crate) fn settle(&mut self, r: Ref) {
        let Some(c) = self.clients.get_mut(r) else {
            return;
        };
        if c.finished() {
            return self.close_client(r);
        }
        let want = c.wanted_interest();
        if want == c.interest || c.hung_up {
            return;
        }
        let token = EventData::new_u64(Source::Client(r).token());
        match epoll::modify(&self.epoll, sys::fd(&c.stream), token, want) {
            Ok(()) => c.interest = want,
            Err(_) => self.close_client(r),
        }
    }

    pub(crate) fn close_client(&mut self, r: Ref) {
        if let Some(c) = self.clients.remove(r) {
            let _ = epoll::delete(&self.epoll, sys::fd(&c.stream));
            self.stalled.retain(|&s| s != r);
            self.listen_while_room();
            if c.tty {
                if let Some(t) = &mut self.tty {
                    t.client = None;
                    t.reopen_at = Some(std::time::Instant::now() + TTY_REOPEN);
                }
            }
        }
    }

    /// Answers every request received and not yet answered, read or still
    /// unread, with `ERR busy`, so no client is left without an answer or
    /// finds its connection reset.
    pub(super) fn shut_down(&mut self) {
        let _ = std::fs::remove_file(&self.cfg.socket);
        for r in self.clients.refs_where(|_| true) {
            if !self.read_client(r) {
                continue;
            }
            let Some(c) = self.clients.get_mut(r) else {
                continue;
            };
            let waiting = !c.idle() || c.input.next_line().is_some();
            c.busy = None;
            c.stalled = None;
            c.subscription = None;
            c.follow = None;
            if waiting {
                let e = Error::new(Code::Busy, "daemon is stopping; containers keep running");
                self.send(r, Outcome::err(e));
            }
        }
    }
}
