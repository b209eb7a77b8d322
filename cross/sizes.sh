#!/bin/sh
# Prints the size of every built release binary (bytes, stripped) per
# target, checks that each is statically linked, and enforces the shim's
# budget on x86_64: above 24 KiB fails (the goal is 16 KiB).
# Usage: cross/sizes.sh [TARGET...]   (default: the targets built so far)
set -eu
cd "$(dirname "$0")/.."
shim_limit=24576
shim_goal=16384
targets=${*:-$(cd target && ls -d *-linux-musl* 2>/dev/null || true)}
status=0
printf '%-28s %12s %12s %12s\n' target nanoctrd nanoctr nanoctr-shim
for t in $targets; do
	dir="target/$t/release"
	row=$(printf '%-28s' "$t")
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
shim="target/x86_64-unknown-linux-musl/release/nanoctr-shim"
if [ -f "$shim" ]; then
	size=$(stat -c %s "$shim")
	echo "shim x86_64: $size bytes (goal $shim_goal, limit $shim_limit)"
	if [ "$size" -gt "$shim_limit" ]; then
		echo "sizes: the shim is over its $shim_limit-byte budget" >&2
		status=1
	fi
fi
exit $status
