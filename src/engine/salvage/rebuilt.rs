//! Tables whose `sqlite_schema` row was destroyed while the rows of their indexes survive.
//! An index's definition names its table and the columns it holds, and each of its entries
//! is a copy of those columns and a rowid. The rows on the file's table leaves whose rowid
//! and values an entry lists are the table's: their records say how many columns it has and
//! where each named column is. The table is given back its name, with those columns named as
//! the index names them (the others by position), so its rows go to it rather than to
//! `lost_and_found`, and its indexes are created again.

use crate::engine::salvage::membership::{index_entry, value_hash};
use crate::engine::schema::{SchemaEntry, SchemaKind};
use crate::engine::walk::{read_index, read_trees, RowRef, TreeKind};
use crate::format::page::PageKind;
use crate::source::pagefile::PageFile;
use crate::util::quote::ident;
use std::collections::HashMap;

/// Index entries held to be matched, at most, per table.
const MAX_ENTRIES: usize = 200_000;
/// Rows matched to an entry, at most: enough to be sure of every column's place.
const MAX_MATCHED: usize = 2_000;
/// Rows that must match before a table is rebuilt: one could agree by chance.
const MIN_MATCHED: usize = 2;

/// A table given back its name from the evidence of its indexes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RebuiltTable {
    pub name: String,
    /// The CREATE TABLE the engine wrote for it.
    pub sql: String,
    /// What placed it, in words.
    pub evidence: String,
}

/// One index of a table with no schema row: its name, root, and key column names.
struct Orphaned<'e> {
    entry: &'e SchemaEntry,
    root: u32,
    columns: Vec<String>,
}

/// Schema rows for the tables that `entries` lack but whose indexes they hold, each with the
/// evidence that rebuilt it. The table's root is unknown (0): its rows come back from the
/// orphan pass.
pub(crate) fn rebuild_tables(
    pf: &PageFile,
    entries: &[SchemaEntry],
) -> (Vec<SchemaEntry>, Vec<RebuiltTable>) {
    let mut by_table: HashMap<String, Vec<Orphaned<'_>>> = HashMap::new();
    for e in entries.iter().filter(|e| e.kind == SchemaKind::Index) {
        let has_table = entries
            .iter()
            .any(|t| t.kind == SchemaKind::Table && t.name.eq_ignore_ascii_case(&e.tbl_name));
        let root = u32::try_from(e.rootpage).unwrap_or(0);
        if has_table || root == 0 {
            continue;
        }
        if let Some(columns) = e.sql.as_deref().and_then(|s| index_columns(s, &e.tbl_name)) {
            let key = e.tbl_name.to_ascii_lowercase();
            by_table.entry(key).or_default().push(Orphaned {
                entry: e,
                root,
                columns,
            });
        }
    }
    let mut names: Vec<&String> = by_table.keys().collect();
    names.sort();
    let mut out = (Vec::new(), Vec::new());
    for name in names {
        if let Some((entry, rebuilt)) = rebuild(pf, &by_table[name]) {
            out.0.push(entry);
            out.1.push(rebuilt);
        }
    }
    out
}

/// The plain columns an index's definition names, in order, as SQLite reads it; `None` for
/// an index over an expression or partial (its entries are not copies of columns).
fn index_columns(sql: &str, table: &str) -> Option<Vec<String>> {
    let scratch = rusqlite::Connection::open_in_memory().ok()?;
    // A stand-in table whose every column the index names exists: SQLite then reads the
    // index's definition as it would on the real table.
    let mut names: Vec<String> = Vec::new();
    for _ in 0..64 {
        let cols: Vec<String> = names.iter().map(|c| ident(c)).collect();
        let create = format!(
            "CREATE TABLE {}(rescue_placeholder{}{})",
            ident(table),
            if cols.is_empty() { "" } else { ", " },
            cols.join(", ")
        );
        scratch
            .execute_batch(&format!("DROP TABLE IF EXISTS {}; {create}", ident(table)))
            .ok()?;
        match scratch.execute_batch(sql) {
            Ok(()) => break,
            Err(e) => {
                let msg = e.to_string();
                // "no such column: kind", with " in <sql> at offset N" in newer SQLite.
                let rest = msg.strip_prefix("no such column: ")?;
                let missing = rest.split(" in ").next().unwrap_or(rest).to_string();
                if names.iter().any(|n| n.eq_ignore_ascii_case(&missing)) {
                    return None;
                }
                names.push(missing);
            }
        }
    }
    let partial: bool = scratch
        .query_row(
            "SELECT partial FROM pragma_index_list(?1) WHERE partial",
            [table],
            |r| r.get(0),
        )
        .unwrap_or(false);
    if partial {
        return None;
    }
    let mut stmt = scratch
        .prepare(
            "SELECT name FROM pragma_index_xinfo((SELECT name FROM pragma_index_list(?1) \
             LIMIT 1)) WHERE key ORDER BY seqno",
        )
        .ok()?;
    let cols: Vec<Option<String>> = stmt
        .query_map([table], |r| r.get(0))
        .ok()?
        .collect::<rusqlite::Result<_>>()
        .ok()?;
    // A NULL name is an expression.
    let cols: Option<Vec<String>> = cols.into_iter().collect();
    cols.filter(|c| !c.is_empty())
}

/// What the table leaves of the file say of the table these indexes belong to.
#[derive(Default)]
struct Shape {
    matched: usize,
    fields: usize,
    /// Per index, per key column: how many matched rows hold its value at each field.
    places: Vec<Vec<HashMap<usize, usize>>>,
    /// Per field: how many matched rows hold NULL there.
    nulls: HashMap<usize, usize>,
}

fn rebuild(pf: &PageFile, indexes: &[Orphaned<'_>]) -> Option<(SchemaEntry, RebuiltTable)> {
    let listed: Vec<HashMap<i64, Vec<u64>>> = indexes
        .iter()
        .map(|ix| entries_of(pf, ix.root, ix.columns.len()))
        .collect();
    let shape = match_rows(pf, &listed);
    if shape.matched < MIN_MATCHED {
        return None;
    }
    let mut names: Vec<Option<String>> = vec![None; shape.fields];
    for (ix, places) in indexes.iter().zip(&shape.places) {
        for (column, counts) in ix.columns.iter().zip(places) {
            // Every matched row must hold the value at the same field.
            let field = counts
                .iter()
                .filter(|(_, n)| **n == shape.matched)
                .map(|(f, _)| *f)
                .min()?;
            match &names[field] {
                Some(n) if !n.eq_ignore_ascii_case(column) => return None,
                _ => names[field] = Some(column.clone()),
            }
        }
    }
    // A field NULL in every record of a rowid table that no index names is its INTEGER
    // PRIMARY KEY: the rowid's alias is stored as NULL.
    let ipk = (0..shape.fields)
        .find(|f| names[*f].is_none() && shape.nulls.get(f) == Some(&shape.matched));
    let taken = |n: &str, names: &[Option<String>]| {
        names.iter().flatten().any(|c| c.eq_ignore_ascii_case(n))
    };
    let columns: Vec<String> = (0..shape.fields)
        .map(|f| match &names[f] {
            Some(n) => ident(n),
            None if Some(f) == ipk && !taken("id", &names) => "id INTEGER PRIMARY KEY".into(),
            None if Some(f) == ipk => format!("c{f} INTEGER PRIMARY KEY"),
            None => format!("c{f}"),
        })
        .collect();
    let first = indexes[0].entry;
    let sql = format!(
        "CREATE TABLE {}({})",
        ident(&first.tbl_name),
        columns.join(", ")
    );
    let index_names: Vec<&str> = indexes.iter().map(|i| i.entry.name.as_str()).collect();
    let evidence = format!(
        "its sqlite_schema row is lost; index {} names it and its column{} {}, and {} rows on \
         the file's table leaves hold the values its entries list for their rowids, each at \
         the same place in a record of {} fields{}",
        index_names.join(", "),
        if names.iter().flatten().count() == 1 {
            ""
        } else {
            "s"
        },
        names
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        shape.matched,
        shape.fields,
        if ipk.is_some() {
            "; the field NULL in every one is taken for its INTEGER PRIMARY KEY"
        } else {
            ""
        }
    );
    let entry = SchemaEntry {
        kind: SchemaKind::Table,
        name: first.tbl_name.clone(),
        tbl_name: first.tbl_name.clone(),
        rootpage: 0,
        sql: Some(sql.clone()),
        from_reference: true,
    };
    let rebuilt = RebuiltTable {
        name: first.tbl_name.clone(),
        sql,
        evidence,
    };
    Some((entry, rebuilt))
}

/// rowid → hash of each key value, for the readable entries of the index at `root`.
fn entries_of(pf: &PageFile, root: u32, keys: usize) -> HashMap<i64, Vec<u64>> {
    let mut out = HashMap::new();
    let _ = read_index(pf, root, &mut |row: &RowRef<'_>| {
        if out.len() < MAX_ENTRIES {
            if let Some((rowid, values)) = index_entry(row, keys) {
                out.insert(rowid, values.into_iter().map(value_hash).collect());
            }
        }
        Ok(())
    });
    out
}

/// Reads the table leaves of the file for rows whose rowid the indexes list with the values
/// of every key column among the row's fields.
fn match_rows(pf: &PageFile, listed: &[HashMap<i64, Vec<u64>>]) -> Shape {
    let mut shape = Shape {
        places: listed.iter().map(|_| Vec::new()).collect(),
        ..Shape::default()
    };
    let mut buf = Vec::new();
    let enough = std::cell::Cell::new(false);
    // Table leaves only: an interior page would bring its subtree, which its leaves give.
    let leaves = (2..=pf.page_count())
        .take_while(|_| !enough.get())
        .filter(|&p| {
            pf.read(p, &mut buf).is_some()
                && PageKind::from_flag(buf[0]) == Some(PageKind::TableLeaf)
        });
    let _ = read_trees(pf, leaves, TreeKind::Table, &mut |row: &RowRef<'_>| {
        // A record whose header does not fit its payload was altered: no evidence.
        if shape.matched < MAX_MATCHED && row.complete && row.exact_length {
            add_row(&mut shape, listed, row);
        }
        enough.set(shape.matched >= MAX_MATCHED);
        Ok(())
    });
    shape
}

fn add_row(shape: &mut Shape, listed: &[HashMap<i64, Vec<u64>>], row: &RowRef<'_>) {
    let Some(rowid) = row.rowid else {
        return;
    };
    let fields: Vec<u64> = row
        .fields
        .iter()
        .map(|f| value_hash(f.value(row.payload)))
        .collect();
    let mut places: Vec<Vec<Vec<usize>>> = Vec::new();
    for index in listed {
        let Some(keys) = index.get(&rowid) else {
            return;
        };
        let mut per_key = Vec::new();
        for k in keys {
            let at: Vec<usize> = (0..fields.len()).filter(|f| fields[*f] == *k).collect();
            if at.is_empty() {
                return;
            }
            per_key.push(at);
        }
        places.push(per_key);
    }
    shape.matched += 1;
    shape.fields = shape.fields.max(fields.len());
    for (i, per_key) in places.into_iter().enumerate() {
        shape.places[i].resize_with(per_key.len(), HashMap::new);
        for (k, at) in per_key.into_iter().enumerate() {
            for f in at {
                *shape.places[i][k].entry(f).or_default() += 1;
            }
        }
    }
    for (f, field) in row.fields.iter().enumerate() {
        if field.is_null() {
            *shape.nulls.entry(f).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_definition_names_its_plain_columns() {
        assert_eq!(
            index_columns(
                "CREATE INDEX event_log_kind ON event_log(kind, created)",
                "event_log"
            ),
            Some(vec!["kind".to_string(), "created".to_string()])
        );
        assert_eq!(
            index_columns("CREATE INDEX e ON t(lower(name))", "t"),
            None,
            "an expression is no column"
        );
        assert_eq!(
            index_columns("CREATE INDEX p ON t(a) WHERE a > 0", "t"),
            None,
            "a partial index does not list every row"
        );
    }
}
