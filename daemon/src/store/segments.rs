//! The event log on disk: its two segment files in the state dir and the
//! mark of numbers served but not logged (see `events.rs` for how they
//! are used). Nothing is ever written through a link: a segment or the
//! mark is a regular file of its own, or it is removed and made again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::wire::event::{Event, MAX_EVENT_LINE};
use nanoctr_shim::contract::state_dir::{EVENTS, EVENTS_MARK};

/// The two segment files, and the mark.
///
/// The mark (`.events.mark`) is the number after the last event served
/// that could not be logged. It is written only then, in place: the file
/// has its full width from the start, so writing it needs no room a full
/// state dir no longer has.
pub(super) struct Store {
    paths: [PathBuf; 2],
    current: usize,
    pub(super) file: File,
    /// Bytes of whole records in the current segment: a failed append is
    /// cut back to this, so a torn line never runs into the next one.
    len: u64,
    records: usize,
    per_segment: usize,
    mark_file: Option<File>,
    pub(super) mark: u64,
}

/// The mark's width: any u64 and a newline.
const MARK_WIDTH: usize = 21;

impl Store {
    pub(super) fn open(dir: &Path, per_segment: usize) -> io::Result<(Store, Vec<Event>)> {
        let paths = EVENTS.map(|name| dir.join(name.str));
        let mut found = Vec::new();
        let mut newest = (0, 0u64, 0usize, 0usize); // (segment, highest seq, records, bytes)
        for (i, path) in paths.iter().enumerate() {
            only_a_file_at(path)?;
            let (events, whole_len) = read_segment(path)?;
            // A torn last line is cut off, so the next append starts clean.
            if fs::symlink_metadata(path).is_ok_and(|m| m.len() as usize != whole_len) {
                open_nofollow(path, false)?.set_len(whole_len as u64)?;
            }
            let top = events.iter().map(|e| e.seq).max().unwrap_or(0);
            if top > newest.1 {
                newest = (i, top, events.len(), whole_len);
            }
            found.extend(events);
        }
        let (current, _, records, len) = newest;
        let file = open_nofollow(&paths[current], false)?;
        let mark_path = dir.join(EVENTS_MARK.str);
        only_a_file_at(&mark_path)?;
        let (mark_file, mark) = open_mark(&mark_path);
        Ok((
            Store {
                paths,
                current,
                file,
                len: len as u64,
                records,
                per_segment,
                mark_file,
                mark,
            },
            found,
        ))
    }

    pub(super) fn append(&mut self, line: &str) -> io::Result<()> {
        if self.records >= self.per_segment {
            let other = 1 - self.current;
            self.file = open_nofollow(&self.paths[other], true)?;
            self.current = other;
            self.records = 0;
            self.len = 0;
        }
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += line.len() as u64;
        self.records += 1;
        Ok(())
    }

    /// Records that numbers below `next` have been served.
    pub(super) fn set_mark(&mut self, next: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let f = self.mark_file.as_ref().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "no .events.mark to write to")
        })?;
        let text = format!("{next:>width$}\n", width = MARK_WIDTH - 1);
        // One write of a few bytes to a regular file: whole, or an error.
        f.write_at(text.as_bytes(), 0)?;
        f.sync_data()?;
        self.mark = next;
        Ok(())
    }
}

/// Opens (making it if need be, at its full width) the mark file, and
/// reads the mark. Without the file (a state dir full from the start), the
/// mark cannot be kept, which only matters once an event cannot be logged.
fn open_mark(path: &Path) -> (Option<File>, u64) {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let Ok(f) = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return (None, 0);
    };
    let mut text = [0u8; MARK_WIDTH];
    let n = f.read_at(&mut text, 0).unwrap_or(0);
    let mark = std::str::from_utf8(&text[..n])
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    if n < MARK_WIDTH {
        let blank = format!("{mark:>width$}\n", width = MARK_WIDTH - 1);
        if f.write_at(blank.as_bytes(), 0).is_err() {
            return (None, mark);
        }
    }
    (Some(f), mark)
}

/// Removes whatever is at `path` that is not a regular file (a symlink, a
/// fifo): the daemon's own files are only ever regular files, and the
/// log must not be written through anything else. A directory there is an
/// error, left for a person to look at.
fn only_a_file_at(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is a directory", path.display()),
        )),
        Ok(_) => {
            crate::logger::warn(&format!(
                "{} is not a regular file; removed",
                path.display()
            ));
            fs::remove_file(path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A segment, opened to append to (or emptied first). Never through a
/// symlink: the log is the daemon's own file.
fn open_nofollow(path: &Path, truncate: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    crate::files::regular_len(&file)?;
    if truncate {
        file.set_len(0)?;
    }
    Ok(file)
}

/// The whole records of a segment, and how many bytes they take. Lines that
/// are not records (a torn last line, garbage) are skipped.
fn read_segment(path: &Path) -> io::Result<(Vec<Event>, usize)> {
    use crate::files::{read_bounded, Links};
    // A segment holds at most `retain` records; anything much bigger was
    // not written by the daemon.
    let max = 65_536 * MAX_EVENT_LINE as u64;
    let bytes = match read_bounded(path, max, Links::Refuse) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let text = String::from_utf8_lossy(&bytes[..whole]);
    let events = text
        .split_inclusive('\n')
        .filter_map(Event::parse)
        .collect();
    Ok((events, whole))
}
