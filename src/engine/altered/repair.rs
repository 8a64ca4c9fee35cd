//! Altered rows repaired: where an index holds a column, the value it holds for the rowid is
//! the one the application wrote (the entry was written with the row, on other pages), so
//! the recovered table takes it. The row's record as it was read is kept first, in a side
//! table, so nothing the file held is thrown away.
//!
//! The repair runs after the triggers exist: they are switched off on this connection for
//! its length (an UPDATE must not fire the application's triggers). The constraints stay on:
//! a value SQLite refuses (UNIQUE, NOT NULL, CHECK, a STRICT column's type) leaves the row as
//! it was read, and the row is reported with SQLite's reason, never coerced or dropped.

use crate::engine::schema::Table;
use crate::engine::walk::{read_trees, RowRef, TreeKind};
use crate::engine::writer::{rowid_name, AlteredRecords};
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use crate::util::quote::ident;
use rusqlite::config::DbConfig;
use rusqlite::types::Value as SqlValue;
use std::collections::{BTreeMap, HashSet};

/// What the indexes hold for one altered row: column name → value.
pub(crate) type Wanted = Vec<(String, SqlValue)>;

/// Where the records of the table's rows can be read again: its root, and the tops of the
/// orphan subtrees put back into it.
pub(crate) struct Sources<'a> {
    pub pf: &'a PageFile,
    pub tops: Vec<u32>,
    pub encoding: TextEncoding,
    /// The table's pages whose rows were read despite signs of damage.
    pub suspect_pages: &'a [u32],
    /// Every row the walk found is in the table: no hole, none refused. An index entry no
    /// row answers is then a row whose key was altered, not one already counted lost.
    pub every_row_in_place: bool,
}

/// Why an altered row was left as it was read.
pub(crate) type Refusal = String;

/// Gives each row of `wanted` the values its indexes hold, after keeping its record in
/// `records`. Returns, per row left as read, why.
pub(crate) fn repair(
    conn: &rusqlite::Connection,
    table: &Table,
    wanted: &BTreeMap<i64, Wanted>,
    sources: &Sources<'_>,
    records: &mut AlteredRecords,
) -> BTreeMap<i64, Refusal> {
    let mut refused = BTreeMap::new();
    if wanted.is_empty() {
        return refused;
    }
    let Some(rowid) = rowid_name(table) else {
        return refused;
    };
    let done = without_triggers(conn, || {
        let kept = keep_records(conn, table, wanted, sources, records);
        let mut pending: Vec<i64> = Vec::new();
        for r in wanted.keys() {
            if kept.contains(r) {
                pending.push(*r);
            } else {
                refused.insert(*r, "its record was not found again to be kept".into());
            }
        }
        // A value another altered row still holds is free once that row is repaired: a row
        // refused for a UNIQUE constraint is tried again while the passes repair any.
        loop {
            let before = pending.len();
            pending.retain(|r| match update(conn, table, &rowid, *r, &wanted[r]) {
                Ok(()) => {
                    refused.remove(r);
                    false
                }
                Err(e) => {
                    refused.insert(*r, format!("SQLite refused the index's values: {e}"));
                    is_unique(&e)
                }
            });
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
    });
    if done.is_none() {
        for r in wanted.keys() {
            refused.insert(
                *r,
                "triggers could not be switched off for the repair".into(),
            );
        }
    }
    refused
}

/// Runs `f` in one transaction with the application's triggers switched off on `conn` (a
/// repair must not fire them); `None` when they could not be.
pub(super) fn without_triggers<T>(conn: &rusqlite::Connection, f: impl FnOnce() -> T) -> Option<T> {
    let was_on = conn
        .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)
        .ok()?;
    let _ = conn.execute_batch("BEGIN");
    let out = f();
    let _ = conn.execute_batch("COMMIT");
    let _ = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, was_on);
    Some(out)
}

fn is_unique(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
        && e.to_string().contains("UNIQUE")
}

/// One row's update in a savepoint of its own: a refusal undoes it alone.
fn update(
    conn: &rusqlite::Connection,
    table: &Table,
    rowid: &str,
    r: i64,
    values: &Wanted,
) -> rusqlite::Result<()> {
    let sets: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{} = ?{}", ident(c), i + 2))
        .collect();
    let sql = format!(
        "UPDATE {} SET {} WHERE {rowid} = ?1",
        ident(&table.name),
        sets.join(", ")
    );
    conn.execute_batch("SAVEPOINT altered_row")?;
    let mut params: Vec<&dyn rusqlite::ToSql> = vec![&r];
    params.extend(values.iter().map(|(_, v)| v as &dyn rusqlite::ToSql));
    let done = conn.execute(&sql, params.as_slice());
    if done.is_err() {
        conn.execute_batch("ROLLBACK TO altered_row")?;
    }
    conn.execute_batch("RELEASE altered_row")?;
    done.map(|_| ())
}

/// Keeps the records of the rows of `wanted` as they are in the file, read again from the
/// table's tree and the orphan subtrees put back into it. Returns the rowids kept.
fn keep_records(
    conn: &rusqlite::Connection,
    table: &Table,
    wanted: &BTreeMap<i64, Wanted>,
    sources: &Sources<'_>,
    records: &mut AlteredRecords,
) -> HashSet<i64> {
    let mut kept = HashSet::new();
    let all_kept = std::cell::Cell::new(false);
    let roots = std::iter::once(table.root)
        .filter(|r| *r > 0)
        .chain(sources.tops.iter().copied())
        .take_while(|_| !all_kept.get());
    let _ = read_trees(sources.pf, roots, TreeKind::Table, &mut |row: &RowRef<
        '_,
    >| {
        let Some(r) = row
            .rowid
            .filter(|r| wanted.contains_key(r) && !kept.contains(r))
        else {
            return Ok(());
        };
        let keep = records.keep(
            conn,
            &table.name,
            r,
            row.page,
            row.payload,
            row.fields,
            sources.encoding,
        );
        if keep.is_ok() {
            kept.insert(r);
        }
        all_kept.set(kept.len() == wanted.len());
        Ok(())
    });
    kept
}
