//! `PRAGMA integrity_check` of a database this tool wrote, split over the cores
//! (`--verify full`).
//!
//! SQLite checks a database on one core, and on a large table the check takes as long as
//! writing it did. The same checks split cleanly: `quick_check` covers the whole file (every
//! b-tree's structure, the freelist, every page used exactly once, NOT NULL and CHECK
//! constraints), and `integrity_check(TABLE)` adds, table by table, what `quick_check` leaves
//! out (every row found in every index, index entry counts, UNIQUE, a virtual table's own
//! check). Together they are `integrity_check`; run on separate read-only connections they
//! use every core.

use crate::error::{Error, Result};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// One piece of the check: `quick_check` of the file or `integrity_check` of one table, and
/// how much work it is expected to be.
struct Job {
    table: Option<String>,
    weight: u64,
}

/// Runs `integrity_check` on the database at `path` (which nothing may be writing) and
/// returns its messages, at most `limit`, or `["ok"]`. `rows` gives the row count of the
/// tables it knows, so the largest tables start first; tables it does not name start last.
pub(crate) fn integrity_check(
    path: &Path,
    rows: &BTreeMap<String, u64>,
    limit: usize,
) -> Result<Vec<String>> {
    let conn = super::open(path)?;
    let jobs = jobs(&conn, rows).map_err(|e| Error::sqlite(path, e))?;
    drop(conn);
    let results: Mutex<Vec<Option<Vec<String>>>> = Mutex::new(vec![None; jobs.len()]);
    super::on_every_core(path, jobs.len(), |conn, n| {
        let messages = match &jobs[n].table {
            None => quick_check(conn, limit),
            Some(table) => super::table_integrity(conn, table, limit),
        }
        .map_err(|e| Error::sqlite(path, e))?;
        if let Some(slot) = super::lock(&results).get_mut(n) {
            *slot = Some(messages);
        }
        Ok(())
    })?;
    let results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut messages: Vec<String> = results
        .into_iter()
        .flatten()
        .flatten()
        .filter(|m| m != "ok")
        .collect();
    // A b-tree's damage is reported by quick_check and by its table's check alike.
    let mut seen = std::collections::HashSet::new();
    messages.retain(|m| seen.insert(m.clone()));
    messages.truncate(limit);
    if messages.is_empty() {
        messages.push("ok".to_string());
    }
    Ok(messages)
}

/// `quick_check` for the whole file, then `integrity_check` of each table, largest first.
fn jobs(conn: &Connection, rows: &BTreeMap<String, u64>) -> rusqlite::Result<Vec<Job>> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total: u64 = rows.values().sum();
    let mut jobs = vec![Job {
        table: None,
        // Structure alone: about a fifth of the full check's work.
        weight: total / 5,
    }];
    jobs.extend(names.into_iter().map(|name| Job {
        weight: rows.get(&name).copied().unwrap_or(0),
        table: Some(name),
    }));
    // Longest first, so the last job to finish is a short one.
    jobs.sort_by_key(|j| std::cmp::Reverse(j.weight));
    Ok(jobs)
}

fn quick_check(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.take(limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::verify::foreign_key_violations;

    fn db_with(dir: &Path, sql: &str) -> std::path::PathBuf {
        let path = dir.join("t.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 4096;
             CREATE TEMP TABLE n(value INTEGER PRIMARY KEY);
             WITH RECURSIVE c(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM c WHERE v < 500)
             INSERT INTO n SELECT v FROM c;",
        )
        .unwrap();
        conn.execute_batch(sql).unwrap();
        path
    }

    #[test]
    fn a_healthy_database_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_with(
            dir.path(),
            "CREATE TABLE a(x, y UNIQUE); CREATE INDEX ax ON a(x);
             CREATE TABLE \"odd \"\"name\"(z NOT NULL);
             INSERT INTO a SELECT value, value * 2 FROM n WHERE value <= 500;
             INSERT INTO \"odd \"\"name\" VALUES (1);",
        );
        let rows = BTreeMap::from([("a".to_string(), 500)]);
        assert_eq!(integrity_check(&path, &rows, 20).unwrap(), vec!["ok"]);
    }

    /// Virtual tables are checked by their own module where it is known; one whose module this
    /// build does not have is passed over, as `integrity_check` passes over it.
    #[test]
    fn virtual_tables_are_checked_or_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_with(
            dir.path(),
            "CREATE VIRTUAL TABLE docs USING fts5(body);
             INSERT INTO docs SELECT 'word ' || value FROM n WHERE value <= 50;
             PRAGMA writable_schema = ON;
             INSERT INTO sqlite_schema(type, name, tbl_name, rootpage, sql)
               VALUES ('table', 'elsewhere', 'elsewhere', 0,
                       'CREATE VIRTUAL TABLE elsewhere USING no_such_module(a)');
             PRAGMA writable_schema = OFF;",
        );
        let whole = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .unwrap();
        assert_eq!(whole, "ok");
        assert_eq!(
            integrity_check(&path, &BTreeMap::new(), 20).unwrap(),
            vec!["ok"]
        );
    }

    #[test]
    fn rows_without_their_parent_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_with(
            dir.path(),
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE parent(id INTEGER PRIMARY KEY);
             CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id REFERENCES parent(id));
             INSERT INTO parent VALUES (1), (2);
             INSERT INTO child(parent_id) VALUES (1), (2), (3), (4), (4), (NULL);",
        );
        assert_eq!(foreign_key_violations(&path), Some(3));
    }

    /// An index entry that disagrees with its row is what only the per-table part finds.
    #[test]
    fn an_index_that_disagrees_with_its_row_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_with(
            dir.path(),
            "CREATE TABLE a(x TEXT); CREATE INDEX ax ON a(x);
             CREATE TABLE b(y); INSERT INTO b VALUES (1);
             INSERT INTO a SELECT 'value-' || value FROM n WHERE value <= 50;",
        );
        // Change one row's bytes behind the index's back: same length, so the page stays
        // well formed and only the cross-check between row and index can tell.
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes
            .windows(8)
            .position(|w| w == b"value-17")
            .expect("the row's text is in the file");
        bytes[at] = b'V';
        std::fs::write(&path, &bytes).unwrap();
        let messages = integrity_check(&path, &BTreeMap::new(), 20).unwrap();
        assert_ne!(messages, vec!["ok"]);
        assert!(
            messages.iter().any(|m| m.contains("ax")),
            "the index is named: {messages:?}"
        );
    }

    /// Page accounting is what only the whole-file part finds.
    #[test]
    fn a_wrong_freelist_count_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_with(
            dir.path(),
            "CREATE TABLE a(x); INSERT INTO a SELECT zeroblob(3000) FROM n WHERE value <= 20;
             CREATE TABLE b(y); INSERT INTO b VALUES (1); DELETE FROM a;",
        );
        let mut bytes = std::fs::read(&path).unwrap();
        let free = u32::from_be_bytes(bytes[36..40].try_into().unwrap());
        assert!(free > 1, "rows deleted leave free pages");
        bytes[36..40].copy_from_slice(&(free - 1).to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let rows = BTreeMap::from([("a".to_string(), 0), ("b".to_string(), 1)]);
        let messages = integrity_check(&path, &rows, 20).unwrap();
        assert!(
            messages.iter().any(|m| m.contains("reelist")),
            "{messages:?}"
        );
    }

    #[test]
    fn messages_stop_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_with(
            dir.path(),
            "CREATE TABLE a(x TEXT); CREATE INDEX ax ON a(x);
             INSERT INTO a SELECT 'value-' || (value + 100) FROM n WHERE value <= 50;",
        );
        let mut bytes = std::fs::read(&path).unwrap();
        // Page 2 is the table (page 3 its index): alter every row there, not the index.
        let table = &mut bytes[4096..8192];
        let mut altered = 0;
        let mut i = 0;
        while let Some(at) = table[i..].windows(6).position(|w| w == b"value-") {
            table[i + at] = b'V';
            i += at + 6;
            altered += 1;
        }
        assert!(altered >= 50);
        std::fs::write(&path, &bytes).unwrap();
        let messages = integrity_check(&path, &BTreeMap::new(), 3).unwrap();
        assert_eq!(messages.len(), 3, "{messages:?}");
    }
}
