//! `undo INCIDENT`: put back the originals a `restore` moved into the backup folder, byte for
//! byte, with the same lock probe, fsync and rename as `restore` (the swap is its code).
//!
//! Nothing is deleted: what is at the database path (the restored copy, and whatever the
//! application wrote to it) is moved into `undone-<stamp>/` in the backup folder, and the
//! originals are moved back. When the database changed since the restore (its hash is in the
//! manifest), undo refuses unless `--force`. The manifest records what undo did.
//!
//! 1. find the restore's manifest (the backup folder, or the newest not yet undone in the
//!    incident folder) and check the originals there still have their hashes;
//! 2. refuse if another process holds a lock, or if the database changed since the restore;
//! 3. move the originals into the database's folder under temporary names (a rename, or a
//!    verified copy from another filesystem), so the swap itself is renames only;
//! 4. the swap: move the live files into `undone-<stamp>/`, rename the originals into place
//!    (the database last), fsync; rolled back if any step fails;
//! 5. write what was done into the manifest.

use crate::commands::restore::swap::{self, file_name, hash_file, move_file, parent_of, Staged};
use crate::commands::restore::{backup_unused, utc_stamp};
use crate::commands::restore::{
    moved_files, probe_locks, read_manifest, refuse_locked, write_json, HeldLock, MovedFile,
    RestoreManifest, UndoRecord, MANIFEST,
};
use crate::error::{Error, Result};
use crate::output::report::Outcome;
use crate::source::pagefile::sidecar;
use crate::util::progress::Progress;
use crate::util::quote::{shell, tool_command};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct UndoOptions {
    /// Undo although the database changed since the restore (what is there is kept in the
    /// backup folder), or another process holds a lock on it.
    pub force: bool,
    pub progress: Progress,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct UndoReport {
    /// The database path, which holds the original again.
    pub db: PathBuf,
    /// The backup folder restore moved the originals into.
    pub backup_dir: PathBuf,
    pub manifest: PathBuf,
    /// The originals, back at their paths (as the manifest lists them).
    pub put_back: Vec<MovedFile>,
    /// Where what was at the database path went, and those files.
    pub set_aside_dir: PathBuf,
    pub set_aside: Vec<MovedFile>,
    /// How the database differed from what restore put there (empty: it had not changed).
    pub changes: Vec<String>,
    pub forced: bool,
    pub locks_held: Vec<HeldLock>,
    pub warnings: Vec<String>,
}

impl Outcome for UndoReport {
    fn render_text(&self) -> String {
        let mut s = format!("Undone: the originals are back at {}\n", self.db.display());
        for f in &self.put_back {
            s.push_str(&format!(
                "  {} ({} bytes, sha256 {})\n",
                f.original_path.display(),
                f.size,
                f.sha256
            ));
        }
        s.push_str(&format!(
            "\nWhat was in place is kept in {}\n",
            self.set_aside_dir.display()
        ));
        for f in &self.set_aside {
            s.push_str(&format!(
                "  {} ({} bytes, sha256 {})\n",
                f.backup_path.display(),
                f.size,
                f.sha256
            ));
        }
        if !self.changes.is_empty() {
            s.push_str(&format!(
                "\nIt had changed since the restore (--force): {}\n",
                self.changes.join("; ")
            ));
        }
        for lock in &self.locks_held {
            s.push_str(&format!("lock held (--force): {lock}\n"));
        }
        for w in &self.warnings {
            s.push_str(&format!("\nwarning: {w}\n"));
        }
        s.push_str(&format!("manifest: {}\n", self.manifest.display()));
        s
    }

    fn exit_code(&self) -> i32 {
        crate::error::exit::OK
    }
}

/// Undoes the restore whose originals are in `target` (a backup folder, or the incident
/// folder holding one).
pub fn undo(target: &Path, opts: &UndoOptions) -> Result<UndoReport> {
    let backup_dir = find_backup_dir(target)?;
    let manifest = read_manifest(&backup_dir)?;
    if let Some(done) = &manifest.undone {
        return Err(Error::Refused(format!(
            "this restore was undone already at {} (what was in place then is in {}); nothing \
             was changed",
            done.at,
            done.set_aside_dir.display()
        )));
    }
    let db = manifest.db.clone();
    let locks = if db.exists() {
        probe_locks(&db)?
    } else {
        Vec::new()
    };
    if !locks.is_empty() && !opts.force {
        return Err(refuse_locked(&db, &locks, "undo"));
    }
    let changes = changes_since_restore(&db, &manifest, opts.progress);
    if !changes.is_empty() && !opts.force {
        return Err(Error::Refused(format!(
            "{} changed since it was restored at {}: {}. Something (the application?) wrote to \
             it: undoing would set those writes aside. Nothing was changed. Stop the \
             application; to undo anyway, keeping what is there now in the backup folder: {} \
             undo {} --force",
            db.display(),
            manifest.created_at,
            changes.join("; "),
            tool_command(),
            shell(&backup_dir)
        )));
    }

    refuse_damaged_backup(&backup_dir, &manifest, opts.progress)?;
    let staged = stage_originals(&backup_dir, &manifest, opts.progress)?;
    let set_aside_dir = backup_unused(backup_dir.join(format!("undone-{}", utc_stamp())));
    let result = std::fs::create_dir(&set_aside_dir)
        .map_err(|e| Error::io(&set_aside_dir, e))
        .and_then(|()| {
            let live = swap::live_files(&db)?;
            let swap_opts = swap::SwapOptions {
                force: opts.force,
                progress: &opts.progress,
                command: "undo",
            };
            swap::swap_in(&db, &live, &set_aside_dir, &staged, &swap_opts)
        });
    let (moved, mut warnings) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_dir(&set_aside_dir);
            return Err(unstage(e, &staged, &backup_dir));
        }
    };
    let done_note = "the undo itself is complete";
    let set_aside =
        moved_files(&moved, opts.progress).map_err(|e| swap::with_context(e, done_note))?;
    let mut manifest = manifest;
    manifest.undone = Some(UndoRecord {
        at: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        set_aside_dir: set_aside_dir.clone(),
        set_aside: set_aside.clone(),
        changed_since_restore: !changes.is_empty(),
        forced: opts.force,
    });
    let manifest_path = backup_dir.join(MANIFEST);
    write_json(&manifest_path, &manifest).map_err(|e| swap::with_context(e, done_note))?;
    for dir in [&set_aside_dir, &backup_dir] {
        if let Err(e) = swap::sync_dir(dir) {
            warnings.push(format!("could not fsync {}: {e}", dir.display()));
        }
    }
    Ok(UndoReport {
        db,
        backup_dir,
        manifest: manifest_path,
        put_back: manifest.files,
        set_aside_dir,
        set_aside,
        changes,
        forced: opts.force,
        locks_held: locks,
        warnings,
    })
}

/// The backup folder `target` names: itself when it holds a restore's manifest (or is that
/// manifest), else the newest `pre-restore*` folder in it whose restore was not undone.
fn find_backup_dir(target: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(target).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::unusable(target, "no such folder"),
        _ => Error::unusable(target, e.to_string()),
    })?;
    let target =
        std::fs::canonicalize(target).map_err(|e| Error::unusable(target, e.to_string()))?;
    if meta.is_file() {
        return Ok(parent_of(&target));
    }
    if target.join(MANIFEST).is_file() && read_manifest(&target).is_ok() {
        return Ok(target);
    }
    let mut restores: Vec<(PathBuf, RestoreManifest)> = std::fs::read_dir(&target)
        .map_err(|e| Error::io(&target, e))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pre-restore"))
        .filter_map(|e| read_manifest(&e.path()).ok().map(|m| (e.path(), m)))
        .collect();
    restores.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at));
    match restores.iter().rev().find(|(_, m)| m.undone.is_none()) {
        Some((dir, _)) => Ok(dir.clone()),
        None if !restores.is_empty() => Err(Error::Refused(format!(
            "every restore from {} was undone already; nothing was changed",
            target.display()
        ))),
        None => Err(Error::Usage(format!(
            "{} holds no restore to undo: give the incident folder restore moved the \
             originals into (its pre-restore/ is found), or the folder given to restore \
             --backup-dir",
            target.display()
        ))),
    }
}

/// Refuses when an original in the backup folder is missing or no longer has its hash.
fn refuse_damaged_backup(
    backup_dir: &Path,
    manifest: &RestoreManifest,
    progress: Progress,
) -> Result<()> {
    let bar = progress.bytes("checking", manifest.files.iter().map(|f| f.size).sum());
    let damaged = manifest.files.iter().find(|f| {
        let path = backup_dir.join(&f.name);
        !hash_file(&path, Some(&bar)).is_ok_and(|(size, sha)| size == f.size && sha == f.sha256)
    });
    bar.finish_and_clear();
    match damaged {
        None => Ok(()),
        Some(f) => Err(Error::Refused(format!(
            "{} is missing or not as restore left it (sha256 {} in {}): the originals cannot \
             be put back byte for byte; nothing was changed",
            backup_dir.join(&f.name).display(),
            f.sha256,
            backup_dir.join(MANIFEST).display()
        ))),
    }
}

/// How the files at the database path differ from what restore left there: the database's
/// hash, and a -wal or -journal holding anything (commits not yet in the database).
fn changes_since_restore(db: &Path, manifest: &RestoreManifest, progress: Progress) -> Vec<String> {
    let mut changes = Vec::new();
    let bar = progress.bytes("checking", manifest.restored.size);
    let hashed = hash_file(db, Some(&bar));
    bar.finish_and_clear();
    match hashed {
        Ok((_, sha)) if sha == manifest.restored.sha256 => {}
        Ok(_) => changes.push(format!(
            "{} is not the file restore put there",
            db.display()
        )),
        Err(_) => changes.push(format!("{} is missing", db.display())),
    }
    for suffix in ["-wal", "-journal"] {
        let side = sidecar(db, suffix);
        if let Some(len) = std::fs::metadata(&side)
            .ok()
            .map(|m| m.len())
            .filter(|&n| n > 0)
        {
            changes.push(format!("{} holds {len} bytes", side.display()));
        }
    }
    changes
}

/// Moves the originals out of the backup folder into the database's folder under temporary
/// names, the database last; on failure the ones moved go back.
fn stage_originals(
    backup_dir: &Path,
    manifest: &RestoreManifest,
    progress: Progress,
) -> Result<Vec<Staged>> {
    let dir = parent_of(&manifest.db);
    let (db_file, sides): (Vec<&MovedFile>, Vec<&MovedFile>) =
        manifest.files.iter().partition(|f| f.role == "database");
    let mut staged: Vec<Staged> = Vec::new();
    for f in sides.into_iter().chain(db_file) {
        let tmp = backup_unused(dir.join(format!(
            ".{}.undo-{}.tmp",
            file_name(&f.original_path),
            std::process::id()
        )));
        let mode = u32::from_str_radix(&f.mode, 8).unwrap_or(0o600);
        if let Err(e) = move_file(&backup_dir.join(&f.name), &tmp, mode, progress) {
            return Err(unstage(e, &staged, backup_dir));
        }
        // A copy from another filesystem is ours: give it the original's owner back.
        let _ = std::os::unix::fs::chown(&tmp, Some(f.uid), Some(f.gid));
        let _ = std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode));
        staged.push(Staged {
            tmp,
            target: f.original_path.clone(),
        });
    }
    Ok(staged)
}

/// Moves staged originals back into the backup folder after a failure; the error says so.
fn unstage(err: Error, staged: &[Staged], backup_dir: &Path) -> Error {
    let mut failed = Vec::new();
    for s in staged.iter().rev() {
        let back = backup_dir.join(file_name(&s.target));
        let mode = std::fs::metadata(&s.tmp).map_or(0o600, |m| {
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777
        });
        if let Err(e) = move_file(&s.tmp, &back, mode, Progress::HIDDEN) {
            failed.push(format!(
                "{} is at {} ({e})",
                back.display(),
                s.tmp.display()
            ));
        }
    }
    if failed.is_empty() {
        swap::with_context(err, "the originals are in the backup folder as before")
    } else {
        swap::with_context(
            err,
            &format!("move these back by hand: {}", failed.join("; ")),
        )
    }
}
