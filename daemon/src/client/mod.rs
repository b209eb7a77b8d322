//! The `nanoctr` client: its arguments become one request line; the reply
//! is printed. Exit status: 0 on `OK`, 1 on `ERR` (message on stderr), 2
//! on a usage or connection error.

pub mod attach;
pub mod cli;

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::wire::proto::{quote, ReplyLine, MAX_LINE};
use crate::wire::VERBS;

pub const DEFAULT_SOCKET: &str = "/run/nanoctr/nanoctr.sock";

/// The socket the daemon's default config file names, if it names one:
/// the client's default after `$NANOCTR_SOCKET`, so a device whose config
/// moves the socket needs nothing more.
pub fn configured_socket() -> Option<String> {
    configured("socket")
}

/// A setting of the daemon's config file (`$NANOCTR_CONFIG`, else the
/// default one), for the client's defaults.
pub fn configured(key: &str) -> Option<String> {
    let path = std::env::var_os("NANOCTR_CONFIG").map(PathBuf::from);
    let path = path
        .as_deref()
        .unwrap_or(Path::new(crate::config::DEFAULT_CONFIG));
    let text = crate::files::read_bounded_text(
        path,
        crate::files::MAX_CONFIG_FILE,
        crate::files::Links::Follow,
    )
    .ok()?;
    let conf = crate::config::file::parse(path, &text, true).ok()?;
    conf.get(key).map(|s| s.value.clone())
}

/// What ends `nanoctr attach`, docker's convention.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    Help,
    /// `nanoctr help VERB` or `nanoctr VERB --help`: that verb's usage.
    VerbHelp(String),
    Version,
    Request {
        socket: PathBuf,
        words: Vec<String>,
    },
}

/// Parses `nanoctr [--socket PATH] VERB [ARGS...]`. `env_socket` is
/// `$NANOCTR_SOCKET`, or the socket the config file names.
pub fn parse_args(args: &[String], env_socket: Option<String>) -> Result<Invocation, String> {
    let mut socket = env_socket.map(PathBuf::from);
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            "--socket" => {
                let path = args.get(i + 1).ok_or("--socket needs a path")?;
                socket = Some(path.into());
                i += 2;
            }
            s if s.starts_with("--socket=") => {
                socket = Some(s["--socket=".len()..].into());
                i += 1;
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            _ => break,
        }
    }
    let mut words = args[i..].to_vec();
    if words.is_empty() {
        return Err("no request given".into());
    }
    if let Some(verb) = help_for(&words)? {
        return Ok(Invocation::VerbHelp(verb));
    }
    absolutize(&mut words);
    Ok(Invocation::Request {
        socket: socket.unwrap_or_else(|| DEFAULT_SOCKET.into()),
        words,
    })
}

/// The verb whose help `words` ask for, if they do: `help VERB`, or
/// `-h`/`--help` among a verb's words (before a `--`, after which words
/// are a process's arguments).
fn help_for(words: &[String]) -> Result<Option<String>, String> {
    let known = |v: &str| VERBS.iter().any(|e| e.0 == v);
    if let [help, verb] = words {
        if help == "help" {
            return match known(verb) {
                true => Ok(Some(verb.clone())),
                false => Err(format!("no verb {verb}")),
            };
        }
    }
    let asks = words[1..]
        .iter()
        .take_while(|w| *w != "--")
        .any(|w| w == "-h" || w == "--help");
    Ok((asks && known(&words[0])).then(|| words[0].clone()))
}

/// The usage of one verb, as `nanoctr VERB --help` prints it.
pub fn verb_usage(verb: &str) -> String {
    let (_, usage, what) = VERBS
        .iter()
        .find(|v| v.0 == verb)
        .copied()
        .unwrap_or_default();
    let client = match verb {
        "attach" => "\nthe client: nanoctr attach [--detach-keys KEYS] ID [PROC]\n  \
                     joins the console; KEYS (default ctrl-p,ctrl-q) leave it running\n",
        "exec" => "\nthe client: nanoctr exec [-d | --detach] [--detach-keys KEYS] ID PROC [options] -- ARG...\n  \
                   stays with the process until it exits and exits with its status;\n  \
                   -d prints its pid and leaves it running\n",
        _ => "",
    };
    format!("usage: nanoctr {usage}\n  {what}\n{client}")
}

/// The daemon takes absolute paths only; a person types relative ones.
fn absolutize(words: &mut [String]) {
    let abs = |p: &str| -> String {
        std::path::absolute(p).map_or_else(|_| p.to_string(), |a| a.to_string_lossy().into_owned())
    };
    let verb = words.first().map_or("", String::as_str);
    let with_bundle = matches!(verb, "create" | "run" | "restore");
    let with_dir = matches!(verb, "checkpoint" | "checkpoints" | "checkpoint-delete");
    if !with_bundle && !with_dir {
        return;
    }
    if let Some(bundle) = words.get_mut(2).filter(|_| with_bundle) {
        if !bundle.contains('=') && !bundle.is_empty() {
            *bundle = abs(bundle);
        }
    }
    for w in words.iter_mut().skip(2) {
        if let Some((key, value)) = w.split_once('=') {
            let is_path = matches!(key, "stdin" | "stdout" | "stderr" | "dir")
                || (matches!(key, "runtime" | "overlay") && value.contains('/'));
            if is_path && !value.is_empty() && !value.starts_with('/') {
                *w = format!("{key}={}", abs(value));
            }
        }
    }
}

/// One request line from words.
pub fn request_line(words: &[String]) -> Result<String, String> {
    let mut line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    if line.len() > MAX_LINE {
        return Err(format!("request longer than {MAX_LINE} bytes"));
    }
    line.push('\n');
    Ok(line)
}

pub fn usage() -> String {
    let mut s = String::from(
        "usage: nanoctr [--socket PATH] VERB [ARGS...]\n\n\
         Sends one request to nanoctrd and prints the answer. Exits 0 when the\n\
         daemon answers OK, 1 when it answers ERR (the message goes to stderr),\n\
         2 on a usage or connection error.\n\n\
         options:\n  \
         --socket PATH   daemon socket (default $NANOCTR_SOCKET, else the socket\n                  /etc/nanoctr/nanoctrd.conf names, else /run/nanoctr/nanoctr.sock)\n  \
         -h, --help      this text\n  \
         -V, --version   the client's version\n\
         nanoctr help VERB, or nanoctr VERB --help, shows one verb.\n\n\
         attach and exec, as the client does them:\n  \
         nanoctr attach [--detach-keys KEYS] ID [PROC]\n      \
         join the process's console (or stdio); KEYS leave it running\n      \
         (default ctrl-p,ctrl-q; a comma-separated list of ctrl-X or single characters)\n  \
         nanoctr exec [-d | --detach] [--detach-keys KEYS] ID PROC [options] -- ARG...\n      \
         runs the process and stays with it: its output (and, with terminal or\n      \
         interactive, your input) until it exits, then exits with its status;\n      \
         -d prints its pid and leaves it running\n\n\
         verbs:\n",
    );
    for (_, usage, what) in VERBS {
        s.push_str(&format!("  {usage}\n      {what}\n"));
    }
    s.push_str(
        "\nRelative paths (BUNDLE, stdin=, stdout=, stderr=, dir=, overlay=) are made absolute.\n",
    );
    s
}

/// Sends the request and prints the reply; returns the exit status.
pub fn run(socket: &Path, words: &[String]) -> i32 {
    if words.first().map(String::as_str) == Some("events") {
        return follow_events(socket, words.to_vec());
    }
    let (stream, sent) = match send(socket, words) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut out = io::stdout().lock();
    for line in BufReader::new(&stream).lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return fail(2, &format!("reading the answer: {e}")),
        };
        let shown = match ReplyLine::parse(&line) {
            ReplyLine::Ok(rest) => {
                if !rest.is_empty() {
                    let _ = writeln!(out, "{rest}");
                }
                return 0;
            }
            ReplyLine::Err(code, message) => return fail(1, &format!("{message} ({code})")),
            ReplyLine::Text(text) => text,
            ReplyLine::Data(l) | ReplyLine::Event(l) => l,
        };
        if writeln!(out, "{shown}").is_err() {
            return 2;
        }
    }
    match sent {
        Err(e) => fail(2, &format!("cannot send the request: {e}")),
        Ok(()) => fail(2, "nanoctrd closed the connection without an answer"),
    }
}

/// Why [`ask`] got no answer it could use, with the exit status that says
/// so (see `cli`): 1 for the daemon's `ERR`, 2 when it could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: i32,
    /// The daemon's error code (`not-found`, `state`, ...); empty when it
    /// could not be asked.
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Failure> for String {
    fn from(f: Failure) -> String {
        f.message
    }
}

/// One request whose answer has no data lines: what follows `OK`, or the
/// error as a person reads it.
pub fn ask(socket: &Path, words: &[&str]) -> Result<String, Failure> {
    request(socket, words).map(|(_, ok)| ok)
}

/// One request: its data lines and what follows `OK`, or the error as a
/// person reads it.
pub fn request(socket: &Path, words: &[&str]) -> Result<(Vec<String>, String), Failure> {
    let unasked = |message: String| Failure {
        status: 2,
        code: String::new(),
        message,
    };
    let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    let (stream, _) = send(socket, &words)
        .map_err(|_| unasked(format!("cannot reach nanoctrd at {}", socket.display())))?;
    let mut data = Vec::new();
    for line in BufReader::new(&stream).lines() {
        let line = line.map_err(|e| unasked(e.to_string()))?;
        match ReplyLine::parse(&line) {
            ReplyLine::Ok(rest) => return Ok((data, rest.to_string())),
            ReplyLine::Err(code, message) => {
                return Err(Failure {
                    status: 1,
                    code: code.to_string(),
                    message: format!("{message} ({code})"),
                })
            }
            ReplyLine::Data(l) => data.push(l.to_string()),
            _ => {}
        }
    }
    Err(unasked(
        "nanoctrd closed the connection without an answer".into(),
    ))
}

/// Connects and sends one request line. A daemon that turns the connection
/// away answers and closes before reading: a failed write still leaves its
/// answer to read, so the write's result is handed back rather than fatal.
fn send(socket: &Path, words: &[String]) -> Result<(UnixStream, io::Result<()>), i32> {
    let line = request_line(words).map_err(|e| fail(2, &e))?;
    let stream = UnixStream::connect(socket).map_err(|e| {
        let msg = format!(
            "cannot connect to {}: {e} (is nanoctrd running?)",
            socket.display()
        );
        fail(2, &msg)
    })?;
    let sent = (&stream).write_all(line.as_bytes());
    Ok((stream, sent))
}

/// `events`: prints the stream as it comes. When the daemon cuts the
/// stream off because this client fell behind (`EVENT type=overflow
/// next=SEQ`), it connects again from SEQ, so nothing still retained is
/// missed.
fn follow_events(socket: &Path, mut words: Vec<String>) -> i32 {
    let mut out = io::stdout().lock();
    'connect: loop {
        let (stream, _) = match send(socket, &words) {
            Ok(s) => s,
            Err(code) => return code,
        };
        for line in BufReader::new(&stream).lines() {
            let Ok(line) = line else { break };
            match ReplyLine::parse(&line) {
                ReplyLine::Err(code, message) => return fail(1, &format!("{message} ({code})")),
                ReplyLine::Event(l) if l.starts_with("EVENT type=overflow ") => {
                    let next = l
                        .rsplit_once("next=")
                        .and_then(|(_, n)| n.parse::<u64>().ok());
                    let Some(next) = next else { break };
                    eprintln!("nanoctr: fell behind the event stream; going on from seq {next}");
                    words.retain(|w| !w.starts_with("since="));
                    words.push(format!("since={}", next.saturating_sub(1)));
                    continue 'connect;
                }
                _ => {
                    if writeln!(out, "{line}").is_err() {
                        return 2;
                    }
                }
            }
        }
        return fail(2, "nanoctrd closed the event stream");
    }
}

fn fail(code: i32, message: &str) -> i32 {
    eprintln!("nanoctr: {message}");
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn socket_sources() {
        let inv = parse_args(&args(&["list"]), None).unwrap();
        assert_eq!(
            inv,
            Invocation::Request {
                socket: DEFAULT_SOCKET.into(),
                words: args(&["list"])
            }
        );
        let inv = parse_args(&args(&["list"]), Some("/e.sock".into())).unwrap();
        assert!(
            matches!(inv, Invocation::Request { socket, .. } if socket == Path::new("/e.sock"))
        );
        let inv = parse_args(&args(&["--socket", "/a", "list"]), Some("/e".into())).unwrap();
        assert!(matches!(inv, Invocation::Request { socket, .. } if socket == Path::new("/a")));
        let inv = parse_args(&args(&["--socket=/b", "list"]), None).unwrap();
        assert!(matches!(inv, Invocation::Request { socket, .. } if socket == Path::new("/b")));
    }

    #[test]
    fn options_and_errors() {
        assert_eq!(parse_args(&args(&["--help"]), None), Ok(Invocation::Help));
        assert_eq!(parse_args(&args(&["-V"]), None), Ok(Invocation::Version));
        let help = |w: &[&str]| parse_args(&args(w), None);
        let pause = Ok(Invocation::VerbHelp("pause".into()));
        assert_eq!(help(&["help", "pause"]), pause);
        assert_eq!(help(&["pause", "--help"]), pause);
        assert_eq!(help(&["pause", "web", "-h"]), pause);
        assert!(help(&["help", "bogus"]).is_err());
        // After `--`, --help is the process's.
        assert!(matches!(
            help(&["exec", "web", "p", "--", "ls", "--help"]),
            Ok(Invocation::Request { .. })
        ));
        assert!(verb_usage("update").contains("memory=BYTES"));
        assert!(parse_args(&args(&[]), None).is_err());
        assert!(parse_args(&args(&["--socket"]), None).is_err());
        assert!(parse_args(&args(&["--bogus", "list"]), None).is_err());
        // After the verb, everything is the request's.
        let inv = parse_args(&args(&["kill", "web", "-9"]), None).unwrap();
        assert!(
            matches!(inv, Invocation::Request { words, .. } if words == args(&["kill", "web", "-9"]))
        );
    }

    #[test]
    fn relative_paths_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        let inv = parse_args(
            &args(&[
                "run",
                "web",
                "b",
                "stdout=o",
                "stdin=/i",
                "runtime=./rt",
                "label.x=y",
            ]),
            None,
        )
        .unwrap();
        let Invocation::Request { words, .. } = inv else {
            panic!()
        };
        assert_eq!(words[2], cwd.join("b").to_string_lossy());
        assert_eq!(words[3], format!("stdout={}", cwd.join("o").display()));
        assert_eq!(words[4], "stdin=/i");
        assert_eq!(words[5], format!("runtime={}", cwd.join("rt").display()));
        assert_eq!(words[6], "label.x=y");
        let Invocation::Request { words, .. } = parse_args(&args(&["start", "rel"]), None).unwrap()
        else {
            panic!()
        };
        assert_eq!(words, args(&["start", "rel"]));
    }

    #[test]
    fn lines_are_quoted_and_bounded() {
        assert_eq!(
            request_line(&args(&["state", "a b"])).unwrap(),
            "state \"a b\"\n"
        );
        assert!(request_line(&args(&["x", &"y".repeat(MAX_LINE)])).is_err());
    }
}
