//! The fast proof of a recovered database (`--verify fast`, the default) against SQLite's
//! `integrity_check` (`--verify full`): each damage is made in a database built here, shaped
//! like the engine's output, and both must find it; healthy databases with every kind of
//! index must pass both.

use crate::common::cmd;
use rusqlite::Connection;
use sqlite_rescue::engine::{verify, VerifyMode};
use std::path::{Path, PathBuf};

const ROWS: i64 = 100;

/// A database of `sql` run after a table `n(value)` of 1..=ROWS, in 4096-byte pages.
fn build(dir: &Path, name: &str, sql: &str) -> PathBuf {
    let path = dir.join(name);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = 4096;
         CREATE TEMP TABLE n(value INTEGER PRIMARY KEY);
         WITH RECURSIVE c(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM c WHERE v < {ROWS})
         INSERT INTO n SELECT v FROM c;
         {sql}"
    ))
    .unwrap();
    path
}

fn both(path: &Path) -> (Vec<String>, Vec<String>) {
    (
        verify(path, VerifyMode::Fast).unwrap(),
        verify(path, VerifyMode::Full).unwrap(),
    )
}

fn quick_check(path: &Path) -> String {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap()
}

/// Table `a` with index `ax`, and table `b` with index `bx` holding `b_rows` (SQL selecting
/// rowid and x from n); then the two indexes' trees are exchanged, so `ax` holds the entries
/// `b`'s rows imply: two well-formed trees, each in the wrong place.
fn exchanged_indexes(dir: &Path, b_rows: &str) -> PathBuf {
    let path = build(
        dir,
        "exchanged.sqlite3",
        &format!(
            "CREATE TABLE a(x TEXT, y REAL); CREATE INDEX ax ON a(x);
             CREATE TABLE b(x TEXT, y REAL); CREATE INDEX bx ON b(x);
             INSERT INTO a(rowid, x, y) SELECT value, printf('value-%03d', value), value FROM n;
             INSERT INTO b(rowid, x, y) {b_rows};"
        ),
    );
    exchange_roots(&path, "ax", "bx");
    path
}

/// Gives index `a` the tree of index `b` and `b` that of `a`, in the schema.
fn exchange_roots(path: &Path, a: &str, b: &str) {
    let conn = Connection::open(path).unwrap();
    let root = |name: &str| -> i64 {
        conn.query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap()
    };
    let (root_a, root_b) = (root(a), root(b));
    conn.execute_batch(&format!(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET rootpage = {root_b} WHERE name = '{a}';
         UPDATE sqlite_schema SET rootpage = {root_a} WHERE name = '{b}';
         PRAGMA writable_schema = OFF;"
    ))
    .unwrap();
}

fn assert_found(path: &Path, what: &str, names: &str) {
    let (fast, full) = both(path);
    assert_ne!(full, vec!["ok"], "{what}: integrity_check finds it");
    assert_ne!(fast, vec!["ok"], "{what}: the fast proof finds it too");
    assert!(
        fast.iter().any(|m| m.contains(names)),
        "{what}: the message names {names}: {fast:?}"
    );
}

#[test]
fn an_index_entry_missing_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let rows = "SELECT value, printf('value-%03d', value), value FROM n WHERE value != 17";
    assert_found(&exchanged_indexes(dir.path(), rows), "missing", "ax");
}

#[test]
fn an_extra_index_entry_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let rows = "SELECT value, printf('value-%03d', value), value FROM n
                UNION ALL SELECT 1000, 'value-1000', 0";
    assert_found(&exchanged_indexes(dir.path(), rows), "extra", "ax");
}

/// Same count, same shape: `quick_check` passes, only the entries' values tell.
#[test]
fn a_wrong_key_value_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let rows = "SELECT value, printf('value-%03d', value + (value = 17)), value FROM n";
    let path = exchanged_indexes(dir.path(), rows);
    assert_eq!(quick_check(&path), "ok", "the structure alone is sound");
    assert_found(&path, "wrong value", "ax");
}

#[test]
fn a_wrong_rowid_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let rows = "SELECT value + 1000 * (value = 17), printf('value-%03d', value), value FROM n";
    let path = exchanged_indexes(dir.path(), rows);
    assert_eq!(quick_check(&path), "ok", "the structure alone is sound");
    assert_found(&path, "wrong rowid", "ax");
}

/// Two entries of one index page exchanged: the same entries, no longer in key order.
#[test]
fn index_keys_out_of_order_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(
        dir.path(),
        "order.sqlite3",
        "CREATE TABLE a(x TEXT); CREATE INDEX ax ON a(x);
         INSERT INTO a SELECT printf('value-%03d', value) FROM n;",
    );
    let root: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'ax'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let root = usize::try_from(root).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let page = &mut bytes[(root - 1) * 4096..root * 4096];
    let find = |page: &[u8], s: &[u8]| page.windows(s.len()).position(|w| w == s).unwrap();
    let (i, j) = (find(page, b"value-017"), find(page, b"value-018"));
    page[i..i + 9].copy_from_slice(b"value-018");
    page[j..j + 9].copy_from_slice(b"value-017");
    std::fs::write(&path, &bytes).unwrap();
    assert_found(&path, "out of order", "out of order");
}

/// A UNIQUE index whose key repeats (its table holds the same value twice).
#[test]
fn a_repeated_unique_key_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(
        dir.path(),
        "unique.sqlite3",
        "CREATE TABLE u(x TEXT COLLATE NOCASE); CREATE INDEX ux ON u(x);
         INSERT INTO u SELECT 'v' || value FROM n; INSERT INTO u VALUES ('V17');
         PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = 'CREATE UNIQUE INDEX ux ON u(x)' WHERE name = 'ux';
         PRAGMA writable_schema = OFF;",
    );
    assert_found(&path, "unique", "non-unique entry in index ux");
}

/// Table `b`'s root made one of `a`'s leaves: that page now belongs to two trees.
#[test]
fn a_page_shared_by_two_trees_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(
        dir.path(),
        "shared.sqlite3",
        "CREATE TABLE a(x TEXT); CREATE INDEX ax ON a(x);
         INSERT INTO a SELECT printf('%0500d', value) FROM n;
         CREATE TABLE b(y); INSERT INTO b VALUES (1);",
    );
    let conn = Connection::open(&path).unwrap();
    let (a_root, a_pages): (i64, i64) = conn
        .query_row(
            "SELECT min(pageno), count(*) FROM dbstat WHERE name = 'a' AND pagetype = 'leaf'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(a_pages > 1, "a spans several leaves");
    conn.execute_batch(&format!(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET rootpage = {a_root} WHERE name = 'b';
         PRAGMA writable_schema = OFF;"
    ))
    .unwrap();
    drop(conn);
    assert_found(&path, "shared page", &format!("{a_root}"));
}

/// Every kind of index, healthy: both proofs say "ok", and the fast one streams what it can.
#[test]
fn healthy_databases_with_every_kind_of_index_are_ok() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(
        dir.path(),
        "kinds.sqlite3",
        "CREATE TABLE plain(a INTEGER, b TEXT, c BLOB, d REAL, e);
         CREATE INDEX plain_a ON plain(a);
         CREATE INDEX plain_bd ON plain(b DESC, d);
         CREATE INDEX plain_c ON plain(c);
         CREATE INDEX plain_e ON plain(e COLLATE NOCASE);
         CREATE INDEX plain_e_rtrim ON plain(e COLLATE RTRIM DESC);
         CREATE UNIQUE INDEX plain_unique ON plain(d, a);
         INSERT INTO plain SELECT value % 7, 'Text ' || (value % 13), randomblob(value % 5),
           value / 4, CASE value % 5 WHEN 0 THEN NULL WHEN 1 THEN value * 1.5
             WHEN 2 THEN 'MiXeD ' || value WHEN 3 THEN x'00ff' ELSE 'mixed ' || value END
           FROM n;
         CREATE TABLE ids(id INTEGER PRIMARY KEY, name TEXT UNIQUE, score REAL NOT NULL);
         CREATE INDEX ids_id ON ids(id DESC); CREATE INDEX ids_score ON ids(score);
         INSERT INTO ids SELECT value * 3, 'name ' || value, value FROM n;
         CREATE TABLE wr(k1 TEXT COLLATE NOCASE, k2 INTEGER, v, PRIMARY KEY(k1, k2 DESC))
           WITHOUT ROWID;
         CREATE INDEX wr_v ON wr(v); CREATE UNIQUE INDEX wr_k2 ON wr(k2, v);
         INSERT INTO wr SELECT 'K' || (value % 10), value, value % 3 FROM n;
         CREATE TABLE exprs(a, b); CREATE INDEX exprs_lower ON exprs(lower(b));
         CREATE INDEX exprs_part ON exprs(a) WHERE a > 50;
         INSERT INTO exprs SELECT value, 'B' || value FROM n;
         CREATE TABLE shadowed(rowid, oid, c); CREATE INDEX shadowed_c ON shadowed(c);
         INSERT INTO shadowed SELECT value, value, value FROM n;
         CREATE TABLE added(a); INSERT INTO added SELECT value FROM n;
         ALTER TABLE added ADD COLUMN b TEXT DEFAULT 'later';
         CREATE INDEX added_b ON added(b, a);
         CREATE TABLE nulls(x UNIQUE, y); INSERT INTO nulls SELECT NULL, value FROM n;
         CREATE TABLE empty(x); CREATE INDEX empty_x ON empty(x);
         CREATE TABLE no_index(x); INSERT INTO no_index SELECT value FROM n;",
    );
    let (fast, full) = both(&path);
    assert_eq!(full, vec!["ok"]);
    assert_eq!(fast, vec!["ok"]);
}

/// The wrong value found in a table with a DESC, NOCASE, WITHOUT ROWID index: the digest
/// keeps every value's exact bytes, so 'Value' and 'value' differ although NOCASE is equal.
#[test]
fn a_value_differing_only_in_case_is_found_under_nocase() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(
        dir.path(),
        "nocase.sqlite3",
        "CREATE TABLE a(x TEXT COLLATE NOCASE, PRIMARY KEY(x DESC)) WITHOUT ROWID;
         CREATE TABLE b(x TEXT COLLATE NOCASE, PRIMARY KEY(x DESC)) WITHOUT ROWID;
         CREATE INDEX ax ON a(x); CREATE INDEX bx ON b(x);
         INSERT INTO a SELECT 'value ' || value FROM n;
         INSERT INTO b SELECT CASE value WHEN 17 THEN 'Value 17' ELSE 'value ' || value END
           FROM n;",
    );
    exchange_roots(&path, "ax", "bx");
    let (fast, _) = both(&path);
    assert!(fast.iter().any(|m| m.contains("index ax")), "{fast:?}");
}

#[test]
fn recover_takes_either_proof_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let db = build(
        dir.path(),
        "app.sqlite3",
        "CREATE TABLE a(x TEXT UNIQUE, y); CREATE INDEX ay ON a(y);
         INSERT INTO a SELECT 'x' || value, value % 9 FROM n;",
    );
    for mode in ["fast", "full"] {
        let out = cmd()
            .args([
                "recover",
                "--dry-run",
                "--json",
                "--quiet",
                "--verify",
                mode,
            ])
            .arg(&db)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["integrity"], serde_json::json!(["ok"]), "{mode}");
        assert!(report["engine"]["timings"]["verify"].is_number(), "{mode}");
    }
    let out = cmd()
        .args(["recover", "--dry-run", "--verify", "sometimes"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Single bits flipped at random places (a fixed seed) in a database with every kind of key:
/// wherever `integrity_check` finds something wrong (or cannot read the file), the fast proof
/// finds something too, and it always answers.
#[test]
fn flipped_bits_integrity_check_finds_the_fast_proof_finds() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(
        dir.path(),
        "flips.sqlite3",
        "PRAGMA page_size = 1024; VACUUM;
         CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b REAL, c INTEGER, d TEXT COLLATE NOCASE);
         CREATE INDEX ta ON t(a); CREATE INDEX tbc ON t(b DESC, c); CREATE UNIQUE INDEX td ON t(d);
         CREATE TABLE w(k TEXT, n INTEGER, v BLOB, PRIMARY KEY(k, n)) WITHOUT ROWID;
         CREATE INDEX wv ON w(v, n);
         INSERT INTO t SELECT value, 'name-' || (value * 7919 % 100), value / 3, value % 11,
           'Key' || value FROM n;
         INSERT INTO t SELECT value + 100, 'more-' || value, value, value, 'k2-' || value FROM n;
         INSERT INTO w SELECT 'k' || (value % 9), value, zeroblob(value % 5) || 'x' FROM n;",
    );
    let healthy = std::fs::read(&path).unwrap();
    assert_eq!(
        both(&path),
        (vec!["ok".to_string()], vec!["ok".to_string()])
    );
    let random = crate::common::pseudo_random(3 * 60, 21);
    let mut found = 0;
    for r in random.chunks(3) {
        let mut bytes = healthy.clone();
        let pages = bytes.len() / 1024;
        // Never page 1: its header and schema are not what this compares.
        let page = 1 + usize::from(r[0]) % (pages - 1);
        let at = page * 1024 + usize::from(r[1]) * 4 % 1024;
        bytes[at] ^= 1 << (r[2] % 8);
        std::fs::write(&path, &bytes).unwrap();
        let fast = verify(&path, VerifyMode::Fast).expect("the fast proof always answers");
        let full_found = verify(&path, VerifyMode::Full).map_or(true, |m| m != vec!["ok"]);
        if full_found {
            found += 1;
            assert_ne!(
                fast,
                vec!["ok"],
                "page {page}, byte {at}: integrity_check finds it"
            );
        }
    }
    assert!(found > 10, "most flips are found: {found} of 60");
}
