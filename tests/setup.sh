#!/bin/sh
# Installs what building and testing nanoctr needs, when it is missing:
# from Debian's packages runc, crun, criu (so checkpoints reach CRIU),
# busybox-static (the test rootfs, and `busybox sh -n` of the scripts),
# squashfs-tools and erofs-utils (the image rootfs tests build both), and
# for tests/init_files.rs, which fails without them, also shellcheck and
# systemd (`systemd-analyze verify` of the unit); for the cross builds and
# their tests under qemu-user qemu-user-static, clang, llvm and dpkg-dev;
# for tests/import.rs and the import benchmark umoci and skopeo (images
# made by real tools), libcap2-bin (setcap), zstd, GNU time (peak RSS);
# for tests/mender.rs the Mender client (3.4) and mender-artifact, without
# their recommends (systemd-sysv, dbus, u-boot tools: standalone mode
# needs none of them);
# rustfmt and clippy, the musl targets, and nightly with rust-src (the
# targets rustup has no prebuilt std for). Does nothing when all is there
# already. apt may not remove anything to make room (--no-remove).
set -eu

# install [APT-OPTION] PACKAGE...: the packages not installed yet.
install() {
	opt=""
	case $1 in -*)
		opt=$1
		shift
		;;
	esac
	missing=""
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
			missing="$missing $pkg"
		fi
	done
	[ -n "$missing" ] || return 0
	if [ "$(id -u)" != 0 ]; then
		echo "setup: missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
	echo "setup: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086 # $opt, $missing: one word each
	apt-get install -y -q --no-remove $opt $missing >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-remove $opt $missing >/dev/null; }
}
install runc crun busybox-static criu file shellcheck systemd qemu-user-static clang llvm dpkg-dev \
	python3 umoci skopeo squashfs-tools erofs-utils zstd libcap2-bin time \
	iproute2 nftables containernetworking-plugins curl
install --no-install-recommends mender-client mender-artifact

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
if ! rustup toolchain list | grep -q '^nightly'; then
	rustup toolchain install nightly --profile minimal
fi
rustup component list --installed --toolchain nightly | grep -q '^rust-src' ||
	rustup component add rust-src --toolchain nightly
