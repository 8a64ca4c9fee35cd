//! The `recover` command: snapshot → engine → integrity_check → diff → report.json, in an
//! incident folder (or, with --dry-run, in a temporary one that is removed afterwards).

use crate::commands::diff::{self, CountedBy, DiffReport};
use crate::engine::estimate::{self, Estimate};
use crate::engine::{self, Report};
use crate::error::{exit, Error, Result};
use crate::output::report::Outcome;
use crate::source::pagefile::sidecar;
use crate::source::snapshot::{self, Manifest, SnapshotOptions};
use crate::util::paths::{absolute, resolved};
use crate::util::progress::Progress;
use crate::util::quote::{shell, tool_command};
use std::path::{Path, PathBuf};

mod fill_text;
mod render;
pub(crate) use fill_text::fill_text;

/// Version of the report.json layout (docs/report-format.md).
pub(crate) const REPORT_SCHEMA_VERSION: u32 = 2;

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
    /// How the recovered database is proved sound.
    pub verify: engine::VerifyMode,
    /// Backups to fill the lost rows from (`--fill-from`, repeatable; the newest wins).
    pub fill_from: Vec<PathBuf>,
    pub progress: Progress,
}

/// One table in the incident report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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

/// Whether every row of the source came back in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RecoveryOutcome {
    #[serde(rename = "complete")]
    Complete,
    #[serde(rename = "rows lost")]
    RowsLost,
    /// Every row came back, but an index, view, trigger or virtual table the source had
    /// was not recreated.
    #[serde(rename = "objects not recreated")]
    ObjectsNotRecreated,
}

impl RecoveryOutcome {
    fn of(engine: &Report, diff: &DiffReport) -> RecoveryOutcome {
        match (
            IncidentReport::complete(engine, diff),
            engine.objects.iter().all(|o| o.created),
        ) {
            (false, _) => RecoveryOutcome::RowsLost,
            (true, false) => RecoveryOutcome::ObjectsNotRecreated,
            (true, true) => RecoveryOutcome::Complete,
        }
    }

    fn exit_code(self) -> i32 {
        match self {
            RecoveryOutcome::Complete => exit::OK,
            _ => exit::DAMAGE,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// "complete" when every row and schema object the source holds came back in place;
    /// "rows lost", or "objects not recreated" when only indexes, views, triggers or
    /// virtual tables are missing.
    pub outcome: RecoveryOutcome,
    pub exit_code: i32,
    /// Rows of the source missing from the recovered tables, at least: the sum of
    /// `tables[].missing_rows`, never 0 when any evidence shows a row lost.
    pub missing_rows: u64,
    pub lost_and_found_rows: u64,
    pub conflict_rows: u64,
    pub duplicate_rows: u64,
    pub integrity_ok: bool,
    pub integrity: Vec<String>,
    /// `None`: SQLite could not count them ([`crate::engine::Report`]).
    pub foreign_key_violations: Option<u64>,
    pub engine: Report,
    pub diff: DiffReport,
    /// What the damage is consistent with, and how to prevent it (empty when nothing is
    /// damaged); see docs/report-format.md.
    pub causes: Vec<crate::engine::causes::Cause>,
    /// The time and free disk this recovery was expected to need, stated before it started.
    pub estimate: Estimate,
    /// What `--fill-from` put back from backups (null without it).
    pub fill: Option<engine::FillReport>,
    /// Seconds each step took (absent from reports written before it was added).
    #[serde(default)]
    pub timings: Timings,
}

/// Seconds each step of `recover` took: where the time of a run went.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Timings {
    /// Copying and hashing the database and its sidecars into the incident folder.
    pub snapshot: f64,
    /// The engine, its own phases in `engine.timings`: rows, indexes, the proof.
    pub recovery: f64,
    /// Counting the rows of both sides (`diff`).
    pub counts: f64,
    /// Filling from `--fill-from` backups (0 without them).
    pub fill: f64,
    /// The whole run, from the first check of the arguments to the report.
    pub total: f64,
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
            && engine.schema_rebuilt.is_empty()
            // Part of the schema unread: a table it named may be gone without a trace.
            && !engine.schema_damaged
            // Transactions the -wal committed past damage are rows SQLite no longer shows.
            && engine.wal.as_ref().is_none_or(|w| w.commits_ignored == 0)
            // So are transactions the -shm records and no file holds.
            && engine.wal_index_gap.as_ref().is_none_or(|g| !g.is_loss())
            && engine.tables.iter().all(|t| {
                t.damaged_rows == 0
                    && t.suspect_rows == 0
                    && t.altered_rows == 0
                    && t.refused.is_none()
            })
    }
}

/// Runs the whole pipeline.
pub fn run(cmd: &RecoverCommand) -> Result<IncidentReport> {
    let started = std::time::Instant::now();
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
    // Refuse what is not a database, or a run the disk has no room for, before creating
    // anything (reading only, no locks).
    let estimate = estimate::estimate(&cmd.db, cmd.verify)?;
    refuse_if_no_room(cmd, &estimate)?;
    let backups = open_backups(cmd, &source)?;
    if cmd.progress.shown() {
        eprintln!("This recovery should take {}.", estimate.summary());
    }
    let tmp = if cmd.dry_run {
        Some(crate::util::paths::temp_dir("sqlite-rescue-recover-")?)
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
    let result = run_in(cmd, &source, &incident, estimate, backups.as_ref(), started);
    if let (Err(_), Some(dir)) = (&result, created) {
        // Only removed when empty: a snapshot that was kept (an interrupt after it) stays.
        let _ = std::fs::remove_dir(dir);
    }
    drop(tmp);
    result
}

/// The pipeline from the snapshot on, into `incident`.
fn run_in(
    cmd: &RecoverCommand,
    source: &Path,
    incident: &Path,
    estimate: Estimate,
    backups: Option<&engine::fill::Backups>,
    started: std::time::Instant,
) -> Result<IncidentReport> {
    refuse_busy_incident_dir(incident)?;
    let mut clock = crate::util::stopwatch::Lap::start();
    let snapshot_dir = incident.join("snapshot");
    let (manifest, sealing) = take_snapshot(cmd, incident, &snapshot_dir)?;
    let snapshot_seconds = clock.lap();
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
        verify: cmd.verify,
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
    let recovery_seconds = clock.lap();
    if let Some(map) = &cmd.map {
        crate::output::map::write(&engine, &snap_db, map)?;
    }
    clock.lap();
    let spinner = cmd
        .progress
        .spinner("counting rows, source against recovered");
    let diff = diff::compare(&snap_db, source, &out, Some(diff::Known::of(&engine)));
    spinner.finish_and_clear();
    if crate::util::interrupt::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        // Stopped before the report: the recovered file goes too, so nothing in the incident
        // folder looks finished (the snapshot, with its manifest, is complete and stays).
        let _ = std::fs::remove_file(&out);
        return Err(interrupted(Error::Interrupted { path: out }));
    }
    let diff = diff?;
    let counts_seconds = clock.lap();
    let fill = fill(&out, &engine, &snap_db, backups).map_err(interrupted)?;
    // No report, and no recovered file that looks finished, without the snapshot sealed.
    sealing.finish().inspect_err(|_| {
        let _ = std::fs::remove_file(&out);
    })?;
    let timings = Timings {
        snapshot: snapshot_seconds,
        recovery: recovery_seconds,
        counts: counts_seconds,
        fill: clock.lap(),
        total: started.elapsed().as_secs_f64(),
    };
    let outcome = RecoveryOutcome::of(&engine, &diff);
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
        outcome,
        exit_code: outcome.exit_code(),
        missing_rows: diff.missing_rows,
        lost_and_found_rows: engine.lost_and_found_rows,
        conflict_rows: engine.conflict_rows,
        duplicate_rows: engine.duplicate_rows,
        integrity_ok: engine.integrity_ok(),
        integrity: engine.integrity.clone(),
        foreign_key_violations: engine.foreign_key_violations,
        causes: crate::engine::causes::likely_causes(&crate::engine::causes::evidence_of(&engine)),
        estimate,
        engine,
        diff,
        fill,
        timings,
    };
    if !cmd.dry_run {
        let path = incident.join("report.json");
        report.report_file = Some(absolute(&path));
        write_json(&path, &report)?;
    }
    Ok(report)
}

/// The snapshot of the user's files into `snapshot_dir`.
fn take_snapshot(
    cmd: &RecoverCommand,
    incident: &Path,
    snapshot_dir: &Path,
) -> Result<(Manifest, snapshot::Sealing)> {
    // The disk takes the copies while the engine reads them from the page cache: the run
    // waits for the snapshot to be sealed only before its report.
    snapshot::take_sealing_behind(
        &cmd.db,
        snapshot_dir,
        &SnapshotOptions {
            allow_changing: cmd.allow_changing,
            progress: cmd.progress,
            // A rehearsal's snapshot is deleted with its folder: no need to wait for the disk.
            durable: !cmd.dry_run,
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
    })
}

/// The `--fill-from` backups, copied, hashed and opened before anything is created: one that
/// is the database itself, not a database, or (when the schema reads) a backup of another
/// database is refused at once.
fn open_backups(cmd: &RecoverCommand, source: &Path) -> Result<Option<engine::fill::Backups>> {
    if cmd.fill_from.is_empty() {
        return Ok(None);
    }
    if let Some(same) = cmd
        .fill_from
        .iter()
        .find(|b| resolved(b) == resolved(source))
    {
        return Err(Error::Usage(format!(
            "--fill-from {} is the damaged database itself; name an older copy of it",
            same.display()
        )));
    }
    let backups = engine::fill::Backups::open(&cmd.fill_from)?;
    if let Some(tables) = engine::fill::tables_of(&cmd.db) {
        backups.refuse_unrelated(&tables.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    Ok(Some(backups))
}

/// Fills the recovered file from the backups. A refused backup (one of another database,
/// when the damaged schema could not tell before the recovery) or an interrupt leaves no
/// recovered file that looks finished; the snapshot stays.
fn fill(
    out: &Path,
    engine: &Report,
    snapshot: &Path,
    backups: Option<&engine::fill::Backups>,
) -> Result<Option<engine::FillReport>> {
    let Some(backups) = backups else {
        return Ok(None);
    };
    let fill = engine::fill::fill(out, engine, snapshot, backups).inspect_err(|_| {
        let _ = std::fs::remove_file(out);
    })?;
    Ok(Some(fill))
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

/// Writes `value` to `path` as JSON, streamed (a report's page map can run to tens of
/// megabytes), then synced and renamed into place.
fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = std::io::BufWriter::new(tmp.as_file_mut());
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    std::io::Write::flush(&mut out).map_err(|e| Error::io(path, e))?;
    drop(out);
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Creates `./<db-name>.rescue-<UTC timestamp, to the microsecond>/` in the current folder
/// and returns it. The folder is made with one `mkdir`, which fails if it exists, so two
/// runs never share one: the second takes the next free `-2`, `-3`, ... name.
fn create_default_incident_dir(source: &Path) -> Result<PathBuf> {
    let name = source
        .file_name()
        .map_or_else(|| "db".to_string(), |n| n.to_string_lossy().into_owned());
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

/// Refuses a run the disk cannot hold, before anything is written: the snapshot goes to the
/// incident folder (a dry run's to the temporary folder), the recovered database to `--out`
/// when it is given, else beside the snapshot.
fn refuse_if_no_room(cmd: &RecoverCommand, estimate: &Estimate) -> Result<()> {
    let incident = if cmd.dry_run {
        std::env::temp_dir()
    } else {
        cmd.incident_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let out_dir = cmd
        .out
        .as_ref()
        .filter(|_| !cmd.dry_run)
        .map(|o| match o.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        });
    match out_dir {
        Some(out_dir) if !estimate::same_file_system(&incident, &out_dir) => {
            let (snapshot, recovered) = estimate.split();
            estimate::refuse_if_no_room(snapshot, &incident)?;
            estimate::refuse_if_no_room(recovered, &out_dir)
        }
        _ => estimate::refuse_if_no_room(estimate.disk_bytes, &incident),
    }
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
    let canon = resolved;
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
