//! What the surviving indexes of a table with lost rows say: which rowids existed inside
//! its holes, and the values they hold for the rows that are gone.

use super::{IndexedRow, IndexedValues, Inputs, Piece, MAX_LISTED};
use crate::engine::schema::{Affinity, SchemaKind, Table};
use crate::engine::walk::{read_index, RowRef};
use crate::format::record::{Field, Value};
use crate::format::TextEncoding;
use rusqlite::Connection;

/// What the surviving indexes of a table say about the rowids inside some hole.
pub(super) struct IndexEvidence {
    /// Every rowid the first index that reads whole lists inside the holes, sorted.
    pub(super) rowids: Vec<i64>,
    /// The indexes that read whole, and the columns they hold.
    indexes: Vec<String>,
    columns: Vec<String>,
    /// Values by rowid (at most [`MAX_LISTED`] rowids), one slot per column.
    values: std::collections::BTreeMap<i64, Vec<serde_json::Value>>,
    /// No index read whole: these come from one that did not, so `rowids` lists some of the
    /// rows that existed, not all. Its values are still the rows' own.
    pub(super) partial: bool,
}

impl IndexEvidence {
    /// Adds what index `name` holds of the rowids listed: `found` gives, per rowid, the value
    /// at each position of `named`. Columns an index read before already gave are left as
    /// they are; an index that adds no column is not named.
    fn merge(
        &mut self,
        name: &str,
        named: &[IndexColumn],
        found: Vec<(i64, Vec<(usize, serde_json::Value)>)>,
    ) {
        // Entry position -> slot in `columns`, for the columns this index adds.
        let mut slots = Vec::new();
        for c in named {
            if !self.columns.contains(&c.name) {
                self.columns.push(c.name.clone());
                slots.push((c.pos, self.columns.len() - 1));
            }
        }
        if slots.is_empty() {
            return;
        }
        self.indexes.push(name.to_string());
        let width = self.columns.len();
        for row in self.values.values_mut() {
            row.resize(width, serde_json::Value::Null);
        }
        for (rowid, values) in found {
            let Some(row) = self.values.get_mut(&rowid) else {
                continue;
            };
            for (pos, value) in values {
                let slot = slots.iter().find(|(p, _)| *p == pos).map(|(_, s)| *s);
                if let Some(cell) = slot.and_then(|s| row.get_mut(s)) {
                    *cell = value;
                }
            }
        }
    }

    /// What the indexes hold of `lost` (the rowids really missing), or `None` when they hold
    /// no column of the table (an index on an expression alone).
    pub(super) fn values_of(mut self, lost: &[i64]) -> Option<IndexedValues> {
        if self.columns.is_empty() || lost.is_empty() {
            return None;
        }
        let lost: std::collections::BTreeSet<i64> = lost.iter().copied().collect();
        self.values.retain(|r, _| lost.contains(r));
        let rows: Vec<IndexedRow> = self
            .values
            .into_iter()
            .map(|(rowid, values)| IndexedRow { rowid, values })
            .collect();
        Some(IndexedValues {
            indexes: self.indexes,
            columns: self.columns,
            not_listed: (lost.len() - rows.len().min(lost.len())) as u64,
            rows,
        })
    }
}

/// Reads every index of `table` that can be trusted to list one entry per row (not partial,
/// and read whole): the rowids the first one lists inside any of `pieces`, and the values all
/// of them hold for those rowids. `None` when no index of the table reads whole.
pub(super) fn read_indexes(
    inputs: &Inputs<'_>,
    table: &Table,
    pieces: &[Piece],
) -> Option<IndexEvidence> {
    if pieces.is_empty() {
        return None;
    }
    // An index with a damaged page still lists, on its good pages, rows and their values.
    read_some(inputs, table, pieces, false).or_else(|| {
        read_some(inputs, table, pieces, true).map(|mut e| {
            e.partial = true;
            e
        })
    })
}

/// [`read_indexes`] over the indexes that read whole, or with `damaged_too` over every
/// readable index.
fn read_some(
    inputs: &Inputs<'_>,
    table: &Table,
    pieces: &[Piece],
    damaged_too: bool,
) -> Option<IndexEvidence> {
    let wanted = |r: i64| -> bool {
        pieces
            .iter()
            .any(|p| p.first.is_none_or(|a| r >= a) && p.last.is_none_or(|b| r <= b))
    };
    let mut evidence: Option<IndexEvidence> = None;
    for e in inputs.entries.iter().filter(|e| {
        e.kind == SchemaKind::Index
            && e.tbl_name == table.name
            && e.rootpage > 0
            && !e
                .sql
                .as_deref()
                .is_some_and(|s| s.to_ascii_lowercase().contains(" where "))
    }) {
        let Ok(root) = u32::try_from(e.rootpage) else {
            continue;
        };
        let named = index_columns(inputs.conn, &e.name, table);
        let first = evidence.is_none();
        let mut rowids = Vec::new();
        let mut found: Vec<(i64, Vec<(usize, serde_json::Value)>)> = Vec::new();
        let mut odd = 0u64;
        let stats = read_index(inputs.pf, root, &mut |row: &RowRef<'_>| {
            let Some(Field::Integer(r)) = row.fields.last().filter(|_| row.complete) else {
                odd += 1;
                return Ok(());
            };
            if !wanted(*r) {
                return Ok(());
            }
            if first {
                rowids.push(*r);
            }
            // The first index picks the rowids listed; the others fill in their columns.
            let listed = match &evidence {
                Some(ev) => ev.values.contains_key(r),
                None => found.len() < MAX_LISTED,
            };
            if listed {
                let values = named
                    .iter()
                    .filter_map(|c| {
                        let value = match row.fields.get(c.pos)?.value(row.payload) {
                            Value::Integer(i) if c.real => Value::Real(i as f64),
                            v => v,
                        };
                        Some((c.pos, json_value(value, inputs.encoding)))
                    })
                    .collect();
                found.push((*r, values));
            }
            Ok(())
        });
        let Ok(stats) = stats else {
            continue;
        };
        let damaged =
            !stats.holes.is_empty() || stats.bad_cells > 0 || odd > 0 || stats.suspect_rows > 0;
        if damaged && !damaged_too {
            continue;
        }
        evidence
            .get_or_insert_with(|| {
                rowids.sort_unstable();
                rowids.dedup();
                IndexEvidence {
                    rowids: std::mem::take(&mut rowids),
                    indexes: Vec::new(),
                    columns: Vec::new(),
                    values: found.iter().map(|(r, _)| (*r, Vec::new())).collect(),
                    partial: false,
                }
            })
            .merge(&e.name, &named, found);
    }
    evidence
}

/// One key column of an index that is a column of its table.
struct IndexColumn {
    /// Its position in the index entry.
    pos: usize,
    name: String,
    /// REAL affinity: a whole number stored as an integer reads back as a real.
    real: bool,
}

/// The key columns of index `name` that are columns of `table`, from SQLite's own reading of
/// the recovered schema. Expressions and the rowid are left out.
fn index_columns(conn: &Connection, name: &str, table: &Table) -> Vec<IndexColumn> {
    let Ok(mut stmt) =
        conn.prepare("SELECT seqno, cid FROM pragma_index_xinfo(?1) WHERE key ORDER BY seqno")
    else {
        return Vec::new();
    };
    let Ok(rows) = stmt.query_map([name], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
    else {
        return Vec::new();
    };
    rows.filter_map(Result::ok)
        .filter_map(|(seqno, cid)| {
            let column = table.columns.get(usize::try_from(cid).ok()?)?;
            Some(IndexColumn {
                pos: usize::try_from(seqno).ok()?,
                name: column.name.clone(),
                real: column.affinity == Affinity::Real,
            })
        })
        .collect()
}

/// A value from a record as JSON: numbers as numbers, text as a string, a blob as
/// `{"blob": HEX}`.
fn json_value(v: Value<'_>, encoding: TextEncoding) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => i.into(),
        Value::Real(r) => {
            serde_json::Number::from_f64(r).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Text(t) => String::from_utf8_lossy(&encoding.to_utf8(t))
            .into_owned()
            .into(),
        Value::Blob(b) => serde_json::json!({ "blob": hex::encode(b) }),
    }
}
