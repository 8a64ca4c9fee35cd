//! The output file: created with the source's settings, opened for the load, tables created
//! and dropped, the planner's statistics put back, and its header compared with the source's.

use super::ident;
use crate::engine::schema::Table;
use crate::error::{Error, Result};
use crate::format::TextEncoding;
use rusqlite::Connection;
use std::path::Path;

/// Settings carried over from the source file.
#[derive(Debug, Clone)]
pub(crate) struct OutputSettings {
    pub page_size: u32,
    pub encoding: TextEncoding,
    /// 0 none, 1 full, 2 incremental.
    pub auto_vacuum: u8,
    pub user_version: u32,
    pub application_id: u32,
    /// Bytes at the end of every page kept for an extension (a checksum, say).
    pub reserved_bytes: u8,
}

/// Creates the database at `path` (which must not exist) with the source's settings, opened
/// as [`open_for_load`] opens it.
pub(crate) fn create_database(path: &Path, settings: &OutputSettings) -> Result<Connection> {
    let conn = open_for_load(path)?;
    let sql = |e| Error::sqlite(path, e);
    conn.execute_batch(&format!("PRAGMA page_size = {};", settings.page_size))
        .map_err(sql)?;
    // Before anything reads page 1 (PRAGMA auto_vacuum does): the reserve is fixed with it.
    if settings.reserved_bytes > 0 {
        set_reserved_bytes(&conn, settings.reserved_bytes).map_err(sql)?;
    }
    conn.execute_batch(&format!(
        "PRAGMA encoding = '{}'; PRAGMA auto_vacuum = {};
         PRAGMA user_version = {}; PRAGMA application_id = {};",
        settings.encoding.pragma_name(),
        settings.auto_vacuum,
        // The pragmas take the header's 32 bits as a signed number.
        i32::from_be_bytes(settings.user_version.to_be_bytes()),
        i32::from_be_bytes(settings.application_id.to_be_bytes()),
    ))
    .map_err(sql)?;
    Ok(conn)
}

/// Sets the bytes reserved at the end of every page of a database not yet written.
fn set_reserved_bytes(conn: &Connection, bytes: u8) -> rusqlite::Result<()> {
    let mut value = std::ffi::c_int::from(bytes);
    // SAFETY: the handle is this open connection's and is used only for this call; the schema
    // name is a NUL-terminated literal; SQLITE_FCNTL_RESERVE_BYTES reads and writes one int
    // through the pointer, which outlives the call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_RESERVE_BYTES,
            (&raw mut value).cast(),
        )
    };
    match rc {
        rusqlite::ffi::SQLITE_OK => Ok(()),
        code => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            Some(format!("cannot reserve {bytes} bytes per page")),
        )),
    }
}

/// The header settings of the finished output at `out` that differ from the source's
/// (`source`, page 1 as SQLite reads it), each as "setting: source X, recovered Y": what
/// SQLite could not carry over (a schema format number it no longer writes, say).
pub(crate) fn settings_not_kept(source: &crate::format::header::Header, out: &Path) -> Vec<String> {
    use std::io::Read;
    let mut head = [0u8; crate::format::header::HEADER_SIZE];
    let read = std::fs::File::open(out).and_then(|mut f| f.read_exact(&mut head));
    let Ok(()) = read else {
        return Vec::new();
    };
    let Ok(o) = crate::format::header::Header::parse(&head) else {
        return Vec::new();
    };
    let av = |h: &crate::format::header::Header| match (h.largest_root_page, h.incremental_vacuum) {
        (0, _) => 0,
        (_, 0) => 1,
        _ => 2,
    };
    [
        ("page size", source.page_size, o.page_size),
        (
            "text encoding",
            source.text_encoding_code,
            o.text_encoding_code,
        ),
        (
            "reserved bytes per page",
            source.reserved_bytes.into(),
            o.reserved_bytes.into(),
        ),
        (
            "schema format number",
            source.schema_format,
            o.schema_format,
        ),
        ("user_version", source.user_version, o.user_version),
        ("application_id", source.application_id, o.application_id),
        ("auto_vacuum", av(source), av(&o)),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .map(|(name, a, b)| format!("{name}: source {a}, recovered {b}"))
    .collect()
}

/// Opens the output to load rows into: no journal on disk and no sync (the file is synced
/// once, complete), and an exclusive lock.
///
/// Foreign keys are not enforced while it is written (this SQLite enforces them by default):
/// a row whose parent is missing, because the source held it so or because the parent was
/// lost, belongs in its own table all the same, and the check afterwards counts it. Enforced,
/// they would also turn SQLite's transfer off for every table with a foreign key.
pub(crate) fn open_for_load(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| Error::sqlite(path, e))?;
    conn.execute_batch(
        "PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; PRAGMA cache_size = -32768;
         PRAGMA locking_mode = EXCLUSIVE; PRAGMA foreign_keys = OFF;",
    )
    .map_err(|e| Error::sqlite(path, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Drops `tables` (and with them their indexes and triggers).
pub(crate) fn drop_tables<'n>(
    conn: &Connection,
    path: &Path,
    tables: impl Iterator<Item = &'n str>,
) -> Result<()> {
    for_each_name(conn, path, tables, "DROP TABLE ", "dropping table")
}

/// Builds every index of `tables` (or the indexes named) again from the rows.
pub(crate) fn reindex<'n>(
    conn: &Connection,
    path: &Path,
    tables: impl Iterator<Item = &'n str>,
) -> Result<()> {
    for_each_name(
        conn,
        path,
        tables,
        "REINDEX main.",
        "building the indexes of",
    )
}

/// Runs `statement` followed by each quoted name.
fn for_each_name<'n>(
    conn: &Connection,
    path: &Path,
    names: impl Iterator<Item = &'n str>,
    statement: &str,
    doing: &str,
) -> Result<()> {
    for name in names {
        conn.execute_batch(&format!("{statement}{}", ident(name)))
            .map_err(|e| Error::sqlite(path, format!("{doing} {name}: {e}")))?;
    }
    Ok(())
}

/// Drops every trigger of a database copied whole, so that rows added to its tables later
/// (from orphan pages) fire none; they are created again with the other objects.
pub(crate) fn drop_triggers(conn: &Connection, path: &Path) -> Result<()> {
    let sql = |e| Error::sqlite(path, e);
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'")
        .map_err(sql)?
        .query_map([], |r| r.get(0))
        .map_err(sql)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql)?;
    for_each_name(
        conn,
        path,
        names.iter().map(String::as_str),
        "DROP TRIGGER ",
        "dropping trigger",
    )
}

/// Puts the source's query-planner statistics tables (`tables`, e.g. `sqlite_stat1`) and
/// their rows into the finished database. `ANALYZE sqlite_schema` creates the tables this
/// SQLite keeps without gathering anything; those the source did not have are dropped again.
/// Statistics only steer the planner, so if they cannot be written they are left out.
pub(crate) fn restore_planner_stats(
    conn: &Connection,
    tables: &[&str],
    rows: &[crate::engine::decode::PlannerRow],
) {
    if tables.is_empty() {
        return;
    }
    let restore = || -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN; ANALYZE sqlite_schema;")?;
        let made: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE name LIKE 'sqlite\\_stat%' ESCAPE '\\'")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for extra in made.iter().filter(|m| !tables.contains(&m.as_str())) {
            conn.execute_batch(&format!("DROP TABLE {}", ident(extra)))?;
        }
        for row in rows {
            let table = ident(&row.table);
            let columns = crate::engine::schema::internal_columns(&row.table)
                .filter(|c| c.len() == row.values.len());
            match columns {
                // Under the source's rowid: a row's rowid is part of what the source holds.
                Some(cols) => {
                    let names: Vec<String> = cols.iter().map(|n| ident(n)).collect();
                    let marks = vec!["?"; cols.len() + 1].join(", ");
                    let rowid = rusqlite::types::Value::from(row.rowid);
                    let sql = format!(
                        "INSERT INTO {table}(rowid, {}) VALUES ({marks})",
                        names.join(", ")
                    );
                    conn.prepare_cached(&sql)?
                        .execute(rusqlite::params_from_iter(
                            std::iter::once(&rowid).chain(&row.values),
                        ))?;
                }
                None => {
                    let marks = vec!["?"; row.values.len()].join(", ");
                    conn.prepare_cached(&format!("INSERT INTO {table} VALUES ({marks})"))?
                        .execute(rusqlite::params_from_iter(&row.values))?;
                }
            }
        }
        conn.execute_batch("COMMIT")
    };
    if restore().is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// Gives each table loaded through its storage twin (see `schema::twin`) the source's own
/// CREATE TABLE back: the rows are stored as that definition stores them.
pub(crate) fn install_definitions(conn: &Connection, path: &Path, tables: &[Table]) -> Result<()> {
    let twinned: Vec<&Table> = tables.iter().filter(|t| t.twin.is_some()).collect();
    if twinned.is_empty() {
        return Ok(());
    }
    edit_schema(conn, || {
        for t in &twinned {
            conn.execute(
                "UPDATE sqlite_schema SET sql = ?1 WHERE type = 'table' AND name = ?2",
                rusqlite::params![t.sql, t.name],
            )?;
        }
        Ok(())
    })
    .map_err(|e| Error::sqlite(path, format!("restoring table definitions: {e}")))
}

/// Runs `edit` on `sqlite_schema` made writable, then gives the schema a new cookie, so that
/// every connection reads the edited definitions again.
pub(super) fn edit_schema(
    conn: &Connection,
    edit: impl FnOnce() -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA writable_schema = ON")?;
    edit()?;
    let version: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    conn.pragma_update(None, "schema_version", version.wrapping_add(1))?;
    conn.execute_batch("PRAGMA writable_schema = OFF")
}

/// Opens the load transaction and creates the given tables.
pub(crate) fn begin_load<'t>(
    conn: &Connection,
    path: &Path,
    tables: impl Iterator<Item = &'t Table>,
) -> Result<()> {
    conn.execute_batch("BEGIN")
        .map_err(|e| Error::sqlite(path, e))?;
    for t in tables.filter(|t| !t.internal) {
        create_table(
            conn,
            t.loaded_as().sql.as_deref().unwrap_or_default(),
            &t.name,
        )
        .map_err(|e| Error::sqlite(path, format!("creating table {}: {e}", t.name)))?;
    }
    Ok(())
}

/// Runs a table's CREATE statement. A legacy table named `sqlite_*` (older SQLite let
/// applications create them) is created with the schema writable, the only way SQLite
/// allows the name now.
pub(crate) fn create_table(conn: &Connection, sql: &str, name: &str) -> rusqlite::Result<()> {
    let reserved = name
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("sqlite_"));
    if !reserved {
        return conn.execute_batch(sql);
    }
    conn.execute_batch("PRAGMA writable_schema = ON")?;
    let created = conn.execute_batch(sql);
    conn.execute_batch("PRAGMA writable_schema = OFF")?;
    created
}
