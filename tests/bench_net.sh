#!/bin/sh
# What a container's network costs: `run` (answered once the container
# runs) and `delete force` of a `sleep` container with net=none,
# net=bridge and net=cni (Debian's bridge + host-local plugins), taken in
# turn, side by side in one run, in a network namespace this script makes
# (entered with nsenter: `ip netns exec` would remount /sys, cgroups and all)
# (nothing of the host's is touched). Prints the median, min and max of
# each in ms. Needs root, the built binaries
# (cargo build --release --target x86_64-unknown-linux-musl), runc,
# containernetworking-plugins and the test rootfs (tests/mkrootfs.sh).
# Usage: tests/bench_net.sh [ROUNDS]   (default 20)
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-20}
bin=$PWD/target/x86_64-unknown-linux-musl/release
rootfs=$PWD/target/test-rootfs2
for f in "$bin/nanoctr" "$bin/nanoctr-shim" "$rootfs/bin/sleep" /usr/lib/cni/bridge; do
	[ -e "$f" ] || { echo "bench_net: $f is missing" >&2; exit 1; }
done
t=$(mktemp -d /tmp/nanoctr-bench-net.XXXXXX)
ns=nanoctr-bench-$$
cleanup() {
	[ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$t"
}
trap cleanup EXIT INT TERM
mkdir -p "$t/b" "$t/cd" "$t/net.d"
: >"$t/empty.conf"
(cd "$t/b" && runc spec && cp -a "$rootfs" rootfs)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"sleep", "600"/' "$t/b/config.json"
cat >"$t/net.d/10-bench.conflist" <<CONF
{"cniVersion": "1.0.0", "name": "bench", "plugins": [
  {"type": "bridge", "bridge": "cnib0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.97.0.0/24"}]], "dataDir": "$t/ipam"}}]}
CONF
ip netns add "$ns"
nsenter --net="/var/run/netns/$ns" ip link set lo up
nsenter --net="/var/run/netns/$ns" "$bin/nanoctr" nanoctrd --socket "$t/s" --state-dir "$t/state" \
	--net-dir "$t/net" --update-dir "$t/upd" --runtime-root "$t/rr" --shim "$bin/nanoctr-shim" \
	--config "$t/empty.conf" --containers-dir "$t/cd" --cni-conf-dir "$t/net.d" \
	--cni-bin-dir /usr/lib/cni >"$t/log" 2>&1 &
daemon=$!
until "$bin/nanoctr" --socket "$t/s" hello >/dev/null 2>&1; do sleep 0.05; done
now() { date +%s%N; }
i=0
while [ "$i" -lt "$rounds" ]; do
	i=$((i + 1))
	for net in none bridge cni:bench; do
		id=c$i-$(echo "$net" | tr -d :)
		s=$(now); "$bin/nanoctr" --socket "$t/s" run "$id" "$t/b" "net=$net" >/dev/null; r=$(( ($(now) - s) / 1000 ))
		s=$(now); "$bin/nanoctr" --socket "$t/s" delete "$id" force >/dev/null; d=$(( ($(now) - s) / 1000 ))
		echo "$net $r $d"
	done
done >"$t/results"
echo "net=        run (ms): median  min   max   delete (ms): median  min   max   ($rounds rounds)"
for net in none bridge cni:bench; do
	stat() { grep "^$net " "$t/results" | cut -d' ' -f"$1" | sort -n | awk '{a[NR]=$1} END {printf "%6.1f %5.1f %5.1f", a[int((NR+1)/2)]/1000, a[1]/1000, a[NR]/1000}'; }
	printf '%-11s             %s                 %s\n' "$net" "$(stat 2)" "$(stat 3)"
done
