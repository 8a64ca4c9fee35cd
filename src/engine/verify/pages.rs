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
//! Each tree is read by the structure proof's walk ([`super::structure::walk`]), which checks
//! every page it reads: the records' shape it leaves to the decoding here.

use super::entry::encode;
use super::plan::{IndexPlan, PagePlan, Source};
use super::reader::{Pages, Read, Unreadable};
use super::structure::walk::{self, Records, Walk};
use super::structure::{Doubt, TreeKind, TreeProof};
use crate::format::cell::Payload;
use crate::format::record::{self, Value};
use rusqlite::types::ValueRef;
use std::path::Path;

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

/// The walk of a digest scan: it checks the records it decodes, and proves the tree's
/// structure on the way with `proof`.
fn digest_walk<'a>(
    pages: &'a Pages,
    proof: Option<TreeProof<'a>>,
    root: u32,
    kind: TreeKind,
) -> Walk<'a> {
    Walk {
        pages,
        ledger: proof.map(|p| p.ledger),
        root,
        kind,
        records: Records::ByVisitor,
    }
}

/// The table's rows, each as the values of the table's SQL scan (in the canonical encoding,
/// `spans` saying where each one is): `row(rowid, values, spans)` for every row.
pub(super) fn scan_table(
    path: &Path,
    plan: &PagePlan,
    proof: Option<TreeProof<'_>>,
    mut row: impl FnMut(i64, &[u8], &[std::ops::Range<usize>]),
) -> Read<()> {
    let pages = Pages::open(path)?;
    let walk = digest_walk(&pages, proof, plan.root, TreeKind::Table);
    let rule = proof.and_then(|p| p.rule);
    let mut layout = Vec::new();
    let (mut values, mut spans, mut spill) = (
        Vec::with_capacity(256),
        Vec::with_capacity(plan.sources.len()),
        Vec::new(),
    );
    let each = |rowid: Option<i64>, payload: &Payload<'_>| -> Result<(), Doubt> {
        let rowid = rowid.ok_or(Doubt)?;
        // The record's shape, from its header: the walk leaves it to this scan.
        let mut bytes = payload.local;
        if record::layout(bytes, payload.total, &mut layout).is_none() {
            bytes = pages.whole(payload, &mut spill)?;
            record::layout(bytes, payload.total, &mut layout).ok_or(Doubt)?;
        }
        // A row written before ADD COLUMN is short: its missing values are the column's
        // default, which only SQL knows.
        if layout.len() != plan.fields {
            return Err(Doubt);
        }
        let not_null = rule.map_or(&[][..], |r| &r.not_null);
        if layout
            .iter()
            .zip(not_null)
            .any(|(&(serial, _), &nn)| nn && serial == 0)
        {
            return Err(Doubt);
        }
        // Values past the cell's own bytes are read from its overflow pages.
        let last = layout.get(plan.last_field);
        if last.is_some_and(|&(serial, offset)| record::value_at(bytes, serial, offset).is_none()) {
            bytes = pages.whole(payload, &mut spill)?;
        }
        values.clear();
        spans.clear();
        for source in &plan.sources {
            let start = values.len();
            match *source {
                Source::Rowid => push(&mut values, Value::Integer(rowid), false),
                Source::Field { field, real } => {
                    let &(serial, offset) = layout.get(field).ok_or(Doubt)?;
                    let value = record::value_at(bytes, serial, offset).ok_or(Doubt)?;
                    push(&mut values, value, real);
                }
            }
            spans.push(start..values.len());
        }
        row(rowid, &values, &spans);
        Ok(())
    };
    walk::entries(&walk, each).map_err(|_| Unreadable)
}

/// The index's entries in its order, each in the canonical encoding: `entry(values)` for
/// every entry.
pub(super) fn scan_index(
    path: &Path,
    index: &IndexPlan,
    proof: Option<TreeProof<'_>>,
    mut entry: impl FnMut(&mut Vec<u8>),
) -> Read<()> {
    let pages = Pages::open(path)?;
    let plan = index.pages.as_ref().ok_or(Unreadable)?;
    let walk = digest_walk(&pages, proof, plan.root, TreeKind::Index);
    let (mut current, mut spill) = (Vec::with_capacity(256), Vec::new());
    let each = |_: Option<i64>, payload: &Payload<'_>| -> Result<(), Doubt> {
        let bytes = pages.whole(payload, &mut spill)?;
        current.clear();
        let mut real = plan.real.iter();
        // Whole and exactly as long as the payload: the record's shape, for the walk.
        let fields = record::each_value(bytes, |value| {
            push(&mut current, value, real.next().copied().unwrap_or(false));
        });
        if fields != Some(plan.real.len()) {
            return Err(Doubt);
        }
        entry(&mut current);
        Ok(())
    };
    walk::entries(&walk, each).map_err(|_| Unreadable)
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
            if scan_table(path, pages, None, |_, values, _| rows.push(values.to_vec())).is_err() {
                by_sql.push(table.name.clone());
                continue;
            }
            assert_eq!(rows, through_sql(&conn, select), "table {}", table.name);
            for index in indexes {
                let mut entries = Vec::new();
                scan_index(path, index, None, |e| entries.push(e.clone())).unwrap();
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
