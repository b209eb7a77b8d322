#!/bin/sh
# Runs the benchmark: nanoctr against plain runc on the same bundle, in
# one run, printing a table and `name: value` lines; then `nanoctr
# import` against umoci (tests/bench_import.py). Needs root.
# Usage: tests/bench.sh [--runs N] [--cycles N]
set -eu
cd "$(dirname "$0")/.."
sh tests/setup.sh
cargo build --release --target x86_64-unknown-linux-musl
export NANOCTR_BIN_DIR="$PWD/target/x86_64-unknown-linux-musl/release"
# The firmware build too, for its memory figures.
sh cross/build.sh --firmware x86_64-unknown-linux-musl
export NANOCTR_FIRMWARE_DIR="$PWD/dist/firmware/x86_64-unknown-linux-musl"
cargo run --quiet --release -p nanoctr-tests --bin nanoctr-bench -- "$@"
# Image import against umoci (and skopeo + umoci for the archives), on
# the busybox rootfs the benchmark above made and a 64 MB layer.
python3 tests/bench_import.py "$NANOCTR_BIN_DIR/nanoctr" target/test-rootfs2
