//! Damaged files: a random healthy database ([`super::generate`]) with one leaf of one more
//! table zeroed. Every other table, the schema and the settings come back exactly, on both
//! copy paths.

use super::generate::{build, case, cases, Case};
use super::{contents, Stored};

use proptest::prelude::*;
use sqlite_rescue::engine::{recover, Options};
use std::path::Path;

/// A damaged file: one leaf of one more table zeroed. Every other table, the schema and the
/// settings still come back exactly, on both copy paths.
fn assert_untouched_tables_exact(case: &Case, dir: &Path) {
    let mut case = case.clone();
    case.wal = 0;
    let built = dir.join("built.db");
    let conn = build(&case, &built);
    conn.execute_batch(
        "CREATE TABLE zz_damaged(id INTEGER PRIMARY KEY, pad TEXT);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 300)
         INSERT INTO zz_damaged SELECT x, printf('%.100c', 'p') FROM n;",
    )
    .unwrap();
    let leaf: i64 = conn
        .query_row(
            "SELECT pageno FROM dbstat WHERE name = 'zz_damaged' AND pagetype = 'leaf'
             ORDER BY pageno DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let truth = contents(&built);
    let src = dir.join("src.db");
    let mut bytes = std::fs::read(&built).unwrap();
    let size = case.page_size as usize;
    let at = (leaf as usize - 1) * size;
    bytes[at..at + size].fill(0);
    std::fs::write(&src, &bytes).unwrap();
    let keep = |c: Vec<(String, Vec<Vec<Stored>>)>| -> Vec<(String, Vec<Vec<Stored>>)> {
        c.into_iter().filter(|(n, _)| n != "zz_damaged").collect()
    };
    let want = keep(truth);
    for table_by_table in [false, true] {
        let out = dir.join(format!("out-{table_by_table}.db"));
        let options = Options {
            table_by_table,
            ..Options::default()
        };
        let report = recover(&src, &out, &options).expect("recover");
        assert!(report.integrity_ok(), "{:?}", report.integrity);
        let damaged = report
            .tables
            .iter()
            .find(|t| t.name == "zz_damaged")
            .unwrap();
        assert!(!damaged.holes.is_empty(), "the zeroed leaf is a hole");
        let got: Vec<(String, Vec<Vec<Stored>>)> = keep(contents(&out))
            .into_iter()
            .filter(|(n, _)| !report.side_tables.contains(n))
            .collect();
        let names = |c: &[(String, Vec<Vec<Stored>>)]| -> Vec<String> {
            c.iter().map(|(n, _)| n.clone()).collect()
        };
        assert_eq!(
            names(&want),
            names(&got),
            "table by table: {table_by_table}"
        );
        for ((name, a), (_, b)) in want.iter().zip(&got) {
            assert_eq!(a, b, "{name}, table by table: {table_by_table}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 5, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn tables_the_damage_did_not_touch_come_back_exactly(case in case()) {
        let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
        assert_untouched_tables_exact(&case, dir.path());
    }
}
