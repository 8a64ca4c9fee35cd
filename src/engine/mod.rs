//! The recovery engine: from a snapshot's pages to a fresh database and a report.
//!
//! ```text
//! PageFile ─► Claims ─► schema ─► walk every tree ─► freelist ─► orphans ─► Writer ─► Report
//! ```
//! Rows are streamed from the page they were found on straight into the output; nothing
//! proportional to the database's size is kept in memory except one status byte and one
//! owner number per page.

pub mod altered;
pub(crate) mod catalog;
pub mod causes;
pub(crate) mod copy;
mod decode;
pub mod estimate;
pub mod fill;
mod holes;
pub mod losses;
mod objects;
mod page_map;
pub mod pages;
mod report;
mod run;
pub(crate) mod salvage;
pub(crate) mod schema;
pub(crate) mod stand_ins;
pub(crate) mod verify;
pub(crate) mod walk;
pub(crate) mod writer;

pub(crate) use catalog::{schema_roots, side_table_names};
pub(crate) use decode::note_damaged_value;
pub use report::{
    BackupUsed, DateSource, FillReport, GroupOutcome, MatchedBy, ObjectKind, ObjectReport, Options,
    OrphanGroup, PageMapSnapshot, PageRun, Report, SchemaDifference, TableFill, TableReport,
};
use run::Strategy;
pub use verify::{pages_disagree_with_sql, structure_proved_by_pages, verify, VerifyMode};
pub use writer::SideNames;

use crate::error::{Error, Result};
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use pages::Claims;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::util::interrupt::interrupted;

/// Recovers every readable row of the database at `snapshot_db` (with its `-wal` beside it)
/// into a new database at `out`, which must not exist. The output is written to a temporary
/// file beside `out` and renamed into place only when complete and checked.
pub fn recover(snapshot_db: &Path, out: &Path, options: &Options) -> Result<Report> {
    if out.exists() {
        return Err(Error::Refused(format!(
            "{} already exists; choose another output path",
            out.display()
        )));
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut pf = PageFile::open(snapshot_db)?;
    let tmp = tempfile::Builder::new()
        .prefix(".sqlite-rescue-")
        .suffix(".partial")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let strategy = if options.decode_all {
        Strategy::DecodeEveryRow
    } else {
        Strategy::CopyWhatReadsWhole
    };
    let mut result = Engine::run(&mut pf, tmp.path(), options, strategy);
    // An index copied whole can still disagree with its rows (a flipped byte in a value, which
    // no page structure shows): the check finds it. Decoding every table instead rebuilds
    // every index from the rows, as a damaged table's always are.
    if matches!(&result, Ok(r) if !options.skip_verify && !r.integrity_ok()
        && r.tables.iter().any(|t| t.copied_intact))
    {
        tmp.as_file()
            .set_len(0)
            .map_err(|e| Error::io(tmp.path(), e))?;
        result = Engine::run(&mut pf, tmp.path(), options, Strategy::DecodeEveryRow);
    }
    let mut report = match result {
        // A signal that came after the last page (while indexes were built or the result
        // checked) stops the run too: SQLite was interrupted, or finished, but the user asked
        // to stop, so nothing is put at `out`. The temporary file goes with `tmp`.
        _ if interrupted() => {
            return Err(Error::Interrupted {
                path: out.to_path_buf(),
            })
        }
        Ok(r) => r,
        Err(Error::Interrupted { .. }) => {
            return Err(Error::Interrupted {
                path: out.to_path_buf(),
            })
        }
        // SQLite failing on our own output is nearly always a write that failed: name the
        // output, say it is gone, and say what usually causes it (a full disk makes SQLite
        // report "disk image is malformed" when it reads back a page it could not write).
        Err(Error::Sqlite { path, message }) if path == tmp.path() => {
            return Err(Error::Sqlite {
                path: out.to_path_buf(),
                message: format!(
                    "writing the recovered database failed: {message}; nothing was left there \
                     (is the disk full, or a file size limit in force?)"
                ),
            })
        }
        Err(e) => return Err(e),
    };
    keep_wal_mode(&pf, tmp.path());
    let file = tmp.as_file();
    file.sync_all().map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist_noclobber(out)
        .map_err(|e| Error::io(out, e.error))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    report.source = snapshot_db.to_path_buf();
    report.output = out.to_path_buf();
    Ok(report)
}

/// A source in WAL mode gives a recovered database in WAL mode: the mode is kept in the file,
/// and an app that never sets it would otherwise come back to rollback journaling, with
/// readers and the writer blocking each other. The WAL SQLite starts is checkpointed and
/// removed when the connection closes. Best effort: where the file system cannot hold a WAL
/// the recovered file stays in rollback mode rather than the recovery failing.
fn keep_wal_mode(pf: &PageFile, out: &Path) {
    if !pf.geometry().wal_mode() || interrupted() {
        return;
    }
    if let Ok(conn) = rusqlite::Connection::open(out) {
        let _ = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0));
        let _ = conn.close();
    }
    // Nothing was written through the WAL (the switch itself goes into the main file), so
    // whatever a failed close left beside the file can go.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(crate::source::pagefile::sidecar(out, suffix));
    }
}

struct Engine<'a> {
    pf: &'a PageFile,
    map: Claims,
    encoding: TextEncoding,
    /// Index trees already walked (with a table copied by transfer).
    indexes_walked: HashSet<String>,
    /// Indexes and views already in the output: indexes created before their table was
    /// copied (SQLite filled them from the source), or everything a whole copy brought.
    present: HashSet<String>,
}

impl Engine<'_> {}
