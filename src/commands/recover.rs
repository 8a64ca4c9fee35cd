//! The `recover` command: snapshot → engine → integrity_check → diff → report.json, in an
//! incident folder (or, with --dry-run, in a temporary one that is removed afterwards).

use crate::commands::diff::{self, CountedBy, DiffReport};
use crate::commands::restore::shell::{sh_quote, tool_command};
use crate::engine::{self, Report};
use crate::error::{exit, Error, Result};
use crate::output::progress::Progress;
use crate::output::report::Outcome;
use crate::source::pagefile::sidecar;
use crate::source::snapshot::{self, Manifest, SnapshotOptions};
use std::path::{Path, PathBuf};

/// Version of the report.json layout (docs/report-format.md).
pub(crate) const REPORT_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct RecoverCommand {
    pub db: PathBuf,
    pub out: Option<PathBuf>,
    pub incident_dir: Option<PathBuf>,
    pub dry_run: bool,
    pub allow_changing: bool,
    pub include_freelist: bool,
    /// A healthy database with the same schema, for tables whose schema rows were lost.
    pub schema_from: Option<PathBuf>,
    /// Draw the damage map (SVG) to this file.
    pub map: Option<PathBuf>,
    pub progress: Progress,
}

/// One table in the incident report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableSummary {
    pub table: String,
    pub source_rows: Option<u64>,
    pub source_counted_by: Option<CountedBy>,
    pub source_rows_max: Option<u64>,
    pub recovered_rows: Option<u64>,
    pub walked_rows: u64,
    pub attributed_rows: u64,
    pub lost_and_found_rows: u64,
    pub conflict_rows: u64,
    pub damaged_rows: u64,
    pub difference: Option<i64>,
    /// Rows of the source not in the recovered table, at least (never 0 when any evidence
    /// shows a row lost), and at most (null: unknown).
    pub missing_rows: u64,
    pub missing_rows_max: Option<u64>,
    pub holes: usize,
    /// Rowid ranges of rows that are really missing (docs/report-format.md).
    pub lost: Vec<crate::engine::losses::LostRange>,
    /// What the table's surviving indexes still hold of its lost rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_values: Option<crate::engine::losses::IndexedValues>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IncidentReport {
    pub schema_version: u32,
    pub tool_version: String,
    pub sqlite_version: String,
    pub source: PathBuf,
    pub dry_run: bool,
    /// The incident folder (absent for a dry run: it was removed).
    pub incident_dir: Option<PathBuf>,
    /// The recovered database (absent for a dry run).
    pub recovered: Option<PathBuf>,
    pub report_file: Option<PathBuf>,
    pub snapshot: Manifest,
    pub tables: Vec<TableSummary>,
    /// "complete" when every row the source holds came back in place, else "rows lost".
    pub outcome: String,
    pub exit_code: i32,
    /// Rows of the source missing from the recovered tables, at least: the sum of
    /// `tables[].missing_rows`, never 0 when any evidence shows a row lost.
    pub missing_rows: u64,
    pub lost_and_found_rows: u64,
    pub conflict_rows: u64,
    pub duplicate_rows: u64,
    pub integrity_ok: bool,
    pub integrity: Vec<String>,
    pub foreign_key_violations: u64,
    pub engine: Report,
    pub diff: DiffReport,
}

impl IncidentReport {
    /// Every row the source holds came back in place. Where SQLite could count a source
    /// table, its count is the truth; where only the engine's page walk could, a hole in the
    /// table's tree makes the count a bound (rows were lost that no count shows), and a lost
    /// range is a missing row whatever the counts say.
    fn complete(engine: &Report, diff: &DiffReport) -> bool {
        diff.tables
            .iter()
            .all(crate::commands::diff::TableDiff::is_equal)
            && diff.lost_and_found_rows <= engine.stale_rows
            && diff.conflict_rows == 0
            && engine.lost_and_found_rows == 0
            && engine
                .tables
                .iter()
                .all(|t| t.damaged_rows == 0 && t.suspect_rows == 0 && t.refused.is_none())
    }
}

impl IncidentReport {
    /// The per-table table: what the source held, what came back, and what is missing.
    fn table_text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .diff
            .tables
            .iter()
            .map(|d| {
                let t = self.tables.iter().find(|t| t.table == d.table);
                vec![
                    d.table.clone(),
                    diff::source_cell(d),
                    d.recovered_rows.map_or("-".into(), |n| n.to_string()),
                    t.map_or(0, |t| t.attributed_rows).to_string(),
                    d.lost_and_found_rows.to_string(),
                    diff::missing_cell(d),
                ]
            })
            .collect();
        crate::output::report::text_table(
            &[
                "table",
                "in source",
                "recovered",
                "put back",
                "lost_and_found",
                "missing",
            ],
            &rows,
        )
    }

    /// The lines after the summary: what to run next, and where the incident is. The very
    /// last line is the incident folder's path alone, for scripts (`tail -n 1`).
    fn next_text(&self) -> String {
        let mut out = String::new();
        let tool = tool_command();
        if self.dry_run {
            out.push_str("Dry run: nothing was written; the temporary folder is gone.\n");
            out.push_str(&format!(
                "Next: stop the application, then run: {tool} recover {}\n",
                sh_quote(&self.source)
            ));
            return out;
        }
        if let Some(r) = &self.recovered {
            out.push_str(&format!("recovered database: {}\n", r.display()));
        }
        if let Some(f) = &self.report_file {
            out.push_str(&format!("report: {}\n", f.display()));
        }
        if let Some(r) = &self.recovered {
            let restore = format!(
                "{tool} restore {} --from {}",
                sh_quote(&self.source),
                sh_quote(r)
            );
            if self.outcome == "complete" {
                out.push_str(&format!("Next: {restore}\n"));
            } else {
                out.push_str(&format!(
                    "Next: read what was lost above; to put the recovered copy in place \
                     knowing those rows are gone: {restore} --accept-loss\n"
                ));
            }
        }
        if let Some(dir) = &self.incident_dir {
            out.push_str(&format!("incident folder:\n{}\n", dir.display()));
        }
        out
    }
}

impl Outcome for IncidentReport {
    fn render_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.table_text());
        out.push('\n');
        if self.engine.schema_damaged && self.lost_and_found_rows > 0 {
            out.push_str(
                "The schema itself is damaged: rows of tables whose schema rows were lost are in \
                 lost_and_found, grouped by page.\nWith a healthy copy of the schema (a fresh \
                 database your application migrated, or a backup), run again with \
                 --schema-from FILE to put them back in their tables.\n",
            );
        }
        for t in &self.engine.tables {
            if let Some(why) = &t.refused {
                out.push_str(&format!("{}: {why}\n", t.name));
            }
            if t.attributed_rows > 0 {
                out.push_str(&format!(
                    "{}: {} rows were on pages its tree no longer reached and were put back in place\n",
                    t.name, t.attributed_rows
                ));
            }
            if t.damaged_rows > 0 {
                out.push_str(&format!(
                    "{}: {} rows had a value that could not be read whole (NULL now; see rescue_damaged_values)\n",
                    t.name, t.damaged_rows
                ));
            }
            let nothing_missing = self
                .tables
                .iter()
                .find(|s| s.table == t.name)
                .is_some_and(|s| s.missing_rows == 0 && s.missing_rows_max == Some(0));
            if t.rows_may_be_missing && !t.holes.is_empty() && !nothing_missing {
                let mut pages: Vec<u32> = t.holes.iter().map(|h| h.page).collect();
                pages.sort_unstable();
                pages.dedup();
                let pages: Vec<String> = pages.iter().map(|p| p.to_string()).collect();
                out.push_str(&format!(
                    "{}: part of its tree was unreadable (page {})\n",
                    t.name,
                    pages.join(", ")
                ));
            }
            // What the indexes hold of lost rows: one line here, the rows in `lost`.
            for line in crate::engine::losses::table_lines(t, 0) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        for line in crate::engine::losses::index_lines(&self.engine) {
            out.push_str(&line);
            out.push('\n');
        }
        for g in self
            .engine
            .orphans
            .iter()
            .filter(|g| g.outcome == "lost_and_found")
        {
            out.push_str(&format!(
                "lost_and_found: {} rows from page {} ({})\n",
                g.rows, g.top_page, g.reason
            ));
        }
        if self.conflict_rows > 0 {
            out.push_str(&format!(
                "{} rows were refused by a constraint and kept in rescue_conflicts\n",
                self.conflict_rows
            ));
        }
        if self.duplicate_rows > 0 {
            out.push_str(&format!(
                "{} rows found twice (stray copies of pages) were recovered once\n",
                self.duplicate_rows
            ));
        }
        if let Some(note) = crate::source::pagefile::missing_wal_note(
            &self.engine.geometry,
            self.engine.wal.as_ref(),
        ) {
            out.push_str(&format!("note: {note}\n"));
        }
        match &self.engine.journal {
            Some(j) if j.unusable.is_none() => out.push_str(&format!(
                "hot journal: a transaction that never committed was rolled back \
                 ({} pages read as they were before it)\n",
                j.pages
            )),
            Some(j) => out.push_str(&format!(
                "hot journal ignored: {}\n",
                j.unusable.as_deref().unwrap_or_default()
            )),
            None => {}
        }
        let failed: Vec<&engine::ObjectReport> =
            self.engine.objects.iter().filter(|o| !o.created).collect();
        let built = self.engine.objects.len() - failed.len();
        out.push_str(&format!(
            "indexes, views and triggers: {built} recreated, {} failed\n",
            failed.len()
        ));
        for o in failed {
            out.push_str(&format!(
                "  {} {}: {}\n",
                o.kind,
                o.name,
                o.error.as_deref().unwrap_or("failed")
            ));
        }
        out.push_str(&format!(
            "integrity_check of the result: {}\n",
            if self.integrity_ok {
                "ok".to_string()
            } else {
                self.integrity.join("; ")
            }
        ));
        if self.foreign_key_violations > 0 {
            let n = self.foreign_key_violations;
            let (rows, name) = if n == 1 {
                ("row", "names")
            } else {
                ("rows", "name")
            };
            out.push_str(&format!(
                "foreign_key_check: {n} {rows} {name} a parent row that is not there (kept in \
                 place; `PRAGMA foreign_key_check` lists them)\n"
            ));
        }
        out.push('\n');
        let verdict = if self.outcome == "complete" {
            "Every row the source holds came back in place.".to_string()
        } else if self.missing_rows > 0 {
            format!(
                "Some rows did not come back in place: at least {} missing (see above).",
                rows_count(self.missing_rows)
            )
        } else {
            "Some rows did not come back in place: see above.".to_string()
        };
        out.push_str(&verdict);
        out.push('\n');
        out.push_str(&self.next_text());
        out
    }

    fn exit_code(&self) -> i32 {
        self.exit_code
    }
}

/// "1 row is" / "n rows are".
fn rows_count(n: u64) -> String {
    if n == 1 {
        "1 row is".to_string()
    } else {
        format!("{n} rows are")
    }
}

/// Runs the whole pipeline.
pub fn run(cmd: &RecoverCommand) -> Result<IncidentReport> {
    if cmd.dry_run && (cmd.out.is_some() || cmd.incident_dir.is_some()) {
        return Err(Error::Usage(
            "--dry-run writes nothing: it cannot be combined with --out or --incident-dir".into(),
        ));
    }
    snapshot::refuse_sidecar(&cmd.db)?;
    let source = absolute(&cmd.db);
    if let Some(out) = &cmd.out {
        refuse_unsafe_output(&source, out)?;
    }
    // Refuse what is not a database before creating anything (reading only, no locks).
    crate::source::pagefile::PageFile::open(&cmd.db)?;
    let tmp = if cmd.dry_run {
        Some(tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?)
    } else {
        None
    };
    let (incident, created) = match (&tmp, &cmd.incident_dir) {
        (Some(t), _) => (t.path().join("incident"), None),
        (None, Some(d)) => (d.clone(), None),
        (None, None) => {
            let dir = create_default_incident_dir(&source)?;
            (dir.clone(), Some(dir))
        }
    };
    let result = run_in(cmd, &source, &incident);
    if let (Err(_), Some(dir)) = (&result, created) {
        // Only removed when empty: a snapshot that was kept (an interrupt after it) stays.
        let _ = std::fs::remove_dir(dir);
    }
    drop(tmp);
    result
}

/// The pipeline from the snapshot on, into `incident`.
fn run_in(cmd: &RecoverCommand, source: &Path, incident: &Path) -> Result<IncidentReport> {
    refuse_busy_incident_dir(incident)?;
    let snapshot_dir = incident.join("snapshot");
    let manifest = snapshot::take(
        &cmd.db,
        &snapshot_dir,
        &SnapshotOptions {
            allow_changing: cmd.allow_changing,
            progress: cmd.progress,
        },
    )
    .map_err(|e| match e {
        // Failing to write our own folder is not the database's fault: say where to go.
        Error::Io { path, source } if path.starts_with(incident) && !cmd.dry_run => Error::Io {
            path,
            source: std::io::Error::new(
                source.kind(),
                format!("{source}; choose a writable folder with --incident-dir DIR"),
            ),
        },
        other => other,
    })?;
    let file_name = source
        .file_name()
        .ok_or_else(|| Error::unusable(&cmd.db, "has no file name"))?;
    let snap_db = snapshot_dir.join(file_name);
    let out = match &cmd.out {
        Some(o) if !cmd.dry_run => o.clone(),
        _ => incident.join("recovered.sqlite3"),
    };
    let options = engine::Options {
        include_freelist: cmd.include_freelist,
        schema_from: cmd.schema_from.clone(),
        progress: cmd.progress,
        ..engine::Options::default()
    };
    // Stopped once the snapshot is complete: it stays, and the error says so (a dry run's
    // folder goes with it, so nothing is left there).
    let interrupted = |e: Error| match e {
        Error::Interrupted { .. } if !cmd.dry_run => Error::InterruptedAfterSnapshot {
            snapshot: absolute(&snapshot_dir),
        },
        other => other,
    };
    let engine = engine::recover(&snap_db, &out, &options).map_err(|e| match e {
        // Name the user's file, not our copy of it.
        Error::Unusable { reason, .. } => Error::Unusable {
            path: cmd.db.clone(),
            reason,
        },
        other => interrupted(other),
    })?;
    if let Some(map) = &cmd.map {
        crate::output::map::write(&engine, &snap_db, map)?;
    }
    let spinner = cmd
        .progress
        .spinner("counting rows, source against recovered");
    let diff = diff::compare(&snap_db, source, &out, Some(diff::walk_evidence(&engine)));
    spinner.finish_and_clear();
    if crate::engine::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        // Stopped before the report: the recovered file goes too, so nothing in the incident
        // folder looks finished (the snapshot, with its manifest, is complete and stays).
        let _ = std::fs::remove_file(&out);
        return Err(interrupted(Error::Interrupted { path: out }));
    }
    let diff = diff?;
    let complete = IncidentReport::complete(&engine, &diff);
    let mut report = IncidentReport {
        schema_version: REPORT_SCHEMA_VERSION,
        tool_version: crate::VERSION.to_string(),
        sqlite_version: crate::sqlite_version().to_string(),
        source: source.to_path_buf(),
        dry_run: cmd.dry_run,
        incident_dir: (!cmd.dry_run).then(|| absolute(incident)),
        recovered: (!cmd.dry_run).then(|| absolute(&out)),
        report_file: None,
        snapshot: manifest,
        tables: summarize(&engine, &diff),
        outcome: if complete { "complete" } else { "rows lost" }.to_string(),
        exit_code: if complete { exit::OK } else { exit::DAMAGE },
        missing_rows: diff.missing_rows,
        lost_and_found_rows: engine.lost_and_found_rows,
        conflict_rows: engine.conflict_rows,
        duplicate_rows: engine.duplicate_rows,
        integrity_ok: engine.integrity_ok(),
        integrity: engine.integrity.clone(),
        foreign_key_violations: engine.foreign_key_violations,
        engine,
        diff,
    };
    if !cmd.dry_run {
        let path = incident.join("report.json");
        report.report_file = Some(absolute(&path));
        write_json(&path, &report)?;
    }
    Ok(report)
}

fn summarize(engine: &Report, diff: &DiffReport) -> Vec<TableSummary> {
    diff.tables
        .iter()
        .map(|d| {
            let e = engine.tables.iter().find(|t| t.name == d.table);
            TableSummary {
                table: d.table.clone(),
                source_rows: d.source_rows,
                source_counted_by: d.source_counted_by,
                source_rows_max: d.source_rows_max,
                recovered_rows: d.recovered_rows,
                walked_rows: e.map_or(0, |t| t.walked_rows),
                attributed_rows: e.map_or(0, |t| t.attributed_rows),
                lost_and_found_rows: d.lost_and_found_rows,
                conflict_rows: e.map_or(0, |t| t.conflict_rows),
                damaged_rows: e.map_or(0, |t| t.damaged_rows),
                difference: d.difference,
                missing_rows: d.missing_rows,
                missing_rows_max: d.missing_rows_max,
                holes: e.map_or(0, |t| t.holes.len()),
                lost: e.map_or_else(Vec::new, |t| t.lost.clone()),
                lost_values: e.and_then(|t| t.lost_values.clone()),
            }
        })
        .collect()
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let json =
        serde_json::to_vec_pretty(value).map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    std::io::Write::write_all(&mut tmp, &json).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Creates `./<db-name>.rescue-<UTC timestamp, to the microsecond>/` in the current folder
/// and returns it. The folder is made with one `mkdir`, which fails if it exists, so two
/// runs never share one: the second takes the next free `-2`, `-3`, ... name.
fn create_default_incident_dir(source: &Path) -> Result<PathBuf> {
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "db".to_string());
    let stamp = humantime::format_rfc3339_micros(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    let base = format!("{name}.rescue-{}", stamp.trim_end_matches('Z'));
    for n in 1u32.. {
        let dir = if n == 1 {
            PathBuf::from(&base)
        } else {
            PathBuf::from(format!("{base}-{n}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::Io {
                    path: absolute(&dir),
                    source: std::io::Error::new(
                        e.kind(),
                        format!("{e}; choose a writable folder with --incident-dir DIR"),
                    ),
                })
            }
        }
    }
    unreachable!("some incident folder name is free")
}

/// An incident folder must be new or empty: we never mix our files with others.
fn refuse_busy_incident_dir(dir: &Path) -> Result<()> {
    let busy = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if busy {
        return Err(Error::Refused(format!(
            "incident folder {} is not empty; choose a new one with --incident-dir",
            dir.display()
        )));
    }
    Ok(())
}

/// The output must not exist and must not be the source or one of its sidecars.
fn refuse_unsafe_output(source: &Path, out: &Path) -> Result<()> {
    let out_abs = absolute(out);
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| absolute(p));
    let src = canon(source);
    let forbidden: Vec<PathBuf> = ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|s| {
            if s.is_empty() {
                src.clone()
            } else {
                sidecar(&src, s)
            }
        })
        .collect();
    let out_canon = match out_abs.parent() {
        Some(parent) => canon(parent).join(out_abs.file_name().unwrap_or_default()),
        None => out_abs.clone(),
    };
    if forbidden.contains(&out_canon) || forbidden.contains(&out_abs) {
        return Err(Error::Refused(format!(
            "--out {} is the database or one of its sidecars; choose a new file",
            out.display()
        )));
    }
    if out.exists() || out.symlink_metadata().is_ok() {
        return Err(Error::Refused(format!(
            "--out {} already exists; choose a new file (nothing is ever overwritten)",
            out.display()
        )));
    }
    Ok(())
}
