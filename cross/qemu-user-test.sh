#!/bin/sh
# Runs, for each target, under qemu-user (qemu-user-static, called by name:
# binfmt_misc need not be set up):
#   1. the unit tests of the daemon crate's library (the protocol, config,
#      state dir, ...) and of the shim crate, as a cargo test runner;
#   2. cross/shim-smoke.py on the stripped release shim from dist/<target>/:
#      start, `created PID`, start, output, exit status, and the line that
#      says the shim cannot be a child subreaper (qemu-user refuses it);
#   3. the same on the firmware build's shim (dist/firmware/<target>/), and
#      its nanoctr run as the daemon (`--version`) and the client (`--help`).
#
# Usage: cross/qemu-user-test.sh [TARGET...]
#   (default: aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf;
#   armv5te, riscv64gc and mipsel work too)
#
# Builds the targets with cross/build.sh first, and with --firmware (see
# there for what each needs). Needs qemu-user-static and python3, and root for the smoke test
# (it runs the shim in a pid namespace of its own).
set -eu
cd "$(dirname "$0")/.."
targets=${*:-aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf}

# Unit tests that cannot pass under qemu-user, and why. They are left out by
# name (libtest counts them as "filtered out") and listed below each run.
skip_tests="server::control_tty::tests::a_person_typing"
skip_why="qemu-user 7.2 has no TCGETS2 ioctl, which rustix's tcgetattr uses (ENOSYS), so no termios call works on the test's pty"

qemu_for() {
	case $1 in
	aarch64-*) echo qemu-aarch64-static ;;
	armv7-*) echo qemu-arm-static ;;
	# The oldest CPUs of each kind that the targets are for, so that an
	# instruction they lack fails here too.
	armv5te-*) echo "qemu-arm-static -cpu arm926" ;;
	riscv64gc-*) echo qemu-riscv64-static ;;
	mipsel-*) echo "qemu-mipsel-static -cpu 24Kc" ;;
	*) return 1 ;;
	esac
}

for t in $targets; do
	q=$(qemu_for "$t") || {
		echo "qemu-user-test: no qemu-user for $t" >&2
		exit 1
	}
	command -v "${q%% *}" >/dev/null || {
		echo "qemu-user-test: needs ${q%% *} (apt-get install qemu-user-static)" >&2
		exit 1
	}
done

# shellcheck disable=SC2086 # a list of targets
sh cross/build.sh $targets
# shellcheck disable=SC2086
sh cross/build.sh --firmware $targets

failed=""
for t in $targets; do
	q=$(qemu_for "$t")
	start=$(date +%s)
	echo "== $t: unit tests under $q"
	case $t in
	x86_64-* | aarch64-*) set -- cargo test ;;
	# -Z build-std builds std once per panic strategy in a build: with the
	# dev profile's abort and the test harness's unwind it would be twice,
	# and rustc then finds two `core`s. Tests unwind throughout here.
	# (Both options work only after the subcommand.)
	*) set -- cargo +nightly test -Z build-std --config 'profile.dev.panic="unwind"' ;;
	esac
	skips=""
	for s in $skip_tests; do skips="$skips --skip $s"; done
	# shellcheck disable=SC2086
	if ! "$@" --target "$t" --config "target.$t.runner=\"$q\"" \
		-p nanoctr -p nanoctr-shim --lib --no-fail-fast -- $skips; then
		failed="$failed $t:unit-tests"
	fi
	for s in $skip_tests; do
		echo "qemu-user-test: skipped $s under qemu-user: $skip_why"
	done
	echo "== $t: shim smoke test under $q"
	python3 cross/shim-smoke.py --qemu "$q" "dist/$t/nanoctr-shim" ||
		failed="$failed $t:shim-smoke"
	echo "== $t: the firmware build under $q"
	python3 cross/shim-smoke.py --qemu "$q" "dist/firmware/$t/nanoctr-shim" ||
		failed="$failed $t:firmware-shim-smoke"
	fw=dist/firmware/$t
	# shellcheck disable=SC2086 # $q is a command and its options
	if ! $q "$fw/nanoctrd" --version | grep -q '^nanoctrd ' ||
		! $q "$fw/nanoctr" --help | grep -q 'delete'; then
		failed="$failed $t:firmware-nanoctr"
	fi
	echo "== $t: $(($(date +%s) - start)) s"
done
if [ -n "$failed" ]; then
	echo "qemu-user-test: failed:$failed" >&2
	exit 1
fi
echo "qemu-user-test: all passed on $targets"
