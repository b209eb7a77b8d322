#!/bin/sh
# Installs what building and booting the firmware image needs on a Debian
# build machine, when it is missing: cpio, umoci (the OCI image on the data
# disk), e2fsprogs (mkfs.ext4, the data disk), and qemu-system for the
# image's architecture (aarch64, the default, or x86_64). Does nothing when
# all is there already. Run as root.
#
#   sh cross/firmware/setup.sh [aarch64|x86_64]
set -eu
arch=${1:-aarch64}
case $arch in
aarch64) qemu=qemu-system-aarch64 pkg=qemu-system-arm ;;
x86_64) qemu=qemu-system-x86_64 pkg=qemu-system-x86 ;;
*)
	echo "usage: setup.sh [aarch64|x86_64]" >&2
	exit 2
	;;
esac
top=$(cd "$(dirname "$0")/../.." && pwd)
# Where run.py also looks for the emulator (see the fallback below).
private=$top/target/firmware-cache/qemu

if [ "$(id -u)" != 0 ]; then
	echo "setup: run as root (apt-get install)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# --no-remove: never make room by removing what the machine has (apt would
# otherwise remove a held package that conflicts, see below).
install() {
	apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends --no-remove "$@" >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends --no-remove "$@" >/dev/null; }
}

if ! command -v cpio >/dev/null; then
	echo "setup: installing cpio"
	install cpio
fi
if ! command -v umoci >/dev/null; then
	echo "setup: installing umoci"
	install umoci
fi
if ! PATH=$PATH:/usr/sbin:/sbin command -v mkfs.ext4 >/dev/null; then
	echo "setup: installing e2fsprogs"
	install e2fsprogs
fi

if command -v "$qemu" >/dev/null || [ -x "$private/usr/bin/$qemu" ]; then
	exit 0
fi
echo "setup: installing $pkg"
if install "$pkg" 2>/dev/null; then
	exit 0
fi

# apt refused. On this project's machines the cause is qemu-utils from
# bookworm-backports (held), which Breaks the qemu-system-common that
# Debian's qemu-system-* depend on. Install the emulator's libraries and
# data (ROMs, BIOS) as packages, and unpack the emulator and
# qemu-system-common (its loadable modules: x86's TCG is one) under
# target/firmware-cache/qemu, where run.py looks for them.
echo "setup: apt cannot install $pkg; unpacking it under $private instead"
deps=$(apt-cache show --no-all-versions "$pkg" | sed -n 's/^Depends: //p' |
	tr ',' '\n' | sed 's/|.*//; s/(.*//; s/[[:space:]]//g' | grep -v '^qemu-system-common$')
# shellcheck disable=SC2086 # one word per package
install $deps
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q "$pkg" qemu-system-common >/dev/null 2>&1)
mkdir -p "$private"
for deb in "$tmp"/*.deb; do
	dpkg-deb -x "$deb" "$private"
done
"$private/usr/bin/$qemu" --version | head -n 1
