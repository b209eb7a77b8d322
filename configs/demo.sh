#!/bin/sh
# The main job: builds nanoctr, starts nanoctrd with its defaults (socket
# /run/nanoctr/nanoctr.sock, state in /run/nanoctr, runc from PATH) unless
# one is running already, runs a demo busybox container from the example
# bundle, and shows it with `nanoctr list`. Needs root.
set -eu
cd "$(dirname "$0")/.."
sh tests/setup.sh
cargo build --release --target x86_64-unknown-linux-musl
bin="$PWD/target/x86_64-unknown-linux-musl/release"
# One program: nanoctrd is a link to nanoctr, as installed.
ln -sfn nanoctr "$bin/nanoctrd"
demo="$PWD/target/demo"

# The example bundle, with a busybox root filesystem.
mkdir -p "$demo/bundle"
[ -x "$demo/bundle/rootfs/bin/busybox" ] || sh configs/bundles/busybox/mkrootfs.sh "$demo/bundle/rootfs"
cp configs/bundles/busybox/config.json "$demo/bundle/config.json"

if ! "$bin/nanoctr" hello >/dev/null 2>&1; then
	echo "demo: starting nanoctrd (log: $demo/nanoctrd.log)"
	setsid "$bin/nanoctrd" </dev/null >"$demo/nanoctrd.log" 2>&1 &
	tries=0
	until "$bin/nanoctr" hello >/dev/null 2>&1; do
		tries=$((tries + 1))
		if [ "$tries" -gt 100 ]; then
			cat "$demo/nanoctrd.log" >&2
			exit 1
		fi
		sleep 0.1
	done
fi

"$bin/nanoctr" delete demo force >/dev/null 2>&1 || true
"$bin/nanoctr" run demo "$demo/bundle"
"$bin/nanoctr" list
cat <<EOT

The demo container prints the date every 5 seconds. Try:
  $bin/nanoctr state demo
  tail /run/nanoctr/demo/init/output
  $bin/nanoctr kill demo KILL && $bin/nanoctr wait demo
  $bin/nanoctr delete demo force
  kill \$(pidof nanoctrd)      # stops the daemon; containers keep running
EOT
