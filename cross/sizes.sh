#!/bin/sh
# Prints the size of every built release binary (bytes, stripped) per
# target, checks that each is statically linked, and enforces the budgets
# on x86_64: the shim may not pass 24 KiB (goal 16 KiB), the daemon 640 KiB
# (goal 512 KiB). Sizes are exact, so unlike timings they can be checked.
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
printf '%-32s %12s %12s %12s\n' target nanoctrd nanoctr nanoctr-shim
for t in $targets; do
	dir=$(dir_of "$t")
	row=$(printf '%-32s' "$t")
	for b in nanoctrd nanoctr nanoctr-shim; do
		if [ ! -f "$dir/$b" ]; then
			row="$row $(printf '%12s' -)"
			continue
		fi
		size=$(stat -c %s "$dir/$b")
		row="$row $(printf '%12s' "$size")"
		if ! file "$dir/$b" | grep -q "statically linked\|static-pie linked"; then
			echo "sizes: $dir/$b is not statically linked" >&2
			status=1
		fi
	done
	echo "$row"
done

budget() { # binary goal limit
	f="$(dir_of x86_64-unknown-linux-musl)/$1"
	[ -f "$f" ] || return 0
	size=$(stat -c %s "$f")
	echo "$1 x86_64: $size bytes (goal $2, limit $3)"
	if [ "$size" -gt "$3" ]; then
		echo "sizes: $1 is over its $3-byte budget" >&2
		status=1
	fi
}
budget nanoctr-shim 16384 24576
budget nanoctrd 524288 655360
exit $status
