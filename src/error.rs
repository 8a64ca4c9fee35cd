//! Errors at the library boundary. Each one knows the exit code it maps to, and carries the
//! path (and page, where there is one) it concerns, so the one-line message says what to look at.

use std::path::{Path, PathBuf};

/// Exit codes shared by every command (documented in docs/exit-codes.md).
pub mod exit {
    /// Success, or the database is healthy.
    pub const OK: i32 = 0;
    /// Damage was found, or some rows were not recovered in place.
    pub(crate) const DAMAGE: i32 = 1;
    /// The command line was wrong.
    pub(crate) const USAGE: i32 = 2;
    /// The input cannot be used: missing, not a SQLite file, unreadable, a directory.
    pub(crate) const UNUSABLE: i32 = 3;
    /// The operation failed: I/O error, disk full, interrupted, or refused for safety.
    pub(crate) const FAILED: i32 = 4;
    /// Not enough free disk where the run would write: refused before anything was written.
    pub(crate) const NO_ROOM: i32 = 5;
    /// An incident's report was written by a newer sqlite-rescue, in a layout this one does
    /// not know (a newer `schema_version`).
    pub(crate) const TOO_NEW: i32 = 6;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is not something we can work on at all.
    #[error("{}: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },

    /// An I/O operation failed on a path we own or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The bundled SQLite reported an error while we wrote or checked a database.
    #[error("{}: {message}", path.display())]
    Sqlite { path: PathBuf, message: String },

    /// We will not do this, because it could lose the user's data.
    #[error("refused: {0}")]
    Refused(String),

    /// The source kept changing while we copied it.
    #[error("{}: the database is still being written (it changed while it was copied, {attempts} tries); stop the application first, or pass --allow-changing to take a snapshot anyway", path.display())]
    StillChanging { path: PathBuf, attempts: u32 },

    /// A page of the database could not be used for a reason worth stopping for.
    #[error("{}: page {pgno}: {reason}", path.display())]
    Page {
        path: PathBuf,
        pgno: u32,
        reason: String,
    },

    /// The run was interrupted (SIGINT/SIGTERM); nothing complete-looking was left behind.
    #[error("interrupted: nothing was left at {}", path.display())]
    Interrupted { path: PathBuf },

    /// The command line or the arguments do not make sense together.
    #[error("{0}")]
    Usage(String),

    /// A database's -wal, -shm or -journal was named where the database itself belongs.
    #[error("{}: {reason}", path.display())]
    Sidecar {
        path: PathBuf,
        /// The database it belongs to, when its name says so.
        database: Option<PathBuf>,
        reason: String,
    },

    /// The run was interrupted once its snapshot was complete: the snapshot stays (it is the
    /// evidence, whole with its manifest); nothing else was written.
    #[error("interrupted: no recovered database or report was written; the snapshot, complete with its manifest, is kept in {}", snapshot.display())]
    InterruptedAfterSnapshot { snapshot: PathBuf },

    /// A report written in a newer layout than this tool reads (its `schema_version`).
    #[error("{}: schema_version {found} is newer than sqlite-rescue {tool} reads (up to {supported}); read it with the sqlite-rescue that wrote it ({writer}) or a newer one", path.display())]
    TooNew {
        path: PathBuf,
        found: u64,
        supported: u32,
        tool: &'static str,
        writer: String,
    },

    /// The disk where the run would write has less free space than it needs (checked before
    /// anything is written).
    #[error("{}: not enough free disk: this recovery needs about {need} there and {free} is free; make room, or write elsewhere (--incident-dir DIR; TMPDIR=DIR for --dry-run)", path.display())]
    NoRoom {
        path: PathBuf,
        need: String,
        free: String,
    },

    /// Putting this copy in place would lose rows the source held (restore without
    /// --accept-loss).
    #[error("refused: {0}")]
    RowsWouldBeLost(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Unusable { .. } => exit::UNUSABLE,
            Error::Usage(_) | Error::Sidecar { .. } => exit::USAGE,
            Error::RowsWouldBeLost(_) => exit::DAMAGE,
            Error::TooNew { .. } => exit::TOO_NEW,
            Error::NoRoom { .. } => exit::NO_ROOM,
            Error::Io { .. }
            | Error::Sqlite { .. }
            | Error::Refused(_)
            | Error::StillChanging { .. }
            | Error::Page { .. }
            | Error::Interrupted { .. }
            | Error::InterruptedAfterSnapshot { .. } => exit::FAILED,
        }
    }

    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn unusable(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::Unusable {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn sqlite(path: impl AsRef<Path>, err: impl std::fmt::Display) -> Self {
        Error::Sqlite {
            path: path.as_ref().to_path_buf(),
            message: err.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
