//! nanoctrd as a program of its own (the `split` feature); by default it
//! is a link to `nanoctr`. The logic is `nanoctr::server::boot`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The hook a `net=cni` container's config runs is this program.
    if args.first().map(String::as_str) == Some(nanoctr::net::cni::EXEC) {
        std::process::exit(nanoctr::net::cni::main(&args[1..]));
    }
    std::process::exit(nanoctr::server::boot::main(&args));
}
