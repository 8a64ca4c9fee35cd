//! Tables the engine has read whole are copied by SQLite's own transfer path.
//!
//! Handing every decoded row to SQLite as values costs several times what moving the records
//! does: SQLite has to re-encode each row, and every index has to be sorted again. So each
//! table is first walked without writing anything. When its tree and the trees of its
//! indexes read whole (no hole, no bad cell, no suspect page, no value cut short, as many
//! index entries as rows), `INSERT INTO main.t SELECT * FROM rescue_source.t` lets SQLite move
//! the records, and the index entries, between b-trees without decoding them. SQLite reads the
//! snapshot through the engine's own page view ([`crate::engine::copy::vfs`]: WAL frames applied, the
//! engine's geometry), so it reads exactly the pages the walk decoded and checked.
//!
//! Anything else (a table with damage, a schema row SQLite reads differently, SQLite refusing
//! the copy, a row count that does not match the walk) and the table's pages are given back
//! and it is walked again and decoded row by row, as every damaged table is.

use crate::engine::copy::vfs::Registration;
use crate::engine::pages::{Claims, PageStatus};
use crate::engine::schema::{SchemaEntry, Table};
use crate::engine::walk::{TreeKind, Walker};
use crate::engine::writer::ident;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};

/// The schema name the snapshot is attached under, for the duration of the row phase.
pub(crate) const SOURCE: &str = "rescue_source";

/// The snapshot as SQLite reads it: the schema rows it sees, by name.
pub(crate) struct Source {
    objects: HashMap<String, (i64, Option<String>)>,
}

/// What copying one table by transfer did.
pub(crate) struct Transferred {
    pub rows: u64,
    /// Indexes created before the copy (SQLite filled them from the source's entries).
    pub indexes: Vec<String>,
}

impl Source {
    /// Attaches the engine's view of the snapshot (read-only, immutable) to `conn`, outside
    /// any transaction. `None` when it is no use: SQLite cannot read the schema.
    pub(crate) fn attach(conn: &Connection, view: &Registration<'_>) -> Option<Source> {
        conn.execute(&format!("ATTACH ?1 AS {SOURCE}"), [view.uri()])
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

    /// Detaches the snapshot (if attached), first ending any copy left open.
    pub(crate) fn detach(conn: &Connection) -> rusqlite::Result<()> {
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK")?;
        }
        let attached: i64 = conn.query_row(
            "SELECT count(*) FROM pragma_database_list WHERE name = ?1",
            [SOURCE],
            |r| r.get(0),
        )?;
        if attached == 0 {
            return Ok(());
        }
        conn.execute_batch(&format!("DETACH {SOURCE}"))
    }

    /// Whether SQLite sees exactly the schema the engine read: the same objects, each under
    /// the same root page with the same SQL.
    pub(crate) fn sees_as(&self, entries: &[SchemaEntry]) -> bool {
        self.objects.len() == entries.len()
            && entries
                .iter()
                .all(|e| self.agrees(&e.name, e.rootpage, e.sql.as_deref()))
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
///
/// The copy starts at once, on this thread, while the walk runs on a second one: the copy
/// is committed only if the walk then finds everything whole and the counts agree, and rolled
/// back otherwise. Reading and copying overlap, so a whole table costs about what its copy
/// costs.
pub(crate) fn try_table(
    conn: &Connection,
    source: &Source,
    walker: &mut Walker<'_>,
    map: &mut Claims,
    owner: u32,
    table: &Table,
    indexes: &[(&SchemaEntry, u32)],
) -> crate::Result<Option<Transferred>> {
    let agrees = |e: &SchemaEntry| source.agrees(&e.name, e.rootpage, e.sql.as_deref());
    let automatic_agree = indexes
        .iter()
        .filter(|(e, _)| e.sql.is_none())
        .all(|(e, _)| agrees(e) && e.rootpage > 0);
    if table.internal
        || table.root == 0
        || table.twin.is_some()
        || !automatic_agree
        || !source.agrees(&table.name, i64::from(table.root), table.sql.as_deref())
    {
        return Ok(None);
    }
    // Every index SQLite sees as we do is created before the copy and filled by it.
    let planned: Vec<(String, String)> = indexes
        .iter()
        .filter(|(e, _)| agrees(e) && e.rootpage > 0)
        .filter_map(|(e, _)| Some((e.name.clone(), e.sql.clone()?)))
        .collect();
    let position = walker.progress().position();
    let cp = map.checkpoint();
    let (verified, copied) = {
        let (walker, map) = (&mut *walker, &mut *map);
        copy_beside(
            conn,
            || start_copy(conn, table, &planned),
            move || verify_table(walker, map, owner, table, indexes),
            |_| true,
        )
    };
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            end_copy(conn, false);
            map.rollback(cp);
            return Err(e);
        }
    };
    let outcome = verified.and_then(|v| {
        let whole_indexes: Vec<(String, String)> = planned
            .iter()
            .filter(|(name, _)| v.whole_indexes.contains(name))
            .cloned()
            .collect();
        let automatic_whole = indexes
            .iter()
            .filter(|(e, _)| e.sql.is_none())
            .all(|(e, _)| v.whole_indexes.contains(&e.name));
        // A rowid table without an INTEGER PRIMARY KEY keeps its rowids through the
        // transfer only when it has an index to copy; without one SQLite numbers the rows
        // afresh.
        let keeps_rowids = table.without_rowid
            || table.ipk.is_some()
            || !whole_indexes.is_empty()
            || indexes.iter().any(|(e, _)| e.sql.is_none());
        if !automatic_whole || !keeps_rowids {
            return None;
        }
        let as_planned = whole_indexes.len() == planned.len();
        let done = if as_planned && matches!(copied, Ok(n) if n == v.rows) {
            end_copy(conn, true)
        } else {
            // An index that did not read whole is built from the rows afterwards instead:
            // copy again without it.
            end_copy(conn, false);
            !as_planned
                && matches!(start_copy(conn, table, &whole_indexes), Ok(n) if n == v.rows)
                && end_copy(conn, true)
        };
        done.then_some(Transferred {
            rows: v.rows,
            indexes: whole_indexes.into_iter().map(|(name, _)| name).collect(),
        })
    });
    if outcome.is_none() {
        end_copy(conn, false);
        map.rollback(cp);
        walker.progress().set_position(position);
    } else {
        map.keep(cp);
    }
    Ok(outcome)
}

/// Runs `copy` on this thread while `check` runs on a second one, so that reading the
/// source and writing the output overlap. As soon as `check` finds the copy of no use (no
/// answer, or one `useful` rejects), SQLite's copy is interrupted (a no-op if it is done).
pub(crate) fn copy_beside<V: Send, C>(
    conn: &Connection,
    copy: impl FnOnce() -> C,
    check: impl FnOnce() -> crate::Result<Option<V>> + Send,
    useful: impl FnOnce(&V) -> bool + Send,
) -> (crate::Result<Option<V>>, C) {
    std::thread::scope(|scope| {
        let stop_copy = conn.get_interrupt_handle();
        let checker = scope.spawn(move || {
            let checked = check();
            if !matches!(&checked, Ok(Some(v)) if useful(v)) {
                stop_copy.interrupt();
            }
            checked
        });
        let copied = copy();
        let checked = checker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (checked, copied)
    })
}

/// What the walk of a table and its indexes found, when the table read whole.
pub(super) struct Verified {
    pub rows: u64,
    /// The indexes that read whole too, with one entry per row.
    pub whole_indexes: HashSet<String>,
}

pub(super) fn verify_table(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    owner: u32,
    table: &Table,
    indexes: &[(&SchemaEntry, u32)],
) -> crate::Result<Option<Verified>> {
    // The table's walk stops at its first damage (it will be decoded instead, and every page
    // given back); index walks go to the end, as their pages stay claimed if the copy does.
    walker.stop_when_damaged(true);
    let walked = walker.walk_whole(map, owner, table.root, table, PageStatus::Tree);
    walker.stop_when_damaged(false);
    let (stats, readable) = walked?;
    if stats.is_damaged() || !readable {
        return Ok(None);
    }
    let rows = stats.rows;
    let whole_indexes = whole_indexes(walker, map, indexes, rows)?;
    Ok(Some(Verified {
        rows,
        whole_indexes,
    }))
}

/// Walks the trees of `indexes` (their claims logged like the table's) and returns the names
/// of those that read whole with exactly `rows` entries.
pub(crate) fn whole_indexes(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    indexes: &[(&SchemaEntry, u32)],
    rows: u64,
) -> crate::Result<HashSet<String>> {
    let mut whole = HashSet::new();
    for &(entry, index_owner) in indexes {
        let Ok(root) = u32::try_from(entry.rootpage) else {
            continue;
        };
        if root == 0 {
            continue;
        }
        if index_entries(walker, map, index_owner, root)? == Some(rows) {
            whole.insert(entry.name.clone());
        }
    }
    Ok(whole)
}

/// Copies `table` with the indexes in `whole` through a freshly attached view (so SQLite sees
/// pages rebuilt since it last read), committing only if exactly `rows` rows arrive.
pub(crate) fn copy_fresh(
    conn: &Connection,
    view: &Registration<'_>,
    source: &Source,
    table: &Table,
    indexes: &[(&SchemaEntry, u32)],
    whole: &HashSet<String>,
    rows: u64,
) -> crate::Result<bool> {
    let Some(planned) = fresh_plan(source, table, indexes, Some(whole)) else {
        return Ok(false);
    };
    let done = matches!(start_fresh_copy(conn, view, table, &planned), Some(Ok(n)) if n == rows)
        && end_copy(conn, true);
    if !done {
        end_copy(conn, false);
    }
    Ok(done)
}

/// The indexes to create and fill when `table` is copied through a fresh view: those SQLite
/// sees as the engine does (and, given `whole`, only those that read whole). `None` when the
/// copy cannot keep the table as it is: an automatic index left out, a table SQLite reads
/// differently, or rowids SQLite would number afresh.
pub(crate) fn fresh_plan(
    source: &Source,
    table: &Table,
    indexes: &[(&SchemaEntry, u32)],
    whole: Option<&HashSet<String>>,
) -> Option<Vec<(String, String)>> {
    let agrees = |e: &SchemaEntry| source.agrees(&e.name, e.rootpage, e.sql.as_deref());
    let usable = |e: &SchemaEntry| agrees(e) && whole.is_none_or(|w| w.contains(&e.name));
    let automatic_ok = indexes
        .iter()
        .filter(|(e, _)| e.sql.is_none())
        .all(|(e, _)| usable(e));
    let planned: Vec<(String, String)> = indexes
        .iter()
        .filter(|(e, _)| usable(e))
        .filter_map(|(e, _)| Some((e.name.clone(), e.sql.clone()?)))
        .collect();
    let keeps_rowids = table.without_rowid
        || table.ipk.is_some()
        || !planned.is_empty()
        || indexes.iter().any(|(e, _)| e.sql.is_none());
    (automatic_ok
        && keeps_rowids
        && table.twin.is_none()
        && source.agrees(&table.name, i64::from(table.root), table.sql.as_deref()))
    .then_some(planned)
}

/// Attaches the view afresh and starts copying `table` with `planned` indexes, as
/// [`start_copy`] does. `None` if the view could not be attached again.
pub(crate) fn start_fresh_copy(
    conn: &Connection,
    view: &Registration<'_>,
    table: &Table,
    planned: &[(String, String)],
) -> Option<rusqlite::Result<u64>> {
    if Source::detach(conn).is_err()
        || conn
            .execute(&format!("ATTACH ?1 AS {SOURCE}"), [view.uri()])
            .is_err()
    {
        return None;
    }
    Some(start_copy(conn, table, planned))
}

/// Walks one index tree; its entry count, or `None` unless it read whole. The walker must be
/// logging claims (they may be given back).
pub(super) fn index_entries(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    owner: u32,
    root: u32,
) -> crate::Result<Option<u64>> {
    let any = |_: Option<i64>, _: &[u64]| true;
    let stats = walker.walk_shapes(
        map,
        owner,
        root,
        TreeKind::Index,
        PageStatus::Tree,
        &any,
        &mut |_| Ok(()),
    )?;
    Ok((!stats.is_damaged()).then_some(stats.rows))
}

/// Opens a transaction, creates the table and `indexes`, and has SQLite copy the rows (and
/// the indexes' entries). Returns how many rows arrived; the transaction stays open for
/// [`end_copy`] to commit or roll back.
fn start_copy(
    conn: &Connection,
    table: &Table,
    indexes: &[(String, String)],
) -> rusqlite::Result<u64> {
    conn.execute_batch("BEGIN")?;
    crate::engine::writer::create_table(
        conn,
        table.sql.as_deref().unwrap_or_default(),
        &table.name,
    )?;
    for (_, sql) in indexes {
        conn.execute_batch(sql)?;
    }
    let name = ident(&table.name);
    let copied = conn.execute(
        &format!("INSERT INTO main.{name} SELECT * FROM {SOURCE}.{name}"),
        [],
    )?;
    if !keeps_rowids(conn, table)? {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!("{}: SQLite numbered the rows afresh", table.name)),
        ));
    }
    Ok(copied as u64)
}

/// Whether the copy kept the rows' rowids. SQLite moves records with their rowids only when
/// it takes its transfer path; otherwise (a CHECK constraint, say) it inserts the rows as
/// values and numbers a table without an INTEGER PRIMARY KEY afresh, 1 to n in the
/// source's order. With as many rows on both sides, the same smallest and largest rowid
/// prove the rowids kept: numbered afresh they are 1 to n, which they were already only if
/// the source's were too. Two seeks per side.
fn keeps_rowids(conn: &Connection, table: &Table) -> rusqlite::Result<bool> {
    if table.without_rowid || table.ipk.is_some() {
        return Ok(true);
    }
    // A table that names no rowid at all cannot show it was kept: it is decoded.
    let Some(rowid) = crate::engine::writer::rowid_name(table) else {
        return Ok(false);
    };
    let name = ident(&table.name);
    let ends = |schema: &str| {
        conn.query_row(
            &format!("SELECT min({rowid}), max({rowid}) FROM {schema}.{name}"),
            [],
            |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)),
        )
    };
    Ok(ends("main")? == ends(SOURCE)?)
}

/// Commits the copy (returning whether that worked) or rolls it back. A rollback also clears
/// whatever SQLite concluded while reading the source (a schema it could not use, say), so
/// the connection is as it was.
pub(crate) fn end_copy(conn: &Connection, commit: bool) -> bool {
    if conn.is_autocommit() {
        return false;
    }
    if commit && conn.execute_batch("COMMIT").is_ok() {
        return true;
    }
    let _ = conn.execute_batch("ROLLBACK");
    false
}
