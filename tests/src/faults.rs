//! A runtime wrapper that injects faults a real runtime cannot be made to
//! produce on demand.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A runtime wrapper that injects faults, per verb: `create`, `run`,
/// `start`, `kill`, `delete`, `state` (`run` is what the shim calls for a
/// `run` request: create and start in one). What each verb does is a file
/// in its directory, so a test can change it while the daemon runs.
pub struct Faults {
    dir: PathBuf,
    pub runtime: PathBuf,
}

/// A fault for one verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Wait until [`Faults::open_gate`], then run the real runtime.
    Gate,
    /// Never finish.
    Hang,
    /// Die of SIGSEGV.
    Crash,
    /// Write garbage to the log and stdout and exit 1.
    Garbage,
}

impl Faults {
    pub(crate) fn new(dir: &Path, real: &str) -> Faults {
        std::fs::create_dir_all(dir).unwrap();
        let runtime = dir.join("faulty-runtime");
        let script = format!(
            r#"#!/bin/sh
# Injects what a real runtime cannot do on demand, per verb, as the files
# {dir}/fault.VERB say; otherwise runs {real}.
dir={dir}
verb=""; log=""; prev=""
for a in "$@"; do
	[ "$prev" = --log ] && log=$a
	prev=$a
	if [ -z "$verb" ]; then
		case "$a" in create|run|start|kill|delete|state) verb=$a ;; esac
	fi
done
if [ -n "$verb" ] && [ -f "$dir/fault.$verb" ]; then
	case "$(cat "$dir/fault.$verb")" in
	gate) cat "$dir/gate.$verb" >/dev/null ;;
	hang) exec sleep 100000 ;;
	crash) kill -SEGV $$ ;;
	garbage) printf '\001\002 not json {{{{\n' >>"$log"; echo "garbage on stdout"; exit 1 ;;
	esac
fi
exec {real} "$@"
"#,
            dir = dir.display()
        );
        std::fs::write(&runtime, script).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o755)).unwrap();
        Faults {
            dir: dir.to_path_buf(),
            runtime,
        }
    }

    /// Makes `verb` do `fault` from now on.
    pub fn set(&self, verb: &str, fault: Fault) {
        let word = match fault {
            Fault::Gate => {
                let gate = self.dir.join(format!("gate.{verb}"));
                if !gate.exists() {
                    let ok = Command::new("mkfifo")
                        .arg(&gate)
                        .status()
                        .unwrap()
                        .success();
                    assert!(ok, "mkfifo");
                }
                "gate"
            }
            Fault::Hang => "hang",
            Fault::Crash => "crash",
            Fault::Garbage => "garbage",
        };
        std::fs::write(self.dir.join(format!("fault.{verb}")), word).unwrap();
    }

    /// Makes `verb` run the real runtime again (a call held at the gate
    /// stays there until [`Faults::open_gate`]).
    pub fn clear(&self, verb: &str) {
        let _ = std::fs::remove_file(self.dir.join(format!("fault.{verb}")));
    }

    /// Lets the calls held at `verb`'s gate go on.
    pub fn open_gate(&self, verb: &str) {
        // Opening the write end ends the reader's `cat`.
        drop(
            std::fs::OpenOptions::new()
                .write(true)
                .open(self.dir.join(format!("gate.{verb}")))
                .unwrap(),
        );
    }

    /// `runtime=PATH` for a request.
    pub fn option(&self) -> String {
        format!("runtime={}", self.runtime.display())
    }
}
