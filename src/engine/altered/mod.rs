//! Altered values: a row whose indexed columns disagree with what the source's indexes hold
//! for its rowid. An index entry is a copy of the indexed columns and the rowid, written in
//! the same transaction as the row; when they disagree, one of them was altered after it was
//! written (a changed serial-type byte shifts every value after it, and the record still
//! decodes). Such a row came back, but not as the application wrote it: it is reported, and
//! the recovery is not called complete.
//!
//! Only tables whose rows were decoded one by one are compared: a table SQLite copied whole
//! brought its indexes along, and the proof of the result already matched every index
//! against its rows.

use crate::engine::salvage::membership::{index_entry, indexes_of, whole, KeySource};
use crate::engine::schema::{SchemaEntry, Table};
use crate::engine::walk::{read_index, RowRef};
use crate::format::record::Value;
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use crate::util::quote::ident;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

/// Index entries read for one comparison, at most: beyond it the index is not compared (its
/// entries would cost more memory than a recovery should take).
const MAX_ENTRIES: usize = 2_000_000;
/// Altered rows described in full, at most, per table.
const MAX_DESCRIBED: usize = 100;

/// One row whose values disagree with an index of its table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlteredRow {
    pub rowid: i64,
    pub index: String,
    /// The columns that disagree: what the row holds, what the index holds.
    pub columns: Vec<AlteredColumn>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlteredColumn {
    pub column: String,
    pub row_value: serde_json::Value,
    pub index_value: serde_json::Value,
}

/// What the indexes of `table` say of the rows now in the output (`conn`): the rows whose
/// indexed values differ from the entry an index holds for their rowid (at most
/// [`MAX_DESCRIBED`] described), and how many such rows there are in all.
pub(crate) fn altered_rows(
    conn: &rusqlite::Connection,
    pf: &PageFile,
    entries: &[SchemaEntry],
    table: &Table,
    encoding: TextEncoding,
) -> (u64, Vec<AlteredRow>) {
    if table.without_rowid || table.internal {
        return (0, Vec::new());
    }
    let mut altered: BTreeMap<i64, String> = BTreeMap::new();
    let mut indexes = Vec::new();
    for (name, root, keys) in indexes_of(entries, table) {
        let Some(listed) = index_keys(pf, root, keys.len()) else {
            continue;
        };
        let names = key_names(table, &keys);
        for rowid in disagreeing(conn, table, &names, &listed) {
            altered.entry(rowid).or_insert_with(|| name.clone());
        }
        indexes.push((name, root, names));
    }
    let total = altered.len() as u64;
    let mut described = Vec::new();
    // One pass over each index for all the rows it is to describe.
    for (name, root, names) in &indexes {
        let rowids: Vec<i64> = altered
            .iter()
            .take(MAX_DESCRIBED)
            .filter(|(_, index)| *index == name)
            .map(|(r, _)| *r)
            .collect();
        if rowids.is_empty() {
            continue;
        }
        let in_index = index_values(pf, *root, names.len(), &rowids, encoding);
        described.extend(rowids.iter().filter_map(|&rowid| {
            let values = in_index.get(&rowid)?.clone();
            describe(conn, table, rowid, name, names, values)
        }));
    }
    described.sort_by_key(|r| r.rowid);
    (total, described)
}

/// What the index at `root` holds for each of `rowids`, as JSON values.
fn index_values(
    pf: &PageFile,
    root: u32,
    keys: usize,
    rowids: &[i64],
    encoding: TextEncoding,
) -> HashMap<i64, Vec<serde_json::Value>> {
    let mut out = HashMap::new();
    walk_index(pf, root, &mut |row: &RowRef<'_>| {
        if let Some((r, values)) = index_entry(row, keys) {
            if rowids.contains(&r) {
                out.insert(r, values.iter().map(|v| json(*v, encoding)).collect());
            }
        }
    });
    out
}

/// The column names of an index's key, in order (`rowid` for the INTEGER PRIMARY KEY).
fn key_names(table: &Table, keys: &[KeySource]) -> Vec<Option<String>> {
    keys.iter()
        .map(|k| match k {
            KeySource::Rowid => None,
            KeySource::Field(i) => table.stored_column(*i).map(|c| c.name.clone()),
        })
        .collect()
}

/// rowid → hash of the key columns, for every readable entry of the index at `root` (read
/// under a private ledger); `None` when the index has more entries than are compared.
fn index_keys(pf: &PageFile, root: u32, keys: usize) -> Option<HashMap<i64, u64>> {
    let mut out = HashMap::new();
    let mut too_many = false;
    walk_index(pf, root, &mut |row: &RowRef<'_>| {
        let Some((rowid, values)) = index_entry(row, keys) else {
            return;
        };
        if out.len() >= MAX_ENTRIES {
            too_many = true;
            return;
        }
        out.insert(rowid, key_hash(values.iter().map(|v| Norm::of(*v))));
    });
    (!too_many).then_some(out)
}

/// Hands every readable entry of the index at `root` to `sink`, claiming nothing.
fn walk_index(pf: &PageFile, root: u32, sink: &mut dyn FnMut(&RowRef<'_>)) {
    let _ = read_index(pf, root, &mut |row| {
        sink(row);
        Ok(())
    });
}

/// The rowids of the rows of `table` in the output whose named columns hash otherwise than
/// `listed` says the index holds for them (rows the index does not list are not judged).
fn disagreeing(
    conn: &rusqlite::Connection,
    table: &Table,
    names: &[Option<String>],
    listed: &HashMap<i64, u64>,
) -> Vec<i64> {
    let sql = select_sql(table, names, false);
    let Ok(mut stmt) = conn.prepare(&sql) else {
        return Vec::new();
    };
    let Ok(mut rows) = stmt.query([]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Ok(Some(r)) = rows.next() {
        let Ok(rowid) = r.get::<_, i64>(0) else {
            continue;
        };
        let Some(expected) = listed.get(&rowid) else {
            continue;
        };
        let values = (0..names.len())
            .map(|i| Norm::sql(r.get_ref(1 + 2 * i).ok(), r.get_ref(2 + 2 * i).ok()));
        if key_hash(values) != *expected {
            out.push(rowid);
        }
    }
    out
}

/// `SELECT rowid, <key columns> FROM table [WHERE rowid = ?1]`, the rowid named by a name no
/// column shadows.
fn select_sql(table: &Table, names: &[Option<String>], one_row: bool) -> String {
    let rowid = ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|n| !table.columns.iter().any(|c| c.name.eq_ignore_ascii_case(n)))
        .unwrap_or("rowid");
    // Each column twice: as SQLite returns it, and its bytes as stored (text in the
    // database's own encoding, which the index entries hold too).
    let cols: Vec<String> = names
        .iter()
        .map(|n| n.as_deref().map_or(rowid.to_string(), ident))
        .map(|c| format!("{c}, CAST({c} AS BLOB)"))
        .collect();
    format!(
        "SELECT {rowid}, {} FROM {}{}",
        cols.join(", "),
        ident(&table.name),
        if one_row {
            format!(" WHERE {rowid} = ?1")
        } else {
            String::new()
        }
    )
}

/// The row's and the index's values for one altered row, the differing columns only.
fn describe(
    conn: &rusqlite::Connection,
    table: &Table,
    rowid: i64,
    index: &str,
    names: &[Option<String>],
    in_index: Vec<serde_json::Value>,
) -> Option<AlteredRow> {
    let sql = select_sql(table, names, true);
    let in_row: Vec<serde_json::Value> = conn
        .query_row(&sql, [rowid], |r| {
            Ok((0..names.len())
                .map(|i| sql_json(r.get_ref(1 + 2 * i).ok()))
                .collect())
        })
        .ok()?;
    let columns = names
        .iter()
        .zip(in_row.into_iter().zip(in_index))
        .filter(|(_, (a, b))| a != b)
        .map(|(n, (row_value, index_value))| AlteredColumn {
            column: n.clone().unwrap_or_else(|| "rowid".to_string()),
            row_value,
            index_value,
        })
        .collect();
    Some(AlteredRow {
        rowid,
        index: index.to_string(),
        columns,
    })
}

/// A value as both sides can be compared: text as UTF-8, a whole REAL as the integer it is.
#[derive(Hash)]
enum Norm {
    Null,
    Integer(i64),
    Real(u64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Norm {
    /// A value of a record: text as its stored bytes.
    fn of(v: Value<'_>) -> Norm {
        match v {
            Value::Null => Norm::Null,
            Value::Integer(i) => Norm::Integer(i),
            Value::Real(r) => Norm::real(r),
            Value::Text(t) => Norm::Text(t.to_vec()),
            Value::Blob(b) => Norm::Blob(b.to_vec()),
        }
    }

    /// A value SQLite returned, with `stored` the same value cast to a blob: for text, its
    /// bytes in the database's encoding, as a record holds them.
    fn sql(
        v: Option<rusqlite::types::ValueRef<'_>>,
        stored: Option<rusqlite::types::ValueRef<'_>>,
    ) -> Norm {
        use rusqlite::types::ValueRef;
        match (v, stored) {
            (None | Some(ValueRef::Null), _) => Norm::Null,
            (Some(ValueRef::Integer(i)), _) => Norm::Integer(i),
            (Some(ValueRef::Real(r)), _) => Norm::real(r),
            (Some(ValueRef::Text(_)), Some(ValueRef::Blob(b))) => Norm::Text(b.to_vec()),
            (Some(ValueRef::Text(t)), _) => Norm::Text(t.to_vec()),
            (Some(ValueRef::Blob(b)), _) => Norm::Blob(b.to_vec()),
        }
    }

    fn real(r: f64) -> Norm {
        match whole(r) {
            Some(i) => Norm::Integer(i),
            None => Norm::Real(r.to_bits()),
        }
    }
}

fn key_hash(values: impl Iterator<Item = Norm>) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for v in values {
        v.hash(&mut h);
    }
    h.finish()
}

fn json(v: Value<'_>, encoding: TextEncoding) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => i.into(),
        Value::Real(r) => r.into(),
        Value::Text(t) => String::from_utf8_lossy(&encoding.to_utf8(t))
            .into_owned()
            .into(),
        Value::Blob(b) => serde_json::json!({ "blob": hex::encode(b) }),
    }
}

fn sql_json(v: Option<rusqlite::types::ValueRef<'_>>) -> serde_json::Value {
    use rusqlite::types::ValueRef;
    match v {
        None | Some(ValueRef::Null) => serde_json::Value::Null,
        Some(ValueRef::Integer(i)) => i.into(),
        Some(ValueRef::Real(r)) => r.into(),
        Some(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned().into(),
        Some(ValueRef::Blob(b)) => serde_json::json!({ "blob": hex::encode(b) }),
    }
}
