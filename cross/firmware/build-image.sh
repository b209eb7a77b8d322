#!/bin/sh
# Builds a small firmware image for qemu (the aarch64 `virt` board, or a PC):
# a Debian kernel and an initramfs with busybox (init and applets), nanoctr
# (its firmware build: cross/build.sh --firmware), runc and the example
# container, started at boot as init/ and configs/ say.
#
#   sh cross/firmware/build-image.sh [aarch64|x86_64]     (default aarch64)
#
# Output: target/firmware/ARCH/{Image (bzImage on x86_64),initramfs.cpio.gz}.
# Debian packages are downloaded once into target/firmware-cache/DEBARCH/;
# a later build reuses them (a new version in the package lists replaces the
# cached one). Needs apt, dpkg-deb, readelf, cpio and gzip; run as root the
# first time for a foreign architecture (dpkg --add-architecture).
set -eu
arch=${1:-aarch64}
case $arch in
aarch64)
	debarch=arm64 triple=aarch64-unknown-linux-musl libdir=lib/aarch64-linux-gnu kernel=Image
	;;
x86_64)
	debarch=amd64 triple=x86_64-unknown-linux-musl libdir=lib/x86_64-linux-gnu kernel=bzImage
	;;
*)
	echo "usage: build-image.sh [aarch64|x86_64]" >&2
	exit 2
	;;
esac
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=$top/target/firmware-cache/$debarch
out=$top/target/firmware/$arch
work=$top/target/firmware-cache/work-$arch
stage=$work/root

say() { echo "build-image: $*" >&2; }
die() {
	say "$*"
	exit 1
}

for tool in apt-get apt-cache dpkg-deb readelf cpio gzip; do
	command -v "$tool" >/dev/null || die "$tool is missing (sh cross/firmware/setup.sh installs cpio)"
done

# --- nanoctr for the target: the firmware build (cross/build.sh) ---
say "sh cross/build.sh --firmware $triple"
(cd "$top" && sh cross/build.sh --firmware "$triple")
bins=$top/dist/firmware/$triple

# --- Debian packages for the target ---
if [ "$debarch" != "$(dpkg --print-architecture)" ] &&
	! dpkg --print-foreign-architectures | grep -qx "$debarch"; then
	[ "$(id -u)" = 0 ] || die "run as root once: dpkg --add-architecture $debarch && apt-get update"
	say "dpkg --add-architecture $debarch && apt-get update"
	dpkg --add-architecture "$debarch"
	apt-get update -q >/dev/null
fi

# Looks up the candidate version and Depends of each PKG:ARCH given, in
# the local package lists, into $work/versions. One apt-cache call for all:
# each call reads every list (this machine keeps no apt cache). Updates the
# lists once if a package is missing from them.
updated=
lookup() {
	apt-cache show --no-all-versions "$@" 2>/dev/null | awk '
		/^Package: / { p = $2 } /^Architecture: / { a = $2 } /^Version: / { v = $2 }
		/^Depends: / { sub(/^Depends: /, ""); d = $0 }
		/^$/ { if (p != "") print p ":" a "\t" v "\t" d; p = a = v = d = "" }
		END { if (p != "") print p ":" a "\t" v "\t" d }' >>"$work/versions"
	for key in "$@"; do
		[ -n "$(field "$key" 2)" ] && continue
		if [ -n "$updated" ] || [ "$(id -u)" != 0 ]; then
			die "no package $key in the package lists (apt-get update)"
		fi
		say "apt-get update"
		apt-get update -q >/dev/null
		updated=1
		lookup "$@"
		return
	done
}
# Field N (2: version, 3: Depends) of PKG:ARCH, once looked up.
field() {
	awk -F '\t' -v k="$1" -v n="$2" '$1 == k { print $n; exit }' "$work/versions"
}

# Prints the path of PKG's .deb for ARCH (default: the target's) in the
# cache, downloading it if it is not there.
fetch() {
	pkg=$1 a=${2:-$debarch}
	ver=$(field "$pkg:$a" 2)
	[ -n "$ver" ] || die "internal: $pkg:$a was not looked up"
	deb=$top/target/firmware-cache/$a/${pkg}_$(echo "$ver" | tr : _)_$a.deb
	if [ ! -s "$deb" ]; then
		say "downloading $pkg:$a $ver"
		mkdir -p "$work/dl" "$(dirname "$deb")"
		rm -f "$work/dl/"*.deb "$(dirname "$deb")/${pkg}_"*"_$a.deb"
		(cd "$work/dl" && apt-get download -q "$pkg:$a=$ver" >/dev/null 2>&1) ||
			die "apt-get download $pkg:$a=$ver failed"
		mv "$work/dl/"*.deb "$deb"
	fi
	echo "$deb"
}

rm -rf "$work"
mkdir -p "$cache" "$work/pkg" "$out"
: >"$work/versions"
hostarch=$(dpkg --print-architecture)
lookup "linux-image-$debarch:$debarch" "busybox-static:$debarch" "runc:$debarch" "busybox-static:$hostarch"

# The kernel: Debian's, which has all this needs built in (PL011 and 8250
# serial consoles, devtmpfs, cgroup2 with the memory and pids controllers,
# namespaces, seccomp), so no modules go in the image.
kpkg=$(field "linux-image-$debarch:$debarch" 3 | sed -n 's/^\(linux-image-[^ ,:]*\).*/\1/p')
[ -n "$kpkg" ] || die "cannot tell which kernel linux-image-$debarch depends on"
runcdeps=$(field "runc:$debarch" 3 | tr ',' '\n' | sed 's/|.*//; s/(.*//; s/:any//; s/[[:space:]]//g' | grep .)
# shellcheck disable=SC2046,SC2086 # one word per package
lookup "$kpkg:$debarch" $(for dep in $runcdeps; do echo "$dep:$debarch"; done)
kdeb=$(fetch "$kpkg")
kimage=$cache/$(basename "$kdeb" .deb).vmlinuz
if [ ! -s "$kimage" ]; then
	say "unpacking the kernel from $(basename "$kdeb")"
	dpkg-deb --fsys-tarfile "$kdeb" | (cd "$work" && tar -x --wildcards './boot/vmlinuz-*')
	mv "$work"/boot/vmlinuz-* "$kimage"
fi
cp "$kimage" "$out/$kernel"

# busybox, runc, and the packages runc's shared libraries come from.
bbdeb=$(fetch busybox-static)
runcdeb=$(fetch runc)
dpkg-deb -x "$bbdeb" "$work/pkg"
dpkg-deb -x "$runcdeb" "$work/pkg"
for dep in $runcdeps; do
	dpkg-deb -x "$(fetch "$dep")" "$work/pkg"
done
busybox=$work/pkg/bin/busybox

# A busybox this machine can run, to list the applets: the target's own,
# or else the host's build of the same Debian version (the same
# configuration, so the same applets).
if "$busybox" --list >/dev/null 2>&1; then
	hostbb=$busybox
else
	[ "$(field "busybox-static:$hostarch" 2)" = "$(field "busybox-static:$debarch" 2)" ] ||
		die "busybox-static differs between $hostarch and $debarch"
	mkdir -p "$work/hostbb"
	dpkg-deb -x "$(fetch busybox-static "$hostarch")" "$work/hostbb"
	hostbb=$work/hostbb/bin/busybox
fi

# --- The root file system ---
mkdir -p "$stage"
cp -R "$here/rootfs/." "$stage/"
chmod 0755 "$stage/init" "$stage/etc/init.d/rcS"
mkdir -p "$stage/dev" "$stage/newroot"

# busybox with every applet as a link, where busybox --install puts them.
install -D -m 0755 "$busybox" "$stage/bin/busybox"
for applet in $("$hostbb" --list-full); do
	[ "$applet" = bin/busybox ] && continue
	mkdir -p "$stage/$(dirname "$applet")"
	ln -sf /bin/busybox "$stage/$applet"
done

# The device's inittab lines, then init/inittab's as they are.
cat "$here/rootfs/etc/inittab" "$top/init/inittab" >"$stage/etc/inittab"

# nanoctr, in the layout init/README.md gives.
install -D -m 0755 "$bins/nanoctr" "$stage/usr/bin/nanoctr"
mkdir -p "$stage/usr/sbin"
ln -sfn ../bin/nanoctr "$stage/usr/sbin/nanoctrd"
install -D -m 0755 "$bins/nanoctr-shim" "$stage/usr/sbin/nanoctr-shim"
install -D -m 0644 "$top/configs/nanoctrd.conf" "$stage/etc/nanoctr/nanoctrd.conf"
install -D -m 0644 "$top/configs/containers.d/demo.conf" "$stage/etc/nanoctr/containers.d/demo.conf"

# The demo container's bundle, as configs/README.md installs it; the
# rootfs is made by mkrootfs.sh with a busybox that runs here, then given
# the target's busybox.
install -D -m 0644 "$top/configs/bundles/busybox/config.json" "$stage/srv/containers/demo/config.json"
BUSYBOX=$hostbb sh "$top/configs/bundles/busybox/mkrootfs.sh" "$stage/srv/containers/demo/rootfs"
install -m 0755 "$busybox" "$stage/srv/containers/demo/rootfs/bin/busybox"

# runc, where Debian puts it (on nanoctrd's PATH), with its shared
# libraries: its program interpreter and every DT_NEEDED, followed through
# the libraries' own, found in the unpacked packages.
install -D -m 0755 "$work/pkg/usr/sbin/runc" "$stage/usr/sbin/runc"
find_lib() {
	for d in "$work/pkg/$libdir" "$work/pkg/usr/$libdir" "$work/pkg/lib" "$work/pkg/usr/lib"; do
		[ -e "$d/$1" ] && {
			echo "$d/$1"
			return
		}
	done
	die "runc needs $1, found in none of the packages of runc's Depends"
}
interp=$(readelf -l "$stage/usr/sbin/runc" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
if [ -n "$interp" ]; then
	install -D -m 0755 "$(find_lib "$(basename "$interp")")" "$stage/$libdir/$(basename "$interp")"
	[ "$interp" = "/$libdir/$(basename "$interp")" ] ||
		{ mkdir -p "$stage$(dirname "$interp")" && ln -s "/$libdir/$(basename "$interp")" "$stage$interp"; }
fi
todo=$stage/usr/sbin/runc
while [ -n "$todo" ]; do
	next=
	for elf in $todo; do
		for lib in $(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			[ -e "$stage/$libdir/$lib" ] && continue
			install -D -m 0755 "$(find_lib "$lib")" "$stage/$libdir/$lib"
			next="$next $stage/$libdir/$lib"
		done
	done
	todo=$next
done

# --- The initramfs ---
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip >"$out/initramfs.cpio.gz"
say "$out/$kernel $(wc -c <"$out/$kernel") bytes"
say "$out/initramfs.cpio.gz $(wc -c <"$out/initramfs.cpio.gz") bytes ($(du -sk "$stage" | cut -f1) KiB unpacked)"
