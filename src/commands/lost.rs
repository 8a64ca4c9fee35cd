//! `sqlite-rescue lost DB|INCIDENT [--table T] [--csv DIR]`: just the list of rows that
//! cannot be recovered, ready to paste into a ticket or feed a re-import script. On a
//! database, the engine runs on a private snapshot in a temporary folder and nothing is left
//! behind; on an incident folder, its report is read back (see [`crate::commands::report`]),
//! nothing is recovered again. `--csv DIR` writes what the indexes still hold of the lost rows,
//! one CSV per table, for `sqlite3 .import`.

use crate::engine::losses::{table_lines, IndexedValues, LostRange};
use crate::engine::{self, Report};
use crate::error::{exit, Error, Result};
use crate::output::report::Outcome;
use crate::source::snapshot::{self, SnapshotOptions};
use crate::util::progress::Progress;
use crate::util::quote::{shell, tool_command};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct LostOptions {
    /// Only this table (all tables when absent).
    pub table: Option<String>,
    /// Also draw the damage map to this file.
    pub map: Option<PathBuf>,
    /// Write the known values of the lost rows into this folder, one CSV per table.
    pub csv: Option<PathBuf>,
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

/// One CSV `--csv` wrote: the values a table's surviving indexes hold of its lost rows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CsvFile {
    pub table: String,
    pub path: PathBuf,
    /// The header: the rowid first, then the indexed columns.
    pub columns: Vec<String>,
    /// Rows written (one per lost row the indexes name, at most 1 000).
    pub rows: u64,
    /// Lost rows the indexes name beyond those written (the report keeps at most 1 000).
    pub not_listed: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LostReport {
    /// The version of this document's format (docs/report-format.md).
    pub schema_version: u32,
    pub source: PathBuf,
    /// The incident folder whose report was read, when one was given in place of a database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<PathBuf>,
    pub tables: Vec<TableLost>,
    /// The files `--csv` wrote.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub csv: Vec<CsvFile>,
    /// The folder `--csv` named, for the line that says when nothing was written there.
    #[serde(skip)]
    pub csv_dir: Option<PathBuf>,
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
        out.push_str(&csv_text(&self.csv, &self.source));
        let rows_lost = self.exit_code != exit::OK;
        if let (Some(dir), true) = (&self.csv_dir, self.csv.is_empty() && rows_lost) {
            out.push_str(&format!(
                "No CSV written to {}: no surviving index holds values of the lost rows.\n",
                dir.display()
            ));
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
            durable: false,
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

/// Lists the rows of `target` (a database, or an incident folder `recover` wrote), or of one
/// table, that recovery cannot bring back.
pub fn lost(target: &Path, opts: &LostOptions) -> Result<LostReport> {
    let mut lost = if crate::commands::report::is_incident(target) {
        if opts.map.is_some() {
            return Err(Error::Usage(
                "--map draws from the engine's page ledger, which report.json does not keep: \
                 run it on the database (`lost DB --map FILE.svg`), or `recover --map`"
                    .into(),
            ));
        }
        let incident = crate::commands::report::open(target, opts.progress)?;
        let command = format!("{} lost {}", tool_command(), shell(&incident.dir));
        let source = &incident.report.snapshot.source;
        let mut lost = list(&incident.report.engine, source, opts, &command)?;
        lost.incident = Some(incident.dir);
        lost
    } else {
        let analysis = analyze(target, opts.progress)?;
        lost_in(target, &analysis, opts)?
    };
    if let Some(dir) = &opts.csv {
        lost.csv = write_csv(dir, &lost.tables)?;
        lost.csv_dir = Some(dir.clone());
    }
    Ok(lost)
}

/// The lost rows of a finished analysis of `db`.
fn lost_in(db: &Path, analysis: &Analysis, opts: &LostOptions) -> Result<LostReport> {
    if let Some(map) = &opts.map {
        crate::output::map::write(&analysis.report, &analysis.snapshot_db, map)?;
    }
    let command = format!("{} lost {}", tool_command(), shell(db));
    list(&analysis.report, &analysis.report.source, opts, &command)
}

/// The lost rows `report` names, per table (or of `opts.table` alone). `lost_command` is the
/// command that lists them, for the lines that point there.
fn list(
    report: &Report,
    source: &Path,
    opts: &LostOptions,
    lost_command: &str,
) -> Result<LostReport> {
    if let Some(name) = &opts.table {
        if !report.tables.iter().any(|t| &t.name == name) {
            let known: Vec<&str> = report.tables.iter().map(|t| t.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "no table {name:?} in the database (tables: {})",
                known.join(", ")
            )));
        }
    }
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
                lines: table_lines(t, MAX_TEXT_ROWS, lost_command),
            }
        })
        .collect();
    let damaged = tables
        .iter()
        .any(|t| !t.lost.is_empty() || t.note.is_some());
    Ok(LostReport {
        schema_version: crate::commands::recover::REPORT_SCHEMA_VERSION,
        source: source.to_path_buf(),
        incident: None,
        tables,
        csv: Vec::new(),
        csv_dir: None,
        exit_code: if damaged { exit::DAMAGE } else { exit::OK },
    })
}

/// Writes one CSV per table whose indexes hold values of its lost rows into `dir` (created if
/// missing), named after the table. One file per table because each table has its own columns,
/// and `sqlite3 .import` makes one table of one file, naming its columns from the header.
/// Nothing is overwritten: when any of the files exists, none is written.
fn write_csv(dir: &Path, tables: &[TableLost]) -> Result<Vec<CsvFile>> {
    let mut planned: Vec<(&TableLost, &IndexedValues, PathBuf)> = Vec::new();
    for t in tables {
        let Some(values) = t.lost_values.as_ref().filter(|v| !v.rows.is_empty()) else {
            continue;
        };
        let stem = file_stem(&t.table);
        let path = (1u32..)
            .map(|n| match n {
                1 => dir.join(format!("{stem}.csv")),
                n => dir.join(format!("{stem}-{n}.csv")),
            })
            .find(|p| !planned.iter().any(|(_, _, q)| q == p))
            .unwrap_or_else(|| dir.join(format!("{stem}.csv")));
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(Error::Refused(format!(
                "{} already exists; give --csv a new or empty folder (nothing is ever \
                 overwritten, and no CSV was written)",
                path.display()
            )));
        }
        planned.push((t, values, path));
    }
    if planned.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    planned
        .into_iter()
        .map(|(t, values, path)| {
            let columns = csv_header(values);
            write_table_csv(&path, &columns, values)?;
            Ok(CsvFile {
                table: t.table.clone(),
                path: crate::util::paths::absolute(&path),
                columns,
                rows: values.rows.len() as u64,
                not_listed: values.not_listed,
            })
        })
        .collect()
}

/// The header: the rowid (under the first of SQLite's names for it that no indexed column
/// takes, so it can be inserted as the rowid), then the indexed columns.
fn csv_header(values: &IndexedValues) -> Vec<String> {
    let taken = |name: &str| values.columns.iter().any(|c| c.eq_ignore_ascii_case(name));
    let rowid = ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|n| !taken(n))
        .unwrap_or("rowid");
    std::iter::once(rowid.to_string())
        .chain(values.columns.iter().cloned())
        .collect()
}

/// One table's CSV: the header, then one record per lost row.
fn write_table_csv(path: &Path, header: &[String], values: &IndexedValues) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        // The values are the application's data: readable by the owner only, as the
        // recovered database is.
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let failed = |e: csv::Error| Error::io(path, std::io::Error::other(e));
    let mut w = csv::Writer::from_writer(file);
    w.write_record(header).map_err(failed)?;
    for row in &values.rows {
        let fields = std::iter::once(row.rowid.to_string()).chain(row.values.iter().map(csv_field));
        w.write_record(fields).map_err(failed)?;
    }
    let file = w
        .into_inner()
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// A value as `.import` reads it back: text as it is, numbers in full, a BLOB as its hex
/// digits (`unhex()` turns them back), NULL as an empty field.
fn csv_field(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => match o.get("blob").and_then(|b| b.as_str()) {
            Some(hex) => hex.to_string(),
            None => v.to_string(),
        },
        other => other.to_string(),
    }
}

/// A file name for a table's CSV: its name with anything but letters, digits, `_`, `-` and
/// `.` made `_` (a table name may hold `/`).
fn file_stem(table: &str) -> String {
    let stem: String = table
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match stem.trim_start_matches('.') {
        "" => "table".to_string(),
        s => s.to_string(),
    }
}

/// The lines that say which CSV files were written, and how to import one.
fn csv_text(files: &[CsvFile], source: &Path) -> String {
    let mut out = String::new();
    for f in files {
        out.push_str(&format!(
            "{}: {} lost {} written to {} ({})\n",
            f.table,
            f.rows,
            if f.rows == 1 { "row" } else { "rows" },
            f.path.display(),
            f.columns.join(", ")
        ));
        if f.not_listed > 0 {
            out.push_str(&format!(
                "{}: {} more lost rows are not in it (the report keeps at most 1000 per table)\n",
                f.table, f.not_listed
            ));
        }
    }
    if let Some(f) = files.first() {
        let import = format!(
            ".import --csv {} lost_{}",
            dot_arg(&f.path),
            file_stem(&f.table)
        );
        out.push_str(&format!(
            "To import one into a new table (its header names the columns): sqlite3 {} {}\n",
            shell(source),
            shell(Path::new(&import))
        ));
    }
    out
}

/// A path as a sqlite3 dot-command argument: in double quotes when it holds a space or quote.
fn dot_arg(path: &Path) -> String {
    let p = path.display().to_string();
    if p.contains([' ', '"', '\'', '\t']) {
        format!("\"{}\"", p.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        p
    }
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
