//! Where the originals go (the backup folder) and the manifest that says what is there:
//! written by `restore`, read and completed by `undo`, and read again by a later `restore`
//! to tell that an incident was restored already.

use super::swap::{file_name, parent_of, sync_dir};
use super::{MovedFile, RestoredFile};
use crate::error::{Error, Result};
use crate::source::pagefile::sidecar;
use crate::util::quote::shell;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The name of the manifest in a backup folder.
pub(crate) const MANIFEST: &str = "manifest.json";

/// The manifest written into the backup folder.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RestoreManifest {
    pub tool: String,
    pub created_at: String,
    /// The database path that was restored.
    pub db: PathBuf,
    /// The incident folder the restored copy came from, when it came from one.
    #[serde(default)]
    pub incident: Option<PathBuf>,
    pub restored: RestoredFile,
    /// The originals, as they lie in the backup folder.
    pub files: Vec<MovedFile>,
    pub undo_command: String,
    /// Filled in by `undo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undone: Option<UndoRecord>,
}

/// What `undo` did: when, and where it put the files that were in place.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UndoRecord {
    pub at: String,
    /// The folder (in the backup folder) holding what was at the database path before undo.
    pub set_aside_dir: PathBuf,
    pub set_aside: Vec<MovedFile>,
    /// The database had changed since the restore, and --force went ahead.
    pub changed_since_restore: bool,
    pub forced: bool,
}

/// Reads a backup folder's manifest.
pub(crate) fn read_manifest(dir: &Path) -> Result<RestoreManifest> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::unusable(
            &path,
            format!("not the manifest of a restore ({e}); undo takes the folder restore moved the originals into"),
        )
    })
}

/// Writes JSON to a temporary file beside `path`, fsyncs it and renames it into place.
pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let json =
        serde_json::to_vec_pretty(value).map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    let dir = parent_of(path);
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| Error::io(&dir, e))?;
    tmp.write_all(&json).map_err(|e| Error::io(path, e))?;
    tmp.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Restores of `db` from the incident in `incident` that were not undone, oldest first, with
/// the backup folder each lies in (`pre-restore*` folders of the incident).
pub(crate) fn previous_restores(incident: &Path, db: &Path) -> Vec<(PathBuf, RestoreManifest)> {
    restores_in(incident)
        .into_iter()
        .filter(|(_, m)| m.undone.is_none() && m.db == db)
        .collect()
}

/// Every restore from the incident in `incident` whose originals went into it (its
/// `pre-restore*` folders), undone or not, oldest first, with the backup folder of each.
pub(crate) fn restores_in(incident: &Path) -> Vec<(PathBuf, RestoreManifest)> {
    let Ok(entries) = std::fs::read_dir(incident) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, RestoreManifest)> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pre-restore"))
        .map(|e| e.path())
        .filter_map(|dir| read_manifest(&dir).ok().map(|m| (dir, m)))
        .collect();
    found.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at));
    found
}

/// The backup folder: the one asked for, else `pre-restore/` in the incident folder (or a
/// new `pre-restore-<stamp>` there), else in the newest `<db>.rescue-*` folder, else
/// `<db>.pre-restore-<stamp>/` beside the database. Nothing is created here.
pub(crate) fn choose_backup_dir(
    db: &Path,
    requested: Option<&Path>,
    incident: Option<&Path>,
) -> PathBuf {
    if let Some(dir) = requested {
        return crate::util::paths::absolute(dir);
    }
    let stamp = utc_stamp();
    match incident
        .map(Path::to_path_buf)
        .or_else(|| incident_dirs(db).into_iter().next())
    {
        Some(incident) => {
            let plain = incident.join("pre-restore");
            if is_missing_or_empty(&plain) {
                plain
            } else {
                unused(incident.join(format!("pre-restore-{stamp}")))
            }
        }
        None => unused(sidecar(db, &format!(".pre-restore-{stamp}"))),
    }
}

/// Refuses a backup folder that is not a folder, or already holds a file of these names.
pub(crate) fn check_backup_dir(dir: &Path, names: &[String]) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::Usage(format!(
                "--backup-dir {} exists and is not a folder",
                dir.display()
            )))
        }
        _ => {}
    }
    for name in names {
        let target = dir.join(name);
        if std::fs::symlink_metadata(&target).is_ok() {
            return Err(Error::Refused(format!(
                "{} already exists in the backup folder; choose another with --backup-dir \
                 (nothing was changed)",
                target.display()
            )));
        }
    }
    Ok(())
}

/// Creates `dir` if it is missing; returns it when it was created (to remove it again,
/// empty, if what follows fails).
pub(crate) fn create_dir(dir: &Path) -> Result<Option<PathBuf>> {
    if std::fs::symlink_metadata(dir).is_ok() {
        return Ok(None);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if let Some(parent) = dir.parent() {
        let _ = sync_dir(parent);
    }
    Ok(Some(dir.to_path_buf()))
}

/// The `<db-name>.rescue-*` folders beside the database and in the current folder, newest
/// first (their names end in a UTC timestamp).
pub(crate) fn incident_dirs(db: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}.rescue-", file_name(db));
    let mut places = vec![parent_of(db)];
    if let Ok(cwd) = std::env::current_dir() {
        let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
        if !places.contains(&cwd) {
            places.push(cwd);
        }
    }
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for place in places {
        let Ok(entries) = std::fs::read_dir(&place) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stamp) = name.strip_prefix(&prefix) else {
                continue;
            };
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                found.push((stamp.to_string(), entry.path()));
            }
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// The line that undoes a restore whose originals are in `backup_dir`.
pub(crate) fn undo_command(backup_dir: &Path) -> String {
    format!(
        "{} undo {}",
        crate::util::quote::tool_command(),
        shell(backup_dir)
    )
}

fn is_missing_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// `path`, or `path-2`, `path-3`, ... whichever does not exist yet.
pub(crate) fn unused(path: PathBuf) -> PathBuf {
    if std::fs::symlink_metadata(&path).is_err() {
        return path;
    }
    for n in 2.. {
        let candidate = sidecar(&path, &format!("-{n}"));
        if std::fs::symlink_metadata(&candidate).is_err() {
            return candidate;
        }
    }
    path
}

/// UTC now as `YYYYMMDDTHHMMSS`, for folder names.
pub(crate) fn utc_stamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .to_string()
}
