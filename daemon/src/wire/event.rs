//! Events as the protocol carries them: one line each,
//!
//! ```text
//! EVENT seq=42 time=1700000000 id=web type=exit status=0 proc=init
//! ```
//!
//! and the filter a subscriber gives. The log that numbers and keeps
//! them is `store::events`.

use super::proto::{quote, split_words};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Create,
    Start,
    ExecAdded,
    Exit,
    Oom,
    Pause,
    Resume,
    Delete,
    Update,
    /// The shim went away without an exit status.
    ShimLost,
    /// Its restart policy makes it again after `delay-ms`.
    Restart,
    /// Its health check's verdict changed (`status=`).
    Health,
    /// An update began: `bundle=` the new version, `previous=` the old.
    Swap,
    /// The update was kept: the previous version is forgotten.
    Commit,
    /// The previous version is back (`bundle=`, `why=`).
    Rollback,
    /// The hardware watchdog is no longer petted (`state=stopped`): this
    /// critical container failed (`why=`).
    Watchdog,
}

const KINDS: [(Kind, &str); 16] = [
    (Kind::Create, "create"),
    (Kind::Start, "start"),
    (Kind::ExecAdded, "exec-added"),
    (Kind::Exit, "exit"),
    (Kind::Oom, "oom"),
    (Kind::Pause, "pause"),
    (Kind::Resume, "resume"),
    (Kind::Delete, "delete"),
    (Kind::Update, "update"),
    (Kind::ShimLost, "shim-lost"),
    (Kind::Restart, "restart"),
    (Kind::Health, "health"),
    (Kind::Swap, "swap"),
    (Kind::Commit, "commit"),
    (Kind::Rollback, "rollback"),
    (Kind::Watchdog, "watchdog"),
];

impl Kind {
    pub fn as_str(self) -> &'static str {
        KINDS.iter().find(|k| k.0 == self).map_or("?", |k| k.1)
    }

    pub fn parse(word: &str) -> Option<Kind> {
        KINDS.iter().find(|k| k.1 == word).map(|k| k.0)
    }
}

/// Longest event line, newline included; a field that does not fit is left
/// out (none of the daemon's events come near: an id is at most 64 bytes,
/// the rest is short).
pub const MAX_EVENT_LINE: usize = 256;

/// An event, in a record of fixed size: the ring of retained events is
/// allocated once, at start-up, and never grows or shrinks after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: u64,
    pub kind: Kind,
    /// Where the id is in `line`.
    id_at: u8,
    id_len: u8,
    line: heapless::String<MAX_EVENT_LINE>,
}

impl Event {
    pub(crate) fn new(seq: u64, time: u64, id: &str, kind: Kind, extra: &[(&str, &str)]) -> Event {
        use std::fmt::Write;
        let mut line = heapless::String::new();
        let whole = write!(
            line,
            "EVENT seq={seq} time={time} id={} type={}",
            quote(id),
            kind.as_str()
        )
        .is_ok()
            && extra
                .iter()
                .all(|(k, v)| write!(line, " {k}={}", quote(v)).is_ok());
        if !whole || line.len() == MAX_EVENT_LINE {
            line.truncate(MAX_EVENT_LINE - 1);
        }
        let _ = line.push('\n');
        Event::from_line(seq, kind, line)
    }

    /// Finds the id in a line made by `new` or read back by `parse` (ids
    /// never need quoting, see `check_id`).
    pub(crate) fn from_line(seq: u64, kind: Kind, line: heapless::String<MAX_EVENT_LINE>) -> Event {
        let at = line.find(" id=").map_or(0, |p| p + 4);
        let len = line[at..].find([' ', '\n']).unwrap_or(0);
        Event {
            seq,
            kind,
            id_at: at.min(255) as u8,
            id_len: len.min(255) as u8,
            line,
        }
    }

    pub fn id(&self) -> &str {
        &self.line[usize::from(self.id_at)..][..usize::from(self.id_len)]
    }

    /// The value of `key=` in the line (values the daemon writes there
    /// are single words).
    pub fn field(&self, key: &str) -> Option<&str> {
        self.line
            .trim_end()
            .split(' ')
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }

    /// The whole line, with its newline.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Reads a record back; `None` for anything that is not a whole one.
    pub fn parse(line: &str) -> Option<Event> {
        let body = line.strip_suffix('\n')?;
        let words = split_words(body.as_bytes()).ok()?;
        let (first, rest) = words.split_first()?;
        if first != "EVENT" {
            return None;
        }
        let get = |key: &str| {
            rest.iter()
                .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        };
        let id = get("id")?;
        let e = Event::from_line(
            get("seq")?.parse().ok()?,
            Kind::parse(get("type")?)?,
            heapless::String::try_from(line).ok()?,
        );
        // Only a line as the daemon writes it: the id where `id()` finds
        // it, after a space (a plain word, no tabs or quotes around it).
        (line.contains(" id=") && e.id() == id).then_some(e)
    }
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Replay retained events after this one; live events only when absent.
    pub since: Option<u64>,
    pub id: Option<String>,
    pub kind: Option<Kind>,
}

impl Filter {
    pub fn matches(&self, e: &Event) -> bool {
        self.id.as_ref().is_none_or(|id| id.as_str() == e.id())
            && self.kind.is_none_or(|k| k == e.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let e = Event::new(
            7,
            100,
            "web",
            Kind::Exit,
            &[("status", "137"), ("proc", "init")],
        );
        assert_eq!(
            e.line(),
            "EVENT seq=7 time=100 id=web type=exit status=137 proc=init\n"
        );
        assert_eq!(Event::parse(e.line()), Some(e.clone()));
        assert_eq!(e.id(), "web");
        // An id= word after a tab is not where `id()` looks.
        assert_eq!(Event::parse("EVENT seq=1 type=exit\tid=EVENT\n"), None);
        assert_eq!(
            Event::parse("EVENT seq=1 time=1 type=exit id=last\n")
                .unwrap()
                .id(),
            "last"
        );

        let long = "x".repeat(300);
        let cut = Event::new(1, 1, "web", Kind::Exit, &[("note", &long)]);
        // Cut at a field that does not fit, still one whole record.
        assert!(cut.line().len() <= MAX_EVENT_LINE && cut.line().ends_with('\n'));
        assert_eq!(Event::parse(cut.line()).map(|e| e.seq), Some(1));

        assert_eq!(
            Event::parse("EVENT seq=7 time=1 id=x type=exit"),
            None,
            "no newline: torn"
        );
        assert_eq!(Event::parse("EVENT seq=x time=1 id=x type=exit\n"), None);
        assert_eq!(Event::parse("EVENT seq=1 time=1 id=x type=bogus\n"), None);
        assert_eq!(Event::parse("garbage\n"), None);
        // Not as the daemon writes them: the id would be misread.
        for line in [
            "EVENT seq=1\ttime=1\tid=web\ttype=exit\n",
            "EVENT seq=1 time=1 id=\"we b\" type=exit\n",
            "EVENT seq=1 time=1 note=\" id=x\" id=web type=exit\n",
        ] {
            assert_eq!(Event::parse(line), None, "{line:?}");
        }
    }
}
