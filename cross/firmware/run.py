#!/usr/bin/env python3
"""Boots the firmware image (cross/firmware/build-image.sh) under
qemu-system and tests it through its serial console, as a person at the
board's serial port would.

    python3 cross/firmware/run.py [--arch aarch64|x86_64] [--timeout 240]
                                  [--rounds 3] [--seed N]

The console is a qemu chardev on a unix socket; the image's inittab runs a
shell there. Each command is sent as one line, wrapped between two echo
commands whose output is a marker the typed line cannot contain (the shell
prints `@@E7:0@@` for the typed `@@E$((7)):$?@@`), so the tty's echo of
what is typed is never mistaken for output, and the command's exit status
comes back with it.

Checks: nanoctrd came up from inittab; the container its configuration
declares is running; `nanoctr run` of a second container and its output;
`stats` on cgroup v2 and an `oom` event; nanoctrd killed with SIGKILL and
respawned by init still knows both; the watchdog (softdog), petted while
the critical container is well, resets the board once it has failed for
good, and the next boot makes the declared containers again; `nanoctr
import` of the OCI image on the data disk (a copy of
target/firmware/ARCH/data.img, so every run starts from the built disk),
after an import killed by SIGKILL, and the bundle run; --rounds power cuts (QMP system_reset) during an import, at seeded
random points, each followed by a check of what the next boot finds (no
bundle or the whole one; the store's tmp/ emptied; a fresh import whole and
running); `poweroff -f` ends qemu. Prints PASS or FAIL for each, and when
the daemon and the first container output came, in seconds since the
guest's kernel started (/proc/uptime). Exits 1 if any check failed.
Everything is bounded (--timeout overall, and each step); qemu is always
killed at the end. The whole console transcript is kept in
target/firmware/ARCH/console.log.
"""

import argparse
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

ARCHES = {
    "aarch64": {
        "qemu": "qemu-system-aarch64",
        "machine": ["-M", "virt", "-cpu", "cortex-a53"],
        "kernel": "Image",
        "console": "ttyAMA0",
        # The virt board's virtio transport: virtio-mmio.
        "disk": "virtio-blk-device",
    },
    "x86_64": {
        "qemu": "qemu-system-x86_64",
        "machine": ["-M", "pc"],
        "kernel": "bzImage",
        "console": "ttyS0",
        "disk": "virtio-blk-pci",
    },
}


class Timeout(Exception):
    pass


class Console:
    """The guest's serial console: everything it printed, and a way to run
    one shell command at a time."""

    def __init__(self, sock, log, deadline):
        self.sock = sock
        self.log = log
        self.deadline = deadline
        self.text = ""
        self.closed = False
        self.seq = 0
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.log.write(data)
                self.log.flush()
                self.text += data.decode("utf-8", "replace").replace("\r", "")
                self.cond.notify_all()

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")

    def expect(self, pattern, timeout, start=0):
        """The first match of pattern in what the console printed from
        start on, waiting at most timeout seconds (and never past the
        overall deadline)."""
        regex = re.compile(pattern)
        until = min(time.monotonic() + timeout, self.deadline)
        with self.cond:
            while True:
                m = regex.search(self.text, start)
                if m:
                    return m
                left = until - time.monotonic()
                if left <= 0 or self.closed:
                    if self.closed:
                        why = "the console closed"
                    elif until == self.deadline:
                        why = "the overall --timeout ran out"
                    else:
                        why = f"{timeout:g} s"
                    raise Timeout(f"no {pattern!r} on the console ({why})")
                self.cond.wait(left)

    def wait_shell(self, start=0, timeout=90):
        """Waits for the console shell of a boot whose output starts at
        start, until it answers."""
        self.expect(r"built-in shell \(ash\)", timeout, start)
        for _ in range(10):
            at = self.mark()
            self.send("echo @@READY-$((40+2))@@")
            try:
                self.expect("@@READY-42@@", 3, at)
                return
            except Timeout:
                continue
        raise Timeout("the console shell does not answer")

    def mark(self):
        with self.cond:
            return len(self.text)

    def sh(self, command, timeout=30):
        """Runs one shell command line; returns (exit status, output)."""
        self.seq += 1
        n = self.seq
        start = self.mark()
        self.send(f"echo @@B$(({n}))@@; {command}; echo @@E$(({n})):$?@@")
        begin = self.expect(f"@@B{n}@@\n", timeout, start)
        end = self.expect(f"@@E{n}:(\\d+)@@", timeout, begin.end())
        return int(end.group(1)), self.text[begin.end() : end.start()]


class Qmp:
    """qemu's machine protocol (QMP) on a unix socket: commands, one at a
    time, and their answers (events in between are skipped)."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb")
        self._read()  # the greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.f.readline()
        if not line:
            raise OSError("qemu closed its QMP socket")
        return json.loads(line)

    def cmd(self, name, **arguments):
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            answer = self._read()
            if "return" in answer:
                return answer["return"]
            if "error" in answer:
                raise OSError(f"QMP {name}: {answer['error'].get('desc', answer['error'])}")

    def power_cut(self):
        """A hard reset of the machine, as a power cut is to the guest:
        what its kernel had not written to the disk is lost. -no-reboot
        makes qemu end on any reset, so resets are resets until booted():
        a PC's BIOS resets the machine once more as it starts again."""
        self.cmd("set-action", reboot="reset")
        self.cmd("system_reset")

    def booted(self):
        """-no-reboot's rule again: a reset (a panic, panic=-1) ends qemu."""
        self.cmd("set-action", reboot="shutdown")

    def close(self):
        self.sock.close()


def find_qemu(name):
    """The qemu binary, and the options it needs to find its data."""
    path = shutil.which(name)
    if path:
        return path, []
    # Where cross/firmware/setup.sh unpacks it when apt cannot install it.
    # Such a qemu looks for its data (the BIOS and option ROMs a PC needs
    # to boot a kernel) relative to itself: point it at the packages'.
    path = os.path.join(TOP, "target", "firmware-cache", "qemu", "usr", "bin", name)
    if os.access(path, os.X_OK):
        data = ["/usr/share/qemu", "/usr/share/seabios", "/usr/lib/ipxe/qemu"]
        return path, [opt for d in data if os.path.isdir(d) for opt in ("-L", d)]
    sys.exit(f"run.py: {name} not found (sh cross/firmware/setup.sh installs it)")


def uptime(text, key):
    m = re.search(rf"{key}=([0-9.]+)", text)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHES), default="aarch64")
    ap.add_argument("--image", help="directory with the kernel, initramfs.cpio.gz and data.img (default target/firmware/ARCH)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for everything (default 300)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="power cuts during an import (default 3; 0: no import and power-cut checks)")
    ap.add_argument("--seed", type=int, help="for the points of the power cuts (default: from the clock; printed)")
    ap.add_argument("--memory", default="256M", help="guest memory (default 256M)")
    ap.add_argument("--qemu", help="the qemu-system binary (default: from PATH, or where setup.sh unpacked it)")
    ap.add_argument("-v", "--verbose", action="store_true", help="copy the console to stderr as it comes")
    args = ap.parse_args()

    spec = ARCHES[args.arch]
    image = args.image or os.path.join(TOP, "target", "firmware", args.arch)
    kernel = os.path.join(image, spec["kernel"])
    initrd = os.path.join(image, "initramfs.cpio.gz")
    disk_image = os.path.join(image, "data.img")
    for f in (kernel, initrd, disk_image):
        if not os.path.exists(f):
            sys.exit(f"run.py: no {f} (sh cross/firmware/build-image.sh {args.arch})")
    qemu, qemu_data = (args.qemu, []) if args.qemu else find_qemu(spec["qemu"])

    started = time.monotonic()
    deadline = started + args.timeout
    tmp = tempfile.mkdtemp(prefix="nanoctr-fw-")
    sock_path = os.path.join(tmp, "console.sock")
    qmp_path = os.path.join(tmp, "qmp.sock")
    # The data disk: a copy of the built one, so every run starts from it.
    disk = os.path.join(tmp, "data.img")
    subprocess.run(["cp", "--sparse=always", disk_image, disk], check=True)
    log_path = os.path.join(image, "console.log")
    qemu_log = open(os.path.join(image, "qemu.log"), "wb")
    cmd = [qemu, *qemu_data, *spec["machine"], "-m", args.memory, "-nographic", "-monitor", "none",
           "-no-reboot", "-nic", "none",
           "-kernel", kernel, "-initrd", initrd,
           # loglevel=3: the kernel's own console messages (an OOM kill is
           # one) would land in the middle of the shell's output.
           "-append", f"console={spec['console']} quiet loglevel=3 panic=-1",
           "-chardev", f"socket,id=ser0,path={sock_path},server=on,wait=on",
           "-serial", "chardev:ser0",
           "-drive", f"file={disk},if=none,id=d0,format=raw", "-device", f"{spec['disk']},drive=d0",
           # The power cuts: system_reset through QMP.
           "-qmp", f"unix:{qmp_path},server=on,wait=off"]
    print("run.py: " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=subprocess.STDOUT)

    results = []  # (name, ok, detail)
    timings = {}

    def check(name, ok, detail=""):
        detail = " ".join(detail.split())
        results.append((name, ok, detail))
        print(f"{'PASS' if ok else 'FAIL'}: {name}" + (f" ({detail})" if detail else ""), flush=True)
        return ok

    con = None
    log = None
    cuts = dog = None
    shell_ready = hello_polls = output_polls = None
    step = "starting qemu"
    try:
        # qemu waits for the console's client before it starts the guest.
        while not os.path.exists(sock_path):
            if proc.poll() is not None or time.monotonic() > started + 20:
                raise Timeout("qemu did not open the console socket (see qemu.log)")
            time.sleep(0.05)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(sock_path)
        log = open(log_path, "wb")
        if args.verbose:
            log = Tee(log)
        con = Console(sock, log, deadline)

        # The console shell starts with nanoctrd (both respawn lines).
        step = "booting to the console shell"
        con.wait_shell()
        shell_ready = time.monotonic() - started

        step = "timing the daemon and the first container output"
        # When nanoctrd answered its first hello, and when the declared
        # container's first line came out, polled every 20 ms. A count of
        # 0 polls means it was there before the shell looked.
        rc, out = con.sh(
            "i=0; s=$(cut -d' ' -f1 /proc/uptime); "
            "until nanoctr hello >/dev/null 2>&1; do i=$((i+1)); usleep 20000; done; "
            "echo shell=$s hello=$(cut -d' ' -f1 /proc/uptime) polls=$i; "
            "echo daemon-start=$(($(cut -d' ' -f22 /proc/$(pidof nanoctrd)/stat)))",
            timeout=60)
        timings["console shell up"] = uptime(out, "shell")
        timings["nanoctrd process started"] = (uptime(out, "daemon-start") or 0) / 100
        timings["first hello answered"] = uptime(out, "hello")
        hello_polls = re.search(r"polls=(\d+)", out)
        rc, out = con.sh(
            "i=0; until grep -q 'demo up' /run/nanoctr/demo/init/output 2>/dev/null; "
            "do i=$((i+1)); usleep 20000; done; echo output=$(cut -d' ' -f1 /proc/uptime) polls=$i",
            timeout=60)
        timings["demo's first output"] = uptime(out, "output")
        output_polls = re.search(r"polls=(\d+)", out)

        # 1. The daemon, started by busybox init from init/inittab's line.
        step = "check 1 (hello)"
        rc, out = con.sh("nanoctr hello; echo ppid=$(cut -d' ' -f4 /proc/$(pidof nanoctrd)/stat)")
        check("nanoctrd started by init answers hello",
              rc == 0 and "nanoctr protocol=1" in out and "ppid=1\n" in out, out.strip())

        # 2. The container containers.d/demo.conf declares.
        step = "check 2 (state demo)"
        rc, out = con.sh(
            "for i in $(seq 100); do nanoctr state demo | grep -q status=running && break; usleep 100000; done; "
            "nanoctr state demo; nanoctr logs demo | head -n 2", timeout=30)
        first = out.strip().splitlines()[0] if out.strip() else ""
        check("autostarted container demo is running",
              re.search(r"^id=demo status=running pid=\d+", out, re.M) is not None and "demo up: busybox" in out,
              first)

        step = "check 3 (run a second container)"
        # 3. A second container, run by hand: a copy of the demo's bundle
        # with its own process, on the same read-only root.
        bundle = ("sed -e 's|\"path\": \"rootfs\"|\"path\": \"/srv/containers/demo/rootfs\"|' "
                  "-e 's|\"args\": .*|\"args\": [%s],|' /srv/containers/demo/config.json")
        rc, out = con.sh(
            "mkdir -p /tmp/hello && " + bundle % '\"sh\", \"-c\", \"echo hello from $(hostname) $((6*7))\"'
            + " >/tmp/hello/config.json && nanoctr run hello /tmp/hello && nanoctr wait hello && nanoctr logs hello",
            timeout=60)
        check("nanoctr run, wait and logs of a second container",
              rc == 0 and re.search(r"^exit=0$", out, re.M) is not None and "hello from busybox 42" in out,
              " ".join(out.split()))

        # 4. Stats from cgroup v2, and an OOM kill seen as an event.
        step = "check 4 (stats, oom)"
        rc, out = con.sh("nanoctr stats demo")
        ok = (rc == 0 and "memory.limit=16777216" in out and "pids.limit=32" in out
              and re.search(r"memory\.usage=[1-9]", out) is not None)
        check("nanoctr stats demo (cgroup v2)", ok, " ".join(out.split()))
        rc, out = con.sh(
            "mkdir -p /tmp/hog && " + bundle % '\"sh\", \"-c\", \"x=0123456789; while :; do x=$x$x; done\"'
            + " >/tmp/hog/config.json && nanoctr run hog /tmp/hog && nanoctr wait hog; "
            "timeout 2 nanoctr events since=0 id=hog type=oom", timeout=60)
        check("a container over its memory limit is OOM-killed: exit 137 and an oom event",
              re.search(r"^exit=137$", out, re.M) is not None
              and re.search(r"^EVENT seq=\d+ time=\d+ id=hog type=oom kills=[1-9]", out, re.M) is not None,
              " ".join(out.split()))

        step = "check 5 (kill -9 nanoctrd)"
        # 5. nanoctrd killed: init starts it again, and it finds both
        # containers as they were.
        rc, before = con.sh("nanoctr list")
        rc, out = con.sh(
            "p=$(pidof nanoctrd); t=$(cut -d' ' -f1 /proc/uptime); kill -9 $p; "
            "until [ -n \"$(pidof nanoctrd)\" ] && [ \"$(pidof nanoctrd)\" != $p ] && nanoctr hello >/dev/null 2>&1; "
            "do usleep 20000; done; echo killed=$t back=$(cut -d' ' -f1 /proc/uptime) "
            "ppid=$(cut -d' ' -f4 /proc/$(pidof nanoctrd)/stat) "
            "started=$(cut -d' ' -f22 /proc/$(pidof nanoctrd)/stat); nanoctr list", timeout=30)
        after = out
        killed, back, again = uptime(out, "killed"), uptime(out, "back"), uptime(out, "started")
        if killed is not None and back is not None and again is not None:
            timings["nanoctrd started again after kill -9 (s later)"] = again / 100 - killed
            timings["nanoctrd answering again after kill -9 (s later)"] = back - killed

        def table(text):
            return sorted(re.findall(r"^id=(\S+) status=(\S+) pid=(\S+)", text, re.M))

        t_before, t_after = table(before), table(after)
        ids = {row[0]: row[1] for row in t_after}
        check("nanoctrd respawned by init after kill -9 still has both containers",
              "ppid=1" in out and t_before == t_after and ids.get("demo") == "running"
              and ids.get("hello") == "stopped" and ids.get("hog") == "stopped",
              f"before {t_before} after {t_after}")

        def set_step(text):
            nonlocal step
            step = text

        # 6. The watchdog: petted while the critical container is well, and
        # a reset once it has failed for good.
        step = "check 6 (watchdog)"
        dog = watchdog_checks(con, qmp_path, check, set_step)

        # 7. and 8. nanoctr import onto the data disk, and power cuts during
        # imports.
        if args.rounds > 0:
            step = "the import checks"
            seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1_000_000
            print(f"run.py: power cuts: {args.rounds} rounds, --seed {seed}", flush=True)
            cuts = import_checks(con, qmp_path, check, args.rounds, random.Random(seed), set_step)

        # 9. Power off.
        step = "check 9 (poweroff)"
        con.send("poweroff -f")
        try:
            proc.wait(timeout=max(1, min(30, deadline - time.monotonic())))
            check("poweroff -f ends qemu", proc.returncode == 0, f"exit {proc.returncode}")
        except subprocess.TimeoutExpired:
            check("poweroff -f ends qemu", False, "qemu still running after 30 s")
    except (Timeout, OSError) as e:
        check(f"{step} within time", False, str(e))
        if con is not None and not con.closed:
            try:  # what the guest can still say about it, into the transcript
                con.deadline = time.monotonic() + 10
                con.sh("nanoctr list; tail -n 5 /run/nanoctr/*/*/shim.log; dmesg | tail -n 10; "
                       "ls -A /data/images/tmp /data/bundles; tail -n 5 /tmp/import.err; "
                       "tail -n 8 /tmp/guard.ev", timeout=8)
            except Timeout:
                pass
        if con is not None:
            print("--- last console lines ---\n" + "\n".join(con.text.splitlines()[-40:]))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        qemu_log.close()
        if log is not None:
            log.close()
        shutil.rmtree(tmp, ignore_errors=True)

    elapsed = time.monotonic() - started
    print("\nTimings (seconds since the guest kernel started, from /proc/uptime):")
    for name, value in timings.items():
        if value is None:
            continue
        note = ""
        if name == "first hello answered" and hello_polls and hello_polls.group(1) == "0":
            note = " (or earlier: already up when the shell first asked)"
        if name == "demo's first output" and output_polls and output_polls.group(1) == "0":
            note = " (or earlier: already there when the shell first looked)"
        print(f"  {name}: {value:.2f}{note}")
    if shell_ready is not None:
        print(f"  (host clock: qemu started to console shell answering: {shell_ready:.2f})")
    if dog:
        print("Watchdog (softdog):")
        for line in dog:
            print(f"  {line}")
    if cuts is not None:
        print(f"Imports (seconds, guest clock): {', '.join(f'{t:.2f}' for t in cuts['imports'])}")
        for line in cuts["lines"]:
            print(f"  {line}")
        print(f"power cuts: {cuts['rounds']} rounds, {cuts['half']} half bundles, "
              f"bundle absent after {cuts['absent']}, whole after {cuts['whole']}")
    failed = [r for r in results if not r[1]]
    print(f"run.py: {elapsed:.1f} s; the console's transcript is {log_path}")
    # The summary alone on its line, as test runners print theirs.
    print(f"{args.arch}: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not results else 0


# The import the power-cut checks interrupt, as a device runs it: the
# image layout on the data disk, the store and the bundle there too.
IMPORT = "nanoctr import --store /data/images /data/image /data/bundles/web"
NOW = "$(cut -d' ' -f1 /proc/uptime)"


def bundle_state(con):
    """What /data/bundles/web is: ("absent", detail), ("whole", detail) or
    ("half", what is wrong). Whole: its config.json parses and names the
    rootfs and a process, and its rootfs lists (list-tree: every entry,
    each file's size and sha256) as the image's manifest, made from
    `umoci unpack` of the same image when the disk was built."""
    rc, out = con.sh(
        "b=/data/bundles/web; if [ -e $b ]; then "
        "if sh /data/list-tree $b/rootfs >/tmp/got 2>&1 && cmp -s /data/manifest /tmp/got; "
        "then echo rootfs=whole; else echo rootfs=differs; diff /data/manifest /tmp/got | grep '^[-+][^-+]' | head -n 8; fi; "
        "echo @@CONFIG; cat $b/config.json; echo; echo @@CONFIG-END; else echo bundle=absent; fi; "
        "echo others=$(ls -A /data/bundles | grep -vx web | tr '\\n' ' ')", timeout=120)
    others = re.search(r"^others=(.*)$", out, re.M)
    others = others.group(1).strip() if others else "?"
    extra = f"; beside it in /data/bundles: {others}" if others else ""
    if "bundle=absent" in out:
        return ("absent" if not others else "half"), "absent" + extra
    problems = []
    if "rootfs=whole" not in out:
        diff = out.split("rootfs=differs", 1)[-1].split("@@CONFIG", 1)[0]
        problems.append("rootfs differs from the manifest: " + " | ".join(diff.split("\n")[:8]))
    m = re.search(r"@@CONFIG\n(.*)\n@@CONFIG-END", out, re.S)
    try:
        config = json.loads(m.group(1)) if m else None
        if not (config and config["root"]["path"] == "rootfs" and config["process"]["args"]):
            problems.append("config.json names no rootfs or process")
    except (ValueError, KeyError, TypeError) as e:
        problems.append(f"config.json does not parse: {e}")
    if others:
        problems.append(f"beside it in /data/bundles: {others}")
    return ("half", "; ".join(problems)) if problems else ("whole", "whole")


def image_layers(con):
    """The diff_ids (hex) of the image on the data disk, read from its
    index, manifest and config."""
    def blob(path):
        rc, out = con.sh(f"cat {path}")
        return json.loads(out)

    try:
        index = blob("/data/image/index.json")
        manifest = blob("/data/image/blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1])
        config = blob("/data/image/blobs/sha256/" + manifest["config"]["digest"].split(":")[1])
        return [d.split(":")[1] for d in config["rootfs"]["diff_ids"]]
    except (ValueError, KeyError, IndexError) as e:
        raise OSError(f"no image in /data/image (is the data disk mounted?): {e!r}") from e


def watched(text, layers, start):
    """What watch-import printed: when each layer was in the store and
    when the bundle was there, relative to start (guest clock)."""
    # Not anchored: a line can follow the shell's prompt.
    seen = {name: float(t) - start for t, name in re.findall(r"@@IN ([0-9.]+) ([0-9a-f]{64}|bundle)\b", text)}
    return [seen.get(h) for h in layers], seen.get("bundle")


def where(text, layers):
    """Where an import was, from watch-import's lines in text."""
    ins, bundle = watched(text, layers, 0)
    k = sum(t is not None for t in ins)
    if bundle is not None:
        return "its bundle renamed into place"
    if k == len(layers):
        return "composing the bundle"
    return f"writing layer {k + 1}/{len(layers)}"


def import_and_run(con, cid, watch, layers):
    """A whole import into /data/bundles/web, then the bundle run as cid.
    Returns (ok, the import's duration in s, the part of it after its
    last layer was in the store, detail)."""
    rc, out = con.sh(
        f"{watch} & w=$!; echo tmp-before=$(ls -A /data/images/tmp | wc -l); s={NOW}; "
        f"{IMPORT} >/tmp/import.out 2>/tmp/import.err; r=$?; e={NOW}; "
        "if [ $r = 0 ]; then wait $w; else kill $w; fi; "
        "echo import=$r start=$s end=$e tmp-after=$(ls -A /data/images/tmp | wc -l); "
        "cat /tmp/import.out; tail -n 3 /tmp/import.err", timeout=240)
    start, end = uptime(out, "start"), uptime(out, "end")
    took = end - start if start is not None and end is not None else None
    tail = None
    phases = ""
    if took is not None:
        ins, bundle = watched(out, layers, start)
        if ins and ins[-1] is not None:
            tail = took - ins[-1]
        phases = (" (layers in the store at " + " ".join("?" if t is None else f"{t:.1f}" for t in ins)
                  + f" s, bundle at {'?' if bundle is None else f'{bundle:.1f}'} s)")
    summary = re.search(r"^OK bundle=\S+ digest=\S+ (.*)$", out, re.M)
    ok = "import=0 " in out and summary is not None
    detail = [f"import {'ok' if ok else 'FAILED'} in {took:.2f} s{phases}" if took is not None else "import ?",
              summary.group(1) if summary else " ".join(out.split())[-200:]]
    before, after = re.search(r"tmp-before=(\d+)", out), re.search(r"tmp-after=(\d+)", out)
    detail.append(f"tmp: {before.group(1) if before else '?'} entries before, {after.group(1) if after else '?'} after")
    if not after or after.group(1) != "0":
        ok = False
    state, why = bundle_state(con)
    detail.append(f"bundle {why}")
    ok = ok and state == "whole"
    rc, out = con.sh(f"nanoctr run {cid} /data/bundles/web >/dev/null && nanoctr wait {cid} && nanoctr logs {cid}; "
                     f"nanoctr delete {cid} >/dev/null", timeout=60)
    ran = re.search(r"^web up: hello from the data disk mode=last \d+ blobs$", out, re.M)
    detail.append(f"run: {ran.group(0) if ran else ' '.join(out.split())[-160:]}")
    return ok and ran is not None, took, tail, "; ".join(detail)


def import_checks(con, qmp_path, check, rounds, rng, set_step):
    """nanoctr import onto the data disk (an import killed by SIGKILL, then
    a whole one that runs), then `rounds` power cuts during an import and
    what the next boot finds: no bundle or the whole one, nothing left in
    the store's tmp/ once the daemon has started or the next import ran,
    and a fresh import that is whole and runs. Each cut comes at a random
    point: of the import's expected duration (the last import's), or, in
    the last round of two or more, of the part after its last layer is in
    the store (composing the bundle, renaming it into place)."""
    cuts = {"rounds": 0, "half": 0, "absent": 0, "whole": 0, "imports": [], "lines": []}

    set_step("import check (SIGKILL, then a whole import)")
    layers = image_layers(con)
    watch = "sh /data/watch-import /data/bundles/web " + " ".join(layers)
    # An import killed while it writes the large layer (the one after
    # the first two): its staging dir stays in the store's tmp/ for the
    # next import to remove.
    big = f"/data/images/layers/{layers[1]}" if len(layers) > 1 else "/"
    rc, out = con.sh(
        f"{IMPORT} >/dev/null 2>&1 & p=$!; i=0; "
        f"until [ -d {big} ] && [ -n \"$(ls -A /data/images/tmp 2>/dev/null)\" ] || [ $i -ge 1000 ]; "
        "do usleep 20000; i=$((i+1)); done; usleep 300000; kill -9 $p; wait $p; "
        "echo left=$(ls -A /data/images/tmp | tr '\\n' ' '); echo bundle=$(ls -d /data/bundles/web 2>/dev/null)",
        timeout=60)
    left = re.search(r"^left=(.*)$", out, re.M)
    left = left.group(1).split() if left else []
    no_bundle = re.search(r"^bundle=$", out, re.M) is not None
    ok, took, tail, detail = import_and_run(con, "web-0", watch, layers)
    if took is not None:
        cuts["imports"].append(took)
    check(f"nanoctr import ({len(layers)} layers) after one killed by SIGKILL: its leftovers removed, "
          "the bundle whole, and it runs",
          ok and no_bundle and len(left) > 0,
          f"the killed one left {' '.join(left) or 'nothing'} in tmp/ and {'no' if no_bundle else 'a'} bundle; "
          + detail)
    con.sh("rm -rf /data/bundles/web; sync", timeout=60)
    expected = took or 10.0
    tail = tail or 1.0

    qmp = None
    try:
        for r in range(1, rounds + 1):
            set_step(f"power cut {r}/{rounds}")
            late = rounds >= 2 and r == rounds
            if late:
                frac = 1.2 * rng.random()
                delay = frac * tail
                aim = f"{frac:.2f} of the ~{tail:.2f} s after its last layer"
            else:
                # Stratified: round r cuts in the r-th part of 0.05 - 1.15
                # of the expected duration; past its end the import may
                # have returned.
                n = rounds - 1 if rounds >= 2 else rounds
                frac = 0.05 + 1.1 * (r - 1 + rng.random()) / n
                delay = frac * expected
                aim = f"{frac:.2f} of ~{expected:.2f} s"
            if qmp is None:
                qmp = Qmp(qmp_path)
            begin = con.mark()
            con.sh(f"{{ {watch} & w=$!; {IMPORT} >/dev/null 2>&1; echo @@IMPORTED-$(({r})):$?@@; kill $w; }} "
                   "2>/dev/null & echo started")
            started = time.monotonic()
            if late:
                con.expect(rf"@@IN [0-9.]+ {layers[-1]}\b", 3 * expected + 30, begin)
                time.sleep(delay)
            else:
                time.sleep(max(0.0, delay - (time.monotonic() - started)))
            mark = con.mark()
            qmp.power_cut()
            cut_at = time.monotonic() - started
            before_cut = con.text[begin:mark]
            returned = re.search(rf"@@IMPORTED-{r}:(\d+)@@", before_cut)
            phase = f"after it returned {returned.group(1)}" if returned else where(before_cut, layers)
            con.wait_shell(mark)
            qmp.booted()
            back = time.monotonic() - started - cut_at
            # What the dead import left, before and after the daemon
            # started (it empties the store's tmp/ at start).
            rc, out = con.sh(
                "echo at-shell=$(ls -A /data/images/tmp 2>/dev/null | tr '\\n' ' '); "
                "until nanoctr hello >/dev/null 2>&1; do usleep 20000; done; "
                "echo after-daemon=$(ls -A /data/images/tmp 2>/dev/null | tr '\\n' ' '); "
                "echo layers=$(ls /data/images/layers 2>/dev/null | wc -l); "
                "echo journal=$(dmesg | grep -c 'EXT4-fs (vda): recovery complete')", timeout=60)
            at_shell = (re.search(r"^at-shell=(.*)$", out, re.M) or [None, "?"])[1].strip()
            after_daemon = (re.search(r"^after-daemon=(.*)$", out, re.M) or [None, "?"])[1].strip()
            stored = (re.search(r"^layers=(\d+)", out, re.M) or [None, "?"])[1]
            replayed = re.search(r"^journal=[1-9]", out, re.M) is not None
            removed = re.search(r"removed (\d+) entries a dead import left", con.text[mark:])
            state, why = bundle_state(con)
            cuts["rounds"] += 1
            cuts[state] += 1
            # An import that had returned 0 before the cut has made its
            # bundle durably.
            lost = returned is not None and returned.group(1) == "0" and state != "whole"
            if state != "absent":
                con.sh("rm -rf /data/bundles/web; sync", timeout=60)
            ok, took, t, detail = import_and_run(con, f"web-{r}", watch, layers)
            if took is not None:
                cuts["imports"].append(took)
                expected = took
            tail = t or tail
            line = (f"round {r}: cut {cut_at:.2f} s into the import ({aim}), {phase}; "
                    f"shell back {back:.2f} s later, ext4 journal {'replayed' if replayed else 'clean'}; "
                    f"{stored} layers in the store; tmp/ at the shell: "
                    f"{at_shell or 'empty'}, once nanoctrd answered: {after_daemon or 'empty'}"
                    + (f" (nanoctrd removed {removed.group(1)})" if removed else "")
                    + f"; bundle {why}")
            cuts["lines"].append(line)
            check(f"power cut {r}/{rounds} during an import: no bundle or the whole one, "
                  "tmp/ emptied, the next import whole and running",
                  state != "half" and not lost and ok, line + "; next: " + detail)
            con.sh("rm -rf /data/bundles/web; sync", timeout=60)
    finally:
        if qmp is not None:
            qmp.close()
    return cuts


def watchdog_checks(con, qmp_path, check, set_step):
    """The board's watchdog, softdog (soft_margin seconds), which nanoctrd
    pets while the critical container guard (containers.d/guard.conf) is
    well. First: the board has run past twice the margin (its uptime;
    nanoctrd was killed and started again by init meanwhile, in check 5)
    and the watchdog is petted. Then guard is made to fail for good: the
    marker /data/guard/fail makes it exit 1, and each of its two restarts
    too; once its policy gives up, nanoctrd stops petting (a watchdog
    event), and the board must reset within the margin: softdog says so on
    the console, and a new boot follows, with qemu allowed to reset the
    machine for once (-no-reboot otherwise ends qemu on a reset). The
    marker is removed as soon as petting has stopped, before the reset,
    so the next boot finds guard well: that boot's nanoctrd makes the
    declared containers again and pets the watchdog. Returns lines for the
    summary.

    When health checks come, the marker makes guard's health check fail
    instead of its process exit (guard.conf says how); this check stays
    as it is, but for which events come before the watchdog's."""
    lines = []
    set_step("check 6 (watchdog: petted while guard is well)")
    rc, out = con.sh(
        "m=$(dmesg | sed -n 's/.*softdog: initialized\\..* soft_margin=\\([0-9]*\\) sec.*/\\1/p'); echo margin=$m; "
        "until [ $(cut -d. -f1 /proc/uptime) -ge $((2*m)) ]; do usleep 200000; done; "
        "echo uptime=$(cut -d' ' -f1 /proc/uptime); nanoctr state guard; "
        "nanoctr metrics | grep '^nanoctr_watchdog'", timeout=60)
    margin = uptime(out, "margin")
    up = uptime(out, "uptime")
    pets = re.search(r"^nanoctr_watchdog_pets_total (\d+)$", out, re.M)
    ok = (rc == 0 and margin is not None and up is not None and up >= 2 * margin
          and re.search(r"^id=guard status=running .*critical=yes", out, re.M) is not None
          and "nanoctr_watchdog_petting 1" in out and pets is not None and int(pets.group(1)) > 0)
    margin = int(margin or 10)
    detail = (f"softdog margin {margin} s; uptime {up} s with no reset, through check 5's kill -9 "
              f"of nanoctrd; {pets.group(1) if pets else '?'} pets by this nanoctrd")
    lines.append(detail)
    check("the board runs well past the watchdog's margin while the critical container is well",
          ok, detail + "; " + " ".join(out.split()))

    set_step("check 6 (watchdog: guard fails for good, the board resets)")
    qmp = Qmp(qmp_path)
    try:
        # A reset is a reset now, not the end of qemu.
        qmp.cmd("set-action", reboot="reset")
        rc, out = con.sh(
            "nanoctr events since=0 id=guard >/tmp/guard.ev 2>&1 & e=$!; "
            f"echo failed={NOW}; touch /data/guard/fail; sync; i=0; "
            "until grep -q type=watchdog /tmp/guard.ev || [ $i -ge 600 ]; do usleep 100000; i=$((i+1)); done; "
            f"echo stopped={NOW}; rm -f /data/guard/fail; sync; kill $e; cat /tmp/guard.ev; "
            "nanoctr metrics | grep '^nanoctr_watchdog'; nanoctr state guard", timeout=90)
        stopped_at = time.monotonic()
        mark = con.mark()
        failed, stopped = uptime(out, "failed"), uptime(out, "stopped")
        kinds = re.findall(r"^EVENT seq=\d+ time=\d+ id=guard type=(\S+)", out, re.M)
        after_start = kinds[kinds.index("start"):] if "start" in kinds else kinds
        stop = re.search(r"^EVENT .* id=guard type=watchdog state=stopped why=stopped$", out, re.M)
        # The first run exits, then two restarts, each exiting too, and
        # only then the watchdog's event.
        spent = (after_start.count("exit") == 3 and after_start.count("restart") == 2
                 and after_start[-1] == "watchdog")
        ok = (rc == 0 and stop is not None and spent and "nanoctr_watchdog_petting 0" in out)
        took = f"{stopped - failed:.2f}" if failed is not None and stopped is not None else "?"
        detail = f"petting stopped {took} s after the marker, once its restarts were spent: {' '.join(kinds)}"
        reset = None
        try:
            m = con.expect(r"softdog: Initiating system reboot", margin + 10, mark)
            reset = time.monotonic() - stopped_at
            con.wait_shell(m.end())
            back = time.monotonic() - stopped_at - reset
            qmp.booted()
            detail += (f"; softdog reset the board {reset:.2f} s after (margin {margin} s), "
                       f"console shell back {back:.2f} s later")
        except Timeout as e:
            ok = False
            detail += f"; no reset: {e}"
        lines.append(detail)
        check("a critical container failing for good stops the petting, and the board resets",
              ok and reset is not None and reset <= margin + 2, detail)
    finally:
        qmp.close()
    if reset is None:
        return lines

    set_step("check 6 (watchdog: the board back)")
    rc, out = con.sh(
        "until nanoctr hello >/dev/null 2>&1; do usleep 20000; done; "
        "for i in $(seq 150); do nanoctr state guard 2>/dev/null | grep -q status=running && "
        "nanoctr state demo 2>/dev/null | grep -q status=running && break; usleep 200000; done; "
        "nanoctr list; echo marker=$(ls -A /data/guard); echo uptime=$(cut -d' ' -f1 /proc/uptime); "
        "nanoctr metrics | grep '^nanoctr_watchdog'", timeout=60)
    table = sorted(re.findall(r"^id=(\S+) status=(\S+)", out, re.M))
    ok = (rc == 0 and table == [("demo", "running"), ("guard", "running")]
          and re.search(r"^marker=$", out, re.M) is not None and "nanoctr_watchdog_petting 1" in out)
    detail = f"after the reset: {table}, uptime {uptime(out, 'uptime')} s"
    lines.append(detail)
    check("after the reset nanoctrd makes the declared containers again and pets the watchdog",
          ok, detail + "; " + " ".join(out.split()))
    return lines


class Tee:
    """The console log, also copied to stderr."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data)
        sys.stderr.buffer.write(data)
        sys.stderr.flush()

    def flush(self):
        self.f.flush()

    def close(self):
        self.f.close()


if __name__ == "__main__":
    sys.exit(main())
