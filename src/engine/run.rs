//! One recovery, run in phases: schema, copy, decode, salvage, objects, counts and losses,
//! verify.

use crate::engine::catalog::{read_catalog, Catalog};
use crate::engine::copy::{transfer, vfs};
use crate::engine::decode::{InternalRows, PLANNER_TABLES};
use crate::engine::holes::{intact_tables, mark_wal_losses, settle_holes};
use crate::engine::objects::{create_objects, install_virtual_tables};
use crate::engine::pages::Claims;
use crate::engine::report::{ObjectReport, Options, OrphanGroup, Report, TableReport};
use crate::engine::salvage::freelist::claim_ptrmap_pages;
use crate::engine::salvage::orphans;
use crate::engine::walk::{Hole, Walker};
use crate::engine::writer::{self, OutputSettings, Writer};
use crate::engine::{altered, losses, stand_ins, Engine};
use crate::error::{Error, Result};
use crate::format::TextEncoding;
use crate::source::pagefile::{PageFile, WalIndexGap};
use crate::util::interrupt::{interrupted, InterruptWatch};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// At most this many unreadable parts of trees are kept as evidence.
const MAX_WALK_DAMAGE: usize = 1000;

/// How the engine may take tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// Let SQLite copy what reads whole (the whole database at once, or table by table), and
    /// decode the rest.
    CopyWhatReadsWhole,
    /// Decode every table row by row: every index is then built from the rows.
    DecodeEveryRow,
}

/// What the copy phase leaves: the output's connection, and the tables it copied.
struct Copies {
    conn: rusqlite::Connection,
    watch: InterruptWatch,
    /// One slot per table: its report when a copy took it, `None` when it is to be decoded.
    slots: Vec<Option<TableReport>>,
    /// Orphan subtrees put back into tables that were rebuilt.
    groups: Vec<OrphanGroup>,
    /// Tables the whole copy (`VACUUM INTO`) brought.
    by_vacuum: HashSet<String>,
}

/// What the decode and salvage phases leave.
struct Rows {
    side_tables: writer::SideNames,
    reports: Vec<TableReport>,
    /// Every part of a tree the walks could not read, as first met (before orphan pages
    /// filled any): the evidence of how the damage came about.
    walk_damage: Vec<Hole>,
    groups: Vec<OrphanGroup>,
    orphans: orphans::OrphanResult,
    freelist_rows: u64,
    freelist_damaged: Option<String>,
    internal: InternalRows,
}

/// Seconds per phase, for the report.
struct Clock {
    lap: crate::util::stopwatch::Lap,
    timings: BTreeMap<String, f64>,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            lap: crate::util::stopwatch::Lap::start(),
            timings: BTreeMap::new(),
        }
    }

    fn lap(&mut self, phase: &str) {
        self.timings.insert(phase.to_string(), self.lap.lap());
    }
}

impl Engine<'_> {
    /// One recovery into `tmp`: schema, copy, decode and salvage, objects, counts and
    /// losses, verify.
    pub(crate) fn run(
        pf: &mut PageFile,
        tmp: &Path,
        options: &Options,
        strategy: Strategy,
    ) -> Result<Report> {
        let mut clock = Clock::start();
        let mut map = Claims::new(pf.page_count());
        let bar = options
            .progress
            .pages("recovering", u64::from(pf.page_count()));
        let (catalog, encoding, app_functions) = read_catalog(pf, &mut map, options, &bar)?;
        let pf: &PageFile = pf;
        let mut engine = Engine {
            pf,
            map,
            encoding,
            indexes_walked: HashSet::new(),
            present: HashSet::new(),
        };
        let mut walker = Walker::new(pf, bar.clone(), &interrupted);
        let view = (strategy == Strategy::CopyWhatReadsWhole)
            .then(|| vfs::Registration::new(pf))
            .flatten();
        let app_collations = learn_collations(pf, view.as_ref(), &catalog);
        let copies = engine.copy_phase(tmp, view.as_ref(), &mut walker, &catalog, options)?;
        let Copies {
            conn,
            watch,
            slots,
            groups,
            by_vacuum,
        } = copies;
        let mut rows =
            engine.decode_phase(&conn, tmp, &mut walker, &catalog, slots, groups, options)?;
        bar.finish_and_clear();
        clock.lap("rows");
        let unexplained = settle_holes(&mut engine.map, &mut rows.reports, catalog.tables.len());
        let wal_pages = pf.wal().map(|w| &w.pages_ignored);
        for pages in wal_pages.into_iter().chain(
            pf.wal_index_gap()
                .filter(|g| g.is_loss())
                .map(|g| &g.pages_missing),
        ) {
            mark_wal_losses(&engine.map, pages, &mut rows.reports);
        }
        let spinner = options
            .progress
            .spinner("building indexes, views and triggers");
        let done = (&rows.internal, intact_tables(&rows.reports));
        let (conn, objects, after_proof) =
            engine.objects_phase(conn, watch, tmp, &catalog, done, &by_vacuum)?;
        let _watch = InterruptWatch::start(conn.get_interrupt_handle());
        clock.lap("indexes");
        spinner.set_message("counting rows, naming lost ones, comparing rows with their indexes");
        engine.count_phase(
            &conn,
            &catalog,
            &rows.groups,
            &rows.side_tables,
            &mut rows.reports,
        );
        clock.lap("counts");
        spinner.set_message("proving the recovered database sound");
        let (integrity, foreign_key_violations) =
            verify_phase(tmp, &catalog, &rows.reports, options)?;
        spinner.finish_and_clear();
        keep_after_proof(&conn, tmp, &after_proof)?;
        conn.close().map_err(|(_, e)| Error::sqlite(tmp, e))?;
        clock.lap("verify");
        let page_map = crate::engine::page_map::build(pf, &engine.map);
        Ok(Report {
            source: PathBuf::new(),
            output: PathBuf::new(),
            geometry: pf.geometry().clone(),
            wal: pf.wal().cloned(),
            journal: pf.journal().cloned(),
            wal_index_gap: pf.wal_index_gap().cloned(),
            schema_entries: catalog.entries.len(),
            side_tables: rows.side_tables,
            app_collations,
            app_functions,
            settings_not_kept: settings_not_kept(pf, tmp),
            conflict_rows: rows.reports.iter().map(|r| r.conflict_rows).sum(),
            tables: rows.reports,
            objects,
            orphans: rows.groups,
            lost_and_found_rows: rows.orphans.lost_and_found_rows,
            stale_rows: rows.orphans.stale_rows,
            duplicate_rows: rows.orphans.duplicate_rows,
            freelist_rows: rows.freelist_rows,
            freelist_damaged: rows.freelist_damaged,
            pages: engine.map.counts(),
            integrity,
            foreign_key_violations,
            page_map: Some(std::sync::Arc::new(page_map)),
            unexplained_pages: unexplained,
            schema_damaged: !catalog.whole,
            schema_rebuilt: catalog.rebuilt,
            walk_damage: rows.walk_damage,
            whole_database_copied: !by_vacuum.is_empty(),
            timings: clock.timings,
        })
    }

    /// Copy phase: the whole database at once where it can, else each table that reads whole
    /// by the transfer path, then each that lost interior pages only, put back together.
    /// Leaves the output open, with the tables still to be decoded not yet created.
    fn copy_phase(
        &mut self,
        tmp: &Path,
        view: Option<&vfs::Registration<'_>>,
        walker: &mut Walker<'_>,
        catalog: &Catalog,
        options: &Options,
    ) -> Result<Copies> {
        let (tables, entries) = (&catalog.tables, &catalog.entries);
        let mut slots: Vec<Option<TableReport>> = vec![None; tables.len()];
        let whole = match view {
            Some(view) if whole_copy_possible(self.pf, catalog, options) => {
                self.copy_database(tmp, view, walker, tables, entries, &mut slots)?
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
            None => writer::create_database(tmp, &output_settings(self.pf, self.encoding))?,
        };
        let watch = InterruptWatch::start(conn.get_interrupt_handle());
        let (mut groups, by_vacuum) = whole.map(|w| (w.groups, w.copied)).unwrap_or_default();
        let source = view
            .filter(|_| slots.iter().any(Option::is_none))
            .and_then(|v| transfer::Source::attach(&conn, v).map(|s| (s, v)));
        if let Some((source, view)) = source {
            for (t, table) in tables.iter().enumerate() {
                if slots[t].is_none() {
                    slots[t] = self.transfer_table(&conn, &source, walker, table, entries)?;
                }
            }
            // A rowid table keeps its rowids through a copy with an INTEGER PRIMARY KEY or an
            // index; only those can be put back together or pruned and copied.
            let rebuildable = tables.iter().zip(&slots).any(|(t, c)| {
                c.is_none()
                    && !t.internal
                    && !t.without_rowid
                    && (t.ipk.is_some() || entries.iter().any(|e| e.is_index_of(&t.name)))
            });
            if rebuildable {
                let repaired =
                    self.repair_tables(&conn, view, &source, walker, tables, entries, &mut slots)?;
                groups.extend(repaired);
            }
            transfer::Source::detach(&conn).map_err(|e| Error::sqlite(tmp, e))?;
        }
        Ok(Copies {
            conn,
            watch,
            slots,
            groups,
            by_vacuum,
        })
    }

    /// Decode and salvage phases: every table no copy took is walked and its rows inserted;
    /// then refused tables, index trees, the freelist and the pointer map are claimed, and
    /// the pages no tree reached are read as orphans.
    #[allow(clippy::too_many_arguments)]
    fn decode_phase(
        &mut self,
        conn: &rusqlite::Connection,
        tmp: &Path,
        walker: &mut Walker<'_>,
        catalog: &Catalog,
        slots: Vec<Option<TableReport>>,
        mut groups: Vec<OrphanGroup>,
        options: &Options,
    ) -> Result<Rows> {
        let tables = &catalog.tables;
        let decoded = tables.iter().zip(&slots).filter(|(_, c)| c.is_none());
        writer::begin_load(conn, tmp, decoded.map(|(t, _)| t))?;
        let side_tables =
            writer::SideNames::free_in(catalog.entries.iter().map(|e| e.name.as_str()));
        let mut writer = Writer::new(conn, tmp, self.encoding, tables, &side_tables);
        let mut reports: Vec<TableReport> = Vec::new();
        let mut internal = InternalRows::default();
        for (t, (table, copy)) in tables.iter().zip(slots).enumerate() {
            let rep = match copy {
                Some(rep) => rep,
                None => self.walk_table(walker, &mut writer, t, table, &mut internal)?,
            };
            reports.push(rep);
        }
        for (entry, why) in &catalog.refused {
            reports.push(self.walk_refused(walker, &mut writer, entry, why)?);
        }
        self.walk_indexes(walker, &catalog.entries)?;
        let (mut freelist_rows, freelist_damaged) =
            self.walk_freelist(walker, &mut writer, options.include_freelist)?;
        freelist_rows += self.claim_past_end(walker, &mut writer, options.include_freelist)?;
        // After the trees: a damaged header that claims auto-vacuum must not steal live pages.
        claim_ptrmap_pages(self.pf, &mut self.map);
        let walk_damage: Vec<Hole> = reports
            .iter()
            .flat_map(|r| r.holes.iter().cloned())
            .take(MAX_WALK_DAMAGE)
            .collect();
        let mut orphans = orphans::recover_orphans(
            walker,
            &mut self.map,
            tables,
            &mut reports,
            &mut writer,
            // Commits no file holds may have left rows only on orphan pages.
            catalog.whole && !self.pf.wal_index_gap().is_some_and(WalIndexGap::is_loss),
            &catalog.entries,
        )?;
        groups.append(&mut orphans.groups);
        writer.flush_all(tables)?;
        // Copying an AUTOINCREMENT table adds a row to sqlite_sequence, or raises one: a
        // source whose sqlite_sequence read whole has it back exactly as it was (SQLite takes
        // the larger of it and the table's highest rowid, so no value there reuses a key).
        // One read in part only raises what the copy wrote.
        if tables.iter().zip(&reports).any(|(t, r)| {
            t.name == "sqlite_sequence"
                && !r.copied_intact
                && r.holes.is_empty()
                && r.bad_cells == 0
        }) {
            writer.replace_sequence(&internal.sequence)?;
        } else {
            for (_, name, seq) in &internal.sequence {
                writer.merge_sequence(name, *seq)?;
            }
        }
        writer.commit()?;
        Ok(Rows {
            side_tables,
            reports,
            walk_damage,
            groups,
            orphans,
            freelist_rows,
            freelist_damaged,
            internal,
        })
    }

    /// Objects phase: indexes, views and triggers after the rows, the planner's statistics
    /// as they were, virtual tables last. Returns a fresh connection that loads the whole
    /// schema, as a user's will, for the checks.
    fn objects_phase<'c>(
        &self,
        conn: rusqlite::Connection,
        watch: InterruptWatch,
        tmp: &Path,
        catalog: &'c Catalog,
        (internal, intact): (&InternalRows, HashSet<String>),
        by_vacuum: &HashSet<String>,
    ) -> Result<(
        rusqlite::Connection,
        Vec<ObjectReport>,
        Vec<&'c crate::engine::schema::SchemaEntry>,
    )> {
        writer::install_definitions(&conn, tmp, &catalog.tables)?;
        let source = crate::engine::objects::Source {
            index: writer::SourceIndex {
                pf: self.pf,
                encoding: self.encoding,
            },
            tables: &catalog.tables,
            intact,
        };
        let mut objects = create_objects(&conn, &catalog.entries, &self.present, tmp, &source)?;
        // A whole copy may have brought the statistics along.
        let planner_tables: Vec<&str> = catalog
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| PLANNER_TABLES.contains(n) && !by_vacuum.contains(*n))
            .collect();
        writer::restore_planner_stats(&conn, &planner_tables, &internal.planner);
        drop(watch);
        conn.close().map_err(|(_, e)| Error::sqlite(tmp, e))?;
        let source = vfs::Registration::new(self.pf);
        let source_uri = source.as_ref().map(vfs::Registration::uri);
        let (virtual_tables, after_proof) =
            install_virtual_tables(tmp, &catalog.entries, source_uri.as_deref())?;
        objects.extend(virtual_tables);
        let conn = rusqlite::Connection::open(tmp).map_err(|e| Error::sqlite(tmp, e))?;
        Ok((conn, objects, after_proof))
    }

    /// Counts and losses phase: the rows each table holds now, and what is known of the
    /// rows it lost.
    fn count_phase(
        &self,
        conn: &rusqlite::Connection,
        catalog: &Catalog,
        groups: &[OrphanGroup],
        side_tables: &writer::SideNames,
        reports: &mut [TableReport],
    ) {
        let mut records = writer::AlteredRecords::new(side_tables);
        for (t, table) in catalog.tables.iter().enumerate() {
            // A table copied whole brought its indexes: the proof of the result compares them.
            if !table.internal && !reports[t].copied_intact {
                let sources = altered::Sources {
                    pf: self.pf,
                    tops: attributed_tops(groups, &table.name),
                    encoding: self.encoding,
                    suspect_pages: &reports[t].suspect_pages,
                    every_row_in_place: reports[t].holes.is_empty()
                        && reports[t].conflict_rows == 0
                        && !reports[t].rows_may_be_missing,
                };
                let found = altered::altered_rows(
                    conn,
                    &catalog.entries,
                    &catalog.tables,
                    table,
                    &sources,
                    &mut records,
                );
                reports[t].altered_rows = found.total;
                reports[t].repaired_rows = found.repaired;
                reports[t].altered = found.described;
            }
        }
        // Counted after the altered rows: a row put back in its own table moved.
        for (t, table) in catalog.tables.iter().enumerate() {
            if !table.internal {
                reports[t].recovered_rows = count_rows(conn, &table.name);
            }
        }
        losses::fill(
            &losses::Inputs {
                conn,
                pf: self.pf,
                tables: &catalog.tables,
                entries: &catalog.entries,
                groups,
                map: &self.map,
                encoding: self.encoding,
            },
            reports,
        );
    }
}

/// The tops of the orphan subtrees put back into `table`.
fn attributed_tops(groups: &[OrphanGroup], table: &str) -> Vec<u32> {
    groups
        .iter()
        .filter(|g| g.table.as_deref() == Some(table))
        .map(|g| g.top_page)
        .collect()
}

/// Verify phase: the proof that the result is sound (`options.verify`: the fast proof or
/// SQLite's full `integrity_check`), with the foreign keys counted beside it.
fn verify_phase(
    tmp: &Path,
    catalog: &Catalog,
    reports: &[TableReport],
    options: &Options,
) -> Result<(Vec<String>, Option<u64>)> {
    let rows = catalog
        .tables
        .iter()
        .zip(reports)
        .map(|(t, r)| (t.name.clone(), r.recovered_rows))
        .collect();
    // The disk takes the output's writes (the caller's sync then finds little left to do)
    // while the proof reads the file and counts the foreign keys.
    std::thread::scope(|scope| {
        scope.spawn(|| std::fs::File::open(tmp).and_then(|f| f.sync_data()));
        if options.skip_verify {
            let keys = crate::engine::verify::foreign_key_violations(tmp);
            return Ok((vec!["not checked".to_string()], keys));
        }
        crate::engine::verify::check_with_keys(tmp, &rows, 20, options.verify)
    })
}

/// The settings the output does not share with the source, but for those the header stated
/// wrongly and the pages corrected (`geometry.inferred`): those the output has right.
fn settings_not_kept(pf: &PageFile, tmp: &Path) -> Vec<String> {
    let inferred = &pf.geometry().inferred;
    let mut settings = current_header(pf)
        .map(|h| writer::settings_not_kept(&h, tmp))
        .unwrap_or_default();
    settings.retain(|s| {
        !inferred
            .iter()
            .filter_map(|i| i.split(" (").next())
            .any(|fact| s.starts_with(fact))
    });
    settings
}

/// The collations only the application registers, each given a stand-in that keeps the
/// source's order (learned from the snapshot through `view`, or a view of its own).
fn learn_collations(
    pf: &PageFile,
    view: Option<&vfs::Registration<'_>>,
    catalog: &Catalog,
) -> Vec<String> {
    let app_collations = stand_ins::needed_by(&catalog.entries);
    if !app_collations.is_empty() {
        // Decoding every table builds every index: the order is needed all the same.
        let own = view.is_none().then(|| vfs::Registration::new(pf)).flatten();
        if let Some(v) = view.or(own.as_ref()) {
            stand_ins::learn(&v.uri(), &catalog.entries, &app_collations);
        }
    }
    app_collations
}

/// Writes the schema rows of the virtual tables SQLite's checks cannot pass (see
/// `objects::install_virtual_tables`), once the result is proved sound.
fn keep_after_proof(
    conn: &rusqlite::Connection,
    tmp: &Path,
    entries: &[&crate::engine::schema::SchemaEntry],
) -> Result<()> {
    for e in entries {
        crate::engine::objects::set_schema_row(conn, e)
            .map_err(|err| Error::sqlite(tmp, format!("keeping {}: {err}", e.name)))?;
    }
    Ok(())
}

/// Whether `VACUUM INTO` can make the output the engine would make: the schema read whole and
/// every row of it kept as it is, a header to copy the settings from (the view shows it with
/// the engine's page size and encoding), no reserved bytes (the output has none), and no
/// virtual table (they are installed last, each checked on its own).
fn whole_copy_possible(pf: &PageFile, catalog: &Catalog, options: &Options) -> bool {
    let g = pf.geometry();
    !options.table_by_table
        && catalog.whole
        && catalog.refused.is_empty()
        && options.schema_from.is_none()
        && g.header.is_some()
        && g.reserved_bytes == 0
        && !catalog
            .entries
            .iter()
            .any(|e| e.kind == crate::engine::schema::SchemaKind::Table && e.rootpage <= 0)
}

pub(crate) fn output_settings(pf: &PageFile, encoding: TextEncoding) -> OutputSettings {
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
pub(crate) fn current_header(pf: &PageFile) -> Option<crate::format::header::Header> {
    let mut page = Vec::new();
    pf.read(1, &mut page)?;
    crate::format::header::Header::parse(&page).ok()
}

/// [`current_header`], or the main file's when page 1 as SQLite reads it has none.
pub(crate) fn header_as_read(pf: &PageFile) -> Option<crate::format::header::Header> {
    current_header(pf).or_else(|| pf.geometry().header.clone())
}

pub(crate) fn count_rows(conn: &rusqlite::Connection, table: &str) -> u64 {
    conn.query_row(
        &format!("SELECT count(*) FROM {}", writer::ident(table)),
        [],
        |r| r.get::<_, i64>(0),
    )
    .ok()
    .and_then(|n| u64::try_from(n).ok())
    .unwrap_or(0)
}
