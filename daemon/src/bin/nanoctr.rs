//! nanoctr: the client. See `nanoctr --help`.

use nanoctr::client::{self, Invocation};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match client::parse_args(&args, std::env::var("NANOCTR_SOCKET").ok()) {
        Ok(Invocation::Help) => {
            print!("{}", client::usage());
            0
        }
        Ok(Invocation::Version) => {
            println!("nanoctr {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Invocation::Request { socket, words }) if words[0] == "attach" => {
            attach(&socket, &words[1..])
        }
        Ok(Invocation::Request { socket, words }) => client::run(&socket, &words),
        Err(e) => {
            eprintln!("nanoctr: {e}\n\n{}", client::usage());
            2
        }
    };
    std::process::exit(code);
}

/// `nanoctr attach ID [PROC] [--detach-keys KEYS]`
fn attach(socket: &std::path::Path, args: &[String]) -> i32 {
    let mut keys = client::DEFAULT_DETACH_KEYS.to_string();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--detach-keys" => match it.next() {
                Some(k) => keys = k.clone(),
                None => return usage_error("--detach-keys needs KEYS"),
            },
            s if s.starts_with("--detach-keys=") => keys = s["--detach-keys=".len()..].to_string(),
            _ => rest.push(a.as_str()),
        }
    }
    let keys = match nanoctr::attach::parse_detach_keys(&keys) {
        Ok(k) => k,
        Err(e) => return usage_error(&e),
    };
    let id = match rest.as_slice() {
        [id] | [id, "init"] => *id,
        _ => return usage_error("usage: nanoctr attach ID [--detach-keys KEYS]"),
    };
    match nanoctr::attach::attach(socket, id, &keys) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nanoctr: {e}");
            1
        }
    }
}

fn usage_error(message: &str) -> i32 {
    eprintln!("nanoctr: {message}");
    2
}
