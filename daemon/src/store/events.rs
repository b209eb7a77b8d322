//! The event log: every state change is an event with a sequence number that
//! never goes back, also across daemon restarts.
//!
//! ```text
//! EVENT seq=42 time=1700000000 id=web type=exit status=0 proc=init
//! ```
//!
//! The last `--retain` events are kept in memory for replay (`events
//! since=SEQ`) and on disk in the state dir, in two segment files of at most
//! `retain` records each (`.events.0`, `.events.1`; a container id cannot
//! start with a dot). Records are appended one whole line per write; when
//! the current segment is full, the other one is emptied and becomes
//! current. So the log never holds more than twice `retain` records, is
//! never truncated as a whole, and a crash can tear at most the last line,
//! which is ignored on start (the files: `segments.rs`). `time=` is the
//! device's clock in seconds since the epoch: informative only (a router
//! may boot at 1970); order is `seq`.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::segments::Store;
use crate::store::statedir::INIT;
use crate::wire::event::{Event, Filter, Kind};

pub struct EventLog {
    retain: usize,
    recent: VecDeque<Event>,
    next_seq: u64,
    store: Store,
}

impl EventLog {
    /// Loads the log from `dir` (the state dir), keeping the last `retain`
    /// events; the sequence goes on after the highest one found, or after
    /// the mark of numbers served but not logged, if that is higher.
    pub fn open(dir: &Path, retain: usize) -> io::Result<EventLog> {
        let (store, mut found) = Store::open(dir, retain)?;
        found.sort_unstable_by_key(|e| e.seq);
        found.dedup_by_key(|e| e.seq);
        let skip = found.len().saturating_sub(retain);
        // The ring's room is allocated whole with its first event (here,
        // or at the first emit), never grown past `retain`.
        let mut recent = VecDeque::new();
        if found.len() > skip {
            recent.reserve_exact(retain);
        }
        recent.extend(found.into_iter().skip(skip));
        let next_seq = recent.back().map_or(1, |e| e.seq + 1).max(store.mark);
        Ok(EventLog {
            retain,
            recent,
            next_seq,
            store,
        })
    }

    /// Records an event and returns it. A failed write to disk keeps the
    /// event in memory and is reported to the caller, who counts it.
    pub fn emit(
        &mut self,
        id: &str,
        kind: Kind,
        extra: &[(&str, &str)],
    ) -> (&Event, io::Result<()>) {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let event = Event::new(self.next_seq, time, id, kind, extra);
        self.next_seq += 1;
        // Logged, or, when the log cannot take it (a full state dir), the
        // number at least is on disk before anyone is sent it: a restart
        // never numbers from below what was served.
        let written = self
            .store
            .append(event.line())
            .or_else(|e| self.store.set_mark(self.next_seq).and(Err(e)));
        if self.recent.capacity() == 0 {
            self.recent.reserve_exact(self.retain);
        }
        if self.recent.len() == self.retain {
            self.recent.pop_front();
        }
        self.recent.push_back(event);
        (self.recent.back().expect("just pushed"), written)
    }

    /// Retained events after `since` that match `filter`, oldest first.
    pub fn replay<'a>(&'a self, since: u64, filter: &'a Filter) -> impl Iterator<Item = &'a Event> {
        self.recent
            .iter()
            .filter(move |e| e.seq > since && filter.matches(e))
    }

    /// The first retained event at or after `seq` that matches `filter`.
    /// The ring is in `seq` order (with a gap where numbers were served
    /// but never logged before a restart), so this starts at the right
    /// place at once.
    pub fn next_match(&self, seq: u64, filter: &Filter) -> Option<&Event> {
        let skip = self.recent.partition_point(|e| e.seq < seq);
        self.recent.iter().skip(skip).find(|e| filter.matches(e))
    }

    /// The oldest retained sequence number (the next one when none is).
    pub fn oldest_seq(&self) -> u64 {
        self.recent.front().map_or(self.next_seq, |e| e.seq)
    }

    /// The retained events of process `proc` (`init` or an exec's name)
    /// of container `id` in its current life, oldest first: since the
    /// container's last `delete`, and for an exec process from its last
    /// `exec-added` on (a name can be used again). An event without
    /// `proc=` is the container's own, so the init's.
    pub fn history(&self, id: &str, proc: &str) -> Vec<&Event> {
        let init = proc == INIT;
        let mut found = Vec::new();
        for e in self.recent.iter().rev().filter(|e| e.id() == id) {
            if e.kind == Kind::Delete {
                break;
            }
            if e.field("proc").unwrap_or(INIT) != proc {
                continue;
            }
            found.push(e);
            if !init && e.kind == Kind::ExecAdded {
                break;
            }
        }
        found.reverse();
        found
    }

    /// The sequence number the next event gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File, OpenOptions};
    use std::io::Write;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("nanoctr-events-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn seqs(log: &EventLog) -> Vec<u64> {
        log.replay(0, &Filter::default()).map(|e| e.seq).collect()
    }

    #[test]
    fn sequence_goes_on_across_reopen_and_replays() {
        let dir = scratch("reopen");
        let mut log = EventLog::open(&dir, 4).unwrap();
        for id in ["a", "b", "c"] {
            log.emit(id, Kind::Create, &[]).1.unwrap();
        }
        drop(log);
        let mut log = EventLog::open(&dir, 4).unwrap();
        assert_eq!(seqs(&log), [1, 2, 3]);
        assert_eq!(log.emit("d", Kind::Start, &[]).0.seq, 4);
        let f = Filter {
            id: Some("d".into()),
            ..Filter::default()
        };
        assert_eq!(log.replay(0, &f).count(), 1);
        assert_eq!(
            log.replay(2, &Filter::default())
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(log.next_match(1, &f).map(|e| e.seq), Some(4));
        assert_eq!(
            log.next_match(2, &Filter::default()).map(|e| e.seq),
            Some(2)
        );
        assert_eq!(log.next_match(5, &Filter::default()), None);
        assert_eq!(log.oldest_seq(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn history_of_the_current_life() {
        let dir = scratch("incarnation");
        let mut log = EventLog::open(&dir, 16).unwrap();
        for (id, kind, extra) in [
            ("d", Kind::Create, &[][..]),
            ("b", Kind::Create, &[]),
            ("d", Kind::Exit, &[("status", "0"), ("proc", "init")]),
            ("d", Kind::Delete, &[]),
            ("d", Kind::Create, &[]),
            ("b", Kind::ExecAdded, &[("proc", "sh"), ("pid", "10")]),
            ("b", Kind::Exit, &[("status", "3"), ("proc", "sh")]),
            ("b", Kind::ExecAdded, &[("proc", "sh"), ("pid", "11")]),
            ("b", Kind::Exit, &[("status", "0"), ("proc", "init")]),
        ] {
            log.emit(id, kind, extra).1.unwrap();
        }
        let kinds =
            |id, proc| -> Vec<Kind> { log.history(id, proc).iter().map(|e| e.kind).collect() };
        assert_eq!(kinds("d", "init"), [Kind::Create]);
        assert_eq!(kinds("b", "init"), [Kind::Create, Kind::Exit]);
        assert_eq!(kinds("b", "sh"), [Kind::ExecAdded]);
        assert_eq!(log.history("b", "sh")[0].field("pid"), Some("11"));
        assert!(kinds("b", "other").is_empty());
        assert!(kinds("zz", "init").is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bounded_in_memory_and_on_disk() {
        let dir = scratch("bounded");
        let mut log = EventLog::open(&dir, 3).unwrap();
        for _ in 0..20 {
            log.emit("x", Kind::Oom, &[]).1.unwrap();
        }
        assert_eq!(seqs(&log), [18, 19, 20]);
        let records: usize = [".events.0", ".events.1"]
            .iter()
            .map(|f| fs::read_to_string(dir.join(f)).unwrap().lines().count())
            .sum();
        assert!(records <= 6, "{records} records on disk");
        drop(log);
        let mut log = EventLog::open(&dir, 3).unwrap();
        assert_eq!(seqs(&log), [18, 19, 20]);
        assert_eq!(log.emit("x", Kind::Oom, &[]).0.seq, 21);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_cut() {
        let dir = scratch("torn");
        let mut log = EventLog::open(&dir, 8).unwrap();
        log.emit("a", Kind::Create, &[]).1.unwrap();
        log.emit("a", Kind::Start, &[]).1.unwrap();
        drop(log);
        let seg = dir.join(".events.0");
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"EVENT seq=3 time=1 id=a ty").unwrap();
        drop(f);
        let mut log = EventLog::open(&dir, 8).unwrap();
        assert_eq!(seqs(&log), [1, 2]);
        log.emit("a", Kind::Exit, &[]).1.unwrap();
        let text = fs::read_to_string(&seg).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(
            text.lines()
                .all(|l| Event::parse(&format!("{l}\n")).is_some()),
            "{text}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn numbers_served_but_not_logged_are_never_used_again() {
        let dir = scratch("mark");
        let mut log = EventLog::open(&dir, 8).unwrap();
        log.emit("a", Kind::Create, &[]).1.unwrap();
        // The log's segment can no longer be written (as on a full state
        // dir): the event is still served, numbered 2, 3, 4.
        let seg = dir.join(".events.0");
        log.store.file = File::open(&seg).unwrap();
        for _ in 0..3 {
            assert!(log.emit("a", Kind::Oom, &[]).1.is_err());
        }
        assert_eq!(fs::read_to_string(&seg).unwrap().lines().count(), 1);
        drop(log);
        let mut log = EventLog::open(&dir, 8).unwrap();
        assert_eq!(seqs(&log), [1]);
        assert_eq!(log.emit("a", Kind::Start, &[]).0.seq, 5, "above all served");
        let all = Filter::default();
        assert_eq!(log.next_match(2, &all).map(|e| e.seq), Some(5));
        drop(log);
        let log = EventLog::open(&dir, 8).unwrap();
        assert_eq!(seqs(&log), [1, 5]);
        assert_eq!(log.next_seq(), 6);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_log_is_never_written_through_a_symlink() {
        let dir = scratch("symlink");
        let victim = dir.join("victim");
        fs::write(&victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(".events.0")).unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(".events.mark")).unwrap();
        // The links are not the daemon's: they go, and the log starts
        // afresh beside them.
        let mut log = EventLog::open(&dir, 8).unwrap();
        log.emit("a", Kind::Create, &[]).1.unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
        for f in [".events.0", ".events.mark"] {
            assert!(fs::symlink_metadata(dir.join(f)).unwrap().is_file(), "{f}");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn garbage_segments_are_not_fatal() {
        let dir = scratch("garbage");
        fs::write(dir.join(".events.0"), b"\xff\xfenot events\n\0\0\0").unwrap();
        fs::write(
            dir.join(".events.1"),
            "EVENT seq=9 time=1 id=z type=delete\n",
        )
        .unwrap();
        let mut log = EventLog::open(&dir, 8).unwrap();
        assert_eq!(seqs(&log), [9]);
        assert_eq!(log.emit("z", Kind::Create, &[]).0.seq, 10);
        fs::write(
            dir.join(".events.0"),
            "EVENT seq=3 time=1 id=z type=delete
",
        )
        .unwrap();
        let log = EventLog::open(&dir, 8).unwrap();
        assert_eq!(seqs(&log), [3, 9, 10], "every whole record, in order");
        let all = Filter::default();
        assert_eq!(log.next_match(4, &all).map(|e| e.seq), Some(9));
        assert_eq!(log.next_match(10, &all).map(|e| e.seq), Some(10));
        assert_eq!(log.next_match(0, &all).map(|e| e.seq), Some(3));
        fs::remove_dir_all(dir).unwrap();
    }
}
