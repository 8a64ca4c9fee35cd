//! Paths as the user and the tool name them.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The path of a database's sidecar: `db` with `suffix` ("-wal", "-shm", "-journal") added.
pub fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// `path` made absolute against the current folder, without resolving links: what the user
/// named, as it will be shown back.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `path` with links resolved where it exists, else made absolute: what two names must agree
/// on to be the same file.
pub(crate) fn resolved(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| absolute(path))
}

/// A new private folder under the system's temporary folder, removed when dropped.
pub(crate) fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))
}

/// Whether `db` has a -wal or a -journal beside it: what SQLite replays or rolls back when it
/// opens the database (writing to do so), and what an immutable open would ignore.
pub(crate) fn has_wal_or_journal(db: &Path) -> bool {
    sidecar(db, "-wal").exists() || sidecar(db, "-journal").exists()
}

/// The database and its -wal gathered in `dir` for SQLite to read through its own WAL code,
/// the originals untouched: hard links where `dir` is on the same file system (a gigabyte
/// then costs nothing to gather), copies elsewhere. Open it with [`open_reading_copy`], which
/// never writes the database or its -wal; SQLite builds its -shm in `dir`. A -journal is
/// rolled back when SQLite opens the database, which writes: that gets a [`working_copy`].
pub(crate) fn reading_copy(db: &Path, dir: &Path) -> Result<PathBuf> {
    if sidecar(db, "-journal").exists() {
        return working_copy(db, dir);
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = db.file_name().unwrap_or(std::ffi::OsStr::new("db"));
    let view = dir.join(name);
    if view == db {
        return Ok(view);
    }
    for suffix in ["", "-wal"] {
        let from = sidecar(db, suffix);
        if !from.is_file() {
            continue;
        }
        let to = sidecar(&view, suffix);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
        }
    }
    Ok(view)
}

/// Opens what [`reading_copy`] gathered. Read-only, with no checkpoint when it closes: the
/// files may be links to a snapshot, which must keep its hash.
pub(crate) fn open_reading_copy(view: &Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let writable_copy = sidecar(view, "-journal").exists();
    let flags = if writable_copy {
        OpenFlags::default()
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = rusqlite::Connection::open_with_flags(view, flags)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    Ok(conn)
}

/// A new private folder beside the folder that holds `file` (on its file system, so
/// [`reading_copy`] can link rather than copy; never inside a snapshot's own folder), else
/// under the system's temporary folder. Removed when dropped.
pub(crate) fn temp_dir_near(file: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let above = file.parent().and_then(Path::parent);
    match above {
        Some(dir) if !dir.as_os_str().is_empty() => tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(dir)
            .or_else(|_| temp_dir(prefix)),
        _ => temp_dir(prefix),
    }
}

/// A writable copy of a database and its -wal and -journal (never the -shm, which SQLite
/// rebuilds from the WAL) in `dir`, for SQLite to open normally. Snapshot files are read-only,
/// and SQLite opens a read-only WAL database read-only (it could not replay the WAL into a
/// -shm).
pub(crate) fn working_copy(db: &Path, dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = db.file_name().unwrap_or(std::ffi::OsStr::new("db"));
    let copy = dir.join(name);
    if copy == db {
        return Ok(copy);
    }
    for suffix in ["", "-wal", "-journal"] {
        let from = sidecar(db, suffix);
        if !from.is_file() {
            continue;
        }
        let to = sidecar(&copy, suffix);
        std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(&to, e))?;
    }
    Ok(copy)
}
