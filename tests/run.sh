#!/bin/sh
# Runs the whole test suite: unit tests of every crate, then the
# integration tests, which start real containers with runc and crun on the
# statically linked release binaries. Needs root (runc does).
set -eu
cd "$(dirname "$0")/.."
sh tests/setup.sh
cargo build --release --target x86_64-unknown-linux-musl
NANOCTR_BIN_DIR="$PWD/target/x86_64-unknown-linux-musl/release" exec cargo test --workspace "$@"
