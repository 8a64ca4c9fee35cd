//! `sqlite-rescue incidents DB`: the incident folders of a database, newest first, each with
//! when its snapshot was taken, the verdict of its report, and whether it was restored.
//!
//! The folders are where `recover` puts them by default: `<db-name>.rescue-<UTC time>/` in
//! the folder it ran in, looked for beside the database and in the current folder (as
//! `restore` looks for them). Only those whose snapshot is of this database are listed. A
//! restore is known from the backup folder it left in the incident (`pre-restore*/`), and an
//! undo from the record it added there. Nothing is hashed: `report INCIDENT` checks one.

use crate::commands::recover::RecoveryOutcome;
use crate::commands::report::{read_manifest, read_report};
use crate::commands::restore::{incident_dirs, restores_in, undo_command};
use crate::error::{exit, Result};
use crate::output::report::{text_table, Outcome};
use crate::util::paths::{absolute, resolved};
use crate::util::quote::{shell, tool_command};
use std::path::{Path, PathBuf};

/// What an incident's report says of its recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Verdict {
    /// Every row the source holds came back in place.
    #[serde(rename = "complete")]
    Complete,
    #[serde(rename = "rows lost")]
    RowsLost,
    /// Every row came back, not every index, view, trigger or virtual table.
    #[serde(rename = "objects not recreated")]
    ObjectsNotRecreated,
    /// No report.json: the recovery was interrupted after its snapshot.
    #[serde(rename = "unfinished")]
    Unfinished,
    /// A report.json this tool cannot read (altered, or from a newer version).
    #[serde(rename = "unreadable")]
    Unreadable,
}

/// One restore from an incident, as its backup folder records it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreRecord {
    /// Where the originals were moved (`INCIDENT/pre-restore*/`).
    pub backup_dir: PathBuf,
    pub restored_at: String,
    /// When `undo` put the originals back; null while the restore stands.
    pub undone_at: Option<String>,
}

/// One incident folder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IncidentEntry {
    pub dir: PathBuf,
    /// When the snapshot was taken (RFC 3339, UTC), from its manifest.
    pub taken_at: Option<String>,
    pub verdict: Verdict,
    /// Rows of the source missing from the recovered database, at least (null unless the
    /// report was read).
    pub missing_rows: Option<u64>,
    /// Why the verdict is `unfinished` or `unreadable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// A restore from this incident stands (it was not undone).
    pub restored: bool,
    /// Every restore from this incident, oldest first.
    pub restores: Vec<RestoreRecord>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IncidentsReport {
    /// The version of this document's format (docs/report-format.md).
    pub schema_version: u32,
    pub db: PathBuf,
    /// Newest first.
    pub incidents: Vec<IncidentEntry>,
    pub exit_code: i32,
}

/// Lists the incident folders of `db`. The database need not exist any more.
pub fn incidents(db: &Path) -> Result<IncidentsReport> {
    crate::source::snapshot::refuse_sidecar(db)?;
    let wanted = [resolved(db), absolute(db)];
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut incidents = Vec::new();
    for dir in incident_dirs(db) {
        let dir = resolved(&dir);
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir.clone());
        if let Some(entry) = entry(&dir, &wanted) {
            incidents.push(entry);
        }
    }
    Ok(IncidentsReport {
        schema_version: crate::commands::recover::REPORT_SCHEMA_VERSION,
        db: absolute(db),
        incidents,
        exit_code: exit::OK,
    })
}

/// The incident in `dir`, unless its snapshot is of another database than `wanted` (a
/// database of the same name in another folder).
fn entry(dir: &Path, wanted: &[PathBuf]) -> Option<IncidentEntry> {
    let manifest = read_manifest(dir).ok();
    let report = read_report(dir);
    let sources = [
        manifest.as_ref().map(|m| m.source.clone()),
        report.as_ref().ok().map(|r| r.source.clone()),
    ];
    let known: Vec<&PathBuf> = sources.iter().flatten().collect();
    if !known.is_empty() && !known.iter().any(|s| wanted.contains(&resolved(s))) {
        return None;
    }
    let (verdict, missing_rows, note) = match &report {
        Ok(r) if r.outcome == RecoveryOutcome::Complete => {
            (Verdict::Complete, Some(r.missing_rows), None)
        }
        Ok(r) if r.outcome == RecoveryOutcome::ObjectsNotRecreated => {
            (Verdict::ObjectsNotRecreated, Some(r.missing_rows), None)
        }
        Ok(r) => (Verdict::RowsLost, Some(r.missing_rows), None),
        Err(_) if !dir.join(super::report::REPORT_NAME).exists() => (
            Verdict::Unfinished,
            None,
            Some("no report.json: the recovery was interrupted after its snapshot".to_string()),
        ),
        Err(e) => (Verdict::Unreadable, None, Some(e.to_string())),
    };
    let restores: Vec<RestoreRecord> = restores_in(dir)
        .into_iter()
        .map(|(backup_dir, m)| RestoreRecord {
            backup_dir,
            restored_at: m.created_at,
            undone_at: m.undone.map(|u| u.at),
        })
        .collect();
    Some(IncidentEntry {
        dir: dir.to_path_buf(),
        taken_at: manifest
            .map(|m| m.taken_at)
            .or_else(|| report.ok().map(|r| r.snapshot.taken_at)),
        verdict,
        missing_rows,
        note,
        restored: restores.iter().any(|r| r.undone_at.is_none()),
        restores,
    })
}

/// "2026-12-06 22:33:17 UTC" from RFC 3339.
fn when(rfc3339: &str) -> String {
    match rfc3339.get(..19) {
        Some(day_time) => format!("{} UTC", day_time.replacen('T', " ", 1)),
        None => rfc3339.to_string(),
    }
}

impl IncidentEntry {
    fn verdict_cell(&self) -> String {
        match (self.verdict, self.missing_rows) {
            (Verdict::Complete, _) => "complete".to_string(),
            (Verdict::RowsLost, Some(1)) => "rows lost (1 missing)".to_string(),
            (Verdict::RowsLost, Some(n)) if n > 0 => format!("rows lost ({n} missing)"),
            (Verdict::RowsLost, _) => "rows lost".to_string(),
            (Verdict::ObjectsNotRecreated, _) => "objects not recreated".to_string(),
            (Verdict::Unfinished, _) => "unfinished (no report)".to_string(),
            (Verdict::Unreadable, _) => "unreadable report".to_string(),
        }
    }

    fn restored_cell(&self) -> String {
        match self.restores.last() {
            None => "no".to_string(),
            Some(r) => match &r.undone_at {
                None => format!("yes, {}", when(&r.restored_at)),
                Some(at) => format!("undone, {}", when(at)),
            },
        }
    }
}

impl Outcome for IncidentsReport {
    fn render_text(&self) -> String {
        let tool = tool_command();
        if self.incidents.is_empty() {
            return format!(
                "No incident folder of {} beside it or in the current folder ({}.rescue-*/, \
                 where recover puts them; one made with --incident-dir is not looked for).\n",
                self.db.display(),
                self.db
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            );
        }
        let rows: Vec<Vec<String>> = self
            .incidents
            .iter()
            .map(|i| {
                vec![
                    i.dir.display().to_string(),
                    i.taken_at.as_deref().map_or("-".to_string(), when),
                    i.verdict_cell(),
                    i.restored_cell(),
                ]
            })
            .collect();
        let mut out = format!("Incidents of {}, newest first:\n", self.db.display());
        out.push_str(&text_table(
            &["incident", "snapshot taken", "verdict", "restored"],
            &rows,
        ));
        for i in self.incidents.iter().filter(|i| i.note.is_some()) {
            out.push_str(&format!(
                "{}: {}\n",
                i.dir.display(),
                i.note.as_deref().unwrap_or_default()
            ));
        }
        for i in &self.incidents {
            if let Some(r) = i.restores.iter().rev().find(|r| r.undone_at.is_none()) {
                out.push_str(&format!(
                    "{} is restored; to put the originals back: {}\n",
                    i.dir.display(),
                    undo_command(&r.backup_dir)
                ));
            }
        }
        if let Some(newest) = self.incidents.first() {
            out.push_str(&format!(
                "Next: {tool} report {} prints an incident's report again; {tool} lost {} \
                 lists its lost rows\n",
                shell(&newest.dir),
                shell(&newest.dir)
            ));
        }
        out
    }

    fn exit_code(&self) -> i32 {
        self.exit_code
    }
}
