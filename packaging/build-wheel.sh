#!/usr/bin/env bash
# build-wheel.sh [OUT_DIR]: builds the manylinux2014 wheel of the sqlite-rescue binary with
# maturin and zig (both from PyPI), installs it into a fresh virtualenv, checks that the
# installed command needs no glibc newer than 2.17, and runs `sqlite-rescue check` on a
# bundled sample from there. The wheel is left in OUT_DIR (default target/wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/wheels}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/build"
"$work/build/bin/pip" install --quiet "maturin>=1.5,<2" ziglang
# maturin finds zig as `python3 -m ziglang`: the build venv comes first on PATH. A target
# folder of its own: zig-compiled objects must not mix with the host build's.
PATH="$work/build/bin:$PATH" CARGO_TARGET_DIR=${WHEEL_TARGET_DIR:-target/wheel-build} \
    "$work/build/bin/maturin" build --release --zig --compatibility manylinux2014 --out "$out"
wheel=$(ls -t "$out"/sqlite_rescue-*.whl | head -1)
echo "built $wheel"

python3 -m venv "$work/run"
"$work/run/bin/pip" install --quiet "$wheel"
installed="$work/run/bin/sqlite-rescue"
packaging/glibc-check.sh "$installed" 2.17
"$installed" --version
sample=corrupt-samples/leaf-zeroed/db.sqlite3
set +e
"$installed" check "$sample" --quiet >"$work/check.txt"
code=$?
set -e
# The sample is damaged: check says so with exit 1 and names what to run next.
if [ "$code" -ne 1 ] || ! grep -q '^Next: .*sqlite-rescue recover' "$work/check.txt"; then
    echo "build-wheel: the installed sqlite-rescue did not check the sample as expected (exit $code)" >&2
    cat "$work/check.txt" >&2
    exit 1
fi
echo "build-wheel: installed from $wheel, checked $sample (exit 1, damage named)"
