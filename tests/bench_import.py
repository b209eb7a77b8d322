#!/usr/bin/env python3
"""Import benchmark: `nanoctr import` against umoci, side by side in one run.

    bench_import.py NANOCTR BUSYBOX_ROOTFS [--runs N] [--mb MB]

Builds, with umoci, an OCI image of the busybox rootfs and a layer of MB
megabytes (half random, half text, in files of 4 KiB to 4 MiB), copies it
with skopeo to an oci-archive and a docker-archive, then times, run after
run in alternation so the machine's load falls on both alike:

  oci layout   nanoctr import DIR        umoci unpack
  oci-archive  nanoctr import FILE       skopeo copy oci-archive: oci: + umoci unpack
  docker tar   nanoctr import FILE       skopeo copy docker-archive: oci: + umoci unpack

and prints median wall time, throughput (uncompressed MB/s) and peak RSS
(the largest of the process and everything it waited for), with ratios.
"""

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run(*argv, **kw):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)


def measured(argv):
    """Wall seconds and peak RSS (KiB) of a command and what it waited
    for, by GNU time: a small C program, so the copy of itself its child
    starts as adds about a MiB (a child of this Python would start as a
    copy of Python, and its peak would be Python's)."""
    t = time.monotonic()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], check=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    secs = time.monotonic() - t
    return secs, int(out.stderr.strip().splitlines()[-1])


def build(work, rootfs, mb):
    oci = os.path.join(work, "oci")
    run("umoci", "init", "--layout", oci)
    run("umoci", "new", "--image", f"{oci}:bench")
    bundle = os.path.join(work, "b")
    run("umoci", "unpack", "--image", f"{oci}:bench", bundle)
    shutil.rmtree(os.path.join(bundle, "rootfs"))
    shutil.copytree(rootfs, os.path.join(bundle, "rootfs"), symlinks=True)
    run("umoci", "repack", "--image", f"{oci}:bench", bundle)
    shutil.rmtree(bundle)
    run("umoci", "unpack", "--image", f"{oci}:bench", bundle)
    data = os.path.join(bundle, "rootfs", "data")
    os.makedirs(data)
    rng = random.Random(42)
    left, i = mb * 1_000_000, 0
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod\n"
    while left > 0:
        size = min(left, rng.choice([4096, 65536, 262144, 1 << 20, 4 << 20]))
        d = os.path.join(data, f"d{i % 16}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}"), "wb") as f:
            if i % 2:
                f.write(rng.randbytes(size))
            else:
                f.write((words * (size // len(words) + 1))[:size])
        left -= size
        i += 1
    run("umoci", "repack", "--image", f"{oci}:bench", bundle)
    run("umoci", "config", "--image", f"{oci}:bench", "--config.cmd", "/bin/true")
    shutil.rmtree(bundle)
    run("skopeo", "copy", f"oci:{oci}:bench", f"oci-archive:{work}/oci.tar:bench")
    run("skopeo", "copy", f"oci:{oci}:bench", f"docker-archive:{work}/docker.tar:bench:latest")
    return oci


def tree_bytes(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("nanoctr")
    ap.add_argument("rootfs")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mb", type=int, default=64)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="nanoctr-bench-import-", dir="/var/tmp")
    try:
        oci = build(work, args.rootfs, args.mb)
        ref = os.path.join(work, "ref")
        run("umoci", "unpack", "--image", f"{oci}:bench", ref)
        size = tree_bytes(os.path.join(ref, "rootfs"))
        shutil.rmtree(ref)
        store = os.path.join(work, "store")
        out = os.path.join(work, "out")

        def ours(source):
            return [args.nanoctr, "import", "--store", store, source, out]

        def theirs(kind):
            tmp = os.path.join(work, "tmp-oci")
            unpack = f"umoci unpack --image {tmp}:bench {out}"
            if kind == "oci":
                return ["umoci", "unpack", "--image", f"{oci}:bench", out]
            src = f"{kind}:{work}/{'oci.tar:bench' if kind == 'oci-archive' else 'docker.tar'}"
            return ["sh", "-c", f"rm -rf {tmp} && skopeo copy -q {src} oci:{tmp}:bench && {unpack}"]

        cases = [
            ("oci layout", ours(oci), theirs("oci"), "umoci unpack"),
            ("oci-archive", ours(f"{work}/oci.tar"), theirs("oci-archive"), "skopeo + umoci"),
            ("docker-archive", ours(f"{work}/docker.tar"), theirs("docker-archive"), "skopeo + umoci"),
        ]
        print(f"image: busybox + {args.mb} MB layer; rootfs {size / 1e6:.1f} MB; {args.runs} runs each, alternating")
        print(f"| source | nanoctr import s | MB/s | peak RSS KiB | other | s | MB/s | peak RSS KiB | time ratio | RSS ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, a, b, other in cases:
            ta, ra, tb, rb = [], [], [], []
            for _ in range(args.runs):
                for argv, t, r in ((a, ta, ra), (b, tb, rb)):
                    shutil.rmtree(out, ignore_errors=True)
                    run("sync")
                    secs, rss = measured(argv)
                    t.append(secs)
                    r.append(rss)
            shutil.rmtree(out, ignore_errors=True)
            ma, mb_ = statistics.median(ta), statistics.median(tb)
            pa, pb = max(ra), max(rb)
            print(f"| {name} | {ma:.2f} | {size / 1e6 / ma:.0f} | {pa} | {other} | {mb_:.2f} | "
                  f"{size / 1e6 / mb_:.0f} | {pb} | {ma / mb_:.2f}x | {pa / pb:.2f}x |")
            key = name.split()[0]
            print(f"import-{key}-seconds: {ma:.3f}")
            print(f"import-{key}-mb-per-s: {size / 1e6 / ma:.1f}")
            print(f"import-{key}-peak-rss-kib: {pa}")
            print(f"umoci-{key}-seconds: {mb_:.3f}")
            print(f"umoci-{key}-peak-rss-kib: {pb}")
        # A second bundle of a named image: what sharing costs.
        named = [args.nanoctr, "import", "--store", store, "--name", "bench", oci]
        run(*named, os.path.join(work, "n1"))
        secs, rss = measured(named + [os.path.join(work, "n2")])
        print(f"second bundle of a stored image: {secs:.2f} s, peak RSS {rss} KiB, no layer extracted")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
