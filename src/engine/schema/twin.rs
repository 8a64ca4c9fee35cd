//! A table's storage twin: a CREATE TABLE the bundled SQLite can run whose rows are stored
//! exactly as the source's table stores them (the same record fields in the same order, the
//! same rowid or key, the same automatic indexes), for a table whose own definition cannot
//! be used to load it:
//! - a stored generated column: computed again on load, its value could differ from the
//!   one the source stored (another SQLite's float formatting, a pragma the application set,
//!   a function only the application registers, whose stand-in computes NULL);
//! - columns named `rowid`, `_rowid_` and `oid` all three, so SQL cannot give a row its
//!   rowid and the rows would be numbered afresh.
//!
//! The rows are loaded into the twin, then the table's schema row gets the source's CREATE
//! TABLE back verbatim ([`crate::engine::writer::install_definitions`]): a record does not
//! say what computed its fields, nor what its columns are called.

use super::{table_from_sql, Affinity, SchemaEntry, Table};
use crate::util::quote::ident;
use rusqlite::Connection;

/// One automatic index of the table: PRIMARY KEY or UNIQUE, its key columns with their
/// collation and order.
struct Constraint {
    number: u32,
    primary: bool,
    columns: Vec<String>,
}

/// The twin of `table` as `scratch` (where the table was created) describes it, checked to
/// store its rows exactly as `table` does; `None` if no such twin could be made.
pub(crate) fn twin_of(scratch: &Connection, table: &Table) -> Option<Table> {
    let renamed = free_rowid_name(table);
    let sql = twin_sql(scratch, table, &renamed, autoincrement(scratch, table))?;
    let fresh = Connection::open_in_memory().ok()?;
    let entry = SchemaEntry {
        kind: super::SchemaKind::Table,
        name: table.name.clone(),
        tbl_name: table.name.clone(),
        rootpage: i64::from(table.root),
        sql: Some(sql),
        from_reference: false,
    };
    let _ = fresh.execute_batch("PRAGMA writable_schema = ON");
    let twin = table_from_sql(&fresh, &entry, table.root).ok()?;
    same_storage(table, &twin, &renamed).then_some(twin)
}

/// Whether SQL can give `table`'s rows their rowids (a WITHOUT ROWID table has none).
pub(crate) fn rowid_addressable(table: &Table) -> bool {
    table.without_rowid || crate::engine::writer::rowid_name(table).is_some()
}

/// Column names of the twin: the source's, with `rowid` renamed when every name for the
/// rowid is taken (so the twin has one to insert by).
fn free_rowid_name(table: &Table) -> Vec<String> {
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    if rowid_addressable(table) {
        return names;
    }
    let taken = |n: &str| names.iter().any(|c| c.eq_ignore_ascii_case(n));
    let free = (1..)
        .map(|k| format!("rowid_{k}"))
        .find(|n| !taken(n))
        .unwrap_or_default();
    names
        .iter()
        .map(|n| match n.eq_ignore_ascii_case("rowid") {
            true => free.clone(),
            false => n.clone(),
        })
        .collect()
}

/// Whether the table's INTEGER PRIMARY KEY is AUTOINCREMENT: the twin must be too, so that
/// SQLite creates `sqlite_sequence` with it. (A scratch database holding the table alone
/// has `sqlite_sequence` only then; one holding every table cannot tell, but only a table
/// without an INTEGER PRIMARY KEY is given a twin there.)
fn autoincrement(scratch: &Connection, table: &Table) -> bool {
    table.ipk.is_some()
        && scratch
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .is_ok_and(|n| n > 0)
}

fn twin_sql(
    scratch: &Connection,
    table: &Table,
    names: &[String],
    autoincrement: bool,
) -> Option<String> {
    let strict: bool = scratch
        .query_row(
            "SELECT strict FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
            [&table.name],
            |r| r.get(0),
        )
        .ok()?;
    let defaults = defaults(scratch, &table.name)?;
    let mut parts = Vec::new();
    for (i, c) in table.columns.iter().enumerate() {
        if c.hidden == 2 {
            continue; // a virtual generated column is not stored
        }
        let mut part = format!("{} {}", ident(&names[i]), twin_type(c, strict));
        if Some(i) == table.ipk {
            let auto = if autoincrement { " AUTOINCREMENT" } else { "" };
            part = format!("{} INTEGER PRIMARY KEY{auto}", ident(&names[i]));
        }
        if let Some(d) = &defaults[i] {
            // A record written before ALTER TABLE ADD COLUMN lacks the column: the default
            // fills it, as the source's definition would.
            part.push_str(&format!(" DEFAULT ({d})"));
        }
        parts.push(part);
    }
    for c in constraints(scratch, &table.name, names)? {
        let kind = if c.primary { "PRIMARY KEY" } else { "UNIQUE" };
        parts.push(format!("{kind}({})", c.columns.join(", ")));
    }
    let tail = if table.without_rowid {
        " WITHOUT ROWID"
    } else {
        ""
    };
    Some(format!(
        "CREATE TABLE {}({}){tail}",
        ident(&table.name),
        parts.join(", ")
    ))
}

/// A declared type with the column's affinity that is never a rowid alias ("INT", not
/// "INTEGER"): the twin's only INTEGER PRIMARY KEY is the source's.
fn twin_type(c: &super::Column, strict: bool) -> &'static str {
    if strict && c.decl_type.eq_ignore_ascii_case("ANY") {
        return ""; // ANY in a STRICT table keeps every value as given
    }
    match c.affinity {
        Affinity::Integer => "INT",
        Affinity::Text => "TEXT",
        Affinity::Real => "REAL",
        Affinity::Numeric => "NUMERIC",
        Affinity::Blob => "",
    }
}

fn defaults(scratch: &Connection, table: &str) -> Option<Vec<Option<String>>> {
    let mut stmt = scratch
        .prepare("SELECT dflt_value FROM pragma_table_xinfo(?1)")
        .ok()?;
    let rows = stmt.query_map([table], |r| r.get(0)).ok()?;
    rows.collect::<rusqlite::Result<_>>().ok()
}

/// The table's automatic indexes in the order SQLite numbered them: the twin declares them
/// in that order, so its automatic indexes get the same names.
fn constraints(scratch: &Connection, table: &str, names: &[String]) -> Option<Vec<Constraint>> {
    let prefix = format!("sqlite_autoindex_{table}_");
    let mut stmt = scratch
        .prepare("SELECT name, origin FROM pragma_index_list(?1) WHERE origin IN ('pk', 'u')")
        .ok()?;
    let listed: Vec<(String, String)> = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
        .ok()?
        .collect::<rusqlite::Result<_>>()
        .ok()?;
    let mut out = Vec::new();
    for (index, origin) in listed {
        let number = index.strip_prefix(&prefix)?.parse().ok()?;
        out.push(Constraint {
            number,
            primary: origin == "pk",
            columns: key_columns(scratch, &index, names)?,
        });
    }
    out.sort_by_key(|c| c.number);
    Some(out)
}

fn key_columns(scratch: &Connection, index: &str, names: &[String]) -> Option<Vec<String>> {
    let mut stmt = scratch
        .prepare("SELECT cid, \"desc\", coll FROM pragma_index_xinfo(?1) WHERE key = 1")
        .ok()?;
    let keys: Vec<(i64, bool, Option<String>)> = stmt
        .query_map([index], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .ok()?
        .collect::<rusqlite::Result<_>>()
        .ok()?;
    keys.into_iter()
        .map(|(cid, desc, coll)| {
            let name = names.get(usize::try_from(cid).ok()?)?;
            let coll = coll.map(|c| format!(" COLLATE {}", ident(&c)));
            let order = if desc { " DESC" } else { "" };
            Some(format!(
                "{}{}{order}",
                ident(name),
                coll.unwrap_or_default()
            ))
        })
        .collect()
}

/// Whether `twin` stores exactly `table`'s record fields, in the same order, with the same
/// rowid alias.
fn same_storage(table: &Table, twin: &Table, names: &[String]) -> bool {
    let ipk_name = |t: &Table, names: Option<&[String]>| {
        t.ipk
            .map(|c| names.map_or(t.columns[c].name.clone(), |n| n[c].clone()))
    };
    table.without_rowid == twin.without_rowid
        && table.stored.len() == twin.stored.len()
        && ipk_name(table, Some(names)) == ipk_name(twin, None)
        && (0..table.stored.len()).all(|i| {
            twin.stored_column(i)
                .is_some_and(|b| names[table.stored[i]] == b.name && b.hidden == 0)
        })
        && rowid_addressable(twin)
}

/// A table SQLite refuses only for a function the application registers (in a stored
/// generated column: no stand-in may compute its values), read with stand-ins on a scratch
/// database of its own and given a twin; `None` if it is refused for anything else.
pub(super) fn loaded_by_twin(entry: &SchemaEntry, root: u32) -> Option<Table> {
    let sql = entry.sql.as_deref()?;
    let scratch = Connection::open_in_memory().ok()?;
    scratch.execute_batch("PRAGMA writable_schema = ON").ok()?;
    crate::engine::stand_ins::only_stand_ins_for(&scratch, &[]);
    if crate::engine::stand_ins::run_with_stand_ins(&scratch, sql).is_empty() {
        return None;
    }
    scratch
        .execute_batch(&format!("DROP TABLE {}", ident(&entry.name)))
        .ok()?;
    let mut table = table_from_sql(&scratch, entry, root).ok()?;
    table.twin = Some(Box::new(twin_of(&scratch, &table)?));
    Some(table)
}
