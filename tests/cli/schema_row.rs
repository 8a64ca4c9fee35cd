//! A destroyed schema row whose index rows survive: the index's definition names the table
//! and some of its columns, its entries say which rows are the table's. The table gets its
//! name back and its rows, instead of lost_and_found.

use crate::common::{cmd, SourceGuard};
use rusqlite::Connection;
use sqlite_rescue::engine::{recover, Options};
use std::path::Path;

/// `person` (its schema row deleted afterwards) with an index on email, beside `other`.
fn build(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024;
         CREATE TABLE person(id INTEGER PRIMARY KEY, email TEXT NOT NULL, age INT, note TEXT);
         CREATE INDEX person_email ON person(email);
         CREATE TABLE other(a TEXT, b TEXT, c TEXT, d TEXT);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM n WHERE x < 500)
         INSERT INTO person SELECT x, printf('p%05d@example.com', x), 20 + x % 50,
                                   printf('note %d', x) FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM n WHERE x < 50)
         INSERT INTO other SELECT 'a', 'b', 'c', x FROM n;
         PRAGMA writable_schema = ON;
         DELETE FROM sqlite_schema WHERE name = 'person';",
    )
    .unwrap();
}

#[test]
fn a_table_whose_schema_row_is_gone_is_named_by_its_index_and_gets_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    build(&src);
    let out = dir.path().join("out.db");
    let guard = SourceGuard::new(&src);
    let report = recover(&src, &out, &Options::default()).unwrap();
    guard.assert_unchanged();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    assert_eq!(report.lost_and_found_rows, 0, "{:?}", report.orphans);
    let [rebuilt] = report.schema_rebuilt.as_slice() else {
        panic!("{:?}", report.schema_rebuilt)
    };
    assert_eq!(rebuilt.name, "person");
    assert!(
        rebuilt.evidence.contains("person_email"),
        "{}",
        rebuilt.evidence
    );
    let conn = Connection::open(&out).unwrap();
    let (rows, right): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(email = printf('p%05d@example.com', id)) FROM person",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (rows, right),
        (500, 500),
        "every row, each with its own email and id"
    );
    let indexed: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'person_email'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 1, "the index is created again on the table");
    let other: i64 = conn
        .query_row("SELECT count(*) FROM other", [], |r| r.get(0))
        .unwrap();
    assert_eq!(other, 50);
}

/// The committed sample: event_log's schema row overwritten; its index event_log_kind names
/// it. Every row comes back in it, with its rowid, kind and created as the truth has them.
#[test]
fn the_schema_row_sample_names_the_table_and_puts_its_rows_in_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample =
        corrupt_samples::load_sample(&root.join("corrupt-samples/schema-row-destroyed")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = sample.copy_to(dir.path()).unwrap();
    let out = dir.path().join("out.db");
    let guard = SourceGuard::new(&db);
    let run = cmd()
        .args(["recover", "-q", "--json", "--out"])
        .arg(&out)
        .arg(&db)
        .current_dir(dir.path())
        .output()
        .unwrap();
    guard.assert_unchanged();
    assert_eq!(
        run.status.code(),
        Some(1),
        "a lost schema row is not a complete recovery"
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["engine"]["schema_rebuilt"][0]["name"], "event_log");
    assert_eq!(report["engine"]["lost_and_found_rows"], 0);
    let rows = |c: &Connection| -> Vec<(i64, String, f64)> {
        c.prepare("SELECT id, kind, created FROM event_log ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let truth = Connection::open(sample.truth.as_ref().unwrap()).unwrap();
    let back = rows(&Connection::open(&out).unwrap());
    assert_eq!(back.len(), 1180);
    assert!(back == rows(&truth), "rowids, kinds and times as written");
}

/// A plain table whose schema row names root page 0 is damage, not a virtual table (SQLite
/// says the file is malformed): `check` says so, and `recover` gives the table back with
/// every row, from the pages its lost tree still holds.
#[test]
fn a_plain_table_whose_root_page_is_zero_is_damage_and_its_rows_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "PRAGMA page_size = 1024;
             CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);
             CREATE TABLE t2(x INTEGER PRIMARY KEY, y TEXT NOT NULL, z REAL);
             WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 300)
             INSERT INTO t SELECT v, 'b' || v FROM n;
             WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 400)
             INSERT INTO t2 SELECT v, printf('y%05d', v), v * 0.5 FROM n;
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET rootpage = 0 WHERE name = 't2';",
        )
        .unwrap();
    let guard = SourceGuard::new(&db);
    let check = cmd().args(["check", "--json"]).arg(&db).output().unwrap();
    guard.assert_unchanged();
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(check.status.code(), Some(1), "{report}");
    assert_eq!(report["status"], "damaged");
    let excused = report["integrity"]["unchecked_virtual_tables"].as_array();
    assert!(excused.is_none_or(Vec::is_empty), "{report}");
    let out = dir.path().join("out.db");
    let run = cmd()
        .args(["recover", "-q", "--json", "--out"])
        .arg(&out)
        .arg(&db)
        .current_dir(dir.path())
        .output()
        .unwrap();
    guard.assert_unchanged();
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["engine"]["lost_and_found_rows"], 0, "{report}");
    let conn = Connection::open(&out).unwrap();
    let (rows, right): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(y = printf('y%05d', x) AND z = x * 0.5) FROM t2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (rows, right),
        (400, 400),
        "every row of t2, with its values"
    );
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}
