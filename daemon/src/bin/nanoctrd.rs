//! nanoctrd: see `nanoctrd --help`; the logic is `nanoctr::server::boot`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(nanoctr::server::boot::main(&args));
}
