#!/usr/bin/env bash
# build-portable.sh: a sqlite-rescue binary for any x86_64 Linux with glibc 2.17 or newer,
# built with cargo-zigbuild (installed from crates.io, with zig from PyPI, when missing).
# The binary is target/x86_64-unknown-linux-gnu/release/sqlite-rescue.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-zigbuild >/dev/null; then
    cargo install --locked cargo-zigbuild
fi
if ! command -v zig >/dev/null && ! python3 -c 'import ziglang' 2>/dev/null; then
    python3 -m pip install --quiet ziglang
fi
cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.17 --bin sqlite-rescue
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/sqlite-rescue
packaging/glibc-check.sh "$bin" 2.17
"$bin" --version
