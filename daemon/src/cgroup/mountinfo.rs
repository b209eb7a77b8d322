//! Where a process's cgroups are: `/proc/PID/cgroup` read against
//! `/proc/self/mountinfo`, for v1 controllers and the v2 hierarchy. OOM
//! watching and statistics both start here; image rootfs mounts
//! (`crate::rootfs`) are found here too.

use std::path::{Path, PathBuf};

/// The directory of v1 controller `ctrl` (`memory`, `cpuacct`, `pids`, ...)
/// from the text of `/proc/PID/cgroup` and `/proc/self/mountinfo`. The
/// controller may share a hierarchy with others (`cpu,cpuacct`).
pub(crate) fn locate_v1(cgroups: &str, mountinfo: &str, ctrl: &str) -> Option<PathBuf> {
    let has = |list: &str| list.split(',').any(|c| c == ctrl);
    let path = cgroup_path(cgroups, has)?;
    let (root, mountpoint) = mount_of(mountinfo, |fs, opts| fs == "cgroup" && has(opts))?;
    Some(join(&mountpoint, &root, path))
}

/// The v2 (unified) cgroup directory, from the same texts.
pub(crate) fn locate_v2(cgroups: &str, mountinfo: &str) -> Option<PathBuf> {
    let path = cgroup_path(cgroups, str::is_empty)?;
    let (root, mountpoint) = mount_of(mountinfo, |fs, _| fs == "cgroup2")?;
    Some(join(&mountpoint, &root, path))
}

/// The path of the first `/proc/PID/cgroup` line whose controller list
/// satisfies `want` (the v2 line's list is empty).
fn cgroup_path(cgroups: &str, want: impl Fn(&str) -> bool) -> Option<&str> {
    cgroups.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        want(controllers).then_some(path)
    })
}

/// `mountpoint` + `path` made relative to the mount's `root`.
fn join(mountpoint: &str, root: &str, path: &str) -> PathBuf {
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .trim_start_matches('/');
    Path::new(mountpoint).join(rel)
}

/// The (root, mount point) of the first mount whose filesystem type and
/// super options satisfy `want`.
fn mount_of(mountinfo: &str, want: impl Fn(&str, &str) -> bool) -> Option<(String, String)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split(' ');
        let (fstype, _source, opts) = (r.next()?, r.next()?, r.next().unwrap_or(""));
        if !want(fstype, opts) {
            return None;
        }
        let mut l = left.split(' ');
        let (root, mountpoint) = (l.nth(3)?, l.next()?);
        Some((unescape(root), unescape(mountpoint)))
    })
}

/// Every mount point in `mountinfo`, in its order (the order of mounting).
pub(crate) fn mount_points(mountinfo: &str) -> impl Iterator<Item = String> + '_ {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(unescape))
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_roots_and_escapes() {
        // In a cgroup namespace the mount's root is a prefix of the path.
        let mounts = "35 31 0:32 /outer /sys/fs/cgroup/mem\\040ory rw - cgroup cgroup rw,memory";
        assert_eq!(
            locate_v1("4:memory:/outer/web\n", mounts, "memory"),
            Some("/sys/fs/cgroup/mem ory/web".into())
        );
        let points: Vec<String> = mount_points(mounts).collect();
        assert_eq!(points, ["/sys/fs/cgroup/mem ory"]);
    }
}
