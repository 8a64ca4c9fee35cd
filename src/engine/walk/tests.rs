//! The walker on small databases built in the test: whole trees, damaged ones, skims.
use super::*;
use crate::engine::pages::Claims;

/// A table of `rows` rows over several pages; its root page.
fn table_db(path: &std::path::Path, rows: i64) -> u32 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = 1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {rows})
         INSERT INTO t SELECT x, printf('%040d', x) FROM n;"
    ))
    .unwrap();
    conn.query_row("SELECT rootpage FROM sqlite_schema", [], |r| r.get(0))
        .unwrap()
}

fn walk(path: &std::path::Path, root: u32, skim: bool) -> (WalkStats, u64) {
    let pf = PageFile::open(path).unwrap();
    let never = || false;
    let mut walker = Walker::new(&pf, ProgressBar::hidden(), &never);
    walker.skim(skim);
    let mut map = Claims::new(pf.page_count());
    let any = |_: Option<i64>, _: &[u64]| true;
    let mut sunk = 0;
    let stats = walker
        .walk(
            &mut map,
            0,
            root,
            TreeKind::Table,
            PageStatus::Tree,
            &any,
            &mut |_| {
                sunk += 1;
                Ok(())
            },
        )
        .unwrap();
    (stats, sunk)
}

#[test]
fn a_skim_counts_the_rows_a_walk_reads_without_decoding_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let root = table_db(&db, 2000);
    let (walked, sunk) = walk(&db, root, false);
    let (skimmed, skim_sunk) = walk(&db, root, true);
    assert_eq!((walked.rows, sunk), (2000, 2000));
    assert_eq!(
        (skimmed.rows, skimmed.pages, skim_sunk),
        (2000, walked.pages, 0)
    );
    assert!(!skimmed.is_damaged());
}

#[test]
fn a_skim_finds_a_zeroed_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let root = table_db(&db, 2000);
    let mut bytes = std::fs::read(&db).unwrap();
    let last = bytes.len() / 1024;
    bytes[(last - 1) * 1024..].fill(0);
    std::fs::write(&db, &bytes).unwrap();
    let (skimmed, _) = walk(&db, root, true);
    assert!(skimmed.is_damaged());
    assert_eq!(skimmed.holes.len(), 1);
    assert_eq!(skimmed.holes[0].page, u32::try_from(last).unwrap());
}

#[test]
fn stats_of_several_walks_keep_every_hole_and_bound() {
    let hole = |page| Hole {
        lo: None,
        hi: None,
        page,
        parent: None,
        reason: "zeroed".into(),
        filled: false,
    };
    let mut all = WalkStats::default();
    all.absorb(WalkStats {
        rows: 3,
        holes: vec![hole(7)],
        min_rowid: Some(5),
        max_rowid: Some(9),
        ..WalkStats::default()
    });
    all.absorb(WalkStats {
        rows: 2,
        bad_cells: 1,
        holes: vec![hole(8)],
        min_rowid: Some(2),
        ..WalkStats::default()
    });
    assert_eq!((all.rows, all.bad_cells, all.holes.len()), (5, 1, 2));
    assert_eq!((all.min_rowid, all.max_rowid), (Some(2), Some(9)));
    assert!(all.is_damaged());
}
