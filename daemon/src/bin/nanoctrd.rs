//! nanoctrd as a program of its own (the `split` feature); by default it
//! is a link to `nanoctr`. The logic is `nanoctr::server::boot`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(nanoctr::server::boot::main(&args));
}
