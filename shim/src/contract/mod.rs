//! The contract between the daemon and its shims, written once: every name
//! in the state directory, the shim's command line ([`args`]), the lines on
//! its fifos ([`control`] from the daemon, [`reply`] to it) and the limits
//! both sides keep. The daemon depends on this library, so neither side
//! spells any of it on its own; the tests do, on purpose, to check the
//! contract from outside.
//!
//! The state directory, complete (`--state-dir`, default
//! `/run/nanoctr`), with who writes each file:
//!
//! ```text
//! <state-dir>/                      daemon, mode 0711
//!   .lock                           daemon: flock held for its life, one daemon per dir
//!   .events.0  .events.1            daemon: the event log's two generations
//!   .events.mark                    daemon: seq after the last event served
//!   .auto.<id>                      daemon: the declared container <id> was made at boot
//!   <id>/                           daemon: one per container
//!     container                     daemon: its record (written whole)
//!     bundle/config.json            daemon: the runtime config, when create's options change the bundle's
//!     checkpoint.log                runtime: its log of `checkpoint`
//!     lower/                        daemon: an image rootfs, mounted read-only from a loop device
//!     upper-tmpfs/                  daemon: the tmpfs of its writable layer (upper/, work/)
//!     rootfs/                       daemon: the overlay of the two (or the image itself,
//!                                   overlay=none): the derived bundle's root.path
//!     init/                         daemon: the init process's dir; its shim works here
//!     <proc>/                       daemon: an exec process's dir, the same files, and
//!       exec                        daemon: its record
//!       process.json                daemon: the OCI process the runtime runs
//!   in each process dir:
//!     exit                          daemon makes the fifo; the shim holds it open for writing
//!                                   for its whole life: EOF is the shim gone
//!     control                       fifo, daemon -> shim: `start`, `kill N`, `resize C R`, `closestdin`
//!     reply                         fifo, shim -> daemon: `started`, `error MSG`, and the make
//!                                   result when the daemon that started the shim is gone
//!     shim.pid                      shim: its pid (.shim.pid.tmp while it is written)
//!     pid                           runtime: the process's pid (`--pid-file`)
//!     log.json                      runtime: its JSON log (`--log`), read for its last error
//!     exitStatus                    shim: the exit code, last (.exitStatus.tmp holds its room
//!                                   until then)
//!     output  output.1              shim: stdout and stderr, capped, one older generation
//!     console.sock                  shim: the runtime hands it the pty there (terminal=1)
//!     attach.sock                   shim: attachers connect here
//!     shim.log                      daemon opens it as the shim's stderr
//! ```
//!
//! Every file the daemon writes whole goes through `NAME.tmp` ([`TMP`]):
//! written, synced, renamed. A `.tmp` left by a power cut is removed at the
//! next start. The make result (`created PID` or `error MSG`) goes on a
//! pipe the shim inherits (`startup-fd=`), not a file.

pub mod args;
pub mod control;
pub mod reply;

use core::ffi::CStr;

/// A name in the state dir: as a path component for the daemon, and as
/// the C string the shim opens (relative to its process dir).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name {
    pub c: &'static CStr,
    pub str: &'static str,
}

impl Name {
    const fn new(c: &'static CStr) -> Name {
        match core::str::from_utf8(c.to_bytes()) {
            Ok(str) => Name { c, str },
            Err(_) => panic!("a state-dir name is ASCII"),
        }
    }
}

/// The state dir's own files (the daemon's).
pub mod state_dir {
    use super::Name;
    /// The daemon's lock.
    pub const LOCK: Name = Name::new(c".lock");
    /// The event log's generations.
    pub const EVENTS: [Name; 2] = [Name::new(c".events.0"), Name::new(c".events.1")];
    /// The event log's mark.
    pub const EVENTS_MARK: Name = Name::new(c".events.mark");
    /// `.auto.<id>`: the prefix of autostart's markers.
    pub const AUTO_PREFIX: &str = ".auto.";
}

/// A container's dir.
pub mod container_dir {
    use super::Name;
    /// The daemon's record of the container.
    pub const RECORD: Name = Name::new(c"container");
    /// The derived bundle's dir (it holds [`CONFIG`]).
    pub const BUNDLE: Name = Name::new(c"bundle");
    /// A bundle's runtime config.
    pub const CONFIG: Name = Name::new(c"config.json");
    /// The runtime's log of `checkpoint`.
    pub const CHECKPOINT_LOG: Name = Name::new(c"checkpoint.log");
    /// The init's process dir; an exec's is named after it.
    pub const INIT: Name = Name::new(c"init");
    /// An image rootfs's mount points (the daemon's): the image, the tmpfs
    /// of its writable layer, and the overlay of both.
    pub const LOWER: Name = Name::new(c"lower");
    pub const UPPER_TMPFS: Name = Name::new(c"upper-tmpfs");
    pub const ROOTFS: Name = Name::new(c"rootfs");
    /// The update lock's dir (bind-mountable into the container) and the
    /// lock file in it, which a container's process holds (`flock`) to
    /// defer updates and health restarts.
    pub const LOCK_DIR: Name = Name::new(c"lock");
    pub const UPDATE_LOCK: Name = Name::new(c"update");
    /// The names in a container's dir that are not a process dir: no exec
    /// process may take one.
    pub const NOT_PROCESSES: [Name; 5] = [BUNDLE, LOWER, UPPER_TMPFS, ROOTFS, LOCK_DIR];
}

/// A process dir: where a shim works (its working directory).
pub mod proc_dir {
    use super::Name;
    /// The fifos the daemon makes in every process dir.
    pub const FIFOS: [Name; 3] = [EXIT, CONTROL, REPLY];
    pub const EXIT: Name = Name::new(c"exit");
    pub const CONTROL: Name = Name::new(c"control");
    pub const REPLY: Name = Name::new(c"reply");
    pub const SHIM_PID: Name = Name::new(c"shim.pid");
    pub const SHIM_PID_TMP: Name = Name::new(c".shim.pid.tmp");
    pub const PID: Name = Name::new(c"pid");
    pub const RUNTIME_LOG: Name = Name::new(c"log.json");
    pub const EXIT_STATUS: Name = Name::new(c"exitStatus");
    pub const EXIT_STATUS_TMP: Name = Name::new(c".exitStatus.tmp");
    /// The shim's temporaries: left only by a shim that is gone.
    pub const SHIM_TMP: [Name; 2] = [EXIT_STATUS_TMP, SHIM_PID_TMP];
    pub const OUTPUT: Name = Name::new(c"output");
    pub const OUTPUT_OLD: Name = Name::new(c"output.1");
    pub const CONSOLE_SOCK: Name = Name::new(c"console.sock");
    pub const ATTACH_SOCK: Name = Name::new(c"attach.sock");
    pub const SHIM_LOG: Name = Name::new(c"shim.log");
    /// An exec process's record.
    pub const EXEC_RECORD: Name = Name::new(c"exec");
    /// An exec process's OCI process.
    pub const PROCESS_JSON: Name = Name::new(c"process.json");
}

/// The suffix of a file the daemon is writing whole.
pub const TMP: &str = ".tmp";

/// Longest line on `control`; the shim drops a longer one whole.
pub const MAX_CONTROL_LINE: usize = 128;

/// Longest line the shim writes (its startup pipe, `reply`), newline
/// included; the daemon cuts anything longer there.
pub const MAX_REPLY_LINE: usize = 1024;

/// The smallest output log cap: one read's worth.
pub const MIN_LOG_SIZE: u32 = 4096;

/// The output log cap when none is asked for.
pub const DEFAULT_LOG_SIZE: u32 = 64 * 1024;

/// A terminal's size when none is asked for.
pub const DEFAULT_COLS: u16 = 80;
pub const DEFAULT_ROWS: u16 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_the_same_both_ways() {
        assert_eq!(proc_dir::EXIT_STATUS.str, "exitStatus");
        assert_eq!(proc_dir::EXIT_STATUS.c, c"exitStatus");
        assert_eq!(state_dir::EVENTS[1].str, ".events.1");
        for n in proc_dir::FIFOS.iter().chain(&proc_dir::SHIM_TMP) {
            assert_eq!(n.c.to_bytes(), n.str.as_bytes());
            assert!(!n.str.contains('/'), "one path component");
        }
    }
}
