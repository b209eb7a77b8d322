#!/bin/sh
# Builds a small firmware image for qemu (the aarch64 `virt` board, or a PC):
# a Debian kernel and an initramfs with busybox (init and applets), nanoctr
# (its firmware build: cross/build.sh --firmware), runc and the example
# container, started at boot as init/ and configs/ say.
#
#   sh cross/firmware/build-image.sh [aarch64|x86_64]     (default aarch64)
#
# Output: target/firmware/ARCH/{Image (bzImage on x86_64),initramfs.cpio.gz,
# data.img} (data.img: the data disk, ext4).
# Debian packages are downloaded once into target/firmware-cache/DEBARCH/;
# a later build reuses them (a new version in the package lists replaces the
# cached one). Needs apt, dpkg-deb, readelf, cpio, gzip, umoci and mkfs.ext4;
# run as root the first time for a foreign architecture (dpkg
# --add-architecture).
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

# The kernel: Debian's, which has most of what this needs built in (PL011
# and 8250 serial consoles, devtmpfs, cgroup2 with the memory and pids
# controllers, namespaces, seccomp); the data disk's driver and ext4 are
# modules (below).
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

# Kernel modules for the data disk: virtio's block driver on the board's
# virtio transport (virtio-mmio on the aarch64 virt board, PCI on a PC),
# and ext4. crc32c_generic is what ext4 and jbd2 ask for by their softdep
# (`pre: crypto-crc32c`, its alias): ext4 checksums its metadata with it.
# And softdog, the board's watchdog (qemu's virt board has none of its
# own): a kernel timer that resets the machine `margin` seconds after the
# last pet (its soft_margin), which nanoctrd gives it while the critical
# containers are well.
# The package has no modules.dep (its postinst runs depmod), so each
# module's own dependencies (`depends=` in its .modinfo section) are
# followed; the needed files are unpacked once into the cache.
case $arch in
aarch64) kmodules="virtio_mmio virtio_blk crc32c_generic ext4 softdog" ;;
x86_64) kmodules="virtio_pci virtio_blk crc32c_generic ext4 softdog" ;;
esac
margin=10
kver=${kpkg#linux-image-}
mcache=$cache/$(basename "$kdeb" .deb).modules
mroot=$mcache/lib/modules/$kver
# Unpacks these files (paths under lib/modules/KVER) from the kernel
# package into the cache, those not there yet: one pass over the package.
unpack_modules() {
	list=
	for p in "$@"; do
		[ -e "$mroot/$p" ] || list="$list ./lib/modules/$kver/$p"
	done
	[ -n "$list" ] || return 0
	say "unpacking$list from $(basename "$kdeb")"
	mkdir -p "$mcache"
	# shellcheck disable=SC2086 # one word per file
	dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$mcache" $list ||
		die "$(basename "$kdeb") lacks one of:$list"
}
# A field of a module's .modinfo (depends, softdep, alias), one value a line.
modfield() {
	readelf -p .modinfo "$1" | sed -n "s/^ *\[ *[0-9a-f]*\] *$2=//p"
}
# The path of module NAME under lib/modules/KVER ('-' and '_' are one).
modpath() {
	awk -v n="$1" '{ f = $0; sub(/.*\//, "", f); sub(/\.ko$/, "", f); gsub(/-/, "_", f)
		if (f == n) { print; exit } }' "$2"
}
unpack_modules modules.order modules.builtin
mods=''
todo=$kmodules
while [ -n "$todo" ]; do
	paths=''
	next=''
	for m in $todo; do
		[ -n "$(modpath "$m" "$mroot/modules.builtin")" ] && continue
		p=$(modpath "$m" "$mroot/modules.order")
		[ -n "$p" ] || die "no module $m in $(basename "$kdeb")"
		paths="$paths $p"
	done
	# shellcheck disable=SC2086 # one word per file
	unpack_modules $paths
	for p in $paths; do
		mods="$mods $p"
		for d in $(modfield "$mroot/$p" depends | tr ',' ' '); do
			case " $todo $next $(for q in $mods; do basename "$q" .ko; done | tr '\n' ' ') " in
			*" $d "*) ;;
			*) next="$next $d" ;;
			esac
		done
	done
	todo=$next
done
# Every softdep of theirs is one of them (by name or alias) or built in.
names=$(for p in $mods; do basename "$p" .ko | tr - _; modfield "$mroot/$p" alias; done)
for p in $mods; do
	for d in $(modfield "$mroot/$p" softdep | sed 's/^pre://; s/post:.*//'); do
		echo "$names" | grep -qx "$d" || [ -n "$(modpath "$d" "$mroot/modules.builtin")" ] ||
			die "$(basename "$p") wants $d first (softdep), which none of $kmodules is"
	done
done

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
# The Mender Update Module, for a device that runs Mender.
mkdir -p "$stage/usr/share/mender/modules/v3"
ln -sfn /usr/bin/nanoctr "$stage/usr/share/mender/modules/v3/nanoctr"
install -D -m 0644 "$top/configs/nanoctrd.conf" "$stage/etc/nanoctr/nanoctrd.conf"
install -D -m 0644 "$top/configs/containers.d/demo.conf" "$stage/etc/nanoctr/containers.d/demo.conf"
# The board has a watchdog: nanoctrd pets it while the critical container
# (rootfs/etc/nanoctr/containers.d/guard.conf) is well.
cat >>"$stage/etc/nanoctr/nanoctrd.conf" <<EOF_CONF

# --- This board (cross/firmware/build-image.sh) ---

# softdog, loaded by rcS with soft_margin=$margin: petted every $margin/3 s.
watchdog = /dev/watchdog
EOF_CONF

# The demo container's bundle, as configs/README.md installs it; the
# rootfs is made by mkrootfs.sh with a busybox that runs here, then given
# the target's busybox.
install -D -m 0644 "$top/configs/bundles/busybox/config.json" "$stage/srv/containers/demo/config.json"
BUSYBOX=$hostbb sh "$top/configs/bundles/busybox/mkrootfs.sh" "$stage/srv/containers/demo/rootfs"
install -m 0755 "$busybox" "$stage/srv/containers/demo/rootfs/bin/busybox"

# The critical container's bundle (guard.conf): the demo's config.json on
# the demo's root, with /data/guard bound read-only at /tmp/guard, after
# the mount of /tmp (mounts are made in order; the entry goes before the
# list's closing line, the only one that is a tab and `],`). Its process
# runs until /tmp/guard/fail exists, then exits 1, as will each restart.
# With health checks, the args become a plain sleep and the check tests
# for the file (guard.conf says how).
mkdir -p "$stage/srv/containers/guard"
sed -e 's|"path": "rootfs"|"path": "/srv/containers/demo/rootfs"|' \
	-e 's|"hostname": .*|"hostname": "guard",|' \
	-e 's|"args": .*|"args": ["sh", "-c", "echo guard up; while [ ! -e /tmp/guard/fail ]; do sleep 1; done; echo guard: /tmp/guard/fail is there; exit 1"],|' \
	-e 's|^\t\],$|\t\t,{ "destination": "/tmp/guard", "type": "bind", "source": "/data/guard", "options": ["rbind", "ro", "nosuid", "nodev", "noexec"] }\n\t],|' \
	"$top/configs/bundles/busybox/config.json" >"$stage/srv/containers/guard/config.json"
if ! grep -q '"source": "/data/guard"' "$stage/srv/containers/guard/config.json" ||
	! grep -q '"hostname": "guard"' "$stage/srv/containers/guard/config.json"; then
	die "the demo's config.json changed shape: the guard's bundle cannot be made from it"
fi

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

# The modules, a modules.dep for them (busybox depmod), and /etc/modules,
# which rcS loads in order with modprobe, each with its parameters.
for p in $mods; do
	install -D -m 0644 "$mroot/$p" "$stage/lib/modules/$kver/$p"
done
"$hostbb" depmod -b "$stage" "$kver"
for m in $kmodules; do
	[ -n "$(modpath "$m" "$mroot/modules.builtin")" ] && continue
	case $m in
	softdog) echo "$m soft_margin=$margin" ;;
	*) echo "$m" ;;
	esac
done >"$stage/etc/modules"

# --- The initramfs ---
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip >"$out/initramfs.cpio.gz"

# --- The data disk ---
# data.img, an ext4 file system the board mounts on /data (rcS), with what
# run.py's power-cut test imports: an OCI image layout made by umoci
# (image/, one image, tag web) in four layers: the demo's busybox rootfs;
# a few small files; BLOBS_MB files of 1 MiB of random bytes (incompressible,
# so an import takes seconds under qemu); a whiteout of one of the small
# files and a change to another. manifest is what a bundle's rootfs made
# from it must hold, as list-tree prints it, made from `umoci unpack` of the
# image; watch-import says when an import's layers and bundle appear;
# bundles/ is where the bundles go.
say "the data disk"
blobs=${BLOBS_MB:-20}
mkfs=$(PATH=$PATH:/usr/sbin:/sbin command -v mkfs.ext4) || die "mkfs.ext4 is missing (sh cross/firmware/setup.sh installs e2fsprogs)"
command -v umoci >/dev/null || die "umoci is missing (sh cross/firmware/setup.sh installs it)"
data=$work/data
layout=$data/image
ob=$work/oci-bundle
rootless=
[ "$(id -u)" = 0 ] || rootless=--rootless
mkdir -p "$data/bundles" "$data/guard"
cat >"$data/list-tree" <<'EOF_LIST'
#!/bin/sh
# list-tree DIR: every entry under DIR, one a line, sorted: `d PATH` for a
# directory, `s SIZE PATH` and `f SHA256  PATH` for a file, `l 'PATH' ->
# 'TARGET'` for a symlink, `o PATH` for anything else; PATHs start with
# `./`. Only busybox's applets (BUSYBOX, default busybox), so the build
# machine and the board list a tree alike.
set -e
bb=${BUSYBOX:-busybox}
cd "$1"
{
	"$bb" find . -type d | "$bb" sed 's/^/d /'
	"$bb" find . -type f -exec "$bb" stat -c 's %s %n' {} +
	"$bb" find . -type f -exec "$bb" sha256sum {} + | "$bb" sed 's/^/f /'
	"$bb" find . -type l -exec "$bb" stat -c 'l %N' {} +
	"$bb" find . ! -type d ! -type f ! -type l | "$bb" sed 's/^/o /'
} | LC_ALL=C "$bb" sort
EOF_LIST
cat >"$data/watch-import" <<'EOF_WATCH'
#!/bin/sh
# watch-import BUNDLE HEX...: prints `@@IN UPTIME HEX` once the image
# store has layer HEX (/data/images/layers/HEX), for each HEX in turn, then
# `@@IN UPTIME bundle` once BUNDLE exists: where an import is. It polls
# every 20 ms with the shell's builtins alone (no process per poll, so it
# takes little from the import it watches), and gives up after 120 s.
b=$1
shift
f=/tmp/watch-import.$$
mkfifo "$f" || exit 1
n=0
for w in "$@" bundle; do
	p=/data/images/layers/$w
	[ "$w" = bundle ] && p=$b
	until [ -e "$p" ]; do
		n=$((n + 1))
		[ $n -le 6000 ] || break 2
		# shellcheck disable=SC3045 # busybox ash: -t takes fractions
		read -r -t 0.02 _ <>"$f"
	done
	read -r up _ </proc/uptime
	echo "@@IN $up $w"
done
rm -f "$f"
EOF_WATCH
umoci init --layout "$layout"
umoci new --image "$layout:web"
umoci config --image "$layout:web" --no-history --os linux --architecture "$debarch"
umoci unpack $rootless --image "$layout:web" "$ob" >/dev/null
cp -a "$stage/srv/containers/demo/rootfs/." "$ob/rootfs/"
umoci repack --refresh-bundle --image "$layout:web" "$ob"
mkdir -p "$ob/rootfs/srv/web/blobs"
echo "hello from the data disk" >"$ob/rootfs/srv/web/index.html"
echo "mode=first" >"$ob/rootfs/srv/web/web.conf"
echo "removed by the last layer" >"$ob/rootfs/srv/web/old.html"
umoci repack --refresh-bundle --image "$layout:web" "$ob"
i=0
while [ "$i" -lt "$blobs" ]; do
	i=$((i + 1))
	head -c 1048576 /dev/urandom >"$ob/rootfs/srv/web/blobs/blob-$i"
done
umoci repack --refresh-bundle --image "$layout:web" "$ob"
rm "$ob/rootfs/srv/web/old.html"
echo "mode=last" >"$ob/rootfs/srv/web/web.conf"
umoci repack --refresh-bundle --image "$layout:web" "$ob"
# shellcheck disable=SC2016 # the container's shell expands it
umoci config --image "$layout:web" --config.env PATH=/bin --config.workingdir /srv/web \
	--config.entrypoint /bin/sh --config.entrypoint -c \
	--config.entrypoint 'echo "web up: $(cat index.html) $(cat web.conf) $(ls blobs | wc -l) blobs"'
umoci gc --layout "$layout"
rm -rf "$ob"
umoci unpack $rootless --image "$layout:web" "$ob" >/dev/null
BUSYBOX=$hostbb "$hostbb" sh "$data/list-tree" "$ob/rootfs" >"$data/manifest"
rm -rf "$ob" "$out/data.img"
"$mkfs" -q -F -t ext4 -L data -b 4096 -N 8192 -E lazy_itable_init=0,lazy_journal_init=0 \
	-d "$data" "$out/data.img" 256M >/dev/null

say "$out/$kernel $(wc -c <"$out/$kernel") bytes"
say "$out/initramfs.cpio.gz $(wc -c <"$out/initramfs.cpio.gz") bytes ($(du -sk "$stage" | cut -f1) KiB unpacked)"
say "$out/data.img $(du -k --apparent-size "$out/data.img" | cut -f1) KiB ($(du -sk "$data" | cut -f1) KiB of files: image/ $(du -sk "$layout" | cut -f1) KiB, $(grep -c '^f ' "$data/manifest") files in its rootfs)"
