//! The recovery engine: from a snapshot's pages to a fresh database and a report.
//!
//! ```text
//! PageFile ─► PageMap ─► schema ─► walk every tree ─► freelist ─► orphans ─► Writer ─► Report
//! ```
//! Rows are streamed from the page they were found on straight into the output; nothing
//! proportional to the database's size is kept in memory except one status byte and one
//! owner number per page.

pub(crate) mod copy;
pub mod losses;
pub mod pages;
pub(crate) mod salvage;
pub(crate) mod schema;
pub(crate) mod stand_ins;
pub(crate) mod verify;
pub(crate) mod walk;
pub(crate) mod writer;

use copy::{repair, transfer, vacuum, vfs};
use salvage::orphans;

use crate::error::{Error, Result};
use crate::format::freelist;
use crate::format::ptrmap;
use crate::format::record::Field;
use crate::format::TextEncoding;
use crate::output::progress::Progress;
use crate::source::pagefile::{Geometry, PageFile, WalInfo};
use pages::{PageMap, PageStatus};
use schema::{SchemaEntry, Table};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use walk::{Hole, RowRef, TreeKind, Walker};
pub use writer::SideNames;
use writer::{OutputSettings, Writer};

/// Set by the binary's signal handler; the engine stops at the next page and removes its
/// partial output.
pub static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Interrupts SQLite's work on the output (a long `CREATE INDEX` or `integrity_check`) once
/// [`INTERRUPTED`] is set, so a signal is answered within a fraction of a second.
pub(crate) struct InterruptWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InterruptWatch {
    pub(crate) fn start(handle: rusqlite::InterruptHandle) -> InterruptWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = stop.clone();
        let thread = std::thread::Builder::new()
            .name("interrupt-watch".into())
            .spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if interrupted() {
                        handle.interrupt();
                        return;
                    }
                    // Woken early when the run ends, so it never waits out the 50 ms.
                    std::thread::park_timeout(std::time::Duration::from_millis(50));
                }
            })
            .ok();
        InterruptWatch { stop, thread }
    }
}

impl Drop for InterruptWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Also export rows found on free pages (deleted rows) into `freelist_rows`.
    pub include_freelist: bool,
    /// A healthy database with the same schema, for tables whose schema rows were lost.
    pub schema_from: Option<PathBuf>,
    /// Leave out `PRAGMA integrity_check` of the result (the caller checks it, or a benchmark
    /// times the recovery step alone). The report's `integrity` then says "not checked", and
    /// a copied index that disagrees with its rows is not found and rebuilt: a caller that
    /// skips the check and finds a problem later recovers again with the check on.
    pub skip_verify: bool,
    /// Decode every table row by row, also those that read whole (which are otherwise copied
    /// by SQLite's transfer path): the same rows, slower; for comparison and benchmarks.
    pub decode_all: bool,
    /// Never copy the whole database with `VACUUM INTO`, even when every tree reads whole:
    /// take the tables one by one, as for a damaged database; for comparison and benchmarks.
    pub table_by_table: bool,
    pub progress: Progress,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::HIDDEN
    }
}

/// What happened to one table.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableReport {
    pub name: String,
    /// Index of the tree in the page map's owner list.
    #[serde(skip)]
    pub owner: u32,
    pub root_page: u32,
    pub without_rowid: bool,
    /// Rows read by walking the table's tree from its root.
    pub walked_rows: u64,
    /// Rows from pages no tree reached, attributed back to this table by evidence.
    pub attributed_rows: u64,
    /// Rows SQLite refused on insert (duplicate key, constraint): kept in `rescue_conflicts`.
    pub conflict_rows: u64,
    /// Rows whose values could not all be read (broken overflow chain): the missing values
    /// are NULL and listed in `rescue_damaged_values`.
    pub damaged_rows: u64,
    /// Cells on readable pages that could not be decoded.
    pub bad_cells: u64,
    /// Rows read from pages that show signs of damage: present, but their values may have
    /// been altered (a flipped bit, say). Listed so they can be checked by hand.
    pub suspect_rows: u64,
    pub suspect_pages: Vec<u32>,
    /// Rows that are in the recovered table now.
    pub recovered_rows: u64,
    /// Parts of the tree that could not be read and were not filled from orphan pages.
    pub holes: Vec<Hole>,
    /// True when the table and its indexes read whole and SQLite copied its records as they
    /// are (after the engine had decoded and checked every one); false when its rows were
    /// decoded and inserted one by one.
    pub copied_intact: bool,
    /// True when rows of this table may be missing: a part of its tree could not be read and
    /// was not filled from orphan pages, or was filled but some page of the file that could
    /// have held its rows is unreadable.
    pub rows_may_be_missing: bool,
    /// The rowid ranges (or keys) of rows that are really missing, worked out from `holes`.
    pub lost: Vec<losses::LostRange>,
    /// What the table's surviving indexes still hold of its lost rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_values: Option<losses::IndexedValues>,
    /// Why the table's rows went to lost_and_found instead (its CREATE TABLE was refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// A group of pages no tree reached, and what became of its rows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrphanGroup {
    pub top_page: u32,
    pub pages: usize,
    pub rows: u64,
    pub first_rowid: Option<i64>,
    pub last_rowid: Option<i64>,
    /// "attributed", "lost_and_found", "duplicate" or "ignored".
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectReport {
    pub kind: String,
    pub name: String,
    pub created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything the engine knows about one recovery.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub source: PathBuf,
    pub output: PathBuf,
    pub geometry: Geometry,
    pub wal: Option<WalInfo>,
    /// A hot rollback journal beside the snapshot, whose original pages were read in place
    /// of the ones its unfinished transaction changed.
    pub journal: Option<crate::source::pagefile::JournalInfo>,
    pub schema_entries: usize,
    /// The names of the tables the engine added beside the user's (lost_and_found, ...),
    /// chosen free of the source's own names.
    pub side_tables: writer::SideNames,
    /// Collations the schema names that only the application registers: stand-ins that kept
    /// the source's order served during the recovery; the application must register them
    /// again before it uses the file (see how-it-works.md §3).
    pub app_collations: Vec<String>,
    /// SQL functions only the application registers, used by the schema where no stored
    /// value depends on them (CHECK, DEFAULT, virtual generated columns): stand-ins that
    /// return NULL served during the recovery; the application must register them again.
    pub app_functions: Vec<String>,
    /// Header settings of the source that the recovered file does not have, each as
    /// "setting: source X, recovered Y" (SQLite cannot write every one).
    pub settings_not_kept: Vec<String>,
    pub tables: Vec<TableReport>,
    pub objects: Vec<ObjectReport>,
    pub orphans: Vec<OrphanGroup>,
    /// Rows in lost_and_found that may be live rows of some table.
    pub lost_and_found_rows: u64,
    /// Rows also in lost_and_found that cannot be live rows: every tree read whole, so no
    /// table is missing them (deleted rows on a page the freelist lost, or an old copy).
    pub stale_rows: u64,
    pub duplicate_rows: u64,
    pub conflict_rows: u64,
    pub freelist_rows: u64,
    pub freelist_damaged: Option<String>,
    /// Pages per status ("tree", "free", "lost", "orphan-attributed", ...).
    pub pages: BTreeMap<PageStatus, u64>,
    /// `PRAGMA integrity_check` on the recovered database ("ok" or the first messages).
    pub integrity: Vec<String>,
    pub foreign_key_violations: u64,
    #[serde(skip)]
    pub page_map: Option<std::sync::Arc<PageMapSnapshot>>,
    /// The schema (page 1's tree) had unreadable parts: some tables may be unknown.
    pub schema_damaged: bool,
    /// Pages that could not be read and are not the page of a hole that orphan pages filled
    /// (zeroed or garbage pages, pages past the end): rows may have been on them.
    pub unexplained_pages: u64,
    /// SQLite's `VACUUM INTO` made the output (see [`vacuum`]): every table that read whole,
    /// was put back together or was copied around lost pages came with it.
    pub whole_database_copied: bool,
    /// Seconds spent reading and loading rows, building indexes, verifying.
    pub timings: BTreeMap<String, f64>,
}

/// The final status and owner of every page (for damage maps); owners index `owners`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageMapSnapshot {
    pub owners: Vec<String>,
    pub pages: Vec<(PageStatus, Option<u32>)>,
}

impl Report {
    pub fn integrity_ok(&self) -> bool {
        self.integrity.len() == 1 && self.integrity[0] == "ok"
    }
}

/// Who owns pages: one entry per tree, in the order trees were walked.
#[derive(Default)]
struct Owners {
    names: Vec<String>,
    by_name: HashMap<String, u32>,
}

impl Owners {
    /// The owner number of a tree, by name (the same name always gets the same number).
    fn add(&mut self, name: &str) -> u32 {
        if let Some(&o) = self.by_name.get(name) {
            return o;
        }
        self.names.push(name.to_string());
        let o = (self.names.len() - 1) as u32;
        self.by_name.insert(name.to_string(), o);
        o
    }
}

/// Recovers every readable row of the database at `snapshot_db` (with its `-wal` beside it)
/// into a new database at `out`, which must not exist. The output is written to a temporary
/// file beside `out` and renamed into place only when complete and checked.
pub fn recover(snapshot_db: &Path, out: &Path, options: &Options) -> Result<Report> {
    if out.exists() {
        return Err(Error::Refused(format!(
            "{} already exists; choose another output path",
            out.display()
        )));
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut pf = PageFile::open(snapshot_db)?;
    let tmp = tempfile::Builder::new()
        .prefix(".sqlite-rescue-")
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let mut result = Engine::run(&mut pf, tmp.path(), options, !options.decode_all);
    // An index copied whole can still disagree with its rows (a flipped byte in a value, which
    // no page structure shows): the check finds it. Decoding every table instead rebuilds
    // every index from the rows, as a damaged table's always are.
    if matches!(&result, Ok(r) if !options.skip_verify && !r.integrity_ok()
        && r.tables.iter().any(|t| t.copied_intact))
    {
        tmp.as_file()
            .set_len(0)
            .map_err(|e| Error::io(tmp.path(), e))?;
        result = Engine::run(&mut pf, tmp.path(), options, false);
    }
    let mut report = match result {
        // A signal that came after the last page (while indexes were built or the result
        // checked) stops the run too: SQLite was interrupted, or finished, but the user asked
        // to stop, so nothing is put at `out`. The temporary file goes with `tmp`.
        _ if interrupted() => {
            return Err(Error::Interrupted {
                path: out.to_path_buf(),
            })
        }
        Ok(r) => r,
        Err(Error::Interrupted { .. }) => {
            return Err(Error::Interrupted {
                path: out.to_path_buf(),
            })
        }
        // SQLite failing on our own output is nearly always a write that failed: name the
        // output, say it is gone, and say what usually causes it (a full disk makes SQLite
        // report "disk image is malformed" when it reads back a page it could not write).
        Err(Error::Sqlite { path, message }) if path == tmp.path() => {
            return Err(Error::Sqlite {
                path: out.to_path_buf(),
                message: format!(
                    "writing the recovered database failed: {message}; nothing was left there \
                     (is the disk full, or a file size limit in force?)"
                ),
            })
        }
        Err(e) => return Err(e),
    };
    keep_wal_mode(&pf, tmp.path());
    let file = tmp.as_file();
    file.sync_all().map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist_noclobber(out)
        .map_err(|e| Error::io(out, e.error))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    report.source = snapshot_db.to_path_buf();
    report.output = out.to_path_buf();
    Ok(report)
}

/// A source in WAL mode gives a recovered database in WAL mode: the mode is kept in the file,
/// and an app that never sets it would otherwise come back to rollback journaling, with
/// readers and the writer blocking each other. The WAL SQLite starts is checkpointed and
/// removed when the connection closes. Best effort: where the file system cannot hold a WAL
/// the recovered file stays in rollback mode rather than the recovery failing.
fn keep_wal_mode(pf: &PageFile, out: &Path) {
    if !pf.geometry().wal_mode() || interrupted() {
        return;
    }
    if let Ok(conn) = rusqlite::Connection::open(out) {
        let _ = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0));
        let _ = conn.close();
    }
    // Nothing was written through the WAL (the switch itself goes into the main file), so
    // whatever a failed close left beside the file can go.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(crate::source::pagefile::sidecar(out, suffix));
    }
}

/// What a whole copy ([`vacuum`]) did besides the tables it filled in.
#[derive(Default)]
struct WholeCopy {
    /// Tables it copied.
    copied: HashSet<String>,
    /// Tables it left to be taken one by one.
    left: Vec<String>,
    /// Orphan subtrees put back into tables it rebuilt.
    groups: Vec<OrphanGroup>,
    /// Indexes it left empty, to be built from the rows: those of tables it copied around lost
    /// pages (named by their table), and partial ones.
    reindex: Vec<String>,
}

struct Engine<'a> {
    pf: &'a PageFile,
    map: PageMap,
    owners: Owners,
    encoding: TextEncoding,
    /// Index trees already walked (with a table copied by transfer).
    indexes_walked: HashSet<String>,
    /// Indexes and views already in the output: indexes created before their table was
    /// copied (SQLite filled them from the source), or everything a whole copy brought.
    present: HashSet<String>,
}

impl Engine<'_> {
    fn run(pf: &mut PageFile, tmp: &Path, options: &Options, transfer: bool) -> Result<Report> {
        let started = std::time::Instant::now();
        let mut timings = BTreeMap::new();
        let mut lap = |name: &str, since: &mut std::time::Instant| {
            timings.insert(name.to_string(), since.elapsed().as_secs_f64());
            *since = std::time::Instant::now();
        };
        let mut since = started;
        let mut map = PageMap::new(pf.page_count());
        let mut owners = Owners::default();
        let bar = options
            .progress
            .pages("recovering", u64::from(pf.page_count()));
        let (mut entries, encoding, schema_whole) =
            read_schema(pf, &mut map, &mut owners, bar.clone())?;
        if let Some(reference) = &options.schema_from {
            let extra = schema::reference_entries(reference, &entries)
                .map_err(|e| Error::unusable(reference, format!("cannot read its schema: {e}")))?;
            entries.extend(extra);
        }
        if pf.geometry().encoding.is_none() {
            pf.set_encoding(encoding, true);
        }
        let pf: &PageFile = pf;
        let mut engine = Engine {
            pf,
            map,
            owners,
            encoding,
            indexes_walked: HashSet::new(),
            present: HashSet::new(),
        };
        let app_functions = stand_ins::functions_for(&entries);
        let (tables, refused) = schema::interpret(&entries);
        let mut walker = Walker::new(pf, bar.clone(), &interrupted);
        let mut copied: Vec<Option<TableReport>> = vec![None; tables.len()];
        let view = transfer.then(|| vfs::Registration::new(pf)).flatten();
        let app_collations = stand_ins::needed_by(&entries);
        if !app_collations.is_empty() {
            // Decoding every table builds every index: the order is needed all the same.
            let own = view.is_none().then(|| vfs::Registration::new(pf)).flatten();
            if let Some(v) = view.as_ref().or(own.as_ref()) {
                stand_ins::learn(&v.uri(), &entries, &app_collations);
            }
        }
        let whole = match &view {
            Some(view) if whole_copy_possible(pf, schema_whole, &refused, &entries, options) => {
                engine.copy_database(tmp, view, &walker, &tables, &entries, &mut copied)?
            }
            _ => None,
        };
        let conn = match &whole {
            Some(whole) => {
                let conn = writer::open_for_load(tmp)?;
                writer::drop_triggers(&conn, tmp)?;
                // Tables left out of the copy are made again when they are loaded.
                let left = tables
                    .iter()
                    .filter(|t| !t.internal && whole.left.contains(&t.name));
                writer::drop_tables(&conn, tmp, left.map(|t| t.name.as_str()))?;
                writer::reindex(&conn, tmp, whole.reindex.iter().map(String::as_str))?;
                conn
            }
            None => writer::create_database(tmp, &output_settings(pf, encoding))?,
        };
        let watch = InterruptWatch::start(conn.get_interrupt_handle());
        let source = view
            .as_ref()
            .filter(|_| copied.iter().any(Option::is_none))
            .and_then(|v| transfer::Source::attach(&conn, v));
        let (mut repaired_groups, by_vacuum) =
            whole.map(|w| (w.groups, w.copied)).unwrap_or_default();
        if let (Some(source), Some(view)) = (source, &view) {
            for (t, table) in tables.iter().enumerate() {
                if copied[t].is_none() {
                    copied[t] =
                        engine.transfer_table(&conn, &source, &mut walker, table, &entries)?;
                }
            }
            // A rowid table keeps its rowids through a copy with an INTEGER PRIMARY KEY or an
            // index; only those can be put back together or pruned and copied.
            let rebuildable = tables.iter().zip(&copied).any(|(t, c)| {
                c.is_none()
                    && !t.internal
                    && !t.without_rowid
                    && (t.ipk.is_some() || entries.iter().any(|e| e.is_index_of(&t.name)))
            });
            if rebuildable {
                let groups = engine.repair_tables(
                    &conn,
                    view,
                    &source,
                    &mut walker,
                    &tables,
                    &entries,
                    &mut copied,
                )?;
                repaired_groups.extend(groups);
            }
            transfer::Source::detach(&conn).map_err(|e| Error::sqlite(tmp, e))?;
        }
        let decoded = || tables.iter().zip(&copied).filter(|(_, c)| c.is_none());
        writer::begin_load(&conn, tmp, decoded().map(|(t, _)| t))?;
        let side_tables = writer::SideNames::free_in(entries.iter().map(|e| e.name.as_str()));
        let mut writer = Writer::new(&conn, tmp, encoding, &tables, &side_tables);
        let mut reports: Vec<TableReport> = Vec::new();
        let mut internal = InternalRows::default();
        for (t, (table, copy)) in tables.iter().zip(copied).enumerate() {
            let rep = match copy {
                Some(rep) => rep,
                None => engine.walk_table(&mut walker, &mut writer, t, table, &mut internal)?,
            };
            reports.push(rep);
        }
        for (entry, why) in &refused {
            reports.push(engine.walk_refused(&mut walker, &mut writer, entry, why)?);
        }
        engine.walk_indexes(&mut walker, &entries)?;
        let (freelist_rows, freelist_damaged) =
            engine.walk_freelist(&mut walker, &mut writer, options.include_freelist)?;
        // After the trees: a damaged header that claims auto-vacuum must not steal live pages.
        claim_ptrmap_pages(pf, &mut engine.map, &mut engine.owners);
        let orphan_result = orphans::recover_orphans(
            &mut walker,
            &mut engine.map,
            &tables,
            &mut reports,
            &mut writer,
            schema_whole,
        )?;
        let mut groups = repaired_groups;
        groups.extend(orphan_result.groups);
        writer.flush_all(&tables)?;
        for (name, seq) in &internal.sequence {
            writer.merge_sequence(name, *seq)?;
        }
        // Copying an AUTOINCREMENT table adds a row to sqlite_sequence even when the source
        // had none for it: a source whose sqlite_sequence read whole decides which rows it has.
        if tables.iter().zip(&reports).any(|(t, r)| {
            t.name == "sqlite_sequence"
                && !r.copied_intact
                && r.holes.is_empty()
                && r.bad_cells == 0
        }) {
            writer.keep_sequences_of(internal.sequence.iter().map(|(n, _)| n.as_str()))?;
        }
        writer.commit()?;
        bar.finish_and_clear();
        lap("rows", &mut since);
        let unexplained = unexplained_pages(&engine.map, &reports, tables.len());
        for rep in reports.iter_mut() {
            rep.rows_may_be_missing = rep.refused.is_some()
                || rep.holes.iter().any(|h| !h.filled)
                || (!rep.holes.is_empty() && unexplained > 0);
        }
        drop(writer);
        let spinner = options
            .progress
            .spinner("building indexes, views and triggers");
        let mut objects = create_objects(&conn, &entries, &engine.present, tmp)?;
        // A whole copy may have brought the statistics along.
        let planner_tables: Vec<&str> = tables
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| PLANNER_TABLES.contains(n) && !by_vacuum.contains(*n))
            .collect();
        writer::restore_planner_stats(&conn, &planner_tables, &internal.planner);
        // Checks run on a fresh connection that loads the whole schema, as a user's will.
        drop(watch);
        conn.close().map_err(|(_, e)| Error::sqlite(tmp, e))?;
        objects.extend(install_virtual_tables(tmp, &entries)?);
        let conn = rusqlite::Connection::open(tmp).map_err(|e| Error::sqlite(tmp, e))?;
        let _watch = InterruptWatch::start(conn.get_interrupt_handle());
        lap("indexes", &mut since);
        for (t, table) in tables.iter().enumerate() {
            if !table.internal {
                reports[t].recovered_rows = count_rows(&conn, &table.name);
            }
        }
        losses::fill(
            &losses::Inputs {
                conn: &conn,
                pf,
                tables: &tables,
                entries: &entries,
                groups: &groups,
                map: &engine.map,
                encoding,
            },
            &mut reports,
        );
        spinner.set_message("checking the recovered database (integrity_check)");
        let rows = tables
            .iter()
            .zip(&reports)
            .map(|(t, r)| (t.name.clone(), r.recovered_rows))
            .collect();
        // The disk takes the output's writes (the caller's sync then finds little left to do)
        // and the foreign keys are counted while the check reads the file.
        let (integrity, foreign_key_violations) = std::thread::scope(|scope| {
            scope.spawn(|| std::fs::File::open(tmp).and_then(|f| f.sync_data()));
            let keys = scope.spawn(|| crate::engine::verify::foreign_key_violations(tmp));
            let integrity = if options.skip_verify {
                Ok(vec!["not checked".to_string()])
            } else {
                crate::engine::verify::integrity_check(tmp, &rows, 20)
            };
            (integrity, keys.join().unwrap_or(0))
        });
        let integrity = integrity?;
        spinner.finish_and_clear();
        conn.close().map_err(|(_, e)| Error::sqlite(tmp, e))?;
        lap("verify", &mut since);
        let conflict_rows = reports.iter().map(|r| r.conflict_rows).sum();
        let page_map = PageMapSnapshot {
            owners: engine.owners.names.clone(),
            pages: engine.map.iter().map(|(_, s, o)| (s, o)).collect(),
        };
        Ok(Report {
            source: PathBuf::new(),
            output: PathBuf::new(),
            geometry: pf.geometry().clone(),
            wal: pf.wal().cloned(),
            journal: pf.journal().cloned(),
            schema_entries: entries.len(),
            side_tables,
            app_collations,
            app_functions,
            settings_not_kept: current_header(pf)
                .map(|h| writer::settings_not_kept(&h, tmp))
                .unwrap_or_default(),
            tables: reports,
            objects,
            orphans: groups,
            lost_and_found_rows: orphan_result.lost_and_found_rows,
            stale_rows: orphan_result.stale_rows,
            duplicate_rows: orphan_result.duplicate_rows,
            conflict_rows,
            freelist_rows,
            freelist_damaged,
            pages: engine.map.counts(),
            integrity,
            foreign_key_violations,
            page_map: Some(std::sync::Arc::new(page_map)),
            unexplained_pages: unexplained,
            schema_damaged: !schema_whole,
            whole_database_copied: !by_vacuum.is_empty(),
            timings,
        })
    }

    /// Copies the whole database with `VACUUM INTO` ([`vacuum`]): fills `copied` for every
    /// table it took (whole, or put back together) and says which it left to be taken one by
    /// one. `None`, with nothing claimed and `out` empty, when the tables must all be taken
    /// one by one.
    fn copy_database(
        &mut self,
        out: &Path,
        view: &vfs::Registration<'_>,
        walker: &Walker<'_>,
        tables: &[Table],
        entries: &[SchemaEntry],
        copied: &mut [Option<TableReport>],
    ) -> Result<Option<WholeCopy>> {
        let planned: Vec<vacuum::Planned<'_>> = tables
            .iter()
            .map(|t| {
                (
                    t,
                    self.owners.add(&t.name),
                    self.indexes_of(entries, &t.name),
                )
            })
            .collect();
        let Some(copy) = vacuum::try_database(
            out,
            view,
            walker,
            &mut self.map,
            &planned,
            entries,
            self.encoding,
        )?
        else {
            return Ok(None);
        };
        let mut whole = WholeCopy {
            reindex: copy.rebuild_indexes,
            ..WholeCopy::default()
        };
        for ((slot, (table, owner, indexes)), outcome) in
            copied.iter_mut().zip(&planned).zip(copy.outcomes)
        {
            let base = TableReport {
                name: table.name.clone(),
                owner: *owner,
                root_page: table.root,
                without_rowid: table.without_rowid,
                copied_intact: true,
                ..TableReport::default()
            };
            // Indexes walked beside the copy; a pruned table's were not (built again instead).
            let (report, indexes_walked) = match outcome {
                vacuum::Outcome::Left => {
                    whole.left.push(table.name.clone());
                    continue;
                }
                vacuum::Outcome::Whole(walked_rows) => (
                    TableReport {
                        walked_rows,
                        ..base
                    },
                    true,
                ),
                vacuum::Outcome::Pruned(walked_rows, holes) => {
                    whole.reindex.push(table.name.clone());
                    let report = TableReport {
                        walked_rows,
                        holes,
                        ..base
                    };
                    (report, false)
                }
                vacuum::Outcome::Rebuilt(r, walked_rows) => {
                    whole.groups.extend(r.groups);
                    let report = TableReport {
                        walked_rows,
                        attributed_rows: r.attributed_rows,
                        holes: r.holes,
                        ..base
                    };
                    (report, true)
                }
            };
            let names = indexes.iter().map(|(e, _)| e.name.clone());
            if indexes_walked {
                self.indexes_walked.extend(names.clone());
            }
            self.present.extend(names);
            whole.copied.insert(table.name.clone());
            *slot = Some(report);
        }
        self.present.extend(
            entries
                .iter()
                .filter(|e| e.kind == "view")
                .map(|e| e.name.clone()),
        );
        Ok(Some(whole))
    }

    /// Copies `table` by SQLite's transfer path if it and its indexes read whole; `None`
    /// when it must be walked and decoded row by row instead.
    fn transfer_table(
        &mut self,
        conn: &rusqlite::Connection,
        source: &transfer::Source,
        walker: &mut Walker<'_>,
        table: &Table,
        entries: &[SchemaEntry],
    ) -> Result<Option<TableReport>> {
        let owner = self.owners.add(&table.name);
        let indexes = self.indexes_of(entries, &table.name);
        let Some(done) =
            transfer::try_table(conn, source, walker, &mut self.map, owner, table, &indexes)?
        else {
            return Ok(None);
        };
        self.indexes_walked
            .extend(indexes.iter().map(|(e, _)| e.name.clone()));
        self.present.extend(done.indexes);
        Ok(Some(TableReport {
            name: table.name.clone(),
            owner,
            root_page: table.root,
            without_rowid: table.without_rowid,
            walked_rows: done.rows,
            copied_intact: true,
            ..TableReport::default()
        }))
    }

    /// The indexes of `table`, each with its owner in the page map.
    fn indexes_of<'e>(
        &mut self,
        entries: &'e [SchemaEntry],
        table: &str,
    ) -> Vec<(&'e SchemaEntry, u32)> {
        entries
            .iter()
            .filter(|e| e.is_index_of(table))
            .map(|e| (e, self.owners.add(&e.name)))
            .collect()
    }

    /// Walks every table not copied (so that only pages no tree reaches count as orphans),
    /// then puts back together, and copies, each one that lost interior pages only. The
    /// others get their pages back, to be decoded. Returns the orphan groups put back.
    #[allow(clippy::too_many_arguments)]
    fn repair_tables(
        &mut self,
        conn: &rusqlite::Connection,
        view: &vfs::Registration<'_>,
        source: &transfer::Source,
        walker: &mut Walker<'_>,
        tables: &[Table],
        entries: &[SchemaEntry],
        copied: &mut [Option<TableReport>],
    ) -> Result<Vec<OrphanGroup>> {
        let position = walker.progress().position();
        let mut walks = Vec::new();
        for (t, table) in tables.iter().enumerate() {
            if copied[t].is_some() || table.root == 0 {
                continue;
            }
            let owner = self.owners.add(&table.name);
            walker.track_claims(true);
            let (stats, readable) =
                walker.walk_whole(&mut self.map, owner, table.root, table, PageStatus::Tree)?;
            let log = walker.track_claims(false);
            walks.push((t, owner, stats, readable, log));
        }
        let subtrees = repair::orphan_subtrees(walker, &self.map);
        let mut groups = Vec::new();
        let mut repaired = HashSet::new();
        for (t, owner, stats, readable, _) in &walks {
            let table = &tables[*t];
            if !readable {
                continue;
            }
            let indexes = self.indexes_of(entries, &table.name);
            let Some(r) = repair::try_table(
                conn,
                view,
                source,
                walker,
                &mut self.map,
                *owner,
                table,
                &indexes,
                stats,
                &subtrees,
            )?
            else {
                continue;
            };
            if r.indexes_walked {
                self.indexes_walked
                    .extend(indexes.iter().map(|(e, _)| e.name.clone()));
            }
            self.present.extend(r.indexes);
            copied[*t] = Some(TableReport {
                name: table.name.clone(),
                owner: *owner,
                root_page: table.root,
                without_rowid: table.without_rowid,
                walked_rows: stats.rows,
                attributed_rows: r.attributed_rows,
                copied_intact: true,
                holes: r.holes,
                ..TableReport::default()
            });
            groups.extend(r.groups);
            repaired.insert(*t);
        }
        // Tables not put back together are decoded as before: give their pages back.
        for (t, _, _, _, log) in walks {
            if !repaired.contains(&t) {
                for p in log {
                    self.map.set(p, PageStatus::Unseen, pages::NO_OWNER);
                }
            }
        }
        walker.progress().set_position(position);
        Ok(groups)
    }

    fn walk_table(
        &mut self,
        walker: &mut Walker<'_>,
        writer: &mut Writer,
        t: usize,
        table: &Table,
        internal: &mut InternalRows,
    ) -> Result<TableReport> {
        let owner = self.owners.add(&table.name);
        let mut rep = TableReport {
            name: table.name.clone(),
            owner,
            root_page: table.root,
            without_rowid: table.without_rowid,
            ..TableReport::default()
        };
        let kind = TreeKind::of(table);
        if table.root == 0 {
            // Known only from the reference schema: its whole tree is a hole for orphans to fill.
            rep.holes.push(Hole {
                lo: None,
                hi: None,
                page: 0,
                parent: None,
                reason: "its schema row was lost; columns taken from --schema-from".into(),
                filled: false,
            });
            return Ok(rep);
        }
        let encoding = self.encoding;
        let fits = |_rowid: Option<i64>, types: &[u64]| table.fits(types);
        let before = writer.counts(t);
        let stats = walker.walk(
            &mut self.map,
            owner,
            table.root,
            kind,
            PageStatus::Tree,
            &fits,
            &mut |row: &RowRef<'_>| {
                if table.name == "sqlite_sequence" {
                    if let Some(entry) = sequence_entry(row, encoding) {
                        internal.sequence.push(entry);
                    }
                    return Ok(());
                }
                if PLANNER_TABLES.contains(&table.name.as_str()) && row.complete {
                    let values = row
                        .fields
                        .iter()
                        .map(|f| owned_value(f.value(row.payload), encoding))
                        .collect();
                    internal.planner.push((table.name.clone(), values));
                    return Ok(());
                }
                if table.internal {
                    return Ok(());
                }
                insert_walked_row(writer, t, table, row, &mut rep)
            },
        )?;
        writer.flush(t, table)?;
        let after = writer.counts(t);
        rep.walked_rows = after.in_place - before.in_place;
        rep.conflict_rows += after.conflicts - before.conflicts;
        rep.bad_cells = stats.bad_cells;
        rep.suspect_rows = stats.suspect_rows;
        rep.suspect_pages = stats.suspect_pages;
        rep.holes = stats.holes;
        Ok(rep)
    }

    /// A table whose CREATE TABLE SQLite refused: its rows are still read, into lost_and_found.
    fn walk_refused(
        &mut self,
        walker: &mut Walker<'_>,
        writer: &mut Writer,
        entry: &SchemaEntry,
        why: &str,
    ) -> Result<TableReport> {
        let root = u32::try_from(entry.rootpage).unwrap_or(0);
        let owner = self.owners.add(&entry.name);
        let mut rows = 0;
        let stats = walker.walk(
            &mut self.map,
            owner,
            root,
            TreeKind::Table,
            PageStatus::Tree,
            &|_, _| true,
            &mut |row: &RowRef<'_>| {
                rows += 1;
                writer.lost_and_found(Some(root), row.page, row.rowid, row.payload, row.fields)
            },
        )?;
        Ok(TableReport {
            name: entry.name.clone(),
            owner,
            root_page: root,
            bad_cells: stats.bad_cells,
            holes: stats.holes,
            refused: Some(format!("{why}; its {rows} rows are in lost_and_found")),
            ..TableReport::default()
        })
    }

    /// Walks index trees only to claim their pages (indexes are rebuilt from the data).
    fn walk_indexes(&mut self, walker: &mut Walker<'_>, entries: &[SchemaEntry]) -> Result<()> {
        for e in entries
            .iter()
            .filter(|e| e.kind == "index" && !self.indexes_walked.contains(&e.name))
        {
            let Ok(root) = u32::try_from(e.rootpage) else {
                continue;
            };
            if root == 0 {
                continue;
            }
            let owner = self.owners.add(&e.name);
            walker.walk(
                &mut self.map,
                owner,
                root,
                TreeKind::Index,
                PageStatus::Tree,
                &|_, _| true,
                &mut |_| Ok(()),
            )?;
        }
        Ok(())
    }

    /// Follows the freelist from the header, claiming trunk and leaf pages. Stops at the
    /// first trunk that is out of range, already claimed or implausible.
    fn walk_freelist(
        &mut self,
        walker: &mut Walker<'_>,
        writer: &mut Writer,
        include_rows: bool,
    ) -> Result<(u64, Option<String>)> {
        let Some(header) = self.pf.geometry().header.clone() else {
            return Ok((0, Some("header unreadable: freelist unknown".into())));
        };
        let owner = self.owners.add("(freelist)");
        let usable = self.pf.usable();
        let mut trunk = header.freelist_trunk;
        let mut buf = Vec::new();
        let mut found = 0u64;
        let mut leaves = Vec::new();
        let mut damaged = None;
        while trunk != 0 {
            if !self.map.is_unseen(trunk) || self.pf.read(trunk, &mut buf).is_none() {
                damaged = Some(format!(
                    "freelist trunk page {trunk} is invalid or already in use"
                ));
                break;
            }
            let Some(t) = freelist::parse_trunk(&buf, usable) else {
                break;
            };
            if t.stored_leaf_count as usize > (usable / 4).saturating_sub(2) {
                damaged = Some(format!(
                    "freelist trunk page {trunk} has an impossible leaf count"
                ));
                break;
            }
            self.map.claim(trunk, PageStatus::Free, owner);
            found += 1;
            for leaf in t.leaves {
                if self.map.claim(leaf, PageStatus::Free, owner) {
                    found += 1;
                    leaves.push(leaf);
                }
            }
            trunk = t.next_trunk;
        }
        if damaged.is_none() && found != u64::from(header.freelist_count) {
            damaged = Some(format!(
                "header counts {} free pages, the freelist holds {found}",
                header.freelist_count
            ));
        }
        let mut rows = 0;
        if include_rows {
            for leaf in leaves {
                rows += export_free_page(walker, &mut self.map, leaf, writer)?;
            }
        }
        Ok((rows, damaged))
    }
}

/// Unreadable pages that nothing explains. A lost page whose part of the tree orphan pages
/// filled was an interior page (it held no rows); a lost page of an index held no rows either.
fn unexplained_pages(map: &PageMap, reports: &[TableReport], tables: usize) -> u64 {
    let table_owners: std::collections::HashSet<u32> = reports
        .iter()
        .take(tables.max(reports.len()))
        .map(|r| r.owner)
        .collect();
    let filled: std::collections::HashSet<u32> = reports
        .iter()
        .flat_map(|r| r.holes.iter().filter(|h| h.filled).map(|h| h.page))
        .collect();
    map.iter()
        .filter(|(pgno, status, owner)| match status {
            PageStatus::Unreadable => true,
            PageStatus::Lost => {
                owner.is_some_and(|o| table_owners.contains(&o)) && !filled.contains(pgno)
            }
            _ => false,
        })
        .count() as u64
}

/// Deleted rows still on a free page that reads as a table leaf: exported, never live.
fn export_free_page(
    walker: &mut Walker<'_>,
    map: &mut PageMap,
    pgno: u32,
    writer: &mut Writer,
) -> Result<u64> {
    // Walk it under a private map so the real map keeps it as free.
    let mut private = PageMap::new(map.page_count());
    let mut rows = 0;
    walker.walk(
        &mut private,
        0,
        pgno,
        TreeKind::Table,
        PageStatus::Free,
        &|_, _| true,
        &mut |row: &RowRef<'_>| {
            rows += 1;
            writer.freelist_row(row.page, row.rowid, row.payload, row.fields)
        },
    )?;
    Ok(rows)
}

fn insert_walked_row(
    writer: &mut Writer,
    t: usize,
    table: &Table,
    row: &RowRef<'_>,
    rep: &mut TableReport,
) -> Result<()> {
    if row.fields.len() > table.stored.len() {
        writer.lost_and_found(
            Some(table.root),
            row.page,
            row.rowid,
            row.payload,
            row.fields,
        )?;
        return Ok(());
    }
    if !row.complete {
        note_damaged_value(writer, table, row)?;
        rep.damaged_rows += 1;
    }
    writer.insert_row(t, table, row.rowid, row.payload, row.fields, row.page)
}

/// Records the field a broken overflow chain cut short, with its readable prefix.
pub(crate) fn note_damaged_value(
    writer: &mut Writer,
    table: &Table,
    row: &RowRef<'_>,
) -> Result<()> {
    let (field, offset) = row
        .first_missing
        .unwrap_or((row.fields.len(), row.payload.len()));
    let prefix = row.payload.get(offset..).unwrap_or(&[]);
    let column = table
        .stored_column(field)
        .map(|c| c.name.as_str())
        .unwrap_or("?");
    let reason = match row.broken_overflow {
        Some(p) => format!("column {column}: overflow page {p} unreadable; value set to NULL"),
        None => format!("column {column}: payload cut short; value set to NULL"),
    };
    writer.damaged_value(
        &table.name,
        row.rowid,
        field,
        &reason,
        row.broken_overflow,
        prefix,
    )
}

/// The query planner's statistics tables, restored as they were so that the recovered
/// database plans its queries as the source did (an ANALYZE of its own would read it all).
const PLANNER_TABLES: [&str; 2] = ["sqlite_stat1", "sqlite_stat4"];

/// Rows of SQLite's own tables, which are not inserted like the others.
#[derive(Default)]
struct InternalRows {
    /// `sqlite_sequence`: table name and its highest AUTOINCREMENT value.
    sequence: Vec<(String, i64)>,
    /// Rows of [`PLANNER_TABLES`], by table.
    planner: Vec<(String, Vec<rusqlite::types::Value>)>,
}

fn owned_value(
    value: crate::format::record::Value<'_>,
    encoding: TextEncoding,
) -> rusqlite::types::Value {
    use crate::format::record::Value;
    use rusqlite::types::Value as Sql;
    match value {
        Value::Null => Sql::Null,
        Value::Integer(i) => Sql::Integer(i),
        Value::Real(r) => Sql::Real(r),
        Value::Blob(b) => Sql::Blob(b.to_vec()),
        Value::Text(t) => Sql::Text(String::from_utf8_lossy(&encoding.to_utf8(t)).into_owned()),
    }
}

fn sequence_entry(row: &RowRef<'_>, encoding: TextEncoding) -> Option<(String, i64)> {
    use crate::format::record::Value;
    let name = match row.fields.first()?.value(row.payload) {
        Value::Text(t) => String::from_utf8(encoding.to_utf8(t).into_owned()).ok()?,
        _ => return None,
    };
    match row.fields.get(1)? {
        Field::Integer(n) => Some((name, *n)),
        _ => None,
    }
}

fn claim_ptrmap_pages(pf: &PageFile, map: &mut PageMap, owners: &mut Owners) {
    let Some(h) = pf.geometry().header.as_ref() else {
        return;
    };
    if h.largest_root_page == 0 {
        return;
    }
    let owner = owners.add("(pointer map)");
    let usable = pf.usable();
    let mut p = 2u32;
    let step = (usable / 5) as u32 + 1;
    while p <= pf.page_count() {
        if ptrmap::is_ptrmap_page(p, usable) {
            map.claim(p, PageStatus::Ptrmap, owner);
        }
        match p.checked_add(step) {
            Some(n) => p = n,
            None => break,
        }
    }
}

/// Reads `sqlite_schema` from page 1's tree, skipping cells that do not decode.
fn read_schema(
    pf: &PageFile,
    map: &mut PageMap,
    owners: &mut Owners,
    bar: indicatif::ProgressBar,
) -> Result<(Vec<SchemaEntry>, TextEncoding, bool)> {
    let owner = owners.add("sqlite_schema");
    let mut encoding = pf.geometry().encoding;
    let mut entries = Vec::new();
    let mut walker = Walker::new(pf, bar, &interrupted);
    let fits = |_: Option<i64>, types: &[u64]| types.len() == 5;
    let mut undecoded = 0u64;
    let stats = walker.walk(
        map,
        owner,
        1,
        TreeKind::Table,
        PageStatus::Tree,
        &fits,
        &mut |row: &RowRef<'_>| {
            let enc = *encoding.get_or_insert_with(|| match row.fields.first() {
                Some(f) => match f.value(row.payload) {
                    crate::format::record::Value::Text(t) => schema::sniff_encoding(t),
                    _ => TextEncoding::Utf8,
                },
                None => TextEncoding::Utf8,
            });
            match schema::entry_from_record(row.payload, row.fields, enc) {
                Some(e) => entries.push(e),
                None => undecoded += 1,
            }
            Ok(())
        },
    )?;
    let whole = stats.holes.is_empty() && stats.bad_cells == 0 && undecoded == 0;
    Ok((entries, encoding.unwrap_or(TextEncoding::Utf8), whole))
}

/// Whether `VACUUM INTO` can make the output the engine would make: the schema read whole and
/// every row of it kept as it is, a header to copy the settings from (the view shows it with
/// the engine's page size and encoding), no reserved bytes (the output has none), and no
/// virtual table (they are installed last, each checked on its own).
fn whole_copy_possible(
    pf: &PageFile,
    schema_whole: bool,
    refused: &[(SchemaEntry, String)],
    entries: &[SchemaEntry],
    options: &Options,
) -> bool {
    let g = pf.geometry();
    !options.table_by_table
        && schema_whole
        && refused.is_empty()
        && options.schema_from.is_none()
        && g.header.is_some()
        && g.reserved_bytes == 0
        && !entries.iter().any(|e| e.kind == "table" && e.rootpage <= 0)
}

fn output_settings(pf: &PageFile, encoding: TextEncoding) -> OutputSettings {
    let current = current_header(pf);
    let h = current.as_ref().or(pf.geometry().header.as_ref());
    OutputSettings {
        page_size: pf.geometry().page_size,
        encoding,
        auto_vacuum: match h {
            Some(h) if h.largest_root_page != 0 && h.incremental_vacuum != 0 => 2,
            Some(h) if h.largest_root_page != 0 => 1,
            _ => 0,
        },
        user_version: h.map_or(0, |h| h.user_version),
        application_id: h.map_or(0, |h| h.application_id),
        reserved_bytes: pf.geometry().reserved_bytes,
    }
}

/// The header as SQLite reads it: page 1 with the -wal's committed frames laid over it, so
/// settings changed after the last checkpoint (user_version, application_id, auto_vacuum)
/// count. `None` when that page has no intact header.
fn current_header(pf: &PageFile) -> Option<crate::format::header::Header> {
    let mut page = Vec::new();
    pf.read(1, &mut page)?;
    crate::format::header::Header::parse(&page).ok()
}

/// Indexes, views and triggers after the data; virtual tables' schema rows last. What
/// SQLite refuses (a UNIQUE index over recovered duplicates, say) is reported, the data kept.
fn create_objects(
    conn: &rusqlite::Connection,
    entries: &[SchemaEntry],
    copied: &HashSet<String>,
    path: &Path,
) -> Result<Vec<ObjectReport>> {
    let mut out = Vec::new();
    for kind in ["index", "view", "trigger"] {
        for e in entries.iter().filter(|e| e.kind == kind) {
            let Some(sql) = e.sql.as_deref() else {
                continue; // automatic indexes come with their table
            };
            let result = if copied.contains(&e.name) {
                Ok(()) // created before its table was copied, and filled by the copy
            } else {
                conn.execute_batch(sql)
            };
            if let Err(err) = &result {
                if is_io_failure(err) {
                    // A full disk is not a refused index: the output is not usable.
                    return Err(Error::sqlite(path, format!("creating {}: {err}", e.name)));
                }
            }
            out.push(ObjectReport {
                kind: kind.to_string(),
                name: e.name.clone(),
                created: result.is_ok(),
                error: result.err().map(|err| err.to_string()),
            });
        }
    }
    Ok(out)
}

/// Virtual tables (FTS, R-tree, ...) get their schema row back after everything else, each
/// checked on a fresh connection as a user would open the file. One whose index is damaged
/// is rebuilt from its content where the module can ('rebuild'); one that still fails is
/// left out, its rows kept in its shadow tables as plain tables, and the report says so.
fn install_virtual_tables(path: &Path, entries: &[SchemaEntry]) -> Result<Vec<ObjectReport>> {
    let open = || rusqlite::Connection::open(path).map_err(|e| Error::sqlite(path, e));
    let mut out = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.kind == "table" && e.rootpage == 0 && !e.from_reference && e.sql.is_some())
    {
        let inserted = set_schema_row(&open()?, e).map_err(|err| err.to_string());
        if let (Ok(()), Some(why)) = (&inserted, stand_ins::module_missing(&open()?, &e.name)) {
            out.push(stand_ins::kept_verbatim(&e.name, &why));
            continue;
        }
        let mut problem = match &inserted {
            Err(err) => Some(err.clone()),
            Ok(()) => virtual_table_problem(&open()?, &e.name),
        };
        if problem.is_some() && inserted.is_ok() {
            let rebuild = format!(
                "INSERT INTO {0}({0}) VALUES ('rebuild')",
                writer::ident(&e.name)
            );
            if open()?.execute_batch(&rebuild).is_ok() {
                problem = virtual_table_problem(&open()?, &e.name);
            }
        }
        if let Some(why) = &problem {
            if inserted.is_ok() {
                let conn = open()?;
                conn.execute_batch("PRAGMA writable_schema = ON")
                    .and_then(|_| {
                        conn.execute(
                            "DELETE FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                            [&e.name],
                        )
                    })
                    .map_err(|err| {
                        Error::sqlite(path, format!("removing {}: {err} ({why})", e.name))
                    })?;
            }
        }
        out.push(ObjectReport {
            kind: "virtual table".to_string(),
            name: e.name.clone(),
            created: problem.is_none(),
            error: problem.map(|why| {
                format!(
                    "not recreated ({why}); its rows are kept in the plain tables {}_*",
                    e.name
                )
            }),
        });
    }
    Ok(out)
}

/// Errors that mean the output file itself failed (disk full, I/O), not that SQLite refused
/// one statement.
fn is_io_failure(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        err.sqlite_error_code(),
        Some(DiskFull | SystemIoFailure | CannotOpen | ReadOnly | OutOfMemory | DatabaseCorrupt)
    )
}

/// Writes one virtual table's row into sqlite_schema (the module is not loaded to do it).
fn set_schema_row(conn: &rusqlite::Connection, e: &SchemaEntry) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA writable_schema = ON")?;
    conn.execute(
        "INSERT INTO sqlite_schema(type, name, tbl_name, rootpage, sql) VALUES ('table', ?1, ?2, 0, ?3)",
        rusqlite::params![e.name, e.tbl_name, e.sql],
    )?;
    conn.execute_batch("PRAGMA writable_schema = OFF")
}

/// Why a virtual table does not work in the output, if it does not: its schema does not
/// load, it cannot be read, or integrity_check finds its index damaged.
fn virtual_table_problem(conn: &rusqlite::Connection, name: &str) -> Option<String> {
    let probe = format!("SELECT count(*) FROM {}", writer::ident(name));
    if let Err(e) = conn.query_row(&probe, [], |r| r.get::<_, i64>(0)) {
        return Some(e.to_string());
    }
    let messages = match conn
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        }) {
        Ok(m) => m,
        Err(e) => return Some(e.to_string()),
    };
    messages.into_iter().find(|m| m != "ok" && m.contains(name))
}

fn count_rows(conn: &rusqlite::Connection, table: &str) -> u64 {
    conn.query_row(
        &format!("SELECT count(*) FROM {}", writer::ident(table)),
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap_or(0) as u64
}

/// The names the engine gives its own tables when it recovers `db` (see
/// [`writer::SideNames`]): decided by the source's schema alone.
pub(crate) fn side_table_names(db: &Path) -> Result<writer::SideNames> {
    let pf = PageFile::open(db)?;
    let mut map = PageMap::new(pf.page_count());
    let mut owners = Owners::default();
    let (entries, _, _) =
        read_schema(&pf, &mut map, &mut owners, indicatif::ProgressBar::hidden())?;
    Ok(writer::SideNames::free_in(
        entries.iter().map(|e| e.name.as_str()),
    ))
}

/// Root page → table name, from the schema as the engine reads it (SQLite need not agree).
pub(crate) fn schema_roots(db: &Path) -> Result<BTreeMap<i64, String>> {
    let pf = PageFile::open(db)?;
    let mut map = PageMap::new(pf.page_count());
    let mut owners = Owners::default();
    let (entries, _, _) =
        read_schema(&pf, &mut map, &mut owners, indicatif::ProgressBar::hidden())?;
    Ok(entries
        .into_iter()
        .filter(|e| e.kind == "table")
        .map(|e| (e.rootpage, e.name))
        .collect())
}
