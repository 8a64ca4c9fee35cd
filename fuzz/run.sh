#!/usr/bin/env bash
# Seeds the fuzz corpora from the sample databases and runs each target in turn (never two
# at once) for a bounded time.
#
#   fuzz/run.sh [seconds-per-target] [target...]
#
# Defaults: 60 seconds, all targets. The engine target gets the same time; set
# ENGINE_SECONDS to give it more. Crashes land in fuzz/artifacts/<target>/.
# Needs the nightly toolchain; installs cargo-fuzz if it is missing.
set -euo pipefail

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(decode_page record wal journal header engine page_view report)
fi
engine_secs=${ENGINE_SECONDS:-$secs}

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$here"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi

# Sample databases: the corrupt-samples and SQLite's own corrupt test databases, if present.
dbs=()
for f in "$root"/corrupt-samples/*/db.sqlite3 "$root"/../shared/corrupt-dbs/sqlite-tests/*.db; do
    [ -f "$f" ] && dbs+=("$f")
done
wals=()
for f in "$root"/corrupt-samples/*/db.sqlite3-wal; do
    [ -f "$f" ] && wals+=("$f")
done

# One byte as raw output.
byte() { printf "\\$(printf '%03o' "$(($1 & 255))")"; }
be32() { byte $(($1 >> 24)); byte $(($1 >> 16)); byte $(($1 >> 8)); byte "$1"; }

# Page size from a database header (4096 when the header does not give a valid one).
page_size() {
    local hi lo n
    read -r hi lo < <(od -An -tu1 -j16 -N2 "$1")
    n=$(((${hi:-0} << 8) | ${lo:-0}))
    if [ "$n" -eq 1 ]; then
        n=65536
    elif [ "$n" -lt 512 ] || [ $((n & (n - 1))) -ne 0 ]; then
        n=4096
    fi
    echo "$n"
}

seed() {
    local c=corpus
    mkdir -p "$c"/decode_page "$c"/record "$c"/wal "$c"/journal "$c"/header "$c"/engine \
        "$c"/page_view "$c"/report
    # Small hand-made records and headers, so the corpora are never empty.
    cp -n seeds/* "$c"/record/ 2>/dev/null || true
    local i=0 f ps size pages p name
    for f in "${dbs[@]}"; do
        i=$((i + 1))
        name=$(basename "$(dirname "$f")")-$(basename "$f")-$i
        size=$(stat -c %s "$f")
        [ "$size" -eq 0 ] && continue
        ps=$(page_size "$f")
        pages=$(((size + ps - 1) / ps))
        [ "$pages" -gt 12 ] && pages=12
        for ((p = 0; p < pages; p++)); do
            # Control byte 0: the page is the rest of the input; 0x10: header at offset 100.
            { if [ "$p" -eq 0 ]; then byte 16; else byte 0; fi
              dd if="$f" bs="$ps" skip="$p" count=1 status=none; } >"$c/decode_page/$name-p$p"
            # The tail of a page is where SQLite puts records.
            dd if="$f" bs="$ps" skip="$p" count=1 status=none | tail -c 300 >"$c/record/$name-p$p"
        done
        head -c 4096 "$f" >"$c/header/$name"
        { byte 0; head -c 65536 "$f"; } >"$c/engine/$name"
        cp "$c/engine/$name" "$c/page_view/$name"
    done
    for f in "${wals[@]}"; do
        name=$(basename "$(dirname "$f")")
        head -c 65536 "$f" >"$c/wal/$name"
        local db=${f%-wal}
        { byte 1; be32 32768; head -c 32768 "$db"; head -c 32768 "$f"; } >"$c/engine/$name-wal"
        cp "$c/engine/$name-wal" "$c/page_view/$name-wal"
        # Byte 12 odd: the wal target makes every frame's checksum right.
        { head -c 12 "$f"; byte 1; tail -c +14 "$f" | head -c 65536 || true; } \
            >"$c/wal/$name-rechecksummed"
    done
    # Hot journals: a header alone claiming 2^32-16 pages, and one with a record (page 2,
    # zeros, whose checksum is the nonce) before a size of 3 pages.
    local magic='\331\325\005\371\040\241\143\327'
    { printf "$magic"; be32 0; be32 7; be32 4294967280; be32 512; be32 1024; head -c 484 /dev/zero; } \
        >"$c/journal/huge-size"
    { printf "$magic"; be32 1; be32 7; be32 3; be32 512; be32 1024; head -c 484 /dev/zero
      be32 2; head -c 1024 /dev/zero; be32 7; } >"$c/journal/one-record"
    # Reports: what recover --dry-run --json prints for the samples (when the binary is built).
    local bin="$root/target/debug/sqlite-rescue"
    if [ -x "$bin" ]; then
        for f in "$root"/corrupt-samples/*/db.sqlite3; do
            name=$(basename "$(dirname "$f")")
            "$bin" recover --dry-run --json "$f" >"$c/report/$name.json" 2>/dev/null || true
        done
    fi
}

seed

for t in "${targets[@]}"; do
    t_secs=$secs
    extra=()
    case "$t" in
        decode_page) extra=(-max_len=16385) ;; # larger pages come from the control byte (zero-padded)
        record) extra=(-max_len=4096) ;;
        wal) extra=(-max_len=70000 -rss_limit_mb=1024) ;;
        header) extra=(-max_len=4096) ;;
        journal) extra=(-max_len=70000 -rss_limit_mb=1024) ;;
        report) extra=(-max_len=65536) ;;
        engine | page_view)
            t_secs=$engine_secs
            extra=(-max_len=65541 -timeout=10 -rss_limit_mb=1024)
            ;;
    esac
    echo "=== $t for ${t_secs}s ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    # No sanitizer: the only unsafe code is the page view's FFI (checked under valgrind, see
    # docs/hostile-input.md), and overflow checks (-a) catch arithmetic bugs. One process,
    # at low priority: the machine is shared.
    nice -n 10 cargo +nightly fuzz run -s none -a "$t" "corpus/$t" -- \
        -max_total_time="$t_secs" -print_final_stats=1 "${extra[@]}"
done
