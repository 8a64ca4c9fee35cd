//! `--fill-from BACKUP`: after a recovery, the rows it lost are put back from older copies
//! of the database (a nightly `.backup`, a restored replica, a snapshot), marked and dated,
//! never over a row that survived.
//!
//! Each backup is read from a private copy. For every table that lost rows, a backup row
//! goes in when a surviving index names its rowid among the lost, when its rowid (in a
//! WITHOUT ROWID table, its key: keyed.rs) lies in a lost range, or when its indexed values
//! (a username) are those of a lost row; a row that survived is never touched (a backup row
//! that would collide with it is kept aside); a backup row outside every lost range and
//! absent from the damaged database was deleted since, and stays deleted. Backups are asked
//! newest first: a row comes from the newest one that has it.

use crate::engine::report::{BackupUsed, FillReport, SchemaDifference};
use crate::engine::Report;
use crate::error::{Error, Result};
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use crate::util::interrupt::{interrupted, InterruptWatch};
use backup::{columns, rfc3339, Backup};
use keyed::{fill_keyed, Pages};
use record::{Origin, Recorder, Triggers};
use std::path::{Path, PathBuf};
use table::{fill_table, TableState};

mod backup;
mod keyed;
mod record;
mod table;

/// The backups to fill from, opened on private copies (removed when this is dropped).
pub struct Backups {
    /// Newest first.
    list: Vec<Backup>,
    _dir: tempfile::TempDir,
}

impl Backups {
    /// Copies, hashes and opens each backup; refuses one that is not a database.
    pub fn open(paths: &[PathBuf]) -> Result<Backups> {
        let dir = crate::util::paths::temp_dir("sqlite-rescue-backups-")?;
        let mut list = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            list.push(Backup::open(path, &dir.path().join(i.to_string()))?);
        }
        list.sort_by_key(|b| std::cmp::Reverse(b.date));
        Ok(Backups { list, _dir: dir })
    }

    /// Refuses a backup that has no table in common with `tables` (the damaged database's):
    /// it is a backup of another database.
    pub fn refuse_unrelated(&self, tables: &[&str]) -> Result<()> {
        for b in &self.list {
            let common = tables
                .iter()
                .any(|t| b.tables.iter().any(|bt| bt.eq_ignore_ascii_case(t)));
            if !common {
                let theirs = if b.tables.is_empty() {
                    "none".to_string()
                } else {
                    b.tables.join(", ")
                };
                return Err(Error::unusable(
                    &b.path,
                    format!(
                        "has no table in common with the damaged database (its tables: {theirs}): \
                         a backup of another database? nothing was filled"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The tables of a recovery that are the user's (not SQLite's, not the tool's own).
fn user_tables_of(report: &Report) -> impl Iterator<Item = &str> + Clone {
    report
        .tables
        .iter()
        .filter(|t| t.refused.is_none() && !t.name.starts_with("sqlite_"))
        .filter(|t| !report.side_tables.contains(&t.name))
        .map(|t| t.name.as_str())
}

/// Fills the rows `report` says were lost into the recovered database `out`, from `backups`,
/// in one transaction; `snapshot` is the database the recovery read (the keys around a lost
/// page of a WITHOUT ROWID table are read there again). Refuses, before writing anything, a
/// backup of another database.
pub fn fill(out: &Path, report: &Report, snapshot: &Path, backups: &Backups) -> Result<FillReport> {
    backups.refuse_unrelated(&user_tables_of(report).collect::<Vec<_>>())?;
    let pages = PageFile::open(snapshot).ok().map(|pf| Pages {
        pf,
        encoding: report.geometry.encoding.unwrap_or(TextEncoding::Utf8),
    });
    // Stopped by a signal, the transaction is rolled back: nothing half filled.
    let sql = |e| {
        if interrupted() {
            Error::Interrupted {
                path: out.to_path_buf(),
            }
        } else {
            Error::sqlite(out, e)
        }
    };
    let mut conn = rusqlite::Connection::open(out).map_err(sql)?;
    let _watch = InterruptWatch::start(conn.get_interrupt_handle());
    let tx = conn.transaction().map_err(sql)?;
    let triggers = Triggers::drop_all(&tx).map_err(sql)?;
    let recorder = Recorder {
        filled: &report.side_tables.filled,
        collisions: &report.side_tables.fill_collisions,
    };
    recorder.create(&tx).map_err(sql)?;
    let mut states: Vec<TableState<'_>> = report
        .tables
        .iter()
        .filter(|t| user_tables_of(report).any(|n| n == t.name))
        .filter(|t| !t.lost.is_empty() || t.lost_values.is_some())
        .map(TableState::new)
        .collect();
    let mut result = FillReport {
        filled_table: recorder.filled.to_string(),
        collisions_table: recorder.collisions.to_string(),
        ..FillReport::default()
    };
    for b in &backups.list {
        let path = b.path.display().to_string();
        let date = rfc3339(b.date);
        let origin = Origin {
            backup: &path,
            sha256: &b.sha256,
            date: &date,
        };
        result
            .schema_differences
            .extend(schema_differences(&tx, report, b));
        let mut filled_rows = 0;
        for state in &mut states {
            filled_rows += if state.rep.without_rowid {
                fill_keyed(&tx, b, &origin, &recorder, state, pages.as_ref())
            } else {
                fill_table(&tx, b, &origin, &recorder, state)
            }
            .map_err(sql)?;
        }
        result.backups.push(BackupUsed {
            path: b.path.clone(),
            sha256: b.sha256.clone(),
            date,
            date_from: b.date_from,
            mtime: rfc3339(b.mtime),
            filled_rows,
        });
    }
    triggers.restore(&tx).map_err(sql)?;
    tx.commit().map_err(sql)?;
    for mut state in states {
        state.finish();
        result.filled_rows += state.out.filled;
        result.collided_rows += state.out.collided;
        result.deleted_since_rows += state.out.deleted_since;
        result.tables.push(state.out);
    }
    Ok(result)
}

/// The tables and columns one side has and the other does not.
fn schema_differences(
    main: &rusqlite::Connection,
    report: &Report,
    b: &Backup,
) -> Vec<SchemaDifference> {
    let backup = b.path.display().to_string();
    let ours: Vec<&str> = user_tables_of(report).collect();
    let mut out = Vec::new();
    for t in &ours {
        let Some(theirs) = b.tables.iter().find(|bt| bt.eq_ignore_ascii_case(t)) else {
            out.push(SchemaDifference::TableNotInBackup {
                backup: backup.clone(),
                table: (*t).to_string(),
            });
            continue;
        };
        let (mine, other) = (columns(main, t), columns(&b.conn, theirs));
        let names = |cols: &[(String, String, i64)]| -> Vec<String> {
            cols.iter()
                .filter(|c| c.2 == 0)
                .map(|c| c.0.clone())
                .collect()
        };
        let (mine, other) = (names(&mine), names(&other));
        let missing = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter()
                .filter(|c| !b.iter().any(|o| o.eq_ignore_ascii_case(c)))
                .cloned()
                .collect()
        };
        for column in missing(&mine, &other) {
            out.push(SchemaDifference::ColumnNotInBackup {
                backup: backup.clone(),
                table: (*t).to_string(),
                column,
            });
        }
        for column in missing(&other, &mine) {
            out.push(SchemaDifference::ColumnOnlyInBackup {
                backup: backup.clone(),
                table: (*t).to_string(),
                column,
            });
        }
    }
    let extra = b
        .tables
        .iter()
        .filter(|bt| !ours.iter().any(|t| t.eq_ignore_ascii_case(bt)));
    for table in extra {
        out.push(SchemaDifference::TableOnlyInBackup {
            backup: backup.clone(),
            table: table.clone(),
        });
    }
    out
}

/// The tables of the damaged database `db` as its schema names them (read by the engine's
/// own decoder, no SQLite, no locks), for refusing an unrelated backup before a recovery;
/// `None` when its schema shows none (a damaged schema: the check waits for the recovery).
pub fn tables_of(db: &Path) -> Option<Vec<String>> {
    let names: Vec<String> = crate::engine::schema_roots(db)
        .ok()?
        .into_values()
        .filter(|n| !n.starts_with("sqlite_"))
        .collect();
    (!names.is_empty()).then_some(names)
}
