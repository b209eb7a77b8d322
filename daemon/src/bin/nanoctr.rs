//! nanoctr: the daemon and the client in one program, chosen by the name
//! it is run as (`nanoctr::multicall`); with the `split` feature, the
//! client and the Mender module alone (and `nanoctrd` is a program of its
//! own).

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    #[cfg(not(feature = "split"))]
    let status = nanoctr::multicall::main(&argv);
    #[cfg(feature = "split")]
    let status = match nanoctr::multicall::choose(&argv) {
        (nanoctr::multicall::Program::Mender, args) => nanoctr::ota::mender::main(args),
        _ => nanoctr::client::cli::main(argv.get(1..).unwrap_or(&[])),
    };
    std::process::exit(status);
}
