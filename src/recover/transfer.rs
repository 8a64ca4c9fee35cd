//! Tables the engine has read whole are copied by SQLite's own transfer path.
//!
//! Handing every decoded row to SQLite as values costs several times what moving the records
//! does: SQLite has to re-encode each row, and every index has to be sorted again. So each
//! table is first walked without writing anything. When its tree and the trees of its
//! indexes read whole (no hole, no bad cell, no suspect page, no value cut short, as many
//! index entries as rows) and every one of those pages is in the snapshot's main file exactly
//! as SQLite will read it (not replaced by a WAL frame, not past a truncated end),
//! `INSERT INTO main.t SELECT * FROM rescue_source.t` lets SQLite move the records, and the
//! index entries, between b-trees without decoding them. The engine decoded every one of
//! those records during the walk: SQLite copies exactly the bytes that were verified.
//!
//! Anything else (a table with damage, a schema row SQLite reads differently, SQLite refusing
//! the copy, a row count that does not match the walk) and the table's pages are given back
//! and it is walked again and decoded row by row, as every damaged table is.

use super::pagemap::{PageMap, PageStatus, NO_OWNER};
use super::schema::{SchemaEntry, Table};
use super::walk::{RowRef, TreeKind, WalkStats, Walker};
use super::writer::ident;
use crate::pagefile::{immutable_uri, PageFile};
use rusqlite::Connection;
use std::collections::HashMap;

/// The schema name the snapshot is attached under, for the duration of the row phase.
pub const SOURCE: &str = "rescue_source";

/// The snapshot as SQLite reads it: the schema rows it sees, by name.
pub struct Source {
    objects: HashMap<String, (i64, Option<String>)>,
}

/// What copying one table by transfer did.
pub struct Transferred {
    pub rows: u64,
    pub stats: WalkStats,
    /// Indexes created before the copy (SQLite filled them from the source's entries).
    pub indexes: Vec<String>,
}

impl Source {
    /// Attaches the snapshot's main file (read-only, immutable) to `conn`, outside any
    /// transaction. `None` when it is no use: the header was not trusted as it stands, or
    /// SQLite cannot read the schema.
    pub fn attach(conn: &Connection, pf: &PageFile) -> Option<Source> {
        if !pf.geometry().inferred.is_empty() || pf.geometry().header.is_none() {
            return None;
        }
        let uri = immutable_uri(pf.path());
        conn.execute(&format!("ATTACH ?1 AS {SOURCE}"), [&uri])
            .ok()?;
        match Self::read_schema(conn) {
            Ok(objects) => Some(Source { objects }),
            Err(_) => {
                let _ = Self::detach(conn);
                None
            }
        }
    }

    fn read_schema(conn: &Connection) -> rusqlite::Result<HashMap<String, (i64, Option<String>)>> {
        let mut stmt = conn.prepare(&format!(
            "SELECT name, rootpage, sql FROM {SOURCE}.sqlite_schema"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        rows.collect()
    }

    /// Detaches the snapshot (outside any transaction).
    pub fn detach(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(&format!("DETACH {SOURCE}"))
    }

    /// Whether SQLite sees the object under the same root page with the same SQL.
    fn agrees(&self, name: &str, root: i64, sql: Option<&str>) -> bool {
        self.objects
            .get(name)
            .is_some_and(|(r, s)| *r == root && s.as_deref() == sql)
    }
}

/// Walks `table` and its indexes without writing; if they read whole, copies the table with
/// SQLite's transfer path. Returns `None`, with the table's pages given back, when the table
/// must be decoded row by row instead.
#[allow(clippy::too_many_arguments)]
pub fn try_table(
    conn: &Connection,
    source: &Source,
    walker: &mut Walker<'_>,
    map: &mut PageMap,
    owner: u32,
    table: &Table,
    indexes: &[(&SchemaEntry, u32)],
) -> crate::Result<Option<Transferred>> {
    if table.internal
        || table.root == 0
        || !source.agrees(&table.name, i64::from(table.root), table.sql.as_deref())
    {
        return Ok(None);
    }
    let position = walker.progress().position();
    walker.track_claims(true);
    let kind = if table.without_rowid {
        TreeKind::Index
    } else {
        TreeKind::Table
    };
    let fits = |_: Option<i64>, types: &[u64]| table.fits(types);
    let mut readable = true;
    let Some((stats, rows)) =
        verify_walk(walker, map, owner, table.root, kind, &fits, &mut |row| {
            readable &= row.complete && row.fields.len() <= table.stored.len();
        })?
    else {
        undo_claims(walker, map);
        walker.progress().set_position(position);
        return Ok(None);
    };
    let mut created = Vec::new();
    let mut whole = readable;
    for &(entry, index_owner) in indexes {
        let root = u32::try_from(entry.rootpage).unwrap_or(0);
        let index_whole = source.agrees(&entry.name, entry.rootpage, entry.sql.as_deref())
            && root != 0
            && verify_walk(
                walker,
                map,
                index_owner,
                root,
                TreeKind::Index,
                &|_, _| true,
                &mut |_| {},
            )?
            .is_some_and(|(_, entries)| entries == rows);
        match (&entry.sql, index_whole) {
            (Some(sql), true) => created.push((entry.name.clone(), sql.clone())),
            // An index made with the table (UNIQUE, PRIMARY KEY) is copied with it, or not
            // at all: it must read whole too.
            (None, false) => whole = false,
            // Other indexes are built from the data afterwards, as always.
            _ => {}
        }
    }
    // A rowid table without an INTEGER PRIMARY KEY keeps its rowids through the transfer
    // only when it has an index to copy; without one SQLite would number the rows afresh.
    let keeps_rowids = table.without_rowid
        || table.ipk.is_some()
        || !created.is_empty()
        || indexes.iter().any(|(e, _)| e.sql.is_none());
    if !whole || !keeps_rowids || !copy(conn, table, &created, rows) {
        undo_claims(walker, map);
        walker.progress().set_position(position);
        return Ok(None);
    }
    walker.track_claims(false);
    Ok(Some(Transferred {
        rows,
        stats,
        indexes: created.into_iter().map(|(name, _)| name).collect(),
    }))
}

/// Walks one tree, counting what it emits. `None` unless it read whole from pages SQLite
/// will read the same way. The walker must be logging claims (they may be given back).
fn verify_walk(
    walker: &mut Walker<'_>,
    map: &mut PageMap,
    owner: u32,
    root: u32,
    kind: TreeKind,
    fits: &dyn Fn(Option<i64>, &[u64]) -> bool,
    each: &mut dyn FnMut(&RowRef<'_>),
) -> crate::Result<Option<(WalkStats, u64)>> {
    let log_start = walker.claims_logged();
    let mut rows = 0u64;
    let stats = walker.walk(map, owner, root, kind, PageStatus::Tree, fits, &mut |row| {
        rows += 1;
        each(row);
        Ok(())
    })?;
    let whole = stats.holes.is_empty()
        && stats.bad_cells == 0
        && stats.suspect_rows == 0
        && stats.incomplete_rows == 0;
    let pf = walker.page_file();
    let plain = walker
        .claimed_since(log_start)
        .iter()
        .all(|&p| pf.is_plain(p));
    Ok((whole && plain).then_some((stats, rows)))
}

/// Gives back every page the verify walks claimed.
fn undo_claims(walker: &mut Walker<'_>, map: &mut PageMap) {
    for p in walker.track_claims(false) {
        map.set(p, PageStatus::Unseen, NO_OWNER);
    }
}

/// Creates the table and the indexes that read whole, then has SQLite copy the rows (and the
/// indexes' entries), all in one transaction that is rolled back unless exactly `rows` rows
/// arrived. A rollback also clears whatever SQLite concluded while reading the source (a
/// schema it could not use, say), so the connection is as it was.
fn copy(conn: &Connection, table: &Table, indexes: &[(String, String)], rows: u64) -> bool {
    let attempt = || -> rusqlite::Result<bool> {
        conn.execute_batch("BEGIN")?;
        conn.execute_batch(table.sql.as_deref().unwrap_or_default())?;
        for (_, sql) in indexes {
            conn.execute_batch(sql)?;
        }
        let name = ident(&table.name);
        let copied = conn.execute(
            &format!("INSERT INTO main.{name} SELECT * FROM {SOURCE}.{name}"),
            [],
        )?;
        if copied as u64 != rows {
            return Ok(false);
        }
        conn.execute_batch("COMMIT")?;
        Ok(true)
    };
    let ok = matches!(attempt(), Ok(true));
    if !ok && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    ok
}
