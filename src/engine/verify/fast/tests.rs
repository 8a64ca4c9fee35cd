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
        structure: None,
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
