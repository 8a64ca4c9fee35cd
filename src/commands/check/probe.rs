//! What SQLite itself makes of the snapshot: integrity_check, table by table where it stops,
//! and which tree each page belongs to.

use super::IntegrityFacts;
use crate::util::quote::ident;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// A b-tree named in `sqlite_schema`.
#[derive(Debug, Clone)]
pub(super) struct Object {
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) table: String,
    pub(super) rootpage: u32,
}

/// Above this size, foreign keys are counted only where each can be counted from an index:
/// `PRAGMA foreign_key_check` looks every row up in its parent.
const FK_CHECK_MAX_BYTES: u64 = 256 << 20;

pub(super) fn run_sqlite(
    work: &Path,
    limit: u32,
    file_size: u64,
) -> (IntegrityFacts, Vec<Object>, Option<Connection>) {
    let mut facts = IntegrityFacts {
        limit,
        ..IntegrityFacts::default()
    };
    // A -wal is replayed into the copy (the proof reads the file alone), a -journal rolled
    // back: the copy is written. Otherwise SQLite reads `db` itself, read-only and immutable.
    let opened = if crate::util::paths::has_wal_or_journal(work) {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Connection::open_with_flags(work, flags)
    } else {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        Connection::open_with_flags(crate::source::pagefile::immutable_uri(work), flags)
    };
    let conn = match opened {
        Ok(c) => c,
        Err(e) => {
            facts.error = Some(e.to_string());
            return (facts, Vec::new(), None);
        }
    };
    let mut objects = vec![Object {
        kind: "table".into(),
        name: "sqlite_schema".into(),
        table: "sqlite_schema".into(),
        rootpage: 1,
    }];
    let schema = conn
        .prepare("SELECT type, name, tbl_name, rootpage FROM sqlite_schema")
        .and_then(|mut stmt| {
            let rows = stmt.query_map([], |r| {
                Ok(Object {
                    kind: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    name: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    table: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    rootpage: r
                        .get::<_, Option<i64>>(3)?
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<Object>>>()
        });
    match schema {
        Ok(list) => objects.extend(list.into_iter().filter(|o| o.rootpage != 0)),
        Err(e) => {
            facts.error = Some(format!("cannot read the schema: {e}"));
            return (facts, objects, Some(conn));
        }
    }
    if proved_sound(&conn, work) {
        facts.ran = true;
        facts.ok = true;
        facts.checked_by = super::CheckedBy::Digests;
    } else {
        full_check(&conn, &objects, limit, &mut facts);
    }
    if facts.ran {
        facts.foreign_key_violations =
            crate::engine::verify::foreign_key_count(&conn, file_size <= FK_CHECK_MAX_BYTES);
    }
    (facts, objects, Some(conn))
}

/// Whether the recovery engine's proof finds the working copy sound: every b-tree's structure
/// walked from its pages (`quick_check` where the walk has a doubt) and every index matched
/// with its table by digest, on both cores, where SQLite's `integrity_check`
/// looks every row up in every index on one. A copy it finds sound is what
/// `integrity_check` would call "ok"; anything else is checked by `integrity_check`, whose
/// messages say what is wrong. The WAL is checkpointed into the private copy first (the
/// proof reads the file alone); a copy whose hot journal is still beside it is left to
/// `integrity_check`.
fn proved_sound(conn: &Connection, work: &Path) -> bool {
    use crate::util::paths::sidecar;
    if sidecar(work, "-journal").exists() {
        return false;
    }
    if sidecar(work, "-wal").exists() {
        let done = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        let empty = std::fs::metadata(sidecar(work, "-wal")).map_or(true, |m| m.len() == 0);
        if !matches!(done, Ok((0, _, _))) || !empty {
            return false;
        }
    }
    crate::engine::verify(work, crate::engine::VerifyMode::Fast)
        .is_ok_and(|m| m.len() == 1 && m[0] == "ok")
}

/// SQLite's `integrity_check`, and table by table where it stops part way.
fn full_check(conn: &Connection, objects: &[Object], limit: u32, facts: &mut IntegrityFacts) {
    match collect_rows(conn, &format!("PRAGMA integrity_check({limit})"), limit) {
        (rows, None) => {
            facts.ran = true;
            if rows.len() == 1 && rows[0] == "ok" {
                facts.ok = true;
            } else {
                facts.limit_reached = rows.len() >= limit as usize;
                facts.messages = rows;
            }
        }
        (_, Some(e)) => {
            // integrity_check stops at the first page it cannot read while it scans rows,
            // and at a function only the application registers (an index's expression).
            // Run it table by table (which finds the same messages again, and checks what
            // it can of an index the application computes), and find out which tables and
            // indexes cannot be read.
            if !e.contains("unknown function: ") {
                facts.aborted = Some(e);
            }
            per_table_check(conn, objects, limit, facts);
            excuse_virtual_tables(conn, facts);
            facts.ran = true;
        }
    }
}

/// Runs a query whose rows are one text column, keeping at most `limit` rows (split into
/// lines, without the "*** in database main ***" banner) and the error that stopped it.
fn collect_rows(conn: &Connection, sql: &str, limit: u32) -> (Vec<String>, Option<String>) {
    let mut out = Vec::new();
    let mut stmt = match conn.prepare(sql) {
        Ok(s) => s,
        Err(e) => return (out, Some(e.to_string())),
    };
    let mut rows = match stmt.query([]) {
        Ok(r) => r,
        Err(e) => return (out, Some(e.to_string())),
    };
    loop {
        match rows.next() {
            Ok(Some(row)) => {
                if let Ok(Some(text)) = row.get::<_, Option<String>>(0) {
                    for l in text.lines() {
                        if !l.starts_with("*** in database") && out.len() < limit as usize {
                            out.push(l.to_string());
                        }
                    }
                }
            }
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
}

/// Whether every row of `sql` can be stepped through, every column decoded.
fn reads_to_the_end(conn: &Connection, sql: &str) -> bool {
    let Ok(mut stmt) = conn.prepare(sql) else {
        return false;
    };
    let columns = stmt.column_count();
    let Ok(mut rows) = stmt.query([]) else {
        return false;
    };
    loop {
        match rows.next() {
            Ok(Some(row)) => {
                for i in 0..columns {
                    if row.get_ref(i).is_err() {
                        return false;
                    }
                }
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// Scans an index b-tree alone, through a query its columns cover.
fn index_reads(conn: &Connection, table: &str, index: &str) -> Option<bool> {
    let columns: Vec<Option<String>> = conn
        .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
        .and_then(|mut s| {
            s.query_map([index], |r| r.get::<_, Option<String>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ok()?;
    // Expression indexes cannot be forced this way.
    let columns: Vec<String> = columns.into_iter().collect::<Option<Vec<_>>>()?;
    let first = columns.first()?;
    let sql = format!(
        "SELECT {} FROM {} INDEXED BY {} WHERE {} IS NULL OR {} IS NOT NULL",
        columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        ident(table),
        ident(index),
        ident(first),
        ident(first)
    );
    Some(reads_to_the_end(conn, &sql))
}

/// When every b-tree checked out table by table, the whole check's stop came from a virtual
/// table's own check: one that stops with the same plain error checked alone needs what the
/// application registers (a tokenizer, a module), which is not damage.
fn excuse_virtual_tables(conn: &Connection, facts: &mut IntegrityFacts) {
    let Some(stop) = facts.aborted.clone() else {
        return;
    };
    if !(facts.messages.is_empty()
        && facts.unreadable_tables.is_empty()
        && facts.unreadable_indexes.is_empty())
    {
        return;
    }
    let tables: Vec<(String, Option<String>)> = conn
        .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND rootpage = 0")
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .unwrap_or_default();
    // A plain table with root page 0 is damage (its tree is lost), not a virtual table.
    let virtual_tables = tables.into_iter().filter(|(_, sql)| {
        sql.as_deref()
            .is_some_and(crate::engine::schema::declares_virtual_table)
    });
    for (name, _) in virtual_tables {
        let alone = collect_rows(
            conn,
            &format!("PRAGMA integrity_check({})", ident(&name)),
            1,
        );
        if alone.1.as_deref() == Some(stop.as_str()) {
            facts.unchecked_virtual_tables.push(name);
        }
    }
    if !facts.unchecked_virtual_tables.is_empty() {
        facts.aborted = None;
    }
}

fn per_table_check(conn: &Connection, objects: &[Object], limit: u32, facts: &mut IntegrityFacts) {
    for t in objects
        .iter()
        .filter(|o| o.kind == "table" && o.name != "sqlite_schema")
    {
        let found = u32::try_from(facts.messages.len()).unwrap_or(u32::MAX);
        let room = limit.saturating_sub(found).max(1);
        let sql = format!("PRAGMA integrity_check({})", ident(&t.name));
        let (mut rows, mut stopped) = collect_rows(conn, &sql, room);
        if stopped
            .as_deref()
            .is_some_and(|e| e.contains("unknown function: "))
        {
            // An index the application computes: checked as far as it can be here.
            (rows, stopped) =
                match crate::engine::verify::table_integrity(conn, &t.name, room as usize) {
                    Ok(rows) => (rows, None),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                };
        }
        for r in rows.into_iter().filter(|r| r != "ok").take(room as usize) {
            if !facts.messages.contains(&r) {
                facts.messages.push(r);
            }
        }
        if stopped.is_none() {
            continue;
        }
        let scan = format!("SELECT * FROM {} NOT INDEXED", ident(&t.name));
        if !reads_to_the_end(conn, &scan) {
            facts.unreadable_tables.push(t.name.clone());
            continue;
        }
        let indexes: Vec<&Object> = objects
            .iter()
            .filter(|o| o.kind == "index" && o.table == t.name)
            .collect();
        let broken: Vec<String> = indexes
            .iter()
            .filter(|i| index_reads(conn, &t.name, &i.name) != Some(true))
            .map(|i| i.name.clone())
            .collect();
        if broken.is_empty() {
            // Neither the rows nor the indexes fail on their own: blame the table.
            facts.unreadable_tables.push(t.name.clone());
        } else {
            facts.unreadable_indexes.extend(broken);
        }
    }
    facts.limit_reached = facts.messages.len() >= limit as usize;
}
