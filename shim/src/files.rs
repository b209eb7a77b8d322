//! The files and descriptors the shim makes: sockets, pipes, the
//! container's stdio, and state files written whole.

use core::ffi::CStr;

use nanoctr_shim::contract::proc_dir;
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{self, Mode, OFlags, SeekFrom};
use rustix::io::{self, Errno};

use crate::failure::Message;

/// A unix socket listening at `path` (replacing a leftover), close-on-exec.
pub(crate) fn listen(path: &CStr) -> io::Result<OwnedFd> {
    let _ = fs::unlink(path);
    let sock = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::bind(&sock, &rustix::net::SocketAddrUnix::new(path)?)?;
    // Root's alone, whatever the umask.
    fs::chmod(path, Mode::RUSR | Mode::WUSR)?;
    rustix::net::listen(&sock, 4)?;
    Ok(sock)
}

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
}

/// The shim's own end of a pipe never blocks it.
pub(crate) fn nonblocking(fd: OwnedFd) -> OwnedFd {
    let _ = fs::fcntl_setfl(&fd, OFlags::NONBLOCK);
    fd
}

/// Opens a stdio path for the container, never through a symlink (the
/// daemon checked what it names). Descriptors 0-2 are taken (see
/// `ensure_stdio`), so the result is above 2 and its `O_CLOEXEC` is cleared
/// by the `dup2` in the child. `O_NONBLOCK` keeps a fifo with no
/// reader from hanging the shim (it fails with ENXIO instead); it is then
/// cleared, so the container gets an ordinary blocking descriptor.
pub(crate) fn open_stdio(path: &CStr, flags: OFlags) -> io::Result<OwnedFd> {
    let fd = fs::open(
        path,
        flags | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o640),
    )?;
    fs::fcntl_setfl(&fd, flags & !OFlags::CREATE)?;
    Ok(fd)
}

/// Reads the last `buf.len()` bytes of a file.
pub(crate) fn read_tail<'b>(path: &CStr, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
    let fd = fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let size = fs::seek(&fd, SeekFrom::End(0))?;
    fs::seek(&fd, SeekFrom::Start(size.saturating_sub(buf.len() as u64)))?;
    let mut n = 0;
    while n < buf.len() {
        match io::read(&fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(&buf[..n])
}

/// Writes `tmp`, syncs it and renames it over `path`: readers see the old
/// file or the whole new one, never a torn write. `tmp` is written in
/// place, not truncated first, so blocks it already holds are used again:
/// the room reserved for `exitStatus` at start ([`reserve_exit_status`])
/// is there on a state dir that has filled up since.
pub(crate) fn write_atomic(path: &CStr, tmp: &CStr, line: &mut Message) -> io::Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = fs::open(tmp, flags, Mode::from_raw_mode(0o644))?;
    let bytes = line.finish();
    if io::write(&fd, bytes)? != bytes.len() {
        return Err(Errno::IO);
    }
    fs::ftruncate(&fd, bytes.len() as u64)?;
    fs::fsync(&fd)?;
    drop(fd);
    fs::rename(tmp, path)
}

/// Takes the room `exitStatus` will need (a block of the state dir) while
/// it is there: the container may fill the state dir before it exits, and
/// its exit status must still be written. The file is the temporary that
/// [`write_atomic`] writes and renames at the end; a daemon cleaning up
/// after a shim that is gone removes it.
pub(crate) fn reserve_exit_status() -> io::Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd = fs::open(
        proc_dir::EXIT_STATUS_TMP.c,
        flags,
        Mode::from_raw_mode(0o644),
    )?;
    io::write(&fd, b"               \n").map(drop)
}

/// Writes the process's `oom_score_adj`.
pub(crate) fn write_oom_score_adj(adj: i32) -> io::Result<()> {
    let fd = fs::open(
        c"/proc/self/oom_score_adj",
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut l = Message::new();
    l.push_int(adj.into());
    io::write(&fd, l.finish()).map(drop)
}

/// Empties a non-blocking signalfd.
pub(crate) fn drain(fd: BorrowedFd<'_>) {
    let mut info = [0u8; 128];
    while matches!(io::read(fd, &mut info), Ok(n) if n > 0) {}
}
