//! Whole databases are copied by SQLite's own `VACUUM INTO`.
//!
//! Copied table by table ([`crate::engine::copy::transfer`]), SQLite looks up every row's key in the new
//! table and seeks for every index entry; only `VACUUM` may append blindly, and it copies a
//! database in about two thirds of the time. But it copies everything or nothing. So when
//! SQLite reads exactly the schema the engine read, `VACUUM INTO` the output starts at once,
//! reading the engine's page view, while every table and index is skimmed, then walked and
//! checked, on the second core. The copy is kept only if every tree reads whole, every index
//! has one entry per row, and every table arrives with as many rows as its walk found.
//! Partial indexes, whose entries prove nothing, are shown empty and built again after.
//!
//! When the skim finds damage (or SQLite gives up), the copy is interrupted and the skim runs
//! to the end, so that every damaged table is known. A table that lost interior pages only is
//! put back together in the view over its surviving subtrees, one that lost pages of which
//! nothing survives is shown without them ([`crate::engine::copy::repair`]), and every other damaged table
//! is shown to SQLite as an empty tree. `VACUUM INTO` then runs again while the walks check
//! what it copies, a rebuilt table proven complete by an index as in the repair. The tables
//! shown empty are left to the engine, to be taken one by one.
//!
//! Whatever else goes wrong (damage only the walk finds, SQLite refusing the copy, a count
//! that does not agree), the output is emptied, the view shows the file again, every page the
//! walks claimed is given back, and the engine goes table by table.

mod checks;
use crate::engine::copy::repair::{self, Plan, Repaired};
use crate::engine::copy::transfer::{self, Source, SOURCE};
use crate::engine::copy::vfs::Registration;
use crate::engine::pages::{Claims, PageStatus};
use crate::engine::schema::{SchemaEntry, Table};
use crate::engine::walk::{TreeKind, WalkStats, Walker};
use crate::engine::writer::ident;
use crate::format::TextEncoding;
use checks::{counts_agree, verify_all, Verdict};
use rusqlite::Connection;
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// One table to copy: the table, its owner in the page map, and its indexes with theirs.
pub(crate) type Planned<'e> = (&'e Table, u32, Vec<(&'e SchemaEntry, u32)>);

/// What a whole copy did.
pub(crate) struct WholeCopy {
    /// Per table, in order.
    pub outcomes: Vec<Outcome>,
    /// Partial indexes of the tables it copied, left empty: to be built again from the rows.
    pub rebuild_indexes: Vec<String>,
}

/// What became of one table in a whole copy.
pub(crate) enum Outcome {
    /// Copied as it was, with this many rows.
    Whole(u64),
    /// Copied with its lost interior pages rebuilt; the rows its own walk found.
    Rebuilt(Repaired, u64),
    /// Copied around lost pages of which nothing survives: its rows, and the holes. Its
    /// indexes are in the copy but empty, to be built again from the rows.
    Pruned(u64, Vec<crate::engine::walk::Hole>),
    /// Shown empty to the copy: the engine takes it on its own.
    Left,
}

/// What the copy is to do with one table.
enum Treatment<'s> {
    Whole,
    Rebuild(Vec<repair::Planned<'s>>, &'s WalkStats),
    /// Lost pages of which nothing survives, cut out of these parents.
    Prune(Vec<(u32, Vec<u8>)>, &'s WalkStats),
    Leave,
}

/// Copies the whole database seen through `view` into `out` (an empty file) while the page
/// file `walker` reads (with its progress bar) is walked, as the module says. `None` when the
/// engine must go table by table (`out` is empty again then, and the walks' claims undone).
pub(crate) fn try_database(
    out: &Path,
    view: &Registration<'_>,
    walker: &Walker<'_>,
    map: &mut Claims,
    tables: &[Planned<'_>],
    entries: &[SchemaEntry],
    encoding: TextEncoding,
) -> crate::Result<Option<WholeCopy>> {
    if tables
        .iter()
        .any(|(table, _, indexes)| table.root == 0 || indexes.iter().any(|(e, _)| e.rootpage <= 0))
    {
        return Ok(None);
    }
    let Some(copier) = Copier::open(out, view, entries, encoding) else {
        return Ok(None);
    };
    let position = walker.progress().position();
    let everything: Vec<Treatment<'_>> = tables.iter().map(|_| Treatment::Whole).collect();
    match copier.copy(walker, map, tables, &everything, &copier.partial)? {
        Copied::Kept(outcomes) => return Ok(Some(finish(tables, outcomes, &copier.partial))),
        // Damage only the walk sees: nothing a second copy could leave out.
        Copied::WalkRejected => return Ok(None),
        Copied::SkimmedDamage | Copied::CopyFailed => {}
    }
    walker.progress().set_position(position);
    // Every tree skimmed to the end, so that every damaged table is known and the pages no
    // tree reaches are the orphans; the walks beside the copy claim the pages again.
    let pf = walker.page_file();
    let stop = crate::engine::interrupted;
    let mut skimmer = Walker::new(pf, walker.progress().clone(), &stop);
    let cp = map.checkpoint();
    skimmer.skim(true);
    let skimmed = match skim_each(&mut skimmer, map, tables, &copier.partial, false) {
        Ok(skimmed) => skimmed,
        Err(e) => {
            map.rollback(cp);
            return Err(e);
        }
    };
    let subtrees = repair::orphan_subtrees(&skimmer, map);
    let treatments = treat(view, pf, map, tables, &skimmed, &subtrees, &copier.partial);
    map.rollback(cp);
    walker.progress().set_position(position);
    // A damaged index of a table that is copied is built again from the rows, as a partial one.
    let mut rebuilt = copier.partial.clone();
    for (t, (_, damaged)) in treatments.iter().zip(&skimmed) {
        if !matches!(t, Treatment::Leave) {
            rebuilt.extend(damaged.iter().cloned());
        }
    }
    // Nothing damaged that the skim sees (SQLite met damage it does not), or nothing left to
    // copy: the engine goes table by table.
    let nothing_seen = rebuilt.len() == copier.partial.len()
        && treatments.iter().all(|t| matches!(t, Treatment::Whole));
    if nothing_seen || treatments.iter().all(|t| matches!(t, Treatment::Leave)) {
        return Ok(None);
    }
    match copier.copy(walker, map, tables, &treatments, &rebuilt)? {
        Copied::Kept(outcomes) => Ok(Some(finish(tables, outcomes, &rebuilt))),
        _ => {
            walker.progress().set_position(position);
            Ok(None)
        }
    }
}

/// Skims every table and its indexes (partial ones aside: they are built again anyway): each
/// table's walk statistics, and the indexes that did not skim whole. With `first_damage`,
/// stops after the first table that does not skim whole.
fn skim_each(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    tables: &[Planned<'_>],
    partial: &HashSet<String>,
    first_damage: bool,
) -> crate::Result<Vec<(WalkStats, Vec<String>)>> {
    let mut skimmed = Vec::with_capacity(tables.len());
    for (table, owner, indexes) in tables {
        let (stats, _) = walker.walk_whole(map, *owner, table.root, table, PageStatus::Tree)?;
        let mut damaged = Vec::new();
        for (e, o) in indexes.iter().filter(|(e, _)| !partial.contains(&e.name)) {
            if first_damage && (stats.is_damaged() || !damaged.is_empty()) {
                break;
            }
            let root = u32::try_from(e.rootpage).unwrap_or(0);
            if transfer::index_entries(walker, map, *o, root)?.is_none() {
                damaged.push(e.name.clone());
            }
        }
        let whole = !stats.is_damaged() && damaged.is_empty();
        skimmed.push((stats, damaged));
        if first_damage && !whole {
            break;
        }
    }
    Ok(skimmed)
}

/// What to do with each table after a skim found damage. A table whose tree lost interior
/// pages only, with an index to prove it complete, is rebuilt; any other damaged table is
/// left to the engine, and with it the internal tables (`sqlite_sequence` and the planner's
/// statistics, which the engine merges into the tables it writes itself).
fn treat<'s>(
    view: &Registration<'_>,
    pf: &crate::source::pagefile::PageFile,
    map: &Claims,
    tables: &[Planned<'_>],
    skimmed: &'s [(WalkStats, Vec<String>)],
    subtrees: &'s [repair::Subtree],
    partial: &HashSet<String>,
) -> Vec<Treatment<'s>> {
    let mut treatments: Vec<Treatment<'s>> = tables
        .iter()
        .zip(skimmed)
        .map(|((table, owner, indexes), (stats, damaged_indexes))| {
            // A damaged index is built again from the rows, as a partial one is.
            if !stats.is_damaged() {
                return Treatment::Whole;
            }
            let proves =
                |e: &SchemaEntry| !partial.contains(&e.name) && !damaged_indexes.contains(&e.name);
            match repair::plan(view, pf, map, *owner, table, stats, subtrees) {
                // Only an index with an entry for every row can prove a rebuilt table complete.
                Some(Plan::Rebuild(plan)) if indexes.iter().any(|(e, _)| proves(e)) => {
                    Treatment::Rebuild(plan, stats)
                }
                Some(Plan::Prune) => match repair::pruned_parents(pf, &stats.holes) {
                    Some(parents) => Treatment::Prune(parents, stats),
                    None => Treatment::Leave,
                },
                _ => Treatment::Leave,
            }
        })
        .collect();
    let any_left = tables
        .iter()
        .zip(&treatments)
        .any(|((table, _, _), t)| !table.internal && matches!(t, Treatment::Leave));
    if any_left {
        for ((table, _, _), t) in tables.iter().zip(treatments.iter_mut()) {
            if table.internal {
                *t = Treatment::Leave;
            }
        }
    }
    treatments
}

/// The pages the view shows in place of the file's for the copy: the rebuilt pages of tables
/// put back together, the parents of pruned tables' lost pages without them, and empty trees
/// for the tables left to the engine and for the indexes built again from the rows after the
/// copy: a pruned table's (they hold entries for the lost rows), `rebuilt` ones (partial ones,
/// whose entries prove nothing as a walk cannot tell which rows they should hold, and damaged
/// ones).
fn patches(
    pf: &crate::source::pagefile::PageFile,
    tables: &[Planned<'_>],
    treatments: &[Treatment<'_>],
    rebuilt: &HashSet<String>,
) -> Vec<(u32, Vec<u8>)> {
    let empty = |root: u32, kind| (root, empty_leaf(kind, pf.usable(), pf.page_size()));
    let mut shown = Vec::new();
    for ((table, _, indexes), t) in tables.iter().zip(treatments) {
        let empty_indexes = indexes.iter().map(|(e, _)| {
            let root = u32::try_from(e.rootpage).unwrap_or(0);
            empty(root, TreeKind::Index)
        });
        let empty_rebuilt = indexes
            .iter()
            .filter(|(e, _)| rebuilt.contains(&e.name))
            .map(|(e, _)| empty(u32::try_from(e.rootpage).unwrap_or(0), TreeKind::Index));
        match t {
            Treatment::Whole => shown.extend(empty_rebuilt),
            Treatment::Rebuild(plan, _) => {
                shown.extend(empty_rebuilt);
                for (hole, _, pages) in plan {
                    shown.extend(
                        pages
                            .iter()
                            .map(|(p, page)| (p.unwrap_or(hole.page), page.clone())),
                    );
                }
            }
            Treatment::Prune(parents, _) => {
                shown.extend(parents.iter().cloned());
                shown.extend(empty_indexes);
            }
            Treatment::Leave => {
                shown.push(empty(table.root, TreeKind::of(table)));
                shown.extend(empty_indexes);
            }
        }
    }
    shown
}

/// An empty leaf page of a tree of `kind`.
fn empty_leaf(kind: TreeKind, usable: usize, page_size: usize) -> Vec<u8> {
    let mut page = vec![0u8; page_size];
    page[0] = match kind {
        TreeKind::Table => 0x0d,
        TreeKind::Index => 0x0a,
    };
    // Where the (empty) cell content area starts: the end of the usable space, 0 for 65536.
    let start = u16::try_from(usable).unwrap_or(0);
    page[5..7].copy_from_slice(&start.to_be_bytes());
    page
}

/// The connection that runs `VACUUM INTO`, with the view attached.
struct Copier<'o, 'v> {
    conn: Connection,
    view: &'v Registration<'v>,
    out: &'o Path,
    target: String,
    /// Partial indexes (with a WHERE clause), by name.
    partial: HashSet<String>,
}

enum Copied {
    Kept(Vec<Outcome>),
    /// The skim found damage before the walk began (only when every table was to be whole).
    SkimmedDamage,
    /// The walk found a table or index short of what the copy needs.
    WalkRejected,
    /// SQLite gave up on the copy, or it does not have the rows the walks found.
    CopyFailed,
}

impl<'o, 'v> Copier<'o, 'v> {
    /// `None` when SQLite does not read exactly the schema the engine read, or the copy
    /// cannot be set up.
    fn open(
        out: &'o Path,
        view: &'v Registration<'v>,
        entries: &[SchemaEntry],
        encoding: TextEncoding,
    ) -> Option<Copier<'o, 'v>> {
        let target = std::path::absolute(out).ok()?.to_str()?.to_string();
        // SQLite attaches only a database in the main one's text encoding.
        let conn = Connection::open_in_memory().ok()?;
        conn.execute_batch(&format!("PRAGMA encoding = '{}'", encoding.pragma_name()))
            .ok()?;
        let source = Source::attach(&conn, view)?;
        let partial = partial_indexes(&conn).ok()?;
        Source::detach(&conn).ok()?;
        source.sees_as(entries).then_some(Copier {
            conn,
            view,
            out,
            target,
            partial,
        })
    }

    /// Attaches the view afresh (an attached view keeps the pages it has read, and the view
    /// may show other pages since) and copies it into the output.
    fn vacuum(&self) -> rusqlite::Result<usize> {
        Source::detach(&self.conn)?;
        self.conn
            .execute(&format!("ATTACH ?1 AS {SOURCE}"), [self.view.uri()])?;
        // The output is synced once, by the caller, when it is complete.
        self.conn
            .execute_batch(&format!("PRAGMA {SOURCE}.synchronous = OFF"))?;
        self.conn
            .execute(&format!("VACUUM {SOURCE} INTO ?1"), [self.target.as_str()])
    }

    /// Runs `VACUUM INTO` on this thread while a second one checks each table as
    /// `treatments` says. On anything but `Kept` the output is empty and every claim undone.
    fn copy(
        &self,
        walker: &Walker<'_>,
        map: &mut Claims,
        tables: &[Planned<'_>],
        treatments: &[Treatment<'_>],
        rebuilt: &HashSet<String>,
    ) -> crate::Result<Copied> {
        let _shown = Shown::new(
            self.view,
            patches(walker.page_file(), tables, treatments, rebuilt),
        );
        empty(self.out)?;
        let watch = crate::util::interrupt::InterruptWatch::start(self.conn.get_interrupt_handle());
        let copy_failed = AtomicBool::new(false);
        let stop = || crate::engine::interrupted() || copy_failed.load(Ordering::Relaxed);
        let mut checker = Walker::new(walker.page_file(), walker.progress().clone(), &stop);
        let cp = map.checkpoint();
        // The walks finish well before the copy: the bar says what it is still waiting for.
        let bar = walker.progress().clone();
        let label = bar.message();
        let (verified, copied) = {
            let (checker, map) = (&mut checker, &mut *map);
            transfer::copy_beside(
                &self.conn,
                || {
                    let copied = self.vacuum();
                    copy_failed.store(copied.is_err(), Ordering::Relaxed);
                    copied
                },
                move || {
                    let verified = verify_all(checker, map, tables, treatments, rebuilt);
                    bar.set_message("copying");
                    // Nothing moves the bar until the copy ends: redraw it on a timer.
                    bar.enable_steady_tick(std::time::Duration::from_millis(250));
                    verified
                },
                |v| matches!(v, Verdict::Copied(_)),
            )
        };
        walker.progress().disable_steady_tick();
        walker.progress().set_message(label);
        drop(watch);
        if crate::engine::interrupted() {
            map.rollback(cp);
            empty(self.out)?;
            return Err(crate::Error::Interrupted {
                path: walker.page_file().path().to_path_buf(),
            });
        }
        let result = match verified {
            Ok(Some(Verdict::Copied(outcomes)))
                if copied.is_ok() && counts_agree(self.out, tables, &outcomes) =>
            {
                Copied::Kept(outcomes)
            }
            Ok(Some(Verdict::Copied(_))) | Err(crate::Error::Interrupted { .. }) => {
                Copied::CopyFailed
            }
            Ok(Some(Verdict::SkimmedDamage)) => Copied::SkimmedDamage,
            Ok(None) => Copied::WalkRejected,
            Err(e) => {
                map.rollback(cp);
                empty(self.out)?;
                return Err(e);
            }
        };
        if matches!(result, Copied::Kept(_)) {
            map.keep(cp);
        } else {
            map.rollback(cp);
            empty(self.out)?;
        }
        Ok(result)
    }
}

/// Pages shown in the view in place of the file's for as long as this lives; afterwards the
/// file is read as it is again (the tables left to the engine among it).
struct Shown<'v> {
    view: &'v Registration<'v>,
    pages: Vec<u32>,
}

impl<'v> Shown<'v> {
    fn new(view: &'v Registration<'v>, pages: Vec<(u32, Vec<u8>)>) -> Shown<'v> {
        let pages = pages
            .into_iter()
            .map(|(pgno, page)| {
                view.rebuild(pgno, page);
                pgno
            })
            .collect();
        Shown { view, pages }
    }
}

impl Drop for Shown<'_> {
    fn drop(&mut self) {
        for &pgno in &self.pages {
            self.view.forget(pgno);
        }
    }
}

/// The partial indexes of the attached source.
fn partial_indexes(conn: &Connection) -> rusqlite::Result<HashSet<String>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT il.name FROM {SOURCE}.sqlite_schema AS s, pragma_index_list(s.name, '{SOURCE}') AS il
         WHERE s.type = 'table' AND il.partial"
    ))?;
    let names = stmt.query_map([], |r| r.get(0))?;
    names.collect()
}

/// The copy's outcomes, and the `rebuilt` indexes of the tables it copied, to build again.
fn finish(tables: &[Planned<'_>], outcomes: Vec<Outcome>, rebuilt: &HashSet<String>) -> WholeCopy {
    let rebuild_indexes = tables
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, Outcome::Whole(_) | Outcome::Rebuilt(..)))
        .flat_map(|((_, _, indexes), _)| indexes)
        .filter(|(e, _)| rebuilt.contains(&e.name))
        .map(|(e, _)| e.name.clone())
        .collect();
    WholeCopy {
        outcomes,
        rebuild_indexes,
    }
}

/// Leaves `out` empty, as it was before the copy, with nothing beside it.
fn empty(out: &Path) -> crate::Result<()> {
    for suffix in ["-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(crate::source::pagefile::sidecar(out, suffix));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(out)
        .and_then(|f| f.set_len(0))
        .map_err(|e| crate::Error::io(out, e))
}
