#!/usr/bin/env python3
"""Builds the images `nanoctr import` is tested on, with the real tools.

    make.py OUT ROOTFS

ROOTFS is the busybox root filesystem of configs/bundles/busybox/mkrootfs.sh.
OUT (which must not exist) gets:

  oci/        an OCI layout made by umoci, tag `test`, of five layers:
              1. ROOTFS with /etc/passwd and /etc/group naming `app`
                 (1000:1000), /home/app, /run and files later layers change;
              2. a deleted file (whiteout), a directory deleted and made
                 again with other content (umoci writes a whiteout per old
                 entry), a hardlink pair, relative, absolute and dangling
                 symlinks, setuid, setgid and sticky modes, a fifo;
              3. xattrs (`user.test`, and `security.capability` by setcap),
                 files of non-root numeric owners, a changed file;
              4. a directory replaced through an opaque whiteout
                 (`.wh..wh..opq`), added with `umoci raw add-layer`;
              5. a whiteout of a file inside a directory of layer 4;
              and a config (`umoci config`) with entrypoint, cmd, env,
              working dir, user `app`, exposed ports and a stop signal.
  unpacked/   `umoci unpack` of oci:test: the reference bundle.
  oci-typechange/, unpacked-typechange/
              the same with a sixth layer in which a file becomes a
              directory, a directory a symlink (umoci then writes a
              whiteout under the new symlink for the old directory's
              entry), a symlink a file and a file a symlink.
  docker.tar  `skopeo copy` to docker-archive (manifest.json, plain tar layers).
  oci.tar     `skopeo copy` to oci-archive (gzip layers).
  oci-zstd/   `skopeo copy --dest-compress-format zstd` to an OCI layout.
  expect      what the image config says a bundle's config.json must say,
              one `key=value` a line (`arg=` and `env=` repeated, in order).

Each skopeo copy is read back (converted to an OCI layout again, unpacked
by umoci) and compared with unpacked/ by compare.py, so a test that finds
a difference knows the fixture is not the cause.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = ["umoci", "skopeo", "setcap", "getcap"]

# Every entry a layer touches gets its layer's mtime, so two builds make
# the same trees and a lost mtime shows in compare.py.
EPOCH = 1_600_000_000
DAY = 86_400

ENTRYPOINT = [
    "/bin/sh",
    "-c",
    # What the process sees: argv, cwd, ids, environment; one fact a line.
    "tr '\\000' '\\n' </proc/$$/cmdline | sed 's/^/arg=/'; "
    'echo "cwd=$(pwd -P)"; echo "uid=$(id -u)"; echo "gid=$(id -g)"; '
    "env | sed 's/^/env=/'",
]
CMD = ["first", "second arg"]
ENV = ["PATH=/bin", "GREETING=hello world", "APP_MODE=test"]
WORKDIR = "/home/app"
USER = "app"
PORTS = ["8080/tcp", "53/udp"]
STOP_SIGNAL = "SIGUSR1"


def run(*argv):
    """Runs a tool; its failure ends the build with the tool's words."""
    try:
        subprocess.run(argv, check=True, capture_output=True)
    except subprocess.CalledProcessError as e:
        sys.exit(f"make.py: {' '.join(argv)} failed ({e.returncode}): {e.stderr.decode()}")


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def stamp(root, rel_paths, mtime):
    """Sets the mtime of each path (not following symlinks), deepest first."""
    for rel in sorted(rel_paths, key=lambda p: -p.count("/")):
        os.utime(os.path.join(root, rel), (mtime, mtime), follow_symlinks=False)


def repack(oci, bundle, comment):
    run("umoci", "repack", "--refresh-bundle", "--history.comment", comment,
        "--image", oci, bundle)


def layer1(rootfs, busybox_rootfs, mtime):
    """The busybox tree, the `app` user and what later layers change."""
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True, dirs_exist_ok=True)
    write(f"{rootfs}/etc/passwd",
          "root:x:0:0:root:/:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
    write(f"{rootfs}/etc/group", "root:x:0:\napp:x:1000:\n")
    for d in ["run", "home/app", "data/keep", "data/was-dir", "data/was-dir/inner",
              "gone-dir/sub", "opq/sub"]:
        os.makedirs(f"{rootfs}/{d}", exist_ok=True)
    os.chown(f"{rootfs}/home/app", 1000, 1000)
    os.chmod(f"{rootfs}/home/app", 0o750)
    write(f"{rootfs}/home/app/profile", "export APP=1\n")
    os.chown(f"{rootfs}/home/app/profile", 1000, 1000)
    write(f"{rootfs}/data/gone", "deleted by layer 2\n")
    write(f"{rootfs}/data/keep/kept", "kept\n")
    write(f"{rootfs}/data/was-file", "a file in layer 1, a directory in layer 2\n")
    write(f"{rootfs}/data/was-dir/inner/x", "under a dir that becomes a symlink\n")
    write(f"{rootfs}/data/changed", "first version\n")
    write(f"{rootfs}/gone-dir/sub/old", "old\n")
    write(f"{rootfs}/opq/old", "hidden by the opaque whiteout of layer 4\n")
    write(f"{rootfs}/opq/sub/deeper", "hidden too\n")
    stamp(rootfs, walk(rootfs), mtime)


def layer2(rootfs, mtime):
    """Whiteouts, type changes, links, special modes, a fifo."""
    os.remove(f"{rootfs}/data/gone")
    # The directory goes and comes back with other content in one layer.
    shutil.rmtree(f"{rootfs}/gone-dir")
    os.makedirs(f"{rootfs}/gone-dir/other")
    write(f"{rootfs}/gone-dir/other/new", "new\n")
    write(f"{rootfs}/data/hl-a", "one inode, two names\n")
    os.link(f"{rootfs}/data/hl-a", f"{rootfs}/data/hl-b")
    os.symlink("keep/kept", f"{rootfs}/data/rel-link")
    os.symlink("/etc/passwd", f"{rootfs}/data/abs-link")
    os.symlink("/nowhere/at/all", f"{rootfs}/data/dangling-link")
    write(f"{rootfs}/bin/suid-tool", "#!/bin/sh\necho suid\n")
    os.chmod(f"{rootfs}/bin/suid-tool", 0o4755)
    write(f"{rootfs}/bin/sgid-tool", "#!/bin/sh\necho sgid\n")
    os.chmod(f"{rootfs}/bin/sgid-tool", 0o2755)
    os.makedirs(f"{rootfs}/data/sticky")
    os.chmod(f"{rootfs}/data/sticky", 0o1777)
    os.mkfifo(f"{rootfs}/data/fifo")
    os.chmod(f"{rootfs}/data/fifo", 0o620)
    stamp(rootfs, [
        "data", "gone-dir", "gone-dir/other", "gone-dir/other/new", "data/hl-a",
        "data/rel-link", "data/abs-link", "data/dangling-link", "bin", "bin/suid-tool",
        "bin/sgid-tool", "data/sticky", "data/fifo",
    ], mtime)


def typechange(rootfs, mtime):
    """Entries of one type in the layers below and of another here."""
    os.remove(f"{rootfs}/data/was-file")
    os.makedirs(f"{rootfs}/data/was-file")
    write(f"{rootfs}/data/was-file/now", "now a directory\n")
    # umoci writes the symlink and then a whiteout under it for the old
    # directory's entry (data/was-dir/.wh.inner).
    shutil.rmtree(f"{rootfs}/data/was-dir")
    os.symlink("keep", f"{rootfs}/data/was-dir")
    os.remove(f"{rootfs}/data/rel-link")
    write(f"{rootfs}/data/rel-link", "a symlink below, a file here\n")
    os.remove(f"{rootfs}/data/changed")
    os.symlink("numeric", f"{rootfs}/data/changed")
    stamp(rootfs, ["data", "data/was-file", "data/was-file/now", "data/was-dir",
                   "data/rel-link", "data/changed"], mtime)


def layer3(rootfs, mtime):
    """Extended attributes, numeric owners, a new version of a file."""
    write(f"{rootfs}/data/xattr", "a file with a user xattr\n")
    os.setxattr(f"{rootfs}/data/xattr", "user.test", b"hello", follow_symlinks=False)
    write(f"{rootfs}/bin/capped", "#!/bin/sh\necho capped\n", 0o755)
    run("setcap", "cap_net_bind_service=+ep", f"{rootfs}/bin/capped")
    caps = subprocess.run(["getcap", f"{rootfs}/bin/capped"], capture_output=True, text=True)
    if "cap_net_bind_service" not in caps.stdout:
        sys.exit(f"make.py: setcap left no capability on bin/capped: {caps.stdout}{caps.stderr}")
    write(f"{rootfs}/data/numeric", "owned by 1234:5678\n", 0o640)
    os.chown(f"{rootfs}/data/numeric", 1234, 5678)
    os.makedirs(f"{rootfs}/data/owned-dir")
    os.chown(f"{rootfs}/data/owned-dir", 1000, 1000)
    write(f"{rootfs}/data/owned-dir/mine", "app's\n", 0o600)
    os.chown(f"{rootfs}/data/owned-dir/mine", 1000, 1000)
    write(f"{rootfs}/data/changed", "second version, longer than the first\n")
    stamp(rootfs, ["data", "bin", "data/xattr", "bin/capped", "data/numeric",
                   "data/owned-dir", "data/owned-dir/mine", "data/changed"], mtime)


def layer4_tar(path, mtime):
    """A layer umoci repack does not write: /opq replaced through an opaque
    whiteout, so nothing of layer 1's /opq shows through."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, kind, data=b"", mode=0o644):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, mode, mtime
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("opq", tarfile.DIRTYPE, mode=0o755)
        add("opq/.wh..wh..opq", tarfile.REGTYPE)
        add("opq/fresh", tarfile.REGTYPE, b"the only file of /opq\n")
        add("opq/sub", tarfile.DIRTYPE, mode=0o700)
        add("opq/sub/new", tarfile.REGTYPE, b"not layer 1's sub\n")


def walk(root):
    """Every path under root, relative, directories included."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            out.append(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def configure(oci):
    argv = ["umoci", "config", "--image", oci, "--clear=config.entrypoint",
            "--clear=config.cmd", "--clear=config.env"]
    argv += [f"--config.entrypoint={a}" for a in ENTRYPOINT]
    argv += [f"--config.cmd={a}" for a in CMD]
    argv += [f"--config.env={e}" for e in ENV]
    argv += [f"--config.exposedports={p}" for p in PORTS]
    argv += [f"--config.workingdir={WORKDIR}", f"--config.user={USER}",
             f"--config.stopsignal={STOP_SIGNAL}"]
    run(*argv)


def blob(layout, digest):
    algo, hexd = digest.split(":")
    with open(f"{layout}/blobs/{algo}/{hexd}", "rb") as f:
        return f.read()


def manifest_of(layout, tag):
    with open(f"{layout}/index.json") as f:
        index = json.load(f)
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return json.loads(blob(layout, m["digest"]))
    sys.exit(f"make.py: no tag {tag} in {layout}")


def write_expect(out):
    """The bundle config.json an import must write, from the image config
    as umoci wrote it (and the rootfs' /etc/passwd for the user's ids)."""
    config = json.loads(blob(f"{out}/oci", manifest_of(f"{out}/oci", "test")["config"]["digest"]))
    c = config["config"]
    user = c["User"]
    with open(f"{out}/unpacked/rootfs/etc/passwd") as f:
        row = next(line.split(":") for line in f if line.split(":")[0] == user)
    lines = [f"arg={a}" for a in c["Entrypoint"] + c["Cmd"]]
    lines += [f"env={e}" for e in c["Env"]]
    lines += [f"cwd={c['WorkingDir']}", f"user={user}", f"uid={row[2]}", f"gid={row[3]}"]
    lines += [f"stopSignal={c['StopSignal']}"]
    lines += [f"exposedPort={p}" for p in c["ExposedPorts"]]
    for line in lines:
        if "\n" in line:
            sys.exit(f"make.py: a value with a newline: {line!r}")
    write(f"{out}/expect", "".join(line + "\n" for line in lines))


def check_layer_types(layout, tag, want):
    types = {layer["mediaType"] for layer in manifest_of(layout, tag)["layers"]}
    if types != {want}:
        sys.exit(f"make.py: {layout} has layers {types}, not {want}")


def read_back(out, source, name, extra):
    """Converts a skopeo output back to an OCI layout with gzip layers,
    unpacks it with umoci and compares the tree with unpacked/."""
    check = f"{out}/work/check-{name}"
    os.makedirs(check)
    run("skopeo", "copy", "-q", *extra, source, f"oci:{check}/oci:test")
    run("umoci", "unpack", "--image", f"{check}/oci:test", f"{check}/bundle")
    compare = subprocess.run([sys.executable, f"{HERE}/compare.py",
                              f"{out}/unpacked/rootfs", f"{check}/bundle/rootfs"],
                             capture_output=True, text=True)
    if compare.returncode != 0:
        sys.exit(f"make.py: {source} does not read back as oci:test:\n{compare.stdout}")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make.py OUT ROOTFS")
    out, busybox = (os.path.abspath(a) for a in sys.argv[1:])
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        sys.exit(f"make.py: missing {' '.join(missing)} (tests/setup.sh installs them)")
    if not os.path.isfile(f"{busybox}/bin/busybox"):
        sys.exit(f"make.py: {busybox} is not a busybox rootfs")
    os.makedirs(out)
    oci, bundle = f"{out}/oci:test", f"{out}/work/bundle"
    rootfs = f"{bundle}/rootfs"
    run("umoci", "init", "--layout", f"{out}/oci")
    run("umoci", "new", "--image", oci)
    run("umoci", "unpack", "--image", oci, bundle)

    layer1(rootfs, busybox, EPOCH)
    repack(oci, bundle, "busybox, app user")
    layer2(rootfs, EPOCH + DAY)
    repack(oci, bundle, "whiteouts, links, modes, fifo")
    layer3(rootfs, EPOCH + 2 * DAY)
    repack(oci, bundle, "xattrs, owners")
    layer4_tar(f"{out}/work/opaque.tar", EPOCH + 3 * DAY)
    run("umoci", "raw", "add-layer", "--history.comment", "opaque /opq", "--image", oci,
        f"{out}/work/opaque.tar")
    # A bundle unpacked after the raw layer, for a last umoci diff on it.
    shutil.rmtree(bundle)
    run("umoci", "unpack", "--image", oci, bundle)
    os.remove(f"{rootfs}/opq/sub/new")
    stamp(rootfs, ["opq/sub"], EPOCH + 4 * DAY)
    repack(oci, bundle, "whiteout under the opaque dir")
    configure(oci)
    run("umoci", "gc", "--layout", f"{out}/oci")
    run("umoci", "unpack", "--image", oci, f"{out}/unpacked")

    # The same image and one layer more, in a layout of its own.
    shutil.copytree(f"{out}/oci", f"{out}/oci-typechange", symlinks=True)
    changed = f"{out}/oci-typechange:test"
    shutil.rmtree(bundle)
    run("umoci", "unpack", "--image", changed, bundle)
    typechange(rootfs, EPOCH + 5 * DAY)
    repack(changed, bundle, "types changed")
    run("umoci", "gc", "--layout", f"{out}/oci-typechange")
    run("umoci", "unpack", "--image", changed, f"{out}/unpacked-typechange")

    write_expect(out)
    check_layer_types(f"{out}/oci", "test", "application/vnd.oci.image.layer.v1.tar+gzip")

    run("skopeo", "copy", "-q", f"oci:{oci}", f"docker-archive:{out}/docker.tar:test:latest")
    run("skopeo", "copy", "-q", f"oci:{oci}", f"oci-archive:{out}/oci.tar:test")
    run("skopeo", "copy", "-q", "--dest-compress", "--dest-compress-format", "zstd",
        f"oci:{oci}", f"oci:{out}/oci-zstd:test")
    check_layer_types(f"{out}/oci-zstd", "test", "application/vnd.oci.image.layer.v1.tar+zstd")

    gzip = ["--dest-compress", "--dest-compress-format", "gzip"]
    read_back(out, f"docker-archive:{out}/docker.tar", "docker", gzip)
    read_back(out, f"oci-archive:{out}/oci.tar:test", "oci-archive", [])
    read_back(out, f"oci:{out}/oci-zstd:test", "zstd", gzip)
    shutil.rmtree(f"{out}/work")
    with open(f"{out}/oci/index.json", "rb") as f:
        print(f"make.py: {out}: oci:test index sha256:{hashlib.sha256(f.read()).hexdigest()}")


if __name__ == "__main__":
    main()
