//! The shim's command line: `key=value` words, in any order, so that `ps`
//! shows what a shim is for.
//!
//! ```text
//! nanoctr-shim id=ID bundle=DIR runtime=PATH log=PATH pid-file=PATH
//!              startup-fd=N [root=DIR] [stdin=PATH] [stdout=PATH] [stderr=PATH]
//!              [oom-score-adj=N] [run=1] [terminal=1 console=PATH]
//!              [cols=N] [rows=N] [log-size=BYTES] [interactive=1]
//!              [exec=PROCESS_JSON | restore=IMAGE_DIR]
//! ```
//!
//! `log`, `pid-file` and `console` are absolute: a runtime may resolve
//! relative paths against the bundle rather than its working directory
//! (crun does).
//!
//! Every value is a suffix of a NUL-terminated `argv` string, so it is handed
//! on to the runtime as a C string without a copy.

use core::ffi::CStr;

use super::{DEFAULT_COLS, DEFAULT_LOG_SIZE, DEFAULT_ROWS, MIN_LOG_SIZE};

/// What the daemon tells a shim about the process it supervises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShimArgs<'a> {
    /// Container id, passed to the runtime.
    pub id: &'a CStr,
    /// Absolute path of the OCI bundle.
    pub bundle: &'a CStr,
    /// Absolute path of the runtime binary (`runc`, `crun`, ...).
    pub runtime: &'a CStr,
    /// The runtime's JSON log (`--log`), absolute.
    pub log: &'a CStr,
    /// Where the runtime writes the init's pid (`--pid-file`), absolute.
    pub pid_file: &'a CStr,
    /// The runtime's state root (`--root`), if not its default.
    pub root: Option<&'a CStr>,
    /// Container stdin; `/dev/null` when absent (and not interactive).
    pub stdin: Option<&'a CStr>,
    /// Container stdout; captured by the shim into `output` when absent.
    pub stdout: Option<&'a CStr>,
    /// Container stderr; wherever stdout goes when absent.
    pub stderr: Option<&'a CStr>,
    /// Write end of the pipe on which the create result is reported.
    pub startup_fd: i32,
    /// The shim's own `oom_score_adj`; its runtime children get 0 back.
    pub oom_score_adj: Option<i32>,
    /// `run=1`: `<runtime> run --detach` in place of `create`, so the
    /// container starts at once (one runtime call instead of two).
    pub run: bool,
    /// `terminal=1`: the runtime hands the shim a pty master over the
    /// `console` socket; the container's stdio is the pty.
    pub terminal: bool,
    /// Where the shim listens for the runtime's pty master.
    pub console: Option<&'a CStr>,
    /// The pty's first size.
    pub cols: u16,
    pub rows: u16,
    /// Cap of the captured output log; one rotated generation is kept.
    pub log_size: u32,
    /// `interactive=1`: stdin is a pipe the shim feeds from its attachers.
    pub interactive: bool,
    /// `exec=PATH`: an extra process in the running container `id`,
    /// described by the OCI process file at PATH (`<runtime> exec --detach
    /// --process PATH`) in place of a create.
    pub exec: Option<&'a CStr>,
    /// `restore=DIR`: the container is restored from the checkpoint image
    /// in DIR (`<runtime> restore --detach --image-path DIR`) in place of a
    /// create; it is running once that succeeds.
    pub restore: Option<&'a CStr>,
}

/// Why a command line was refused: the key that is missing, given twice,
/// or whose value is not what it takes (`key` for a word that is not a
/// known `key=value`). A person reads it after [`ArgError::PREFIX`]. The
/// daemon, which writes every shim's command line, never gets one; short
/// texts keep the shim small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgError(pub &'static str);

impl ArgError {
    pub const PREFIX: &'static str = "nanoctr-shim: missing or bad ";
}

/// The keys of the command line.
pub mod key {
    pub const ID: &str = "id";
    pub const BUNDLE: &str = "bundle";
    pub const RUNTIME: &str = "runtime";
    pub const LOG: &str = "log";
    pub const PID_FILE: &str = "pid-file";
    pub const STARTUP_FD: &str = "startup-fd";
    pub const ROOT: &str = "root";
    pub const STDIN: &str = "stdin";
    pub const STDOUT: &str = "stdout";
    pub const STDERR: &str = "stderr";
    pub const OOM_SCORE_ADJ: &str = "oom-score-adj";
    pub const RUN: &str = "run";
    pub const TERMINAL: &str = "terminal";
    pub const CONSOLE: &str = "console";
    pub const COLS: &str = "cols";
    pub const ROWS: &str = "rows";
    pub const LOG_SIZE: &str = "log-size";
    pub const INTERACTIVE: &str = "interactive";
    pub const EXEC: &str = "exec";
    pub const RESTORE: &str = "restore";
}

/// Every key, in the order of the slots `parse` fills.
const KEYS: [&str; 20] = [
    key::ID,
    key::BUNDLE,
    key::RUNTIME,
    key::LOG,
    key::PID_FILE,
    key::STARTUP_FD,
    key::ROOT,
    key::STDIN,
    key::STDOUT,
    key::STDERR,
    key::OOM_SCORE_ADJ,
    key::RUN,
    key::TERMINAL,
    key::CONSOLE,
    key::COLS,
    key::ROWS,
    key::LOG_SIZE,
    key::INTERACTIVE,
    key::EXEC,
    key::RESTORE,
];

impl<'a> ShimArgs<'a> {
    /// Parses the words after `argv[0]`.
    pub fn parse<I: IntoIterator<Item = &'a CStr>>(words: I) -> Result<Self, ArgError> {
        let mut v: [Option<&'a CStr>; KEYS.len()] = [None; KEYS.len()];
        for word in words {
            let (key, value) = split(word).ok_or(ArgError("key"))?;
            let slot = KEYS
                .iter()
                .position(|k| k.as_bytes() == key)
                .ok_or(ArgError("key"))?;
            if value.is_empty() || v[slot].replace(value).is_some() {
                return Err(ArgError(KEYS[slot]));
            }
        }
        let need = |i: usize, missing| v[i].ok_or(ArgError(missing));
        let number = |i: usize, default: u32, why| match v[i] {
            None => Ok(default),
            Some(n) => parse_u32(n.to_bytes()).ok_or(ArgError(why)),
        };
        let flag = |i: usize, why| match v[i].map(CStr::to_bytes) {
            None => Ok(false),
            Some(b"1") => Ok(true),
            Some(_) => Err(ArgError(why)),
        };
        let startup_fd = number(5, 0, key::STARTUP_FD)?;
        let out = ShimArgs {
            id: need(0, key::ID)?,
            bundle: need(1, key::BUNDLE)?,
            runtime: need(2, key::RUNTIME)?,
            log: need(3, key::LOG)?,
            pid_file: need(4, key::PID_FILE)?,
            startup_fd: i32::try_from(startup_fd)
                .ok()
                .filter(|&n| n > 2)
                .ok_or(ArgError(key::STARTUP_FD))?,
            root: v[6],
            stdin: v[7],
            stdout: v[8],
            stderr: v[9],
            oom_score_adj: match v[10].map(CStr::to_bytes) {
                None => None,
                Some(adj) => Some(parse_adj(adj).ok_or(ArgError(key::OOM_SCORE_ADJ))?),
            },
            run: flag(11, key::RUN)?,
            terminal: flag(12, key::TERMINAL)?,
            console: v[13],
            cols: u16::try_from(number(14, DEFAULT_COLS.into(), key::COLS)?)
                .map_err(|_| ArgError(key::COLS))?,
            rows: u16::try_from(number(15, DEFAULT_ROWS.into(), key::ROWS)?)
                .map_err(|_| ArgError(key::ROWS))?,
            log_size: number(16, DEFAULT_LOG_SIZE, key::LOG_SIZE)?.max(MIN_LOG_SIZE),
            interactive: flag(17, key::INTERACTIVE)?,
            exec: v[18],
            restore: v[19],
        };
        if out.terminal && out.console.is_none() {
            return Err(ArgError(key::CONSOLE));
        }
        if u8::from(out.run) + u8::from(out.exec.is_some()) + u8::from(out.restore.is_some()) > 1 {
            // At most one of them.
            return Err(ArgError("run, exec or restore"));
        }

        Ok(out)
    }

    /// The command line that [`ShimArgs::parse`] reads back as `self`,
    /// word by word: `each(key, value)`, the value without its NUL. What
    /// is absent or at its default is left out; flags are `1`.
    pub fn words(&self, each: &mut dyn FnMut(&'static str, &[u8])) {
        let e = each;
        text(e, key::ID, Some(self.id));
        text(e, key::BUNDLE, Some(self.bundle));
        text(e, key::RUNTIME, Some(self.runtime));
        text(e, key::LOG, Some(self.log));
        text(e, key::PID_FILE, Some(self.pid_file));
        number(e, key::STARTUP_FD, self.startup_fd.into(), None);
        text(e, key::ROOT, self.root);
        text(e, key::STDIN, self.stdin);
        text(e, key::STDOUT, self.stdout);
        text(e, key::STDERR, self.stderr);
        if let Some(adj) = self.oom_score_adj {
            number(e, key::OOM_SCORE_ADJ, adj.into(), None);
        }
        number(e, key::RUN, self.run.into(), Some(0));
        number(e, key::TERMINAL, self.terminal.into(), Some(0));
        text(e, key::CONSOLE, self.console);
        number(e, key::COLS, self.cols.into(), Some(DEFAULT_COLS.into()));
        number(e, key::ROWS, self.rows.into(), Some(DEFAULT_ROWS.into()));
        let log_size = self.log_size.into();
        number(e, key::LOG_SIZE, log_size, Some(DEFAULT_LOG_SIZE.into()));
        number(e, key::INTERACTIVE, self.interactive.into(), Some(0));
        text(e, key::EXEC, self.exec);
        text(e, key::RESTORE, self.restore);
    }
}

/// `key=value`, when there is a value.
fn text(each: &mut dyn FnMut(&'static str, &[u8]), key: &'static str, v: Option<&CStr>) {
    if let Some(v) = v {
        each(key, v.to_bytes());
    }
}

/// `key=N`, unless `N` is the default.
fn number(
    each: &mut dyn FnMut(&'static str, &[u8]),
    key: &'static str,
    n: i64,
    default: Option<i64>,
) {
    if default != Some(n) {
        let mut digits = crate::line::Line::<24>::new();
        digits.push_int(n);
        each(key, digits.text());
    }
}

fn parse_adj(adj: &[u8]) -> Option<i32> {
    let (neg, abs) = match adj.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, adj),
    };
    let n = parse_u32(abs).filter(|&n| n <= 1000)? as i32;
    Some(if neg { -n } else { n })
}

/// Splits `key=value`; the value keeps its NUL terminator.
fn split(word: &CStr) -> Option<(&[u8], &CStr)> {
    let bytes = word.to_bytes_with_nul();
    let eq = bytes.iter().position(|&b| b == b'=')?;
    let value = CStr::from_bytes_with_nul(&bytes[eq + 1..]).ok()?;
    Some((&bytes[..eq], value))
}

/// Parses a decimal number with no sign and no spaces.
pub fn parse_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 10 {
        return None;
    }
    let mut n: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(d - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn parse(words: &[&str]) -> Result<ShimArgs<'static>, ArgError> {
        let owned: Vec<&'static CStr> = words
            .iter()
            .map(|w| &*Box::leak(CString::new(*w).unwrap().into_boxed_c_str()))
            .collect();
        ShimArgs::parse(owned)
    }

    /// The required words: a command line that parses.
    const BASE: [&str; 6] = [
        "id=x",
        "bundle=/b",
        "runtime=/r",
        "log=/l",
        "pid-file=/p",
        "startup-fd=3",
    ];

    /// [`BASE`] and `extra`, parsed.
    fn with(extra: &[&str]) -> Result<ShimArgs<'static>, ArgError> {
        let mut words = BASE.to_vec();
        words.extend_from_slice(extra);
        parse(&words)
    }

    #[test]
    fn full_command_line() {
        let a = parse(&[
            "id=web",
            "bundle=/b",
            "runtime=/usr/bin/runc",
            "log=/s/log.json",
            "pid-file=/s/pid",
            "startup-fd=5",
            "root=/run/runc",
            "stdout=/tmp/o",
        ])
        .unwrap();
        assert_eq!(a.id, c"web");
        assert_eq!(a.bundle, c"/b");
        assert_eq!(a.runtime, c"/usr/bin/runc");
        assert_eq!(a.log, c"/s/log.json");
        assert_eq!(a.pid_file, c"/s/pid");
        assert_eq!(a.root, Some(c"/run/runc"));
        assert_eq!(a.stdout, Some(c"/tmp/o"));
        assert_eq!(a.stdin, None);
        assert_eq!(a.stderr, None);
        assert_eq!(a.startup_fd, 5);
        assert!(!a.terminal && !a.interactive && !a.run);
        assert_eq!((a.cols, a.rows, a.log_size), (80, 24, 65536));
    }

    #[test]
    fn terminal_and_output_options() {
        let a = with(&[
            "terminal=1",
            "console=/c.sock",
            "cols=132",
            "rows=43",
            "log-size=100",
            "interactive=1",
        ])
        .unwrap();
        assert!(a.terminal && a.interactive);
        assert_eq!(a.console, Some(c"/c.sock"));
        assert_eq!((a.cols, a.rows), (132, 43));
        assert_eq!(a.log_size, MIN_LOG_SIZE, "a cap below one read is raised");
        assert_eq!(with(&["terminal=1"]), Err(ArgError("console")));
        assert!(with(&["cols=70000"]).is_err());
        assert!(with(&["terminal=yes", "console=/c"]).is_err());
        assert!(with(&["log-size=big"]).is_err());
    }

    #[test]
    fn exec_and_restore() {
        let a = with(&["exec=/s/x/sh1/process.json"]).unwrap();
        assert_eq!(a.exec, Some(c"/s/x/sh1/process.json"));
        assert_eq!(a.restore, None);
        let a = with(&["restore=/c/one"]).unwrap();
        assert_eq!(a.restore, Some(c"/c/one"));
        let both = Err(ArgError("run, exec or restore"));
        assert_eq!(with(&["exec=/p", "restore=/c"]), both);
        assert_eq!(with(&["run=1", "exec=/p"]), both);
        assert_eq!(with(&["run=1", "restore=/c"]), both);
    }

    #[test]
    fn value_may_contain_equals() {
        let a = parse(&[
            "id=x",
            "bundle=/a=b",
            "runtime=/r",
            "log=/l",
            "pid-file=/p",
            "startup-fd=3",
        ])
        .unwrap();
        assert_eq!(a.bundle, c"/a=b");
    }

    #[test]
    fn refusals() {
        let base = BASE;
        for (i, expect) in ["id", "bundle", "runtime", "log", "pid-file", "startup-fd"]
            .iter()
            .enumerate()
        {
            let mut words = base.to_vec();
            words.remove(i);
            assert_eq!(parse(&words), Err(ArgError(expect)));
        }
        let mut words = base.to_vec();
        words.push("bogus=1");
        assert_eq!(parse(&words), Err(ArgError("key")));
        words.pop();
        words.push("id=y");
        assert_eq!(parse(&words), Err(ArgError("id")), "given twice");
        words.pop();
        words.push("root=");
        assert_eq!(parse(&words), Err(ArgError("root")), "empty");
        words.pop();
        words.push("cols=x");
        assert_eq!(parse(&words), Err(ArgError("cols")));
        let with_fd = |fd: &'static str| {
            let mut words = base.to_vec();
            words[5] = fd;
            parse(&words)
        };
        assert!(with_fd("startup-fd=3").is_ok());
        assert!(with_fd("startup-fd=2").is_err());
        assert!(with_fd("startup-fd=-4").is_err());
        assert!(with_fd("startup-fd=").is_err());
        let with_oom = |adj: &str| with(&[adj]).map(|a| a.oom_score_adj);
        assert_eq!(with_oom("oom-score-adj=-500"), Ok(Some(-500)));
        assert_eq!(with_oom("oom-score-adj=1000"), Ok(Some(1000)));
        assert!(with_oom("oom-score-adj=-1001").is_err());
        assert!(with_oom("oom-score-adj=--5").is_err());
        assert_eq!(parse(&base).unwrap().oom_score_adj, None);
        let mut words = base.to_vec();
        words.push("run=1");
        assert!(parse(&words).unwrap().run);
        words.pop();
        words.push("run=yes");
        assert!(parse(&words).is_err());
        assert!(!parse(&base).unwrap().run);
        assert!(parse(&["plain"]).is_err());
    }

    /// The command line [`ShimArgs::words`] writes, as a shim gets it.
    fn encoded(a: &ShimArgs<'_>) -> Vec<String> {
        let mut words = Vec::new();
        a.words(&mut |k, v| words.push(format!("{k}={}", std::str::from_utf8(v).unwrap())));
        words
    }

    #[test]
    fn words_parse_back_to_the_same() {
        let full = with(&[
            "root=/run/runc",
            "stdin=/i",
            "stdout=/o",
            "stderr=/e",
            "oom-score-adj=-999",
            "terminal=1",
            "console=/c.sock",
            "cols=132",
            "rows=43",
            "log-size=100000",
            "interactive=1",
            "exec=/p.json",
        ])
        .unwrap();
        for a in [
            full,
            with(&[]).unwrap(),
            with(&["run=1", "oom-score-adj=0"]).unwrap(),
            with(&["restore=/c/one", "cols=80"]).unwrap(),
        ] {
            let words = encoded(&a);
            let refs: Vec<&str> = words.iter().map(String::as_str).collect();
            assert_eq!(parse(&refs), Ok(a), "{words:?}");
        }
        let terse = encoded(&with(&["cols=80", "log-size=65536", "run=1"]).unwrap());
        assert_eq!(
            terse.len(),
            BASE.len() + 1,
            "defaults are left out: {terse:?}"
        );
        assert!(terse.contains(&"run=1".to_string()));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"12a"), None);
        assert_eq!(parse_u32(b"+1"), None);
    }
}
