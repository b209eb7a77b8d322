#!/usr/bin/env python3
"""Builds the images tests/mender.rs updates a container with.

    mender.py OUT ROOTFS

ROOTFS is the busybox root filesystem of configs/bundles/busybox/mkrootfs.sh.
OUT (which must not exist) gets `docker save` archives of a small web
server (busybox httpd on 127.0.0.1:8080 serving /www), all of two layers:
ROOTFS, the same bytes in each (so the store keeps it once), and /www:

  v1.tar    /www/index.html says `v1`; a Docker Healthcheck fetches
            /health, which is there.
  v2.tar    the same, saying `v2`.
  sick.tar  says `sick`; its health check fetches /health, which it lacks,
            so it never gets healthy.
  dead.tar  says `dead`; its process exits at once, and it has no health
            check.
"""

import hashlib
import io
import json
import os
import platform
import sys
import tarfile

EPOCH = 1_600_000_000
HTTPD = ["/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"]
SECOND = 1_000_000_000


def layer(add):
    """A layer's tar bytes; `add(tar)` fills it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar)
    return buf.getvalue()


def base(rootfs):
    def add(tar):
        for top, dirs, files in os.walk(rootfs):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(top, name)
                info = tar.gettarinfo(path, os.path.relpath(path, rootfs))
                info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "", ""
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return layer(add)


def www(files):
    def add(tar):
        d = tarfile.TarInfo("www")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, EPOCH
        tar.addfile(d)
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"www/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
            tar.addfile(info, io.BytesIO(data))
    return layer(add)


def arch():
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def archive(out, tag, layers, config):
    """A docker-archive: manifest.json, the config, one dir per layer."""
    diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
    cfg = json.dumps({
        "architecture": arch(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()
    cfg_name = hashlib.sha256(cfg).hexdigest() + ".json"
    names = [d[len("sha256:"):] + "/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [tag], "Layers": names}]).encode()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [("manifest.json", manifest), (cfg_name, cfg)] + list(zip(names, layers)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
            tar.addfile(info, io.BytesIO(data))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: mender.py OUT ROOTFS")
    out, rootfs = sys.argv[1], sys.argv[2]
    os.makedirs(out)
    lower = base(rootfs)
    health = {
        "Test": ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null",
                 "http://127.0.0.1:8080/health"],
        "Interval": SECOND, "Timeout": 2 * SECOND, "Retries": 2,
    }
    for name, files, config in [
        ("v1", {"index.html": "v1\n", "health": "ok\n"}, {"Entrypoint": HTTPD, "Healthcheck": health}),
        ("v2", {"index.html": "v2\n", "health": "ok\n"}, {"Entrypoint": HTTPD, "Healthcheck": health}),
        ("sick", {"index.html": "sick\n"}, {"Entrypoint": HTTPD, "Healthcheck": health}),
        ("dead", {"index.html": "dead\n"}, {"Entrypoint": ["/bin/busybox", "false"]}),
    ]:
        archive(os.path.join(out, f"{name}.tar"), f"web:{name}", [lower, www(files)], config)


main()
