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
        wanted: None,
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

/// The foreign keys the proof's scans read are counted from what they found, and every
/// count is the pragma's: parents with gaps in their rowids and negative ones, a parent
/// named in another case, NULL keys, values that are not integers, two keys in a table, a
/// parent whose rows the scans do not read, and more rowids than runs are kept for.
#[test]
fn foreign_keys_counted_from_the_proofs_scans_are_the_pragmas() {
    const ROWS: &str =
        "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 600)";
    let shapes = [
        // (schema and rows, whether every child is counted from the scans)
        (
            format!(
                "CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT); CREATE INDEX p_name ON p(name);
                 CREATE TABLE c(id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES P(id));
                 CREATE INDEX c_p ON c(p_id);
                 {ROWS} INSERT INTO p SELECT v - 300, 'n' || v FROM n WHERE v % 7 <> 0;
                 {ROWS} INSERT INTO c SELECT v, CASE WHEN v % 11 = 0 THEN NULL
                                                 ELSE v % 650 - 320 END FROM n;"
            ),
            true,
        ),
        (
            format!(
                "CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT UNIQUE);
                 CREATE TABLE q(id INTEGER PRIMARY KEY, v); CREATE INDEX q_v ON q(v);
                 CREATE TABLE c(a REFERENCES p, b REFERENCES q(id));
                 CREATE INDEX c_a ON c(a, b); CREATE INDEX c_b ON c(b DESC);
                 {ROWS} INSERT INTO p SELECT v * 3, 'n' || v FROM n;
                 {ROWS} INSERT INTO q SELECT v, v FROM n WHERE v < 200 OR v > 400;
                 {ROWS} INSERT INTO c SELECT v * 2, v FROM n;"
            ),
            true,
        ),
        (
            format!(
                "CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT); CREATE INDEX p_name ON p(name);
                 CREATE TABLE c(p_id REFERENCES p(id)); CREATE INDEX c_p ON c(p_id);
                 {ROWS} INSERT INTO p SELECT v, 'n' FROM n WHERE v < 20;
                 {ROWS} INSERT INTO c SELECT CASE v % 5 WHEN 0 THEN '3' WHEN 1 THEN 4.0
                                                       ELSE v END FROM n;"
            ),
            true,
        ),
        (
            // The parent has no index: the scans do not read its rows.
            format!(
                "CREATE TABLE p(id INTEGER PRIMARY KEY, v);
                 CREATE TABLE c(p_id REFERENCES p(id)); CREATE INDEX c_p ON c(p_id);
                 {ROWS} INSERT INTO p SELECT v, v FROM n WHERE v % 3 = 0;
                 {ROWS} INSERT INTO c SELECT v FROM n;"
            ),
            false,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (n, (sql, scanned)) in shapes.iter().enumerate() {
        let path = dir.path().join(format!("{n}.sqlite3"));
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = OFF; PRAGMA page_size = 512; {sql}"
        ))
        .unwrap();
        let expected: u64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
            .try_into()
            .unwrap();
        assert!(expected > 0, "each shape has violations: {sql}");
        let plans = plan::plan(&conn).unwrap();
        let split = foreign_keys::split(&conn, |s| foreign_keys::read_by_proof(&plans, s)).unwrap();
        assert_eq!(split.others.is_empty(), *scanned, "{sql}");
        assert_eq!(!split.scanned.is_empty(), *scanned, "{sql}");
        drop(conn);
        let (messages, counted) = check_with_keys(&path, &BTreeMap::new(), 20).unwrap();
        assert_eq!(messages, vec!["ok"], "{sql}");
        assert_eq!(counted, Some(expected), "{sql}");
    }
}

/// Rowids kept as runs: consecutive ones in one run, a gap starting another, and a scan
/// that meets more runs than it may keep says so.
#[test]
fn rowids_are_kept_as_runs_up_to_a_bound() {
    let mut runs = Vec::new();
    for rowid in [-3, -2, -1, 0, 5, 6, 9, i64::MAX] {
        assert!(foreign_keys::add_rowid(&mut runs, rowid));
    }
    assert_eq!(runs, [(-3, 0), (5, 6), (9, 9), (i64::MAX, i64::MAX)]);
    let mut scattered = Vec::new();
    let kept = (0..300_000i64).all(|r| foreign_keys::add_rowid(&mut scattered, r * 2));
    assert!(!kept, "262,144 runs at most");
}
