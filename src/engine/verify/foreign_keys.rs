//! Rows whose foreign key names no parent row, counted as `PRAGMA foreign_key_check` counts
//! them (one per row and key), without its lookup of every row in the parent.
//!
//! The common key, a single column naming its parent's rowid, is counted from the child's
//! index on that column: one scan gives each distinct value and how many rows hold it, and
//! each distinct value is looked up once. A Django table of millions of rows that names a
//! few thousand parents costs an index scan and a few thousand lookups instead of a lookup
//! per row. The scan reads the index's pages where it can (the structure proof's walk), at
//! about two thirds of the CPU of the same scan through SQL, and SQL where it cannot. Every other table (a key of several columns, a parent keyed otherwise, no index
//! to scan, a value that is not an integer) is counted by the pragma itself.

use super::reader::Pages;
use super::structure::walk::{self, Records, Walk};
use super::structure::{Doubt, TreeKind};
use crate::format::record::{self, Value};
use crate::util::quote::ident;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

mod scanned;
use scanned::in_runs;
pub(crate) use scanned::{
    add_rowid, count_beside, count_from_scans, read_by_proof, split, Scanned, Wanted,
};

/// One foreign key of one table, from `pragma_foreign_key_list`.
struct ForeignKey {
    id: i64,
    parent: String,
    from: String,
    to: Option<String>,
}

/// Every violation in the database on `conn`, as the pragma counts them; `None` when the
/// pragma itself fails (a key whose parent SQLite cannot resolve), or when a table needs it
/// and `pragma_allowed` is false (it looks every row up: too long for some callers).
pub(crate) fn count(conn: &Connection, pragma_allowed: bool) -> Option<u64> {
    count_tables(conn, &child_tables(conn).ok()?, pragma_allowed)
}

/// [`count`] over the child tables `tables`.
pub(crate) fn count_tables(
    conn: &Connection,
    tables: &[String],
    pragma_allowed: bool,
) -> Option<u64> {
    let mut total = 0u64;
    for table in tables {
        let n = match by_parent_rowid(conn, table) {
            Some(n) => n,
            None if pragma_allowed => by_pragma(conn, table)?,
            None => return None,
        };
        total = total.saturating_add(n);
    }
    Some(total)
}

/// A foreign key counted from its child's index: each value of the key and how many rows
/// hold it, from the index's entries, then each value looked for among the parent's rowids.
#[derive(Debug, Clone)]
pub(crate) struct KeyScan {
    /// The index SQLite scans for the key's values, in order.
    pub(crate) index: String,
    pub(crate) parent: String,
    /// The parent's column that is its rowid.
    alias: String,
    /// The same groups through SQL, where the index's pages do not serve.
    grouped: String,
}

/// The tables that declare a foreign key.
fn child_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT t.name FROM pragma_table_list AS t, pragma_foreign_key_list(t.name) \
         WHERE t.schema = 'main' AND t.type = 'table' ORDER BY t.name",
    )?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    names.collect()
}

fn by_pragma(conn: &Connection, table: &str) -> Option<u64> {
    conn.query_row(
        "SELECT count(*) FROM pragma_foreign_key_check(?1)",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .ok()
    .and_then(|n| u64::try_from(n).ok())
}

/// The table's violations when each of its keys is one column naming its parent's rowid and
/// has an index to scan; `None` otherwise (or on any error), for the pragma to count.
fn by_parent_rowid(conn: &Connection, table: &str) -> Option<u64> {
    let scans = key_scans(conn, table)?;
    scans.iter().try_fold(0u64, |total, scan| {
        Some(total.saturating_add(missing_parents(conn, scan, &Scanned::default())?))
    })
}

/// How each key of `table` is counted from an index; `None` when one cannot be.
fn key_scans(conn: &Connection, table: &str) -> Option<Vec<KeyScan>> {
    let keys = foreign_keys(conn, table).ok()?;
    let mut scans = Vec::with_capacity(keys.len());
    for key in &keys {
        if keys.iter().filter(|k| k.id == key.id).count() != 1 {
            return None;
        }
        let alias = rowid_alias(conn, &key.parent, key.to.as_deref())?;
        let column = ident(&key.from);
        let grouped = format!(
            "SELECT {column}, count(*), max(typeof({column}) <> 'integer') FROM {} \
             WHERE {column} IS NOT NULL GROUP BY {column}",
            ident(table)
        );
        scans.push(KeyScan {
            index: index_scanned(conn, &grouped)?,
            parent: key.parent.clone(),
            alias,
            grouped,
        });
    }
    Some(scans)
}

fn foreign_keys(conn: &Connection, table: &str) -> rusqlite::Result<Vec<ForeignKey>> {
    let mut stmt =
        conn.prepare("SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1)")?;
    let keys = stmt.query_map([table], |r| {
        Ok(ForeignKey {
            id: r.get(0)?,
            parent: r.get(1)?,
            from: r.get(2)?,
            to: r.get(3)?,
        })
    })?;
    keys.collect()
}

/// The column of `parent` that is its rowid, when the parent key `to` (its primary key when
/// `None`) is that column: an ordinary table whose primary key is one INTEGER column and has
/// no index of its own (an `INTEGER PRIMARY KEY DESC` column is not the rowid, and gets one).
/// Parent rows are looked up by this column, not by `rowid`, which a column may be named.
fn rowid_alias(conn: &Connection, parent: &str, to: Option<&str>) -> Option<String> {
    let ordinary: Option<bool> = conn
        .query_row(
            "SELECT type = 'table' AND NOT wr FROM pragma_table_list \
             WHERE schema = 'main' AND name = ?1 COLLATE NOCASE",
            [parent],
            |r| r.get(0),
        )
        .optional()
        .ok()?;
    if ordinary != Some(true) {
        return None;
    }
    let pk: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare("SELECT name, upper(type) FROM pragma_table_info(?1) WHERE pk > 0")
            .ok()?;
        let rows = stmt
            .query_map([parent], |r| Ok((r.get(0)?, r.get(1)?)))
            .ok()?;
        rows.collect::<rusqlite::Result<_>>().ok()?
    };
    let key_has_index = super::plan_pages::key_has_index(conn, parent).ok()?;
    match pk.as_slice() {
        [(name, kind)]
            if kind == "INTEGER"
                && !key_has_index
                && to.is_none_or(|to| to.eq_ignore_ascii_case(name)) =>
        {
            Some(name.clone())
        }
        _ => None,
    }
}

/// The rows whose key names no row of its parent, from one scan of the key's index (or the
/// groups the proof's scan found); `None` when a value is not an integer (the pragma
/// converts those as it looks them up).
fn missing_parents(conn: &Connection, scan: &KeyScan, scanned: &Scanned) -> Option<u64> {
    let read;
    let groups = match scanned.groups.get(&scan.index) {
        Some(groups) => groups,
        None => {
            read = match groups_from_pages(conn, &scan.index) {
                Some(groups) => groups,
                None => groups_through_sql(conn, &scan.grouped)?,
            };
            &read
        }
    };
    if let Some(runs) = scanned.parents.get(&scan.parent.to_ascii_lowercase()) {
        let missing = groups.iter().filter(|&&(v, _)| !in_runs(runs, v));
        return Some(missing.fold(0u64, |sum, &(_, n)| sum.saturating_add(n)));
    }
    let mut lookup = conn
        .prepare(&format!(
            "SELECT 1 FROM {} WHERE {} = ?1",
            ident(&scan.parent),
            ident(&scan.alias)
        ))
        .ok()?;
    let mut missing = 0u64;
    for &(value, n) in groups {
        if !lookup.exists([value]).ok()? {
            missing = missing.saturating_add(n);
        }
    }
    Some(missing)
}

/// Each value of the key and how many rows hold it, through SQL (`grouped`); `None` when a
/// value is not an integer.
fn groups_through_sql(conn: &Connection, grouped: &str) -> Option<Vec<(i64, u64)>> {
    let mut stmt = conn.prepare(grouped).ok()?;
    let mut rows = stmt.raw_query();
    let mut groups = Vec::new();
    while let Some(row) = rows.next().ok()? {
        if row.get::<_, bool>(2).ok()? {
            return None;
        }
        let n = u64::try_from(row.get::<_, i64>(1).ok()?).ok()?;
        groups.push((row.get::<_, i64>(0).ok()?, n));
    }
    Some(groups)
}

/// The same groups read from the pages of `index` (whose first column is the key, so equal
/// values are neighbours): the first field of each entry, NULLs left out. `None` when the
/// file or a value is not what this reads (SQL counts instead).
fn groups_from_pages(conn: &Connection, index: &str) -> Option<Vec<(i64, u64)>> {
    let path = conn.path().filter(|p| !p.is_empty())?;
    let root = super::plan_pages::root_page(conn, "index", index).ok()??;
    let pages = Pages::open(Path::new(path)).ok()?;
    let walk = Walk {
        pages: &pages,
        ledger: None,
        root,
        kind: TreeKind::Index,
        // Only the first field is wanted, and its decoding checks it.
        records: Records::ByVisitor,
    };
    let mut groups: Vec<(i64, u64)> = Vec::new();
    walk::entries(&walk, |_, payload| {
        match record::first_value(payload.local).ok_or(Doubt)? {
            Value::Null => {}
            Value::Integer(v) => match groups.last_mut() {
                Some((last, n)) if *last == v => *n += 1,
                _ => groups.push((v, 1)),
            },
            _ => return Err(Doubt),
        }
        Ok(())
    })
    .ok()?;
    Some(groups)
}

/// The index SQLite reads `sql` from, in order, without sorting rows itself; `None` when it
/// reads no index, or sorts.
fn index_scanned(conn: &Connection, sql: &str) -> Option<String> {
    let steps = super::plan::query_plan(conn, sql).ok()?;
    if steps.iter().any(|s| s.contains("TEMP B-TREE")) {
        return None;
    }
    steps.iter().find_map(|s| {
        s.split_once(" USING COVERING INDEX ")
            .map(|(_, index)| index.split(" (").next().unwrap_or(index).to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pragma's own count, for comparison.
    fn pragma_count(conn: &Connection) -> Option<u64> {
        conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get::<_, i64>(0)
        })
        .ok()
        .and_then(|n| u64::try_from(n).ok())
    }

    fn db(sql: &str) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = OFF;").unwrap();
        conn.execute_batch(sql).unwrap();
        conn
    }

    const ROWS: &str =
        "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 300)";

    /// Each schema counted both ways; the indexed rowid keys take the fast way.
    /// An index read from its pages gives SQL's groups: each value once, in order, with its
    /// count, NULLs left out.
    #[test]
    fn groups_read_from_pages_are_sqls() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("g.sqlite3")).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size = 512;
             CREATE TABLE c(id INTEGER PRIMARY KEY, p_id INTEGER, pad);
             CREATE INDEX c_p ON c(p_id, pad);
             {ROWS} INSERT INTO c SELECT v, CASE WHEN v % 11 = 0 THEN NULL
                 ELSE (v * 7919) % 97 - 40 END, printf('%.*c', v % 90, 'x') FROM n;
             {ROWS} INSERT INTO c(p_id) SELECT 9223372036854775807 FROM n WHERE v < 3;"
        ))
        .unwrap();
        let grouped = "SELECT p_id, count(*), max(typeof(p_id) <> 'integer') FROM c \
                       WHERE p_id IS NOT NULL GROUP BY p_id";
        assert_eq!(index_scanned(&conn, grouped), Some("c_p".to_string()));
        let from_pages = groups_from_pages(&conn, "c_p").unwrap();
        assert_eq!(Some(from_pages.clone()), groups_through_sql(&conn, grouped));
        assert_eq!(from_pages.len(), 98);
        // A text value: SQL's conversions decide, not the pages.
        conn.execute_batch("INSERT INTO c(p_id) VALUES ('five')")
            .unwrap();
        assert_eq!(groups_from_pages(&conn, "c_p"), None);
    }

    #[test]
    fn counts_agree_with_the_pragma_on_every_shape_of_key() {
        let shapes = [
            // The common key: indexed, naming the parent's rowid, some parents gone.
            format!(
                "CREATE TABLE p(id INTEGER PRIMARY KEY, v);
                 CREATE TABLE c(id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id));
                 CREATE INDEX c_p ON c(p_id);
                 {ROWS} INSERT INTO p SELECT v, v FROM n WHERE v % 7 <> 0;
                 {ROWS} INSERT INTO c SELECT v, CASE WHEN v % 11 = 0 THEN NULL ELSE v % 50 END FROM n;"
            ),
            // The same, keyed by the parent's implied primary key, and a second key.
            format!(
                "CREATE TABLE p(id INTEGER PRIMARY KEY);
                 CREATE TABLE c(a REFERENCES p, b REFERENCES p(id));
                 CREATE INDEX c_a ON c(a, b); CREATE INDEX c_b ON c(b DESC);
                 {ROWS} INSERT INTO p SELECT v FROM n WHERE v < 40;
                 {ROWS} INSERT INTO c SELECT v % 60, v % 45 FROM n;"
            ),
            // The parent's rowid alias beside a column named rowid.
            format!(
                "CREATE TABLE p(k INTEGER PRIMARY KEY, rowid INTEGER);
                 CREATE TABLE c(p_id REFERENCES p); CREATE INDEX c_p ON c(p_id);
                 {ROWS} INSERT INTO p(k) SELECT -v FROM n WHERE v < 30;
                 {ROWS} INSERT INTO c SELECT v % 40 - 20 FROM n;"
            ),
            // A value that is not an integer: counted by the pragma.
            format!(
                "CREATE TABLE p(id INTEGER PRIMARY KEY);
                 CREATE TABLE c(p_id REFERENCES p(id)); CREATE INDEX c_p ON c(p_id);
                 {ROWS} INSERT INTO p SELECT v FROM n WHERE v < 20;
                 {ROWS} INSERT INTO c SELECT CASE v % 5 WHEN 0 THEN '3' WHEN 1 THEN 4.0 ELSE v END FROM n;"
            ),
            // No index to scan, a key of two columns, a parent keyed by text, a DESC key
            // that is not the rowid, a parent that does not exist.
            format!(
                "CREATE TABLE p(id INTEGER PRIMARY KEY, k TEXT UNIQUE, a, b, UNIQUE(a, b));
                 CREATE TABLE q(id INTEGER PRIMARY KEY DESC);
                 CREATE TABLE c1(p_id REFERENCES p(id));
                 CREATE TABLE c2(x, y, FOREIGN KEY(x, y) REFERENCES p(a, b)); CREATE INDEX c2_x ON c2(x, y);
                 CREATE TABLE c3(k REFERENCES p(k)); CREATE INDEX c3_k ON c3(k);
                 CREATE TABLE c4(q_id REFERENCES q(id)); CREATE INDEX c4_q ON c4(q_id);
                 CREATE TABLE c5(z REFERENCES gone(id)); CREATE INDEX c5_z ON c5(z);
                 {ROWS} INSERT INTO p SELECT v, 'k' || v, v % 3, v FROM n WHERE v < 30;
                 {ROWS} INSERT INTO q SELECT v FROM n WHERE v < 10;
                 {ROWS} INSERT INTO c1 SELECT v % 40 FROM n;
                 {ROWS} INSERT INTO c2 SELECT v % 4, v % 6 FROM n;
                 {ROWS} INSERT INTO c3 SELECT 'k' || (v % 35) FROM n;
                 {ROWS} INSERT INTO c4 SELECT v % 12 FROM n;
                 {ROWS} INSERT INTO c5 SELECT v FROM n WHERE v < 5;"
            ),
        ];
        // Whether table `c` of each shape is counted from its index.
        let fast = [true, true, true, false];
        let dir = tempfile::tempdir().unwrap();
        // In memory (through SQL), and in a file of small pages (read from its pages).
        let both = shapes.iter().enumerate().flat_map(|(n, sql)| {
            let file = Connection::open(dir.path().join(format!("{n}.sqlite3"))).unwrap();
            file.execute_batch(&format!(
                "PRAGMA foreign_keys = OFF; PRAGMA page_size = 512; {sql}"
            ))
            .unwrap();
            [(n, sql, db(sql)), (n, sql, file)]
        });
        for (n, sql, conn) in both {
            let expected = pragma_count(&conn).unwrap();
            assert!(expected > 0, "each shape has violations: {sql}");
            assert_eq!(count(&conn, true), Some(expected), "{sql}");
            assert_eq!(
                count(&conn, false).is_some(),
                fast.get(n) == Some(&true),
                "{sql}"
            );
            if let Some(&fast) = fast.get(n) {
                assert_eq!(by_parent_rowid(&conn, "c").is_some(), fast, "{sql}");
            } else {
                for c in ["c1", "c2", "c3", "c4", "c5"] {
                    assert_eq!(by_parent_rowid(&conn, c), None, "{c}");
                }
            }
        }
    }

    #[test]
    fn the_common_key_is_counted_from_its_index() {
        let conn = db(&format!(
            "CREATE TABLE p(id INTEGER PRIMARY KEY);
             CREATE TABLE c(p_id INTEGER REFERENCES p(id)); CREATE INDEX c_p ON c(p_id);
             {ROWS} INSERT INTO p SELECT v FROM n WHERE v <= 10;
             {ROWS} INSERT INTO c SELECT v % 20 FROM n;"
        ));
        // p_id 0 and 11..=19: 10 values of the 20, 15 rows each.
        assert_eq!(by_parent_rowid(&conn, "c"), Some(150));
        assert_eq!(pragma_count(&conn), Some(150));
    }
}
