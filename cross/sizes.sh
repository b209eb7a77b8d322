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
# Budgets (x86_64, stable): nanoctr at most 680 KiB, nanoctr-shim 24 KiB
# (goal 16 KiB); the split build's nanoctrd 640 KiB (goal 512 KiB).
#
# Usage: cross/sizes.sh [--dist] [TARGET...]   (default: the targets built
# so far). It reads target/TARGET/release/, or with --dist the stripped
# copies cross/build.sh puts in dist/TARGET/.
set -eu
cd "$(dirname "$0")/.."
top=target
if [ "${1:-}" = --dist ]; then
	top=dist
	shift
fi
dir_of() { # target
	if [ "$top" = dist ]; then echo "dist/$1"; else echo "target/$1/release"; fi
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
		size=$(stat -c %s "$f")
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
	size=$(stat -c %s "$1")
	echo "$1: $size bytes (goal $2, limit $3)"
	if [ "$size" -gt "$3" ]; then
		echo "sizes: $1 is over its $3-byte budget" >&2
		status=1
	fi
}
x86=$(dir_of x86_64-unknown-linux-musl)
budget "$x86/nanoctr" 524288 696320
budget "$x86/nanoctr-shim" 16384 24576
budget target/split/x86_64-unknown-linux-musl/release/nanoctrd 524288 655360
exit $status
