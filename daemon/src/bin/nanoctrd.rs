//! nanoctrd: see `nanoctrd --help` and the crate docs.

use nanoctr::config::{Config, Flags};
use nanoctr::logger;
use nanoctr::server::Daemon;

fn main() {
    let flags: Flags = argh::from_env();
    if flags.version {
        println!("nanoctrd {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    let cfg = Config::load(&flags).unwrap_or_else(|e| {
        eprintln!("nanoctrd: {e}");
        std::process::exit(2)
    });
    let socket = cfg.socket.clone();
    let served = Daemon::new(cfg).and_then(|mut d| {
        let r = d.restore();
        logger::info(&format!(
            "restored {} live, {} stopped, {} lost, {} unreadable containers; cleaned up {}{}",
            r.live,
            r.stopped,
            r.lost,
            r.unknown,
            r.cleaned,
            if r.skipped > 0 {
                format!("; {} left out (--max-containers)", r.skipped)
            } else {
                String::new()
            },
        ));
        logger::info(&format!("serving {}", socket.display()));
        d.autostart();
        d.run()
    });
    if let Err(e) = served {
        logger::error(&e);
        std::process::exit(1);
    }
}
