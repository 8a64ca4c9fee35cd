//! The fast proof's own tests.

use super::*;

/// A page SQLite cannot read in the middle of a scan is a finding, not a failed run.
#[test]
fn an_unreadable_page_is_reported_not_raised() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite3");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 4096;
         CREATE TABLE a(x TEXT); CREATE INDEX ax ON a(x);
         WITH RECURSIVE c(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM c WHERE v < 400)
         INSERT INTO a SELECT printf('%0300d', v) FROM c;",
    )
    .unwrap();
    let leaf: i64 = conn
        .query_row(
            "SELECT max(pageno) FROM dbstat WHERE name = 'a' AND pagetype = 'leaf'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = (usize::try_from(leaf).unwrap() - 1) * 4096;
    bytes[at..at + 4096].fill(0xA5);
    std::fs::write(&path, &bytes).unwrap();
    let messages = check(&path, &BTreeMap::new(), 20).unwrap();
    assert_ne!(messages, vec!["ok"]);
    assert!(messages.len() <= 20);
}

/// A digest read from pages that does not match is read again through SQL, which
/// decides; one read through SQL is reported as it is.
#[test]
fn a_mismatch_from_pages_is_decided_through_sql() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite3");
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE a(x, y); CREATE INDEX ax ON a(x);
             INSERT INTO a VALUES (1, 2), (3, 4), ('z', NULL);",
        )
        .unwrap();
    let plans = plan::plan(&super::super::open(&path).unwrap()).unwrap();
    let keys = Keys::new();
    let ctx = Context {
        path: &path,
        plans: &plans,
        keys: &keys,
        limit: 20,
    };
    let wrong = |by_pages: bool| {
        let mut found = Found::default();
        found.from_rows.insert((0, 0), Digest { sum: 1, count: 3 });
        found.from_index.insert((0, 0), Digest { sum: 2, count: 3 });
        if by_pages {
            found.rows_by_pages.insert(0);
            found.index_by_pages.insert((0, 0));
        }
        let found = Mutex::new(found);
        recheck_through_sql(&ctx, &found, 1).unwrap();
        messages(&plans, found.into_inner().unwrap(), 20)
    };
    assert_eq!(wrong(true), vec!["ok"]);
    assert_eq!(
        wrong(false),
        vec![
            "index ax does not hold the entries table a implies: as many entries as rows, \
             not the same ones"
        ]
    );
}

#[test]
fn a_healthy_database_is_ok_and_limits_hold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite3");
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE a(x, y UNIQUE); CREATE INDEX ax ON a(x DESC, y);
             WITH RECURSIVE c(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM c WHERE v < 300)
             INSERT INTO a SELECT v % 7, v FROM c;",
        )
        .unwrap();
    let rows = BTreeMap::from([("a".to_string(), 300)]);
    assert_eq!(check(&path, &rows, 20).unwrap(), vec!["ok"]);
}

/// A table of `SPLIT_ROWS` rows and more is read in parts, on every core; one part pages
/// cannot serve (rows written before ADD COLUMN are short) sends the whole table through SQL.
/// Either way an index the rows do not imply is found, and a sound one passes.
#[test]
fn a_large_table_read_in_parts_proves_what_a_whole_read_does() {
    let rows = SPLIT_ROWS + 20_000;
    for short_rows in [false, true] {
        for wrong in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.sqlite3");
            let conn = Connection::open(&path).unwrap();
            let fill = |table: &str, from: u64, to: u64, bump: u64| {
                format!(
                    "WITH RECURSIVE c(v) AS (SELECT {from} UNION ALL SELECT v + 1 FROM c
                     WHERE v < {to}) INSERT INTO {table}(rowid, x)
                     SELECT v + 1000000 * (v = {bump}), printf('k%07d', v) FROM c;"
                )
            };
            let half = rows / 2;
            conn.execute_batch(&format!(
                "CREATE TABLE a(x TEXT); CREATE INDEX ax ON a(x);
                 CREATE TABLE b(x TEXT); CREATE INDEX bx ON b(x);
                 {} {}",
                fill("a", 1, half, 0),
                fill("b", 1, half, if wrong { 77 } else { 0 }),
            ))
            .unwrap();
            if short_rows {
                conn.execute_batch(
                    "ALTER TABLE a ADD COLUMN y DEFAULT 5; ALTER TABLE b ADD COLUMN y DEFAULT 5;",
                )
                .unwrap();
            }
            conn.execute_batch(&format!(
                "{} {}",
                fill("a", half + 1, rows, 0),
                fill("b", half + 1, rows, 0)
            ))
            .unwrap();
            // Each index takes the other's tree: well formed, and a's index holds b's rows.
            let root = |name: &str| -> i64 {
                conn.query_row(
                    "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .unwrap()
            };
            let (ax, bx) = (root("ax"), root("bx"));
            conn.execute_batch(&format!(
                "PRAGMA writable_schema = ON;
                 UPDATE sqlite_schema SET rootpage = {bx} WHERE name = 'ax';
                 UPDATE sqlite_schema SET rootpage = {ax} WHERE name = 'bx';
                 PRAGMA writable_schema = OFF;"
            ))
            .unwrap();
            drop(conn);
            let counts = BTreeMap::from([("a".to_string(), rows), ("b".to_string(), rows)]);
            let messages = check(&path, &counts, 20).unwrap();
            let case = format!("short rows {short_rows}, wrong rowid {wrong}");
            if wrong {
                assert!(
                    messages.iter().any(|m| m.contains("index ax")),
                    "{case}: {messages:?}"
                );
            } else {
                assert_eq!(messages, vec!["ok"], "{case}");
            }
            if !short_rows {
                assert_parts_add_up(&path);
            }
        }
    }
}

/// The parts of table `a` (the first), read from pages, add up to its whole read.
fn assert_parts_add_up(path: &Path) {
    let plans = plan::plan(&super::super::open(path).unwrap()).unwrap();
    let keys = Keys::new();
    let ctx = Context {
        path,
        plans: &plans,
        keys: &keys,
        limit: 20,
    };
    let TableCheck::Stream {
        indexes,
        pages: Some(pages),
        ..
    } = &plans[0].check
    else {
        panic!("table a is read from pages");
    };
    let whole = table_by_pages(&ctx, pages, indexes, Part::WHOLE).unwrap();
    let found = Mutex::new(Found::default());
    for k in 0..PARTS {
        table_part(&ctx, 0, Part { k, of: PARTS }, &found);
    }
    let found = found.into_inner().unwrap();
    assert!(found.rows_by_pages.contains(&0));
    assert_eq!(found.from_rows.get(&(0, 0)), Some(&whole[0].1));
    assert!(whole[0].1.count > SPLIT_ROWS);
}
