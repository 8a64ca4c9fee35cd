//! A partly damaged index still testifies: its table lost a leaf, and the index lost a leaf of
//! its own elsewhere; the entries on its good pages still name the lost rows' values.

use crate::common::{cmd, SourceGuard};
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

fn committed(name: &str) -> corrupt_samples::Sample {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    corrupt_samples::load_sample(&root.join("corrupt-samples").join(name)).unwrap()
}

/// The committed sample: event_log lost a leaf and its index event_log_kind lost its first
/// leaf. The index's other leaves still give (kind, created) of lost rows, each the row's own.
#[test]
fn the_sample_index_with_a_zeroed_leaf_yields_the_lost_values_it_covers() {
    let sample = committed("index-and-table-leaf-zeroed");
    let dir = tempfile::tempdir().unwrap();
    let db = sample.copy_to(dir.path()).unwrap();
    let out = dir.path().join("out.db");
    let report = recover(&db, &out, &Options::default()).unwrap();
    let t = report
        .tables
        .iter()
        .find(|t| t.name == "event_log")
        .unwrap();
    let values = t
        .lost_values
        .as_ref()
        .expect("the damaged index names values");
    let truth = Connection::open(sample.truth.as_ref().unwrap()).unwrap();
    let destroyed = &sample.expected.tables["event_log"].destroyed_keys;
    assert!(!values.rows.is_empty());
    for row in &values.rows {
        let (kind, created): (String, f64) = truth
            .query_row(
                "SELECT kind, created FROM event_log WHERE id = ?1",
                [row.rowid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(row.values[0].as_str(), Some(kind.as_str()), "{row:?}");
        assert_eq!(row.values[1].as_f64(), Some(created), "{row:?}");
        assert!(
            destroyed.contains(&corrupt_samples::Key::Rowid(row.rowid)),
            "rowid {} was not lost",
            row.rowid
        );
    }
    // Every lost row whose entry is on a surviving leaf is named: the zeroed leaf held the
    // smallest keys, so in key order the unnamed lost rows all come before the named ones.
    let named: Vec<i64> = values.rows.iter().map(|r| r.rowid).collect();
    let mut lost: Vec<(String, f64, bool)> = destroyed
        .iter()
        .map(|k| {
            let corrupt_samples::Key::Rowid(id) = k else {
                panic!("event_log has rowids")
            };
            truth
                .query_row(
                    "SELECT kind, created FROM event_log WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, named.contains(id))),
                )
                .unwrap()
        })
        .collect();
    lost.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let first_named = lost.iter().position(|l| l.2).unwrap();
    assert!(
        lost[first_named..].iter().all(|l| l.2),
        "a lost row on a surviving leaf was not named: {lost:?}"
    );
}

#[test]
fn check_names_a_zeroed_index_page_beside_a_damaged_table() {
    let sample = committed("index-and-table-leaf-zeroed");
    let dir = tempfile::tempdir().unwrap();
    let db = sample.copy_to(dir.path()).unwrap();
    let guard = SourceGuard::new(&db);
    let out = cmd().args(["check", "--json"]).arg(&db).output().unwrap();
    guard.assert_unchanged();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let index_page = sample.expected.damaged_pages[1];
    let finding = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "index-pages")
        .expect("an index-pages finding");
    assert_eq!(finding["indexes"][0], "event_log_kind");
    let summary = finding["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("event_log_kind page {index_page} (zeroed)")),
        "{summary}"
    );
}

#[test]
fn check_of_a_healthy_sample_names_no_index_page() {
    let sample = committed("healthy-rollback");
    let dir = tempfile::tempdir().unwrap();
    let db = sample.copy_to(dir.path()).unwrap();
    let out = cmd().args(["check", "--json"]).arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
}
