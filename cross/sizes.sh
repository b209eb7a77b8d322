#!/bin/sh
# Prints the size of every built release binary (bytes, stripped) per
# target, checks that each is statically linked, and enforces the budgets
# on x86_64. Sizes are exact, so unlike timings they can be checked.
#
# What ships is one program, nanoctr (daemon and client; nanoctrd is a link
# to it), and nanoctr-shim; "install" is the two together. A `split` build
# (`--features nanoctr/split`, two programs) in target/split/ is shown too
# when there is one.
#
# Budgets (x86_64, stable): nanoctr at most 1160 KiB (image import is
# about 230 KB of it, networking, bridge and CNI, about 170 KB), nanoctr-shim 16 KiB (as shipped, without section
# headers: cross/build.sh); the split build's nanoctrd 912 KiB (goal 512
# KiB).
#
# With --firmware (the firmware build, dist/firmware/TARGET/), per target:
# the install at most 800 KiB (goal 256 KiB), the shim 16 KiB, and how far
# each is from its goal.
#
# Usage: cross/sizes.sh [--dist | --firmware] [TARGET...]   (default: the
# targets built so far). It reads target/TARGET/release/, or with --dist
# the stripped copies cross/build.sh puts in dist/TARGET/. Every size is
# the binary as it ships: stripped of symbols and section headers (what
# cross/build.sh does), so target/ and dist/ give the same figures.
set -eu
cd "$(dirname "$0")/.."
top=target
scratch=$(mktemp)
trap 'rm -f "$scratch"' EXIT
# The size of $1 as it ships.
shipped() {
	llvm-strip --strip-all --strip-sections "$1" -o "$scratch"
	stat -c %s "$scratch"
}
case ${1:-} in
--dist)
	top=dist
	shift
	;;
--firmware)
	top=dist/firmware
	shift
	;;
esac
dir_of() { # target
	if [ "$top" = target ]; then echo "target/$1/release"; else echo "$top/$1"; fi
}
targets=${*:-$( (cd "$top" && ls -d -- *-linux-musl*) 2>/dev/null || true)}
status=0

# One row: the sizes of $2's binaries (those that are files of their own).
row() { # label dir
	line=$(printf '%-36s' "$1")
	install=0
	for b in nanoctr nanoctr-shim nanoctrd; do
		f=$2/$b
		if [ ! -f "$f" ] || [ -L "$f" ]; then
			line="$line $(printf '%12s' -)"
			continue
		fi
		size=$(shipped "$f")
		install=$((install + size))
		line="$line $(printf '%12s' "$size")"
		if ! file "$f" | grep -q "statically linked\|static-pie linked"; then
			echo "sizes: $f is not statically linked" >&2
			status=1
		fi
	done
	echo "$line $(printf '%12s' "$install")"
}

printf '%-36s %12s %12s %12s %12s\n' target nanoctr nanoctr-shim nanoctrd install
for t in $targets; do
	row "$t" "$(dir_of "$t")"
	split=target/split/$t/release
	if [ "$top" = target ] && [ -f "$split/nanoctrd" ]; then
		row "$t (split)" "$split"
	fi
done

budget() { # file goal limit
	[ -f "$1" ] && [ ! -L "$1" ] || return 0
	size=$(shipped "$1")
	echo "$1: $size bytes (goal $2, limit $3)"
	if [ "$size" -gt "$3" ]; then
		echo "sizes: $1 is over its $3-byte budget" >&2
		status=1
	fi
}
if [ "$top" = dist/firmware ]; then
	# Per target: the install (nanoctr + shim) at most 800 KiB, goal 256
	# KiB; the shim at most 16 KiB. The default features (zstd) are in:
	# the install is all there is to cost. Image import (tar, gzip, zstd,
	# sha256, the store) is about 210 KB of it.
	for t in $targets; do
		d=$(dir_of "$t")
		if [ ! -f "$d/nanoctr" ] || [ ! -f "$d/nanoctr-shim" ]; then
			continue
		fi
		n=$(shipped "$d/nanoctr")
		m=$(shipped "$d/nanoctr-shim")
		i=$((n + m))
		echo "$t: install $i bytes (nanoctr $n, shim $m); limit 819200, goal 262144: $((i - 262144)) over the goal"
		if [ "$i" -gt 819200 ]; then
			echo "sizes: $t: the install is over its 819200-byte budget" >&2
			status=1
		fi
		budget "$d/nanoctr-shim" 16384 16384
	done
	exit $status
fi
x86=$(dir_of x86_64-unknown-linux-musl)
budget "$x86/nanoctr" 524288 1187840
budget "$x86/nanoctr-shim" 16384 16384
budget target/split/x86_64-unknown-linux-musl/release/nanoctrd 524288 933888
exit $status
