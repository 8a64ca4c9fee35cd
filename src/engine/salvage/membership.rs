//! Index entries as evidence of which table a row belongs to. An index entry is a copy of the
//! indexed columns and the rowid: a row whose rowid and values an index of table T lists is a
//! row of T, whatever other table has the same shape. Every readable leaf counts, so an index
//! with a damaged page still testifies for the rows its good pages list.

use crate::engine::schema::{SchemaEntry, SchemaKind, Table};
use crate::engine::walk::{read_index, RowRef};
use crate::format::record::{Field, Value};
use crate::source::pagefile::PageFile;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

/// At most this many rows of one orphan group are kept to be looked up: a sample large
/// enough to tell tables apart, bounded whatever the group's size.
pub(crate) const MAX_PRINTS: usize = 50_000;

/// One orphan row as the lookups need it: its rowid and a hash of each field's value.
pub(crate) struct RowPrint {
    rowid: i64,
    fields: Vec<u64>,
}

impl RowPrint {
    /// The print of a complete row with a rowid; `None` for a partial row, an index entry, or
    /// a record whose header does not account for its payload (altered: it testifies to
    /// nothing).
    pub(crate) fn of(row: &RowRef<'_>) -> Option<RowPrint> {
        let rowid = row.rowid.filter(|_| row.complete && row.exact_length)?;
        Some(RowPrint {
            rowid,
            fields: row
                .fields
                .iter()
                .map(|f| value_hash(f.value(row.payload)))
                .collect(),
        })
    }
}

/// What can testify for an orphan group's rows: the indexes of the tables it may belong to.
pub(crate) struct Witnesses<'a> {
    pub pf: &'a PageFile,
    pub entries: &'a [SchemaEntry],
}

impl Witnesses<'_> {
    /// Among look-alike tables, the one whose indexes list the group's rows while no other's
    /// list any, with the evidence in words. `None` when no index separates them.
    pub(crate) fn separate(
        &self,
        prints: &[RowPrint],
        rowids: (Option<i64>, Option<i64>),
        tables: &[Table],
        ts: &[usize],
    ) -> Option<(usize, String)> {
        let (Some(lo), Some(hi)) = rowids else {
            return None;
        };
        let said = testify(self.pf, self.entries, tables, ts, prints, (lo, hi));
        let listing: Vec<(usize, &Testimony)> = ts
            .iter()
            .zip(&said)
            .filter_map(|(&t, s)| s.as_ref().filter(|s| s.rows > 0).map(|s| (t, s)))
            .collect();
        let [(t, s)] = listing.as_slice() else {
            return None;
        };
        // Most of the rows must be listed: a few chance matches prove nothing.
        if s.rows * 2 < prints.len() as u64 {
            return None;
        }
        let others: Vec<&str> = ts
            .iter()
            .filter(|o| *o != t)
            .map(|&o| tables[o].name.as_str())
            .collect();
        let others = others.join(", ");
        Some((
            *t,
            format!(
                "index {} of {} lists {} of the {} rows looked up; no index of {others} lists any",
                s.index,
                tables[*t].name,
                s.rows,
                prints.len()
            ),
        ))
    }
}

impl Witnesses<'_> {
    /// Among look-alike tables, the one whose root the pointer map leads to from `top`: an
    /// auto-vacuum database records each page's parent, even where the parent page itself is
    /// lost. `None` without a pointer map, or where its entries lead to no candidate's root.
    pub(crate) fn pointer_map_root(
        &self,
        top: u32,
        tables: &[Table],
        ts: &[usize],
    ) -> Option<(usize, String)> {
        let root = pointer_map_root(self.pf, top)?;
        let t = ts.iter().copied().find(|&t| tables[t].root == root)?;
        Some((
            t,
            format!(
                "the pointer map leads from page {top} up to page {root}, the root of {}",
                tables[t].name
            ),
        ))
    }
}

/// The root page the pointer map leads to from `page`, following each page's parent.
fn pointer_map_root(pf: &PageFile, mut page: u32) -> Option<u32> {
    use crate::format::ptrmap::{self, PtrmapType};
    // Deeper than any b-tree SQLite builds: a longer chain is a cycle.
    const MAX_DEPTH: usize = 64;
    let header = crate::engine::run::header_as_read(pf)?;
    if header.largest_root_page == 0 {
        return None;
    }
    let mut buf = Vec::new();
    for _ in 0..MAX_DEPTH {
        let (map, index) = ptrmap::locate(page, pf.usable())?;
        pf.read(map, &mut buf)?;
        match ptrmap::entry(&buf, index)? {
            (PtrmapType::RootPage, _) => return Some(page),
            (PtrmapType::Btree, parent) if parent != 0 && parent != page => page = parent,
            _ => return None,
        }
    }
    None
}

/// Where an index key column's value is in a table's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySource {
    Field(usize),
    Rowid,
}

/// How many of the rows each index of a table lists: the strongest index's count, and its
/// name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Testimony {
    pub index: String,
    pub rows: u64,
}

/// For each table in `candidates`, what its indexes say of `rows` (rowids between `lo` and
/// `hi`): the index that lists the most of them, and how many. `None` for a table with no
/// index that can testify (partial, expressions, unreadable root).
pub(crate) fn testify(
    pf: &PageFile,
    entries: &[SchemaEntry],
    tables: &[Table],
    candidates: &[usize],
    rows: &[RowPrint],
    (lo, hi): (i64, i64),
) -> Vec<Option<Testimony>> {
    candidates
        .iter()
        .map(|&t| {
            let table = &tables[t];
            indexes_of(entries, table)
                .into_iter()
                .filter_map(|(name, root, keys)| {
                    let listed = entries_between(pf, root, keys.len(), (lo, hi))?;
                    let rows = rows
                        .iter()
                        .filter(|r| row_key(r, &keys).is_some_and(|k| listed.contains(&k)))
                        .count() as u64;
                    Some(Testimony { index: name, rows })
                })
                .max_by_key(|t| t.rows)
        })
        .collect()
}

/// An in-memory database holding `table`'s definition, for SQLite to describe it and its
/// indexes; `None` when it has none or SQLite refuses it.
pub(crate) fn scratch_with(table: &Table) -> Option<rusqlite::Connection> {
    let scratch = rusqlite::Connection::open_in_memory().ok()?;
    scratch.execute_batch(table.sql.as_deref()?).ok()?;
    Some(scratch)
}

/// The indexes of `table` an entry of which names one row: not partial, every key column a
/// column of the table. Each with its root page and where its key columns are in a record.
pub(crate) fn indexes_of(
    entries: &[SchemaEntry],
    table: &Table,
) -> Vec<(String, u32, Vec<KeySource>)> {
    let Some(scratch) = scratch_with(table) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|e| e.kind == SchemaKind::Index && e.tbl_name == table.name && e.rootpage > 0)
        .filter_map(|e| {
            let root = u32::try_from(e.rootpage).ok()?;
            if let Some(sql) = e.sql.as_deref() {
                scratch.execute_batch(sql).ok()?;
            }
            let keys = key_sources(&scratch, &e.name, table)?;
            Some((e.name.clone(), root, keys))
        })
        .collect()
}

/// Where each key column of index `name` is in `table`'s records, as SQLite reads the
/// index's definition; `None` for a partial index or one over an expression. An automatic
/// index (of a UNIQUE or PRIMARY KEY constraint) is known to the scratch database by name.
fn key_sources(conn: &rusqlite::Connection, name: &str, table: &Table) -> Option<Vec<KeySource>> {
    let partial: bool = conn
        .query_row(
            "SELECT partial FROM pragma_index_list(?1) WHERE name = ?2",
            [&table.name, name],
            |r| r.get(0),
        )
        .ok()?;
    if partial {
        return None;
    }
    let mut stmt = conn
        .prepare("SELECT cid FROM pragma_index_xinfo(?1) WHERE key ORDER BY seqno")
        .ok()?;
    let cids: Vec<i64> = stmt
        .query_map([name], |r| r.get(0))
        .ok()?
        .collect::<rusqlite::Result<_>>()
        .ok()?;
    if cids.is_empty() {
        return None;
    }
    cids.into_iter()
        .map(|cid| {
            let cid = usize::try_from(cid).ok()?; // -2: an expression
            if Some(cid) == table.ipk {
                return Some(KeySource::Rowid);
            }
            table
                .stored
                .iter()
                .position(|&c| c == cid)
                .map(KeySource::Field)
        })
        .collect()
}

/// The keys (key columns and rowid) of every readable entry of the index at `root` whose
/// rowid lies between `lo` and `hi`. Nothing is claimed.
fn entries_between(
    pf: &PageFile,
    root: u32,
    keys: usize,
    (lo, hi): (i64, i64),
) -> Option<HashSet<u64>> {
    let mut out = HashSet::new();
    read_index(pf, root, &mut |row: &RowRef<'_>| {
        if let Some((rowid, values)) = index_entry(row, keys) {
            if (lo..=hi).contains(&rowid) {
                out.insert(combine(values.into_iter().map(value_hash), rowid));
            }
        }
        Ok(())
    })
    .ok()?;
    Some(out)
}

/// An index entry's rowid and key values, when the entry is whole and has `keys` key columns.
pub(crate) fn index_entry<'r>(row: &RowRef<'r>, keys: usize) -> Option<(i64, Vec<Value<'r>>)> {
    if !row.complete || row.fields.len() != keys + 1 {
        return None;
    }
    let Some(Field::Integer(rowid)) = row.fields.last() else {
        return None;
    };
    let values = row.fields[..keys]
        .iter()
        .map(|f| f.value(row.payload))
        .collect();
    Some((*rowid, values))
}

/// The key an index of the row's table would hold for it; `None` when the record is too
/// short to hold a key column (a column added later with a default).
fn row_key(row: &RowPrint, keys: &[KeySource]) -> Option<u64> {
    let values: Option<Vec<u64>> = keys
        .iter()
        .map(|k| match k {
            KeySource::Rowid => Some(value_hash(Value::Integer(row.rowid))),
            KeySource::Field(i) => row.fields.get(*i).copied(),
        })
        .collect();
    Some(combine(values?.into_iter(), row.rowid))
}

/// A hash of one value, equal for equal values: a whole REAL and the same INTEGER hash alike,
/// since a REAL column may store a whole number as an integer in one record and not another.
pub(crate) fn value_hash(v: Value<'_>) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    match v {
        Value::Null => 0u8.hash(&mut h),
        Value::Integer(i) => (1u8, i).hash(&mut h),
        Value::Real(r) => match whole(r) {
            Some(i) => (1u8, i).hash(&mut h),
            None => (2u8, r.to_bits()).hash(&mut h),
        },
        Value::Text(t) => (3u8, t).hash(&mut h),
        Value::Blob(b) => (4u8, b).hash(&mut h),
    }
    h.finish()
}

/// `r` as an integer when it is one exactly.
pub(crate) fn whole(r: f64) -> Option<i64> {
    // 2^63 as f64: every whole f64 below it in magnitude converts exactly.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    // cast: whole and below 2^63 in magnitude (checked first), so exact
    #[allow(clippy::cast_possible_truncation)]
    let exact = (r.fract() == 0.0 && r.abs() < LIMIT).then_some(r as i64);
    exact
}

fn combine(values: impl Iterator<Item = u64>, rowid: i64) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for v in values {
        v.hash(&mut h);
    }
    rowid.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_reals_hash_as_integers_and_others_do_not() {
        assert_eq!(value_hash(Value::Real(3.0)), value_hash(Value::Integer(3)));
        assert_ne!(value_hash(Value::Real(3.5)), value_hash(Value::Integer(3)));
        assert_ne!(value_hash(Value::Text(b"3")), value_hash(Value::Integer(3)));
        assert_ne!(value_hash(Value::Text(b"x")), value_hash(Value::Blob(b"x")));
        assert_eq!(whole(f64::MAX), None);
        assert_eq!(whole(-2.0), Some(-2));
    }

    #[test]
    fn a_row_key_takes_the_rowid_for_an_integer_primary_key() {
        let row = RowPrint {
            rowid: 7,
            fields: vec![value_hash(Value::Null), value_hash(Value::Text(b"ann"))],
        };
        let by_name = row_key(&row, &[KeySource::Field(1)]).unwrap();
        let by_id = row_key(&row, &[KeySource::Rowid]).unwrap();
        assert_ne!(by_name, by_id);
        assert_eq!(
            by_name,
            combine([value_hash(Value::Text(b"ann"))].into_iter(), 7)
        );
        assert!(row_key(&row, &[KeySource::Field(5)]).is_none());
    }
}
