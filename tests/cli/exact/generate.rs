//! Random healthy databases: schemas and data that mix rowid and WITHOUT ROWID tables,
//! INTEGER PRIMARY KEY ASC/DESC, composite and repeated keys, built-in and application
//! collations, generated columns, CHECK, partial and expression indexes, views, triggers,
//! FTS5, R*Tree, UTF-8 and both UTF-16s, odd text and blobs, extreme rowids, every affinity,
//! page sizes 512..65536, reserved bytes, settings only in the -wal. Each is recovered on both
//! copy paths and compared exactly ([`super::assert_round_trip`]).

use super::{
    assert_round_trip, quote, recover_exit, register_app_collation, register_app_function,
    reserve_bytes,
};
use crate::common;

use proptest::prelude::*;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use std::path::Path;

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
pub(super) struct Case {
    pub(super) page_size: u32,
    encoding: &'static str,
    /// 0 rollback journal; 1 everything in the -wal; 2 settings set only in the -wal.
    pub(super) wal: u8,
    user_version: i32,
    application_id: i32,
    auto_vacuum: u8,
    /// Bytes reserved at the end of each page.
    reserved: u8,
    tables: Vec<TableSpec>,
    fts5: bool,
    rtree: bool,
    /// A child table naming table 0's primary key: bit 0 indexes the key, bit 1 adds values
    /// that are not integers.
    foreign_key: Option<u8>,
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
                0u8..6,
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

pub(super) fn case() -> impl Strategy<Value = Case> {
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
        proptest::option::weighted(0.3, 0u8..4),
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
                foreign_key,
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
                foreign_key,
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
            // A virtual column may call the application's function; a stored one holds
            // what it returned, which no stand-in can know.
            let f = if stored { "appcalc" } else { "appfn" };
            cols.push(format!("gen AS ({f}({}) || 'x') {kind}", q[1]));
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
            let f = if self.index % 2 == 1 {
                "appfn"
            } else {
                "typeof"
            };
            cols.push(format!("CHECK ({f}({}) IS NOT 'forbidden')", q[1]));
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
            // Only the application can compute these entries (a WITHOUT ROWID table's are
            // not copied from the source: see writer::kept_index).
            5 if !self.without_rowid => sql.push_str(&format!(
                "CREATE INDEX {ix} ON {t}(appcalc({}) DESC, {}) WHERE appcalc({}) IS NOT 'Null:0';",
                q[1], q[0], q[0]
            )),
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

pub(super) fn build(case: &Case, path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    register_app_collation(&conn);
    register_app_function(&conn);
    let settings = format!(
        "PRAGMA user_version = {}; PRAGMA application_id = {};",
        case.user_version, case.application_id
    );
    // The reserve first: PRAGMA auto_vacuum reads page 1, which fixes the page's layout.
    conn.execute_batch(&format!("PRAGMA page_size = {};", case.page_size))
        .unwrap();
    if case.reserved > 0 {
        reserve_bytes(&conn, case.reserved);
    }
    conn.execute_batch(&format!(
        "PRAGMA encoding = '{}'; PRAGMA auto_vacuum = {};",
        case.encoding,
        // With the settings only in the -wal, auto_vacuum too is changed after the checkpoint.
        if case.wal == 2 { 0 } else { case.auto_vacuum }
    ))
    .unwrap();
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
    if let Some(kind) = case.foreign_key {
        conn.execute_batch(&child_table(&case.tables[0].name(0), kind))
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
        if case.auto_vacuum > 0 {
            conn.execute_batch(&format!(
                "PRAGMA auto_vacuum = {}; VACUUM;",
                case.auto_vacuum
            ))
            .unwrap();
        }
    }
    conn
}

/// A table whose rows name rows of `parent` by its primary key, some of them missing (as
/// `kind` says: its key indexed, values that are not integers). A parent whose primary key
/// is not one column makes SQLite's check fail, which the report counts as 0.
fn child_table(parent: &str, kind: u8) -> String {
    let mut sql = format!(
        "PRAGMA foreign_keys = OFF;
         CREATE TABLE fk_child(id INTEGER PRIMARY KEY, parent_ref INTEGER REFERENCES {});
         INSERT INTO fk_child(parent_ref) VALUES (1), (2), (3), (NULL), (99), (-1), (2);",
        quote(parent)
    );
    if kind & 1 == 1 {
        sql.push_str("CREATE INDEX fk_child_ref ON fk_child(parent_ref);");
    }
    if kind & 2 == 2 {
        sql.push_str("INSERT INTO fk_child(parent_ref) VALUES ('x'), (2.5), ('3');");
    }
    sql
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

pub(super) fn cases() -> u32 {
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
        if let Err(panic) = result {
            if let Ok(keep) = std::env::var("EXACT_KEEP_FAILURE") {
                // The last case kept is the smallest failing one proptest found.
                let keep = Path::new(&keep);
                let _ = std::fs::remove_dir_all(keep);
                std::fs::create_dir_all(keep).unwrap();
                for f in common::source_files(&src).into_iter().filter(|f| f.exists()) {
                    std::fs::copy(&f, keep.join(f.file_name().unwrap())).unwrap();
                }
            }
            std::panic::resume_unwind(panic);
        }
        // The proof read both outputs from their pages: what SQL reads, digest for digest.
        for out in ["whole.db", "tables.db"] {
            let disagree = sqlite_rescue::engine::pages_disagree_with_sql(&dir.path().join(out));
            prop_assert_eq!(disagree.unwrap(), Vec::<String>::new(), "{}", out);
            let (messages, by_pages) =
                sqlite_rescue::engine::structure_proved_by_pages(&dir.path().join(out)).unwrap();
            prop_assert_eq!(messages, vec!["ok".to_string()], "{}", out);
            // The structure is proved from the pages, without quick_check, but in a file
            // whose text is not UTF-8 (which the fast proof leaves to integrity_check).
            if case.encoding == "UTF-8" {
                prop_assert!(by_pages, "{}: the structure is proved from its pages", out);
            }
        }
        // One case in eight through the binary: `check` calls the healthy file healthy, and
        // `recover` agrees (exit 0).
        if case.user_version.rem_euclid(8) == 0 {
            let guard = common::SourceGuard::new(&src);
            let check = common::cmd().args(["check", "-q"]).arg(&src).output().unwrap();
            guard.assert_unchanged();
            prop_assert_eq!(
                check.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&check.stdout)
            );
            prop_assert_eq!(recover_exit(&src, dir.path()), Some(0));
        }
    }
}
