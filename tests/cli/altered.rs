//! Altered values: a row whose bytes changed after it was written still decodes, but its
//! indexed values no longer match what the index holds for its rowid. The row is named with
//! both values, and the recovery is not called complete.

use crate::common::{cmd, SourceGuard};
use rusqlite::Connection;
use std::path::Path;

/// `t(id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INT)`, 300 rows, plus an untouched table.
fn build(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024;
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INT);
         CREATE INDEX t_n ON t(n);
         CREATE TABLE other(x);
         INSERT INTO other VALUES (1), (2);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300)
         INSERT INTO t SELECT x, printf('name-%06d', x), x * 10 FROM c;",
    )
    .unwrap();
}

/// Changes `from` to `to` (same length) on the table's own leaf page only: the index keeps
/// the value as it was written.
fn alter_in_table(path: &Path, from: &str, to: &str) {
    let conn = Connection::open(path).unwrap();
    let pages: Vec<i64> = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = 't' AND pagetype = 'leaf'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(conn);
    let mut bytes = std::fs::read(path).unwrap();
    let mut changed = 0;
    for p in pages {
        let range = (p as usize - 1) * 1024..p as usize * 1024;
        let page = &mut bytes[range];
        if let Some(at) = page.windows(from.len()).position(|w| w == from.as_bytes()) {
            page[at..at + to.len()].copy_from_slice(to.as_bytes());
            changed += 1;
        }
    }
    assert_eq!(changed, 1, "the value is on one leaf of t");
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_row_that_disagrees_with_its_index_is_named_and_the_recovery_is_not_complete() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    build(&db);
    alter_in_table(&db, "name-000123", "name-000999");
    let guard = SourceGuard::new(&db);
    let out = cmd()
        .args(["recover", "--dry-run", "-q", "--json"])
        .arg(&db)
        .output()
        .unwrap();
    guard.assert_unchanged();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "rows lost");
    let t = report["engine"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "t")
        .unwrap();
    assert_eq!(t["altered_rows"], 1, "{t}");
    let row = &t["altered"][0];
    assert_eq!(row["rowid"], 123);
    let col = &row["columns"][0];
    assert_eq!(col["column"], "name");
    assert_eq!(col["row_value"], "name-000999");
    assert_eq!(col["index_value"], "name-000123");
    let other = report["engine"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "other")
        .unwrap();
    assert_eq!(other["altered_rows"], 0);
}

#[test]
fn a_healthy_table_has_no_altered_rows_even_decoded_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    build(&db);
    let out = dir.path().join("out.db");
    let options = sqlite_rescue::engine::Options {
        decode_all: true,
        ..Default::default()
    };
    let report = sqlite_rescue::engine::recover(&db, &out, &options).unwrap();
    assert!(report.tables.iter().all(|t| !t.copied_intact));
    assert!(
        report.tables.iter().all(|t| t.altered_rows == 0),
        "{:?}",
        report.tables
    );
}
