#!/bin/sh
# Fills DIR with a busybox root filesystem for the example bundle: the
# static busybox binary, one symlink per applet, the mount points the
# bundle's config.json uses, and minimal /etc files. Needs busybox-static
# (Debian: apt-get install busybox-static); set BUSYBOX to use another one.
set -eu
root=${1:?usage: mkrootfs.sh DIR}
busybox=${BUSYBOX:-/bin/busybox}
if ! "$busybox" --list >/dev/null 2>&1; then
	echo "mkrootfs.sh: $busybox is not a busybox binary (apt-get install busybox-static)" >&2
	exit 1
fi
mkdir -p "$root/bin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
# Mount points for the files net=bridge binds over them: a read-only
# rootfs cannot have them made at create.
echo "127.0.0.1	localhost" >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
