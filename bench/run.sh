#!/usr/bin/env bash
# Benchmarks sqlite-rescue against `cp`, `sha256sum` and `VACUUM INTO` (bundled SQLite), in one
# run, on the same files, on two shapes of database: the reference workload of
# ../shared/make-bench-db.sh (two tables, two indexes) and the index-heavy Django-shaped one of
# ../shared/make-django-db.sh (an index on every ForeignKey, UNIQUE constraints, its last
# commits in the -wal), each healthy and with pages damaged.
#
#   bench/run.sh [MILLIONS ...]      default: 1 8  (about 125 MB and 1 GB of each shape)
#
# Environment: BENCH_DIR (default /tmp/sqlite-rescue-bench), RUNS (default 3, the median is
# reported), SHAPES (default "bench django"), PORTABLE (default 1: build the glibc 2.17
# binary and check it first; 0 skips that). Needs the sqlite3 shell and python3 to build the
# workloads (Debian packages sqlite3, python3) and /usr/bin/time (package time).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1 8)
dir=${BENCH_DIR:-/tmp/sqlite-rescue-bench}
runs=${RUNS:-3}
shapes=${SHAPES:-bench django}
mkdir -p "$dir"
command -v sqlite3 >/dev/null || { echo "bench: needs the sqlite3 shell (apt-get install sqlite3)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

# The portable binary (glibc 2.17) is what servers get: build it and check its symbols
# first (packaging/build-portable.sh fails on any GLIBC symbol newer than 2.17).
if [ "${PORTABLE:-1}" = 1 ]; then
    packaging/build-portable.sh
fi

cargo build --release --quiet --bin sqlite-rescue --example recover_only --example vacuum_into \
    --example zero_interior_pages --example transfer_only --example sha256_only --example verify_only
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

# table: prints the results as a markdown table, with ratios against VACUUM INTO and cp.
table() {
    local vac cpt
    vac=$(printf '%s\n' "${results[@]}" | awk '$1=="VACUUM_INTO" {print $2}')
    cpt=$(printf '%s\n' "${results[@]}" | awk '$1=="cp" {print $2}')
    printf '| step | seconds | × VACUUM INTO | × cp | peak RSS MB |\n|---|---|---|---|---|\n'
    for r in "${results[@]}"; do
        set -- $r
        awk -v n="$1" -v s="$2" -v v="$vac" -v c="$cpt" -v k="$3" \
            'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.0f |\n", n, s, (v>0?s/v:0), (c>0?s/c:0), k/1024 }'
    done
}

# phases DB ARGS...: one `recover` of DB: the seconds of each step (`timings`) and of each of
# the engine's phases (`engine.timings`).
phases() {
    local db=$1; shift
    prep
    "$bin" recover -q --json "$db" --incident-dir "$work/incident" "$@" 2>/dev/null |
        python3 -c 'import json, sys; r = json.load(sys.stdin); t = r["engine"]["timings"]; p = r["timings"]
print("  steps (s): " + ", ".join("%s %.2f" % (k, p[k]) for k in ("snapshot", "recovery", "counts", "total"))
      + "; engine phases (s): " + ", ".join("%s %.2f" % kv for kv in sorted(t.items())) + "; integrity " + "; ".join(r["integrity"][:3]))' || true
}

work="$dir/work"
prep() { rm -rf "$work"; mkdir -p "$work"; }

# proofs DB: the proof of a recovered copy of DB alone, fast and full (`examples/verify_only`),
# on an output kept outside $work for the two measures.
proofs() {
    local out="$dir/proof-out.sqlite3"
    rm -f "$out"
    "$ex/recover_only" "$1" "$out" >/dev/null
    results+=("$(measure "proof_fast" "$ex/verify_only" "$out" fast)")
    results+=("$(measure "proof_full" "$ex/verify_only" "$out" full)")
    rm -f "$out"
}

# django M: the Django-shaped database, healthy and with one interior page of its largest
# table zeroed (the damaged copy has its -wal applied first, by the zeroing tool's SQLite).
django() {
    local m=$1
    local db="$dir/django-${m}m.sqlite3"
    [ -f "$db" ] || bash ../shared/make-django-db.sh "$db" "$m" >/dev/null
    local damaged="$dir/django-${m}m-damaged.sqlite3"
    if [ ! -f "$damaged" ]; then
        cp "$db" "$damaged"
        [ -f "$db-wal" ] && cp "$db-wal" "$damaged-wal"
        "$ex/zero_interior_pages" "$damaged" monitor_check 1 >/dev/null
    fi
    local bytes
    bytes=$(( $(stat -c %s "$db") + $(stat -c %s "$db-wal" 2>/dev/null || echo 0) ))
    echo "== Django shape, ${m}M check rows, $((bytes / 1000000)) MB with its -wal ($runs runs each, median)"
    results=()
    results+=("$(measure "cp" cp "$db" "$work/copy")")
    results+=("$(measure "VACUUM_INTO" "$ex/vacuum_into" "$db" "$work/vacuum.sqlite3")")
    results+=("$(measure "sha256_only" "$ex/sha256_only" "$db")")
    results+=("$(measure "snapshot" "$bin" snapshot -q "$db" --into "$work/snap")")
    results+=("$(measure "recovery_step" "$ex/recover_only" "$db" "$work/out.sqlite3")")
    results+=("$(measure "recovery_step_damaged" "$ex/recover_only" "$damaged" "$work/out.sqlite3")")
    proofs "$db"
    results+=("$(measure "recover_pipeline" "$bin" recover -q "$db" --incident-dir "$work/incident")")
    results+=("$(measure "recover_pipeline_verify_full" "$bin" recover -q "$db" --incident-dir "$work/incident" --verify full)")
    results+=("$(measure "recover_pipeline_damaged" "$bin" recover -q "$damaged" --incident-dir "$work/incident")")
    table
    phases "$db"
    phases "$db" --verify full
    phases "$damaged"
    rm -rf "$work"
}
# bench M: the reference workload, healthy, with four interior pages of event_log zeroed, and
# with four of its leaves zeroed.
bench() {
    local m=$1
    local db="$dir/bench-${m}m.sqlite3"
    [ -f "$db" ] || bash ../shared/make-bench-db.sh "$db" "$m" >/dev/null
    local damaged leaves bytes
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
    bytes=$(stat -c %s "$db")
    echo "== Reference workload, ${m}M rows, $((bytes / 1000000)) MB ($runs runs each, median)"
    results=()
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
    proofs "$db"
    results+=("$(measure "recover_pipeline" "$bin" recover -q "$db" --incident-dir "$work/incident")")
    results+=("$(measure "recover_pipeline_verify_full" "$bin" recover -q "$db" --incident-dir "$work/incident" --verify full)")
    results+=("$(measure "recover_pipeline_damaged" "$bin" recover -q "$damaged" --incident-dir "$work/incident")")
    table
    phases "$db"
    phases "$db" --verify full
    phases "$damaged"
    rm -rf "$work"
}

for m in "${sizes[@]}"; do
    for shape in $shapes; do
        "$shape" "$m"
    done
done
