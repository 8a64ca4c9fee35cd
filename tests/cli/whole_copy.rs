//! SQLite's `VACUUM INTO` copies the database while the engine walks it: whole tables as they
//! are, partial and damaged indexes built again after, and a table the walk does not trust
//! left out of the copy and taken on its own.

use crate::common;

use common::query_rows as all;
use rusqlite::Connection;
use sqlite_rescue::engine::{recover, Options, Report};
use std::path::{Path, PathBuf};

fn pragma(conn: &Connection, name: &str) -> i64 {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

/// A database at `app.db` in a new folder, made by `sql`.
fn source(sql: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.db");
    Connection::open(&src).unwrap().execute_batch(sql).unwrap();
    (dir, src)
}

fn recover_into(src: &Path, out: &Path) -> Report {
    let report = recover(src, out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    report
}

#[test]
fn a_whole_database_comes_back_with_its_settings_triggers_and_statistics() {
    let (dir, src) = source(
        "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA user_version = 7;
         PRAGMA application_id = 99;
         CREATE TABLE orders(id INTEGER PRIMARY KEY AUTOINCREMENT, customer TEXT NOT NULL,
                             total REAL);
         CREATE TABLE audit(at INTEGER, what TEXT);
         CREATE INDEX orders_customer ON orders(customer);
         CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
         CREATE TRIGGER orders_audit AFTER INSERT ON orders
           BEGIN INSERT INTO audit VALUES (new.id, 'insert'); END;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2000)
         INSERT INTO orders(customer, total) SELECT 'c' || (x % 37), x * 0.5 FROM n;
         DELETE FROM orders WHERE id % 11 = 0;
         ANALYZE;",
    );
    let out = dir.path().join("out.db");
    let report = recover_into(&src, &out);
    assert!(report.whole_database_copied);
    assert!(
        report.objects.iter().all(|o| o.created),
        "{:?}",
        report.objects
    );

    let (a, b) = (
        Connection::open(&src).unwrap(),
        Connection::open(&out).unwrap(),
    );
    for sql in [
        "SELECT rowid, * FROM orders ORDER BY rowid",
        "SELECT rowid, * FROM audit ORDER BY rowid",
        "SELECT * FROM sqlite_sequence",
        "SELECT * FROM sqlite_stat1 ORDER BY tbl, idx",
        "SELECT * FROM big_orders",
        "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name",
    ] {
        assert_eq!(all(&a, sql), all(&b, sql), "{sql}");
    }
    for setting in ["auto_vacuum", "user_version", "application_id", "page_size"] {
        assert_eq!(pragma(&a, setting), pragma(&b, setting), "{setting}");
    }
    // The trigger is back, and it fired for no row during the recovery.
    b.execute("INSERT INTO orders(customer, total) VALUES ('new', 1)", [])
        .unwrap();
    let audited: i64 = b
        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(audited, 2001);
}

/// A page with signs of damage (a free-block chain that points past the page) still gives
/// SQLite its cells, but the skim does not take its rows as certain: that table is left out of
/// the whole copy (shown to it as empty) and decoded, its rows reported as suspect; the other
/// table is copied with the database.
#[test]
fn a_page_the_skim_distrusts_is_left_out_of_the_whole_copy() {
    let (dir, src) = source(
        "PRAGMA page_size = 4096;
         CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT NOT NULL);
         CREATE TABLE posts(id INTEGER PRIMARY KEY, body TEXT);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20)
         INSERT INTO users SELECT x, 'u' || x || '@example.com' FROM n;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 800)
         INSERT INTO posts SELECT x, 'post ' || x FROM n;",
    );
    let conn = Connection::open(&src).unwrap();
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'users'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    // The users table fits on its root page: point its first free block past the page.
    let mut bytes = std::fs::read(&src).unwrap();
    let header = (root as usize - 1) * 4096;
    assert_eq!(bytes[header], 0x0d, "a table leaf");
    bytes[header + 1..header + 3].copy_from_slice(&0xfff0u16.to_be_bytes());
    std::fs::write(&src, &bytes).unwrap();

    let out = dir.path().join("out.db");
    let report = recover_into(&src, &out);
    assert!(report.whole_database_copied);
    let table = |name: &str| report.tables.iter().find(|t| t.name == name).unwrap();
    assert!(!table("users").copied_intact);
    assert_eq!(table("users").suspect_rows, 20);
    assert_eq!(table("users").recovered_rows, 20);
    assert!(table("posts").copied_intact);
    assert_eq!(table("posts").recovered_rows, 800);
}

/// A partial index has fewer entries than its table has rows, so its entries prove nothing
/// about the table: it is shown empty to the whole copy and built again from the rows, with the
/// same entries. A damaged partial index makes no difference.
#[test]
fn a_partial_index_is_built_again_after_the_whole_copy() {
    let (dir, src) = source(
        "PRAGMA page_size = 1024;
         CREATE TABLE jobs(id INTEGER PRIMARY KEY, state TEXT, tries INTEGER);
         CREATE INDEX jobs_pending ON jobs(id) WHERE state = 'pending';
         CREATE INDEX jobs_tries ON jobs(tries);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1500)
         INSERT INTO jobs SELECT x, CASE WHEN x % 4 THEN 'done' ELSE 'pending' END, x % 3 FROM n;",
    );
    let damaged = dir.path().join("damaged.db");
    std::fs::copy(&src, &damaged).unwrap();
    let root: i64 = Connection::open(&src)
        .unwrap()
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'jobs_pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[(root as usize - 1) * 1024..root as usize * 1024].fill(0);
    std::fs::write(&damaged, &bytes).unwrap();
    let a = Connection::open(&src).unwrap();
    for (name, db) in [("healthy", &src), ("damaged partial index", &damaged)] {
        let out = dir.path().join(format!("out-{name}.db"));
        let report = recover_into(db, &out);
        assert!(report.whole_database_copied, "{name}");
        assert!(report.tables.iter().all(|t| t.copied_intact), "{name}");
        let b = Connection::open(&out).unwrap();
        let sql = "SELECT rowid, * FROM jobs ORDER BY rowid";
        assert_eq!(all(&a, sql), all(&b, sql), "{name}");
        let pending = "SELECT id FROM jobs INDEXED BY jobs_pending WHERE state = 'pending'";
        assert_eq!(all(&a, pending), all(&b, pending), "{name}");
        assert_eq!(all(&b, pending).len(), 375, "{name}");
    }
}
