//! `events`: replay retained events, then follow new ones. And `emit`,
//! which records an event and hands it to every subscriber.

use rustix::net::sockopt;

use crate::server::conn::{Busy, Subscription};
use crate::server::Effects;
use crate::server::{Daemon, Outcome};
use crate::slab::Ref;
use crate::sys;
use crate::wire::event::{Filter, Kind};
use crate::wire::proto::Error;

/// A subscriber's kernel send buffer: small, so one that stops reading is
/// noticed after a few events rather than after a few hundred kilobytes.
const SUBSCRIBER_SNDBUF: usize = 8 * 1024;

impl<F: Effects> Daemon<F> {
    pub(crate) fn subscribe(&mut self, client: Ref, filter: &Filter) -> Result<Outcome, Error> {
        self.room_to_follow(client)?;
        // Replay starts at the oldest retained event at the earliest.
        let next = filter.since.map_or(self.events.next_seq(), |s| {
            s.saturating_add(1).max(self.events.oldest_seq())
        });
        let Some(c) = self.clients.get_mut(client) else {
            return Ok(Outcome::Pending);
        };
        let _ = sockopt::set_socket_send_buffer_size(sys::fd(&c.stream), SUBSCRIBER_SNDBUF);
        c.subscription = Some(Subscription {
            filter: filter.clone(),
            next,
        });
        c.busy = Some(Busy::Events);
        self.pump(client);
        Ok(Outcome::Pending)
    }

    /// Records an event, counts it, and passes it on to subscribers.
    pub(crate) fn emit(&mut self, id: &str, kind: Kind, extra: &[(&str, &str)]) {
        let (_, written) = self.events.emit(id, kind, extra);
        self.metrics.events += 1;
        if written.is_err() {
            self.metrics.event_log_errors += 1;
        }
        let oldest = self.events.oldest_seq();
        for r in self.clients.refs_where(|c| c.subscription.is_some()) {
            match self.clients.get(r).and_then(|c| c.subscription.as_ref()) {
                Some(sub) if sub.next < oldest => self.overflow(r, sub.next),
                Some(_) => self.pump(r),
                None => {}
            }
        }
    }

    /// Writes the subscriber's next events until its socket is full or it
    /// has them all.
    pub(crate) fn pump(&mut self, r: Ref) {
        loop {
            let Some(c) = self.clients.get_mut(r) else {
                return;
            };
            if c.flush().is_err() {
                return self.close_client(r);
            }
            if !c.output.is_empty() {
                break;
            }
            let Some(sub) = c.subscription.as_mut() else {
                break;
            };
            match self.events.next_match(sub.next, &sub.filter) {
                Some(e) => {
                    sub.next = e.seq + 1;
                    c.output.extend_from_slice(e.line().as_bytes());
                }
                None => {
                    sub.next = self.events.next_seq();
                    break;
                }
            }
        }
        self.settle(r);
    }

    /// Cuts off a subscriber that fell out of the retained window: it gets
    /// `EVENT type=overflow next=SEQ` after what it has been sent, and the
    /// connection closes, so it can come back with `since=SEQ-1`.
    fn overflow(&mut self, r: Ref, next: u64) {
        let Some(c) = self.clients.get_mut(r) else {
            return;
        };
        c.subscription = None;
        c.busy = None;
        c.eof = true;
        c.output
            .extend_from_slice(format!("EVENT type=overflow next={next}\n").as_bytes());
        if c.flush().is_err() {
            return self.close_client(r);
        }
        self.settle(r);
    }
}
