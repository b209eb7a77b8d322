//! One program for the daemon and the client, as busybox and dropbear are
//! one: installed as one file, `nanoctr`, and a link to it named
//! `nanoctrd`. The name it is run as chooses: `nanoctrd` is the daemon,
//! anything else the client; `nanoctr nanoctrd ARGS...` is the daemon too,
//! for where no link can be made. The two share std and the protocol code,
//! so one file is far smaller than two (the `split` feature builds two).

/// The daemon's name, as a program and as the client's first word.
pub const DAEMON: &str = "nanoctrd";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Daemon,
    Client,
}

/// Which program `argv` asks for, and its arguments.
pub fn choose(argv: &[String]) -> (Program, &[String]) {
    let name = argv
        .first()
        .map_or("", |a| a.rsplit('/').next().unwrap_or(a));
    match argv {
        _ if name == DAEMON => (Program::Daemon, argv.get(1..).unwrap_or(&[])),
        [_, first, rest @ ..] if first == DAEMON => (Program::Daemon, rest),
        _ => (Program::Client, argv.get(1..).unwrap_or(&[])),
    }
}

/// Runs what `argv` (the whole command line) asks for; the exit status.
pub fn main(argv: &[String]) -> i32 {
    match choose(argv) {
        (Program::Daemon, args) => crate::server::boot::main(args),
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
}
