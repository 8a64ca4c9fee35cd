//! A table that lost interior pages only is put back together over its surviving subtrees
//! and copied whole, when an index proves it complete. A table that lost leaves with nothing
//! of them left is copied as its tree now reads, the lost pages cut out of their parents.

use crate::common;

use common::id_name_rows as rows_of;
use rusqlite::Connection;
use sqlite_rescue::engine::{recover, Options, Report};
use std::path::Path;

const PAGE: usize = 512;

/// `t(id INTEGER PRIMARY KEY, name TEXT)` with `rows` rows and an index on `name`, in 512-byte
/// pages so that the table's tree is several levels deep.
fn build(path: &Path, rows: u32) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE};
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < {rows})
         INSERT INTO t SELECT x, printf('name-%06d', x) FROM c;
         CREATE INDEX t_name ON t(name);"
    ))
    .unwrap();
}

fn root_of(path: &Path, name: &str) -> u32 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(
        "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .unwrap()
}

/// The child page numbers of a table-interior page.
fn children(bytes: &[u8], pgno: u32) -> Vec<u32> {
    let p = &bytes[(pgno as usize - 1) * PAGE..pgno as usize * PAGE];
    assert_eq!(p[0], 0x05, "page {pgno} is a table-interior page");
    let n = u16::from_be_bytes([p[3], p[4]]) as usize;
    let mut out: Vec<u32> = (0..n)
        .map(|i| {
            let at = u16::from_be_bytes([p[12 + 2 * i], p[13 + 2 * i]]) as usize;
            u32::from_be_bytes(p[at..at + 4].try_into().unwrap())
        })
        .collect();
    out.push(u32::from_be_bytes(p[8..12].try_into().unwrap()));
    out
}

fn zero(bytes: &mut [u8], pgno: u32) {
    bytes[(pgno as usize - 1) * PAGE..pgno as usize * PAGE].fill(0);
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Recovers `src` into `dir` with the whole copy, then table by table: each output and its
/// report, each checked whole and made the way it was asked.
fn both_ways(src: &Path, dir: &Path) -> Vec<(std::path::PathBuf, Report)> {
    [false, true]
        .into_iter()
        .map(|table_by_table| {
            let out = dir.join(format!("out-{table_by_table}.db"));
            let options = Options {
                table_by_table,
                ..Options::default()
            };
            let report = recover(src, &out, &options).unwrap();
            assert!(report.integrity_ok(), "{:?}", report.integrity);
            assert_eq!(report.whole_database_copied, !table_by_table);
            (out, report)
        })
        .collect()
}

/// The root and every page one level below it are zeroed: the surviving subtrees are far
/// more than one page can point at, so the rebuilt part of the tree has levels of its own.
/// Put back together in the view, and copied with the whole database by `VACUUM INTO` or on
/// its own (`table_by_table`): the same result either way.
fn top_levels_gone(table_by_table: bool) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    build(&src, 20_000);
    let root = root_of(&src, "t");
    let mut bytes = std::fs::read(&src).unwrap();
    let level1 = children(&bytes, root);
    let below: usize = level1.iter().map(|&c| children(&bytes, c).len()).sum();
    assert!(
        below > 40,
        "the test needs more subtrees than one page holds"
    );
    for c in level1 {
        zero(&mut bytes, c);
    }
    zero(&mut bytes, root);
    std::fs::write(&src, &bytes).unwrap();

    let out = dir.path().join("out.db");
    let options = Options {
        table_by_table,
        ..Options::default()
    };
    let report = recover(&src, &out, &options).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    assert_eq!(report.whole_database_copied, !table_by_table);
    let t = report.tables.iter().find(|t| t.name == "t").unwrap();
    assert!(t.copied_intact, "put back together and copied");
    assert_eq!(t.walked_rows, 0, "nothing was reachable from the root");
    assert_eq!(t.attributed_rows, 20_000);
    assert!(t.holes.iter().all(|h| h.filled));
    assert_eq!(report.lost_and_found_rows, 0);
    let out = Connection::open(&out).unwrap();
    assert_eq!(count(&out, "SELECT count(*) FROM t"), 20_000);
    assert_eq!(
        count(
            &out,
            "SELECT sum(id) FROM t WHERE name = printf('name-%06d', id)"
        ),
        20_000 * 20_001 / 2
    );
    assert_eq!(
        count(
            &out,
            "SELECT count(*) FROM t INDEXED BY t_name WHERE name >= ''"
        ),
        20_000
    );
}

#[test]
fn a_table_whose_top_levels_are_gone_comes_back_whole_and_is_copied() {
    top_levels_gone(false);
}

#[test]
fn a_table_whose_top_levels_are_gone_comes_back_whole_copied_on_its_own() {
    top_levels_gone(true);
}

/// Without an index to prove the subtrees are all there (and nothing else came in), the
/// table is decoded and its orphan pages put back row by row, as before: same rows.
#[test]
fn without_an_index_the_table_is_decoded_instead() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    build(&src, 5_000);
    Connection::open(&src)
        .unwrap()
        .execute_batch("DROP INDEX t_name")
        .unwrap();
    let root = root_of(&src, "t");
    let mut bytes = std::fs::read(&src).unwrap();
    let first = children(&bytes, root)[0];
    zero(&mut bytes, first);
    std::fs::write(&src, &bytes).unwrap();

    let out = dir.path().join("out.db");
    let report = recover(&src, &out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    let t = report.tables.iter().find(|t| t.name == "t").unwrap();
    assert!(!t.copied_intact);
    assert!(t.attributed_rows > 0);
    assert_eq!(t.walked_rows + t.attributed_rows, 5_000);
    let out = Connection::open(&out).unwrap();
    assert_eq!(count(&out, "SELECT count(*) FROM t"), 5_000);
}

/// A lost interior page whose subtrees survive, except one leaf under it that is gone too:
/// the rebuilt table is one leaf short of its index, so the copy that started beside the
/// check is rolled back and the table decoded. Every surviving row arrives once.
#[test]
fn a_rebuilt_table_short_of_its_index_is_rolled_back_and_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    build(&src, 20_000);
    let root = root_of(&src, "t");
    let mut bytes = std::fs::read(&src).unwrap();
    let level1 = children(&bytes, root)[1];
    let leaves = children(&bytes, level1);
    assert!(
        leaves.len() > 2,
        "the lost page had several leaves under it"
    );
    zero(&mut bytes, leaves[1]);
    zero(&mut bytes, level1);
    std::fs::write(&src, &bytes).unwrap();

    let out = dir.path().join("out.db");
    let report = recover(&src, &out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    let t = report.tables.iter().find(|t| t.name == "t").unwrap();
    assert!(!t.copied_intact, "one leaf short: not proven complete");
    let arrived = t.walked_rows + t.attributed_rows;
    assert!(arrived < 20_000 && arrived > 19_000, "{arrived}");
    let out = Connection::open(&out).unwrap();
    assert_eq!(count(&out, "SELECT count(*) FROM t"), arrived as i64);
    assert_eq!(
        count(&out, "SELECT count(DISTINCT id) FROM t"),
        arrived as i64,
        "no row twice"
    );
    assert_eq!(
        count(
            &out,
            "SELECT count(*) FROM t WHERE name = printf('name-%06d', id)"
        ),
        arrived as i64
    );
}

/// Leaves zeroed, one in the middle of a parent and one its right-most child: nothing of them
/// survives anywhere, so the table is copied without them, with exactly the rows decoding it
/// would give, its index built from those rows, and the holes reported as lost.
#[test]
fn lost_leaves_are_cut_out_and_the_rest_copied() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    build(&src, 20_000);
    let root = root_of(&src, "t");
    let mut bytes = std::fs::read(&src).unwrap();
    let level1 = children(&bytes, root);
    let leaves = children(&bytes, level1[1]);
    let (middle, right_most) = (leaves[2], *leaves.last().unwrap());
    zero(&mut bytes, middle);
    zero(&mut bytes, right_most);
    std::fs::write(&src, &bytes).unwrap();

    let out = dir.path().join("out.db");
    let report = recover(&src, &out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    // Pruned in the view and copied with the database, its index built again after.
    assert!(report.whole_database_copied);
    let t = report.tables.iter().find(|t| t.name == "t").unwrap();
    assert!(t.copied_intact, "copied around the lost leaves");
    assert_eq!(t.holes.len(), 2);
    assert!(t.holes.iter().all(|h| !h.filled));
    assert!(t.rows_may_be_missing);
    assert!(t.walked_rows < 20_000 && t.walked_rows > 19_000);

    let decoded = dir.path().join("decoded.db");
    let all = Options {
        decode_all: true,
        ..Options::default()
    };
    let by_decoding = recover(&src, &decoded, &all).unwrap();
    assert!(!by_decoding.tables.iter().any(|t| t.copied_intact));
    let copied_rows = rows_of(&out);
    assert_eq!(copied_rows.len() as u64, t.walked_rows);
    assert_eq!(copied_rows, rows_of(&decoded), "the same rows either way");
    let out = Connection::open(&out).unwrap();
    assert_eq!(
        count(
            &out,
            "SELECT count(*) FROM t INDEXED BY t_name WHERE name >= ''"
        ),
        t.walked_rows as i64,
        "the index was built from the rows that came back"
    );
}

/// With a UNIQUE constraint the table has an automatic index, which a copy on its own cannot
/// leave out (it would keep entries for the lost rows): taken table by table, such a table is
/// decoded. The whole copy shows the index empty and builds it again from the rows, so the
/// table is copied. The same rows either way.
#[test]
fn lost_leaves_of_a_table_with_an_automatic_index() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let conn = Connection::open(&src).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE};
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 5000)
         INSERT INTO t SELECT x, printf('name-%06d', x) FROM c;"
    ))
    .unwrap();
    drop(conn);
    let root = root_of(&src, "t");
    let mut bytes = std::fs::read(&src).unwrap();
    let leaf = children(&bytes, children(&bytes, root)[0])[1];
    zero(&mut bytes, leaf);
    std::fs::write(&src, &bytes).unwrap();

    let mut results = Vec::new();
    for ((out, report), whole_copy) in both_ways(&src, dir.path()).iter().zip([true, false]) {
        let t = report.tables.iter().find(|t| t.name == "t").unwrap();
        assert_eq!(t.copied_intact, whole_copy);
        assert_eq!(t.holes.len(), 1);
        assert!(t.rows_may_be_missing);
        let rows = rows_of(out);
        assert_eq!(rows.len() as u64, t.walked_rows);
        assert!(rows.len() < 5000 && rows.len() > 4900);
        let by_name = count(
            &Connection::open(out).unwrap(),
            "SELECT count(*) FROM t INDEXED BY sqlite_autoindex_t_1 WHERE name >= ''",
        );
        assert_eq!(
            by_name as usize,
            rows.len(),
            "the index holds the rows that came back"
        );
        results.push(rows);
    }
    assert_eq!(results[0], results[1], "the same rows either way");
}

/// Wide rows and a narrow index, so that SQLite counts rows by the index: the count that
/// proves a pruned copy complete must read the table, as the index is built again only after.
#[test]
fn a_pruned_table_with_a_narrow_index_is_counted_by_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let conn = Connection::open(&src).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE};
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, kind INTEGER);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000)
         INSERT INTO t SELECT x, printf('%0200d', x), x % 7 FROM c;
         CREATE INDEX t_kind ON t(kind);"
    ))
    .unwrap();
    drop(conn);
    let root = root_of(&src, "t");
    let mut bytes = std::fs::read(&src).unwrap();
    let leaf = children(&bytes, children(&bytes, root)[0])[1];
    zero(&mut bytes, leaf);
    std::fs::write(&src, &bytes).unwrap();

    let out = dir.path().join("out.db");
    let report = recover(&src, &out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    assert!(report.whole_database_copied);
    let t = report.tables.iter().find(|t| t.name == "t").unwrap();
    assert!(t.copied_intact);
    assert!(t.walked_rows < 3000 && t.walked_rows > 2990);
    let out = Connection::open(&out).unwrap();
    assert_eq!(count(&out, "SELECT count(*) FROM t") as u64, t.walked_rows);
}

fn all_rows(path: &Path, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
    common::query_rows(&Connection::open(path).unwrap(), sql)
}

/// Four kinds of table in one file: one that lost interior pages (put back together), one that
/// lost a leaf (cut out), a WITHOUT ROWID one that lost its root (left out of the whole copy and
/// decoded on its own), and a whole one. The whole copy gives what taking the tables one by
/// one gives, table for table and row for row, `sqlite_sequence` included.
#[test]
fn every_kind_of_damage_in_one_file_gives_the_same_rows_either_way() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let conn = Connection::open(&src).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE};
         CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);
         CREATE TABLE b(id INTEGER PRIMARY KEY, v TEXT);
         CREATE TABLE c(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
         CREATE TABLE d(x, y);
         CREATE TABLE log(what TEXT);
         CREATE TRIGGER a_log AFTER INSERT ON a BEGIN INSERT INTO log VALUES ('a'); END;
         CREATE VIEW named AS SELECT name FROM a WHERE id % 2 = 0;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000)
         INSERT INTO a(name) SELECT printf('name-%06d', x) FROM n;
         DELETE FROM a WHERE id > 19990;
         DELETE FROM log;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5000)
         INSERT INTO b SELECT x, printf('v%05d', x) FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000)
         INSERT INTO c SELECT printf('k%05d', x), x FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1000)
         INSERT INTO d SELECT x, x * 2 FROM n;
         CREATE INDEX a_name ON a(name);
         CREATE INDEX b_v ON b(v);"
    ))
    .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&src).unwrap();
    for c in children(&bytes, root_of(&src, "a")) {
        zero(&mut bytes, c);
    }
    let b_root = root_of(&src, "b");
    let b_leaf = children(&bytes, children(&bytes, b_root)[0])[1];
    zero(&mut bytes, b_leaf);
    zero(&mut bytes, root_of(&src, "c"));
    std::fs::write(&src, &bytes).unwrap();

    let outs = both_ways(&src, dir.path());
    for ((_, report), whole_copy) in outs.iter().zip([true, false]) {
        let t = |name: &str| report.tables.iter().find(|t| t.name == name).unwrap();
        assert!(t("a").copied_intact && t("a").holes.iter().all(|h| h.filled));
        assert_eq!(t("a").walked_rows + t("a").attributed_rows, 19_990);
        assert!(t("b").copied_intact && t("b").rows_may_be_missing);
        assert!(!t("c").copied_intact);
        // Without an INTEGER PRIMARY KEY or an index, only the whole copy keeps its rowids.
        assert_eq!(t("d").copied_intact, whole_copy);
        assert!(
            report.objects.iter().all(|o| o.created),
            "{:?}",
            report.objects
        );
    }
    let (whole, one_by_one) = (&outs[0].0, &outs[1].0);
    for sql in [
        "SELECT rowid, * FROM a ORDER BY rowid",
        "SELECT rowid, * FROM b ORDER BY rowid",
        "SELECT * FROM c ORDER BY k",
        "SELECT rowid, * FROM d ORDER BY rowid",
        "SELECT * FROM log",
        "SELECT * FROM sqlite_sequence ORDER BY name",
        "SELECT * FROM named",
        "SELECT type, name, tbl_name FROM sqlite_schema ORDER BY name",
    ] {
        assert_eq!(all_rows(whole, sql), all_rows(one_by_one, sql), "{sql}");
    }
    // The sequence is the source's, past the rows deleted at the end; no trigger fired.
    assert_eq!(
        all_rows(whole, "SELECT seq FROM sqlite_sequence"),
        vec![vec![20_000i64.into()]]
    );
    assert!(all_rows(whole, "SELECT * FROM log").is_empty());
    let (w, o) = (&outs[0].1, &outs[1].1);
    for name in ["a", "b", "c", "d"] {
        let t = |r: &Report| {
            let t = r.tables.iter().find(|t| t.name == name).unwrap();
            (t.recovered_rows, t.holes.len(), t.lost.len())
        };
        assert_eq!(t(w), t(o), "{name}");
    }
}
