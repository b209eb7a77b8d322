#!/bin/sh
# Installs what building and testing nanoctr needs, when it is missing:
# runc, crun, busybox-static, criu (so checkpoints reach CRIU) and, to
# check the init scripts, shellcheck from Debian's packages, rustfmt and
# clippy, and the musl targets. Does nothing when all is there already.
set -eu

missing=""
for pkg in runc crun busybox-static criu file shellcheck; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $pkg"
	fi
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "setup: missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
	echo "setup: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q $missing >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; }
fi

installed=$(rustup target list --installed)
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
	case "$installed" in
	*"$target"*) ;;
	*) rustup target add "$target" ;;
	esac
done
components=$(rustup component list --installed)
for c in rustfmt clippy; do
	case "$components" in
	*"$c"*) ;;
	*) rustup component add "$c" ;;
	esac
done
