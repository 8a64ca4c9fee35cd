//! A partly damaged index still testifies: its table lost a leaf, and the index lost a leaf of
//! its own elsewhere; the entries on its good pages still name the lost rows' values.

use rusqlite::Connection;
use sqlite_rescue::engine::{recover, Options};
use std::path::Path;

const PAGE: usize = 1024;

fn build(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024;
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, body TEXT);
         CREATE INDEX t_name ON t(name);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000)
         INSERT INTO t SELECT x, printf('name-%06d', x), printf('%040d', x) FROM c;",
    )
    .unwrap();
}

/// Leaf pages of `name`, in key order.
fn leaves(path: &Path, name: &str) -> Vec<usize> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf' ORDER BY path")
        .unwrap();
    stmt.query_map([name], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|p| usize::try_from(p.unwrap()).unwrap())
        .collect()
}

#[test]
fn a_partly_damaged_index_names_the_values_of_lost_rows_it_still_lists() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    build(&src);
    let table_leaves = leaves(&src, "t");
    let index_leaves = leaves(&src, "t_name");
    assert!(table_leaves.len() > 4 && index_leaves.len() > 4);
    let mut bytes = std::fs::read(&src).unwrap();
    for p in [table_leaves[1], *index_leaves.last().unwrap()] {
        bytes[(p - 1) * PAGE..p * PAGE].fill(0);
    }
    std::fs::write(&src, bytes).unwrap();
    let out = dir.path().join("out.db");
    let report = recover(&src, &out, &Options::default()).unwrap();
    let t = report.tables.iter().find(|t| t.name == "t").unwrap();
    assert!(!t.lost.is_empty(), "{t:?}");
    let values = t
        .lost_values
        .as_ref()
        .expect("the damaged index still names values");
    assert!(!values.rows.is_empty());
    // Every value the damaged index names is the lost row's own.
    for row in &values.rows {
        let name = row.values[0].as_str().unwrap();
        assert_eq!(name, format!("name-{:06}", row.rowid), "{row:?}");
    }
    let back: i64 = Connection::open(&out)
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        back as usize + values.rows.len(),
        2000,
        "each lost row named once"
    );
}
