//! An index SQLite cannot build in the fresh database: its expression or WHERE calls a
//! function only the application registers. SQLite refuses to create it, and a stand-in
//! would compute wrong entries. Its entries are the application's own results, so they are
//! copied from the source's tree as they are: into an index of the same shape (the same
//! values, collations and orders, then the rowid) built over a scratch table whose INTEGER
//! PRIMARY KEY is the row's rowid, which then takes the index's name, table and SQL. The
//! scratch table is dropped; its index stays.
//!
//! Only an index whose tree reads whole, every entry of which names a row the table holds
//! (and, unless it is partial, one entry per row), is kept: anything else would be an index
//! that disagrees with its table.

use super::sql::{converts, Bind};
use super::{ident, rowid_name};
use crate::engine::schema::{SchemaEntry, Table};
use crate::engine::stand_ins;
use crate::engine::walk::{read_index, RowRef};
use crate::format::record::Value;
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use rusqlite::Connection;

/// The source's tree of an index and what reads it.
pub(crate) struct SourceIndex<'a> {
    pub(crate) pf: &'a PageFile,
    pub(crate) encoding: TextEncoding,
}

/// The index to copy and what copying it needs to know.
struct Plan<'a> {
    index: &'a SchemaEntry,
    table: &'a Table,
    /// The source index tree's root page.
    root: u32,
    /// A name that reads the table's rowid (none for a table whose columns take them all).
    rowid: Option<String>,
    keys: Vec<Key>,
    partial: bool,
}

/// One key column of the index: its collation and order.
struct Key {
    collation: String,
    descending: bool,
}

/// Copies `index` (of `table`, `intact` if every row of the source's table is in it) from
/// the source into the database on `conn`; the number of entries, or why it could not be
/// kept (nothing is left behind then).
pub(crate) fn keep_source_index(
    conn: &Connection,
    source: &SourceIndex<'_>,
    index: &SchemaEntry,
    table: &Table,
    intact: bool,
) -> Result<u64, String> {
    if table.without_rowid {
        return Err("an index of a WITHOUT ROWID table is not copied from the source".into());
    }
    let root = u32::try_from(index.rootpage)
        .ok()
        .filter(|r| *r > 0)
        .ok_or("the index has no root page")?;
    // A table whose columns take every name of the rowid (loaded through its twin) cannot be
    // asked for a row by rowid: its index is kept only if the table came back whole.
    let rowid = rowid_name(table);
    let (keys, partial) = shape(table, index)?;
    if rowid.is_none() && !intact {
        return Err("SQL cannot name the table's rowid, and the table lost rows".into());
    }
    let plan = Plan {
        index,
        table,
        root,
        rowid,
        keys,
        partial,
    };
    conn.execute_batch("SAVEPOINT keep_source_index")
        .map_err(|e| e.to_string())?;
    let kept = copy(conn, source, &plan);
    let end = match kept {
        Ok(_) => "RELEASE keep_source_index",
        Err(_) => "ROLLBACK TO keep_source_index; RELEASE keep_source_index",
    };
    conn.execute_batch(end).map_err(|e| e.to_string())?;
    kept
}

/// The index's key columns and whether it is partial, from a scratch database where the
/// application's functions have stand-ins (they only need to exist to describe the index).
fn shape(table: &Table, index: &SchemaEntry) -> Result<(Vec<Key>, bool), String> {
    let scratch = Connection::open_in_memory().map_err(|e| e.to_string())?;
    let _ = scratch.execute_batch("PRAGMA writable_schema = ON");
    stand_ins::only_stand_ins_for(&scratch, &[]);
    for sql in [table.sql.as_deref(), index.sql.as_deref()] {
        stand_ins::run_with_stand_ins(&scratch, sql.unwrap_or_default());
    }
    let keys = scratch
        .prepare("SELECT coll, \"desc\" FROM pragma_index_xinfo(?1) WHERE key = 1")
        .and_then(|mut s| {
            s.query_map([&index.name], |r| {
                Ok(Key {
                    collation: r.get::<_, Option<String>>(0)?.unwrap_or("BINARY".into()),
                    descending: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<Key>>>()
        })
        .map_err(|e| e.to_string())?;
    if keys.is_empty() {
        return Err("its shape could not be read".into());
    }
    let partial: bool = scratch
        .query_row(
            "SELECT partial FROM pragma_index_list(?1) WHERE name = ?2",
            [&table.name, &index.name],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    Ok((keys, partial))
}

fn copy(conn: &Connection, source: &SourceIndex<'_>, plan: &Plan<'_>) -> Result<u64, String> {
    let sql = |e: rusqlite::Error| e.to_string();
    let scratch = scratch_name(conn).map_err(sql)?;
    let columns = scratch_columns(plan.keys.len());
    let ordered: Vec<String> = columns
        .iter()
        .zip(&plan.keys)
        .map(|(c, k)| {
            let order = if k.descending { " DESC" } else { "" };
            format!("{c} COLLATE {}{order}", ident(&k.collation))
        })
        .collect();
    conn.execute_batch(&format!(
        "CREATE TABLE {t}(rowid_ INTEGER PRIMARY KEY, {cols});
         CREATE INDEX {i} ON {t}({ordered});",
        t = ident(&scratch),
        i = ident(&format!("{scratch}_index")),
        cols = columns.join(", "),
        ordered = ordered.join(", "),
    ))
    .map_err(sql)?;
    let entries = fill(conn, source, &scratch, plan)?;
    let rows: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {}", ident(&plan.table.name)),
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    if !plan.partial && u64::try_from(rows).ok() != Some(entries) {
        return Err(format!(
            "the source's index holds {entries} entries for {rows} rows"
        ));
    }
    take_over(conn, &scratch, plan.index).map_err(sql)?;
    Ok(entries)
}

/// The scratch table's key columns, one per key column of the index.
fn scratch_columns(keys: usize) -> Vec<String> {
    (0..keys).map(|i| format!("c{i}")).collect()
}

/// Inserts every entry of the source's index into the scratch table; the number of entries.
fn fill(
    conn: &Connection,
    source: &SourceIndex<'_>,
    scratch: &str,
    plan: &Plan<'_>,
) -> Result<u64, String> {
    let sql = |e: rusqlite::Error| e.to_string();
    let keys = plan.keys.len();
    let mut cols = vec!["rowid_".to_string()];
    cols.extend(scratch_columns(keys));
    // Text with no UTF-8 form goes in as its bytes, cast to TEXT (see writer::sql).
    let insert_sql = |values: &[Value<'_>]| {
        let marks: Vec<&str> = std::iter::once("?")
            .chain(values.iter().map(|v| match v {
                Value::Text(t) if !converts(source.encoding, t) => "CAST(? AS TEXT)",
                _ => "?",
            }))
            .collect();
        format!(
            "INSERT INTO {}({}) VALUES ({})",
            ident(scratch),
            cols.join(", "),
            marks.join(", ")
        )
    };
    let mut held = match &plan.rowid {
        Some(rowid) => Some(
            conn.prepare(&format!(
                "SELECT 1 FROM {} WHERE {rowid} = ?1",
                ident(&plan.table.name)
            ))
            .map_err(sql)?,
        ),
        None => None,
    };
    let (mut entries, mut problem) = (0u64, None::<String>);
    let stats = read_index(source.pf, plan.root, &mut |row: &RowRef<'_>| {
        if problem.is_some() {
            return Ok(());
        }
        let Some((id, values)) = crate::engine::salvage::membership::index_entry(row, keys) else {
            problem = Some("an entry of the source's index does not decode".into());
            return Ok(());
        };
        let step = conn
            .prepare_cached(&insert_sql(&values))
            .and_then(|mut insert| {
                let mut params = vec![Bind(Value::Integer(id), source.encoding)];
                params.extend(values.iter().map(|v| Bind(*v, source.encoding)));
                insert.execute(rusqlite::params_from_iter(params.iter()))
            })
            .and_then(|_| held.as_mut().map_or(Ok(true), |h| h.exists([id])));
        match step {
            Ok(true) => entries += 1,
            Ok(false) => {
                problem = Some(format!(
                    "the source's index lists row {id}, which the table does not hold"
                ))
            }
            Err(e) => problem = Some(e.to_string()),
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    if let Some(why) = problem {
        return Err(why);
    }
    if stats.is_damaged() {
        return Err("the source's index does not read whole".into());
    }
    Ok(entries)
}

/// The scratch table's index becomes the index: its schema row takes the index's name,
/// table and SQL; the scratch table is dropped after SQLite reads the schema again.
fn take_over(conn: &Connection, scratch: &str, index: &SchemaEntry) -> rusqlite::Result<()> {
    super::setup::edit_schema(conn, || {
        conn.execute(
            "UPDATE sqlite_schema SET name = ?1, tbl_name = ?2, sql = ?3
              WHERE type = 'index' AND name = ?4",
            rusqlite::params![
                index.name,
                index.tbl_name,
                index.sql,
                format!("{scratch}_index")
            ],
        )
        .map(|_| ())
    })?;
    conn.execute_batch(&format!("DROP TABLE {}", ident(scratch)))
}

/// A table name the database does not use.
fn scratch_name(conn: &Connection) -> rusqlite::Result<String> {
    let mut taken = conn.prepare("SELECT 1 FROM sqlite_schema WHERE name = ?1 OR name = ?2")?;
    for n in 0..=u32::MAX {
        let name = format!("rescue_kept_index_{n}");
        if !taken.exists([&name, &format!("{name}_index")])? {
            return Ok(name);
        }
    }
    Err(rusqlite::Error::InvalidQuery)
}
