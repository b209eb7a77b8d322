//! nanoctr: the client. See `nanoctr --help`; the logic is
//! `nanoctr::client::cli`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(nanoctr::client::cli::main(&args));
}
