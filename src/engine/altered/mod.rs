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
use crate::engine::walk::{read_index, read_trees, RowRef, TreeKind};
use crate::engine::writer::AlteredRecords;
use crate::format::record::Value;
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use crate::util::quote::ident;
use rusqlite::types::Value as SqlValue;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

mod keyed;
mod moved;
mod repair;
pub(crate) use repair::Sources;

/// Index entries read for one comparison, at most: beyond it the index is not compared (its
/// entries would cost more memory than a recovery should take).
const MAX_ENTRIES: usize = 2_000_000;
/// Altered rows described in full, at most, per table.
const MAX_DESCRIBED: usize = 100;
/// Altered rows repaired, at most, per table (each costs an index value held in memory).
const MAX_REPAIRED: usize = 100_000;

/// One row whose values disagree with an index of its table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlteredRow {
    /// The row's rowid; absent for a WITHOUT ROWID table's row, named by `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rowid: Option<i64>,
    /// A WITHOUT ROWID table's row: its primary key's values, in the key's order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<serde_json::Value>>,
    pub index: String,
    /// The columns that disagree: what the row holds, what the index holds.
    pub columns: Vec<AlteredColumn>,
    /// The row now holds the index's values; its record as read is in the side table of
    /// altered rows.
    pub repaired: bool,
    /// The row's record has a header that does not account for its payload's length: its
    /// serial types were altered (or its payload cut), whatever its indexes say.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub header_inconsistent: bool,
    /// The row is another table's (that table's index lists it for its rowid, and a leaf of
    /// that table was read in place of one of this table's): it was put back there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
    /// Why the row was left as it was read (SQLite refused the index's values, the indexes
    /// disagree with each other, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_repaired: Option<String>,
}

impl AlteredRow {
    /// How the text report names the row: `rowid 12`, or `key ("a", 3)`.
    pub fn named(&self) -> String {
        match (&self.rowid, &self.key) {
            (Some(rowid), _) => format!("rowid {rowid}"),
            (None, Some(key)) => {
                let values: Vec<String> = key.iter().map(ToString::to_string).collect();
                format!("key ({})", values.join(", "))
            }
            (None, None) => "a row".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlteredColumn {
    pub column: String,
    pub row_value: serde_json::Value,
    pub index_value: serde_json::Value,
}

/// What the indexes of one table say of its recovered rows.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Rows whose indexed values differ from an index's entry for their rowid.
    pub total: u64,
    /// Of those, the rows that now hold the index's values.
    pub repaired: u64,
    /// The first of them, described.
    pub described: Vec<AlteredRow>,
}

/// One index of the table, as compared: its name and key columns (`None` for the rowid),
/// the rows it disagrees with, and what it holds for them.
struct Witness {
    name: String,
    names: Vec<Option<String>>,
    held: HashMap<i64, Vec<Option<SqlValue>>>,
    /// Rows whose entry is on a page of the index with signs of damage: its values are not
    /// trusted over the row's.
    doubtful: HashSet<i64>,
}

/// What the indexes of `table` say of the rows now in the output (`conn`): the rows whose
/// values differ from what an index holds for their rowid (or, in a WITHOUT ROWID table,
/// their primary key).
pub(crate) fn altered_rows(
    conn: &rusqlite::Connection,
    entries: &[SchemaEntry],
    tables: &[Table],
    table: &Table,
    sources: &Sources<'_>,
    records: &mut AlteredRecords,
) -> Findings {
    if table.internal {
        Findings::default()
    } else if table.without_rowid {
        keyed::altered_keyed_rows(conn, entries, table, sources)
    } else {
        altered_rowid_rows(conn, entries, tables, table, sources, records)
    }
}

/// What the indexes of `table` say of the rows now in the output (`conn`): the rows whose
/// indexed values differ from the entry an index holds for their rowid. Each such row takes
/// the values its indexes hold, its record as read kept in `records` first.
fn altered_rowid_rows(
    conn: &rusqlite::Connection,
    entries: &[SchemaEntry],
    tables: &[Table],
    table: &Table,
    sources: &Sources<'_>,
    records: &mut AlteredRecords,
) -> Findings {
    let (pf, encoding) = (sources.pf, sources.encoding);
    let mut altered: BTreeMap<i64, usize> = BTreeMap::new();
    let mut witnesses = Vec::new();
    for (name, root, keys) in indexes_of(entries, table) {
        let Some(listed) = index_keys(pf, root, keys.len()) else {
            continue;
        };
        let names = key_names(table, &keys);
        let rows = disagreeing(conn, table, &names, &listed);
        for rowid in &rows {
            altered.entry(*rowid).or_insert(witnesses.len());
        }
        // One pass over the index for all the rows it is to describe and repair.
        let want: HashSet<i64> = rows.into_iter().take(MAX_REPAIRED).collect();
        let (held, doubtful) = if want.is_empty() {
            (HashMap::new(), HashSet::new())
        } else {
            index_values(pf, root, names.len(), &want, encoding)
        };
        witnesses.push(Witness {
            name,
            names,
            held,
            doubtful,
        });
    }
    let inconsistent = inconsistent_records(sources);
    let mut described: Vec<AlteredRow> = altered
        .iter()
        .take(MAX_DESCRIBED)
        .filter_map(|(&rowid, &w)| describe(conn, table, rowid, &witnesses[w]))
        .collect();
    let (mut wanted, mut refused) = wanted(altered.keys().take(MAX_REPAIRED), &witnesses);
    let rows: Vec<i64> = wanted.keys().copied().collect();
    let strays = moved::misplaced(conn, pf, entries, tables, table, &rows);
    let ours = |r: i64, theirs: &[SqlValue]| {
        moved::holds_own(table, &witnesses, altered.get(&r), r, theirs)
    };
    let put = repair::without_triggers(conn, || moved::put_back(conn, table, &strays, &ours))
        .unwrap_or_default();
    let mut moved_to = BTreeMap::new();
    for s in &strays {
        wanted.remove(&s.rowid);
        match put.get(&s.rowid) {
            Some(Ok(home)) => {
                moved_to.insert(s.rowid, home.clone());
            }
            Some(Err(why)) => {
                refused.insert(s.rowid, why.clone());
            }
            None => {
                refused.insert(s.rowid, s.why.clone());
            }
        }
    }
    refused.extend(repair::repair(conn, table, &wanted, sources, records));
    let header_only: Vec<i64> = inconsistent
        .iter()
        .filter(|r| !altered.contains_key(r))
        .copied()
        .collect();
    described.extend(
        header_only
            .iter()
            .take(MAX_DESCRIBED)
            .map(|&rowid| AlteredRow {
                rowid: Some(rowid),
                key: None,
                index: String::new(),
                columns: Vec::new(),
                header_inconsistent: true,
                moved_to: None,
                repaired: false,
                not_repaired: Some(
                    "no index contradicts its values; they may still be wrong".into(),
                ),
            }),
    );
    for row in &mut described {
        let Some(rowid) = row.rowid else {
            continue;
        };
        row.header_inconsistent = inconsistent.contains(&rowid);
        row.moved_to = moved_to.get(&rowid).cloned();
        if !row.columns.is_empty() && row.moved_to.is_none() {
            row.not_repaired = refused.get(&rowid).cloned();
            row.repaired = row.not_repaired.is_none() && wanted.contains_key(&rowid);
        }
    }
    described.sort_by_key(|r| r.rowid);
    described.truncate(MAX_DESCRIBED);
    let repaired = wanted.keys().filter(|r| !refused.contains_key(r)).count() as u64;
    Findings {
        total: (altered.len() + header_only.len()) as u64,
        repaired,
        described,
    }
}

/// The rows on the table's suspect pages whose record header does not account for the
/// payload's length (read whole, so not a payload cut short): damaged evidence, even where
/// no index holds a column to contradict them.
fn inconsistent_records(sources: &Sources<'_>) -> HashSet<i64> {
    let mut out = HashSet::new();
    let pages = sources.suspect_pages.iter().copied();
    let _ = read_trees(sources.pf, pages, TreeKind::Table, &mut |row: &RowRef<
        '_,
    >| {
        if row.complete && !row.exact_length {
            out.extend(row.rowid);
        }
        Ok(())
    });
    out
}

/// Per altered row, the values its indexes hold for the columns they hold; and the rows
/// whose indexes disagree with each other (or hold text that is not valid), with why.
fn wanted<'r>(
    rowids: impl Iterator<Item = &'r i64>,
    witnesses: &[Witness],
) -> (BTreeMap<i64, repair::Wanted>, BTreeMap<i64, String>) {
    let mut wanted = BTreeMap::new();
    let mut refused = BTreeMap::new();
    'rows: for &r in rowids {
        let mut values: repair::Wanted = Vec::new();
        for w in witnesses {
            let Some(held) = w.held.get(&r) else {
                continue;
            };
            if w.doubtful.contains(&r) {
                refused.insert(r, format!("index {}'s entry is on a damaged page", w.name));
                continue 'rows;
            }
            for (name, value) in w.names.iter().zip(held) {
                let Some(name) = name else {
                    continue; // the rowid: the entry was found by it
                };
                let Some(value) = value else {
                    refused.insert(r, format!("index {} holds text that is not valid", w.name));
                    continue 'rows;
                };
                match values.iter().find(|(c, _)| c == name) {
                    Some((_, v)) if v != value => {
                        refused.insert(r, format!("its indexes disagree on {name}"));
                        continue 'rows;
                    }
                    Some(_) => {}
                    None => values.push((name.clone(), value.clone())),
                }
            }
        }
        if !values.is_empty() {
            wanted.insert(r, values);
        }
    }
    (wanted, refused)
}

/// What the index at `root` holds for each of `rowids` (text as UTF-8; `None` for text that
/// is not valid in the database's encoding), and which of them it holds on pages with signs
/// of damage.
fn index_values(
    pf: &PageFile,
    root: u32,
    keys: usize,
    rowids: &HashSet<i64>,
    encoding: TextEncoding,
) -> (HashMap<i64, Vec<Option<SqlValue>>>, HashSet<i64>) {
    let mut out = HashMap::new();
    let mut pages: HashMap<i64, u32> = HashMap::new();
    let stats = read_index(pf, root, &mut |row: &RowRef<'_>| {
        if let Some((r, values)) = index_entry(row, keys) {
            if rowids.contains(&r) {
                out.insert(r, values.iter().map(|v| owned(*v, encoding)).collect());
                pages.insert(r, row.page);
            }
        }
        Ok(())
    });
    let suspect: HashSet<u32> = stats
        .map(|s| s.suspect_pages.into_iter().collect())
        .unwrap_or_default();
    let doubtful = pages
        .into_iter()
        .filter(|(_, p)| suspect.contains(p))
        .map(|(r, _)| r)
        .collect();
    (out, doubtful)
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
    let Some(sql) = select_sql(table, names, false) else {
        return Vec::new();
    };
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
/// column shadows (or the INTEGER PRIMARY KEY); `None` when every name SQL has for it is a
/// column's: such a table's rows cannot be compared by rowid.
fn select_sql(table: &Table, names: &[Option<String>], one_row: bool) -> Option<String> {
    let rowid = crate::engine::writer::rowid_name(table)?;
    // Each column twice: as SQLite returns it, and its bytes as stored (text in the
    // database's own encoding, which the index entries hold too).
    let cols: Vec<String> = names
        .iter()
        .map(|n| n.as_deref().map_or(rowid.clone(), ident))
        .map(|c| format!("{c}, CAST({c} AS BLOB)"))
        .collect();
    Some(format!(
        "SELECT {rowid}, {} FROM {}{}",
        cols.join(", "),
        ident(&table.name),
        if one_row {
            format!(" WHERE {rowid} = ?1")
        } else {
            String::new()
        }
    ))
}

/// The row's and the index's values for one altered row, the differing columns only.
fn describe(
    conn: &rusqlite::Connection,
    table: &Table,
    rowid: i64,
    witness: &Witness,
) -> Option<AlteredRow> {
    let names = &witness.names;
    let in_index: Vec<serde_json::Value> = witness
        .held
        .get(&rowid)?
        .iter()
        .map(|v| v.as_ref().map_or(serde_json::Value::Null, value_json))
        .collect();
    let sql = select_sql(table, names, true)?;
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
        rowid: Some(rowid),
        key: None,
        index: witness.name.clone(),
        columns,
        header_inconsistent: false,
        moved_to: None,
        repaired: false,
        not_repaired: None,
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

/// A value of a record as SQLite takes it; `None` for text not valid in `encoding`.
fn owned(v: Value<'_>, encoding: TextEncoding) -> Option<SqlValue> {
    Some(match v {
        Value::Null => SqlValue::Null,
        Value::Integer(i) => SqlValue::Integer(i),
        Value::Real(r) => SqlValue::Real(r),
        Value::Text(t) => SqlValue::Text(String::from_utf8(encoding.to_utf8(t).into_owned()).ok()?),
        Value::Blob(b) => SqlValue::Blob(b.to_vec()),
    })
}

fn value_json(v: &SqlValue) -> serde_json::Value {
    sql_json(Some(rusqlite::types::ValueRef::from(v)))
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
