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
