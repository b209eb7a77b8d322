#!/usr/bin/env python3
"""Writes OCI layouts an importer must refuse, one directory each.

    hostile.py OUT

Every layout is well formed (oci-layout, index.json with tag `test`,
manifest, config with the layers' diff_ids, digests and sizes right) except
for the one thing its case is about. Paths that escape aim at
CANARY/CASE/ (CANARY is below), which the test makes before the import and
checks after it; a hardlink there aims at CANARY/CASE/host-file. `control`
is built by the same code and is harmless: it must import.

OUT/cases has a line a case: its name, `codes=` the error codes its
refusal may have (comma-separated, empty for `control`) and, where the
error must name the entry, `names=` a word of that entry's name. The case
names are printed too, one a line.
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

CANARY = "/tmp/nanoctr-import-canary"
# Enough `..` to reach / from any staging dir.
UP = "../" * 32
MTIME = 1_600_000_000
GIB = 1 << 30

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


class Tar:
    """A tar stream written entry by entry, names exactly as given."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def add(self, name, kind=tarfile.REGTYPE, data=b"", link="", mode=None):
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mtime = kind, link, MTIME
        default = {tarfile.DIRTYPE: 0o755, tarfile.SYMTYPE: 0o777}.get(kind, 0o644)
        info.mode = default if mode is None else mode
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        self.tar.addfile(info, io.BytesIO(data) if info.size else None)
        return self

    def bytes(self, end=True):
        if end:
            self.tar.close()
        return self.buf.getvalue()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


class Layout:
    def __init__(self, root):
        self.root = root
        os.makedirs(f"{root}/blobs/sha256")
        with open(f"{root}/oci-layout", "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def put(self, data, name=None):
        """Stores a blob under its digest (or under `name`)."""
        d = name or digest(data)
        with open(f"{self.root}/blobs/sha256/{d.split(':')[1]}", "wb") as f:
            f.write(data)
        return d

    def finish(self, layers, diff_ids):
        """Writes config, manifest and index for these layer descriptors."""
        config = json.dumps({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }).encode()
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": self.put(config), "size": len(config)},
            "layers": layers,
        }).encode()
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": self.put(manifest), "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": "test"},
        }]}
        with open(f"{self.root}/index.json", "w") as f:
            json.dump(index, f)


def image(root, tars, media=LAYER_GZIP, blob=None):
    """A layout of these uncompressed layers, gzip-compressed; `blob` may
    change (compressed bytes) -> (bytes, descriptor) for one layer."""
    out = Layout(root)
    layers, diff_ids = [], []
    for i, tar in enumerate(tars):
        data = gz(tar)
        desc = {"mediaType": media, "digest": digest(data), "size": len(data)}
        if blob:
            data, desc = blob(i, data, desc)
        if "digest" in desc:
            out.put(data, desc["digest"])
        layers.append(desc)
        diff_ids.append(digest(tar))
    out.finish(layers, diff_ids)


def filler(n):
    """n bytes that do not compress away, so a cut lands inside the data."""
    out, block = bytearray(), b"nanoctr"
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def ordinary():
    return (Tar().add("etc", tarfile.DIRTYPE).add("etc/hello", data=b"hello\n")
            .add("etc/link", tarfile.SYMTYPE, link="hello")
            .add("etc/hard", tarfile.LNKTYPE, link="etc/hello")
            .add("big", data=filler(256 * 1024)).bytes())


def gnu_number(value, width):
    """A GNU tar numeric field: octal when it fits, else base-256."""
    digits = width - 1
    if value < 8 ** digits:
        return f"{value:0{digits}o}".encode() + b"\0"
    return bytes([0x80]) + value.to_bytes(width - 1, "big")


def gnu_sparse_header(name, chunk_offset, chunk_size, real_size):
    """An old-GNU sparse entry (type S) with one data chunk."""
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = gnu_number(chunk_size, 12)
    h[136:148] = gnu_number(MTIME, 12)
    h[156:157] = b"S"
    h[257:265] = b"ustar  \0"
    h[386:398] = gnu_number(chunk_offset, 12)
    h[398:410] = gnu_number(chunk_size, 12)
    h[482] = 0
    h[483:495] = gnu_number(real_size, 12)
    h[148:156] = b" " * 8
    h[148:156] = f"{sum(h):06o}\0 ".encode()
    return bytes(h)


def huge_claim():
    """A header claiming 10 GiB, then 4 KiB of body and the end of the stream."""
    info = tarfile.TarInfo("claims-ten-gib")
    info.size, info.mtime, info.mode = 10 * GIB, MTIME, 0o644
    header = info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    return Tar().add("before", data=b"ordinary\n").bytes(end=False) + header + filler(4096)


def cases():
    """name -> (build(dir), the codes its refusal may have, a word of the
    entry's name its error must quote or None)"""
    c = {}

    def case(name, codes="invalid", names=None):
        def register(build):
            c[name] = (build, codes, names)
            return build
        return register

    @case("control", codes="")
    def _(d):
        second = (Tar().add("etc", tarfile.DIRTYPE).add("etc/.wh.link")
                  .add("etc/more", data=b"more\n"))
        image(d, [ordinary(), second.bytes()])

    @case("absolute-name", names="absolute-escape")
    def _(d):
        image(d, [Tar().add("ok", data=b"ok\n")
                  .add(f"{CANARY}/absolute-name/absolute-escape", data=b"pwned\n").bytes()])

    @case("dotdot-name", names="dotdot-escape")
    def _(d):
        image(d, [Tar().add("ok", data=b"ok\n")
                  .add(f"{UP}tmp/nanoctr-import-canary/dotdot-name/dotdot-escape",
                       data=b"pwned\n").bytes()])

    @case("symlink-then-write", names="through-link")
    def _(d):
        target = f"{UP}tmp/nanoctr-import-canary/symlink-then-write"
        image(d, [Tar().add("link", tarfile.SYMTYPE, link=target)
                  .add("link/through-link", data=b"pwned\n").bytes()])

    @case("symlink-across-layers", names="through-lower-link")
    def _(d):
        first = Tar().add("link", tarfile.SYMTYPE, link=f"{CANARY}/symlink-across-layers")
        second = Tar().add("link/through-lower-link", data=b"pwned\n")
        image(d, [first.bytes(), second.bytes()])

    # The same name again as a file: an extractor that opens it without
    # unlinking first writes through the link into the host's file.
    @case("hardlink-dotdot", names="outside-link")
    def _(d):
        target = f"{UP}tmp/nanoctr-import-canary/hardlink-dotdot/host-file"
        image(d, [Tar().add("outside-link", tarfile.LNKTYPE, link=target)
                  .add("outside-link", data=b"pwned\n").bytes()])

    @case("hardlink-absolute", names="absolute-link")
    def _(d):
        target = f"{CANARY}/hardlink-absolute/host-file"
        image(d, [Tar().add("absolute-link", tarfile.LNKTYPE, link=target)
                  .add("absolute-link", data=b"pwned\n").bytes()])

    @case("truncated-gzip")
    def _(d):
        def cut(i, data, desc):
            data = data[:len(data) // 2]
            return data, {**desc, "digest": digest(data), "size": len(data)}
        image(d, [ordinary()], blob=cut)

    @case("corrupt-gzip")
    def _(d):
        def flip(i, data, desc):
            # The trailer's CRC32: only a reader that checks it notices.
            data = data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]
            return data, {**desc, "digest": digest(data), "size": len(data)}
        image(d, [ordinary()], blob=flip)

    @case("wrong-digest")
    def _(d):
        def misname(i, data, desc):
            return data, {**desc, "digest": digest(data + b"x")}
        image(d, [ordinary()], blob=misname)

    @case("wrong-size-long")
    def _(d):
        image(d, [ordinary()], blob=lambda i, data, desc: (data, {**desc, "size": len(data) + 1}))

    @case("wrong-size-short")
    def _(d):
        image(d, [ordinary()], blob=lambda i, data, desc: (data, {**desc, "size": len(data) - 1}))

    @case("unknown-media-type")
    def _(d):
        image(d, [ordinary()], media="application/vnd.oci.image.layer.v1.tar+lz4")

    @case("huge-pax-name")
    def _(d):
        name = "d/" * (32 * 1024 - 1) + "f"
        image(d, [Tar().add("ok", data=b"ok\n").add(name, data=b"deep\n").bytes()])

    @case("huge-size-claim", codes="invalid,full")
    def _(d):
        image(d, [huge_claim()])

    @case("gnu-sparse", codes="invalid,full")
    def _(d):
        chunk = filler(4096)
        sparse = gnu_sparse_header("sparse-ten-gib", 10 * GIB - 4096, 4096, 10 * GIB) + chunk
        image(d, [Tar().add("ok", data=b"ok\n").bytes(end=False) + sparse + b"\0" * 1024])

    return c


def check_readable(root):
    """The harmless layouts' tars read back with python's tarfile."""
    index = json.load(open(f"{root}/index.json"))
    manifest = json.load(open(f"{root}/blobs/sha256/{index['manifests'][0]['digest'][7:]}"))
    for layer in manifest["layers"]:
        path = f"{root}/blobs/sha256/{layer['digest'][7:]}"
        with tarfile.open(path, "r:gz") as t:
            t.getmembers()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: hostile.py OUT")
    out = os.path.abspath(sys.argv[1])
    os.makedirs(out)
    table = []
    for name, (build, codes, names) in cases().items():
        build(f"{out}/{name}")
        table.append(f"{name} codes={codes}" + (f" names={names}" if names else ""))
        print(name)
    with open(f"{out}/cases", "w") as f:
        f.write("".join(line + "\n" for line in table))
    check_readable(f"{out}/control")


if __name__ == "__main__":
    main()
