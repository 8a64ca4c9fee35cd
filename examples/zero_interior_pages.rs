//! Damages a copy of a database for the benchmark: zeroes the first N non-root interior
//! pages of a table (or, with `leaf`, N of its leaves spread over the table), found with the
//! dbstat table of the bundled SQLite.
//!
//!     zero_interior_pages DB TABLE N [leaf]

use std::io::{Seek, SeekFrom, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 && !(args.len() == 5 && args[4] == "leaf") {
        eprintln!("usage: zero_interior_pages DB TABLE N [leaf]");
        std::process::exit(2);
    }
    let n: usize = args[3].parse().unwrap_or(1);
    let pages = {
        let conn = rusqlite::Connection::open(&args[1]).expect("open");
        let page_size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size");
        let sql = if args.len() == 5 {
            // Every so many leaves in key order, so the lost rows are spread over the table.
            "SELECT pageno FROM (SELECT pageno, row_number() OVER (ORDER BY path) AS i \
             FROM dbstat WHERE name = ?1 AND pagetype = 'leaf') WHERE i % 5000 = 7 LIMIT ?2"
        } else {
            "SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'internal' \
             AND path != '/' ORDER BY path LIMIT ?2"
        };
        let mut stmt = conn.prepare(sql).expect("dbstat");
        let pages: Vec<i64> = stmt
            .query_map(
                rusqlite::params![args[2], i64::try_from(n).expect("count")],
                |r| r.get(0),
            )
            .expect("query")
            .map(|r| r.expect("row"))
            .collect();
        (page_size, pages)
    };
    let (page_size, pages) = pages;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&args[1])
        .expect("open for writing");
    for p in &pages {
        let offset = u64::try_from((p - 1) * page_size).expect("page offset");
        file.seek(SeekFrom::Start(offset)).expect("seek");
        file.write_all(&vec![0u8; usize::try_from(page_size).expect("page size")])
            .expect("write");
    }
    println!("zeroed pages {pages:?}");
}
