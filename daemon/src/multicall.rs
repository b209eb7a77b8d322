//! One program for the daemon and the client, as busybox and dropbear are
//! one: installed as one file, `nanoctr`, and a link to it named
//! `nanoctrd`. The name it is run as chooses: `nanoctrd` is the daemon,
//! a path ending in `/modules/v3/nanoctr` the Mender Update Module
//! (`ota/mender.rs`), anything else the client; `nanoctr nanoctrd ARGS...`
//! is the daemon too, and `nanoctr STATE DIR` (a Mender state word, which
//! no client verb is, and a directory) the module, for where no link can
//! be made; `nanoctr cni-exec ARGS...` runs a CNI network's plugins for
//! the daemon, in a process of their own (`net/cni.rs`). The parts share
//! std and the protocol code, so one file is far smaller than several
//! (the `split` feature builds the daemon apart).

use std::path::Path;

use crate::net::cni;
use crate::ota::mender;

/// The daemon's name, as a program and as the client's first word.
pub const DAEMON: &str = "nanoctrd";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Daemon,
    Client,
    Mender,
    /// `cni-exec`: a CNI network's chain, run for the daemon.
    Cni,
}

/// Which program `argv` asks for, and its arguments.
pub fn choose(argv: &[String]) -> (Program, &[String]) {
    let zero = argv.first().map_or("", String::as_str);
    let name = zero.rsplit('/').next().unwrap_or(zero);
    let args = argv.get(1..).unwrap_or(&[]);
    match argv {
        // Under either name: the daemon runs its own program for a
        // network, and a daemon has no such argument.
        [_, first, rest @ ..] if first == cni::EXEC => (Program::Cni, rest),
        _ if name == DAEMON => (Program::Daemon, args),
        _ if zero.ends_with(mender::PATH) => (Program::Mender, args),
        [_, first, rest @ ..] if first == DAEMON => (Program::Daemon, rest),
        [_, state, dir] if mender::STATES.contains(&state.as_str()) && Path::new(dir).is_dir() => {
            (Program::Mender, args)
        }
        _ => (Program::Client, args),
    }
}

/// Runs what `argv` (the whole command line) asks for; the exit status.
pub fn main(argv: &[String]) -> i32 {
    match choose(argv) {
        (Program::Daemon, args) => crate::server::boot::main(args),
        (Program::Mender, args) => mender::main(args),
        (Program::Cni, args) => cni::main(args),
        (Program::Client, args) => crate::client::cli::main(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chosen(argv: &[&str]) -> (Program, Vec<String>) {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        let (p, args) = choose(&argv);
        (p, args.to_vec())
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_name_chooses() {
        let d = Program::Daemon;
        let c = Program::Client;
        assert_eq!(
            chosen(&["/usr/sbin/nanoctrd", "--help"]),
            (d, words(&["--help"]))
        );
        assert_eq!(chosen(&["nanoctrd"]), (d, words(&[])));
        assert_eq!(chosen(&["nanoctr", "list"]), (c, words(&["list"])));
        assert_eq!(
            chosen(&["/usr/bin/nanoctr", "nanoctrd", "-h"]),
            (d, words(&["-h"]))
        );
        assert_eq!(
            chosen(&["./ctr", "state", "nanoctrd"]),
            (c, words(&["state", "nanoctrd"]))
        );
        assert_eq!(chosen(&["/x/nanoctrd.old"]), (c, words(&[])));
        assert_eq!(chosen(&[]), (c, words(&[])));
    }

    #[test]
    fn cni_exec_by_its_word() {
        let (n, c) = (Program::Cni, Program::Client);
        assert_eq!(
            chosen(&["/usr/bin/nanoctr", "cni-exec", "add", "--name", "x"]),
            (n, words(&["add", "--name", "x"]))
        );
        assert_eq!(chosen(&["nanoctr", "cni-exec"]), (n, words(&[])));
        // Only as the first word, under either name.
        assert_eq!(chosen(&["nanoctr", "list", "cni-exec"]).0, c);
        assert_eq!(chosen(&["/sbin/nanoctrd", "cni-exec"]).0, n);
        assert_eq!(
            chosen(&["nanoctrd", "--log", "cni-exec"]).0,
            Program::Daemon
        );
        // No verb of the client is shadowed.
        let client_words = crate::wire::VERBS
            .iter()
            .map(|v| v.0)
            .chain(crate::image::cli::VERBS)
            .chain(["attach", "exec"]);
        for verb in client_words {
            assert_ne!(verb, cni::EXEC);
        }
    }

    #[test]
    fn the_mender_module_by_path_or_state() {
        let (m, c) = (Program::Mender, Program::Client);
        let tmp = std::env::temp_dir();
        let tmp = tmp.to_str().unwrap();
        let module = "/usr/share/mender/modules/v3/nanoctr";
        assert_eq!(
            chosen(&[module, "ArtifactInstall", tmp]),
            (m, words(&["ArtifactInstall", tmp]))
        );
        // By its path, any state, known or not, and none.
        assert_eq!(chosen(&[module, "Inventory"]), (m, words(&["Inventory"])));
        assert_eq!(chosen(&["/modules/v3/nanoctr"]), (m, words(&[])));
        assert_eq!(chosen(&["/x/mymodules/v3/nanoctr", "list"]).0, c);
        // As plain nanoctr: a state word and a directory.
        assert_eq!(
            chosen(&["nanoctr", "Cleanup", tmp]),
            (m, words(&["Cleanup", tmp]))
        );
        assert_eq!(chosen(&["nanoctr", "Cleanup", "/no/such/dir"]).0, c);
        assert_eq!(chosen(&["nanoctr", "Cleanup", tmp, "x"]).0, c);
        assert_eq!(chosen(&["nanoctr", "cleanup", tmp]).0, c);
        // No verb of the client is a state word, so none is shadowed.
        let client_words = crate::wire::VERBS
            .iter()
            .map(|v| v.0)
            .chain(crate::image::cli::VERBS)
            .chain(["attach", "exec", DAEMON]);
        for verb in client_words {
            assert!(!mender::STATES.contains(&verb), "{verb}");
            assert_ne!(chosen(&["nanoctr", verb, tmp]).0, m, "{verb}");
        }
    }
}
