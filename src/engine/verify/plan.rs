//! What the fast proof reads for each table of the output, from SQLite's own account of the
//! schema (`pragma_table_list`, `index_list`, `index_xinfo`): one scan of the table giving
//! every index's entries as the rows imply them, and one covering scan of each index giving
//! the entries it holds. A table with an index the scans cannot reproduce exactly is checked
//! with `integrity_check(TABLE)` instead.

use super::entry::{Collation, KeyColumn};
use crate::util::quote::ident;
use rusqlite::Connection;

/// Why a table is checked by `integrity_check(TABLE)` rather than streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// A virtual table: its module checks it.
    Virtual,
    /// An index on an expression: its values are not columns of the table.
    Expression(String),
    /// A partial index: it holds the entries of the rows its WHERE clause selects.
    Partial(String),
    /// An index with a collation other than BINARY, NOCASE and RTRIM.
    Collation(String),
    /// Every name for the rowid is taken by a column.
    NoRowidName,
    /// SQLite would not read the index alone (a covering scan) for its entries.
    NotCovering(String),
    /// SQLite would not read the table's own tree for its rows.
    NotTableScan,
}

/// How one table is proved.
#[derive(Debug, Clone)]
pub(crate) enum TableCheck {
    /// No index: the structure proof covers its tree.
    Nothing,
    /// One scan of the table (`select`) for the entries of every index.
    Stream {
        select: String,
        indexes: Vec<IndexPlan>,
        /// How the same scan reads the table's pages, where it can.
        pages: Option<PagePlan>,
    },
    Fallback(Fallback),
}

#[derive(Debug, Clone)]
pub(crate) struct TablePlan {
    pub(crate) name: String,
    pub(crate) check: TableCheck,
}

/// One index (or a WITHOUT ROWID table's own tree, `own_tree`) and how to read it.
#[derive(Debug, Clone)]
pub(crate) struct IndexPlan {
    pub(crate) name: String,
    /// The index's scan, in its order: the values of each entry.
    pub(crate) select: String,
    /// For each value of an entry, its place in the table's scan.
    pub(crate) columns: Vec<usize>,
    /// How each value of an entry is ordered (every value, down to the rowid or primary key,
    /// for an index; the primary key's for a table's own tree).
    pub(crate) order: Vec<KeyColumn>,
    /// How many leading values are the key a UNIQUE index keeps unique.
    pub(crate) unique_prefix: Option<usize>,
    /// A WITHOUT ROWID table's own tree: its order is checked, it has no digest to match.
    pub(crate) own_tree: bool,
    /// How its scan reads its pages, where it can.
    pub(crate) pages: Option<IndexPages>,
}

/// Where one value of a table's scan is in each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The rowid (or the column that is its alias, stored as NULL in the record).
    Rowid,
    /// A field of the record; `real` when the column has REAL affinity.
    Field { field: usize, real: bool },
}

/// A rowid table's scan, read from its pages ([`super::pages`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PagePlan {
    pub(crate) root: u32,
    /// Fields in every row's record: one per column.
    pub(crate) fields: usize,
    /// The last field the scan reads.
    pub(crate) last_field: usize,
    /// Each value of the table's scan, in its order.
    pub(crate) sources: Vec<Source>,
}

/// An index's scan, read from its pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexPages {
    pub(crate) root: u32,
    /// For each value of an entry, whether its column has REAL affinity.
    pub(crate) real: Vec<bool>,
}

/// One row of `index_xinfo`.
struct XInfo {
    cid: i64,
    name: Option<String>,
    descending: bool,
    collation: String,
    key: bool,
}

/// The plan for every table of the database on `conn`.
pub(crate) fn plan(conn: &Connection) -> rusqlite::Result<Vec<TablePlan>> {
    let mut stmt = conn.prepare(
        "SELECT name, type, wr FROM pragma_table_list \
         WHERE schema = 'main' AND type IN ('table', 'virtual', 'shadow') \
           AND name NOT IN ('sqlite_schema', 'sqlite_temp_schema')",
    )?;
    let tables = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut plans = Vec::with_capacity(tables.len());
    for (name, kind, without_rowid) in tables {
        let check = if kind == "virtual" {
            TableCheck::Fallback(Fallback::Virtual)
        } else {
            table_check(conn, &name, without_rowid)?
        };
        plans.push(TablePlan { name, check });
    }
    Ok(plans)
}

/// One row of `index_list`: name, UNIQUE, origin ("c", "u" or "pk"), partial.
pub(super) type IndexRow = (String, bool, String, bool);

fn table_check(
    conn: &Connection,
    table: &str,
    without_rowid: bool,
) -> rusqlite::Result<TableCheck> {
    let mut stmt =
        conn.prepare("SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)")?;
    let indexes = stmt
        .query_map([table], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<Vec<IndexRow>>>()?;
    if indexes.is_empty() {
        return Ok(TableCheck::Nothing);
    }
    let rowid = match rowid_name(conn, table, without_rowid)? {
        Ok(r) => r,
        Err(f) => return Ok(TableCheck::Fallback(f)),
    };
    // A WITHOUT ROWID table is read through its primary key's tree: NOT INDEXED lets SQLite
    // read a covering index instead.
    let scan = match indexes.iter().find(|i| without_rowid && i.2 == "pk") {
        Some(pk) => format!("{} INDEXED BY {}", ident(table), ident(&pk.0)),
        None => format!("{} NOT INDEXED", ident(table)),
    };
    let table_side = TableSide {
        table,
        rowid: &rowid,
        scan: &scan,
        without_rowid,
    };
    // The table's scan: every value any index holds, each once.
    let mut selected: Vec<String> = Vec::new();
    let mut plans = Vec::new();
    for index in indexes.iter().cloned() {
        match index_plan(conn, &table_side, index, &mut selected)? {
            Ok(plan) => plans.push(plan),
            Err(fallback) => return Ok(TableCheck::Fallback(fallback)),
        }
    }
    if selected.is_empty() {
        selected.push("NULL".to_string());
    }
    let select = format!("SELECT {} FROM {scan}", selected.join(", "));
    if !table_scan(conn, &select)? {
        return Ok(TableCheck::Fallback(Fallback::NotTableScan));
    }
    let pages = if without_rowid {
        None
    } else {
        super::plan_pages::plan(conn, table, &rowid, &selected, &indexes, &mut plans)?
    };
    Ok(TableCheck::Stream {
        select,
        indexes: plans,
        pages,
    })
}

/// What an index's plan needs to know of its table.
struct TableSide<'a> {
    table: &'a str,
    /// A name that reads the rowid.
    rowid: &'a str,
    /// The table's own tree, as a FROM clause.
    scan: &'a str,
    without_rowid: bool,
}

/// The plan for one index, adding the values it needs to the table's scan (`selected`).
fn index_plan(
    conn: &Connection,
    t: &TableSide<'_>,
    (index, unique, origin, partial): IndexRow,
    selected: &mut Vec<String>,
) -> rusqlite::Result<Result<IndexPlan, Fallback>> {
    if partial {
        return Ok(Err(Fallback::Partial(index)));
    }
    let own_tree = t.without_rowid && origin == "pk";
    let mut xinfo = xinfo(conn, &index)?;
    if own_tree {
        // The rest of the row follows the key in the table's own tree: only the key orders.
        xinfo.retain(|x| x.key);
    }
    let mut exprs = Vec::with_capacity(xinfo.len());
    let mut order = Vec::with_capacity(xinfo.len());
    for x in &xinfo {
        let expr = match (x.cid, &x.name) {
            (-1, _) => t.rowid.to_string(),
            (cid, Some(name)) if cid >= 0 => ident(name),
            _ => return Ok(Err(Fallback::Expression(index))),
        };
        let Some(collation) = Collation::named(&x.collation) else {
            return Ok(Err(Fallback::Collation(index)));
        };
        order.push(KeyColumn {
            collation,
            descending: x.descending,
        });
        exprs.push(expr);
    }
    let columns = exprs
        .iter()
        .map(|e| match selected.iter().position(|s| s == e) {
            Some(p) => p,
            None => {
                selected.push(e.clone());
                selected.len() - 1
            }
        })
        .collect();
    let select = if own_tree {
        let select = format!("SELECT {} FROM {}", exprs.join(", "), t.scan);
        if !table_scan(conn, &select)? {
            return Ok(Err(Fallback::NotTableScan));
        }
        select
    } else {
        let select = format!(
            "SELECT {} FROM {} INDEXED BY {}",
            exprs.join(", "),
            ident(t.table),
            ident(&index)
        );
        if !covering(conn, &select)? {
            return Ok(Err(Fallback::NotCovering(index)));
        }
        select
    };
    let keys = xinfo.iter().filter(|x| x.key).count();
    Ok(Ok(IndexPlan {
        name: index,
        select,
        columns,
        order,
        unique_prefix: unique.then_some(keys),
        own_tree,
        pages: None,
    }))
}

fn xinfo(conn: &Connection, index: &str) -> rusqlite::Result<Vec<XInfo>> {
    let mut stmt = conn.prepare(
        "SELECT cid, name, \"desc\", coll, key FROM pragma_index_xinfo(?1) ORDER BY seqno",
    )?;
    let rows = stmt.query_map([index], |r| {
        Ok(XInfo {
            cid: r.get(0)?,
            name: r.get(1)?,
            descending: r.get(2)?,
            collation: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            key: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// A name that reads the rowid of `table` (any, for a WITHOUT ROWID table, which has none).
fn rowid_name(
    conn: &Connection,
    table: &str,
    without_rowid: bool,
) -> rusqlite::Result<Result<String, Fallback>> {
    if without_rowid {
        return Ok(Ok("NULL".to_string()));
    }
    let mut stmt = conn.prepare("SELECT lower(name) FROM pragma_table_xinfo(?1)")?;
    let names = stmt
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|c| !names.iter().any(|n| n == c))
        .map(str::to_string)
        .ok_or(Fallback::NoRowidName))
}

/// Whether SQLite runs `select` as a scan of the index alone.
fn covering(conn: &Connection, select: &str) -> rusqlite::Result<bool> {
    let details = query_plan(conn, select)?;
    Ok(details.len() == 1 && details[0].contains(" USING COVERING INDEX "))
}

/// Whether SQLite runs `select` as a scan of the table's own tree.
fn table_scan(conn: &Connection, select: &str) -> rusqlite::Result<bool> {
    let details = query_plan(conn, select)?;
    Ok(details.len() == 1 && details[0].starts_with("SCAN ") && !details[0].contains(" INDEX "))
}

pub(super) fn query_plan(conn: &Connection, select: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {select}"))?;
    let details = stmt.query_map([], |r| r.get::<_, String>(3))?;
    details.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(String, Option<Fallback>, usize)> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        plan(&conn)
            .unwrap()
            .into_iter()
            .map(|t| match t.check {
                TableCheck::Nothing => (t.name, None, 0),
                TableCheck::Stream { indexes, .. } => (t.name, None, indexes.len()),
                TableCheck::Fallback(f) => (t.name, Some(f), 0),
            })
            .collect()
    }

    #[test]
    fn indexes_on_columns_are_streamed_and_the_rest_falls_back() {
        let mut got = kinds(
            "CREATE TABLE plain(a, b UNIQUE); CREATE INDEX plain_a ON plain(a DESC, b);
             CREATE TABLE wr(k PRIMARY KEY, v) WITHOUT ROWID; CREATE INDEX wr_v ON wr(v);
             CREATE TABLE bare(x);
             CREATE TABLE expr(a); CREATE INDEX expr_a ON expr(a + 1);
             CREATE TABLE part(a); CREATE INDEX part_a ON part(a) WHERE a > 1;
             CREATE TABLE names(rowid, oid, _rowid_); CREATE INDEX names_oid ON names(oid);",
        );
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let expected = vec![
            ("bare".to_string(), None, 0),
            (
                "expr".to_string(),
                Some(Fallback::Expression("expr_a".into())),
                0,
            ),
            ("names".to_string(), Some(Fallback::NoRowidName), 0),
            (
                "part".to_string(),
                Some(Fallback::Partial("part_a".into())),
                0,
            ),
            // The UNIQUE constraint's index and plain_a.
            ("plain".to_string(), None, 2),
            // The table's own tree (its primary key) and wr_v.
            ("wr".to_string(), None, 2),
        ];
        assert_eq!(got, expected);
    }
}
