//! Which trees the structure proof walks, and what it checks of their rows, from SQLite's own
//! account of the schema (`sqlite_schema`, `pragma_table_list`, `table_xinfo`).

use crate::engine::verify::plan_pages;
use rusqlite::{Connection, OptionalExtension};

/// A table tree (keyed by rowid) or an index tree (keyed by its records: an index, or a
/// WITHOUT ROWID table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TreeKind {
    Table,
    Index,
}

/// What each row of a rowid table must be, as `quick_check` checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowRule {
    /// Whether each field, by column number, may not be NULL (never the rowid's alias,
    /// stored as NULL). A record has one field per column.
    pub(crate) not_null: Vec<bool>,
}

/// One b-tree of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tree {
    pub(crate) name: String,
    /// Its table's name (its own, for a table).
    pub(crate) table: String,
    pub(crate) root: u32,
    pub(crate) kind: TreeKind,
    /// What its rows must be; `None` for an index, and for a table whose rows SQLite checks
    /// (listed in [`Plan::rows_by_sqlite`]).
    pub(crate) rows: Option<RowRule>,
}

/// Every tree of the file, and the tables whose rows only SQLite can check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) trees: Vec<Tree>,
    /// Tables with STRICT types, a generated column or no rowid: `quick_check(TABLE)` checks
    /// their rows. (CHECK constraints are not among what it checks: SQLite evaluates them
    /// only on a connection that may write, and the proof's may not.)
    pub(crate) rows_by_sqlite: Vec<String>,
}

/// One row of `sqlite_schema` with a tree.
struct Entry {
    kind: String,
    name: String,
    table: String,
    root: Option<i64>,
    sql: Option<String>,
}

/// The plan for the database on `conn`; `None` when something in it is not what this walk
/// vouches for (a root page that is not a number), and
/// `quick_check` proves the whole file instead.
pub(crate) fn plan(conn: &Connection) -> rusqlite::Result<Option<Plan>> {
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, CASE typeof(rootpage) WHEN 'integer' THEN rootpage END, sql \
         FROM sqlite_schema WHERE type IN ('table', 'index')",
    )?;
    let entries = stmt
        .query_map([], |r| {
            Ok(Entry {
                kind: r.get(0)?,
                name: r.get(1)?,
                table: r.get(2)?,
                root: r.get(3)?,
                sql: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut plan = Plan {
        trees: vec![Tree {
            name: "sqlite_schema".to_string(),
            table: "sqlite_schema".to_string(),
            root: 1,
            kind: TreeKind::Table,
            rows: None,
        }],
        rows_by_sqlite: Vec::new(),
    };
    for entry in entries {
        let virtual_table = entry.kind == "table"
            && entry.sql.as_deref().is_some_and(|s| {
                s.trim_start()
                    .get(..14)
                    .is_some_and(|p| p.eq_ignore_ascii_case("create virtual"))
            });
        if virtual_table && entry.root == Some(0) {
            continue;
        }
        let Some(root) = entry
            .root
            .and_then(|r| u32::try_from(r).ok())
            .filter(|&r| r > 1)
        else {
            return Ok(None);
        };
        let tree = if entry.kind == "index" {
            Tree {
                name: entry.name,
                table: entry.table,
                root,
                kind: TreeKind::Index,
                rows: None,
            }
        } else {
            table_tree(conn, entry.name, root, &mut plan)?
        };
        plan.trees.push(tree);
    }
    Ok(Some(plan))
}

/// One row of `table_xinfo`.
struct Column {
    declared_not_null: bool,
    primary_key: bool,
    hidden: i64,
}

/// The tree of table `name`, and (in `plan`) whether SQLite checks its rows.
fn table_tree(
    conn: &Connection,
    name: String,
    root: u32,
    plan: &mut Plan,
) -> rusqlite::Result<Tree> {
    let (without_rowid, strict): (bool, bool) = conn
        .query_row(
            "SELECT wr, strict FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
            [&name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .unwrap_or((false, true));
    let columns = columns(conn, &name)?;
    let generated = columns.iter().any(|c| c.hidden != 0);
    let by_sqlite = without_rowid || strict || generated;
    let kind = if without_rowid {
        TreeKind::Index
    } else {
        TreeKind::Table
    };
    if by_sqlite {
        plan.rows_by_sqlite.push(name.clone());
        return Ok(Tree {
            table: name.clone(),
            name,
            root,
            kind,
            rows: None,
        });
    }
    let alias = rowid_alias(conn, &name, &columns)?;
    let not_null = columns
        .iter()
        .enumerate()
        .map(|(cid, c)| c.declared_not_null && Some(cid) != alias)
        .collect();
    Ok(Tree {
        table: name.clone(),
        name,
        root,
        kind,
        rows: Some(RowRule { not_null }),
    })
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<Column>> {
    let mut stmt =
        conn.prepare("SELECT \"notnull\", pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid")?;
    let rows = stmt.query_map([table], |r| {
        Ok(Column {
            declared_not_null: r.get(0)?,
            primary_key: r.get::<_, i64>(1)? > 0,
            hidden: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// The column that is the rowid's alias ([`plan_pages::rowid_alias`]).
fn rowid_alias(
    conn: &Connection,
    table: &str,
    columns: &[Column],
) -> rusqlite::Result<Option<usize>> {
    let keys: Vec<i64> = (0..columns.len())
        .filter(|&c| columns[c].primary_key)
        .filter_map(|c| i64::try_from(c).ok())
        .collect();
    let alias = plan_pages::rowid_alias(&keys, plan_pages::key_has_index(conn, table)?);
    Ok(alias.and_then(|c| usize::try_from(c).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(sql: &str) -> Plan {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        plan(&conn).unwrap().unwrap()
    }

    #[test]
    fn rows_are_checked_here_only_for_plain_rowid_tables() {
        let plan = plan_of(
            "CREATE TABLE plain(id INTEGER NOT NULL PRIMARY KEY, a NOT NULL, b);
             CREATE TABLE desc_key(id INTEGER PRIMARY KEY DESC NOT NULL, a);
             CREATE TABLE checked(a CHECK (a > 0) NOT NULL);
             CREATE TABLE strict(a INTEGER) STRICT;
             CREATE TABLE gen(a, b AS (a + 1));
             CREATE TABLE wr(k PRIMARY KEY, v NOT NULL) WITHOUT ROWID;
             CREATE INDEX plain_a ON plain(a);",
        );
        let rule = |name: &str| {
            plan.trees
                .iter()
                .find(|t| t.name == name)
                .unwrap()
                .rows
                .clone()
        };
        assert_eq!(
            rule("plain"),
            Some(RowRule {
                not_null: vec![false, true, false]
            })
        );
        // Not the rowid's alias: its value is in the record, and may not be NULL.
        assert_eq!(
            rule("desc_key"),
            Some(RowRule {
                not_null: vec![true, false]
            })
        );
        assert_eq!(rule("plain_a"), None);
        let mut by_sqlite = plan.rows_by_sqlite.clone();
        by_sqlite.sort();
        assert_eq!(by_sqlite, ["gen", "strict", "wr"]);
        assert_eq!(
            rule("checked"),
            Some(RowRule {
                not_null: vec![true]
            })
        );
        let wr = plan.trees.iter().find(|t| t.name == "wr").unwrap();
        assert_eq!(wr.kind, TreeKind::Index);
        assert_eq!(plan.trees[0].root, 1);
    }
}
