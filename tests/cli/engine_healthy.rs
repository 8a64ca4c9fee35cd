//! The first oracle: on a healthy database the engine returns every row, value for value,
//! rowids included, in every table.

use crate::common;

use common::query_rows as rows;
use rusqlite::types::Value;
use rusqlite::Connection;
use sqlite_rescue::engine::{recover, Options};
use std::path::Path;

fn build(path: &Path, page_size: u32, encoding: &str, wal: bool) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA encoding='{encoding}';
         PRAGMA user_version=42; PRAGMA application_id=1234567;"
    ))
    .unwrap();
    if wal {
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
    }
    conn.execute_batch(
        "CREATE TABLE event(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload BLOB, at REAL);
         CREATE TABLE note(a, b, c);
         CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
         CREATE TABLE seq(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE);
         CREATE INDEX event_kind ON event(kind);
         CREATE VIEW v AS SELECT kind, count(*) FROM event GROUP BY kind;
         BEGIN;",
    )
    .unwrap();
    for i in 0..3000i64 {
        let blob: Vec<u8> = (0..(i % 50) * (if i % 97 == 0 { 200 } else { 1 }))
            .map(|b| (b * 7 + i) as u8)
            .collect();
        conn.execute(
            "INSERT INTO event VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![i * 3 + 1, format!("kind-{}", i % 7), blob, i as f64 * 0.25],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO note VALUES (?1, ?2, ?3)",
            rusqlite::params![
                i,
                format!("n{i} ünï"),
                if i % 3 == 0 {
                    Value::Null
                } else {
                    Value::Real(1.5)
                }
            ],
        )
        .unwrap();
        if i % 3 == 0 {
            conn.execute(
                "INSERT INTO kv VALUES (?1, ?2)",
                rusqlite::params![format!("key{i:05}"), i],
            )
            .unwrap();
        }
    }
    for i in 0..50 {
        conn.execute("INSERT INTO seq(name) VALUES (?1)", [format!("s{i}")])
            .unwrap();
    }
    conn.execute_batch("DELETE FROM seq WHERE id > 40; DELETE FROM note WHERE a % 5 = 0; COMMIT;")
        .unwrap();
    if wal {
        // Leave the rows in the WAL: copy the files while the connection is open.
        let dir = path.parent().unwrap();
        std::fs::copy(path, dir.join("copy.db")).unwrap();
        std::fs::copy(dir.join("src.db-wal"), dir.join("copy.db-wal")).unwrap();
    }
}

fn assert_same(a: &Path, b: &Path) {
    let a = Connection::open(a).unwrap();
    let b = Connection::open(b).unwrap();
    for (table, sql) in [
        ("event", "SELECT rowid, * FROM event ORDER BY rowid"),
        ("note", "SELECT rowid, * FROM note ORDER BY rowid"),
        ("kv", "SELECT * FROM kv ORDER BY k"),
        ("seq", "SELECT rowid, * FROM seq ORDER BY rowid"),
        (
            "sqlite_sequence",
            "SELECT * FROM sqlite_sequence ORDER BY name",
        ),
        ("v", "SELECT * FROM v"),
    ] {
        let (ra, rb) = (rows(&a, sql), rows(&b, sql));
        assert_eq!(ra.len(), rb.len(), "row count of {table}");
        assert!(ra == rb, "contents of {table} differ");
    }
}

fn roundtrip(page_size: u32, encoding: &str, wal: bool) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    build(&src, page_size, encoding, wal);
    let input = if wal {
        dir.path().join("copy.db")
    } else {
        src.clone()
    };
    let out = dir.path().join("out.db");
    let report = recover(&input, &out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    assert_eq!(report.lost_and_found_rows, 0);
    for t in &report.tables {
        assert!(t.holes.is_empty(), "{}: {:?}", t.name, t.holes);
        assert_eq!(t.conflict_rows, 0, "{}", t.name);
    }
    // Compare against what SQLite itself reads from the input (WAL applied).
    let truth = dir.path().join("truth.db");
    if wal {
        let c = Connection::open(&input).unwrap();
        c.execute("VACUUM INTO ?1", [truth.to_str().unwrap()])
            .unwrap();
    } else {
        std::fs::copy(&src, &truth).unwrap();
    }
    assert_same(&truth, &out);
    // Every tree reads whole, so SQLite's VACUUM INTO copied the database, reading the
    // engine's view (rows still in the WAL come too), rowids of `note` (which has neither an
    // INTEGER PRIMARY KEY nor an index) included.
    assert!(report.whole_database_copied);
    assert!(report.tables.iter().all(|t| t.copied_intact));
    // Decoding every table instead gives the same rows.
    let decoded = dir.path().join("decoded.db");
    let options = Options {
        decode_all: true,
        ..Options::default()
    };
    let report = recover(&input, &decoded, &options).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    assert!(report.tables.iter().all(|t| !t.copied_intact));
    assert_same(&out, &decoded);
    let out_conn = Connection::open(&out).unwrap();
    let enc: String = out_conn
        .query_row("PRAGMA encoding", [], |r| r.get(0))
        .unwrap();
    assert_eq!(enc, encoding);
    let ps: u32 = out_conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ps, page_size);
}

#[test]
fn healthy_rollback_4096() {
    roundtrip(4096, "UTF-8", false);
}

#[test]
fn healthy_wal_1024() {
    roundtrip(1024, "UTF-8", true);
}

#[test]
fn healthy_utf16_512() {
    roundtrip(512, "UTF-16le", false);
}

#[test]
fn healthy_65536() {
    roundtrip(65536, "UTF-8", false);
}

/// A UNIQUE constraint the damaged data no longer satisfies: every row still lands once,
/// the ones SQLite refuses in `rescue_conflicts` with the reason (never dropped silently).
#[test]
fn rows_refused_by_a_constraint_are_kept_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let conn = Connection::open(&src).unwrap();
    conn.execute_batch(
        "CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100)
         INSERT INTO u SELECT x, 'user' || (x % 90) || '@example.com' FROM c;
         PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = 'CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE)'
           WHERE name = 'u';",
    )
    .unwrap();
    drop(conn);
    let out = dir.path().join("out.db");
    let report = recover(&src, &out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    let u = report.tables.iter().find(|t| t.name == "u").unwrap();
    assert_eq!(
        u.conflict_rows, 10,
        "ids 91..100 repeat the emails of 1..10"
    );
    assert_eq!(u.walked_rows, 90);
    let out = Connection::open(&out).unwrap();
    let kept: i64 = out
        .query_row("SELECT count(*) FROM u", [], |r| r.get(0))
        .unwrap();
    let refused: Vec<(String, i64)> = {
        let mut stmt = out
            .prepare("SELECT reason, id FROM rescue_conflicts WHERE tbl = 'u' ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(kept + refused.len() as i64, 100, "every row lands once");
    assert!(refused.iter().all(|(reason, _)| reason.contains("UNIQUE")));
    assert_eq!(refused.first().map(|r| r.1), Some(91));
}

/// A table `t(id INTEGER PRIMARY KEY, name TEXT)` with `rows` rows ('name-00001', ...) and an
/// index `t_name` on `name`, built after the rows. Returns the index's root page.
fn indexed_names(path: &Path, page_size: u32, rows: u32) -> u32 {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = {page_size};
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < {rows})
         INSERT INTO t SELECT x, printf('name-%05d', x) FROM c;
         CREATE INDEX t_name ON t(name);"
    ))
    .unwrap();
    conn.query_row(
        "SELECT rootpage FROM sqlite_schema WHERE name = 't_name'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Rows of `t` reached through its index `t_name`.
fn rows_by_index(out: &Connection) -> i64 {
    out.query_row(
        "SELECT count(*) FROM t INDEXED BY t_name WHERE name >= ''",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// A value altered in place (same length, so every page still reads whole) leaves the
/// source's index disagreeing with its row. Copying the index as it is would carry that into
/// the output: the check finds it, every table is decoded instead, and the index is rebuilt
/// from the rows. The row keeps the value the file holds; the output passes integrity_check.
#[test]
fn an_index_that_disagrees_with_its_rows_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    indexed_names(&src, 4096, 200);
    // The table was filled before the index was built: the first copy of the text in the
    // file is the row's, the second the index entry's.
    let mut bytes = std::fs::read(&src).unwrap();
    let at = bytes
        .windows(10)
        .position(|w| w == b"name-00150")
        .expect("value on a page");
    bytes[at + 5] = b'X';
    std::fs::write(&src, &bytes).unwrap();

    let out = dir.path().join("out.db");
    let report = recover(&src, &out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    let t = report.tables.iter().find(|t| t.name == "t").unwrap();
    assert!(!t.copied_intact, "decoded after the copy failed the check");
    assert_eq!(t.recovered_rows, 200);
    let out = Connection::open(&out).unwrap();
    assert_eq!(rows_by_index(&out), 200);
    let value = |sql: &str| -> i64 { out.query_row(sql, [], |r| r.get(0)).unwrap() };
    let altered = value("SELECT count(*) FROM t WHERE name LIKE 'name-X%'");
    let original = value("SELECT count(*) FROM t WHERE name = 'name-00150'");
    assert_eq!(
        altered + original,
        1,
        "the row is there once, with the file's value"
    );
}

/// A table that reads whole is copied even when one of its indexes does not: that index is
/// left out of the copy and built from the rows afterwards.
#[test]
fn a_damaged_index_is_rebuilt_while_its_whole_table_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let root = indexed_names(&src, 1024, 2000);
    // Zero the index's first leaf: the left child of the first cell of its interior root.
    let mut bytes = std::fs::read(&src).unwrap();
    let page = |n: u32| (n as usize - 1) * 1024;
    let r = page(root);
    assert_eq!(bytes[r], 0x02, "the index root is an interior page");
    let cell = u16::from_be_bytes([bytes[r + 12], bytes[r + 13]]) as usize;
    let child = u32::from_be_bytes(bytes[r + cell..r + cell + 4].try_into().unwrap());
    bytes[page(child)..page(child) + 1024].fill(0);
    std::fs::write(&src, &bytes).unwrap();

    let out = dir.path().join("out.db");
    let report = recover(&src, &out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    // Copied with the database, the damaged index shown empty and built again.
    assert!(report.whole_database_copied);
    let t = report.tables.iter().find(|t| t.name == "t").unwrap();
    assert!(t.copied_intact);
    assert_eq!(t.recovered_rows, 2000);
    let index = report.objects.iter().find(|o| o.name == "t_name").unwrap();
    assert!(index.created, "{:?}", index.error);
    assert_eq!(rows_by_index(&Connection::open(&out).unwrap()), 2000);
}

/// Rows whose parent is not there (the source held them so; or the parent was lost) are
/// recovered in their own table and counted in the report, not refused: the recovered file
/// has exactly as many as the source.
#[test]
fn rows_without_their_parent_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    Connection::open(&src)
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE author(id INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE book(id INTEGER PRIMARY KEY, author_id INTEGER REFERENCES author(id));
             CREATE INDEX book_author ON book(author_id);
             INSERT INTO author VALUES (1, 'a'), (2, 'b');
             INSERT INTO book(author_id) VALUES (1), (2), (2), (7), (8), (NULL);",
        )
        .unwrap();
    let out = dir.path().join("out.db");
    let report = recover(&src, &out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    assert_eq!(report.foreign_key_violations, Some(2));
    let book = report.tables.iter().find(|t| t.name == "book").unwrap();
    assert_eq!(book.recovered_rows, 6, "every book in its own table");
    assert_eq!(book.conflict_rows, 0);
    assert!(
        book.copied_intact,
        "a table with a foreign key is copied whole too"
    );
    let n: i64 = Connection::open(&out)
        .unwrap()
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 2);
}

/// Django declares its foreign keys DEFERRABLE INITIALLY DEFERRED: enforced, one row with a
/// missing parent would fail the load's commit. It comes back in its table like any other.
#[test]
fn a_deferred_foreign_key_with_a_missing_parent_does_not_stop_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    Connection::open(&src)
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE auth_user(id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT);
             CREATE TABLE post(id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT,
               author_id INTEGER NOT NULL REFERENCES auth_user(id) DEFERRABLE INITIALLY DEFERRED);
             CREATE INDEX post_author_id ON post(author_id);
             INSERT INTO auth_user(username) VALUES ('a'), ('b');
             INSERT INTO post(body, author_id) VALUES ('x', 1), ('y', 2), ('z', 3);",
        )
        .unwrap();
    let out = dir.path().join("out.db");
    let all = Options {
        decode_all: true,
        ..Options::default()
    };
    for options in [Options::default(), all] {
        let _ = std::fs::remove_file(&out);
        let report = recover(&src, &out, &options).unwrap();
        assert!(report.integrity_ok(), "{:?}", report.integrity);
        assert_eq!(report.foreign_key_violations, Some(1));
        let post = report.tables.iter().find(|t| t.name == "post").unwrap();
        assert_eq!((post.recovered_rows, post.conflict_rows), (3, 0));
    }
}

/// The query planner's statistics come back as they were (not gathered again), so the
/// recovered database plans its queries as the source did; stat tables the source did not
/// have are not added.
#[test]
fn planner_statistics_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let conn = Connection::open(&src).unwrap();
    conn.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INT);
         CREATE INDEX t_a ON t(a);
         CREATE INDEX t_b ON t(b);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000)
         INSERT INTO t SELECT x, 'v' || (x % 100), x % 7 FROM c;
         ANALYZE;
         UPDATE sqlite_stat1 SET stat = '1234 56' WHERE idx = 't_a';
         DELETE FROM sqlite_stat1 WHERE idx = 't_b';
         INSERT INTO sqlite_stat1(rowid, tbl, idx, stat) VALUES (17, 't', 't_b', '2000 300');
         DROP TABLE sqlite_stat4;",
    )
    .unwrap();
    drop(conn);
    // Copied whole, and table by table: each row under its own rowid.
    for table_by_table in [false, true] {
        let out = dir.path().join(format!("out-{table_by_table}.db"));
        let options = Options {
            table_by_table,
            ..Options::default()
        };
        let report = recover(&src, &out, &options).unwrap();
        assert!(report.integrity_ok(), "{:?}", report.integrity);
        let stat1 = "SELECT rowid, tbl, idx, stat FROM sqlite_stat1 ORDER BY rowid";
        let source = Connection::open(&src).unwrap();
        let out = Connection::open(&out).unwrap();
        assert_eq!(rows(&out, stat1), rows(&source, stat1), "{table_by_table}");
        assert!(rows(&out, stat1)
            .iter()
            .any(|r| r[3] == Value::Text("1234 56".into())));
        let stat_tables =
            "SELECT name FROM sqlite_schema WHERE name LIKE 'sqlite_stat%' ORDER BY 1";
        assert_eq!(rows(&out, stat_tables), rows(&source, stat_tables));
    }
}

/// A foreign key naming a parent key without a UNIQUE index makes SQLite's own
/// `foreign_key_check` fail ("foreign key mismatch"): the report says the violations were not
/// counted, not that there are none.
#[test]
fn foreign_keys_sqlite_cannot_check_are_reported_as_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    Connection::open(&src)
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE p(k INTEGER, v TEXT);
             CREATE TABLE c(id INTEGER PRIMARY KEY, pk INTEGER REFERENCES p(k));
             CREATE INDEX c_pk ON c(pk);
             INSERT INTO p VALUES (1, 'a'), (2, 'b');
             INSERT INTO c(pk) VALUES (1), (2), (3);",
        )
        .unwrap();
    let out = dir.path().join("out.db");
    let report = recover(&src, &out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    assert_eq!(report.foreign_key_violations, None);
    let run = crate::common::cmd()
        .args(["recover", "--out"])
        .arg(dir.path().join("out2.db"))
        .arg(&src)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("foreign_key_check: not counted"), "{text}");
}
