//! The page view driven as the copy paths drive it, over whatever file it is given: for the
//! `page_view` fuzz target and the tests that replay its inputs.

use super::{read_view, Registration};
use crate::source::pagefile::PageFile;
use rusqlite::Connection;
use std::path::Path;

/// Rows read per table, at most: the inputs are small, and a hang is what is looked for.
const MAX_ROWS: usize = 10_000;
/// Tables read, at most.
const MAX_TABLES: usize = 16;

/// Reads the database at `db` (with a `-wal` or `-journal` beside it, if any) through the
/// page view: raw reads at the offsets and lengths `probes` gives (six bytes each), then the
/// view attached to a fresh connection, its schema and up to 16 ordinary tables read, page 2
/// shown rebuilt and a page added, the view attached afresh, and read again after its
/// registration and page file are dropped while it is still attached. Returns the rows
/// SQLite read. Any error is an answer; a crash, a hang or a read of freed memory is not.
pub fn exercise_view(db: &Path, probes: &[u8]) -> usize {
    let Ok(pf) = PageFile::open(db) else {
        return 0;
    };
    let Some(reg) = Registration::new(&pf) else {
        return 0;
    };
    let page_size = pf.page_size();
    let mut buf = Vec::new();
    for probe in probes.chunks_exact(6) {
        let offset = u64::from(u32::from_be_bytes([probe[0], probe[1], probe[2], probe[3]]));
        let len = usize::from(u16::from_be_bytes([probe[4], probe[5]])) % (2 * page_size + 1);
        buf.clear();
        buf.resize(len, 0xa5);
        let offset = offset * 7 % (u64::from(pf.page_count()) * page_size as u64 + 1024);
        if !read_view(&reg.view, offset, &mut buf) {
            // A read past the end is short, and what it could not fill is zeros.
            assert!(buf.last().is_none_or(|&b| b == 0));
        }
    }
    let Ok(conn) = Connection::open_in_memory() else {
        return 0;
    };
    if conn.execute("ATTACH ?1 AS v", [reg.uri()]).is_err() {
        return 0;
    }
    let mut rows = read_tables(&conn);
    let mut empty_leaf = vec![0u8; page_size];
    empty_leaf[0] = 13;
    reg.rebuild(2, empty_leaf);
    let added = reg.add_page();
    reg.rebuild(added, vec![0; page_size]);
    if conn.execute_batch("DETACH v").is_ok() && conn.execute("ATTACH ?1 AS v", [reg.uri()]).is_ok()
    {
        drop(reg);
        drop(pf);
        rows += read_tables(&conn);
    }
    rows
}

/// Reads every row (up to [`MAX_ROWS`]) of up to [`MAX_TABLES`] ordinary tables of `v`.
fn read_tables(conn: &Connection) -> usize {
    let names: Vec<String> = match conn.prepare(
        "SELECT name FROM v.sqlite_schema WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'",
    ) {
        Ok(mut stmt) => stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map(|rows| rows.flatten().take(MAX_TABLES).collect())
            .unwrap_or_default(),
        Err(_) => return 0,
    };
    let mut read = 0;
    for name in names {
        let sql = format!(
            "SELECT * FROM v.\"{}\" LIMIT {MAX_ROWS}",
            name.replace('"', "\"\"")
        );
        let Ok(mut stmt) = conn.prepare(&sql) else {
            continue;
        };
        let Ok(mut rows) = stmt.query([]) else {
            continue;
        };
        while let Ok(Some(_)) = rows.next() {
            read += 1;
        }
    }
    read
}
