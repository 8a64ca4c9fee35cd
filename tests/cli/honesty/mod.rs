//! What a recovery says against what it did, on files built here: a healthy file comes back
//! exact, and damage that lost rows is never reported as a complete recovery, nor fills one
//! table with another's records.

use crate::common::{cmd, query_rows, SourceGuard};
use rusqlite::Connection;
use std::path::Path;

mod header;
mod wal;

/// Runs `recover --json` into a new incident folder beside `db`; returns the exit code, the
/// report and the recovered file's path.
fn recover(db: &Path) -> (i32, serde_json::Value, std::path::PathBuf) {
    let guard = SourceGuard::new(db);
    let incident = db.with_extension("incident");
    let out_db = db.with_extension("recovered.sqlite3");
    let out = cmd()
        .args(["recover", "--json", "--incident-dir"])
        .arg(&incident)
        .arg("--out")
        .arg(&out_db)
        .arg(db)
        .output()
        .unwrap();
    guard.assert_unchanged();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code().unwrap(), report, out_db)
}

/// Recovers `db`, which SQLite reads cleanly: the run is complete and `sql` gives the same
/// rows from the source and from the recovered file.
fn assert_comes_back_exact(db: &Path, sql: &str) {
    let original = query_rows(&Connection::open(db).unwrap(), sql);
    let (code, report, out_db) = recover(db);
    assert_eq!(code, 0, "{}: {}", db.display(), report["outcome"]);
    assert_eq!(
        query_rows(&Connection::open(&out_db).unwrap(), sql),
        original,
        "{}",
        db.display()
    );
}

fn pages_of(path: &Path, name: &str, kind: &str) -> Vec<u32> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = ?2 ORDER BY pageno")
        .unwrap();
    let pages = stmt
        .query_map([name, kind], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<u32>>>()
        .unwrap();
    pages
}

fn zero_pages(path: &Path, page_size: usize, pages: &[u32]) {
    let mut bytes = std::fs::read(path).unwrap();
    for &p in pages {
        let at = (p as usize - 1) * page_size;
        bytes[at..at + page_size].fill(0);
    }
    std::fs::write(path, bytes).unwrap();
}

/// The last overflow page of a value that is data up to it, zeroed: a lost page, not zeros
/// the value held. The row's value is reported damaged and the run is not complete.
#[test]
fn a_zeroed_last_overflow_page_of_data_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("zt.sqlite3");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE b(id INTEGER PRIMARY KEY, data BLOB);
             INSERT INTO b VALUES (1, randomblob(10000));",
        )
        .unwrap();
    let overflow = pages_of(&db, "b", "overflow");
    zero_pages(&db, 4096, &overflow[overflow.len() - 1..]);
    let (code, report, _) = recover(&db);
    assert_eq!(code, 1, "{}", report["outcome"]);
    assert_eq!(report["engine"]["tables"][0]["damaged_rows"], 1);
}

/// A WITHOUT ROWID table that lost an interior page: its orphan leaves come back, an index's
/// orphan entries (whose records fit its first columns) do not become its rows, and the run
/// does not call itself complete, since no rowid range proves the hole filled.
#[test]
fn a_without_rowid_table_that_lost_an_interior_page_is_not_complete() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wr.sqlite3");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "PRAGMA page_size = 512;
             CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB, n INT) WITHOUT ROWID;
             CREATE TABLE ti(x INTEGER PRIMARY KEY, y TEXT);
             CREATE INDEX ti_y ON ti(y);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1500)
             INSERT INTO kv SELECT printf('key%05d', i), randomblob(20), i FROM c;
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1200)
             INSERT INTO ti SELECT i, printf('ti-%05d', i) FROM c;",
        )
        .unwrap();
    let original: Vec<Vec<rusqlite::types::Value>> =
        query_rows(&Connection::open(&db).unwrap(), "SELECT * FROM kv");
    let interior = pages_of(&db, "kv", "internal");
    let mut lost = vec![interior[interior.len() / 2]];
    lost.extend(pages_of(&db, "ti_y", "internal"));
    zero_pages(&db, 512, &lost);

    let (code, report, out_db) = recover(&db);
    assert_eq!(code, 1, "{}", report["outcome"]);
    assert_ne!(report["outcome"], "complete");
    let recovered = query_rows(&Connection::open(&out_db).unwrap(), "SELECT * FROM kv");
    assert!(!recovered.is_empty());
    let foreign: Vec<_> = recovered
        .iter()
        .filter(|row| !original.contains(row))
        .collect();
    assert!(
        foreign.is_empty(),
        "rows kv never had: {:?}",
        &foreign[..3.min(foreign.len())]
    );
}

/// A value whose last overflow page holds only zeros (a zeroblob(), preallocated) is data,
/// not a zeroed page, however few of its bytes precede that page: the healthy file comes back
/// exact, on the whole copy and on the path that decodes rows one by one (taken when the
/// file has a virtual table).
#[test]
fn a_value_ending_in_a_page_of_zeros_comes_back_exact() {
    // With 512-byte pages, s's zeroblob starts one byte before its only overflow page.
    for (virtual_table, page_size) in [(false, 4096), (true, 4096), (false, 512), (true, 512)] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("z.sqlite3");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size = {page_size};
             CREATE TABLE b(id INTEGER PRIMARY KEY, data BLOB, t TEXT);
             INSERT INTO b VALUES (1, zeroblob(10000), 'abc' || CAST(zeroblob(9000) AS TEXT));
             INSERT INTO b VALUES (2, zeroblob(4100), NULL);
             CREATE TABLE s(a TEXT, b BLOB);
             INSERT INTO s VALUES (printf('%.35c', 'x'), zeroblob(460));"
        ))
        .unwrap();
        if virtual_table {
            conn.execute_batch("CREATE VIRTUAL TABLE f USING fts5(x); INSERT INTO f VALUES ('a');")
                .unwrap();
        }
        drop(conn);
        let sql = "SELECT id, typeof(data), length(data), hex(data), typeof(t), hex(t) FROM b
                   UNION ALL SELECT rowid, typeof(b), length(b), hex(b), typeof(a), a FROM s";
        assert_comes_back_exact(&db, sql);
    }
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

fn new_dir(parent: &Path, name: &str) -> std::path::PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A file longer than the database its header states (old pages left past the end, as a
/// VACUUM that shrank a file kept in chunks leaves them): SQLite never reads those pages,
/// and the recovery is exact, with no deleted row brought back.
#[test]
fn pages_past_the_stated_end_are_free_space() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("long.sqlite3");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500)
         INSERT INTO t SELECT i, printf('%0300d', i) FROM c;",
    )
    .unwrap();
    let old = std::fs::read(&db).unwrap();
    conn.execute_batch("DELETE FROM t WHERE a > 5; VACUUM;")
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&db).unwrap();
    let end = bytes.len();
    bytes.extend_from_slice(&old[end..]);
    std::fs::write(&db, &bytes).unwrap();
    let sql = "SELECT type, name FROM sqlite_schema ORDER BY name";
    let schema = query_rows(&Connection::open(&db).unwrap(), sql);

    let (code, report, out_db) = recover(&db);
    assert_eq!(code, 0, "{}", report["outcome"]);
    let out = Connection::open(&out_db).unwrap();
    assert_eq!(query_rows(&out, sql), schema);
    assert_eq!(
        query_rows(&out, "SELECT count(*) FROM t"),
        vec![vec![rusqlite::types::Value::Integer(5)]]
    );
}

/// `sqlite_sequence` comes back as the source has it, on the path that decodes rows (a
/// virtual table is present), however the application left it.
#[test]
fn sqlite_sequence_comes_back_exact_when_rows_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("seq.sqlite3");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
         INSERT INTO a VALUES (10, 1), (20, 2);
         CREATE TABLE b(id INTEGER PRIMARY KEY AUTOINCREMENT, v); INSERT INTO b VALUES (1, 1);
         UPDATE sqlite_sequence SET seq = 3 WHERE name = 'a';
         UPDATE sqlite_sequence SET seq = 0 WHERE name = 'b';
         INSERT INTO sqlite_sequence VALUES ('a', 5);
         CREATE VIRTUAL TABLE f USING fts5(x);",
    )
    .unwrap();
    drop(conn);
    assert_comes_back_exact(
        &db,
        "SELECT rowid, name, seq FROM sqlite_sequence ORDER BY rowid",
    );
}

/// A stored generated column keeps the values the source stored, on the path that decodes
/// rows, even where this SQLite would compute another (here LIKE, case-sensitive while the
/// application wrote the row).
#[test]
fn stored_generated_values_come_back_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gen.sqlite3");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE t(a, h AS (a LIKE 'A%') STORED, g AS (upper(a)) VIRTUAL);
         CREATE INDEX t_h ON t(h);
         CREATE VIRTUAL TABLE f USING fts5(x);
         PRAGMA case_sensitive_like = 1;
         INSERT INTO t(a) VALUES ('abc'), ('Abc');",
    )
    .unwrap();
    // Computed now, 'abc' LIKE 'A%' would be 1: the row holds what was stored, 0.
    let h = query_rows(&conn, "SELECT h FROM t WHERE a = 'abc'");
    assert_eq!(h, vec![vec![rusqlite::types::Value::Integer(0)]]);
    drop(conn);
    assert_comes_back_exact(&db, "SELECT rowid, a, h, g FROM t ORDER BY rowid");
}

/// A row whose record header runs on past the part of the row its leaf keeps (hundreds of
/// columns in small pages) is read whole, not taken for a page that does not belong.
#[test]
fn a_record_header_longer_than_the_leaf_keeps_comes_back() {
    for (page_size, columns) in [(512, 480), (1024, 1500)] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wide.sqlite3");
        let names: Vec<String> = (0..columns).map(|i| format!("c{i}")).collect();
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size = {page_size}; CREATE TABLE w({});
             INSERT INTO w(c{}) VALUES (1);
             INSERT INTO w({}) VALUES ({});",
            names.join(", "),
            columns - 1,
            names.join(", "),
            (0..columns)
                .map(|i| format!("'v{i}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .unwrap();
        drop(conn);
        assert_comes_back_exact(&db, "SELECT * FROM w ORDER BY rowid");
    }
}

/// Built-in virtual tables whose module allows no plain scan (a contentless FTS4 table,
/// fts3tokenize) are recreated and work, and the run is complete.
#[test]
fn virtual_tables_that_allow_no_scan_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fts.sqlite3");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE VIRTUAL TABLE f USING fts4(content='', x);
             INSERT INTO f(docid, x) VALUES (1, 'apple pie'), (2, 'banana');
             CREATE VIRTUAL TABLE tk USING fts3tokenize(simple);
             CREATE TABLE t(a); INSERT INTO t VALUES (1);",
        )
        .unwrap();
    let (code, report, out_db) = recover(&db);
    assert_eq!(
        code, 0,
        "{} {}",
        report["outcome"], report["engine"]["objects"]
    );
    let out = Connection::open(&out_db).unwrap();
    assert_eq!(
        query_rows(&out, "SELECT docid FROM f WHERE f MATCH 'apple'"),
        vec![vec![rusqlite::types::Value::Integer(1)]]
    );
    assert_eq!(
        query_rows(&out, "SELECT token FROM tk WHERE input = 'Hello World'").len(),
        2
    );
}

/// A leaf whose cell count was lowered still holds the cell it no longer lists, in bytes no
/// freeblock or fragment accounts for: the row is carved back, and the run is not complete
/// (SQLite reads one row fewer in the source).
#[test]
fn a_cell_a_lowered_count_hides_is_carved_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cells.sqlite3");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 400)
         INSERT INTO t SELECT i, printf('value %05d', i) FROM c;",
    )
    .unwrap();
    let sql = "SELECT id, v FROM t ORDER BY id";
    let original = query_rows(&conn, sql);
    drop(conn);
    let leaf = pages_of(&db, "t", "leaf")[1];
    let mut bytes = std::fs::read(&db).unwrap();
    let at = (leaf as usize - 1) * 1024 + 3;
    let cells = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
    bytes[at..at + 2].copy_from_slice(&(cells - 1).to_be_bytes());
    std::fs::write(&db, &bytes).unwrap();
    let (code, report, out_db) = recover(&db);
    assert_eq!(code, 1, "{}", report["outcome"]);
    assert_eq!(
        query_rows(&Connection::open(&out_db).unwrap(), sql),
        original
    );
}

/// A WITHOUT ROWID table's index entries name their rows by primary key. A healthy table
/// (a composite key with a descending NOCASE part, a REAL column, both encodings) comes back
/// exact; a value altered in one of its rows is reported altered, the row named by its key.
#[test]
fn a_without_rowid_row_its_index_contradicts_is_reported_altered() {
    let dir = tempfile::tempdir().unwrap();
    for encoding in ["UTF-8", "UTF-16le"] {
        let db = dir.path().join(format!("wr-{encoding}.sqlite3"));
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA encoding = '{encoding}'; PRAGMA page_size = 1024;
             CREATE TABLE w(k TEXT COLLATE NOCASE, n INTEGER, v TEXT, r REAL,
                            PRIMARY KEY (k DESC, n)) WITHOUT ROWID;
             CREATE INDEX wv ON w(v); CREATE INDEX wr ON w(r, k);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 600)
             INSERT INTO w SELECT printf('Key%04d', i / 2), i % 2, printf('value-%05d', i),
                                  i / 4 FROM c;"
        ))
        .unwrap();
        drop(conn);
        let sql = "SELECT k, n, v, r, typeof(r) FROM w ORDER BY k, n";
        assert_comes_back_exact(&db, sql);

        // One row's v, altered in the table's own pages (the index keeps what was written).
        let page_size = 1024;
        let target: Vec<u8> = match encoding {
            "UTF-8" => b"value-00321".to_vec(),
            _ => "value-00321"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect(),
        };
        let mut bytes = std::fs::read(&db).unwrap();
        // A WITHOUT ROWID table is an index b-tree: its interior pages hold rows too.
        let pages = [pages_of(&db, "w", "leaf"), pages_of(&db, "w", "internal")].concat();
        let at = pages
            .into_iter()
            .find_map(|p| {
                let start = (p as usize - 1) * page_size;
                let page = &bytes[start..start + page_size];
                let off = page.windows(target.len()).position(|w| w == target)?;
                Some(start + off + target.len() - if encoding == "UTF-8" { 1 } else { 2 })
            })
            .expect("the value is on a page of the table");
        bytes[at] = b'9';
        let damaged = dir.path().join(format!("wr-{encoding}-altered.sqlite3"));
        std::fs::write(&damaged, &bytes).unwrap();

        let (code, report, _) = recover(&damaged);
        assert_eq!(code, 1, "{encoding}: {}", report["outcome"]);
        let table = &report["engine"]["tables"][0];
        assert_eq!(table["altered_rows"], 1, "{encoding}: {table}");
        let altered = &table["altered"][0];
        assert_eq!(
            altered["key"],
            serde_json::json!(["Key0160", 1]),
            "{encoding}"
        );
        assert_eq!(altered["index"], "wv", "{encoding}");
        assert_eq!(altered["columns"][0]["index_value"], "value-00321");
        assert_eq!(altered["columns"][0]["row_value"], "value-00329");
    }
}

/// Columns named rowid, _rowid_ and oid leave SQL no name for the rowid: the rows cannot be
/// compared with their index entries by rowid, so nothing is called altered (a virtual table
/// makes the run go table by table, where decoded rows are compared).
#[test]
fn a_table_that_shadows_every_rowid_name_is_not_called_altered() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shadowed.sqlite3");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE c(k INTEGER PRIMARY KEY DESC, rowid, _rowid_, oid);
             INSERT INTO c(k, rowid) VALUES (-129, 2), (-9, 1), (77, 3);
             CREATE VIRTUAL TABLE f USING fts4(x);",
        )
        .unwrap();
    assert_comes_back_exact(
        &db,
        "SELECT k, \"rowid\", \"_rowid_\", \"oid\" FROM c ORDER BY k",
    );
}

/// A divider key of an interior page altered out of order with its neighbours: the leaves
/// below it still hold their rows in order, so the divider, not the leaf, is what is wrong,
/// and every row comes back in its table rather than in lost_and_found.
#[test]
fn a_divider_key_out_of_order_does_not_cast_out_its_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("divider.sqlite3");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t(v);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 5000)
         INSERT INTO t SELECT i, printf('value %06d', i) FROM c;",
    )
    .unwrap();
    let sql = "SELECT id, v FROM t ORDER BY id";
    let original = query_rows(&conn, sql);
    drop(conn);
    let interior = *pages_of(&db, "t", "internal").last().unwrap() as usize;
    let mut bytes = std::fs::read(&db).unwrap();
    let page = (interior - 1) * 1024;
    let cells = usize::from(u16::from_be_bytes([bytes[page + 3], bytes[page + 4]]));
    let pointer = page + 12 + 2 * (cells / 2);
    let cell = page + usize::from(u16::from_be_bytes([bytes[pointer], bytes[pointer + 1]]));
    // The key's varint after the child pointer: its last byte's bit 6 flipped.
    let mut at = cell + 4;
    while bytes[at] & 0x80 != 0 {
        at += 1;
    }
    bytes[at] ^= 0x40;
    std::fs::write(&db, &bytes).unwrap();
    let check: String = Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert!(check.contains("out of order"), "{check}");

    let (code, report, out_db) = recover(&db);
    let got = query_rows(&Connection::open(&out_db).unwrap(), sql);
    assert!(
        got == original,
        "{} rows of {} back",
        got.len(),
        original.len()
    );
    assert_eq!(report["lost_and_found_rows"], 0);
    assert_eq!(code, 0, "{}", report["outcome"]);
}

/// A divider of the root lowered, still in order with its neighbours, above a page of
/// dividers of its own: that page's dividers, in order among themselves, bound its leaves,
/// and the rows past the root's altered bound stay in the table.
#[test]
fn a_lowered_root_divider_does_not_cast_out_the_leaves_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("root-divider.sqlite3");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 512; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)
         INSERT INTO t SELECT i, printf('row%06d-%.40c', i, 'x') FROM c;",
    )
    .unwrap();
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 't'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let root = usize::try_from(root).unwrap();
    let sql = "SELECT id, v FROM t ORDER BY id";
    let original = query_rows(&conn, sql);
    drop(conn);
    let mut bytes = std::fs::read(&db).unwrap();
    let page = (root - 1) * 512;
    assert_eq!(bytes[page], 0x05, "the root is an interior page");
    let cell = page + usize::from(u16::from_be_bytes([bytes[page + 12], bytes[page + 13]]));
    let child = u32::from_be_bytes(bytes[cell..cell + 4].try_into().unwrap()) as usize;
    assert_eq!(bytes[(child - 1) * 512], 0x05, "three levels");
    // The first divider's varint: its last byte's highest set bit cleared lowers it.
    let mut at = cell + 4;
    while bytes[at] & 0x80 != 0 {
        at += 1;
    }
    let bit = (0..7).rev().find(|b| bytes[at] >> b & 1 == 1).unwrap();
    bytes[at] ^= 1 << bit;
    std::fs::write(&db, &bytes).unwrap();

    let (code, report, out_db) = recover(&db);
    let got = query_rows(&Connection::open(&out_db).unwrap(), sql);
    assert!(
        got == original,
        "{} rows of {} back",
        got.len(),
        original.len()
    );
    assert_eq!(code, 0, "{}", report["outcome"]);
}

/// A WITHOUT ROWID row whose key was altered comes back under the altered key, which no index
/// entry lists, while the entry for its real key has no row: that entry names the row.
#[test]
fn a_without_rowid_row_under_an_altered_key_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wr-key.sqlite3");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "PRAGMA page_size = 1024;
             CREATE TABLE kv(k TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
             CREATE INDEX kv_n ON kv(n);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300)
             INSERT INTO kv SELECT printf('key%06d', i * 10), 100000000 + i FROM c;",
        )
        .unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    let target = b"key001500";
    let at = [pages_of(&db, "kv", "leaf"), pages_of(&db, "kv", "internal")]
        .concat()
        .into_iter()
        .find_map(|p| {
            let start = (p as usize - 1) * 1024;
            let off = bytes[start..start + 1024]
                .windows(target.len())
                .position(|w| w == target)?;
            Some(start + off + target.len() - 1)
        })
        .expect("the key is on a page of the table");
    bytes[at] = b'5';
    std::fs::write(&db, &bytes).unwrap();

    let (code, report, _) = recover(&db);
    assert_eq!(code, 1, "{}", report["outcome"]);
    let table = &report["engine"]["tables"][0];
    assert!(table["altered_rows"].as_u64().unwrap() >= 1, "{table}");
    let named = table["altered"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["key"] == serde_json::json!(["key001500"]) && a["index"] == "kv_n");
    assert!(named, "{table}");
}
