//! `restore`: put a recovered database in place of the damaged one, keeping the originals.
//!
//! The order of the work keeps the database path present for as long as possible:
//!
//! 1. check the inputs ([`guards`]): RECOVERED is a database with nothing beside it, and when
//!    it came from an incident, DB is the database that incident snapshotted (by path, and by
//!    the snapshot's hashes: not changed since, not restored already), and RECOVERED holds
//!    every row the report says the source held (unless `--accept-loss`); run
//!    `integrity_check` on RECOVERED; probe SQLite's locks on DB and `DB-shm` ([`locks`]);
//! 2. copy RECOVERED to a temporary file in DB's folder, fsync it, give it DB's mode and owner;
//! 3. the swap ([`swap`], shared with `undo`): with SIGINT/SIGTERM/SIGHUP ignored, move
//!    `-journal`, `-wal`, `-shm` and then DB into the backup folder (rename, or copy + fsync +
//!    verify + remove across filesystems), check that no sidecar is left beside DB, and
//!    rename the temporary file into place. If any step of this fails, the originals are
//!    moved back;
//! 4. fsync the folders, hash the originals in the backup folder into `manifest.json`
//!    ([`backup`]), and hand back the command that undoes the whole thing
//!    (`sqlite-rescue undo BACKUP_DIR`).
//!
//! `--dry-run` makes every check of step 1 and says what steps 2 to 4 would move where.

mod backup;
mod guards;
mod locks;
mod report;
pub(crate) mod swap;

pub use backup::{RestoreManifest, UndoRecord};
pub use guards::Shortfall;
pub use locks::HeldLock;
pub use swap::MoveMethod;

pub(crate) use backup::{
    incident_dirs, read_manifest, restores_in, undo_command, unused as backup_unused, utc_stamp,
    write_json, MANIFEST,
};
pub(crate) use locks::{probe_locks, refuse_locked};

use crate::error::{Error, Result};
use crate::source::pagefile::sidecar;
use crate::util::progress::Progress;
use crate::util::quote::shell;
use guards::Incident;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use swap::{copy_hashing, file_name, hash_file, parent_of, Moved, Original, Staged};

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Where the originals go (default: `pre-restore/` in the incident folder RECOVERED is
    /// in, else in the latest `DB.rescue-*` one, else `DB.pre-restore-<UTC timestamp>/`
    /// beside DB).
    pub backup_dir: Option<PathBuf>,
    /// Go ahead although the database is open elsewhere, RECOVERED fails integrity_check, or
    /// DB is not as the incident snapshotted it (changed since, or restored already).
    pub force: bool,
    /// Put RECOVERED in place although it holds fewer rows than the source held.
    pub accept_loss: bool,
    pub progress: Progress,
}

/// One original file, as it now lies in the backup folder.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MovedFile {
    /// File name (the same in the backup folder as it was beside the database).
    pub name: String,
    /// "database", "wal", "shm" or "journal".
    pub role: String,
    pub size: u64,
    pub sha256: String,
    pub original_path: PathBuf,
    pub backup_path: PathBuf,
    /// Permission bits, octal, e.g. "0644".
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    pub method: MoveMethod,
}

/// The file now at the database path.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RestoredFile {
    pub path: PathBuf,
    pub from: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// The database path that now holds the recovered file (symlinks resolved).
    pub db: PathBuf,
    pub restored: RestoredFile,
    /// The incident folder RECOVERED came from, when it came from one.
    pub incident: Option<PathBuf>,
    /// `integrity_check` of RECOVERED: `["ok"]`, or its first messages.
    pub integrity_check: Vec<String>,
    pub integrity_ok: bool,
    /// Tables holding fewer rows than the source held, put in place with --accept-loss.
    pub accepted_loss: Vec<Shortfall>,
    /// Locks other processes held when we looked (only non-empty with --force).
    pub locks_held: Vec<HeldLock>,
    pub forced: bool,
    pub backup_dir: PathBuf,
    pub manifest: PathBuf,
    /// The originals, with their hashes.
    pub moved: Vec<MovedFile>,
    /// The command that puts the originals back byte for byte (`sqlite-rescue undo DIR`).
    pub undo_command: String,
    pub warnings: Vec<String>,
}

/// What `restore --dry-run` found: every check made, and each step that would run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestorePlan {
    pub dry_run: bool,
    pub db: PathBuf,
    pub from: PathBuf,
    pub incident: Option<PathBuf>,
    pub integrity_check: Vec<String>,
    pub integrity_ok: bool,
    pub accepted_loss: Vec<Shortfall>,
    pub locks_held: Vec<HeldLock>,
    pub backup_dir: PathBuf,
    /// The steps, in the order they would run.
    pub steps: Vec<PlannedStep>,
    pub warnings: Vec<String>,
}

/// One step of a restore: what would be copied, moved, renamed or written, and where.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedStep {
    /// "copy", "move", "rename" or "write".
    pub action: String,
    pub from: Option<PathBuf>,
    pub to: PathBuf,
    /// Bytes, for a file that exists now.
    pub size: Option<u64>,
    /// For a move: a rename (same filesystem) or a verified copy.
    pub method: Option<MoveMethod>,
}

/// Everything checked, before anything is touched.
struct Checked {
    db: PathBuf,
    from: PathBuf,
    incident: Option<Incident>,
    integrity: Vec<String>,
    integrity_ok: bool,
    accepted_loss: Vec<Shortfall>,
    locks: Vec<HeldLock>,
    originals: Vec<Original>,
    backup_dir: PathBuf,
    warnings: Vec<String>,
}

/// Puts `from` in place of `db`, moving `db` and its sidecars into a backup folder.
pub fn restore(db: &Path, from: &Path, opts: &RestoreOptions) -> Result<RestoreReport> {
    let checked = check(db, from, opts)?;
    let created = backup::create_dir(&checked.backup_dir)?;
    let result = put_in_place(&checked, opts);
    if result.is_err() {
        if let Some(dir) = created {
            // Only removes it when empty, i.e. when nothing of the user's is inside.
            let _ = std::fs::remove_dir(dir);
        }
    }
    let (moved, restored, warnings) = result?;
    finish(checked, restored, opts, &moved, warnings)
}

/// What `restore` would do, after every check it makes; changes nothing.
pub fn plan(db: &Path, from: &Path, opts: &RestoreOptions) -> Result<RestorePlan> {
    let c = check(db, from, opts)?;
    let same_fs = |to: &Path| {
        let dev = |p: &Path| {
            p.ancestors()
                .find_map(|a| std::fs::metadata(a).ok())
                .map(|m| m.dev())
        };
        dev(&parent_of(&c.db)) == dev(to)
    };
    let dir = parent_of(&c.db);
    let tmp = dir.join(format!(".{}.restore-XXXXXX.tmp", file_name(&c.db)));
    let size = |p: &Path| std::fs::metadata(p).ok().map(|m| m.len());
    let mut steps = vec![PlannedStep {
        action: "copy".into(),
        from: Some(c.from.clone()),
        to: tmp.clone(),
        size: size(&c.from),
        method: None,
    }];
    for o in swap::leaving_order(&c.originals) {
        steps.push(PlannedStep {
            action: "move".into(),
            from: Some(o.path.clone()),
            to: c.backup_dir.join(&o.name),
            size: size(&o.path),
            method: Some(if same_fs(&c.backup_dir) {
                MoveMethod::Rename
            } else {
                MoveMethod::Copy
            }),
        });
    }
    steps.push(PlannedStep {
        action: "rename".into(),
        from: Some(tmp),
        to: c.db.clone(),
        size: None,
        method: Some(MoveMethod::Rename),
    });
    steps.push(PlannedStep {
        action: "write".into(),
        from: None,
        to: c.backup_dir.join(MANIFEST),
        size: None,
        method: None,
    });
    Ok(RestorePlan {
        dry_run: true,
        db: c.db,
        from: c.from,
        incident: c.incident.map(|i| i.dir),
        integrity_check: c.integrity,
        integrity_ok: c.integrity_ok,
        accepted_loss: c.accepted_loss,
        locks_held: c.locks,
        backup_dir: c.backup_dir,
        steps,
        warnings: c.warnings,
    })
}

/// Step 1: every check, in the order that refuses cheapest first. Nothing is written.
fn check(db: &Path, from: &Path, opts: &RestoreOptions) -> Result<Checked> {
    crate::source::snapshot::refuse_sidecar(db)?;
    crate::source::snapshot::refuse_sidecar(from)?;
    let db = guards::existing_file(db, "the database")?;
    let from = guards::existing_file(from, "--from")?;
    if !guards::has_sqlite_magic(&from)? {
        return Err(Error::unusable(
            &from,
            "not a SQLite database (no \"SQLite format 3\" header); --from must be the recovered database",
        ));
    }
    if from == db || swap::SIDECARS.iter().any(|(s, _)| sidecar(&db, s) == from) {
        return Err(Error::Usage(format!(
            "--from {} is the database itself or one of its sidecars",
            from.display()
        )));
    }
    for (suffix, _) in swap::SIDECARS {
        let side = sidecar(&from, suffix);
        if suffix != "-shm" && std::fs::metadata(&side).is_ok_and(|m| m.len() > 0) {
            return Err(Error::Refused(format!(
                "{} exists beside --from: its content would be lost by copying the main file alone; \
                 checkpoint it first: sqlite3 {} 'PRAGMA wal_checkpoint(TRUNCATE)'",
                side.display(),
                shell(&from)
            )));
        }
    }

    let incident = guards::find_incident(&from, &db);
    let mut warnings = Vec::new();
    let mut accepted_loss = Vec::new();
    match &incident {
        Some(i) => {
            guards::refuse_other_database(i, &db, &from)?;
            let short = guards::shortfalls(&from, &i.view)?;
            let objects = guards::missing_objects(&from, &i.view);
            if (!short.is_empty() || !objects.is_empty()) && !opts.accept_loss {
                return Err(guards::refuse_lossy(&from, &db, &short, &objects));
            }
            if !objects.is_empty() {
                warnings.push(format!(
                    "put in place without schema objects the source had: {}",
                    objects.join(", ")
                ));
            }
            accepted_loss = short;
        }
        None => warnings.push(format!(
            "{} is not in an incident folder with a report.json naming it: whether it holds \
             every row {} held was not checked",
            from.display(),
            db.display()
        )),
    }
    warnings.extend(guards::refuse_changed_database(
        &db,
        &from,
        incident.as_ref(),
        opts.force,
        opts.progress,
    )?);

    let integrity = guards::integrity_check(&from);
    let integrity_ok = integrity == ["ok"];
    if !integrity_ok && !opts.force {
        return Err(Error::Refused(format!(
            "{} fails integrity_check: {}; nothing was changed (pass --force to restore it anyway)",
            from.display(),
            integrity.join("; ")
        )));
    }

    let locks = probe_locks(&db)?;
    if !locks.is_empty() && !opts.force {
        return Err(refuse_locked(&db, &locks, "restore"));
    }

    let originals = swap::live_files(&db)?;
    let backup_dir = backup::choose_backup_dir(
        &db,
        opts.backup_dir.as_deref(),
        incident.as_ref().map(|i| i.dir.as_path()),
    );
    let names: Vec<String> = originals.iter().map(|o| o.name.clone()).collect();
    backup::check_backup_dir(&backup_dir, &names)?;
    Ok(Checked {
        db,
        from,
        incident,
        integrity,
        integrity_ok,
        accepted_loss,
        locks,
        originals,
        backup_dir,
        warnings,
    })
}

/// Steps 2 and 3: the temporary copy beside the database, then the swap.
fn put_in_place(
    c: &Checked,
    opts: &RestoreOptions,
) -> Result<(Vec<Moved>, RestoredFile, Vec<String>)> {
    let mut warnings = Vec::new();
    let dir = parent_of(&c.db);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.restore-", file_name(&c.db)))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let from_len = std::fs::metadata(&c.from)
        .map_err(|e| Error::io(&c.from, e))?
        .len();
    let bar = opts.progress.bytes("copying", from_len);
    let (size, sha256) = match copy_hashing(&c.from, tmp.as_file_mut(), Some(&bar), true) {
        Ok(h) => h,
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
            return Err(Error::Interrupted {
                path: tmp.path().to_path_buf(),
            })
        }
        Err(e) => return Err(Error::io(tmp.path(), e)),
    };
    bar.finish_and_clear();

    // The restored file gets the original's mode and owner before it becomes visible.
    let db_meta = c
        .originals
        .iter()
        .find(|o| o.role == "database")
        .ok_or_else(|| Error::unusable(&c.db, "the database is gone"))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(db_meta.mode))
        .map_err(|e| Error::io(tmp.path(), e))?;
    let tmp_meta = tmp
        .as_file()
        .metadata()
        .map_err(|e| Error::io(tmp.path(), e))?;
    let (mut uid, mut gid) = (tmp_meta.uid(), tmp_meta.gid());
    if (uid, gid) != (db_meta.uid, db_meta.gid) {
        match std::os::unix::fs::fchown(tmp.as_file(), Some(db_meta.uid), Some(db_meta.gid)) {
            Ok(()) => (uid, gid) = (db_meta.uid, db_meta.gid),
            Err(e) => warnings.push(format!(
                "could not give the restored file the original owner {}:{} ({e}); it is owned by {uid}:{gid}: \
                 run `chown {}:{} {}` as root if the application runs as that user",
                db_meta.uid,
                db_meta.gid,
                db_meta.uid,
                db_meta.gid,
                shell(&c.db)
            )),
        }
        // chown clears set-id bits; put the mode back.
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(db_meta.mode));
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    // From here the temporary file is renamed, not written: close it, keep its path (which
    // removes it again unless the swap renamed it into place).
    let tmp = tmp.into_temp_path();
    let staged = [Staged {
        tmp: tmp.to_path_buf(),
        target: c.db.clone(),
    }];
    let swap_opts = swap::SwapOptions {
        force: opts.force,
        progress: &opts.progress,
        command: "restore",
    };
    let (moved, swap_warnings) =
        swap::swap_in(&c.db, &c.originals, &c.backup_dir, &staged, &swap_opts)?;
    // It is the database now: nothing to remove.
    let _ = tmp.keep();
    warnings.extend(swap_warnings);
    let restored = RestoredFile {
        path: c.db.clone(),
        from: c.from.clone(),
        size,
        sha256,
        mode: format!("{:04o}", db_meta.mode),
        uid,
        gid,
    };
    Ok((moved, restored, warnings))
}

/// Step 4: hashes the originals in the backup folder and writes the manifest.
fn finish(
    c: Checked,
    restored: RestoredFile,
    opts: &RestoreOptions,
    moved: &[Moved],
    mut warnings: Vec<String>,
) -> Result<RestoreReport> {
    let undo = undo_command(&c.backup_dir);
    let complete = format!("the restore itself is complete; undo with: {undo}");
    let files = moved_files(moved, opts.progress).map_err(|e| swap::with_context(e, &complete))?;
    let manifest_path = c.backup_dir.join(MANIFEST);
    let manifest = RestoreManifest {
        tool: format!("sqlite-rescue {}", crate::VERSION),
        created_at: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        db: c.db.clone(),
        incident: c.incident.as_ref().map(|i| i.dir.clone()),
        restored: restored.clone(),
        files: files.clone(),
        undo_command: undo.clone(),
        undone: None,
    };
    write_json(&manifest_path, &manifest).map_err(|e| swap::with_context(e, &complete))?;
    if let Err(e) = swap::sync_dir(&c.backup_dir) {
        warnings.push(format!("could not fsync {}: {e}", c.backup_dir.display()));
    }
    let mut all_warnings = c.warnings;
    all_warnings.extend(warnings);
    Ok(RestoreReport {
        db: c.db,
        restored,
        incident: c.incident.map(|i| i.dir),
        integrity_check: c.integrity,
        integrity_ok: c.integrity_ok,
        accepted_loss: c.accepted_loss,
        locks_held: c.locks,
        forced: opts.force,
        backup_dir: c.backup_dir,
        manifest: manifest_path,
        moved: files,
        undo_command: undo,
        warnings: all_warnings,
    })
}

/// The moved files as the manifest lists them, hashing those a rename moved.
pub(crate) fn moved_files(moved: &[Moved], progress: Progress) -> Result<Vec<MovedFile>> {
    let total: u64 = moved
        .iter()
        .filter(|m| m.hash.is_none())
        .filter_map(|m| std::fs::metadata(&m.backup).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress.bytes("hashing", total);
    let mut files = Vec::with_capacity(moved.len());
    for m in moved {
        let (size, sha256) = match &m.hash {
            Some(h) => h.clone(),
            None => hash_file(&m.backup, Some(&bar))?,
        };
        files.push(MovedFile {
            name: m.original.name.clone(),
            role: m.original.role.to_string(),
            size,
            sha256,
            original_path: m.original.path.clone(),
            backup_path: m.backup.clone(),
            mode: format!("{:04o}", m.original.mode),
            uid: m.original.uid,
            gid: m.original.gid,
            method: m.method,
        });
    }
    bar.finish_and_clear();
    Ok(files)
}

/// The incident folder a recovered copy at `from` came from, when its `report.json` names it
/// as the copy recovered from `db`: what `restore` reads of a report. For the fuzz target.
#[doc(hidden)]
pub fn incident_of(from: &Path, db: &Path) -> Option<PathBuf> {
    guards::find_incident(from, db).map(|i| i.dir)
}
