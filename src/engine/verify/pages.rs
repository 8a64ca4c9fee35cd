//! The fast proof's scans read from the output's pages: each tree walked from its root, its
//! leaves read in runs of neighbouring pages, each record decoded here. The same digests as
//! the scans through SQL ([`super::fast`]), at a fraction of the CPU: no statement, no value
//! handed over one call at a time.
//!
//! This is only a quicker way to the same digests. A tree or record it does not expect (a
//! page of the wrong kind, a record with fewer fields than the table has columns, a broken
//! overflow chain) stops it with [`Unreadable`], and the scan runs through SQL instead. A
//! digest from pages that differs from its other side is worked out again through SQL before
//! anything is reported, so this path can cost time but never raise a finding of its own.
//! The structure of every tree is still `quick_check`'s to prove.

use super::entry::encode;
use super::plan::{IndexPlan, PagePlan, Source};
use super::reader::{Pages, Read, Unreadable};
use crate::format::cell::{self, Cell, Payload};
use crate::format::record::{self, Field, Value};
use rusqlite::types::ValueRef;
use std::path::Path;

/// Trees deeper than this are not b-trees SQLite wrote.
const MAX_DEPTH: u32 = 40;

/// Pages read at once when leaves are neighbours.
const RUN: usize = 64;

/// Where a tree's entries are, in its order: whole leaves, and (in an index) the entries
/// interior pages hold between their children.
#[derive(Debug, Clone, Copy)]
enum Item {
    Leaf(u32),
    Entry { page: u32, cell: u16 },
}

/// Walks the tree at `root` (an index's when `index`) through its interior pages.
fn items(pages: &Pages, root: u32, index: bool) -> Read<Vec<Item>> {
    let mut items = Vec::new();
    let mut visited = 0u32;
    descend(pages, root, index, 0, &mut visited, &mut items)?;
    Ok(items)
}

fn descend(
    pages: &Pages,
    pgno: u32,
    index: bool,
    depth: u32,
    visited: &mut u32,
    items: &mut Vec<Item>,
) -> Read<()> {
    *visited += 1;
    if depth > MAX_DEPTH || *visited > pages.page_count {
        return Err(Unreadable);
    }
    let mut data = Vec::new();
    pages.read(pgno, 1, &mut data)?;
    let page = pages.page(pgno, &data)?;
    if page.kind.is_table() == index {
        return Err(Unreadable);
    }
    if page.kind.is_leaf() {
        items.push(Item::Leaf(pgno));
        return Ok(());
    }
    for (i, cell) in cell::cells(&page) {
        let (Cell::TableInterior {
            left_child: child, ..
        }
        | Cell::IndexInterior {
            left_child: child, ..
        }) = cell.map_err(|_| Unreadable)?
        else {
            return Err(Unreadable);
        };
        descend(pages, child, index, depth + 1, visited, items)?;
        if index {
            items.push(Item::Entry {
                page: pgno,
                cell: i,
            });
        }
    }
    let right = page.right_child.ok_or(Unreadable)?;
    descend(pages, right, index, depth + 1, visited, items)
}

/// Calls `each(rowid, payload)` for every entry of the tree at `root`, in order (the rowid
/// is `None` in an index).
fn for_each_entry(
    pages: &Pages,
    root: u32,
    index: bool,
    mut each: impl FnMut(Option<i64>, &Payload<'_>, &mut Vec<u8>) -> Read<()>,
) -> Read<()> {
    let items = items(pages, root, index)?;
    let (mut run, mut single, mut spill) = (Vec::new(), Vec::new(), Vec::new());
    let mut k = 0;
    while k < items.len() {
        match items[k] {
            Item::Entry { page, cell } => {
                pages.read(page, 1, &mut single)?;
                let p = pages.page(page, &single)?;
                let offset = p.cell_offset(cell).ok_or(Unreadable)?;
                match cell::parse(&p, offset).map_err(|_| Unreadable)? {
                    Cell::IndexInterior { payload, .. } => each(None, &payload, &mut spill)?,
                    _ => return Err(Unreadable),
                }
                k += 1;
            }
            Item::Leaf(first) => {
                // Neighbouring leaves, as a freshly written file lays them out, in one read.
                let mut n = 1;
                while n < RUN
                    && matches!(items.get(k + n), Some(Item::Leaf(p)) if u64::from(*p) == u64::from(first) + n as u64)
                {
                    n += 1;
                }
                pages.read(first, n, &mut run)?;
                for (j, data) in run.chunks(pages.page_size).enumerate() {
                    let pgno = first + u32::try_from(j).map_err(|_| Unreadable)?;
                    let page = pages.page(pgno, data)?;
                    for (_, c) in cell::cells(&page) {
                        match c.map_err(|_| Unreadable)? {
                            Cell::TableLeaf { rowid, payload } if !index => {
                                each(Some(rowid), &payload, &mut spill)?;
                            }
                            Cell::IndexLeaf { payload } if index => {
                                each(None, &payload, &mut spill)?;
                            }
                            _ => return Err(Unreadable),
                        }
                    }
                }
                k += n;
            }
        }
    }
    Ok(())
}

/// Appends `value` in the canonical encoding, read as SQLite reads a column: an integer in a
/// column of REAL affinity is a real.
fn push(buf: &mut Vec<u8>, value: Value<'_>, real: bool) {
    let value = match value {
        Value::Null => ValueRef::Null,
        // As SQLite's own conversion does: a REAL column reads every integer as a double.
        #[allow(clippy::cast_precision_loss)]
        Value::Integer(i) if real => ValueRef::Real(i as f64),
        Value::Integer(i) => ValueRef::Integer(i),
        Value::Real(r) => ValueRef::Real(r),
        Value::Text(t) => ValueRef::Text(t),
        Value::Blob(b) => ValueRef::Blob(b),
    };
    encode(buf, value);
}

/// The table's rows, each as the values of the table's SQL scan (in the canonical encoding,
/// `spans` saying where each one is): `row(values, spans)` for every row.
pub(super) fn scan_table(
    path: &Path,
    plan: &PagePlan,
    mut row: impl FnMut(&[u8], &[std::ops::Range<usize>]),
) -> Read<()> {
    let pages = Pages::open(path)?;
    let mut fields: Vec<Field> = Vec::new();
    let (mut values, mut spans) = (
        Vec::with_capacity(256),
        Vec::with_capacity(plan.sources.len()),
    );
    for_each_entry(&pages, plan.root, false, |rowid, payload, spill| {
        let rowid = rowid.ok_or(Unreadable)?;
        let mut bytes = payload.local;
        let decoded = match record::decode_fields(bytes, &mut fields) {
            Ok(d) if d.first_missing.is_none_or(|(f, _)| f > plan.last_field) => d,
            _ => {
                bytes = pages.whole(payload, spill)?;
                record::decode_fields(bytes, &mut fields).map_err(|_| Unreadable)?
            }
        };
        // A row written before ADD COLUMN is short: its missing values are the column's
        // default, which only SQL knows.
        if decoded.fields != plan.fields {
            return Err(Unreadable);
        }
        values.clear();
        spans.clear();
        for source in &plan.sources {
            let start = values.len();
            match *source {
                Source::Rowid => push(&mut values, Value::Integer(rowid), false),
                Source::Field { field, real } => {
                    let value = fields.get(field).ok_or(Unreadable)?.value(bytes);
                    push(&mut values, value, real);
                }
            }
            spans.push(start..values.len());
        }
        row(&values, &spans);
        Ok(())
    })
}

/// The index's entries in its order, each in the canonical encoding: `entry(values)` for
/// every entry.
pub(super) fn scan_index(
    path: &Path,
    index: &IndexPlan,
    mut entry: impl FnMut(&mut Vec<u8>),
) -> Read<()> {
    let pages = Pages::open(path)?;
    let plan = index.pages.as_ref().ok_or(Unreadable)?;
    let mut fields: Vec<Field> = Vec::new();
    let mut current = Vec::with_capacity(256);
    for_each_entry(&pages, plan.root, true, |_, payload, spill| {
        let bytes = pages.whole(payload, spill)?;
        let decoded = record::decode_fields(bytes, &mut fields).map_err(|_| Unreadable)?;
        if !decoded.complete || decoded.fields != plan.real.len() {
            return Err(Unreadable);
        }
        current.clear();
        for (field, &real) in fields.iter().zip(&plan.real) {
            push(&mut current, field.value(bytes), real);
        }
        entry(&mut current);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::verify::plan::{self, TableCheck};
    use rusqlite::Connection;

    /// Every row (or entry) a SQL statement gives, in the canonical encoding.
    fn through_sql(conn: &Connection, select: &str) -> Vec<Vec<u8>> {
        let mut stmt = conn.prepare(select).unwrap();
        let width = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            let mut values = Vec::new();
            for c in 0..width {
                encode(&mut values, row.get_ref(c).unwrap());
            }
            out.push(values);
        }
        out
    }

    /// Reads every table and index of the database at `path` both ways; returns the tables
    /// whose scans were read from pages, and those whose pages could not serve.
    fn both_ways(path: &Path) -> (Vec<String>, Vec<String>) {
        let conn = Connection::open(path).unwrap();
        let (mut by_pages, mut by_sql) = (Vec::new(), Vec::new());
        for table in plan::plan(&conn).unwrap() {
            let TableCheck::Stream {
                select,
                indexes,
                pages,
            } = &table.check
            else {
                continue;
            };
            let Some(pages) = pages else {
                by_sql.push(table.name.clone());
                continue;
            };
            let mut rows = Vec::new();
            if scan_table(path, pages, |values, _| rows.push(values.to_vec())).is_err() {
                by_sql.push(table.name.clone());
                continue;
            }
            assert_eq!(rows, through_sql(&conn, select), "table {}", table.name);
            for index in indexes {
                let mut entries = Vec::new();
                scan_index(path, index, |e| entries.push(e.clone())).unwrap();
                assert_eq!(
                    entries,
                    through_sql(&conn, &index.select),
                    "index {}",
                    index.name
                );
            }
            by_pages.push(table.name.clone());
        }
        (by_pages, by_sql)
    }

    /// Pages give exactly what SQL gives, value for value and in the same order: every
    /// storage class, integers in REAL columns, long values on overflow pages, entries on
    /// interior index pages, the rowid and its alias.
    #[test]
    fn pages_read_what_sql_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 512;
             CREATE TABLE a(id INTEGER PRIMARY KEY, r REAL, t TEXT COLLATE NOCASE, b BLOB,
                            n NUMERIC, x, UNIQUE(t, r));
             CREATE INDEX a_r ON a(r);
             CREATE INDEX a_tn ON a(t DESC, n);
             CREATE INDEX a_id ON a(id);
             CREATE INDEX a_xb ON a(x, b);
             CREATE TABLE d(k INTEGER PRIMARY KEY DESC, v);
             CREATE INDEX d_v ON d(v);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1500)
             INSERT INTO a(id, r, t, b, n, x)
               SELECT i * 7 - 5000,
                      CASE i % 5 WHEN 0 THEN i WHEN 1 THEN i + 0.5 WHEN 2 THEN NULL
                                 WHEN 3 THEN 1152921504606846976 ELSE -0.0 END,
                      CASE WHEN i % 97 = 0 THEN printf('%.900c', 'w') || i
                           ELSE CASE i % 2 WHEN 0 THEN 'Text ' ELSE 'tEXT ' END || i END,
                      CASE WHEN i % 89 = 0 THEN zeroblob(700) ELSE randomblob(i % 9) END,
                      CASE i % 3 WHEN 0 THEN '12.0' WHEN 1 THEN 'x' || i ELSE i END,
                      CASE i % 4 WHEN 0 THEN i WHEN 1 THEN 'v' WHEN 2 THEN x'00ff' ELSE NULL END
               FROM c;
             INSERT INTO d(k, v) SELECT id, t FROM a;",
        )
        .unwrap();
        drop(conn);
        let (mut by_pages, by_sql) = both_ways(&path);
        by_pages.sort();
        assert_eq!(by_pages, vec!["a".to_string(), "d".to_string()]);
        assert!(by_sql.is_empty());
    }

    /// A row written before ADD COLUMN, and a generated column, are left to SQL.
    #[test]
    fn short_rows_and_generated_columns_go_through_sql() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE m(a, b); INSERT INTO m VALUES (1, 2), (3, 4);
             ALTER TABLE m ADD COLUMN c DEFAULT 7; CREATE INDEX m_c ON m(c);
             CREATE TABLE g(a, b AS (a * 2) STORED); CREATE INDEX g_a ON g(a);
             INSERT INTO g(a) VALUES (1), (2);",
        )
        .unwrap();
        drop(conn);
        let (by_pages, mut by_sql) = both_ways(&path);
        by_sql.sort();
        assert!(by_pages.is_empty());
        assert_eq!(by_sql, vec!["g".to_string(), "m".to_string()]);
    }
}
