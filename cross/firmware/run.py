#!/usr/bin/env python3
"""Boots the firmware image (cross/firmware/build-image.sh) under
qemu-system and tests it through its serial console, as a person at the
board's serial port would.

    python3 cross/firmware/run.py [--arch aarch64|x86_64] [--timeout 180]

The console is a qemu chardev on a unix socket; the image's inittab runs a
shell there. Each command is sent as one line, wrapped between two echo
commands whose output is a marker the typed line cannot contain (the shell
prints `@@E7:0@@` for the typed `@@E$((7)):$?@@`), so the tty's echo of
what is typed is never mistaken for output, and the command's exit status
comes back with it.

Checks: nanoctrd came up from inittab; the container its configuration
declares is running; `nanoctr run` of a second container and its output;
`stats` on cgroup v2 and an `oom` event; nanoctrd killed with SIGKILL and
respawned by init still knows both; `poweroff -f` ends qemu. Prints PASS or
FAIL for each, and when the daemon and the first container output came, in
seconds since the guest's kernel started (/proc/uptime). Exits 1 if any
check failed. Everything is bounded (--timeout overall, and each step);
qemu is always killed at the end. The whole console transcript is kept in
target/firmware/ARCH/console.log.
"""

import argparse
import os
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
    },
    "x86_64": {
        "qemu": "qemu-system-x86_64",
        "machine": ["-M", "pc"],
        "kernel": "bzImage",
        "console": "ttyS0",
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
    ap.add_argument("--image", help="directory with the kernel and initramfs.cpio.gz (default target/firmware/ARCH)")
    ap.add_argument("--timeout", type=float, default=180, help="seconds for everything (default 180)")
    ap.add_argument("--memory", default="256M", help="guest memory (default 256M)")
    ap.add_argument("--qemu", help="the qemu-system binary (default: from PATH, or where setup.sh unpacked it)")
    ap.add_argument("-v", "--verbose", action="store_true", help="copy the console to stderr as it comes")
    args = ap.parse_args()

    spec = ARCHES[args.arch]
    image = args.image or os.path.join(TOP, "target", "firmware", args.arch)
    kernel = os.path.join(image, spec["kernel"])
    initrd = os.path.join(image, "initramfs.cpio.gz")
    for f in (kernel, initrd):
        if not os.path.exists(f):
            sys.exit(f"run.py: no {f} (sh cross/firmware/build-image.sh {args.arch})")
    qemu, qemu_data = (args.qemu, []) if args.qemu else find_qemu(spec["qemu"])

    started = time.monotonic()
    deadline = started + args.timeout
    tmp = tempfile.mkdtemp(prefix="nanoctr-fw-")
    sock_path = os.path.join(tmp, "console.sock")
    log_path = os.path.join(image, "console.log")
    qemu_log = open(os.path.join(image, "qemu.log"), "wb")
    cmd = [qemu, *qemu_data, *spec["machine"], "-m", args.memory, "-nographic", "-monitor", "none",
           "-no-reboot", "-nic", "none",
           "-kernel", kernel, "-initrd", initrd,
           # loglevel=3: the kernel's own console messages (an OOM kill is
           # one) would land in the middle of the shell's output.
           "-append", f"console={spec['console']} quiet loglevel=3 panic=-1",
           "-chardev", f"socket,id=ser0,path={sock_path},server=on,wait=on",
           "-serial", "chardev:ser0"]
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
        con.expect(r"built-in shell \(ash\)", 90)
        for _ in range(10):
            con.send("echo @@READY-$((40+2))@@")
            try:
                con.expect("@@READY-42@@", 3)
                break
            except Timeout:
                continue
        else:
            raise Timeout("the console shell does not answer")
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

        # 6. Power off.
        step = "check 6 (poweroff)"
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
                con.sh("nanoctr list; tail -n 5 /run/nanoctr/*/*/shim.log; dmesg | tail -n 10", timeout=8)
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
    failed = [r for r in results if not r[1]]
    print(f"run.py: {elapsed:.1f} s; the console's transcript is {log_path}")
    # The summary alone on its line, as test runners print theirs.
    print(f"{args.arch}: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not results else 0


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
