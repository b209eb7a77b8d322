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
        Ok(Invocation::Request { socket, words }) => client::run(&socket, &words),
        Err(e) => {
            eprintln!("nanoctr: {e}\n\n{}", client::usage());
            2
        }
    };
    std::process::exit(code);
}
