//! `restore`: put a recovered database in place of the damaged one, keeping the originals.
//!
//! The order of the work keeps the database path present for as long as possible:
//!
//! 1. check the inputs, run `integrity_check` on RECOVERED, probe SQLite's locks on DB and
//!    `DB-shm` (with `fcntl(F_GETLK)`, which takes nothing and never opens DB with SQLite);
//! 2. copy RECOVERED to a temporary file in DB's folder, fsync it, give it DB's mode and owner;
//! 3. with SIGINT/SIGTERM/SIGHUP ignored: move `-journal`, `-wal`, `-shm` and then DB into the
//!    backup folder (rename, or copy + fsync + verify + remove across filesystems), check that
//!    no sidecar is left beside DB, and rename the temporary file into place. If any step of
//!    this fails, the originals are moved back;
//! 4. fsync the folders, hash the originals in the backup folder into `manifest.json`, and
//!    hand back the single shell line that undoes the whole thing.

use crate::error::{Error, Result};
use crate::output::progress::Progress;
use crate::output::report::Outcome;
use crate::source::pagefile::sidecar;
use crate::util::paths::absolute;
use crate::util::quote::shell;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// The sidecars SQLite keeps beside a database, in the order they are moved away.
pub(crate) const SIDECARS: [(&str, &str); 3] =
    [("-journal", "journal"), ("-wal", "wal"), ("-shm", "shm")];

/// SQLite's lock bytes in the database file (os_unix.c: PENDING_BYTE and what follows).
const PENDING_BYTE: i64 = 0x4000_0000;
const RESERVED_BYTE: i64 = PENDING_BYTE + 1;
const SHARED_FIRST: i64 = PENDING_BYTE + 2;
const SHARED_SIZE: i64 = 510;

/// SQLite's lock bytes in the `-shm` file: 8 WAL lock slots from byte 120, then the DMS byte.
const SHM_LOCK_FIRST: i64 = 120;
const SHM_DMS: i64 = 128;

const MAGIC: &[u8; 16] = b"SQLite format 3\0";

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Where the originals go (default: `pre-restore/` in the incident folder RECOVERED is
    /// in, else in the latest `DB.rescue-*` one, else `DB.pre-restore-<UTC timestamp>/`
    /// beside DB).
    pub backup_dir: Option<PathBuf>,
    /// Go ahead although the database is open elsewhere or RECOVERED fails integrity_check.
    pub force: bool,
    pub progress: Progress,
}

/// A lock some other process holds on the database or its `-shm`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HeldLock {
    /// The file the lock is on (DB or DB-shm).
    pub file: PathBuf,
    /// SQLite's name for the lock and what it means, e.g. "SHARED (a read transaction is open)".
    pub lock: String,
    /// "read" or "write".
    pub kind: String,
    /// The holder's process id, as `fcntl(F_GETLK)` reports it (None when unknown, e.g. OFD locks).
    pub pid: Option<i32>,
}

impl std::fmt::Display for HeldLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} lock on {}",
            self.lock,
            self.kind,
            self.file.display()
        )?;
        match self.pid {
            Some(pid) => write!(f, ", held by pid {pid}"),
            None => write!(f, ", holder's pid unknown"),
        }
    }
}

/// How a file got into the backup folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveMethod {
    /// rename(2) on the same filesystem: the very same inode.
    Rename,
    /// Another filesystem: copied, fsynced, hash verified, original removed.
    Copy,
}

/// One original file, as it now lies in the backup folder.
#[derive(Debug, Clone, serde::Serialize)]
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
#[derive(Debug, Clone, serde::Serialize)]
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
    /// `integrity_check` of RECOVERED: `["ok"]`, or its first messages.
    pub integrity_check: Vec<String>,
    pub integrity_ok: bool,
    /// Locks other processes held when we looked (only non-empty with --force).
    pub locks_held: Vec<HeldLock>,
    pub forced: bool,
    pub backup_dir: PathBuf,
    pub manifest: PathBuf,
    /// The originals, with their hashes.
    pub moved: Vec<MovedFile>,
    /// One shell line that puts the originals back byte for byte (and removes the restored file).
    pub undo_command: String,
    pub warnings: Vec<String>,
}

impl Outcome for RestoreReport {
    fn render_text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "Restored {} from {}\n  {} bytes, sha256 {}, mode {}, owner {}:{}\n",
            self.db.display(),
            self.restored.from.display(),
            self.restored.size,
            self.restored.sha256,
            self.restored.mode,
            self.restored.uid,
            self.restored.gid,
        ));
        s.push_str(&format!(
            "  integrity_check of the restored file: {}\n",
            if self.integrity_ok {
                "ok".to_string()
            } else {
                format!(
                    "FAILED (restored anyway, --force): {}",
                    self.integrity_check.join("; ")
                )
            }
        ));
        s.push_str(&format!(
            "\nOriginals moved to {}\n",
            self.backup_dir.display()
        ));
        let rows: Vec<Vec<String>> = self
            .moved
            .iter()
            .map(|m| {
                vec![
                    m.role.clone(),
                    m.original_path.display().to_string(),
                    m.backup_path.display().to_string(),
                    m.size.to_string(),
                    m.sha256.clone(),
                ]
            })
            .collect();
        let table =
            crate::output::report::text_table(&["role", "from", "to", "bytes", "sha256"], &rows);
        for line in table.lines() {
            s.push_str("  ");
            s.push_str(line);
            s.push('\n');
        }
        s.push_str(&format!("  manifest: {}\n", self.manifest.display()));
        if !self.locks_held.is_empty() {
            s.push_str("\nLocks held by other processes when restoring (--force):\n");
            for lock in &self.locks_held {
                s.push_str(&format!("  {lock}\n"));
            }
        }
        for w in &self.warnings {
            s.push_str(&format!("\nwarning: {w}\n"));
        }
        s.push_str("\nTo undo (puts the originals back byte for byte):\n  ");
        s.push_str(&self.undo_command);
        s.push('\n');
        s
    }

    fn exit_code(&self) -> i32 {
        crate::error::exit::OK
    }
}

/// The manifest written into the backup folder.
#[derive(Debug, serde::Serialize)]
struct Manifest<'a> {
    tool: String,
    created_at: String,
    db: &'a Path,
    restored: &'a RestoredFile,
    files: &'a [MovedFile],
    undo_command: &'a str,
}

/// An original file found beside the database, before it is moved.
#[derive(Debug, Clone)]
struct Original {
    path: PathBuf,
    name: String,
    role: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// A file already moved into the backup folder, so it can be moved back.
#[derive(Debug)]
struct Moved {
    original: Original,
    backup: PathBuf,
    method: MoveMethod,
    /// (size, sha256) when the move was a verified copy.
    hash: Option<(u64, String)>,
}

/// Puts `from` in place of `db`, moving `db` and its sidecars into a backup folder.
pub fn restore(db: &Path, from: &Path, opts: &RestoreOptions) -> Result<RestoreReport> {
    let db = existing_file(db, "the database")?;
    let from = existing_file(from, "--from")?;
    if !has_sqlite_magic(&from)? {
        return Err(Error::unusable(
            &from,
            "not a SQLite database (no \"SQLite format 3\" header); --from must be the recovered database",
        ));
    }
    if from == db || SIDECARS.iter().any(|(s, _)| sidecar(&db, s) == from) {
        return Err(Error::Usage(format!(
            "--from {} is the database itself or one of its sidecars",
            from.display()
        )));
    }
    for (suffix, _) in SIDECARS {
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

    let integrity = integrity_check(&from);
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
        return Err(refuse_locked(&db, &locks));
    }

    let mut originals = vec![original(&db, "database")?];
    for (suffix, role) in SIDECARS {
        let path = sidecar(&db, suffix);
        if std::fs::symlink_metadata(&path).is_ok() {
            originals.push(original(&path, role)?);
        }
    }

    let (backup_dir, created) =
        prepare_backup_dir(&db, &from, opts.backup_dir.as_deref(), &originals)?;
    let result = swap(&db, &from, &backup_dir, &originals, opts);
    if result.is_err() {
        if let Some(dir) = created {
            // Only removes it when empty, i.e. when nothing of the user's is inside.
            let _ = std::fs::remove_dir(dir);
        }
    }
    let (moved, restored, warnings) = result?;
    finish(
        db,
        restored,
        integrity,
        integrity_ok,
        locks,
        opts,
        backup_dir,
        moved,
        warnings,
    )
}

/// Hashes the originals in the backup folder and writes the manifest.
#[allow(clippy::too_many_arguments)]
fn finish(
    db: PathBuf,
    restored: RestoredFile,
    integrity: Vec<String>,
    integrity_ok: bool,
    locks: Vec<HeldLock>,
    opts: &RestoreOptions,
    backup_dir: PathBuf,
    moved: Vec<Moved>,
    mut warnings: Vec<String>,
) -> Result<RestoreReport> {
    let undo_command = undo_command(&db, &moved);
    let total: u64 = moved
        .iter()
        .filter(|m| m.hash.is_none())
        .filter_map(|m| std::fs::metadata(&m.backup).ok())
        .map(|m| m.len())
        .sum();
    let bar = opts.progress.bytes("hashing", total);
    let mut files = Vec::with_capacity(moved.len());
    for m in &moved {
        let (size, sha256) = match &m.hash {
            Some(h) => h.clone(),
            None => hash_file(&m.backup, Some(&bar)).map_err(|e| {
                with_context(
                    e,
                    &format!("the restore itself is complete; undo with: {undo_command}"),
                )
            })?,
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
    let manifest_path = backup_dir.join("manifest.json");
    let manifest = Manifest {
        tool: format!("sqlite-rescue {}", crate::VERSION),
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        db: &db,
        restored: &restored,
        files: &files,
        undo_command: &undo_command,
    };
    write_manifest(&manifest_path, &manifest).map_err(|e| {
        with_context(
            e,
            &format!("the restore itself is complete; undo with: {undo_command}"),
        )
    })?;
    if let Err(e) = sync_dir(&backup_dir) {
        warnings.push(format!("could not fsync {}: {e}", backup_dir.display()));
    }
    Ok(RestoreReport {
        db,
        restored,
        integrity_check: integrity,
        integrity_ok,
        locks_held: locks,
        forced: opts.force,
        backup_dir,
        manifest: manifest_path,
        moved: files,
        undo_command,
        warnings,
    })
}

/// Steps 2 and 3: temp copy, then the moves and the rename, rolled back on failure.
fn swap(
    db: &Path,
    from: &Path,
    backup_dir: &Path,
    originals: &[Original],
    opts: &RestoreOptions,
) -> Result<(Vec<Moved>, RestoredFile, Vec<String>)> {
    let mut warnings = Vec::new();
    let dir = parent_of(db);
    let db_name = file_name(db);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{db_name}.restore-"))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let from_len = std::fs::metadata(from)
        .map_err(|e| Error::io(from, e))?
        .len();
    let bar = opts.progress.bytes("copying", from_len);
    let (size, sha256) = match copy_hashing(from, tmp.as_file_mut(), Some(&bar), true) {
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
    let db_meta = &originals[0];
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
                shell(db)
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

    if crate::util::interrupt::INTERRUPTED.load(Ordering::SeqCst) {
        return Err(Error::Interrupted {
            path: tmp.path().to_path_buf(),
        });
    }
    // Look again right before touching anything: the copy may have taken a while.
    if !opts.force {
        let locks = probe_locks(db)?;
        if !locks.is_empty() {
            return Err(refuse_locked(db, &locks));
        }
    }

    let guard = IgnoreSignals::new();
    let mut moved: Vec<Moved> = Vec::new();
    // Sidecars first: a database path without its -wal is consistent (the last checkpoint),
    // while a -wal beside a missing or new database could be replayed into the wrong file.
    let order = originals[1..].iter().chain(std::iter::once(&originals[0]));
    for orig in order {
        let target = backup_dir.join(&orig.name);
        match move_file(&orig.path, &target, orig.mode, &opts.progress) {
            Ok((method, hash)) => moved.push(Moved {
                original: orig.clone(),
                backup: target,
                method,
                hash,
            }),
            Err(e) => return Err(roll_back(e, &moved)),
        }
    }
    let left: Vec<String> = SIDECARS
        .iter()
        .map(|(s, _)| sidecar(db, s))
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !left.is_empty() {
        let e = Error::Refused(format!(
            "{} appeared beside the database while restoring (is a process still using it?)",
            left.join(", ")
        ));
        return Err(roll_back(e, &moved));
    }
    if let Err(e) = tmp.persist(db) {
        let err = Error::io(db, e.error);
        return Err(roll_back(err, &moved));
    }
    drop(guard);
    if let Err(e) = sync_dir(&dir) {
        warnings.push(format!("could not fsync {}: {e}", dir.display()));
    }
    let restored = RestoredFile {
        path: db.to_path_buf(),
        from: from.to_path_buf(),
        size,
        sha256,
        mode: format!("{:04o}", db_meta.mode),
        uid,
        gid,
    };
    Ok((moved, restored, warnings))
}

/// Moves what was moved back, newest first; the error says what happened to the originals.
fn roll_back(err: Error, moved: &[Moved]) -> Error {
    let mut failed = Vec::new();
    for m in moved.iter().rev() {
        if let Err(e) = move_file(
            &m.backup,
            &m.original.path,
            m.original.mode,
            &Progress::HIDDEN,
        ) {
            failed.push(format!(
                "{} is still at {} ({e})",
                m.original.path.display(),
                m.backup.display()
            ));
        }
    }
    if moved.is_empty() {
        with_context(err, "nothing was moved")
    } else if failed.is_empty() {
        with_context(err, "the originals were moved back; nothing was changed")
    } else {
        with_context(
            err,
            &format!(
                "could not move every original back: {}; move them back by hand",
                failed.join("; ")
            ),
        )
    }
}

fn with_context(err: Error, note: &str) -> Error {
    match err {
        Error::Io { path, source } => Error::Io {
            path,
            source: std::io::Error::new(source.kind(), format!("{source}; {note}")),
        },
        Error::Refused(msg) => Error::Refused(format!("{msg}; {note}")),
        Error::Sqlite { path, message } => Error::Sqlite {
            path,
            message: format!("{message}; {note}"),
        },
        other => other,
    }
}

fn refuse_locked(db: &Path, locks: &[HeldLock]) -> Error {
    let list: Vec<String> = locks.iter().map(ToString::to_string).collect();
    let pids: Vec<String> = locks
        .iter()
        .filter_map(|l| l.pid)
        .map(|p| p.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let who = if pids.is_empty() {
        String::new()
    } else {
        format!(
            " (pid {}; see `ps -o pid,args -p {}`)",
            pids.join(", "),
            pids.join(",")
        )
    };
    Error::Refused(format!(
        "{} is open in another process{who}: {}. Stop the application and every process using it \
         (find them with `fuser -v {}` or `lsof {}`), then run restore again; nothing was changed \
         (--force restores anyway)",
        db.display(),
        list.join("; "),
        shell(db),
        shell(db)
    ))
}

/// The locks other processes hold on `db` (SQLite's PENDING, RESERVED and SHARED bytes) and
/// on `db-shm` (the WAL lock slots and the DMS byte that every open WAL connection holds).
/// Uses `fcntl(F_GETLK)`, which takes no lock. Locks held by this process are not seen, and a
/// connection to a rollback-journal database that is open but idle holds no lock at all.
pub(crate) fn probe_locks(db: &Path) -> Result<Vec<HeldLock>> {
    let mut held = Vec::new();
    let file = File::open(db).map_err(|e| Error::io(db, e))?;
    let db_ranges = [
        (PENDING_BYTE, 1, "PENDING (a writer is about to commit)"),
        (RESERVED_BYTE, 1, "RESERVED (a write transaction is open)"),
        (
            SHARED_FIRST,
            SHARED_SIZE,
            "SHARED (a read transaction is open)",
        ),
    ];
    for (start, len, name) in db_ranges {
        if let Some(l) = test_lock(&file, start, len).map_err(|e| Error::io(db, e))? {
            held.push(HeldLock {
                file: db.to_path_buf(),
                lock: name.to_string(),
                kind: l.kind.to_string(),
                pid: l.pid,
            });
        }
    }
    let shm = sidecar(db, "-shm");
    match File::open(&shm) {
        Ok(file) => {
            for byte in SHM_LOCK_FIRST..=SHM_DMS {
                if let Some(l) = test_lock(&file, byte, 1).map_err(|e| Error::io(&shm, e))? {
                    held.push(HeldLock {
                        file: shm.clone(),
                        lock: shm_lock_name(byte),
                        kind: l.kind.to_string(),
                        pid: l.pid,
                    });
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&shm, e)),
    }
    Ok(held)
}

fn shm_lock_name(byte: i64) -> String {
    match byte - SHM_LOCK_FIRST {
        0 => "WAL WRITE (a write transaction is open)".to_string(),
        1 => "WAL CHECKPOINT (a checkpoint is running)".to_string(),
        2 => "WAL RECOVER (the WAL index is being rebuilt)".to_string(),
        n @ 3..=7 => format!("WAL READ{} (a read transaction is open)", n - 3),
        _ => "WAL DMS (a connection has the database open)".to_string(),
    }
}

struct TestedLock {
    kind: &'static str,
    pid: Option<i32>,
}

/// Asks the kernel whether a write lock on `len` bytes at `start` would conflict with a lock
/// another process holds; returns that lock if so. Takes no lock itself.
fn test_lock(file: &File, start: i64, len: i64) -> std::io::Result<Option<TestedLock>> {
    // SAFETY: `libc::flock` is a plain C struct of integers, for which all-zero is valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    // SAFETY: the descriptor belongs to `file`, which outlives the call; F_GETLK reads and
    // writes only the `flock` struct we pass, which lives on this stack frame.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    let kind = if fl.l_type == libc::F_RDLCK as libc::c_short {
        "read"
    } else {
        "write"
    };
    Ok(Some(TestedLock {
        kind,
        pid: (fl.l_pid > 0).then_some(fl.l_pid),
    }))
}

/// Ignores SIGINT, SIGTERM and SIGHUP while alive, so the moves and the rename run to the end
/// (or are rolled back) once started; the previous handlers come back on drop.
struct IgnoreSignals {
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

impl IgnoreSignals {
    fn new() -> IgnoreSignals {
        let mut saved = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: `sigaction` is a plain C struct, valid when zeroed; we set SIG_IGN with an
            // empty mask, and the kernel writes the old action into `old`, which we own.
            unsafe {
                let mut ignore: libc::sigaction = std::mem::zeroed();
                ignore.sa_sigaction = libc::SIG_IGN;
                libc::sigemptyset(&mut ignore.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &ignore, &mut old) == 0 {
                    saved.push((sig, old));
                }
            }
        }
        IgnoreSignals { saved }
    }
}

impl Drop for IgnoreSignals {
    fn drop(&mut self) {
        for (sig, old) in &self.saved {
            // SAFETY: `old` is the action the kernel handed back for this signal in `new`;
            // reinstalling it is what it was before, and we pass no place for an old action.
            unsafe {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
    }
}

/// Moves `src` to `dst`, which must not exist: rename on the same filesystem; otherwise copy,
/// fsync, verify the copy's hash, then remove `src`. Returns (size, sha256) for a copy.
fn move_file(
    src: &Path,
    dst: &Path,
    mode: u32,
    progress: &Progress,
) -> Result<(MoveMethod, Option<(u64, String)>)> {
    if std::fs::symlink_metadata(dst).is_ok() {
        return Err(Error::Refused(format!(
            "{} already exists; not overwriting it",
            dst.display()
        )));
    }
    match std::fs::rename(src, dst) {
        Ok(()) => return Ok((MoveMethod::Rename, None)),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
        Err(e) => return Err(Error::io(src, e)),
    }
    let len = std::fs::metadata(src).map_err(|e| Error::io(src, e))?.len();
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| Error::io(dst, e))?;
    let bar = progress.bytes("moving", len);
    let copied = copy_hashing(src, &mut out, Some(&bar), false);
    bar.finish_and_clear();
    let verified = copied
        .and_then(|h| {
            out.set_permissions(std::fs::Permissions::from_mode(mode))?;
            out.sync_all()?;
            Ok(h)
        })
        .map_err(|e| Error::io(dst, e))
        .and_then(|h| {
            let again = hash_file(dst, None)?;
            if again == h {
                Ok(h)
            } else {
                Err(Error::io(
                    dst,
                    std::io::Error::other("the copy reads back differently from the original"),
                ))
            }
        });
    let hash = match verified {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(dst);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::remove_file(src) {
        let _ = std::fs::remove_file(dst);
        return Err(Error::io(src, e));
    }
    Ok((MoveMethod::Copy, Some(hash)))
}

/// Copies `src` into `out` (from its current position), returning (bytes, sha256). When
/// `interruptible`, stops with `ErrorKind::Interrupted` once SIGINT/SIGTERM was received.
fn copy_hashing(
    src: &Path,
    out: &mut File,
    bar: Option<&indicatif::ProgressBar>,
    interruptible: bool,
) -> std::io::Result<(u64, String)> {
    let mut input = File::open(src)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        if interruptible && crate::util::interrupt::INTERRUPTED.load(Ordering::Relaxed) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "interrupted",
            ));
        }
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        total += n as u64;
        if let Some(bar) = bar {
            bar.inc(n as u64);
        }
    }
    out.flush()?;
    Ok((total, hex::encode(hasher.finalize())))
}

/// (size, sha256) of a file.
pub(crate) fn hash_file(
    path: &Path,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<(u64, String)> {
    let mut input = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        if let Some(bar) = bar {
            bar.inc(n as u64);
        }
    }
    Ok((total, hex::encode(hasher.finalize())))
}

/// The undo line: remove whatever sidecars the restored database has grown, put the original
/// database back over the restored one (`mv -f` replaces it atomically), then its sidecars.
pub(crate) fn undo_line(db: &Path, backups: &[(PathBuf, PathBuf)]) -> String {
    let sidecars: Vec<String> = SIDECARS
        .iter()
        .map(|(s, _)| shell(&sidecar(db, s)))
        .collect();
    let mut parts = vec![format!("rm -f -- {}", sidecars.join(" "))];
    let (db_first, rest): (Vec<_>, Vec<_>) = backups.iter().partition(|(orig, _)| orig == db);
    for (orig, backup) in db_first.into_iter().chain(rest) {
        parts.push(format!("mv -f -- {} {}", shell(backup), shell(orig)));
    }
    parts.join(" && ")
}

fn undo_command(db: &Path, moved: &[Moved]) -> String {
    let pairs: Vec<(PathBuf, PathBuf)> = moved
        .iter()
        .map(|m| (m.original.path.clone(), m.backup.clone()))
        .collect();
    undo_line(db, &pairs)
}

/// Picks (and creates) the backup folder; returns it and whether we created it.
fn prepare_backup_dir(
    db: &Path,
    from: &Path,
    requested: Option<&Path>,
    originals: &[Original],
) -> Result<(PathBuf, Option<PathBuf>)> {
    let stamp = utc_stamp();
    let dir = match requested {
        Some(dir) => absolute(dir),
        None => match incident_of(from, db).or_else(|| latest_incident_dir(db)) {
            Some(incident) => {
                let plain = incident.join("pre-restore");
                if is_missing_or_empty(&plain) {
                    plain
                } else {
                    unused(incident.join(format!("pre-restore-{stamp}")))
                }
            }
            None => unused(sidecar(db, &format!(".pre-restore-{stamp}"))),
        },
    };
    let created = match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => {
            return Err(Error::Usage(format!(
                "--backup-dir {} exists and is not a folder",
                dir.display()
            )))
        }
        Err(_) => {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            Some(dir.clone())
        }
    };
    for o in originals {
        let target = dir.join(&o.name);
        if std::fs::symlink_metadata(&target).is_ok() {
            if let Some(d) = &created {
                let _ = std::fs::remove_dir(d);
            }
            return Err(Error::Refused(format!(
                "{} already exists in the backup folder; choose another with --backup-dir",
                target.display()
            )));
        }
    }
    Ok((dir, created))
}

/// The newest `<db-name>.rescue-*` folder beside the database or in the current folder.
/// The incident folder RECOVERED sits in, when its `report.json` says it was recovered from
/// DB (wherever `--incident-dir` put it).
pub fn incident_of(from: &Path, db: &Path) -> Option<PathBuf> {
    let folder = from.parent()?;
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("report.json")).ok()?).ok()?;
    let source = std::fs::canonicalize(report.get("source")?.as_str()?).ok()?;
    (source == std::fs::canonicalize(db).ok()?).then(|| folder.to_path_buf())
}

fn latest_incident_dir(db: &Path) -> Option<PathBuf> {
    let prefix = format!("{}.rescue-", file_name(db));
    let mut places = vec![parent_of(db)];
    if let Ok(cwd) = std::env::current_dir() {
        let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
        if !places.contains(&cwd) {
            places.push(cwd);
        }
    }
    let mut best: Option<(String, PathBuf)> = None;
    for place in places {
        let Ok(entries) = std::fs::read_dir(&place) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stamp) = name.strip_prefix(&prefix) else {
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if best.as_ref().is_none_or(|(s, _)| stamp > s.as_str()) {
                best = Some((stamp.to_string(), entry.path()));
            }
        }
    }
    best.map(|(_, p)| p)
}

fn is_missing_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// `path`, or `path-2`, `path-3`, ... whichever does not exist yet.
fn unused(path: PathBuf) -> PathBuf {
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

fn utc_stamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .to_string()
}

/// Resolves symlinks (SQLite puts the sidecars beside the real file) and checks it is a file.
fn existing_file(path: &Path, what: &str) -> Result<PathBuf> {
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

fn has_sqlite_magic(path: &Path) -> Result<bool> {
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
fn integrity_check(path: &Path) -> Vec<String> {
    match crate::engine::verify::integrity_check(path, &std::collections::BTreeMap::new(), 20) {
        Ok(msgs) => msgs,
        Err(e) => vec![format!("integrity_check could not run: {e}")],
    }
}

fn original(path: &Path, role: &'static str) -> Result<Original> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    Ok(Original {
        path: path.to_path_buf(),
        name: file_name(path),
        role,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

fn write_manifest(path: &Path, manifest: &Manifest<'_>) -> Result<()> {
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    let dir = parent_of(path);
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| Error::io(&dir, e))?;
    tmp.write_all(&json).map_err(|e| Error::io(path, e))?;
    tmp.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "db".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell(Path::new("/srv/app.db")), "/srv/app.db");
        assert_eq!(shell(Path::new("/srv/my app.db")), "'/srv/my app.db'");
        assert_eq!(shell(Path::new("/srv/it's.db")), r"'/srv/it'\''s.db'");
    }

    #[test]
    fn undo_puts_the_database_first_and_clears_new_sidecars() {
        let db = Path::new("/srv/app.db");
        let line = undo_line(
            db,
            &[
                (
                    PathBuf::from("/srv/app.db-wal"),
                    PathBuf::from("/b/app.db-wal"),
                ),
                (PathBuf::from("/srv/app.db"), PathBuf::from("/b/app.db")),
            ],
        );
        assert_eq!(
            line,
            "rm -f -- /srv/app.db-journal /srv/app.db-wal /srv/app.db-shm && \
             mv -f -- /b/app.db /srv/app.db && mv -f -- /b/app.db-wal /srv/app.db-wal"
        );
    }

    #[test]
    fn shm_lock_names() {
        assert!(shm_lock_name(120).starts_with("WAL WRITE"));
        assert!(shm_lock_name(123).starts_with("WAL READ0"));
        assert!(shm_lock_name(127).starts_with("WAL READ4"));
        assert!(shm_lock_name(128).starts_with("WAL DMS"));
    }
}
