//! `nanoctr`'s command line: the request, or the client's own verbs
//! (`attach`, and `exec`, which stays with the process until it exits).
//!
//! Exit status: 0 when the request succeeded; 1 when the daemon answered
//! `ERR` (the request was refused or failed); 2 when nothing could be
//! asked: the command line is wrong, or no daemon answers on the socket;
//! `exec` (without `-d`) exits with the process's own exit status.

use std::path::Path;

use super::{self as client, Invocation};

/// Runs the client with its arguments (without the program name);
/// returns the exit status.
pub fn main(args: &[String]) -> i32 {
    if let Some(verb) = args
        .first()
        .filter(|v| crate::image::cli::VERBS.contains(&v.as_str()))
    {
        let _ = verb;
        return crate::image::cli::main(args);
    }
    let socket = std::env::var("NANOCTR_SOCKET")
        .ok()
        .or_else(client::configured_socket);
    match client::parse_args(args, socket) {
        Ok(Invocation::Help) => {
            print!("{}", client::usage());
            0
        }
        Ok(Invocation::VerbHelp(verb)) => {
            print!("{}", client::verb_usage(&verb));
            0
        }
        Ok(Invocation::Version) => {
            println!("nanoctr {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Invocation::Request { socket, words }) if words[0] == "attach" => {
            attach(&socket, &words[1..])
        }
        Ok(Invocation::Request { socket, words }) if words[0] == "exec" => exec(&socket, &words),
        Ok(Invocation::Request { socket, words }) => client::run(&socket, &words),
        Err(e) => {
            eprintln!("nanoctr: {e}\n\n{}", client::usage());
            2
        }
    }
}

/// The client's own options before a verb's words: `--detach-keys KEYS`
/// (and, for exec, `-d`). Returns the keys, the flag, and the rest.
fn client_options(args: &[String], exec: bool) -> Result<(Vec<u8>, bool, Vec<&str>), i32> {
    let mut keys = client::DEFAULT_DETACH_KEYS.to_string();
    let mut detach = false;
    let mut i = 0;
    while let Some(a) = args.get(i).map(String::as_str) {
        match a {
            "--detach-keys" => match args.get(i + 1) {
                Some(k) => {
                    keys = k.clone();
                    i += 1;
                }
                None => return Err(usage_error("--detach-keys needs KEYS")),
            },
            s if s.starts_with("--detach-keys=") => keys = s["--detach-keys=".len()..].to_string(),
            "-d" | "--detach" if exec => detach = true,
            s if s.starts_with('-') && s != "--" => {
                return Err(usage_error(&format!("unknown option {s}")))
            }
            _ => break,
        }
        i += 1;
    }
    let keys = super::attach::parse_detach_keys(&keys).map_err(|e| usage_error(&e))?;
    Ok((keys, detach, args[i..].iter().map(String::as_str).collect()))
}

/// `nanoctr attach [--detach-keys KEYS] ID [PROC]`
fn attach(socket: &Path, args: &[String]) -> i32 {
    let (keys, _, rest) = match client_options(args, false) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (id, proc) = match rest.as_slice() {
        [id] => (*id, crate::wire::INIT),
        [id, proc] => (*id, *proc),
        _ => return usage_error("usage: nanoctr attach [--detach-keys KEYS] ID [PROC]"),
    };
    match super::attach::attach(socket, id, proc, &keys) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("nanoctr: {e}");
            1
        }
    }
}

/// `nanoctr exec [-d] [--detach-keys KEYS] ID PROC [options] -- ARG...`:
/// the request, then (unless -d) the process's output, or its console with
/// `terminal`/`interactive`, until it exits; the exit status is the
/// process's.
fn exec(socket: &Path, words: &[String]) -> i32 {
    let (keys, detach, rest) = match client_options(&words[1..], true) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (id, proc) = match rest.as_slice() {
        [id, proc, ..] => (*id, *proc),
        _ => return usage_error(&format!("usage: {}", crate::wire::usage("exec"))),
    };
    let mut request = vec!["exec"];
    request.extend(&rest);
    let pid = match client::ask(socket, &request) {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("nanoctr: {e}");
            return e.status;
        }
    };
    if detach {
        println!("{pid}");
        return 0;
    }
    let options = rest.iter().skip(2).take_while(|w| **w != "--");
    let console = options
        .clone()
        .any(|w| *w == "terminal" || *w == "interactive");
    if console {
        match super::attach::attach(socket, id, proc, &keys) {
            Ok(super::attach::Left::Detached) => return 0,
            // Gone before it could be joined: its output is in its log.
            Err(_) => {
                let _ = client::run(socket, &words_of(&["logs", id, proc]));
            }
            Ok(super::attach::Left::Ended) => {}
        }
    } else if client::run(socket, &words_of(&["logs", id, proc, "follow"])) != 0 {
        return 1;
    }
    match client::ask(socket, &["wait", id, proc]) {
        Ok(answer) => answer
            .strip_prefix("exit=")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1),
        Err(e) => {
            eprintln!("nanoctr: {e}");
            e.status
        }
    }
}

fn words_of(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn usage_error(message: &str) -> i32 {
    eprintln!("nanoctr: {message}");
    2
}
