//! sqlite-rescue: get the rows back out of a damaged SQLite database.
//!
//! Data flows one way: [`commands`] (one module per subcommand) drive the [`engine`], which
//! reads pages through [`source`] (the snapshot, its WAL and journal) and decodes them with
//! [`format`]; [`output`] renders what the engine reports.

pub mod commands;
pub mod engine;
pub mod error;
pub mod format;
pub mod output;
pub mod source;
pub mod util;

/// The page view SQLite reads through, driven over any file (for the fuzz targets).
#[doc(hidden)]
pub use engine::copy::vfs::exercise_view;
pub use error::{Error, Result};
pub use util::interrupt::INTERRUPTED;

/// The version of this tool.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The oldest SQLite we accept: older ones carry the WAL-reset race that corrupts
/// databases written by several processes.
pub const MIN_SQLITE_VERSION_NUMBER: i32 = 3_051_003;

/// The version of the SQLite library bundled into this binary, e.g. "3.54.1".
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}
