#!/bin/sh
# Coverage-guided fuzzing of the parsers of untrusted input: the targets in
# tests/fuzz/ (cargo-fuzz, libFuzzer, nightly Rust; see tests/fuzz/README.md).
#
# Installs what is missing (a C++ compiler for libFuzzer, the nightly
# toolchain, cargo-fuzz), builds every target once, replays the saved crash
# inputs in tests/fuzz/regressions/TARGET/, then fuzzes each target for
# SECONDS (default 60), one after another, starting from the seed corpus in
# tests/fuzz/corpus/TARGET/. New corpus entries, crash inputs and logs go to
# a scratch dir (printed; FUZZ_SCRATCH chooses it): the committed corpus is
# only read. Prints one line per target and exits 1 if any target crashed
# or a saved input crashes again.
#
# Usage: sh tests/fuzz.sh [SECONDS]
set -eu
cd "$(dirname "$0")/.."

seconds=${1:-60}
case $seconds in
'' | *[!0-9]* | 0)
	echo "usage: sh tests/fuzz.sh [SECONDS]   (seconds per target, default 60)" >&2
	exit 2
	;;
esac

say() { echo "fuzz: $*"; }
now() { date +%s; }
start=$(now)
fuzz_dir=tests/fuzz
toolchain=${FUZZ_TOOLCHAIN:-nightly}
PATH=${CARGO_HOME:-$HOME/.cargo}/bin:$PATH
export PATH

# libFuzzer itself is C++, built by libfuzzer-sys.
if ! command -v c++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
	if [ "$(id -u)" != 0 ]; then
		say "no C++ compiler, which libFuzzer needs: install g++ (or run as root)" >&2
		exit 1
	fi
	say "installing g++"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-remove g++ >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-remove g++ >/dev/null; }
fi
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
	say "installing the $toolchain toolchain"
	if ! rustup toolchain install "$toolchain" --profile minimal; then
		# Where no toolchain can be fetched, stable builds the targets
		# too once told to accept nightly's flags (-Z sanitizer): its
		# sanitizer runtimes ship with its standard library.
		say "no $toolchain toolchain: using stable with RUSTC_BOOTSTRAP=1"
		toolchain=stable
		RUSTC_BOOTSTRAP=1
		export RUSTC_BOOTSTRAP
	fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
	say "installing cargo-fuzz"
	cargo install cargo-fuzz --locked --version '^0.13'
fi
say "$(rustup run "$toolchain" rustc --version), $(cargo fuzz --version), ready in $(($(now) - start))s"

cargo_fuzz() { cargo "+$toolchain" fuzz "$@" --fuzz-dir "$fuzz_dir"; }

# Release build with debug assertions and AddressSanitizer, cargo-fuzz's
# defaults; the binaries are run directly from here on.
built=$(now)
cargo_fuzz build
host=$(rustup run "$toolchain" rustc -vV | sed -n 's/^host: //p')
bin=$fuzz_dir/target/$host/release
targets=$(cargo_fuzz list)
say "built $(echo "$targets" | wc -w) targets in $(($(now) - built))s"

scratch=${FUZZ_SCRATCH:-$(mktemp -d "${TMPDIR:-/tmp}/nanoctr-fuzz.XXXXXX")}
say "scratch dir $scratch (new corpus entries, crashes, logs)"
mkdir -p "$scratch/logs"

# Per input: 10 s and 2 GiB at most, else it counts as a crash.
limits="-timeout=10 -rss_limit_mb=2048"

# Longest input libFuzzer makes: request lines past MAX_LINE (4096) for the
# too-long path, a whole config.json with its header lines for json.
max_len() {
	case $1 in
	proto_line) echo 12288 ;;
	json) echo 8192 ;;
	*) echo 4096 ;;
	esac
}

# Replays every saved input of target $1; prints those that crash.
replay() {
	for f in "$fuzz_dir/regressions/$1"/*; do
		[ -f "$f" ] || continue
		# shellcheck disable=SC2086 # $limits: one word per option
		if ! "$bin/$1" $limits "$f" >"$scratch/logs/$1.replay.log" 2>&1; then
			echo "$f"
			cp "$scratch/logs/$1.replay.log" "$scratch/logs/$1.replay.$(basename "$f").log"
		fi
	done
}

# The last "name: value" of libFuzzer's status lines in log $1.
status() {
	grep -o "$2: [0-9]*" "$1" | tail -n 1 | sed 's/.*: //'
}

summary=""
failed=0
passed=0
details=""
for t in $targets; do
	log=$scratch/logs/$t.log
	result=ok
	again=$(replay "$t")
	if [ -n "$again" ]; then
		result="REGRESSION $(echo "$again" | tr '\n' ' ')"
		details="$details
$t: saved inputs crash again (logs: $scratch/logs/$t.replay.*.log):
$(for f in $again; do
			echo "  $f"
			grep -m 1 -A 1 -e 'panicked at' -e 'ERROR: ' "$scratch/logs/$t.replay.$(basename "$f").log" | sed 's/^/    /'
		done)"
	fi

	mkdir -p "$scratch/corpus/$t" "$scratch/crashes/$t"
	# The first corpus dir is the one libFuzzer writes to.
	# shellcheck disable=SC2086 # $limits: one word per option
	if "$bin/$t" "$scratch/corpus/$t" "$fuzz_dir/corpus/$t" \
		-max_total_time="$seconds" -max_len="$(max_len "$t")" $limits \
		-artifact_prefix="$scratch/crashes/$t/" -print_final_stats=1 >"$log" 2>&1; then
		:
	else
		artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
		case $result in
		ok) result="CRASH ${artifact:-(no artifact, see $log)}" ;;
		*) result="$result CRASH ${artifact:-(no artifact, see $log)}" ;;
		esac
		details="$details
$t: crashed, input $artifact (log: $log):
$(grep -m 1 -A 1 -e 'panicked at' -e 'ERROR: ' "$log" | sed 's/^/    /')
  minimize: cargo +$toolchain fuzz tmin --fuzz-dir $fuzz_dir $t $artifact
  then save the result as $fuzz_dir/regressions/$t/NAME"
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	line=$(printf '%-13s runs=%-9s cov=%-5s corpus=%s (%s new)  %s' "$t" "${runs:-?}" \
		"$(status "$log" cov)" "$(status "$log" corp)" \
		"$(find "$scratch/corpus/$t" -type f | wc -l)" "$result")
	say "$line"
	summary="$summary
$line"
	case $result in
	ok) passed=$((passed + 1)) ;;
	*) failed=$((failed + 1)) ;;
	esac
done

echo
echo "fuzz summary, ${seconds}s per target, scratch dir $scratch:$summary"
if [ -n "$details" ]; then
	echo "$details"
fi
echo
say "$(($(now) - start))s in all"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
