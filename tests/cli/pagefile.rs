//! Page images as the engine reads them (main file overlaid by committed WAL frames) must be
//! the page images the bundled SQLite reads, checked through the sqlite_dbpage table.

use rusqlite::Connection;
use sqlite_rescue::source::pagefile::PageFile;
use std::path::Path;

/// Builds a WAL database whose newest transactions are only in the -wal, and copies the
/// pair to `dir/copy.db` while the writer is still open.
fn wal_database(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src.db");
    let conn = Connection::open(&src).unwrap();
    conn.execute_batch("PRAGMA page_size=1024;").unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<2000)
         INSERT INTO t SELECT x, printf('%050d', x) FROM c;",
    )
    .unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    for round in 0..5 {
        conn.execute(
            "UPDATE t SET v = ?1 WHERE id % 7 = ?2",
            rusqlite::params![format!("round {round}"), round],
        )
        .unwrap();
    }
    conn.execute("DELETE FROM t WHERE id > 1500", []).unwrap();
    let copy = dir.join("copy.db");
    std::fs::copy(&src, &copy).unwrap();
    std::fs::copy(dir.join("src.db-wal"), dir.join("copy.db-wal")).unwrap();
    drop(conn);
    copy
}

/// Every page, as SQLite reads it, from a private copy (SQLite may write the -shm).
fn sqlite_pages(db: &Path, dir: &Path) -> Vec<(u32, Vec<u8>)> {
    let copy = dir.join("reader.db");
    std::fs::copy(db, &copy).unwrap();
    let wal = sqlite_rescue::source::pagefile::sidecar(db, "-wal");
    if wal.exists() {
        std::fs::copy(&wal, dir.join("reader.db-wal")).unwrap();
    }
    let conn = Connection::open(&copy).unwrap();
    let mut stmt = conn
        .prepare("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

fn assert_same_pages(db: &Path, dir: &Path) {
    let expected = sqlite_pages(db, dir);
    let pf = PageFile::open(db).unwrap();
    assert_eq!(pf.page_count() as usize, expected.len(), "page count");
    let mut buf = Vec::new();
    for (pgno, data) in expected {
        pf.read(pgno, &mut buf).unwrap();
        assert!(buf == data, "page {pgno} differs from what SQLite reads");
    }
}

#[test]
fn wal_overlay_matches_sqlite_dbpage() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_database(dir.path());
    let pf = PageFile::open(&db).unwrap();
    let wal = pf.wal().unwrap();
    assert_eq!(wal.commits, 6);
    assert!(wal.pages > 0 && !wal.tail_is_torn());
    assert_same_pages(&db, dir.path());
}

#[test]
fn torn_wal_tail_is_ignored_like_sqlite_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_database(dir.path());
    let wal_path = sqlite_rescue::source::pagefile::sidecar(&db, "-wal");
    let len = std::fs::metadata(&wal_path).unwrap().len();
    // Cut the last frame in half: the last transaction is incomplete.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&wal_path)
        .unwrap();
    f.set_len(len - 500).unwrap();
    let pf = PageFile::open(&db).unwrap();
    let wal = pf.wal().unwrap();
    assert_eq!(wal.commits, 5, "the cut transaction does not count");
    assert!(wal.tail_is_torn());
    assert_same_pages(&db, dir.path());
}

#[test]
fn frame_with_a_bad_checksum_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_database(dir.path());
    let wal_path = sqlite_rescue::source::pagefile::sidecar(&db, "-wal");
    let mut bytes = std::fs::read(&wal_path).unwrap();
    // Flip a byte in the page data of the 3rd frame (1024-byte pages, 24-byte frame headers).
    let at = 32 + 2 * (24 + 1024) + 24 + 100;
    bytes[at] ^= 0xff;
    std::fs::write(&wal_path, &bytes).unwrap();
    let pf = PageFile::open(&db).unwrap();
    assert!(pf.wal().unwrap().valid_frames < 3);
    assert_same_pages(&db, dir.path());
}
