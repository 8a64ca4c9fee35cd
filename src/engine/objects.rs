//! Indexes, views, triggers and virtual tables, created after the rows are in.

use crate::engine::report::{ObjectKind, ObjectReport};
use crate::engine::schema::{SchemaEntry, SchemaKind};
use crate::engine::stand_ins;
use crate::engine::writer::{self};
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::Path;

/// Indexes, views and triggers after the data; virtual tables' schema rows last. What
/// SQLite refuses (a UNIQUE index over recovered duplicates, say) is reported, the data kept.
pub(crate) fn create_objects(
    conn: &rusqlite::Connection,
    entries: &[SchemaEntry],
    copied: &HashSet<String>,
    path: &Path,
    source: &Source<'_>,
) -> Result<Vec<ObjectReport>> {
    let mut out = Vec::new();
    for (kind, schema_kind) in [
        (ObjectKind::Index, SchemaKind::Index),
        (ObjectKind::View, SchemaKind::View),
        (ObjectKind::Trigger, SchemaKind::Trigger),
    ] {
        for e in entries.iter().filter(|e| e.kind == schema_kind) {
            let Some(sql) = e.sql.as_deref() else {
                continue; // automatic indexes come with their table
            };
            let result = if copied.contains(&e.name) {
                Ok(()) // created before its table was copied, and filled by the copy
            } else {
                conn.execute_batch(sql)
            };
            if let Err(err) = &result {
                if is_io_failure(err) {
                    // A full disk is not a refused index: the output is not usable.
                    return Err(Error::sqlite(path, format!("creating {}: {err}", e.name)));
                }
                if let Some(kept) = keep_from_source(conn, source, e, err) {
                    out.push(kept);
                    continue;
                }
            }
            out.push(ObjectReport {
                kind,
                name: e.name.clone(),
                created: result.is_ok(),
                error: result.err().map(|err| err.to_string()),
            });
        }
    }
    Ok(out)
}

/// The source as the objects phase reads it: its tables and its index trees.
pub(crate) struct Source<'a> {
    pub(crate) index: writer::SourceIndex<'a>,
    pub(crate) tables: &'a [crate::engine::schema::Table],
    /// Tables every row of which came back (no part of their tree lost).
    pub(crate) intact: HashSet<String>,
}

/// An index SQLite refused for a function only the application registers, copied from the
/// source instead ([`writer::keep_source_index`]); `None` if it was refused for anything
/// else. The report says the application must register the function.
fn keep_from_source(
    conn: &rusqlite::Connection,
    source: &Source<'_>,
    e: &SchemaEntry,
    err: &rusqlite::Error,
) -> Option<ObjectReport> {
    if e.kind != SchemaKind::Index {
        return None;
    }
    let function = stand_ins::missing_function(err)?;
    let table = source
        .tables
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(&e.tbl_name))?;
    let intact = source.intact.contains(&table.name);
    let (created, note) = match writer::keep_source_index(conn, &source.index, e, table, intact) {
        Ok(n) => (
            true,
            format!(
                "its {n} entries kept as the source has them: it calls {function}, which only \
                 the application registers (register it again before writing to the table)"
            ),
        ),
        Err(why) => (
            false,
            format!("{err}; not copied from the source either: {why}"),
        ),
    };
    Some(ObjectReport {
        kind: ObjectKind::Index,
        name: e.name.clone(),
        created,
        error: Some(note),
    })
}

/// Virtual tables (FTS, R-tree, ...) get their schema row back after everything else, each
/// checked on a fresh connection as a user would open the file. One whose index is damaged
/// is rebuilt from its content where the module can ('rebuild'); one that still fails is
/// left out, its rows kept in its shadow tables as plain tables, and the report says so.
///
/// One that fails the same way in the source (read through `source_uri`) is not damaged: this
/// SQLite lacks what the application registers for it (a tokenizer, say). Its schema row is
/// kept as the source has it, but written only after the proof of the result (returned
/// second): SQLite's checks stop at such a table.
pub(crate) fn install_virtual_tables<'e>(
    path: &Path,
    entries: &'e [SchemaEntry],
    source_uri: Option<&str>,
) -> Result<(Vec<ObjectReport>, Vec<&'e SchemaEntry>)> {
    let open = || rusqlite::Connection::open(path).map_err(|e| Error::sqlite(path, e));
    let mut out = Vec::new();
    let mut after_proof = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.rootpage == 0 && !e.from_reference && e.is_virtual_table())
    {
        let inserted = set_schema_row(&open()?, e).map_err(|err| err.to_string());
        if let (Ok(()), Some(why)) = (&inserted, stand_ins::module_missing(&open()?, &e.name)) {
            out.push(stand_ins::kept_verbatim(&e.name, &why));
            continue;
        }
        let mut problem = match &inserted {
            Err(err) => Some(err.clone()),
            Ok(()) => virtual_table_problem(&open()?, &e.name),
        };
        if problem.is_some() && inserted.is_ok() {
            let rebuild = format!(
                "INSERT INTO {0}({0}) VALUES ('rebuild')",
                writer::ident(&e.name)
            );
            if open()?.execute_batch(&rebuild).is_ok() {
                problem = virtual_table_problem(&open()?, &e.name);
            }
        }
        let alike = match (&inserted, &problem) {
            (Ok(()), Some(why)) => fails_alike_in_source(source_uri, &e.name, why),
            _ => false,
        };
        if let Some(why) = &problem {
            if inserted.is_ok() {
                let conn = open()?;
                conn.execute_batch("PRAGMA writable_schema = ON")
                    .and_then(|_| {
                        conn.execute(
                            "DELETE FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                            [&e.name],
                        )
                    })
                    .map_err(|err| {
                        Error::sqlite(path, format!("removing {}: {err} ({why})", e.name))
                    })?;
            }
            if alike {
                out.push(stand_ins::kept_verbatim(&e.name, why));
                after_proof.push(e);
                continue;
            }
        }
        out.push(ObjectReport {
            kind: ObjectKind::VirtualTable,
            name: e.name.clone(),
            created: problem.is_none(),
            error: problem.map(|why| {
                format!(
                    "not recreated ({why}); its rows are kept in the plain tables {}_*",
                    e.name
                )
            }),
        });
    }
    Ok((out, after_proof))
}

/// Whether the virtual table `name` cannot even be checked, in the output and in the source
/// alike, with the same plain error (`why`): not damage, which its check reports or SQLite
/// calls corruption, but something the application provides and this SQLite lacks.
fn fails_alike_in_source(source_uri: Option<&str>, name: &str, why: &str) -> bool {
    use rusqlite::OpenFlags;
    let Some(uri) = source_uri else {
        return false;
    };
    let plain_error =
        |conn: &rusqlite::Connection| match crate::engine::verify::table_integrity(conn, name, 1) {
            Err(e) => {
                e.sqlite_error_code() == Some(rusqlite::ErrorCode::Unknown) && e.to_string() == why
            }
            Ok(_) => false,
        };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    rusqlite::Connection::open_with_flags(uri, flags).is_ok_and(|conn| plain_error(&conn))
}

/// Errors that mean the output file itself failed (disk full, I/O), not that SQLite refused
/// one statement.
pub(crate) fn is_io_failure(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        err.sqlite_error_code(),
        Some(DiskFull | SystemIoFailure | CannotOpen | ReadOnly | OutOfMemory | DatabaseCorrupt)
    )
}

/// Writes one virtual table's row into sqlite_schema (the module is not loaded to do it).
pub(crate) fn set_schema_row(conn: &rusqlite::Connection, e: &SchemaEntry) -> rusqlite::Result<()> {
    conn.execute_batch("PRAGMA writable_schema = ON")?;
    conn.execute(
        "INSERT INTO sqlite_schema(type, name, tbl_name, rootpage, sql) VALUES ('table', ?1, ?2, 0, ?3)",
        rusqlite::params![e.name, e.tbl_name, e.sql],
    )?;
    conn.execute_batch("PRAGMA writable_schema = OFF")
}

/// Why a virtual table does not work in the output, if it does not: its schema does not
/// load, it cannot be read, or integrity_check finds its index damaged.
pub(crate) fn virtual_table_problem(conn: &rusqlite::Connection, name: &str) -> Option<String> {
    let probe = format!("SELECT count(*) FROM {}", writer::ident(name));
    if let Err(e) = conn.query_row(&probe, [], |r| r.get::<_, i64>(0)) {
        // A plain error is a scan this module does not allow (fts3tokenize wants its input,
        // a contentless FTS4 table keeps no rows to scan): its own check below decides.
        if e.sqlite_error_code() != Some(rusqlite::ErrorCode::Unknown) {
            return Some(e.to_string());
        }
    }
    // Checking the virtual table alone runs its module's own check of its shadow tables.
    match crate::engine::verify::table_integrity(conn, name, 20) {
        Ok(messages) => messages.into_iter().next(),
        Err(e) => Some(e.to_string()),
    }
}
