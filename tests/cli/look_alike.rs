//! Look-alike tables: two tables with the same columns lose their roots, so every leaf of both
//! is an orphan that fits either. Their UNIQUE indexes list which rows each holds: every row an
//! index lists lands in its own table, on both copy paths, and nothing goes to lost_and_found.

use rusqlite::Connection;
use sqlite_rescue::engine::{recover, Options};
use std::path::Path;

const PAGE: usize = 1024;

/// `a` and `b`, same columns, same rowids 1..=600, different names; each name UNIQUE.
fn build(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024;
         CREATE TABLE a(id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INT);
         CREATE TABLE b(id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 600)
         INSERT INTO a SELECT x, printf('alpha-%05d', x), x FROM c;
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 600)
         INSERT INTO b SELECT x, printf('beta-%05d', x), x * 2 FROM c;",
    )
    .unwrap();
}

fn zero_roots(path: &Path, tables: &[&str]) {
    let conn = Connection::open(path).unwrap();
    let roots: Vec<usize> = tables
        .iter()
        .map(|t| {
            conn.query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                [t],
                |r| r.get::<_, i64>(0),
            )
            .map(|r| r as usize)
            .unwrap()
        })
        .collect();
    drop(conn);
    let mut bytes = std::fs::read(path).unwrap();
    for r in roots {
        bytes[(r - 1) * PAGE..r * PAGE].fill(0);
    }
    std::fs::write(path, bytes).unwrap();
}

/// (rows, rows whose name carries the table's own prefix) of `table` in `db`.
fn own_rows(db: &Path, table: &str, prefix: &str) -> (i64, i64) {
    let conn = Connection::open(db).unwrap();
    conn.query_row(
        &format!("SELECT count(*), coalesce(sum(name LIKE '{prefix}%'), 0) FROM {table}"),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn index_entries_put_look_alike_rows_back_in_their_own_table() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    build(&src);
    zero_roots(&src, &["a", "b"]);
    for (name, decode_all) in [("copied", false), ("decoded", true)] {
        let out = dir.path().join(format!("{name}.db"));
        let options = Options {
            decode_all,
            ..Options::default()
        };
        let report = recover(&src, &out, &options).unwrap();
        assert_eq!(own_rows(&out, "a", "alpha"), (600, 600), "{name}");
        assert_eq!(own_rows(&out, "b", "beta"), (600, 600), "{name}");
        assert_eq!(
            report.lost_and_found_rows, 0,
            "{name}: {:?}",
            report.orphans
        );
        assert!(report.integrity_ok(), "{name}: {:?}", report.integrity);
        if decode_all {
            // Decoded row by row, only the indexes could tell the orphan leaves apart.
            let told = report
                .orphans
                .iter()
                .filter(|g| g.evidence.is_some())
                .count();
            assert!(told > 0, "{:?}", report.orphans);
            for g in report.orphans.iter().filter(|g| g.evidence.is_some()) {
                let why = g.evidence.as_deref().unwrap();
                assert!(
                    why.contains("lists") && why.contains("no index of"),
                    "{why}"
                );
            }
        }
    }
}

/// The committed sample: customer's and supplier's roots point at each other's leaves, so a
/// leaf of each is an orphan whose records fit both tables. Every row an index lists (every
/// row: each email is UNIQUE) lands in its own table, on both copy paths.
#[test]
fn the_swapped_pointers_sample_puts_every_indexed_row_in_its_own_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample =
        corrupt_samples::load_sample(&root.join("corrupt-samples/look-alike-swapped")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = sample.copy_to(dir.path()).unwrap();
    let truth = sample.truth.as_ref().unwrap();
    for (name, decode_all) in [("copied", false), ("decoded", true)] {
        let out = dir.path().join(format!("{name}.db"));
        let options = Options {
            decode_all,
            ..Options::default()
        };
        let report = recover(&db, &out, &options).unwrap();
        assert!(report.integrity_ok(), "{name}: {:?}", report.integrity);
        assert_eq!(
            report.lost_and_found_rows, 0,
            "{name}: {:?}",
            report.orphans
        );
        let score = corrupt_samples::score(truth, &out).unwrap();
        for t in &score.tables {
            assert_eq!(t.in_place, t.truth_rows, "{name}\n{score}");
            assert_eq!((t.wrong_table, t.spurious), (0, 0), "{name}\n{score}");
        }
        let conn = Connection::open(&out).unwrap();
        for table in ["customer", "supplier"] {
            let own: (i64, i64) = conn
                .query_row(
                    &format!("SELECT count(*), sum(email LIKE '{table}%') FROM {table}"),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(own, (600, 600), "{name}: {table}");
        }
    }
}

/// `a` and `b` laid out alike (same lengths everywhere), and the same child pointer of their
/// roots swapped: each walk finds the other table's leaf where its own was, with keys in the
/// right range. Nothing in the pages shows it; the UNIQUE indexes do. The rows are reported,
/// and since each holds what the other table's index lists for its rowid, each goes back to
/// its own table whole (never "repaired" into a mix of both tables' values).
#[test]
fn a_leaf_of_a_look_alike_read_in_place_of_its_own_goes_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    {
        let conn = Connection::open(&src).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 1024;
             CREATE TABLE a(id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INT);
             CREATE TABLE b(id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INT);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 600)
             INSERT INTO a SELECT x, printf('alpha-%05d', x), x + 1000 FROM c;
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 600)
             INSERT INTO b SELECT x, printf('bravo-%05d', x), x + 2000 FROM c;",
        )
        .unwrap();
    }
    let roots: Vec<usize> = {
        let conn = Connection::open(&src).unwrap();
        ["a", "b"]
            .iter()
            .map(|t| {
                conn.query_row(
                    "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                    [t],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap() as usize
            })
            .collect()
    };
    let mut bytes = std::fs::read(&src).unwrap();
    // The 5th cell's child pointer of each root (table interior pages: 12-byte header).
    let pointer = |bytes: &[u8], root: usize| {
        let page = (root - 1) * PAGE;
        let cell = u16::from_be_bytes([bytes[page + 12 + 8], bytes[page + 12 + 9]]) as usize;
        page + cell
    };
    let (pa, pb) = (pointer(&bytes, roots[0]), pointer(&bytes, roots[1]));
    let (ca, cb): ([u8; 4], [u8; 4]) = (
        bytes[pa..pa + 4].try_into().unwrap(),
        bytes[pb..pb + 4].try_into().unwrap(),
    );
    bytes[pa..pa + 4].copy_from_slice(&cb);
    bytes[pb..pb + 4].copy_from_slice(&ca);
    std::fs::write(&src, bytes).unwrap();
    let out = dir.path().join("out.db");
    let report = recover(&src, &out, &Options::default()).unwrap();
    let conn = Connection::open(&out).unwrap();
    // The first table checked finds the other's rows and exchanges them; the second then
    // holds its own.
    let a = report.tables.iter().find(|r| r.name == "a").unwrap();
    assert!(a.altered_rows > 0, "{a:?}");
    assert_eq!(a.repaired_rows, 0, "rows mixed from two tables");
    for row in &a.altered {
        assert_eq!(row.moved_to.as_deref(), Some("b"), "{row:?}");
    }
    let b = report.tables.iter().find(|r| r.name == "b").unwrap();
    assert_eq!(b.altered_rows, 0, "{b:?}");
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    for (t, own, n) in [("a", "alpha", 1000), ("b", "bravo", 2000)] {
        let (rows, whole): (i64, i64) = conn
            .query_row(
                &format!(
                    "SELECT count(*), sum(name = printf('{own}-%05d', id) AND n = id + {n})
                     FROM {t}"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rows, whole), (600, 600), "{t}: every row its own, whole");
        let rep = report.tables.iter().find(|r| r.name == t).unwrap();
        assert_eq!(rep.recovered_rows, 600);
    }
}

/// Look-alikes without an index, in an auto-vacuum database: the pointer map records each
/// page's parent, even where the parent (here each table's root) is lost, so it leads every
/// orphan leaf up to its own table's root. Without a pointer map the same rows go to
/// lost_and_found, ambiguous.
#[test]
fn the_pointer_map_puts_look_alike_rows_back_in_their_own_table() {
    let dir = tempfile::tempdir().unwrap();
    for auto_vacuum in [1, 0] {
        let src = dir.path().join(format!("av{auto_vacuum}.db"));
        let conn = Connection::open(&src).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size = 1024; PRAGMA auto_vacuum = {auto_vacuum};
             CREATE TABLE a(id INTEGER PRIMARY KEY, name TEXT, n INT);
             CREATE TABLE b(id INTEGER PRIMARY KEY, name TEXT, n INT);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 600)
             INSERT INTO a SELECT x, printf('alpha-%05d', x), x FROM c;
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 600)
             INSERT INTO b SELECT x, printf('beta-%05d', x), x * 2 FROM c;"
        ))
        .unwrap();
        drop(conn);
        zero_roots(&src, &["a", "b"]);
        let out = dir.path().join(format!("out{auto_vacuum}.db"));
        let report = recover(&src, &out, &Options::default()).unwrap();
        assert!(report.integrity_ok(), "{:?}", report.integrity);
        if auto_vacuum == 1 {
            assert_eq!(own_rows(&out, "a", "alpha"), (600, 600));
            assert_eq!(own_rows(&out, "b", "beta"), (600, 600));
            assert_eq!(report.lost_and_found_rows, 0, "{:?}", report.orphans);
            let told = report.orphans.iter().filter_map(|g| g.evidence.as_deref());
            assert!(
                told.clone().count() > 0 && told.clone().all(|w| w.contains("pointer map")),
                "{:?}",
                report.orphans
            );
        } else {
            assert_eq!(report.lost_and_found_rows, 1200, "{:?}", report.orphans);
        }
    }
}
