//! `nanoctrd`'s start-up: flags and config, the check of the config,
//! recovery, the watchdog, readiness to init, then the loop until SIGTERM.
//!
//! Exit status: 0 when it stopped on SIGTERM or SIGINT (containers keep
//! running), or printed what was asked (`--help`, `--version`, a clean
//! `--check-config`); 1 when it could not serve (the socket, the state
//! dir, the watchdog, the loop) or `--check-config` found problems; 2 when the command
//! line or the config file is wrong.

use super::notify;
use super::Daemon;
use crate::config::{Config, Flags, LogTo};
use crate::logger::{self, Level, Sink};

/// Runs the daemon with its arguments (without the program name);
/// returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let flags = match Flags::parse(args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("nanoctrd: {e}");
            return 2;
        }
    };
    if flags.help {
        print!("{}", Flags::usage());
        return 0;
    }
    if flags.version {
        println!("nanoctrd {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let cfg = match Config::load(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nanoctrd: {e}");
            return 2;
        }
    };
    if flags.check_config {
        // Problems first, the verdict last, so the last line says it all.
        let checked = cfg.check_declared();
        for p in &checked.problems {
            eprintln!("nanoctrd: {p}");
        }
        let order = checked.order.join(" ");
        match (checked.problems.len(), order.is_empty()) {
            (0, true) => println!("config ok; no containers to start"),
            (0, false) => println!("config ok; containers started in this order: {order}"),
            (n, _) => println!(
                "config has {n} problem{}; containers that would start, in this order: {}",
                if n == 1 { "" } else { "s" },
                if order.is_empty() { "none" } else { &order }
            ),
        }
        return if checked.problems.is_empty() { 0 } else { 1 };
    }
    // The readiness descriptor is claimed before the daemon opens any of
    // its own, so its number can never be one of them.
    let ready_fd = match cfg.notify_fd.map(notify::claim_fd).transpose() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("nanoctrd: notify-fd: {e}");
            return 2;
        }
    };
    // Not passed on: a runtime that sees NOTIFY_SOCKET waits for the
    // container's own READY=1.
    let notify_socket = notify::take_notify_socket();
    let level = Level::parse(&cfg.log_level).unwrap_or(Level::Info);
    match cfg.log {
        LogTo::Stderr => logger::init(Sink::Stderr, level),
        LogTo::Syslog => logger::init(Sink::Syslog(cfg.syslog_socket.clone()), level),
    }
    clean_image_store(&cfg.image_store);
    let socket = cfg.socket.clone();
    let pidfile = cfg.pidfile.clone();
    let served = Daemon::new(cfg).and_then(|mut d| {
        let r = d.recover();
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
        // Armed only now, with the table whole: recovery may take a while.
        d.start_watchdog()?;
        // Serving from here on: the socket listens, the table is whole.
        if let Some(path) = &pidfile {
            if let Err(e) = notify::write_pidfile(path) {
                logger::warn(&format!("pidfile {}: {e}", path.display()));
            }
        }
        if let Some(fd) = ready_fd {
            if let Err(e) = notify::notify_fd(fd) {
                logger::warn(&format!("notify-fd: {e}"));
            }
        }
        if let Some(addr) = &notify_socket {
            let state = format!("READY=1\nMAINPID={}", std::process::id());
            if let Err(e) = notify::sd_notify_to(addr, &state) {
                logger::warn(&format!("NOTIFY_SOCKET {addr}: {e}"));
            }
        }
        logger::info(&format!("serving {}", socket.display()));
        d.autostart();
        d.run()
    });
    if let Some(path) = &pidfile {
        notify::remove_pidfile(path);
    }
    match served {
        Ok(()) => 0,
        Err(e) => {
            logger::error(&e);
            1
        }
    }
}

/// Removes what an import killed by a power cut left in the image
/// store's `tmp/` (nothing there is in use while no import runs). The
/// store is only read and cleaned here, never parsed.
fn clean_image_store(dir: &std::path::Path) {
    if !dir.join("tmp").is_dir() {
        return;
    }
    let store = match crate::image::store::Store::open(dir) {
        Ok(s) => s,
        Err(e) => return logger::warn(&format!("image store: {}", e.message)),
    };
    if !store.try_exclusive() {
        return logger::info("image store: an import is running; its tmp/ is left to it");
    }
    match store.clean_tmp() {
        Ok(0) => {}
        Ok(n) => logger::info(&format!(
            "image store {}: removed {n} entries a dead import left",
            dir.display()
        )),
        Err(e) => logger::warn(&format!("image store: {}", e.message)),
    }
}
