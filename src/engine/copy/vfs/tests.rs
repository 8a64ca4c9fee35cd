//! The view reads what the page file reads, and stays sound whatever safe code does with
//! its registration and page file while SQLite still has it attached. These are the tests
//! run under a memory checker (docs/hostile-input.md, "Unsafe code").

use super::*;
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// A 1024-byte-page database of one table `t(a)` holding 1..=500.
fn database(dir: &Path) -> PathBuf {
    let db = dir.join("v.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024; CREATE TABLE t(a);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 500)
         INSERT INTO t SELECT x FROM c;",
    )
    .unwrap();
    db
}

fn count_and_sum(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("SELECT count(*), sum(a) FROM v.t", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

const WHOLE: (i64, i64) = (500, 500 * 501 / 2);

#[test]
fn a_view_reads_what_the_page_file_reads() {
    let dir = tempfile::tempdir().unwrap();
    let pf = PageFile::open(&database(dir.path())).unwrap();
    let reg = Registration::new(&pf).unwrap();
    let out = Connection::open_in_memory().unwrap();
    out.execute("ATTACH ?1 AS v", [reg.uri()]).unwrap();
    assert_eq!(count_and_sum(&out).unwrap(), WHOLE);
    out.execute_batch("DETACH v").unwrap();
    let name = reg.uri();
    drop(reg);
    // Once the registration is gone the name opens nothing.
    assert!(out.execute("ATTACH ?1 AS v", [name]).is_err());
}

#[test]
fn a_registration_dropped_while_attached_leaves_the_view_readable() {
    let dir = tempfile::tempdir().unwrap();
    let pf = PageFile::open(&database(dir.path())).unwrap();
    let reg = Registration::new(&pf).unwrap();
    let out = Connection::open_in_memory().unwrap();
    out.execute("ATTACH ?1 AS v", [reg.uri()]).unwrap();
    // Dropped before the connection detaches: the open file keeps the view alive. The page
    // file goes too, and the pages are still read (through the view's own handle), not
    // from freed memory.
    drop(reg);
    drop(pf);
    assert_eq!(count_and_sum(&out).unwrap(), WHOLE);
    out.execute_batch("DETACH v").unwrap();
}

#[test]
fn a_leaked_registration_outlives_its_page_file_soundly() {
    let dir = tempfile::tempdir().unwrap();
    let pf = PageFile::open(&database(dir.path())).unwrap();
    let reg = Registration::new(&pf).unwrap();
    let uri = reg.uri();
    // `mem::forget` is safe: no destructor of ours may be what soundness rests on.
    std::mem::forget(reg);
    drop(pf);
    let out = Connection::open_in_memory().unwrap();
    out.execute("ATTACH ?1 AS v", [uri]).unwrap();
    assert_eq!(count_and_sum(&out).unwrap(), WHOLE);
}

#[test]
fn rebuilt_and_added_pages_show_on_a_fresh_attach_only() {
    let dir = tempfile::tempdir().unwrap();
    let pf = PageFile::open(&database(dir.path())).unwrap();
    let reg = Registration::new(&pf).unwrap();
    let pages = pf.page_count();
    let added = reg.add_page();
    assert_eq!(added, pages + 1);
    // Page 2 is t's root: an empty leaf in its place empties the table.
    let mut leaf = vec![0u8; 1024];
    leaf[0] = 13;
    leaf[5..7].copy_from_slice(&1024u16.to_be_bytes());
    reg.rebuild(2, leaf);
    let out = Connection::open_in_memory().unwrap();
    out.execute("ATTACH ?1 AS v", [reg.uri()]).unwrap();
    assert_eq!(
        out.query_row("SELECT count(*) FROM v.t", [], |r| r.get::<_, i64>(0))
            .unwrap(),
        0
    );
    reg.forget(2);
    out.execute_batch("DETACH v").unwrap();
    out.execute("ATTACH ?1 AS v", [reg.uri()]).unwrap();
    assert_eq!(count_and_sum(&out).unwrap(), WHOLE);
}

#[test]
fn reads_past_the_end_are_zeros_and_short() {
    let dir = tempfile::tempdir().unwrap();
    let pf = PageFile::open(&database(dir.path())).unwrap();
    let reg = Registration::new(&pf).unwrap();
    let end = u64::from(pf.page_count()) * 1024;
    let mut buf = vec![0xffu8; 2048];
    assert!(!read_view(&reg.view, end - 1024, &mut buf));
    assert!(buf[1024..].iter().all(|&b| b == 0));
    let mut buf = vec![0xffu8; 64];
    assert!(!read_view(&reg.view, u64::MAX - 10, &mut buf));
    assert!(buf.iter().all(|&b| b == 0));
    // Page 1 is presented as a rollback-journal database of the view's size.
    let mut head = vec![0u8; 100];
    assert!(read_view(&reg.view, 0, &mut head));
    assert_eq!(&head[..16], b"SQLite format 3\0");
    assert_eq!((head[18], head[19]), (1, 1));
    assert_eq!(crate::format::be_u32(&head, 28), Some(pf.page_count()));
}
