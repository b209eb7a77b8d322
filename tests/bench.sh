#!/bin/sh
# Runs the benchmark: nanoctr against plain runc on the same bundle, in
# one run, printing a table and `name: value` lines. Needs root.
# Usage: tests/bench.sh [--runs N] [--cycles N]
set -eu
cd "$(dirname "$0")/.."
sh tests/setup.sh
cargo build --release --target x86_64-unknown-linux-musl
export NANOCTR_BIN_DIR="$PWD/target/x86_64-unknown-linux-musl/release"
# The firmware build too, for its memory figures.
sh cross/build.sh --firmware x86_64-unknown-linux-musl
export NANOCTR_FIRMWARE_DIR="$PWD/dist/firmware/x86_64-unknown-linux-musl"
exec cargo run --quiet --release -p nanoctr-tests --bin nanoctr-bench -- "$@"
