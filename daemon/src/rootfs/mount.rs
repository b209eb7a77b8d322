//! The mount calls of an image rootfs: [`mount`] sets a container's up
//! (or finds it up already), [`unmount`] takes down whatever is mounted in
//! a container's dir. Both are quick system calls on a file checked
//! first, so the loop never waits on them for long.

use std::ffi::CStr;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags};

use super::{Fs, Image};
use crate::store::statedir::c_path;
use crate::wire::overlay::Overlay;
use nanoctr_shim::contract::container_dir::{LOWER, ROOTFS, UPPER_TMPFS};

/// Mounts the image rootfs of the container whose dir is `dir`, as
/// `overlay` says (see `rootfs`). If its `rootfs` is mounted already (by
/// a daemon before this one) nothing is done; what a half-done mount left
/// is taken down first. When it fails, nothing it made stays mounted.
pub fn mount(dir: &Path, image: &Image, overlay: &Overlay) -> io::Result<()> {
    if let Some((at, points)) = mounted_under(dir)? {
        let rootfs = format!("{at}/{}", ROOTFS.str);
        if points.contains(&rootfs) {
            return Ok(());
        }
        unmount_all(&points)?;
    }
    let made = layers(dir, image, overlay);
    if made.is_err() {
        let _ = unmount(dir);
    }
    made
}

/// Unmounts everything mounted at or under `dir`, the last mounted first.
/// A mount that stays busy for a while is detached (`MNT_DETACH`: gone
/// from the tree now, and for good once nothing uses it), as a last
/// resort.
pub fn unmount(dir: &Path) -> io::Result<()> {
    match mounted_under(dir)? {
        Some((_, points)) => unmount_all(&points),
        None => Ok(()),
    }
}

fn layers(dir: &Path, image: &Image, overlay: &Overlay) -> io::Result<()> {
    let rootfs = super::rootfs_of(dir);
    let lower = match overlay {
        Overlay::Off => rootfs.clone(),
        _ => dir.join(LOWER.str),
    };
    make_dir(&lower)?;
    mount_image(image, &lower)?;
    let layer = match overlay {
        Overlay::Off => return Ok(()),
        Overlay::Dir(d) => PathBuf::from(d),
        Overlay::Tmpfs(size) => {
            let tmpfs = dir.join(UPPER_TMPFS.str);
            make_dir(&tmpfs)?;
            let data = format!("size={size},mode=0755");
            mount_at(c"tmpfs", &tmpfs, c"tmpfs", MountFlags::empty(), &data)?;
            tmpfs
        }
    };
    let (upper, work) = (layer.join("upper"), layer.join("work"));
    for d in [&upper, &work] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(d)
            .map_err(|e| failed(&d.to_string_lossy(), e))?;
    }
    make_dir(&rootfs)?;
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    mount_at(c"overlay", &rootfs, c"overlay", MountFlags::empty(), &data)
}

/// Binds a free loop device to the image, read-only and auto-clearing,
/// and mounts it at `at`. The device frees itself when the mount goes, or
/// at once if the mount fails (its last user, this function, closes it).
fn mount_image(image: &Image, at: &Path) -> io::Result<()> {
    // Without blocking: a fifo put where the image was cannot hang the
    // open (the loop driver refuses anything but a file or a block
    // device); then blocking again, as the loop driver reads it.
    let backing = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&image.path)
        .map_err(|e| failed(&image.path, e))?;
    rustix::fs::fcntl_setfl(crate::sys::fd(&backing), rustix::fs::OFlags::empty())
        .map_err(crate::sys::io_error)?;
    let control = File::options()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(|e| failed("/dev/loop-control", e))?;
    // Another process may take the free device first: ask again.
    let mut tries = 0;
    let (device, path) = loop {
        let n = crate::sys::loop_free(&control).map_err(|e| failed("LOOP_CTL_GET_FREE", e))?;
        let path = format!("/dev/loop{n}");
        let device = File::open(&path).map_err(|e| failed(&path, e))?;
        match crate::sys::loop_attach(&device, &backing) {
            Ok(()) => break (device, path),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 8 => tries += 1,
            Err(e) => return Err(failed(&path, e)),
        }
    };
    let fs = match image.fs {
        Fs::Squashfs => c"squashfs",
        Fs::Erofs => c"erofs",
    };
    let mounted = mount_at(&c_path(Path::new(&path))?, at, fs, MountFlags::RDONLY, "");
    drop(device);
    mounted
}

/// `mount(source, at, fs, flags, data)`, its error saying what failed.
fn mount_at(source: &CStr, at: &Path, fs: &CStr, flags: MountFlags, data: &str) -> io::Result<()> {
    let data = std::ffi::CString::new(data.as_bytes())?;
    rustix::mount::mount(source, &*c_path(at)?, fs, flags, &*data).map_err(|e| {
        let what = format!("mount {} at {}", fs.to_string_lossy(), at.display());
        failed(&what, crate::sys::io_error(e))
    })
}

fn make_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o755).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(failed(&dir.to_string_lossy(), e))
        }
        _ => Ok(()),
    }
}

/// `dir` made canonical (as the kernel shows mount points) and the mount
/// points at or under it, in the order they were mounted; `None` if `dir`
/// is not there.
fn mounted_under(dir: &Path) -> io::Result<Option<(String, Vec<String>)>> {
    let dir = match fs::canonicalize(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other?.to_string_lossy().into_owned(),
    };
    let text = crate::files::read_kernel_text("/proc/self/mountinfo")?;
    let points = crate::cgroup::mountinfo::mount_points(&text)
        .filter(|p| {
            p.strip_prefix(&dir)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .collect();
    Ok(Some((dir, points)))
}

fn unmount_all(points: &[String]) -> io::Result<()> {
    for point in points.iter().rev() {
        let at = c_path(Path::new(point))?;
        let mut flags = UnmountFlags::NOFOLLOW;
        for tries in 0.. {
            match rustix::mount::unmount(&*at, flags) {
                // EINVAL: no longer a mount point (one on top went first).
                Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => break,
                Err(Errno::BUSY) if tries < 5 => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    if tries == 4 {
                        flags |= UnmountFlags::DETACH;
                    }
                }
                Err(e) => return Err(failed(point, crate::sys::io_error(e))),
            }
        }
    }
    Ok(())
}

/// `e` with what it happened to in front, of the same kind.
fn failed(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
