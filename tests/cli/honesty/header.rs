//! A header field the pages or the schema contradict, and a schema that cannot be read.

use super::*;

/// A header whose page size was zeroed, on a file whose first pages are mostly overflow
/// pages: the size is inferred from the same bytes for every candidate, so the true size
/// wins over one that sees half the pages over more of the file.
#[test]
fn a_zeroed_page_size_is_inferred_over_overflow_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ps.sqlite3");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024;
         CREATE TABLE big(id INTEGER PRIMARY KEY, x BLOB);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 160)
         INSERT INTO big SELECT i, randomblob(3000) FROM c;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000)
         INSERT INTO t SELECT i, printf('row %d', i) FROM c;",
    )
    .unwrap();
    let sql = "SELECT count(*) FROM t";
    let original = query_rows(&conn, sql);
    drop(conn);
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[16..18].fill(0);
    std::fs::write(&db, &bytes).unwrap();
    let (_, report, out_db) = recover(&db);
    assert_eq!(report["engine"]["geometry"]["page_size"], 1024);
    assert_eq!(report["lost_and_found_rows"], 0);
    assert_eq!(
        query_rows(&Connection::open(&out_db).unwrap(), sql),
        original
    );
}

/// The header's reserved-bytes count raised (0 → 8): SQLite finds cells running off every
/// page's usable end. The pages show where their cells end, so every row comes back, and the
/// text says the header was not trusted.
#[test]
fn a_damaged_reserved_bytes_count_is_corrected_from_the_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("reserved.sqlite3");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "PRAGMA page_size = 1024;
             CREATE TABLE a(x INTEGER PRIMARY KEY, y TEXT); CREATE INDEX ay ON a(y);
             CREATE TABLE b(x INTEGER PRIMARY KEY, y TEXT);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1500)
             INSERT INTO a SELECT i, printf('a-%05d', i) FROM c;
             INSERT INTO b SELECT x, replace(y, 'a-', 'b-') FROM a;",
        )
        .unwrap();
    let sql = "SELECT 'a', x, y FROM a UNION ALL SELECT 'b', x, y FROM b";
    let original = query_rows(&Connection::open(&db).unwrap(), sql);
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[20] = 8;
    std::fs::write(&db, &bytes).unwrap();

    let (code, report, out_db) = recover(&db);
    assert_eq!(code, 0, "{}", report["outcome"]);
    assert_eq!(
        query_rows(&Connection::open(&out_db).unwrap(), sql),
        original
    );
    assert_eq!(report["engine"]["geometry"]["reserved_bytes"], 0);
    let inferred = report["engine"]["geometry"]["inferred"].to_string();
    assert!(inferred.contains("reserved bytes"), "{inferred}");
    assert_eq!(report["engine"]["settings_not_kept"], serde_json::json!([]));
}

/// A schema page that cannot be read: the tables it named may be gone without a row to show
/// for it, so the run is never complete, even with nothing in lost_and_found.
#[test]
fn an_unreadable_schema_is_never_a_complete_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("schema.sqlite3");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "PRAGMA page_size = 1024; CREATE TABLE empty(x); CREATE INDEX empty_x ON empty(x);",
        )
        .unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[100..1024].fill(0);
    std::fs::write(&db, &bytes).unwrap();

    let (code, report, _) = recover(&db);
    assert_eq!(report["engine"]["schema_damaged"], true);
    assert_eq!(code, 1, "{}", report["outcome"]);
    assert_ne!(report["outcome"], "complete");
}

/// The header's text encoding changed (UTF-8 ↔ UTF-16le): the schema's own text shows which
/// it is, so every table is found and every value comes back as written.
#[test]
fn a_damaged_text_encoding_is_corrected_from_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    for (encoding, written, stated) in [("UTF-8", 1u8, 2u8), ("UTF-16le", 2, 1)] {
        let db = dir.path().join(format!("{encoding}.sqlite3"));
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA encoding = '{encoding}'; PRAGMA page_size = 1024;
             CREATE TABLE a(x INTEGER PRIMARY KEY, y TEXT); CREATE INDEX ay ON a(y);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 800)
             INSERT INTO a SELECT i, printf('a-%05d-é', i) FROM c;"
        ))
        .unwrap();
        let sql = "SELECT x, y FROM a ORDER BY x";
        let original = query_rows(&conn, sql);
        drop(conn);
        let mut bytes = std::fs::read(&db).unwrap();
        assert_eq!(bytes[59], written);
        bytes[59] = stated;
        std::fs::write(&db, &bytes).unwrap();

        let (code, report, out_db) = recover(&db);
        assert_eq!(code, 0, "{encoding}: {}", report["outcome"]);
        let out = Connection::open(&out_db).unwrap();
        assert_eq!(query_rows(&out, sql), original, "{encoding}");
        let pragma: String = out.query_row("PRAGMA encoding", [], |r| r.get(0)).unwrap();
        assert_eq!(pragma, encoding);
        let inferred = report["engine"]["geometry"]["inferred"].to_string();
        assert!(inferred.contains("text encoding"), "{inferred}");
    }
}
