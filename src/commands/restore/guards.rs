//! The checks `restore` makes before it touches anything: the inputs, the incident the
//! copy came from (the same database, by path and by the snapshot's hashes), whether that
//! incident was restored already, and whether the copy holds every row the source held.

use super::backup::{previous_restores, RestoreManifest};
use super::swap::hash_file;
use crate::commands::diff;
use crate::error::{Error, Result};
use crate::source::pagefile::sidecar;
use crate::source::snapshot::Manifest;
use crate::util::progress::Progress;
use crate::util::quote::{shell, tool_command};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What `restore` reads of an incident's `report.json` (docs/report-format.md).
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct IncidentView {
    /// The database the incident snapshotted.
    pub source: PathBuf,
    #[serde(default)]
    pub recovered: Option<PathBuf>,
    /// The snapshot's manifest: what the database's files held, by hash.
    pub snapshot: Manifest,
    #[serde(default)]
    pub tables: Vec<IncidentTable>,
    #[serde(default)]
    pub engine: EngineView,
}

/// What `restore` reads of the engine's part of the report: the schema objects it made.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct EngineView {
    #[serde(default)]
    pub objects: Vec<ObjectView>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct ObjectView {
    pub kind: String,
    pub name: String,
    pub created: bool,
}

/// One table of the report: what the source held, and how much of it is missing.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct IncidentTable {
    pub table: String,
    #[serde(default)]
    pub source_rows: Option<u64>,
    #[serde(default)]
    pub source_counted_by: Option<String>,
    #[serde(default)]
    pub recovered_rows: Option<u64>,
    #[serde(default)]
    pub missing_rows: u64,
}

impl IncidentTable {
    /// Rows the source held, at least: its count, and no fewer than what came back plus
    /// what is known missing.
    fn held(&self) -> u64 {
        let back = self.recovered_rows.unwrap_or(0);
        self.source_rows
            .unwrap_or(0)
            .max(back.saturating_add(self.missing_rows))
    }
}

/// The incident folder a recovered copy came from, and its report.
#[derive(Debug, Clone)]
pub(crate) struct Incident {
    pub dir: PathBuf,
    pub view: IncidentView,
}

/// A table of the copy that holds fewer rows than the source held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shortfall {
    pub table: String,
    /// Rows the incident's report says the source held (at least).
    pub source_held: u64,
    /// Rows the copy holds.
    pub copy_holds: u64,
    /// True when `source_held` is a lower bound (the count is `bounds`).
    pub at_least: bool,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} of {}{} rows",
            self.table,
            self.copy_holds,
            if self.at_least { "at least " } else { "" },
            self.source_held
        )
    }
}

/// The incident `from` came from: the folder it is in, or a `<db>.rescue-*` folder beside
/// the database or in the current folder, whose `report.json` names it as its recovered
/// database. None for a copy from anywhere else (a backup, say).
pub(crate) fn find_incident(from: &Path, db: &Path) -> Option<Incident> {
    let mut candidates: Vec<PathBuf> = from.parent().map(Path::to_path_buf).into_iter().collect();
    candidates.extend(super::backup::incident_dirs(db));
    candidates.into_iter().find_map(|dir| {
        let bytes = std::fs::read(dir.join("report.json")).ok()?;
        let view: IncidentView = serde_json::from_slice(&bytes).ok()?;
        let named = view
            .recovered
            .as_deref()
            .is_some_and(|r| same_path(r, from));
        // A moved incident folder: its copy is still the file it names, by name.
        let inside = from.parent() == Some(dir.as_path())
            && view.recovered.as_deref().and_then(Path::file_name) == from.file_name();
        (named || inside).then_some(Incident { dir, view })
    })
}

/// Refuses (exit 2) a database that is not the one the incident snapshotted.
pub(crate) fn refuse_other_database(incident: &Incident, db: &Path, from: &Path) -> Result<()> {
    if same_path(&incident.view.source, db) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} was recovered from {} (incident {}), not from {}: it can only be restored over \
         the database it came from; nothing was changed",
        from.display(),
        incident.view.source.display(),
        incident.dir.display(),
        db.display()
    )))
}

/// Refuses (exit 4; with --force, warns) to restore over a database that is not as the
/// incident's snapshot saw it: restored from this incident already, already this very copy,
/// or changed since the snapshot. Returns the warnings when forced.
pub(crate) fn refuse_changed_database(
    db: &Path,
    from: &Path,
    incident: Option<&Incident>,
    force: bool,
    progress: Progress,
) -> Result<Vec<String>> {
    let tool = tool_command();
    let earlier: Vec<(PathBuf, RestoreManifest)> = incident
        .map(|i| previous_restores(&i.dir, db))
        .unwrap_or_default();
    let problem = if let Some((dir, m)) = earlier.last() {
        Some(format!(
            "this incident was already restored over {} at {} (its originals are in {}); \
             restoring it again would set aside what is there now. To go back to the \
             originals instead: {tool} undo {}",
            db.display(),
            m.created_at,
            dir.display(),
            shell(dir)
        ))
    } else if same_bytes(db, from)? {
        Some(format!(
            "{} already is {} (the same bytes): it was restored already",
            db.display(),
            from.display()
        ))
    } else if let Some((i, change)) = incident
        .and_then(|i| snapshot_difference(db, &i.view.snapshot, progress).map(|change| (i, change)))
    {
        Some(format!(
            "{} is not what incident {} snapshotted: {change}. The recovered copy does not \
             hold what was written since; stop the application and recover again",
            db.display(),
            i.dir.display()
        ))
    } else {
        None
    };
    match problem {
        None => Ok(Vec::new()),
        Some(p) if force => Ok(vec![format!("{p} (restored anyway: --force)")]),
        Some(p) => Err(Error::Refused(format!(
            "{p}; nothing was changed (--force restores anyway, keeping what is there now)"
        ))),
    }
}

/// What differs between the database's files now and the snapshot's manifest (the -shm
/// aside: SQLite rewrites it on every open). None when each file has the hash it had.
fn snapshot_difference(db: &Path, snapshot: &Manifest, progress: Progress) -> Option<String> {
    let total = snapshot.files.iter().map(|f| f.size).sum();
    let bar = progress.bytes("checking", total);
    let mut changes = Vec::new();
    for (role, path) in [
        ("db", db.to_path_buf()),
        ("wal", sidecar(db, "-wal")),
        ("journal", sidecar(db, "-journal")),
    ] {
        let then = snapshot.file(role);
        let now = std::fs::metadata(&path)
            .ok()
            .filter(std::fs::Metadata::is_file);
        match (then, now) {
            (Some(f), Some(m)) => {
                let same = m.len() == f.size
                    && hash_file(&path, Some(&bar)).is_ok_and(|(_, sha)| sha == f.sha256);
                if !same {
                    changes.push(format!("{} changed", path.display()));
                }
            }
            (None, Some(m)) if m.len() > 0 => {
                changes.push(format!("{} appeared ({} bytes)", path.display(), m.len()));
            }
            (Some(f), None) if f.size > 0 => changes.push(format!("{} is gone", path.display())),
            _ => {}
        }
    }
    bar.finish_and_clear();
    (!changes.is_empty()).then(|| {
        format!(
            "{} since the snapshot of {}",
            changes.join(", "),
            snapshot.taken_at
        )
    })
}

/// The tables of `from` holding fewer rows than the incident's report says the source held.
pub(crate) fn shortfalls(from: &Path, view: &IncidentView) -> Result<Vec<Shortfall>> {
    let conn = diff::open_recovered(from).map_err(|e| Error::unusable(from, e.to_string()))?;
    let tables = diff::user_tables(&conn).map_err(|e| Error::unusable(from, e.to_string()))?;
    let mut out = Vec::new();
    // The report's tables are the user's: diff leaves the engine's side tables out.
    for t in &view.tables {
        let copy_holds = if tables.contains(&t.table) {
            diff::count(&conn, &t.table).unwrap_or(0)
        } else {
            0
        };
        let source_held = t.held();
        if copy_holds < source_held {
            out.push(Shortfall {
                table: t.table.clone(),
                source_held,
                copy_holds,
                at_least: t.source_counted_by.as_deref() == Some("bounds"),
            });
        }
    }
    Ok(out)
}

/// The schema objects (indexes, views, triggers, virtual tables) the source had that the
/// incident's report says were not recreated and that `from` does not have, as "kind name".
pub(crate) fn missing_objects(from: &Path, view: &IncidentView) -> Vec<String> {
    let Ok(conn) = diff::open_recovered(from) else {
        return Vec::new();
    };
    let has = |name: &str| {
        conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .is_ok_and(|n| n > 0)
    };
    view.engine
        .objects
        .iter()
        .filter(|o| !o.created && !has(&o.name))
        .map(|o| format!("{} {}", o.kind, o.name))
        .collect()
}

/// The refusal (exit 1) for a copy that holds fewer rows than the source held, or lacks
/// schema objects it had.
pub(crate) fn refuse_lossy(
    from: &Path,
    db: &Path,
    short: &[Shortfall],
    objects: &[String],
) -> Error {
    let mut lacks = Vec::new();
    if !short.is_empty() {
        let list: Vec<String> = short.iter().map(ToString::to_string).collect();
        lacks.push(format!(
            "it holds fewer rows than the incident's report says {} held ({})",
            db.display(),
            list.join("; ")
        ));
    }
    if !objects.is_empty() {
        lacks.push(format!(
            "it lacks schema objects {} had, which recover could not recreate ({})",
            db.display(),
            objects.join(", ")
        ));
    }
    Error::RowsWouldBeLost(format!(
        "{}: {}; nothing was changed. `{} lost {}` lists the rows it lacks; to put this copy \
         in place knowing what it lacks, add --accept-loss",
        from.display(),
        lacks.join(", and "),
        tool_command(),
        shell(db)
    ))
}

/// True when both files hold the same bytes.
fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
    if len(a) != len(b) {
        return Ok(false);
    }
    Ok(hash_file(a, None)?.1 == hash_file(b, None)?.1)
}

/// Two paths name the same file (or, when one cannot be resolved, the same place).
fn same_path(a: &Path, b: &Path) -> bool {
    crate::util::paths::resolved(a) == crate::util::paths::resolved(b)
}

/// Resolves symlinks (SQLite puts the sidecars beside the real file) and checks it is a file.
pub(crate) fn existing_file(path: &Path, what: &str) -> Result<PathBuf> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::unusable(path, format!("{what}: no such file")),
        _ => Error::unusable(path, format!("{what}: {e}")),
    })?;
    if !meta.is_file() {
        return Err(Error::unusable(
            path,
            format!("{what} is not a regular file"),
        ));
    }
    std::fs::canonicalize(path).map_err(|e| Error::unusable(path, e.to_string()))
}

pub(crate) fn has_sqlite_magic(path: &Path) -> Result<bool> {
    let mut head = [0u8; 16];
    let mut file = File::open(path).map_err(|e| Error::unusable(path, e.to_string()))?;
    match file.read_exact(&mut head) {
        Ok(()) => Ok(&head == MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(Error::unusable(path, e.to_string())),
    }
}

/// `PRAGMA integrity_check` on read-only connections: `["ok"]` or up to 20 messages.
/// RECOVERED has no -wal or -journal beside it (refused before this), so nothing else
/// changes it while it is checked.
pub(crate) fn integrity_check(path: &Path) -> Vec<String> {
    match crate::engine::verify::integrity_check(path, &std::collections::BTreeMap::new(), 20) {
        Ok(msgs) => msgs,
        Err(e) => vec![format!("integrity_check could not run: {e}")],
    }
}
