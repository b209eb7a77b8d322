//! The control tty: a terminal (usually a serial console) on which a person
//! types commands to the daemon.
//!
//! [`open_control_tty`] opens it non-blocking, for the daemon's epoll loop,
//! and sets its line discipline for someone typing:
//!
//! - canonical mode: the kernel edits the line (erase, kill, word erase
//!   with `IEXTEN`) and the daemon reads whole lines;
//! - echo, with erase shown as backspace-space-backspace and control
//!   characters as `^X`;
//! - CR becomes NL on input, NL becomes CR NL on output;
//! - no signals from the keyboard (`ISIG` off): ^C and ^Z are characters.
//!   The daemon is not the tty's session leader and opens it with
//!   `O_NOCTTY`, so they would signal nobody useful anyway;
//! - no XON/XOFF flow control (`IXON` off), so ^S cannot freeze the output;
//! - 8 bits, receiver on, modem control lines ignored (`CLOCAL`), so a
//!   cable without DCD works.
//!
//! The line speed, parity and stop bits stay as they are configured (by
//! the kernel command line, or `stty`). The special characters stay too:
//! in particular `VEOF` (^D) on an empty line makes a read return 0, which
//! on a tty is not a hangup.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::termios::{
    self, ControlModes, InputModes, LocalModes, OptionalActions, OutputModes, Termios,
};

use rustix::event::epoll::{self, EventData};

use super::conn::Client;
use super::source::Source;
use super::Daemon;
use crate::server::Effects;
use crate::slab::Ref;
use crate::sys;

/// Opens the terminal at `path` read-write, non-blocking, close-on-exec and
/// without making it a controlling terminal, and sets it up for a person
/// typing (see the module docs). Errors name `path`; a file that is not a
/// terminal is an error.
pub fn open_control_tty(path: &Path) -> io::Result<OwnedFd> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(named)?;
    let fd = sys::fd(&f);
    if !termios::isatty(fd) {
        return Err(io::Error::other(format!(
            "{}: not a terminal",
            path.display()
        )));
    }
    let mut t = termios::tcgetattr(fd).map_err(|e| named(sys::io_error(e)))?;
    for_typing(&mut t);
    termios::tcsetattr(fd, OptionalActions::Now, &t).map_err(|e| named(sys::io_error(e)))?;
    Ok(f.into())
}

/// The modes for a person typing; speed and special characters untouched.
fn for_typing(t: &mut Termios) {
    t.input_modes.remove(
        InputModes::IXON
            | InputModes::INLCR
            | InputModes::IGNCR
            | InputModes::BRKINT
            | InputModes::ISTRIP,
    );
    t.input_modes.insert(InputModes::ICRNL | InputModes::IUTF8);
    t.output_modes
        .remove(OutputModes::OCRNL | OutputModes::ONOCR | OutputModes::ONLRET);
    t.output_modes
        .insert(OutputModes::OPOST | OutputModes::ONLCR);
    t.control_modes.remove(ControlModes::CSIZE);
    t.control_modes
        .insert(ControlModes::CS8 | ControlModes::CREAD | ControlModes::CLOCAL);
    t.local_modes
        .remove(LocalModes::ISIG | LocalModes::ECHONL | LocalModes::NOFLSH | LocalModes::TOSTOP);
    t.local_modes.insert(
        LocalModes::ICANON
            | LocalModes::ECHO
            | LocalModes::ECHOE
            | LocalModes::ECHOK
            | LocalModes::ECHOCTL
            | LocalModes::ECHOKE
            | LocalModes::IEXTEN,
    );
}

/// How long the control tty stays closed after it went away or could not
/// be opened.
pub(super) const TTY_REOPEN: std::time::Duration = std::time::Duration::from_secs(1);

/// The serial line the protocol is also served on (`--control-tty`).
pub(crate) struct ControlTty {
    pub path: std::path::PathBuf,
    /// Its client, while it is open.
    pub client: Option<Ref>,
    /// When to try opening it again.
    pub reopen_at: Option<std::time::Instant>,
    /// Why it last could not be opened, so that is said once.
    pub last_error: Option<String>,
}

impl<F: Effects> Daemon<F> {
    /// Opens the control tty and serves it as a client; when that fails,
    /// tries again after [`TTY_REOPEN`], saying so once per new reason.
    pub(crate) fn open_tty(&mut self) {
        let Some(t) = &mut self.tty else {
            return;
        };
        t.reopen_at = None;
        let fail = |t: &mut ControlTty, why: String| {
            if t.last_error.as_deref() != Some(why.as_str()) {
                crate::logger::warn(&format!("control tty: {why}; trying again every second"));
                t.last_error = Some(why);
            }
            t.reopen_at = Some(std::time::Instant::now() + TTY_REOPEN);
        };
        let fd = match crate::server::control_tty::open_control_tty(&t.path) {
            Ok(fd) => fd,
            Err(e) => return fail(t, e.to_string()),
        };
        let client = Client::new(std::fs::File::from(fd), true);
        let Ok(r) = self.clients.insert(client) else {
            let t = self.tty.as_mut().expect("checked above");
            return fail(t, "the client table is full".into());
        };
        let Some(c) = self.clients.get_mut(r) else {
            return;
        };
        c.interest = c.wanted_interest();
        let token = EventData::new_u64(Source::Client(r).token());
        let added = epoll::add(&self.epoll, sys::fd(&c.stream), token, c.interest);
        let t = self.tty.as_mut().expect("checked above");
        match added {
            Ok(()) => {
                if t.last_error.take().is_some() {
                    crate::logger::info(&format!("control tty {} is back", t.path.display()));
                }
                t.client = Some(r);
            }
            Err(e) => {
                self.clients.remove(r);
                let t = self.tty.as_mut().expect("checked above");
                fail(t, format!("epoll: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::pty::{self, OpenptFlags};
    use std::path::PathBuf;

    /// A pty pair: the master, and the slave's path. The slave is left in
    /// raw mode at 9600 baud, to see what `open_control_tty` changes.
    pub(super) fn pty_pair() -> (OwnedFd, PathBuf) {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = sys::own(pty::openpt(flags).unwrap());
        pty::grantpt(sys::fd(&master)).unwrap();
        pty::unlockpt(sys::fd(&master)).unwrap();
        // The slave's name without `ptsname` (it needs rustix's `alloc`).
        let slave = sys::own(pty::ioctl_tiocgptpeer(sys::fd(&master), flags).unwrap());
        let mut t = termios::tcgetattr(sys::fd(&slave)).unwrap();
        t.make_raw();
        t.local_modes.insert(LocalModes::ISIG);
        t.input_modes.insert(InputModes::IXON);
        t.control_modes.remove(ControlModes::CLOCAL);
        t.set_speed(9600).unwrap();
        termios::tcsetattr(sys::fd(&slave), OptionalActions::Now, &t).unwrap();
        let path = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&slave)
        ))
        .unwrap();
        (master, path)
    }

    /// Reads what arrives on `fd` until `want` bytes have come (or five
    /// seconds pass).
    pub(super) fn read_some(fd: &OwnedFd, want: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let timeout = Timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        let bfd = sys::fd(fd);
        while got.len() < want {
            let mut p = [PollFd::new(&bfd, PollFlags::IN)];
            if poll(&mut p, Some(&timeout)).unwrap() == 0 {
                break;
            }
            let mut b = [0u8; 256];
            match rustix::io::read(sys::fd(fd), &mut b) {
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        got
    }

    pub(super) fn write(fd: &OwnedFd, b: &[u8]) {
        assert_eq!(rustix::io::write(sys::fd(fd), b).unwrap(), b.len());
    }

    #[test]
    pub(super) fn a_person_typing() {
        let (master, path) = pty_pair();
        let tty = open_control_tty(&path).unwrap();

        // The modes, and the speed as it was.
        let t = termios::tcgetattr(sys::fd(&tty)).unwrap();
        assert!(t
            .local_modes
            .contains(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ECHOE));
        assert!(!t.local_modes.contains(LocalModes::ISIG));
        assert!(!t.input_modes.contains(InputModes::IXON));
        assert!(t
            .control_modes
            .contains(ControlModes::CLOCAL | ControlModes::CS8 | ControlModes::CREAD));
        assert_eq!(t.output_speed(), 9600);

        // Non-blocking: nothing typed yet.
        let mut b = [0u8; 16];
        assert_eq!(
            rustix::io::read(sys::fd(&tty), &mut b),
            Err(rustix::io::Errno::AGAIN)
        );

        // A typo erased with DEL (the default VERASE): the daemon reads the
        // edited line, the person sees the echo with the erase.
        write(&master, b"lis\x7ft\n");
        assert_eq!(read_some(&tty, 4), b"lit\n");
        assert_eq!(read_some(&master, 9), b"lis\x08 \x08t\r\n");

        // A terminal's Enter sends CR: the daemon reads NL.
        write(&master, b"ps\r");
        assert_eq!(read_some(&tty, 3), b"ps\n");
        assert_eq!(read_some(&master, 4), b"ps\r\n");

        // ^C and ^S are characters, signalling and stopping nothing.
        write(&master, b"\x03\x13\n");
        assert_eq!(read_some(&tty, 3), b"\x03\x13\n");
        assert_eq!(read_some(&master, 6), b"^C^S\r\n");

        // Output: NL goes out as CR NL, and is not held up by the ^S.
        write(&tty, b"OK\n");
        assert_eq!(read_some(&master, 4), b"OK\r\n");
    }

    #[test]
    pub(super) fn not_a_terminal() {
        let e = open_control_tty(Path::new("/dev/null")).unwrap_err();
        assert_eq!(e.to_string(), "/dev/null: not a terminal");
        let e = open_control_tty(Path::new("/nonexistent/tty")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().starts_with("/nonexistent/tty: "), "{e}");
    }
}
