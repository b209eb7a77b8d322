#!/bin/sh
# Builds stripped, static release binaries of nanoctr (daemon and client;
# nanoctrd is a link to it) and nanoctr-shim for each target into
# dist/<target>/ and prints their sizes.
#
# Usage: cross/build.sh [TARGET...]
#
# Default: every target below. x86_64 and aarch64 use the stable toolchain
# and rustup's prebuilt std. The others have no prebuilt std here: they use
# nightly's -Z build-std (rust-src), with what std and the shim link against
# fetched once into target/cross-cache/<target>/ (see cross/README.md):
# musl's libc.a and start files from Debian's musl-dev for the architecture
# (from Debian's musl source for mipsel, built soft-float as Rust's target
# is), and LLVM's libunwind.a, built with clang from nightly's rust-src.
# Debian's packages are fetched with apt-get into that cache alone, with
# its own package lists: the system's apt setup is left as it is.
#
# Needs: rustup with stable (and nightly for the build-std targets), clang
# and llvm (llvm-ar, llvm-strip), file; dpkg-source for mipsel. A target
# that fails does not stop the others; the exit status is 1 if any failed.
#
# With --firmware: the build that ships on a device. Every target goes
# through -Z build-std with the nightly pinned in cross/firmware/toolchain
# (installed with rustup when missing), a panic aborting at once
# (`panic = "immediate-abort"`: no formatting or unwinding machinery), the
# same size profile; stripped into dist/firmware/<target>/, then the size
# table and the firmware budgets (cross/sizes.sh --firmware). Default
# targets: x86_64, aarch64, armv7.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd)

stable_targets="x86_64-unknown-linux-musl aarch64-unknown-linux-musl"
nightly_targets="armv7-unknown-linux-musleabihf armv5te-unknown-linux-musleabi riscv64gc-unknown-linux-musl mipsel-unknown-linux-musl"
firmware=""
toolchain=nightly
if [ "${1:-}" = --firmware ]; then
	shift
	firmware=1
	toolchain=$(cat cross/firmware/toolchain)
	stable_targets=""
	set -- "${@:-x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf}"
	# shellcheck disable=SC2048,SC2086 # the default is one word of targets
	set -- $*
fi
targets=${*:-$stable_targets $nightly_targets}
cache=$root/target/cross-cache
# The Debian release whose musl (1.2.5, the version Rust bundles) is used.
suite=trixie

say() { echo "cross: $*" >&2; }
need() {
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || {
			say "needs $c (apt-get install clang llvm file dpkg-dev)"
			exit 1
		}
	done
}

# Facts per build-std target: Debian architecture, the multiarch directory
# of its musl-dev, and clang's flags for the same ABI as Rust's target.
facts() {
	case $1 in
	# Built with build-std for the firmware build only: the pinned nightly
	# has no prebuilt std (nor its self-contained musl) for them.
	x86_64-unknown-linux-musl)
		deb_arch=amd64 multiarch=x86_64-linux-musl
		cflags="--target=x86_64-linux-musl"
		;;
	aarch64-unknown-linux-musl)
		deb_arch=arm64 multiarch=aarch64-linux-musl
		cflags="--target=aarch64-linux-musl"
		;;
	armv7-unknown-linux-musleabihf)
		deb_arch=armhf multiarch=arm-linux-musleabihf
		cflags="--target=armv7-linux-musleabihf -mfloat-abi=hard -mfpu=vfpv3-d16"
		;;
	armv5te-unknown-linux-musleabi)
		deb_arch=armel multiarch=arm-linux-musleabi
		cflags="--target=armv5te-linux-musleabi -mfloat-abi=soft"
		;;
	riscv64gc-unknown-linux-musl)
		deb_arch=riscv64 multiarch=riscv64-linux-musl
		cflags="--target=riscv64-linux-musl -march=rv64gc -mabi=lp64d"
		;;
	mipsel-unknown-linux-musl)
		# Debian's mipsel musl is hard-float (FPXX); Rust's target is
		# soft-float, and lld refuses to mix them. Built from source.
		deb_arch="" multiarch=mipsel-linux-musl
		cflags="--target=mipsel-linux-musl -march=mips32r2 -msoft-float"
		;;
	*) return 1 ;;
	esac
}

# apt-get with package lists of its own under $cache/apt/$1, for the
# sources line $2: nothing of the system's apt state changes.
private_apt() {
	dir=$cache/apt/$1
	mkdir -p "$dir/lists/partial" "$dir/archives/partial"
	echo "$2" >"$dir/sources.list"
	set -- -q -o "Dir::Etc::SourceList=$dir/sources.list" \
		-o Dir::Etc::SourceParts=/nonexistent \
		-o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir" \
		-o Dir::State::status=/dev/null -o APT::Sandbox::User=root \
		-o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
	apt_opts=$*
}
debian=http://deb.debian.org/debian
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

# musl for target $1 into $cache/$1/{include,lib}.
fetch_musl() {
	t=$1 out=$cache/$1
	if [ -n "$deb_arch" ]; then
		private_apt "$deb_arch" "deb [arch=$deb_arch signed-by=$keyring] $debian $suite main"
		# shellcheck disable=SC2086 # apt_opts is a word list
		apt-get $apt_opts -o "APT::Architecture=$deb_arch" \
			-o "APT::Architectures::=$deb_arch" update >"$out/apt.log" 2>&1
		rm -f "$cache/apt/$deb_arch/"musl-dev_*.deb
		# shellcheck disable=SC2086
		(cd "$cache/apt/$deb_arch" && apt-get $apt_opts -o "APT::Architecture=$deb_arch" \
			-o "APT::Architectures::=$deb_arch" download "musl-dev:$deb_arch") >>"$out/apt.log" 2>&1
		rm -rf "$out/root"
		dpkg-deb -x "$cache/apt/$deb_arch/"musl-dev_*.deb "$out/root"
		cp -r "$out/root/usr/include/$multiarch" "$out/include"
		for f in libc.a crt1.o crti.o crtn.o; do
			cp "$out/root/usr/lib/$multiarch/$f" "$out/lib/"
		done
		ls "$cache/apt/$deb_arch/"musl-dev_*.deb >"$out/musl.version"
	else
		private_apt source "deb-src [signed-by=$keyring] $debian $suite main"
		# shellcheck disable=SC2086
		apt-get $apt_opts update >"$out/apt.log" 2>&1
		src=$cache/apt/source
		rm -rf "$src/musl" "$src"/musl_*
		# shellcheck disable=SC2086
		(cd "$src" && apt-get $apt_opts source --download-only musl &&
			dpkg-source -x musl_*.dsc musl) >>"$out/apt.log" 2>&1
		rm -rf "$out/build" && mkdir -p "$out/build"
		# shellcheck disable=SC2086
		(cd "$out/build" && "$src/musl/configure" --target="$multiarch" \
			--disable-shared --prefix="$out/root" CC="clang $cflags" \
			CFLAGS="-Os -ffunction-sections -fdata-sections" \
			AR=llvm-ar RANLIB=llvm-ranlib &&
			make -j"$(nproc)" lib/libc.a lib/crt1.o lib/crti.o lib/crtn.o &&
			make install-headers) >"$out/musl-build.log" 2>&1
		cp -r "$out/root/include" "$out/include"
		for f in libc.a crt1.o crti.o crtn.o; do
			cp "$out/build/lib/$f" "$out/lib/"
		done
		ls "$src"/musl_*.dsc >"$out/musl.version"
	fi
}

# LLVM's libunwind for target $1 into $cache/$1/lib/libunwind.a: the
# sources and flags Rust uses for the one it ships with its musl targets.
build_libunwind() {
	out=$cache/$1
	src=$(rustc +"$toolchain" --print sysroot)/lib/rustlib/src/rust/src/llvm-project/libunwind
	obj=$out/unwind && rm -rf "$obj" && mkdir -p "$obj"
	flags="$cflags -nostdinc -isystem $out/include -isystem $(clang -print-resource-dir)/include
		-I$src/include -Os -ffunction-sections -fdata-sections -funwind-tables
		-fstrict-aliasing -fvisibility=hidden -DNDEBUG
		-D_LIBUNWIND_DISABLE_VISIBILITY_ANNOTATIONS -D_LIBUNWIND_IS_NATIVE_ONLY"
	for f in Unwind-sjlj.c UnwindLevel1-gcc-ext.c UnwindLevel1.c \
		UnwindRegistersRestore.S UnwindRegistersSave.S; do
		# shellcheck disable=SC2086
		clang $flags -c "$src/src/$f" -o "$obj/${f%.*}.o"
	done
	for f in Unwind-EHABI.cpp Unwind-seh.cpp libunwind.cpp; do
		# shellcheck disable=SC2086
		clang++ $flags -nostdinc++ -fno-exceptions -fno-rtti -c "$src/src/$f" -o "$obj/${f%.*}.o"
	done
	rm -f "$out/lib/libunwind.a"
	llvm-ar rcs "$out/lib/libunwind.a" "$obj"/*.o
}

# What a build-std target links against.
prepare() {
	out=$cache/$1
	rm -rf "$out" && mkdir -p "$out/lib"
	fetch_musl "$1"
	build_libunwind "$1"
	# Called as a condition, where `set -e` does not act: check the result.
	for f in libc.a crt1.o crti.o crtn.o libunwind.a; do
		[ -s "$out/lib/$f" ] || {
			echo "no $out/lib/$f"
			return 1
		}
	done
	touch "$out/lib/.ready"
}

failed=""
fail() {
	say "$1: $2 failed (log: $3)"
	failed="$failed $1"
}

# Copies the binaries named from target/$1/release to dist/$1, stripped.
# Where a target's release build is, and where it ships to.
build_dir=target
dist=dist
if [ -n "$firmware" ]; then
	build_dir=target/firmware-build
	dist=dist/firmware
fi

# Strips each binary into $dist/<target>/; nanoctr comes with its link
# nanoctrd, as it is installed.
# Stripped of symbols and of the section headers too, as OpenWrt's sstrip
# does: the kernel loads a program by its program headers alone, and the
# section table (with its names) is half a kilobyte of the shim.
ship() {
	t=$1 && shift
	for b in "$@"; do
		llvm-strip --strip-all --strip-sections "$build_dir/$t/release/$b" -o "$dist/$t/$b"
		if [ "$b" = nanoctr ]; then ln -sfn nanoctr "$dist/$t/nanoctrd"; fi
	done
}

# What a build-std build of target $1 adds to cargo's command line: for
# the firmware, the panic that aborts at once; for x86_64 and aarch64
# (whose .cargo/config.toml entry assumes rustup's std), how they link
# against the fetched musl, as the other build-std targets do; for armv7,
# Thumb-2 code, as Debian's armhf is built: smaller than ARM code (the
# shim 21.8 -> 15.5 KB, nanoctr 345 -> 316 KB), and any ARMv7-A core
# runs it.
extra() {
	[ -n "$firmware" ] || return 0
	printf '%s\n' --target-dir "$build_dir" -Z panic-immediate-abort -Z unstable-options \
		--config 'profile.release.panic="immediate-abort"'
	case $1 in
	x86_64-* | aarch64-*)
		lib=target/cross-cache/$1/lib
		printf '%s\n' --config "target.$1.rustflags=[\"-C\", \"target-feature=+crt-static\", \"-C\", \"link-self-contained=no\", \"-L\", \"native=$lib\", \"-Z\", \"pre-link-arg=$lib/crt1.o\", \"-Z\", \"pre-link-arg=$lib/crti.o\", \"-C\", \"link-arg=$lib/crtn.o\"]"
		;;
	armv7-*)
		printf '%s\n' --config "target.$1.rustflags=[\"-C\", \"target-feature=+thumb-mode\"]"
		;;
	esac
}

need llvm-strip file
if [ -n "$firmware" ]; then
	rustup toolchain list | grep -q "^$toolchain" ||
		rustup toolchain install "$toolchain" --profile minimal -c rust-src
fi
for t in $targets; do
	rm -rf "${dist:?}/$t" && mkdir -p "$dist/$t" "$cache"
	log=$cache/$t${firmware:+.firmware}.log
	case " $stable_targets " in
	*" $t "*)
		rustup target list --installed | grep -qx "$t" || rustup target add "$t"
		say "$t: cargo build (stable)"
		if cargo build --release --target "$t" >"$log" 2>&1; then
			ship "$t" nanoctr nanoctr-shim
		else
			fail "$t" build "$log"
		fi
		continue
		;;
	esac
	if ! facts "$t"; then
		say "$t: not a target this script knows: $stable_targets $nightly_targets"
		rmdir "$dist/$t"
		failed="$failed $t"
		continue
	fi
	rustup component list --installed --toolchain "$toolchain" | grep -q '^rust-src' ||
		rustup component add rust-src --toolchain "$toolchain"
	if [ ! -f "$cache/$t/lib/.ready" ]; then
		need clang clang++ llvm-ar apt-get dpkg-deb dpkg-source
		say "$t: fetching musl, building libunwind into $cache/$t"
		if ! prepare "$t" >"$cache/$t.prepare.log" 2>&1; then
			fail "$t" "fetching musl or building libunwind" "$cache/$t.prepare.log"
			continue
		fi
	fi
	# The shim first, with core alone: it is there even if std fails.
	say "$t: cargo +$toolchain build -Z build-std"
	# One word per line: the rustflags in it have spaces.
	IFS='
'
	# shellcheck disable=SC2046
	set -- $(extra "$t")
	unset IFS
	if cargo +"$toolchain" build --release --target "$t" -Z build-std=core "$@" \
		-p nanoctr-shim >"$log" 2>&1; then
		ship "$t" nanoctr-shim
	else
		fail "$t" "nanoctr-shim build" "$log"
	fi
	if cargo +"$toolchain" build --release --target "$t" -Z build-std=std,panic_abort "$@" \
		-p nanoctr >>"$log" 2>&1; then
		ship "$t" nanoctr
	else
		fail "$t" "nanoctr build" "$log"
	fi
done

if [ -n "$firmware" ]; then
	# shellcheck disable=SC2086
	sh cross/sizes.sh --firmware $targets || failed="$failed sizes"
else
	# shellcheck disable=SC2086
	sh cross/sizes.sh --dist $targets || failed="$failed sizes"
fi
if [ -n "$failed" ]; then
	say "failed:$failed"
	exit 1
fi
