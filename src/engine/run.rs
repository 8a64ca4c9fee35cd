//! One recovery, run in phases: schema, copy, decode, salvage, objects, counts and losses,
//! verify.

use crate::engine::copy::{transfer, vfs};
use crate::engine::decode::{InternalRows, PLANNER_TABLES};
use crate::engine::objects::{create_objects, install_virtual_tables};
use crate::engine::pages::{Claims, PageStatus};
use crate::engine::report::{Options, PageMapSnapshot, Report, TableReport};
use crate::engine::salvage::freelist::claim_ptrmap_pages;
use crate::engine::salvage::orphans;
use crate::engine::schema::SchemaEntry;
use crate::engine::walk::{RowRef, TreeKind, Walker};
use crate::engine::writer::{self, OutputSettings, Writer};
use crate::engine::{losses, schema, Engine};
use crate::error::{Error, Result};
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use crate::util::interrupt::{interrupted, InterruptWatch};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

impl Engine<'_> {
    pub(crate) fn run(
        pf: &mut PageFile,
        tmp: &Path,
        options: &Options,
        transfer: bool,
    ) -> Result<Report> {
        let started = std::time::Instant::now();
        let mut timings = BTreeMap::new();
        let mut lap = |name: &str, since: &mut std::time::Instant| {
            timings.insert(name.to_string(), since.elapsed().as_secs_f64());
            *since = std::time::Instant::now();
        };
        let mut since = started;
        let mut map = Claims::new(pf.page_count());
        let bar = options
            .progress
            .pages("recovering", u64::from(pf.page_count()));
        let (mut entries, encoding, schema_whole) = read_schema(pf, &mut map, bar.clone())?;
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
            encoding,
            indexes_walked: HashSet::new(),
            present: HashSet::new(),
        };
        let (tables, refused) = schema::interpret(&entries);
        let mut walker = Walker::new(pf, bar.clone(), &interrupted);
        let mut copied: Vec<Option<TableReport>> = vec![None; tables.len()];
        let view = transfer.then(|| vfs::Registration::new(pf)).flatten();
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
        let mut writer = Writer::new(&conn, tmp, encoding, &tables);
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
        claim_ptrmap_pages(pf, &mut engine.map);
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
            owners: engine.map.owner_names().to_vec(),
            pages: engine.map.iter().map(|(_, s, o)| (s, o)).collect(),
        };
        Ok(Report {
            source: PathBuf::new(),
            output: PathBuf::new(),
            geometry: pf.geometry().clone(),
            wal: pf.wal().cloned(),
            journal: pf.journal().cloned(),
            schema_entries: entries.len(),
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
}

/// Unreadable pages that nothing explains. A lost page whose part of the tree orphan pages
/// filled was an interior page (it held no rows); a lost page of an index held no rows either.
pub(crate) fn unexplained_pages(map: &Claims, reports: &[TableReport], tables: usize) -> u64 {
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

/// Reads `sqlite_schema` from page 1's tree, skipping cells that do not decode.
pub(crate) fn read_schema(
    pf: &PageFile,
    map: &mut Claims,
    bar: indicatif::ProgressBar,
) -> Result<(Vec<SchemaEntry>, TextEncoding, bool)> {
    let owner = map.owner_named("sqlite_schema");
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
pub(crate) fn whole_copy_possible(
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

pub(crate) fn output_settings(pf: &PageFile, encoding: TextEncoding) -> OutputSettings {
    let h = pf.geometry().header.as_ref();
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
    }
}

pub(crate) fn count_rows(conn: &rusqlite::Connection, table: &str) -> u64 {
    conn.query_row(
        &format!("SELECT count(*) FROM {}", writer::ident(table)),
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap_or(0) as u64
}

/// Root page → table name, from the schema as the engine reads it (SQLite need not agree).
pub(crate) fn schema_roots(db: &Path) -> Result<BTreeMap<i64, String>> {
    let pf = PageFile::open(db)?;
    let mut map = Claims::new(pf.page_count());
    let (entries, _, _) = read_schema(&pf, &mut map, indicatif::ProgressBar::hidden())?;
    Ok(entries
        .into_iter()
        .filter(|e| e.kind == "table")
        .map(|e| (e.rootpage, e.name))
        .collect())
}
