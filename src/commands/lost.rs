//! `sqlite-rescue lost DB [--table T]`: just the list of rows that cannot be recovered,
//! ready to paste into a ticket or feed a re-import script. The engine runs on a private
//! snapshot in a temporary folder; nothing is left behind.

use crate::engine::losses::{table_lines, IndexedValues, LostRange};
use crate::engine::{self, Report};
use crate::error::{exit, Error, Result};
use crate::output::report::Outcome;
use crate::source::snapshot::{self, SnapshotOptions};
use crate::util::progress::Progress;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct LostOptions {
    /// Only this table (all tables when absent).
    pub table: Option<String>,
    /// Also draw the damage map to this file.
    pub map: Option<PathBuf>,
    pub progress: Progress,
}

/// The lost rows of one table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableLost {
    pub table: String,
    pub without_rowid: bool,
    pub lost: Vec<LostRange>,
    /// What the table's surviving indexes still hold of its lost rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_values: Option<IndexedValues>,
    /// Rows may be missing that no range names (its rows went to lost_and_found, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The lines the terminal shows for this table.
    #[serde(skip)]
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LostReport {
    /// The version of this document's format (docs/report-format.md).
    pub schema_version: u32,
    pub source: PathBuf,
    pub tables: Vec<TableLost>,
    pub exit_code: i32,
}

impl Outcome for LostReport {
    fn render_text(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            for line in &t.lines {
                out.push_str(line);
                out.push('\n');
            }
            if let Some(note) = &t.note {
                out.push_str(&format!("{}: {note}\n", t.table));
            }
        }
        if self.exit_code == exit::OK {
            let which = match self.tables.as_slice() {
                [one] => one.table.clone(),
                _ => "any table".to_string(),
            };
            out.push_str(&format!(
                "Nothing was lost: no row of {which} is missing.\n"
            ));
        }
        out
    }

    fn exit_code(&self) -> i32 {
        self.exit_code
    }
}

/// Lost rows listed per table with what its indexes still hold of them (`--json` lists up
/// to 1 000).
const MAX_TEXT_ROWS: usize = 20;

/// A finished engine run on a private snapshot; the folder goes when this is dropped.
pub struct Analysis {
    pub report: Report,
    /// The snapshot's copy of the database (what the engine read).
    pub snapshot_db: PathBuf,
    _dir: tempfile::TempDir,
}

/// Snapshots `db` into a temporary folder and runs the engine on the snapshot.
pub fn analyze(db: &Path, progress: Progress) -> Result<Analysis> {
    let dir = crate::util::paths::temp_dir("sqlite-rescue-lost-")?;
    let manifest = snapshot::take(
        db,
        &dir.path().join("snapshot"),
        &SnapshotOptions {
            // A diagnosis: take what is there (the manifest says if it kept changing).
            allow_changing: true,
            progress,
        },
    )?;
    let snapshot_db = manifest.db_path();
    let out = dir.path().join("recovered.sqlite3");
    let options = engine::Options {
        progress,
        ..engine::Options::default()
    };
    let mut report = engine::recover(&snapshot_db, &out, &options).map_err(|e| match e {
        Error::Unusable { reason, .. } => Error::Unusable {
            path: db.to_path_buf(),
            reason,
        },
        other => other,
    })?;
    report.source = crate::util::paths::resolved(db);
    Ok(Analysis {
        report,
        snapshot_db,
        _dir: dir,
    })
}

/// Lists the rows of `db` (or of one table) that recovery cannot bring back.
pub fn lost(db: &Path, opts: &LostOptions) -> Result<LostReport> {
    let analysis = analyze(db, opts.progress)?;
    lost_in(db, &analysis, opts)
}

/// The lost rows of a finished analysis of `db`.
fn lost_in(db: &Path, analysis: &Analysis, opts: &LostOptions) -> Result<LostReport> {
    if let Some(map) = &opts.map {
        crate::output::map::write(&analysis.report, &analysis.snapshot_db, map)?;
    }
    let report = &analysis.report;
    if let Some(name) = &opts.table {
        if !report.tables.iter().any(|t| &t.name == name) {
            let known: Vec<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "no table {name:?} in the database (tables: {})",
                known.join(", ")
            )));
        }
    }
    let lost_command = format!(
        "{} lost {}",
        crate::util::quote::tool_command(),
        crate::util::quote::shell(db)
    );
    let tables: Vec<TableLost> = report
        .tables
        .iter()
        .filter(|t| opts.table.as_ref().is_none_or(|n| &t.name == n))
        .filter(|t| !t.name.starts_with("sqlite_"))
        .map(|t| {
            let note = match &t.refused {
                Some(why) => Some(why.clone()),
                None if t.rows_may_be_missing && t.lost.is_empty() => Some(
                    "rows may be missing, but which cannot be told (see recover's report)"
                        .to_string(),
                ),
                None => None,
            };
            TableLost {
                table: t.name.clone(),
                without_rowid: t.without_rowid,
                lost: t.lost.clone(),
                lost_values: t.lost_values.clone(),
                note,
                lines: table_lines(t, MAX_TEXT_ROWS, &lost_command),
            }
        })
        .collect();
    let damaged = tables
        .iter()
        .any(|t| !t.lost.is_empty() || t.note.is_some());
    Ok(LostReport {
        schema_version: crate::commands::recover::REPORT_SCHEMA_VERSION,
        source: report.source.clone(),
        tables,
        exit_code: if damaged { exit::DAMAGE } else { exit::OK },
    })
}

/// `lost --fill-from BACKUP`: the lost rows, and which of them the backups can fill (filled
/// into the analysis's private recovered copy, which goes with it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LostFillReport {
    #[serde(flatten)]
    pub lost: LostReport,
    pub fill: engine::FillReport,
}

impl Outcome for LostFillReport {
    fn render_text(&self) -> String {
        let mut out = self.lost.render_text();
        out.push_str(&crate::commands::recover::fill_text(&self.fill, true));
        out
    }

    fn exit_code(&self) -> i32 {
        self.lost.exit_code
    }
}

/// Lists the lost rows of `db` and what `backups` can fill of them; a backup of another
/// database is refused before the analysis.
pub fn lost_fill(db: &Path, opts: &LostOptions, backups: &[PathBuf]) -> Result<LostFillReport> {
    let backups = engine::fill::Backups::open(backups)?;
    if let Some(tables) = engine::fill::tables_of(db) {
        backups.refuse_unrelated(&tables.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    let analysis = analyze(db, opts.progress)?;
    let lost = lost_in(db, &analysis, opts)?;
    let fill = engine::fill::fill(
        &analysis.report.output,
        &analysis.report,
        &analysis.snapshot_db,
        &backups,
    )?;
    Ok(LostFillReport { lost, fill })
}
