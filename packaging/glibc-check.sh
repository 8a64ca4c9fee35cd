#!/usr/bin/env bash
# glibc-check.sh BINARY [MAX]: fails when BINARY needs a glibc symbol newer than MAX (default
# 2.17), so that it runs on every Linux server still in service.
set -euo pipefail
bin=$1
max=${2:-2.17}
command -v objdump >/dev/null || { echo "glibc-check: needs objdump (apt-get install binutils)" >&2; exit 1; }
newest=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
if [ -z "$newest" ]; then
    echo "glibc-check: $bin needs no versioned glibc symbol"
    exit 0
fi
if [ "$(printf '%s\n%s\n' "$newest" "$max" | sort -V | tail -1)" != "$max" ]; then
    echo "glibc-check: $bin needs GLIBC_$newest, newer than $max:" >&2
    objdump -T "$bin" | grep -E "GLIBC_$newest\b" >&2 || true
    exit 1
fi
echo "glibc-check: $bin needs at most GLIBC_$newest (<= $max)"
