//! Never make a readable database worse: random valid schemas and data, each database healthy,
//! recovered on both copy paths (the whole database by `VACUUM INTO`, and table by table) and
//! compared exactly: every row's rowid or key, every value's storage class and bytes, every
//! schema object's definition, and the header's settings.
//!
//! `PROPTEST_CASES=5000 cargo test --release exact::` runs a long search.

use crate::common;

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use sqlite_rescue::engine::{recover, Options, Report};
use std::path::Path;

mod added_columns;
mod app;
mod damaged;
mod generate;

/// One value as it is stored: storage class and bytes (a REAL by its bits, TEXT by its bytes
/// in the database's encoding).
pub(crate) type Stored = (String, Vec<u8>);

/// SQL functions only the application registers: `appfn`, the length of its argument as
/// text, and `appcalc`, its argument's storage class and length. The stand-ins a recovery
/// registers last for the process, so the tests use `appfn` only where no stored value
/// depends on it (it gets a stand-in) and `appcalc` only where one does (it gets none).
pub(crate) fn register_app_function(conn: &Connection) {
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("appfn", 1, flags, |ctx| {
        Ok(ctx.get_raw(0).as_bytes().map_or(0, |b| b.len() as i64))
    })
    .unwrap();
    conn.create_scalar_function("appcalc", 1, flags, |ctx| {
        let v = ctx.get_raw(0);
        let len = v.as_bytes().map_or(0, |b| b.len() as i64);
        Ok(format!("{:?}:{len}", v.data_type()))
    })
    .unwrap();
}

/// Reserves `bytes` at the end of every page of a database not yet written.
pub(crate) fn reserve_bytes(conn: &Connection, bytes: u8) {
    let mut reserve = std::ffi::c_int::from(bytes);
    // SAFETY: the handle is this open connection's; the file control reads and writes one
    // int through the pointer, which outlives the call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_RESERVE_BYTES,
            (&raw mut reserve).cast(),
        )
    };
    assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
}

/// A collation only the application registers: binary order, reversed.
pub(crate) fn register_app_collation(conn: &Connection) {
    conn.create_collation("appcoll", |a: &str, b: &str| b.cmp(a))
        .unwrap();
}

/// Every row of every b-tree table of the database (virtual tables' shadow tables and
/// SQLite's own included), each value as stored, rows sorted; the schema's objects; the
/// header's settings.
pub(crate) fn contents(path: &Path) -> Vec<(String, Vec<Vec<Stored>>)> {
    let conn = Connection::open(path).expect("open");
    register_app_collation(&conn);
    register_app_function(&conn);
    let mut out = Vec::new();
    let schema = common::query_rows(
        &conn,
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema ORDER BY type, name",
    );
    out.push(("(schema)".to_string(), stored_rows(&schema)));
    let mut settings = Vec::new();
    for p in [
        "page_size",
        "encoding",
        "user_version",
        "application_id",
        "auto_vacuum",
    ] {
        let mut row = common::query_rows(&conn, &format!("PRAGMA {p}")).remove(0);
        row.insert(0, rusqlite::types::Value::Text(p.to_string()));
        settings.push(row);
    }
    out.push(("(settings)".to_string(), stored_rows(&settings)));
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND rootpage > 0")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for t in tables {
        out.push((t.clone(), table_rows(&conn, &t)));
    }
    out.sort();
    out
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn table_rows(conn: &Connection, table: &str) -> Vec<Vec<Stored>> {
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_xinfo(?1)")
        .unwrap()
        .query_map([table], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let without_rowid: bool = conn
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .unwrap();
    let mut select: Vec<String> = Vec::new();
    // sqlite_sequence's rowids are SQLite's bookkeeping, of no meaning to anyone.
    if !without_rowid && table != "sqlite_sequence" {
        if let Some(alias) = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|a| !columns.iter().any(|c| c.eq_ignore_ascii_case(a)))
        {
            select.push(alias.to_string());
        }
    }
    for c in &columns {
        let q = quote(c);
        select.push(format!(
            "CASE typeof({q}) WHEN 'text' THEN CAST({q} AS BLOB) ELSE {q} END, typeof({q})"
        ));
    }
    let sql = format!("SELECT {} FROM {}", select.join(", "), quote(table));
    let mut stmt = conn.prepare(&sql).unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            let mut row = Vec::new();
            for i in 0..n {
                row.push(stored(r.get_ref(i)?));
            }
            Ok(row)
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    sorted(rows)
}

fn stored(v: ValueRef<'_>) -> Stored {
    match v {
        ValueRef::Null => ("null".into(), Vec::new()),
        ValueRef::Integer(i) => ("integer".into(), i.to_be_bytes().to_vec()),
        ValueRef::Real(r) => ("real".into(), r.to_bits().to_be_bytes().to_vec()),
        ValueRef::Text(t) => ("text".into(), t.to_vec()),
        ValueRef::Blob(b) => ("blob".into(), b.to_vec()),
    }
}

fn stored_rows(rows: &[Vec<rusqlite::types::Value>]) -> Vec<Vec<Stored>> {
    sorted(
        rows.iter()
            .map(|r| r.iter().map(|v| stored(ValueRef::from(v))).collect())
            .collect(),
    )
}

fn sorted(mut rows: Vec<Vec<Stored>>) -> Vec<Vec<Stored>> {
    rows.sort();
    rows
}

/// Recovers `src` on both copy paths and checks each output holds exactly what `src` holds,
/// with nothing lost, refused or set aside. Returns the two reports.
pub(crate) fn assert_round_trip(src: &Path, dir: &Path) -> [Report; 2] {
    // Read from a copy: opening the source with SQLite would touch its -wal and -shm.
    let truth = dir.join("truth.db");
    std::fs::copy(src, &truth).unwrap();
    let wal = common::source_files(src).remove(1);
    if wal.exists() {
        std::fs::copy(&wal, common::source_files(&truth).remove(1)).unwrap();
    }
    let want = contents(&truth);
    let violations = foreign_key_violations(&truth);
    let run = |name: &str, table_by_table: bool| {
        let out = dir.join(name);
        let options = Options {
            table_by_table,
            ..Options::default()
        };
        let guard = common::SourceGuard::new(src);
        let report = recover(src, &out, &options).expect("recover");
        guard.assert_unchanged();
        let path = if table_by_table {
            "table by table"
        } else {
            "whole"
        };
        assert!(report.integrity_ok(), "{path}: {:?}", report.integrity);
        assert_eq!(report.lost_and_found_rows, 0, "{path}: lost_and_found");
        assert_eq!(report.conflict_rows, 0, "{path}: conflicts");
        assert!(
            report.settings_not_kept.is_empty(),
            "{path}: {:?}",
            report.settings_not_kept
        );
        for t in &report.tables {
            assert!(
                t.refused.is_none(),
                "{path}: {} refused: {:?}",
                t.name,
                t.refused
            );
            assert!(!t.rows_may_be_missing, "{path}: {} may miss rows", t.name);
            assert!(t.lost.is_empty(), "{path}: {} lost rows", t.name);
        }
        // With the application's own collation, as the application will open it.
        let check = Connection::open(&out).unwrap();
        register_app_collation(&check);
        register_app_function(&check);
        let ok: String = check
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "{path}: integrity_check with the app's collation");
        drop(check);
        let got = contents(&out);
        assert_same(&want, &got, path);
        assert_eq!(
            report.foreign_key_violations, violations,
            "{path}: foreign keys"
        );
        report
    };
    [run("whole.db", false), run("tables.db", true)]
}

/// What `PRAGMA foreign_key_check` counts in `db` (`None` where it cannot run), as reports
/// do.
fn foreign_key_violations(db: &Path) -> Option<u64> {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get::<_, i64>(0)
        })
        .ok()
        .map(|n| u64::try_from(n).unwrap())
}

pub(crate) fn assert_same(
    want: &[(String, Vec<Vec<Stored>>)],
    got: &[(String, Vec<Vec<Stored>>)],
    path: &str,
) {
    let names = |c: &[(String, Vec<Vec<Stored>>)]| c.iter().map(|(n, _)| n.clone()).collect();
    let (w, g): (Vec<String>, Vec<String>) = (names(want), names(got));
    assert_eq!(w, g, "{path}: tables");
    for ((name, a), (_, b)) in want.iter().zip(got) {
        assert_eq!(a.len(), b.len(), "{path}: rows of {name}");
        for (ra, rb) in a.iter().zip(b) {
            assert_eq!(ra, rb, "{path}: a row of {name}");
        }
    }
}

// ---------------------------------------------------------------- one regression per fix

/// A database at `src.db` in a new folder, made by `sql`.
pub(crate) fn made_by(sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let conn = Connection::open(&src).unwrap();
    register_app_collation(&conn);
    register_app_function(&conn);
    conn.execute_batch(sql).unwrap();
    (dir, src)
}

/// `check` through the binary: its exit code.
pub(crate) fn check_exit(src: &Path) -> Option<i32> {
    let guard = common::SourceGuard::new(src);
    let out = common::cmd()
        .args(["check", "-q"])
        .arg(src)
        .output()
        .unwrap();
    guard.assert_unchanged();
    out.status.code()
}

/// `recover` through the binary: its exit code.
pub(crate) fn recover_exit(src: &Path, dir: &Path) -> Option<i32> {
    let guard = common::SourceGuard::new(src);
    let out = common::cmd()
        .args(["recover", "-q", "--out"])
        .arg(dir.join("cli.db"))
        .arg("--incident-dir")
        .arg(dir.join("incident"))
        .arg(src)
        .output()
        .unwrap();
    guard.assert_unchanged();
    out.status.code()
}

#[test]
fn integer_primary_key_desc_is_an_ordinary_column_with_its_own_rowid() {
    let (dir, src) = made_by(
        "CREATE TABLE t(id INTEGER PRIMARY KEY DESC, v TEXT);
         INSERT INTO t(rowid, id, v) VALUES (10, -5, 'a'), (3, 7, 'b'), (-1, NULL, 'c'),
           (9223372036854775807, 1, 'd');",
    );
    let reports = assert_round_trip(&src, dir.path());
    assert!(reports.iter().all(|r| r.tables[0].walked_rows == 4));
    assert_eq!(recover_exit(&src, dir.path()), Some(0));
}

/// A CHECK constraint turns SQLite's transfer path off: the rows then arrive as values, and a
/// table without an INTEGER PRIMARY KEY would have them numbered afresh.
#[test]
fn a_table_with_a_check_constraint_keeps_its_rowids() {
    let (dir, src) = made_by(
        "CREATE TABLE t(a INT, b TEXT, PRIMARY KEY(a), CHECK (b IS NOT 'x'));
         CREATE VIRTUAL TABLE r USING rtree(id, x0, x1);
         INSERT INTO t(rowid, a, b) VALUES (-9223372036854775808, 1, 'a'), (50, 2, 'b');",
    );
    let [tables, _] = assert_round_trip(&src, dir.path());
    assert!(
        !tables.whole_database_copied,
        "a virtual table: table by table"
    );
}

/// user_version, application_id and auto_vacuum set after the last checkpoint live only in
/// the -wal's copy of page 1.
#[test]
fn settings_written_only_in_the_wal_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let built = dir.path().join("built.db");
    let conn = Connection::open(&built).unwrap();
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE t(a, b); INSERT INTO t VALUES (1, 2);
         PRAGMA wal_checkpoint(TRUNCATE);
         PRAGMA user_version = -7; PRAGMA application_id = 123456;
         PRAGMA auto_vacuum = FULL; VACUUM;",
    )
    .unwrap();
    let src = dir.path().join("src.db");
    std::fs::copy(&built, &src).unwrap();
    std::fs::copy(
        dir.path().join("built.db-wal"),
        dir.path().join("src.db-wal"),
    )
    .unwrap();
    drop(conn);
    assert_round_trip(&src, dir.path());
}

/// Text not valid in the database's encoding is a value like any other: it comes back byte
/// for byte, on a healthy file nothing is flagged, and `recover` exits 0.
#[test]
fn text_not_valid_in_its_encoding_comes_back_byte_for_byte() {
    for (encoding, bytes) in [
        ("UTF-8", "x'ff61c3'"),
        ("UTF-16le", "x'00d84100'"),
        ("UTF-16be", "x'dc000041'"),
    ] {
        let (dir, src) = made_by(&format!(
            "PRAGMA encoding = '{encoding}';
             CREATE TABLE t(a TEXT, b);
             CREATE TABLE u(a TEXT, b CHECK (b IS NOT 0));
             INSERT INTO t VALUES (CAST({bytes} AS TEXT), 1), ('plain', 2);
             INSERT INTO u VALUES (CAST({bytes} AS TEXT), 1);"
        ));
        let reports = assert_round_trip(&src, dir.path());
        for r in &reports {
            assert!(r.tables.iter().all(|t| t.suspect_rows == 0), "{encoding}");
        }
        assert_eq!(recover_exit(&src, dir.path()), Some(0), "{encoding}");
    }
}

/// A user's tables named like the tool's own are the user's: copied as they are, never read
/// back as side tables; the tool's own take free names, recorded in the report.
#[test]
fn user_tables_named_like_the_tools_own_are_the_users() {
    let (dir, src) = made_by(
        "CREATE TABLE lost_and_found(id INTEGER PRIMARY KEY, what TEXT);
         CREATE TABLE Rescue_Conflicts(a, b);
         CREATE TABLE lost_and_found_1(x);
         INSERT INTO lost_and_found VALUES (1, 'umbrella'), (2, 'keys');
         INSERT INTO Rescue_Conflicts VALUES (1, 2);
         CREATE VIEW freelist_rows AS SELECT * FROM lost_and_found;",
    );
    for r in assert_round_trip(&src, dir.path()) {
        assert_eq!(r.side_tables.lost_and_found, "lost_and_found_2");
        assert_eq!(r.side_tables.conflicts, "rescue_conflicts_1");
        assert_eq!(r.side_tables.freelist_rows, "freelist_rows_1");
        assert_eq!(r.side_tables.damaged_values, "rescue_damaged_values");
    }
    assert_eq!(recover_exit(&src, dir.path()), Some(0));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("incident/report.json")).unwrap())
            .unwrap();
    assert_eq!(
        report["engine"]["side_tables"]["lost_and_found"],
        "lost_and_found_2"
    );
    // diff counts the user's lost_and_found as a table like any other.
    let guard = common::SourceGuard::new(&src);
    let out = common::cmd()
        .args(["diff", "--json"])
        .arg(&src)
        .arg(dir.path().join("cli.db"))
        .output()
        .unwrap();
    guard.assert_unchanged();
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tables: Vec<&str> = diff["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert!(tables.contains(&"lost_and_found"), "{tables:?}");
    assert_eq!(diff["lost_and_found_rows"], 0);
    assert_eq!(out.status.code(), Some(0));
}

/// Older SQLite let applications create tables named `sqlite_*`: they are ordinary tables.
#[test]
fn a_legacy_table_named_sqlite_something_is_an_ordinary_table() {
    let (dir, src) = made_by(
        "PRAGMA writable_schema = ON;
         CREATE TABLE sqlite_legacy(id INTEGER PRIMARY KEY, v);
         CREATE TABLE sqlite_plain(a, b CHECK (b IS NOT 0));
         PRAGMA writable_schema = OFF;
         INSERT INTO sqlite_legacy VALUES (1, 'a'), (5, 'b');
         INSERT INTO sqlite_plain(rowid, a, b) VALUES (7, 'x', 1);",
    );
    assert_round_trip(&src, dir.path());
    assert_eq!(recover_exit(&src, dir.path()), Some(0));
}

/// `EXACT_REPLAY=DIR cargo test exact::replay -- --ignored` runs the comparison on a kept
/// failing case (`EXACT_KEEP_FAILURE=DIR` keeps the smallest one proptest finds).
#[test]
#[ignore]
fn replay() {
    let kept = std::path::PathBuf::from(std::env::var("EXACT_REPLAY").expect("EXACT_REPLAY"));
    let dir = tempfile::tempdir().unwrap();
    for f in common::source_files(&kept.join("src.db")) {
        if f.exists() {
            std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
    }
    assert_round_trip(&dir.path().join("src.db"), dir.path());
}

/// An AUTOINCREMENT table that never had a row has no sqlite_sequence row; copying it must
/// not add one.
#[test]
fn an_empty_autoincrement_table_adds_no_sequence_row() {
    let (dir, src) = made_by(
        "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
         CREATE TABLE u(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
         INSERT INTO u VALUES (41, 'x'); DELETE FROM u;",
    );
    assert_round_trip(&src, dir.path());
}

/// Columns named like the rowid are the user's: the rowid goes in under a name no column
/// shadows, and when every name is shadowed the column `rowid` is renamed for the load.
#[test]
fn columns_named_like_the_rowid_keep_their_values() {
    let (dir, src) = made_by(
        "CREATE TABLE one(rowid TEXT, v);
         CREATE TABLE every(oid INT, _rowid_ TEXT, \"ROWID\" BLOB, v CHECK (v IS NOT 0));
         CREATE TABLE indexed(oid, _rowid_, rowid);
         CREATE INDEX indexed_oid ON indexed(oid);
         CREATE TABLE keyed(oid, _rowid_, rowid, id INTEGER PRIMARY KEY);
         INSERT INTO one(_rowid_, rowid, v) VALUES (-4, 'mine', 1), (90, 'also', 2);
         INSERT INTO every VALUES (1, 'a', x'00', 5), (2, 'b', x'01', 6);
         INSERT INTO indexed VALUES (7, 8, 9), (10, 11, 12);
         INSERT INTO keyed VALUES (1, 2, 3, -50);
         DELETE FROM every WHERE oid = 1; DELETE FROM indexed WHERE oid = 7;
         INSERT INTO every VALUES (3, 'c', x'02', 7);
         INSERT INTO indexed VALUES (13, 14, 15);",
    );
    assert_round_trip(&src, dir.path());
    assert_eq!(recover_exit(&src, dir.path()), Some(0));
}

/// The committed sample `corrupt-samples/healthy-unusual` comes back exactly, on both copy
/// paths, and `recover` says so with exit 0.
#[test]
fn the_healthy_unusual_sample_comes_back_exactly() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("corrupt-samples/healthy-unusual");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    std::fs::copy(sample.join("db.sqlite3"), &src).unwrap();
    let reports = assert_round_trip(&src, dir.path());
    assert!(reports[0].whole_database_copied);
    assert!(!reports[1].whole_database_copied);
    assert_eq!(recover_exit(&src, dir.path()), Some(0));
}

/// A collation only the application registers: a stand-in of the same name keeps the source's
/// order while the tables are copied or decoded and their indexes built, the report names
/// it, and nothing goes to lost_and_found.
#[test]
fn a_collation_only_the_application_registers_keeps_the_source_order() {
    let (dir, src) = made_by(
        "CREATE TABLE t(a TEXT COLLATE appcoll, b);
         CREATE TABLE w(k TEXT COLLATE appcoll PRIMARY KEY, v) WITHOUT ROWID;
         CREATE TABLE d(k TEXT, v, CHECK (v IS NOT 0));
         CREATE INDEX d_k ON d(k COLLATE appcoll DESC);
         CREATE INDEX t_a ON t(a);
         CREATE VIRTUAL TABLE r USING rtree(id, x0, x1);",
    );
    let conn = Connection::open(&src).unwrap();
    register_app_collation(&conn);
    for i in 0..300 {
        let word = format!("zq-{}{}", (b'a' + (i * 7 % 26) as u8) as char, i * 37 % 101);
        conn.execute("INSERT INTO t VALUES (?1, ?2)", rusqlite::params![word, i])
            .unwrap();
        conn.execute(
            "INSERT OR IGNORE INTO w VALUES (?1, ?2)",
            rusqlite::params![word, i],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO d VALUES (?1, ?2)",
            rusqlite::params![word, i + 1],
        )
        .unwrap();
    }
    drop(conn);
    // Every table decoded, every index built from the rows: in the source's order too (first,
    // so that the order is learned by this run itself).
    let out = dir.path().join("decoded.db");
    let options = Options {
        decode_all: true,
        ..Options::default()
    };
    let report = recover(&src, &out, &options).unwrap();
    assert!(report.tables.iter().all(|t| !t.copied_intact));
    let check = Connection::open(&out).unwrap();
    register_app_collation(&check);
    let ok: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "indexes in the application's order");
    drop(check);
    assert_eq!(contents(&src), contents(&out));
    for r in assert_round_trip(&src, dir.path()) {
        assert_eq!(r.app_collations, vec!["appcoll".to_string()]);
        assert!(r.tables.iter().all(|t| t.refused.is_none()));
    }
    assert_eq!(recover_exit(&src, dir.path()), Some(0));
}

/// Bytes reserved at the end of each page (for a checksum or encryption extension) are kept:
/// the table-by-table output reserves as many.
#[test]
fn reserved_bytes_per_page_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let conn = Connection::open(&src).unwrap();
    // Set before anything reads page 1 (PRAGMA auto_vacuum does): the reserve then holds.
    conn.execute_batch("PRAGMA page_size = 512;").unwrap();
    reserve_bytes(&conn, 8);
    conn.execute_batch("PRAGMA auto_vacuum = FULL;").unwrap();
    conn.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 500)
         INSERT INTO t SELECT x, 'value ' || x FROM n;",
    )
    .unwrap();
    drop(conn);
    assert_eq!(
        std::fs::read(&src).unwrap()[20],
        8,
        "the source reserves 8 bytes"
    );
    for r in assert_round_trip(&src, dir.path()) {
        assert!(!r.whole_database_copied);
    }
    for out in ["whole.db", "tables.db"] {
        assert_eq!(std::fs::read(dir.path().join(out)).unwrap()[20], 8, "{out}");
    }
}
