#!/usr/bin/env bash
# `make run`: builds the hub in release mode and starts it. Extra arguments go to `poussr serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "run: cargo is missing; install Rust from https://rustup.rs" >&2; exit 1; }
cargo build --release --bin poussr
exec ./target/release/poussr serve "$@"
