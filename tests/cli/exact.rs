//! Never make a readable database worse: random valid schemas and data, each database healthy,
//! recovered on both copy paths (the whole database by `VACUUM INTO`, and table by table) and
//! compared exactly: every row's rowid or key, every value's storage class and bytes, every
//! schema object's definition, and the header's settings.
//!
//! `PROPTEST_CASES=5000 cargo test --release exact::` runs a long search.

use crate::common;

use proptest::prelude::*;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use sqlite_rescue::engine::{recover, Options, Report};
use std::path::Path;

/// One value as it is stored: storage class and bytes (a REAL by its bits, TEXT by its bytes
/// in the database's encoding).
pub(crate) type Stored = (String, Vec<u8>);

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
            assert!(t.refused.is_none(), "{path}: {} refused", t.name);
            assert!(!t.rows_may_be_missing, "{path}: {} may miss rows", t.name);
            assert!(t.lost.is_empty(), "{path}: {} lost rows", t.name);
        }
        // With the application's own collation, as the application will open it.
        let check = Connection::open(&out).unwrap();
        register_app_collation(&check);
        let ok: String = check
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok", "{path}: integrity_check with the app's collation");
        drop(check);
        let got = contents(&out);
        assert_same(&want, &got, path);
        report
    };
    [run("whole.db", false), run("tables.db", true)]
}

fn assert_same(
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

// ---------------------------------------------------------------- random databases

#[derive(Debug, Clone)]
enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    /// Bytes stored as TEXT as they are, valid in the database's encoding or not.
    RawText(Vec<u8>),
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput::Borrowed;
        Ok(match self {
            Val::Null => Borrowed(ValueRef::Null),
            Val::Int(i) => Borrowed(ValueRef::Integer(*i)),
            Val::Real(r) => Borrowed(ValueRef::Real(*r)),
            Val::Text(t) => Borrowed(ValueRef::Text(t.as_bytes())),
            Val::Blob(b) | Val::RawText(b) => Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// How a table is keyed.
#[derive(Debug, Clone, Copy)]
enum Key {
    /// Implicit rowid.
    Rowid,
    /// `c0 INTEGER PRIMARY KEY [ASC|DESC]` (DESC is not a rowid alias).
    Ipk { desc: bool, autoincrement: bool },
    /// `PRIMARY KEY(c0)`.
    One,
    /// `PRIMARY KEY(c0, c1)`.
    Two,
    /// `PRIMARY KEY(c0, c0)`.
    Repeated,
    /// `PRIMARY KEY(c0 ASC, c0 DESC)`.
    RepeatedOrder,
    /// `PRIMARY KEY(c1 DESC, c0)`.
    Reversed,
}

#[derive(Debug, Clone)]
struct TableSpec {
    names: Vec<String>,
    types: Vec<&'static str>,
    key: Key,
    without_rowid: bool,
    /// Collation of the first key column.
    collate: Option<&'static str>,
    generated: Option<bool>,
    check: bool,
    index: u8,
    view_and_trigger: bool,
    /// Named like one of the tool's own tables.
    tool_name: bool,
    rows: Vec<(i64, Vec<Val>)>,
}

#[derive(Debug, Clone)]
struct Case {
    page_size: u32,
    encoding: &'static str,
    /// 0 rollback journal; 1 everything in the -wal; 2 settings set only in the -wal.
    wal: u8,
    user_version: i32,
    application_id: i32,
    auto_vacuum: u8,
    /// Bytes reserved at the end of each page.
    reserved: u8,
    tables: Vec<TableSpec>,
    fts5: bool,
    rtree: bool,
}

const TYPES: [&str; 12] = [
    "INTEGER",
    "INT",
    "TEXT",
    "BLOB",
    "REAL",
    "NUMERIC",
    "",
    "VARCHAR(10)",
    "FLOAT",
    "BOOLEAN",
    "DATETIME",
    "ANY",
];

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        Just(Val::Null),
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0i64),
            Just(-1i64),
            -300i64..300,
            any::<i64>()
        ]
        .prop_map(Val::Int),
        prop_oneof![
            Just(-0.0f64),
            Just(1e308),
            Just(f64::MIN_POSITIVE),
            any::<f64>().prop_filter("NaN is stored as NULL", |f| !f.is_nan()),
            (-100i32..100).prop_map(|i| f64::from(i) * 0.5),
        ]
        .prop_map(Val::Real),
        prop_oneof![
            Just(String::new()),
            Just("a\0b".to_string()),
            Just("trailing  ".to_string()),
            Just("ÄbC".to_string()),
            Just("abc".to_string()),
            Just("ABC".to_string()),
            Just("12".to_string()),
            Just(" 3.5".to_string()),
            "\\PC{0,12}",
            "[a-cA-C ]{0,4}",
        ]
        .prop_map(Val::Text),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Val::Blob),
        prop_oneof![
            Just(vec![0xff, 0xfe]),
            Just(vec![0x61, 0xc3]),
            Just(vec![0xc0, 0x80]),
            Just(vec![0x00, 0xd8]),
            Just(vec![0xd8, 0x00, 0x41, 0x00]),
            Just(vec![0xed, 0xa0, 0x80, 0x41]),
        ]
        .prop_map(Val::RawText),
    ]
}

fn rowid() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(-1i64),
        Just(0i64),
        1i64..2000,
        any::<i64>(),
    ]
}

fn column_name(i: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(format!("c{i}")),
        1 => Just("rowid".to_string()),
        1 => Just("oid".to_string()),
        1 => Just("_rowid_".to_string()),
        1 => Just(format!("Odd \"name\" {i}")),
    ]
}

fn table_spec() -> impl Strategy<Value = TableSpec> {
    let key = prop_oneof![
        Just(Key::Rowid),
        any::<(bool, bool)>().prop_map(|(desc, autoincrement)| Key::Ipk {
            desc,
            autoincrement: autoincrement && !desc
        }),
        Just(Key::One),
        Just(Key::Two),
        Just(Key::Repeated),
        Just(Key::RepeatedOrder),
        Just(Key::Reversed),
    ];
    (2usize..5)
        .prop_flat_map(move |n| {
            let names: Vec<_> = (0..n).map(column_name).collect();
            (
                names,
                proptest::collection::vec(proptest::sample::select(TYPES.to_vec()), n),
                key.clone(),
                any::<bool>(),
                proptest::option::of(proptest::sample::select(vec!["NOCASE", "RTRIM", "BINARY"])),
                proptest::option::of(any::<bool>()),
                any::<bool>(),
                0u8..5,
                (any::<bool>(), proptest::bool::weighted(0.15)),
                proptest::collection::vec((rowid(), proptest::collection::vec(val(), n)), 0..10),
            )
        })
        .prop_map(
            |(names, types, key, wr, collate, generated, check, index, (vt, tool_name), rows)| {
                let names = dedup(names);
                let mut spec = TableSpec {
                    names,
                    types,
                    without_rowid: wr && !matches!(key, Key::Rowid | Key::Ipk { .. }),
                    key,
                    collate,
                    generated,
                    check,
                    index,
                    view_and_trigger: vt,
                    tool_name,
                    rows,
                };
                if matches!(spec.key, Key::Ipk { .. }) {
                    spec.types[0] = "INTEGER";
                }
                spec
            },
        )
}

/// Column names unique regardless of case.
fn dedup(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, n) in names.into_iter().enumerate() {
        if out.iter().any(|o| o.eq_ignore_ascii_case(&n)) {
            out.push(format!("c{i}"));
        } else {
            out.push(n);
        }
    }
    out
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::sample::select(vec![512u32, 1024, 2048, 4096, 8192, 16384, 32768, 65536]),
        proptest::sample::select(vec!["UTF-8", "UTF-16le", "UTF-16be"]),
        0u8..3,
        any::<i32>(),
        any::<i32>(),
        (0u8..3, proptest::sample::select(vec![0u8, 0, 0, 8, 32])),
        proptest::collection::vec(table_spec(), 1..4),
        proptest::bool::weighted(0.25),
        proptest::bool::weighted(0.25),
    )
        .prop_map(
            |(
                page_size,
                encoding,
                wal,
                user_version,
                application_id,
                (auto_vacuum, reserved),
                tables,
                fts5,
                rtree,
            )| Case {
                page_size,
                encoding,
                wal,
                user_version,
                application_id,
                auto_vacuum,
                reserved,
                tables,
                fts5,
                rtree,
            },
        )
}

/// Names the tool gives its own tables; a user's table may have one too.
const TOOL_NAMES: [&str; 4] = [
    "lost_and_found",
    "rescue_conflicts",
    "rescue_damaged_values",
    "freelist_rows",
];

impl TableSpec {
    fn name(&self, i: usize) -> String {
        match self.tool_name {
            true => TOOL_NAMES[i % TOOL_NAMES.len()].to_string(),
            false => format!("t{i}"),
        }
    }

    fn create(&self, name: &str) -> String {
        let q: Vec<String> = self.names.iter().map(|n| quote(n)).collect();
        let mut cols = Vec::new();
        for (i, (n, t)) in q.iter().zip(&self.types).enumerate() {
            let mut c = format!("{n} {t}");
            if i == 0 {
                if let Key::Ipk {
                    desc,
                    autoincrement,
                } = self.key
                {
                    c.push_str(if desc {
                        " PRIMARY KEY DESC"
                    } else {
                        " PRIMARY KEY"
                    });
                    if autoincrement {
                        c.push_str(" AUTOINCREMENT");
                    }
                }
                if let Some(coll) = self.collate {
                    c.push_str(&format!(" COLLATE {coll}"));
                }
            }
            cols.push(c);
        }
        if let Some(stored) = self.generated {
            let kind = if stored { "STORED" } else { "VIRTUAL" };
            cols.push(format!("gen AS (typeof({}) || 'x') {kind}", q[1]));
        }
        let key = match self.key {
            Key::Rowid | Key::Ipk { .. } => None,
            Key::One => Some(q[0].clone()),
            Key::Two => Some(format!("{}, {}", q[0], q[1])),
            Key::Repeated => Some(format!("{0}, {0}", q[0])),
            Key::RepeatedOrder => Some(format!("{0} ASC, {0} DESC", q[0])),
            Key::Reversed => Some(format!("{} DESC, {}", q[1], q[0])),
        };
        if let Some(k) = key {
            cols.push(format!("PRIMARY KEY({k})"));
        }
        if self.check {
            cols.push(format!("CHECK ({} IS NOT 'forbidden')", q[1]));
        }
        let wr = if self.without_rowid {
            " WITHOUT ROWID"
        } else {
            ""
        };
        format!("CREATE TABLE {}({}){wr};", quote(name), cols.join(", "))
    }

    fn objects(&self, name: &str) -> String {
        let q: Vec<String> = self.names.iter().map(|n| quote(n)).collect();
        let t = quote(name);
        let mut sql = String::new();
        let ix = quote(&format!("{name}_ix"));
        match self.index {
            1 => sql.push_str(&format!(
                "CREATE INDEX {ix} ON {t}({} COLLATE NOCASE DESC);",
                q[1]
            )),
            2 => sql.push_str(&format!(
                "CREATE INDEX {ix} ON {t}({}) WHERE {} IS NOT NULL;",
                q[1], q[0]
            )),
            3 => sql.push_str(&format!(
                "CREATE INDEX {ix} ON {t}(length({}), {});",
                q[1], q[0]
            )),
            4 => sql.push_str(&format!("CREATE INDEX {ix} ON {t}({}, {});", q[1], q[0])),
            _ => {}
        }
        if self.view_and_trigger {
            sql.push_str(&format!(
                "CREATE VIEW {} AS SELECT * FROM {t};
                 CREATE TRIGGER {} AFTER UPDATE ON {t} BEGIN SELECT 1; END;",
                quote(&format!("{name}_v")),
                quote(&format!("{name}_tr")),
            ));
        }
        sql
    }

    fn insert(&self, conn: &Connection, name: &str) {
        let alias = ["rowid", "_rowid_", "oid"]
            .into_iter()
            .find(|a| !self.names.iter().any(|c| c.eq_ignore_ascii_case(a)));
        let mut cols: Vec<String> = self.names.iter().map(|n| quote(n)).collect();
        let with_rowid = !self.without_rowid && alias.is_some();
        if with_rowid {
            cols.insert(0, alias.unwrap_or_default().to_string());
        }
        for (rowid, values) in &self.rows {
            let mut params: Vec<&dyn rusqlite::ToSql> = Vec::new();
            let mut marks = Vec::new();
            if with_rowid {
                params.push(rowid);
                marks.push("?");
            }
            let ipk = Val::Int(*rowid);
            for (i, v) in values.iter().enumerate() {
                if i == 0 && matches!(self.key, Key::Ipk { desc: false, .. }) {
                    params.push(&ipk);
                } else {
                    params.push(v);
                }
                marks.push(match v {
                    Val::RawText(_) => "CAST(? AS TEXT)",
                    _ => "?",
                });
            }
            let sql = format!(
                "INSERT OR IGNORE INTO {}({}) VALUES ({})",
                quote(name),
                cols.join(", "),
                marks.join(", ")
            );
            let mut stmt = conn.prepare_cached(&sql).unwrap();
            // A value the column's type or key cannot take is refused: that row is not part
            // of the source, which is all the test needs.
            let _ = stmt.execute(params.as_slice());
        }
    }
}

fn build(case: &Case, path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    register_app_collation(&conn);
    let settings = format!(
        "PRAGMA user_version = {}; PRAGMA application_id = {};",
        case.user_version, case.application_id
    );
    conn.execute_batch(&format!(
        "PRAGMA page_size = {}; PRAGMA encoding = '{}'; PRAGMA auto_vacuum = {};",
        case.page_size, case.encoding, case.auto_vacuum
    ))
    .unwrap();
    if case.reserved > 0 {
        reserve_bytes(&conn, case.reserved);
    }
    if case.wal != 2 {
        conn.execute_batch(&settings).unwrap();
    }
    if case.wal > 0 {
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
    }
    for (i, t) in case.tables.iter().enumerate() {
        let name = t.name(i);
        conn.execute_batch(&t.create(&name))
            .unwrap_or_else(|e| panic!("{e}: {}", t.create(&name)));
        t.insert(&conn, &name);
        conn.execute_batch(&t.objects(&name)).unwrap();
    }
    if case.fts5 {
        conn.execute_batch(
            "CREATE VIRTUAL TABLE docs USING fts5(title, body);
             INSERT INTO docs VALUES ('one', 'the quick brown fox'), ('two', 'ünïcode text');",
        )
        .unwrap();
    }
    if case.rtree {
        conn.execute_batch(
            "CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1);
             INSERT INTO boxes VALUES (1, 0, 10), (-5, -3.5, 2.25);",
        )
        .unwrap();
    }
    if case.wal == 2 {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        conn.execute_batch(&settings).unwrap();
    }
    conn
}

/// Builds `case` at `dir/src.db`; with a WAL, the files are copied while the connection is
/// open so that the -wal keeps its frames.
fn source(case: &Case, dir: &Path) -> std::path::PathBuf {
    let built = dir.join("built.db");
    let conn = build(case, &built);
    let src = dir.join("src.db");
    std::fs::copy(&built, &src).unwrap();
    if case.wal > 0 {
        std::fs::copy(dir.join("built.db-wal"), dir.join("src.db-wal")).unwrap();
    }
    drop(conn);
    src
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn healthy_databases_come_back_exactly(case in case()) {
        // In memory where there is a tmpfs: each case syncs two outputs to disk.
        let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
        let src = source(&case, dir.path());
        let result = std::panic::catch_unwind(|| assert_round_trip(&src, dir.path()));
        if let (Err(panic), Ok(keep)) = (result, std::env::var("EXACT_KEEP_FAILURE")) {
            // The last case kept is the smallest failing one proptest found.
            let keep = Path::new(&keep);
            let _ = std::fs::remove_dir_all(keep);
            std::fs::create_dir_all(keep).unwrap();
            for f in common::source_files(&src).into_iter().filter(|f| f.exists()) {
                std::fs::copy(&f, keep.join(f.file_name().unwrap())).unwrap();
            }
            std::panic::resume_unwind(panic);
        }
    }
}

// ---------------------------------------------------------------- one regression per fix

/// A database at `src.db` in a new folder, made by `sql`.
fn made_by(sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let conn = Connection::open(&src).unwrap();
    register_app_collation(&conn);
    conn.execute_batch(sql).unwrap();
    (dir, src)
}

/// `recover` through the binary: its exit code.
fn recover_exit(src: &Path, dir: &Path) -> Option<i32> {
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
        let word = format!("{}{}", (b'a' + (i * 7 % 26) as u8) as char, i * 37 % 101);
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
    reserve_bytes(&conn, 8);
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
