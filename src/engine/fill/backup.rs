//! A backup to fill from: a private copy of the user's file (never opened in place, so it
//! is never written, locked or checkpointed), its SHA-256 and its date.

use crate::engine::report::DateSource;
use crate::error::{Error, Result};
use crate::util::quote::ident;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One backup, opened on a private copy.
pub(crate) struct Backup {
    /// The user's file, as named.
    pub(crate) path: PathBuf,
    pub(crate) sha256: String,
    pub(crate) date: SystemTime,
    pub(crate) date_from: DateSource,
    pub(crate) mtime: SystemTime,
    /// Its tables (not SQLite's own), as the backup names them.
    pub(crate) tables: Vec<String>,
    pub(crate) conn: Connection,
}

impl Backup {
    /// Copies `path` (with its -wal and -journal) into `dir` and opens the copy; the copy's
    /// bytes are hashed, so the hash is of exactly what was read.
    pub(crate) fn open(path: &Path, dir: &Path) -> Result<Backup> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::unusable(
                path,
                "is not a file (a backup database is needed)",
            ));
        }
        if !has_magic(path)? {
            return Err(Error::unusable(
                path,
                "is not a SQLite database (no SQLite header)",
            ));
        }
        let copy = crate::util::paths::working_copy(path, dir)?;
        let sha256 = sha256_of(&copy)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&copy, flags).map_err(|e| Error::sqlite(path, e))?;
        // The copy is ours, but nothing is ever written to it either.
        conn.execute_batch("PRAGMA query_only = 1")
            .map_err(|e| Error::sqlite(path, e))?;
        let tables = user_tables(&conn)
            .map_err(|e| Error::unusable(path, format!("cannot be read as a database: {e}")))?;
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let (date, date_from) = match newest_timestamp(&conn, &tables) {
            Some(t) => (t, DateSource::NewestTimestamp),
            None => (mtime, DateSource::Mtime),
        };
        Ok(Backup {
            path: crate::util::paths::absolute(path),
            sha256,
            date,
            date_from,
            mtime,
            tables,
            conn,
        })
    }
}

/// Whether the file starts as every SQLite database does.
fn has_magic(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = Vec::new();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    file.take(crate::format::header::MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    Ok(head.starts_with(crate::format::header::MAGIC))
}

/// The hex SHA-256 of a file, read in one streaming pass.
fn sha256_of(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(hasher.finalize()))
}

/// The tables of a database, SQLite's own left out.
pub(crate) fn user_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
         ESCAPE '\\' ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// A column's name, declared type and `hidden` (0 ordinary, 2 and 3 generated).
pub(crate) fn columns(conn: &Connection, table: &str) -> Vec<(String, String, i64)> {
    let Ok(mut stmt) = conn.prepare("SELECT name, type, hidden FROM pragma_table_xinfo(?1)") else {
        return Vec::new();
    };
    stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map(|rows| rows.filter_map(std::result::Result::ok).collect())
        .unwrap_or_default()
}

/// The newest date found in a column whose declared type or name says it holds dates
/// (`DATETIME`, `created_at`, ...): the backup holds rows at least that recent, which a
/// restored or copied file's mtime does not tell.
fn newest_timestamp(conn: &Connection, tables: &[String]) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    for table in tables {
        for (name, decl, hidden) in columns(conn, table) {
            if hidden != 0 || !looks_like_date(&name, &decl) {
                continue;
            }
            let sql = format!("SELECT max({}) FROM {}", ident(&name), ident(table));
            let Ok(v) = conn.query_row(&sql, [], |r| r.get::<_, rusqlite::types::Value>(0)) else {
                continue;
            };
            // A date in the future is a wrong clock or a scheduled time, not when the copy
            // was made.
            if let Some(t) = as_time(&v).filter(|t| *t <= SystemTime::now()) {
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
        }
    }
    newest
}

fn looks_like_date(name: &str, decl: &str) -> bool {
    let (name, decl) = (name.to_ascii_lowercase(), decl.to_ascii_uppercase());
    decl.contains("DATE")
        || decl.contains("TIME")
        || [
            "date",
            "time",
            "timestamp",
            "created",
            "updated",
            "modified",
        ]
        .contains(&name.as_str())
        || ["_at", "_on", "_date", "_time", "_ts"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// A stored date as a time: ISO 8601 text, or Unix seconds, milliseconds or microseconds.
fn as_time(v: &rusqlite::types::Value) -> Option<SystemTime> {
    use rusqlite::types::Value;
    // Between 2001 and 2100 in seconds: other numbers are not dates.
    let seconds = |s: f64| (1.0e9..4.2e9).contains(&s).then_some(s);
    let secs = match v {
        Value::Integer(i) => {
            #[allow(clippy::cast_precision_loss)] // a date, to the second
            let f = *i as f64;
            seconds(f).or(seconds(f / 1e3)).or(seconds(f / 1e6))?
        }
        Value::Real(r) => seconds(*r)?,
        Value::Text(t) => {
            let t = t.trim();
            let t = if t.len() == 10 {
                format!("{t} 00:00:00")
            } else {
                t.to_string()
            };
            return humantime::parse_rfc3339_weak(&t).ok();
        }
        _ => return None,
    };
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// A time as RFC 3339, to the second, UTC.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_newest_date_in_a_date_column_is_the_backups_date() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, created_at TEXT, seen INTEGER, n INTEGER,
                            candidate TEXT);
             INSERT INTO t VALUES (1, '2024-03-01 10:00:00', NULL, 1900000000, 'zzz');
             INSERT INTO t VALUES (2, '2024-03-02T11:30:00Z', NULL, 5, 'a');
             CREATE TABLE u(id INTEGER PRIMARY KEY, updated TIMESTAMP);
             INSERT INTO u VALUES (1, 1709400000);
             CREATE TABLE v(id INTEGER PRIMARY KEY, due_date INTEGER);
             INSERT INTO v VALUES (1, 4000000000);",
        )
        .unwrap();
        let tables = user_tables(&conn).unwrap();
        // u's 1709400000 (2024-03-02T17:20:00Z) is the newest; `n` is no date column, and
        // v's due date lies in the future.
        assert_eq!(newest_timestamp(&conn, &tables), Some(at(1_709_400_000)));
        conn.execute_batch("DROP TABLE u").unwrap();
        let tables = user_tables(&conn).unwrap();
        assert_eq!(newest_timestamp(&conn, &tables), Some(at(1_709_379_000)));
    }

    #[test]
    fn numbers_are_dates_in_seconds_milliseconds_or_microseconds() {
        use rusqlite::types::Value;
        let s = 1_700_000_000;
        assert_eq!(as_time(&Value::Integer(s)), Some(at(1_700_000_000)));
        assert_eq!(as_time(&Value::Integer(s * 1000)), Some(at(1_700_000_000)));
        assert_eq!(
            as_time(&Value::Integer(s * 1_000_000)),
            Some(at(1_700_000_000))
        );
        assert_eq!(as_time(&Value::Integer(42)), None);
        assert_eq!(
            as_time(&Value::Text("2024-03-02".into())),
            Some(at(1_709_337_600))
        );
        assert_eq!(as_time(&Value::Text("soon".into())), None);
    }
}
