//! A database that reads whole is copied by SQLite's own `VACUUM INTO`.
//!
//! Copied table by table ([`super::transfer`]), SQLite looks up every row's key in the new
//! table and seeks for every index entry; only `VACUUM` may append blindly, and it copies a
//! database in about two thirds of the time. But it copies everything or nothing. So when
//! SQLite reads exactly the schema the engine read, `VACUUM INTO` the output starts at once,
//! reading the engine's page view, while every table and index is walked and checked on the
//! second core. The copy is kept only if every tree reads whole, every index has one entry
//! per row, and every table arrives with as many rows as its walk found. At the first damage
//! the walk stops and interrupts the copy (and a copy SQLite gives up on stops the walk); the
//! output is emptied, every page the walk claimed is given back, and the engine goes table by
//! table.

use super::pagemap::{PageMap, PageStatus, NO_OWNER};
use super::schema::{SchemaEntry, Table};
use super::transfer::{self, Source, SOURCE};
use super::view::Registration;
use super::walk::{ShapeCheck, TreeKind, Walker};
use super::writer::ident;
use crate::format::TextEncoding;
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// One table to copy: the table, its owner in the page map, and its indexes with theirs.
pub type Planned<'e> = (&'e Table, u32, Vec<(&'e SchemaEntry, u32)>);

/// Copies the whole database seen through `view` into `out` (an empty file) while `walker`
/// checks every tree of `tables`. Returns the rows of each table, in order, when the copy is
/// kept; `None` when the engine must go table by table (`out` is empty again then, and the
/// walk's claims are undone).
pub fn try_database(
    out: &Path,
    view: &Registration<'_>,
    walker: &mut Walker<'_>,
    map: &mut PageMap,
    tables: &[Planned<'_>],
    entries: &[SchemaEntry],
    encoding: TextEncoding,
) -> crate::Result<Option<Vec<u64>>> {
    let Some(target) = std::path::absolute(out)
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
    else {
        return Ok(None);
    };
    // SQLite attaches only a database in the main one's text encoding.
    let Ok(conn) = Connection::open_in_memory().and_then(|c| {
        c.execute_batch(&format!("PRAGMA encoding = '{}'", encoding.pragma_name()))?;
        Ok(c)
    }) else {
        return Ok(None);
    };
    let Some(source) = Source::attach(&conn, view) else {
        return Ok(None);
    };
    if !source.sees_as(entries) {
        return Ok(None);
    }
    // The output is synced once, by the caller, when it is complete.
    if conn
        .execute_batch(&format!("PRAGMA {SOURCE}.synchronous = OFF"))
        .is_err()
    {
        return Ok(None);
    }
    let watch = super::InterruptWatch::start(conn.get_interrupt_handle());
    let position = walker.progress().position();
    let copy_failed = AtomicBool::new(false);
    let stop = || super::interrupted() || copy_failed.load(Ordering::Relaxed);
    let mut checker = Walker::new(walker.page_file(), walker.progress().clone(), &stop);
    checker.track_claims(true);
    let (verified, copied) = {
        let (checker, map) = (&mut checker, &mut *map);
        transfer::copy_beside(
            &conn,
            || {
                let copied = conn.execute(&format!("VACUUM {SOURCE} INTO ?1"), [target.as_str()]);
                copy_failed.store(copied.is_err(), Ordering::Relaxed);
                copied
            },
            move || verify_all(checker, map, tables),
            |_| true,
        )
    };
    drop(watch);
    drop(conn);
    if super::interrupted() {
        empty(out)?;
        return Err(crate::Error::Interrupted {
            path: walker.page_file().path().to_path_buf(),
        });
    }
    let kept = match verified {
        Ok(Some(rows)) if copied.is_ok() && counts_agree(out, tables, &rows) => Some(rows),
        // Stopped early: the walk met damage, or SQLite did (which stopped the walk).
        Ok(_) | Err(crate::Error::Interrupted { .. }) => None,
        Err(e) => {
            empty(out)?;
            return Err(e);
        }
    };
    if kept.is_none() {
        transfer::undo_claims(&mut checker, map);
        walker.progress().set_position(position);
        empty(out)?;
    }
    Ok(kept)
}

/// Walks every table and its indexes; the rows of each, or `None` at the first table or
/// index that does not read whole (or an index without one entry per row).
///
/// A skim of every tree comes first ([`Walker::skim`]): it finds the common damage, a zeroed
/// or overwritten page, in a fraction of the walk's time, so a damaged database loses little
/// to a copy it cannot keep.
fn verify_all(
    walker: &mut Walker<'_>,
    map: &mut PageMap,
    tables: &[Planned<'_>],
) -> crate::Result<Option<Vec<u64>>> {
    if tables
        .iter()
        .any(|(table, _, indexes)| table.root == 0 || indexes.iter().any(|(e, _)| e.rootpage <= 0))
        || !skims_whole(walker, map, tables)?
    {
        return Ok(None);
    }
    let mut rows = Vec::with_capacity(tables.len());
    for (table, owner, indexes) in tables {
        match transfer::verify_table(walker, map, *owner, table, indexes)? {
            Some(v) if v.whole_indexes.len() == indexes.len() => rows.push(v.rows),
            _ => return Ok(None),
        }
    }
    Ok(Some(rows))
}

/// Whether every tree of `tables` skims whole; the pages it claims are given back.
fn skims_whole(
    walker: &mut Walker<'_>,
    map: &mut PageMap,
    tables: &[Planned<'_>],
) -> crate::Result<bool> {
    let position = walker.progress().position();
    let first = walker.claims_logged();
    walker.skim(true);
    walker.stop_when_damaged(true);
    let whole = skim_trees(walker, map, tables);
    walker.skim(false);
    walker.stop_when_damaged(false);
    for &p in walker.claimed_since(first) {
        map.set(p, PageStatus::Unseen, NO_OWNER);
    }
    walker.progress().set_position(position);
    whole
}

fn skim_trees(
    walker: &mut Walker<'_>,
    map: &mut PageMap,
    tables: &[Planned<'_>],
) -> crate::Result<bool> {
    let any = |_: Option<i64>, _: &[u64]| true;
    for (table, owner, indexes) in tables {
        let fits = |_: Option<i64>, types: &[u64]| table.fits(types);
        let table_tree = (
            table.root,
            *owner,
            TreeKind::of(table),
            &fits as ShapeCheck<'_>,
        );
        let index_trees = indexes.iter().map(|(e, o)| {
            let root = u32::try_from(e.rootpage).unwrap_or(0);
            (root, *o, TreeKind::Index, &any as ShapeCheck<'_>)
        });
        for (root, owner, kind, shape) in std::iter::once(table_tree).chain(index_trees) {
            let stats =
                walker.walk(map, owner, root, kind, PageStatus::Tree, shape, &mut |_| {
                    Ok(())
                })?;
            if stats.is_damaged() {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Whether every table in the copy has the rows its walk found.
fn counts_agree(out: &Path, tables: &[Planned<'_>], rows: &[u64]) -> bool {
    let Ok(conn) = Connection::open(out) else {
        return false;
    };
    tables.iter().zip(rows).all(|((table, _, _), &n)| {
        conn.query_row(
            &format!("SELECT count(*) FROM main.{}", ident(&table.name)),
            [],
            |r| r.get::<_, i64>(0),
        )
        .is_ok_and(|c| u64::try_from(c) == Ok(n))
    })
}

/// Leaves `out` empty, as it was before the copy, with nothing beside it.
fn empty(out: &Path) -> crate::Result<()> {
    for suffix in ["-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(crate::pagefile::sidecar(out, suffix));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(out)
        .and_then(|f| f.set_len(0))
        .map_err(|e| crate::Error::io(out, e))
}
