#!/usr/bin/env python3
"""Starts one nanoctr-shim the way nanoctrd does, with a fake runtime, and
checks what it reports.

Usage: cross/shim-smoke.py [--qemu "QEMU [OPTIONS]"] SHIM

The fake runtime (a shell script) plays `create`: it starts a "container",
a shell that waits on a fifo, prints a line and exits 7, writes its pid to
the pid file and exits 0; `start` opens the fifo. The shim must report
`created PID` on its startup fd, answer `started` on the reply fifo,
capture the container's output in `output`, write exitStatus 7 and exit 0.

With --qemu the shim runs under that qemu-user command (e.g.
qemu-arm-static, or "qemu-arm-static -cpu arm926" for an ARMv5 CPU), which answers PR_SET_CHILD_SUBREAPER with EINVAL: the
shim must say so in its stderr (shim.log) and go on. Without a subreaper
the container, orphaned when the runtime exits, would go to the system's
init, and the shim would never see it exit; so the shim is run as the init
of a pid namespace of its own (unshare --pid), where orphans come to it.
Without --qemu it runs natively as the subreaper it is, and must not say
so. Needs root (unshare) when --qemu is given.
"""

import argparse
import os
import select
import shlex
import subprocess
import sys
import tempfile
import time

TIMEOUT = 30  # seconds for each step; qemu-user is slow, not that slow

RUNTIME = r"""#!/bin/sh
# A fake OCI runtime for the shim: create, start.
dir=$(dirname "$0")
echo "$@" >>"$dir/runtime.calls"
verb="" pidfile=""
prev=""
for a in "$@"; do
	[ "$prev" = --pid-file ] && pidfile=$a
	prev=$a
	if [ -z "$verb" ]; then
		case "$a" in create | start) verb=$a ;; esac
	fi
done
case "$verb" in
create)
	# The container: held until start, like runc's exec fifo.
	sh -c 'read go <"$1"; echo "hello from the container"; exit 7' sh "$dir/go" &
	echo $! >"$pidfile"
	;;
start) echo go >"$dir/go" ;;
*) echo "fake runtime: unexpected: $*" >&2; exit 1 ;;
esac
"""


def fail(msg, proc_dir=None):
    print(f"shim-smoke: FAIL: {msg}", file=sys.stderr)
    if proc_dir:
        print(f"shim-smoke: the shim's process dir is kept: {proc_dir}", file=sys.stderr)
    if proc_dir:
        for name in ("shim.log", "runtime.calls", "output", "log.json"):
            path = os.path.join(proc_dir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    print(f"--- {name}\n{f.read()}", file=sys.stderr)
    sys.exit(1)


def read_line(fd, what, proc_dir):
    """One line from a non-blocking descriptor, within TIMEOUT."""
    got = b""
    deadline = time.monotonic() + TIMEOUT
    while not got.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            fail(f"no {what} within {TIMEOUT}s (got {got!r})", proc_dir)
        chunk = os.read(fd, 256)
        if not chunk:
            fail(f"end of file before {what} (got {got!r})", proc_dir)
        got += chunk
    return got.decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu", help="qemu-user command to run the shim with")
    ap.add_argument("shim")
    a = ap.parse_args()
    shim = os.path.abspath(a.shim)
    top = tempfile.mkdtemp(prefix="nanoctr-shim-smoke.")
    bundle = os.path.join(top, "bundle")
    proc = os.path.join(top, "proc")  # the shim's process dir
    rt_dir = os.path.join(top, "runtime")
    for d in (bundle, proc, rt_dir):
        os.mkdir(d)
    runtime = os.path.join(rt_dir, "fake-runtime")
    with open(runtime, "w") as f:
        f.write(RUNTIME)
    os.chmod(runtime, 0o755)
    os.mkfifo(os.path.join(rt_dir, "go"))
    for fifo in ("exit", "control", "reply"):
        os.mkfifo(os.path.join(proc, fifo))
    # As the daemon does: hold the exit fifo's read end before the shim starts.
    exit_fd = os.open(os.path.join(proc, "exit"), os.O_RDONLY | os.O_NONBLOCK)
    startup_r, startup_w = os.pipe()
    os.set_blocking(startup_r, False)

    cmd = [shim]
    if a.qemu:
        # --kill-child: the shim goes (and its namespace with it) if
        # unshare is killed on a timeout.
        cmd = ["unshare", "--pid", "--fork", "--kill-child", *shlex.split(a.qemu), shim]
    cmd += [
        "id=smoke",
        f"bundle={bundle}",
        f"runtime={runtime}",
        f"log={proc}/log.json",
        f"pid-file={proc}/pid",
        f"startup-fd={startup_w}",
    ]
    with open(os.path.join(proc, "shim.log"), "wb") as log:
        child = subprocess.Popen(
            cmd,
            cwd=proc,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            pass_fds=(startup_w,),
        )
    os.close(startup_w)
    try:
        created = read_line(startup_r, "'created PID' on the startup fd", proc)
        with open(os.path.join(proc, "pid")) as f:
            pid = f.read().strip()
        if created != f"created {pid}\n":
            fail(f"startup fd said {created!r}, pid file has {pid}", proc)
        print(f"shim-smoke: {created.strip()}")

        reply = os.open(os.path.join(proc, "reply"), os.O_RDONLY | os.O_NONBLOCK)
        control = os.open(os.path.join(proc, "control"), os.O_WRONLY | os.O_NONBLOCK)
        os.write(control, b"start\n")
        answer = read_line(reply, "the answer to start", proc)
        if answer != "started\n":
            fail(f"start answered {answer!r}", proc)
        print("shim-smoke: started")

        try:
            code = child.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            fail(f"the shim did not exit within {TIMEOUT}s of start", proc)
        if code != 0:
            fail(f"the shim exited {code}", proc)
        with open(os.path.join(proc, "exitStatus")) as f:
            status = f.read()
        if status != "7\n":
            fail(f"exitStatus is {status!r}, not 7", proc)
        if os.read(exit_fd, 16) != b"":
            fail("the exit fifo is not at end of file", proc)
        with open(os.path.join(proc, "output")) as f:
            output = f.read()
        if output != "hello from the container\n":
            fail(f"output is {output!r}", proc)
        with open(os.path.join(proc, "shim.log")) as f:
            shim_log = f.read()
        said = "nanoctr-shim: not a child subreaper (" in shim_log
        if a.qemu and not said:
            fail("under qemu-user the shim did not say it is no subreaper", proc)
        if not a.qemu and said:
            fail("natively the shim says it is no subreaper", proc)
        if shim_log and not said:
            fail("the shim wrote to its log", proc)
        print(f"shim-smoke: exitStatus 7, output captured; shim.log: {shim_log.strip() or '(empty)'}")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        try:  # a container still waiting for start: let it exit
            go = os.open(os.path.join(rt_dir, "go"), os.O_WRONLY | os.O_NONBLOCK)
            os.write(go, b"go\n")
            os.close(go)
        except OSError:
            pass
    subprocess.run(["rm", "-rf", top], check=False)
    print(f"shim-smoke: ok ({'under ' + a.qemu if a.qemu else 'native'})")


if __name__ == "__main__":
    main()
