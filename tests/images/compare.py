#!/usr/bin/env python3
"""Compares two root filesystem trees entry by entry.

    compare.py A B

For every path in either tree: that it is in both, its type, mode (with
setuid, setgid and sticky bits), owner and group, every extended attribute
(not following symlinks), and by type: a regular file's size, content
(sha256), mtime (whole seconds) and which other paths are hardlinks to it;
a symlink's target and mtime; a device's numbers. Directory mtimes are not
compared: extracting into a directory moves its mtime, and tools differ on
whether they put it back. The roots themselves are compared as `/`.

Prints each difference on a line of its own and a count of entries
compared; exits 1 if there is any difference, 0 if there is none, 2 on a
usage error or an unreadable tree.
"""

import hashlib
import os
import stat
import sys


def kind(mode):
    for test, name in [(stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "char"), (stat.S_ISBLK, "block"),
                       (stat.S_ISSOCK, "socket")]:
        if test(mode):
            return name
    return f"type {stat.S_IFMT(mode):o}"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def xattrs(path):
    names = os.listxattr(path, follow_symlinks=False)
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in sorted(names)}


def scan(root):
    """path -> the facts compared, and for regular files the inode key."""
    entries, inodes = {}, {}

    def visit(full, rel):
        st = os.lstat(full)
        facts = {
            "type": kind(st.st_mode),
            "mode": f"{stat.S_IMODE(st.st_mode):04o}",
            "owner": f"{st.st_uid}:{st.st_gid}",
            "xattrs": xattrs(full),
        }
        if stat.S_ISREG(st.st_mode):
            facts["size"] = st.st_size
            facts["sha256"] = sha256(full)
            facts["mtime"] = int(st.st_mtime)
            inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
        elif stat.S_ISLNK(st.st_mode):
            facts["target"] = os.readlink(full)
            facts["mtime"] = int(st.st_mtime)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            facts["device"] = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        entries[rel] = (facts, (st.st_dev, st.st_ino))

    if not os.path.isdir(root) or os.path.islink(root):
        print(f"compare.py: {root} is not a directory", file=sys.stderr)
        sys.exit(2)
    visit(root, "/")

    def unreadable(e):
        print(f"compare.py: {e}", file=sys.stderr)
        sys.exit(2)

    for dirpath, dirs, files in os.walk(root, onerror=unreadable):
        for name in dirs + files:
            full = os.path.join(dirpath, name)
            visit(full, "/" + os.path.relpath(full, root))
    # A file's hardlinks, as the other paths in this tree of its inode.
    out = {}
    for rel, (facts, key) in entries.items():
        if facts["type"] == "file":
            facts["links"] = sorted(p for p in inodes[key] if p != rel)
        out[rel] = facts
    return out


def main():
    if len(sys.argv) != 3:
        print("usage: compare.py A B", file=sys.stderr)
        sys.exit(2)
    a_root, b_root = sys.argv[1:]
    a, b = scan(a_root), scan(b_root)
    diffs = 0
    for rel in sorted(a.keys() | b.keys()):
        if rel not in b:
            print(f"{rel}: only in {a_root}")
            diffs += 1
            continue
        if rel not in a:
            print(f"{rel}: only in {b_root}")
            diffs += 1
            continue
        fa, fb = a[rel], b[rel]
        if fa["type"] != fb["type"]:
            print(f"{rel}: type {fa['type']} != {fb['type']}")
            diffs += 1
            continue
        for key in sorted(fa.keys() | fb.keys()):
            if fa.get(key) != fb.get(key):
                print(f"{rel}: {key} {fa.get(key)!r} != {fb.get(key)!r}")
                diffs += 1
    print(f"compare.py: {len(a.keys() | b.keys())} entries compared, {diffs} differences")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
