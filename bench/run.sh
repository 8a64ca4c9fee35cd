#!/usr/bin/env bash
# Benchmarks sqlite-rescue against `cp`, `sha256sum` and `VACUUM INTO` (bundled SQLite) on the
# reference workload of ../shared/make-bench-db.sh, in one run, on the same files.
#
#   bench/run.sh [MILLIONS ...]      default: 1 8  (125 MB and 1 GB databases)
#
# Environment: BENCH_DIR (default /tmp/sqlite-rescue-bench), RUNS (default 3, the median is
# reported). Needs the sqlite3 shell to build the workload (Debian package sqlite3).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1 8)
dir=${BENCH_DIR:-/tmp/sqlite-rescue-bench}
runs=${RUNS:-3}
make_db=../shared/make-bench-db.sh
mkdir -p "$dir"
command -v sqlite3 >/dev/null || { echo "bench: needs the sqlite3 shell (apt-get install sqlite3)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

cargo build --release --quiet --bin sqlite-rescue --example recover_only --example vacuum_into \
    --example zero_interior_pages --example transfer_only --example sha256_only
bin=target/release/sqlite-rescue
ex=target/release/examples

# measure NAME CMD...: runs CMD $runs times (after `prep`), prints "NAME median_seconds peak_rss_kb".
measure() {
    local name=$1; shift
    local times=() rss=0
    for _ in $(seq "$runs"); do
        prep
        sync
        local out
        /usr/bin/time -o "$dir/time.txt" -f "%e %M" "$@" >/dev/null 2>&1 || true
        out=$(tail -1 "$dir/time.txt")
        times+=("${out% *}")
        local r=${out#* }
        [ "$r" -gt "$rss" ] && rss=$r
    done
    local median
    median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "$name $median $rss"
}

for m in "${sizes[@]}"; do
    db="$dir/bench-${m}m.sqlite3"
    [ -f "$db" ] || bash "$make_db" "$db" "$m" >/dev/null
    damaged="$dir/bench-${m}m-damaged.sqlite3"
    if [ ! -f "$damaged" ]; then
        cp "$db" "$damaged"
        "$ex/zero_interior_pages" "$damaged" event_log 4 >/dev/null
    fi
    leaves="$dir/bench-${m}m-lost-leaves.sqlite3"
    if [ ! -f "$leaves" ]; then
        cp "$db" "$leaves"
        "$ex/zero_interior_pages" "$leaves" event_log 4 leaf >/dev/null
    fi
    work="$dir/work"
    bytes=$(stat -c %s "$db")
    echo "== ${m}M rows, $((bytes / 1000000)) MB ($runs runs each, median)"
    results=()
    prep() { rm -rf "$work"; mkdir -p "$work"; }
    results+=("$(measure "cp" cp "$db" "$work/copy")")
    # A snapshot is synced to disk before it is declared taken; cp is not. This is the same
    # copy made durable, for a like-for-like comparison.
    results+=("$(measure "cp_and_sync" sh -c 'cp "$1" "$2" && sync' sh "$db" "$work/copy")")
    results+=("$(measure "sha256sum" sha256sum "$db")")
    results+=("$(measure "VACUUM_INTO" "$ex/vacuum_into" "$db" "$work/vacuum.sqlite3")")
    # Floors: SHA-256 alone (the snapshot cannot be faster), and SQLite's INSERT ... SELECT
    # transfer alone (what copying a whole table costs outside VACUUM).
    results+=("$(measure "sha256_only" "$ex/sha256_only" "$db")")
    results+=("$(measure "snapshot" "$bin" snapshot -q "$db" --into "$work/snap")")
    results+=("$(measure "transfer_only" "$ex/transfer_only" "$db" "$work/xfer.sqlite3")")
    results+=("$(measure "recovery_step" "$ex/recover_only" "$db" "$work/out.sqlite3")")
    # The same file taken table by table, as a damaged database's whole tables are (each
    # copied by SQLite's transfer; the healthy run copies the whole database with VACUUM INTO).
    results+=("$(measure "recovery_step_table_by_table" "$ex/recover_only" "$db" "$work/out.sqlite3" --table-by-table)")
    results+=("$(measure "recovery_step_damaged" "$ex/recover_only" "$damaged" "$work/out.sqlite3")")
    # Rows really lost (four leaves zeroed): the table is copied without them and its index
    # sorted from the rows.
    results+=("$(measure "recovery_step_lost_leaves" "$ex/recover_only" "$leaves" "$work/out.sqlite3")")
    # Every table decoded row by row (no copy of whole tables): the damaged run against this
    # one shows what the orphan scan itself costs.
    results+=("$(measure "recovery_step_decode_all" "$ex/recover_only" "$db" "$work/out.sqlite3" --decode-all)")
    results+=("$(measure "recover_pipeline" "$bin" recover -q "$db" --incident-dir "$work/incident")")
    vac=$(printf '%s\n' "${results[@]}" | awk '$1=="VACUUM_INTO" {print $2}')
    cpt=$(printf '%s\n' "${results[@]}" | awk '$1=="cp" {print $2}')
    printf '| step | seconds | × VACUUM INTO | × cp | peak RSS MB |\n|---|---|---|---|---|\n'
    for r in "${results[@]}"; do
        set -- $r
        awk -v n="$1" -v s="$2" -v v="$vac" -v c="$cpt" -v k="$3" \
            'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.0f |\n", n, s, (v>0?s/v:0), (c>0?s/c:0), k/1024 }'
    done
    rm -rf "$work"
done
