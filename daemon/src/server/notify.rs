//! Telling the daemon's supervisor it is ready, and its pidfile.
//!
//! - s6 (`notification-fd`): the supervisor hands down a pipe as descriptor
//!   N; the daemon writes a newline to it and closes it when ready. The
//!   descriptor is claimed by number at start-up with [`claim_fd`], before
//!   the daemon opens anything (else N could be one of its own), and
//!   signalled later with [`notify_fd`].
//! - systemd (`Type=notify`): `NOTIFY_SOCKET` names a unix datagram socket,
//!   a path or, with a leading `@`, an abstract name; the daemon sends it
//!   `READY=1\nMAINPID=<pid>`. [`take_notify_socket`] reads the variable
//!   and removes it from the environment, so that the runtime and shims the
//!   daemon starts do not inherit it (runc given `NOTIFY_SOCKET` waits for
//!   the container itself to send `READY=1`).
//! - A pidfile, written atomically ([`write_pidfile`]).

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use rustix::io::FdFlags;

use crate::sys;

/// Takes the readiness descriptor `fd` handed down by the supervisor and
/// marks it close-on-exec (the runtime calls must not hold it open). Call
/// it before the daemon opens any descriptor. Fails if `fd` is not open
/// (the supervisor did not pass one) or is 0, 1 or 2.
pub fn claim_fd(fd: i32) -> io::Result<OwnedFd> {
    let owned = sys::claim_inherited_fd(fd)
        .map_err(|e| io::Error::new(e.kind(), format!("notification fd {fd}: {e}")))?;
    rustix::io::fcntl_setfd(sys::fd(&owned), FdFlags::CLOEXEC).map_err(sys::io_error)?;
    Ok(owned)
}

/// Signals readiness on a claimed descriptor: writes a newline and closes
/// it.
pub fn notify_fd(fd: OwnedFd) -> io::Result<()> {
    let mut f = fs::File::from(fd);
    f.write_all(b"\n")
}

/// `NOTIFY_SOCKET`, removed from the environment. Call it at start-up,
/// while the daemon has one thread and before it starts any process.
pub fn take_notify_socket() -> Option<String> {
    let addr = std::env::var_os("NOTIFY_SOCKET")?;
    std::env::remove_var("NOTIFY_SOCKET");
    addr.into_string().ok()
}

/// Sends `state` (e.g. `READY=1\nMAINPID=123`) to the socket named by
/// `NOTIFY_SOCKET`, if it is set; says whether it was.
pub fn sd_notify(state: &str) -> io::Result<bool> {
    match std::env::var("NOTIFY_SOCKET") {
        Ok(addr) => sd_notify_to(&addr, state).map(|()| true),
        Err(_) => Ok(false),
    }
}

/// Sends `state` as one datagram to `addr`: an absolute path, or `@name`
/// for an abstract socket. The send does not wait.
pub fn sd_notify_to(addr: &str, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    if let Some(name) = addr.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let to = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &to)?;
    } else if addr.starts_with('/') {
        sock.send_to(state.as_bytes(), addr)?;
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NOTIFY_SOCKET {addr:?}: not an absolute path or @name"),
        ));
    }
    Ok(())
}

fn temp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    tmp.into()
}

/// Writes the daemon's pid and a newline to `path`, atomically: to a
/// temporary file beside it, then renamed over it. (Not synced to disk: a
/// pidfile means nothing after a power loss anyway.)
pub fn write_pidfile(path: &Path) -> io::Result<()> {
    let tmp = temp_path(path);
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| writeln!(f, "{}", std::process::id()))
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Removes the pidfile at `path` if it still holds this process's pid (a
/// daemon started since keeps its own). Errors are ignored.
pub fn remove_pidfile(path: &Path) {
    let mut text = String::new();
    let ours = fs::File::open(path)
        .and_then(|f| f.take(32).read_to_string(&mut text))
        .is_ok_and(|_| text.trim_end().parse() == Ok(std::process::id()));
    if ours {
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;
    use std::time::Duration;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nanoctr-notify-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn readiness_fd() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let (r, w) = (sys::own(r), sys::own(w));
        // As if inherited: the number is all the daemon has.
        let n = w.into_raw_fd();
        let fd = claim_fd(n).unwrap();
        let flags = rustix::io::fcntl_getfd(sys::fd(&fd)).unwrap();
        assert!(flags.contains(FdFlags::CLOEXEC));
        notify_fd(fd).unwrap();
        let mut r = fs::File::from(r);
        let mut got = Vec::new();
        // EOF after the newline: the write end was closed.
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"\n");
    }

    #[test]
    fn readiness_fd_not_open() {
        // Far above any descriptor this process has (they are allocated
        // lowest first).
        let e = claim_fd(1_000_000).unwrap_err();
        assert!(
            e.to_string().starts_with("notification fd 1000000: "),
            "{e}"
        );
        assert_eq!(
            sys::claim_inherited_fd(1_000_000)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EBADF)
        );
        assert!(claim_fd(1).is_err());
        assert!(claim_fd(-1).is_err());
    }

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 256];
        let n = sock.recv(&mut b).unwrap();
        String::from_utf8(b[..n].to_vec()).unwrap()
    }

    #[test]
    fn notify_socket_path() {
        let dir = temp_dir("path");
        let path = dir.join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        sd_notify_to(path.to_str().unwrap(), "READY=1\nMAINPID=42").unwrap();
        assert_eq!(recv(&server), "READY=1\nMAINPID=42");
        drop(server);
        // Nobody listening any more.
        assert!(sd_notify_to(path.to_str().unwrap(), "READY=1").is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn notify_socket_abstract() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("nanoctr-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        sd_notify_to(&format!("@{name}"), "READY=1").unwrap();
        assert_eq!(recv(&server), "READY=1");
    }

    #[test]
    fn notify_socket_relative() {
        let e = sd_notify_to("run/notify", "READY=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn pidfile() {
        let dir = temp_dir("pidfile");
        let path = dir.join("nanoctrd.pid");
        fs::write(&path, "999999999 and more that is longer\n").unwrap();
        write_pidfile(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        assert!(!temp_path(&path).exists());
        remove_pidfile(&path);
        assert!(!path.exists());
        remove_pidfile(&path); // gone already: nothing happens

        // Another daemon's pidfile stays.
        fs::write(&path, "1\n").unwrap();
        remove_pidfile(&path);
        assert!(path.exists());

        // A directory that does not exist: an error, nothing left behind.
        assert!(write_pidfile(&dir.join("no/such.pid")).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
