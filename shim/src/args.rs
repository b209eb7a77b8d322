//! The shim's command line: `key=value` words, in any order, so that `ps`
//! shows what a shim is for.
//!
//! ```text
//! nanoctr-shim id=ID bundle=DIR runtime=PATH log=PATH pid-file=PATH
//!              startup-fd=N [root=DIR] [stdin=PATH] [stdout=PATH] [stderr=PATH]
//!              [oom-score-adj=N] [run=1]
//! ```
//!
//! `log` and `pid-file` are absolute: a runtime may resolve relative paths
//! against the bundle rather than its working directory (crun does).
//!
//! Every value is a suffix of a NUL-terminated `argv` string, so it is handed
//! on to the runtime as a C string without a copy.

use core::ffi::CStr;

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
    /// Container stdin; `/dev/null` when absent.
    pub stdin: Option<&'a CStr>,
    /// Container stdout; `output` in the state dir when absent.
    pub stdout: Option<&'a CStr>,
    /// Container stderr; the same file as stdout when absent.
    pub stderr: Option<&'a CStr>,
    /// Write end of the pipe on which the create result is reported.
    pub startup_fd: i32,
    /// The shim's own `oom_score_adj`; its runtime children get 0 back.
    pub oom_score_adj: Option<i32>,
    /// `run=1`: `<runtime> run --detach` in place of `create`, so the
    /// container starts at once (one runtime call instead of two).
    pub run: bool,
}

/// Why a command line was refused; the text is shown to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgError(pub &'static str);

impl<'a> ShimArgs<'a> {
    /// Parses the words after `argv[0]`.
    pub fn parse<I: IntoIterator<Item = &'a CStr>>(words: I) -> Result<Self, ArgError> {
        let mut id = None;
        let mut bundle = None;
        let mut runtime = None;
        let mut log = None;
        let mut pid_file = None;
        let mut startup_fd = None;
        let mut oom = None;
        let mut run = None;
        let mut out = ShimArgs {
            id: c"",
            bundle: c"",
            runtime: c"",
            log: c"",
            pid_file: c"",
            root: None,
            stdin: None,
            stdout: None,
            stderr: None,
            startup_fd: -1,
            oom_score_adj: None,
            run: false,
        };
        for word in words {
            let (key, value) = split(word).ok_or(ArgError("expected key=value"))?;
            if value.is_empty() {
                return Err(ArgError("empty value"));
            }
            let slot = match key {
                b"id" => &mut id,
                b"bundle" => &mut bundle,
                b"runtime" => &mut runtime,
                b"log" => &mut log,
                b"pid-file" => &mut pid_file,
                b"root" => &mut out.root,
                b"stdin" => &mut out.stdin,
                b"stdout" => &mut out.stdout,
                b"stderr" => &mut out.stderr,
                b"startup-fd" => &mut startup_fd,
                b"oom-score-adj" => &mut oom,
                b"run" => &mut run,
                _ => return Err(ArgError("unknown key")),
            };
            if slot.replace(value).is_some() {
                return Err(ArgError("key given twice"));
            }
        }
        out.id = id.ok_or(ArgError("missing id="))?;
        out.bundle = bundle.ok_or(ArgError("missing bundle="))?;
        out.runtime = runtime.ok_or(ArgError("missing runtime="))?;
        out.log = log.ok_or(ArgError("missing log="))?;
        out.pid_file = pid_file.ok_or(ArgError("missing pid-file="))?;
        let fd = startup_fd.ok_or(ArgError("missing startup-fd="))?;
        out.startup_fd = parse_u32(fd.to_bytes())
            .and_then(|n| i32::try_from(n).ok())
            .filter(|&n| n > 2)
            .ok_or(ArgError("startup-fd must be a number above 2"))?;
        out.run = match run.map(CStr::to_bytes) {
            None => false,
            Some(b"1") => true,
            Some(_) => return Err(ArgError("run must be 1")),
        };
        if let Some(adj) = oom {
            let digits = adj.to_bytes();
            let (neg, abs) = match digits.split_first() {
                Some((b'-', rest)) => (true, rest),
                _ => (false, digits),
            };
            let n = parse_u32(abs).filter(|&n| n <= 1000);
            let n = n.ok_or(ArgError("oom-score-adj must be between -1000 and 1000"))? as i32;
            out.oom_score_adj = Some(if neg { -n } else { n });
        }
        Ok(out)
    }
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
        let base = [
            "id=x",
            "bundle=/b",
            "runtime=/r",
            "log=/l",
            "pid-file=/p",
            "startup-fd=3",
        ];
        for (i, expect) in [
            "missing id=",
            "missing bundle=",
            "missing runtime=",
            "missing log=",
            "missing pid-file=",
            "missing startup-fd=",
        ]
        .iter()
        .enumerate()
        {
            let mut words = base.to_vec();
            words.remove(i);
            assert_eq!(parse(&words), Err(ArgError(expect)));
        }
        let mut words = base.to_vec();
        words.push("bogus=1");
        assert_eq!(parse(&words), Err(ArgError("unknown key")));
        words.pop();
        words.push("id=y");
        assert_eq!(parse(&words), Err(ArgError("key given twice")));
        let with_fd = |fd: &'static str| {
            let mut words = base.to_vec();
            words[5] = fd;
            parse(&words)
        };
        assert!(with_fd("startup-fd=3").is_ok());
        assert!(with_fd("startup-fd=2").is_err());
        assert!(with_fd("startup-fd=-4").is_err());
        assert!(with_fd("startup-fd=").is_err());
        let with_oom = |adj: &'static str| {
            let mut words = base.to_vec();
            words.push(adj);
            parse(&words).map(|a| a.oom_score_adj)
        };
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
