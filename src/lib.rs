//! sqlite-rescue: get the rows back out of a damaged SQLite database.
//!
//! Data flows one way: [`snapshot`] copies the user's files into an incident folder;
//! [`pagefile`] serves pages from the snapshot (main file overlaid by committed WAL frames);
//! [`format`] decodes those pages; [`recover`] turns them into rows in a fresh database;
//! [`diff`] and [`report`] say what came back and what did not.

pub mod check;
pub mod diff;
pub mod error;
pub mod format;
pub mod incident;
pub mod lost;
pub mod map;
pub mod pagefile;
pub mod progress;
pub mod recover;
pub mod report;
pub mod restore;
pub mod snapshot;
pub mod verify;

pub use error::{Error, Result};
pub use recover::INTERRUPTED;

/// The version of this tool.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The oldest SQLite we accept: older ones carry the WAL-reset race that corrupts
/// databases written by several processes.
pub const MIN_SQLITE_VERSION_NUMBER: i32 = 3_051_003;

/// The version of the SQLite library bundled into this binary, e.g. "3.54.1".
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}
