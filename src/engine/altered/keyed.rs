//! Altered values in WITHOUT ROWID tables. Their index entries name a row by the primary key
//! they end with, not by a rowid: an entry is the indexed columns followed by the key's
//! columns the index does not already hold (SQLite's `index_xinfo` lists them in that order).
//! A recovered row whose key an entry names, with other values than the entry holds, was
//! altered after it was written. Such rows are counted and described; they are not repaired
//! (the rowid tables' repair rewrites a row by its rowid).

use super::{key_hash, value_json, AlteredColumn, AlteredRow, Findings, Norm};
use super::{owned, MAX_DESCRIBED, MAX_ENTRIES};
use crate::engine::schema::{SchemaEntry, SchemaKind, Table};
use crate::engine::walk::{read_index, RowRef};
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use crate::util::quote::ident;
use rusqlite::types::Value as SqlValue;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Rows an index contradicts: primary key hash → (the key's stored bytes, to order the rows
/// by; the row's values as SQLite reads them).
type Contradicted = BTreeMap<u64, (Vec<u8>, Vec<SqlValue>)>;

/// One index of the table, as its entries lay out the row's columns.
struct Shape {
    name: String,
    root: u32,
    /// The columns of an entry, in order.
    columns: Vec<String>,
    /// Where each of the primary key's columns is in an entry.
    key_at: Vec<usize>,
}

/// The rows of WITHOUT ROWID `table` in the output (`conn`) whose values differ from what an
/// index of the source holds for their primary key.
pub(super) fn altered_keyed_rows(
    conn: &rusqlite::Connection,
    entries: &[SchemaEntry],
    table: &Table,
    sources: &super::Sources<'_>,
) -> Findings {
    let (pf, encoding) = (sources.pf, sources.encoding);
    let mut altered: BTreeMap<Vec<u8>, AlteredRow> = BTreeMap::new();
    let mut total: HashSet<u64> = HashSet::new();
    for shape in shapes(entries, table) {
        let Some(listed) = listed(pf, &shape) else {
            continue;
        };
        let (rows, seen) = disagreeing(conn, table, &shape, &listed);
        // An entry whose key no row holds: that row's key was altered (it came back under
        // another key, which no entry lists), unless the row was lost and counted so.
        let unanswered: HashSet<u64> = if sources.every_row_in_place {
            listed
                .keys()
                .filter(|k| !seen.contains(k))
                .copied()
                .collect()
        } else {
            HashSet::new()
        };
        let want: HashSet<u64> = rows.keys().chain(&unanswered).copied().collect();
        let held = held_values(pf, &shape, &want, encoding);
        for (key, (order, in_row)) in rows {
            total.insert(key);
            if altered.len() >= MAX_DESCRIBED || altered.contains_key(&order) {
                continue;
            }
            let Some(in_index) = held.get(&key) else {
                continue;
            };
            altered.insert(order, describe(&shape, &in_row, in_index));
        }
        for key in unanswered {
            total.insert(key);
            if let Some(in_index) = held.get(&key).filter(|_| altered.len() < MAX_DESCRIBED) {
                let row = unanswered_entry(&shape, in_index);
                let order = serde_json::to_vec(&row.key).unwrap_or_default();
                altered.insert(order, row);
            }
        }
    }
    Findings {
        total: total.len() as u64,
        repaired: 0,
        described: altered.into_values().collect(),
    }
}

/// The plain-column, not partial, secondary indexes of `table`, as SQLite lays out their
/// entries (learned from the table's and index's definitions in a scratch database).
fn shapes(entries: &[SchemaEntry], table: &Table) -> Vec<Shape> {
    let Some(scratch) = crate::engine::salvage::membership::scratch_with(table) else {
        return Vec::new();
    };
    let key: Vec<String> = names(
        &scratch,
        "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
        &table.name,
    );
    entries
        .iter()
        .filter(|e| e.kind == SchemaKind::Index && e.tbl_name == table.name)
        .filter_map(|e| {
            let root = u32::try_from(e.rootpage).ok().filter(|&r| r > 0)?;
            // The primary key's own index is the table's tree.
            if root == table.root {
                return None;
            }
            let sql = e.sql.as_deref()?;
            if scratch.execute_batch(sql).is_err() || partial(&scratch, &table.name, &e.name) {
                return None;
            }
            let plain = "SELECT count(*) = 0 FROM pragma_index_xinfo(?1) WHERE cid < 0";
            let all_plain: bool = scratch.query_row(plain, [&e.name], |r| r.get(0)).ok()?;
            let columns = names(
                &scratch,
                "SELECT name FROM pragma_index_xinfo(?1) ORDER BY seqno",
                &e.name,
            );
            let key_at: Option<Vec<usize>> = key
                .iter()
                .map(|k| columns.iter().position(|c| c.eq_ignore_ascii_case(k)))
                .collect();
            all_plain.then_some(Shape {
                name: e.name.clone(),
                root,
                key_at: key_at.filter(|k| !k.is_empty())?,
                columns,
            })
        })
        .collect()
}

fn names(conn: &rusqlite::Connection, sql: &str, of: &str) -> Vec<String> {
    let Ok(mut stmt) = conn.prepare(sql) else {
        return Vec::new();
    };
    stmt.query_map([of], |r| r.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

fn partial(conn: &rusqlite::Connection, table: &str, index: &str) -> bool {
    conn.query_row(
        "SELECT partial FROM pragma_index_list(?1) WHERE name = ?2",
        [table, index],
        |r| r.get::<_, bool>(0),
    )
    .unwrap_or(true)
}

/// Primary key hash → entry hash, for every readable entry of the index in the source; `None`
/// when it has more entries than are compared.
fn listed(pf: &PageFile, shape: &Shape) -> Option<HashMap<u64, u64>> {
    let mut out = HashMap::new();
    let mut too_many = false;
    let _ = read_index(pf, shape.root, &mut |row: &RowRef<'_>| {
        if let Some((key, entry)) = entry_hashes(row, shape) {
            if out.len() >= MAX_ENTRIES {
                too_many = true;
            } else {
                out.insert(key, entry);
            }
        }
        Ok(())
    });
    (!too_many).then_some(out)
}

/// The hashes of an entry's primary key and of the whole entry; `None` for an entry that is
/// not whole or not of the index's shape.
fn entry_hashes(row: &RowRef<'_>, shape: &Shape) -> Option<(u64, u64)> {
    if !row.complete || row.fields.len() != shape.columns.len() {
        return None;
    }
    let value = |i: usize| Norm::of(row.fields[i].value(row.payload));
    let key = key_hash(shape.key_at.iter().map(|&i| value(i)));
    let entry = key_hash((0..shape.columns.len()).map(value));
    Some((key, entry))
}

/// The rows whose primary key an entry of the index names, with other values; and the keys
/// of the entries some row answers.
fn disagreeing(
    conn: &rusqlite::Connection,
    table: &Table,
    shape: &Shape,
    listed: &HashMap<u64, u64>,
) -> (Contradicted, HashSet<u64>) {
    // Each column twice: as SQLite returns it, and its bytes as stored (text in the
    // database's own encoding, which the entries hold too).
    let cols: Vec<String> = shape
        .columns
        .iter()
        .map(|c| format!("{0}, CAST({0} AS BLOB)", ident(c)))
        .collect();
    let sql = format!("SELECT {} FROM {}", cols.join(", "), ident(&table.name));
    let (mut out, mut seen) = (BTreeMap::new(), HashSet::new());
    let Ok(mut stmt) = conn.prepare(&sql) else {
        return (out, listed.keys().copied().collect());
    };
    let Ok(mut rows) = stmt.query([]) else {
        return (out, listed.keys().copied().collect());
    };
    let n = shape.columns.len();
    while let Ok(Some(r)) = rows.next() {
        let value = |i: usize| Norm::sql(r.get_ref(2 * i).ok(), r.get_ref(2 * i + 1).ok());
        let key = key_hash(shape.key_at.iter().map(|&i| value(i)));
        let Some(expected) = listed.get(&key) else {
            continue;
        };
        seen.insert(key);
        if key_hash((0..n).map(value)) != *expected {
            let mut order = Vec::new();
            for &i in &shape.key_at {
                if let Ok(rusqlite::types::ValueRef::Blob(b)) = r.get_ref(2 * i + 1) {
                    order.extend_from_slice(b);
                }
            }
            let values = (0..n)
                .map(|i| r.get::<_, SqlValue>(2 * i).unwrap_or(SqlValue::Null))
                .collect();
            out.insert(key, (order, values));
        }
    }
    (out, seen)
}

/// What the index holds for each of the wanted primary keys (text as UTF-8; `None` for text
/// not valid in the database's encoding).
fn held_values(
    pf: &PageFile,
    shape: &Shape,
    want: &HashSet<u64>,
    encoding: TextEncoding,
) -> HashMap<u64, Vec<Option<SqlValue>>> {
    let mut out = HashMap::new();
    if want.is_empty() {
        return out;
    }
    let _ = read_index(pf, shape.root, &mut |row: &RowRef<'_>| {
        if let Some((key, _)) = entry_hashes(row, shape).filter(|(k, _)| want.contains(k)) {
            let values = row
                .fields
                .iter()
                .map(|f| owned(f.value(row.payload), encoding));
            out.insert(key, values.collect());
        }
        Ok(())
    });
    out
}

/// An entry whose primary key no row holds, named by that key.
fn unanswered_entry(shape: &Shape, in_index: &[Option<SqlValue>]) -> AlteredRow {
    let key = shape
        .key_at
        .iter()
        .map(|&i| {
            in_index
                .get(i)
                .and_then(Option::as_ref)
                .map_or(serde_json::Value::Null, value_json)
        })
        .collect();
    AlteredRow {
        rowid: None,
        key: Some(key),
        index: shape.name.clone(),
        columns: Vec::new(),
        repaired: false,
        header_inconsistent: false,
        moved_to: None,
        not_repaired: Some(
            "no row holds this primary key, which the index lists: its row came back under an \
             altered key"
                .into(),
        ),
    }
}

/// The row named by its primary key, with the columns where it and the index differ.
fn describe(shape: &Shape, in_row: &[SqlValue], in_index: &[Option<SqlValue>]) -> AlteredRow {
    let row_json: Vec<serde_json::Value> = in_row.iter().map(value_json).collect();
    let index_json: Vec<serde_json::Value> = in_index
        .iter()
        .map(|v| v.as_ref().map_or(serde_json::Value::Null, value_json))
        .collect();
    let key = shape
        .key_at
        .iter()
        .map(|&i| row_json.get(i).cloned().unwrap_or(serde_json::Value::Null))
        .collect();
    let columns = shape
        .columns
        .iter()
        .zip(row_json.iter().zip(&index_json))
        .filter(|(_, (a, b))| a != b)
        .map(|(c, (row_value, index_value))| AlteredColumn {
            column: c.clone(),
            row_value: row_value.clone(),
            index_value: index_value.clone(),
        })
        .collect();
    AlteredRow {
        rowid: None,
        key: Some(key),
        index: shape.name.clone(),
        columns,
        repaired: false,
        header_inconsistent: false,
        moved_to: None,
        not_repaired: Some(
            "a WITHOUT ROWID row is not rewritten from its indexes; compare it with them".into(),
        ),
    }
}
