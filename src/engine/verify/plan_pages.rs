//! Which tables the fast proof can read from their pages, and where each value of their scan
//! is in a row's record: rowid tables with no generated column, every value a stored column
//! or the rowid.

use super::plan::{IndexPages, IndexPlan, IndexRow, PagePlan, Source};
use crate::util::quote::ident;
use rusqlite::{Connection, OptionalExtension};

/// One row of `table_xinfo`.
struct Column {
    cid: i64,
    name: String,
    declared: String,
    pk: i64,
    hidden: i64,
}

/// The page plan of rowid table `table`, whose SQL scan selects `selected` (`rowid` naming
/// its rowid), and each index's (set in `plans`); `None` where pages cannot serve.
pub(super) fn plan(
    conn: &Connection,
    table: &str,
    rowid: &str,
    selected: &[String],
    index_rows: &[IndexRow],
    plans: &mut [IndexPlan],
) -> rusqlite::Result<Option<PagePlan>> {
    let columns = columns(conn, table)?;
    // A generated column's value is computed (VIRTUAL) or stored apart from the declared
    // order (STORED): SQL reads those.
    if columns.is_empty() || columns.iter().any(|c| c.hidden != 0) {
        return Ok(None);
    }
    let keys: Vec<i64> = columns.iter().filter(|c| c.pk > 0).map(|c| c.cid).collect();
    let alias = rowid_alias(&keys, index_rows.iter().any(|i| i.2 == "pk"));
    let source = |expr: &str| -> Option<Source> {
        if expr == rowid {
            return Some(Source::Rowid);
        }
        let column = columns.iter().find(|c| ident(&c.name) == expr)?;
        if Some(column.cid) == alias {
            return Some(Source::Rowid);
        }
        Some(Source::Field {
            field: usize::try_from(column.cid).ok()?,
            real: real_affinity(&column.declared),
        })
    };
    let Some(sources) = selected
        .iter()
        .map(|e| source(e))
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(None);
    };
    let Some(root) = root_page(conn, "table", table)? else {
        return Ok(None);
    };
    let mut roots = Vec::with_capacity(plans.len());
    for index in plans.iter() {
        match root_page(conn, "index", &index.name)? {
            Some(r) => roots.push(r),
            None => return Ok(None),
        }
    }
    for (index, root) in plans.iter_mut().zip(roots) {
        let real = index
            .columns
            .iter()
            .map(|&c| matches!(sources.get(c), Some(Source::Field { real: true, .. })))
            .collect();
        index.pages = Some(IndexPages { root, real });
    }
    let last_field = sources
        .iter()
        .filter_map(|s| match s {
            Source::Field { field, .. } => Some(*field),
            Source::Rowid => None,
        })
        .max()
        .unwrap_or(0);
    Ok(Some(PagePlan {
        root,
        fields: columns.len(),
        last_field,
        sources,
    }))
}

/// The column that is the rowid's alias, stored as NULL in every record and read as the
/// rowid: a primary key of one column (`keys`, by column number) with no index of its own
/// (INTEGER PRIMARY KEY DESC, and a key of any other type, has one).
pub(super) fn rowid_alias(keys: &[i64], key_has_index: bool) -> Option<i64> {
    match keys {
        [key] if !key_has_index => Some(*key),
        _ => None,
    }
}

/// Whether the primary key of `table` has an index of its own (then no column is the rowid's
/// alias).
pub(super) fn key_has_index(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM pragma_index_list(?1) WHERE origin = 'pk'",
        [table],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<Column>> {
    let mut stmt = conn.prepare(
        "SELECT cid, name, coalesce(type, ''), pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid",
    )?;
    let rows = stmt.query_map([table], |r| {
        Ok(Column {
            cid: r.get(0)?,
            name: r.get(1)?,
            declared: r.get(2)?,
            pk: r.get(3)?,
            hidden: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// The root page of the table or index (`kind`) named `name`, where it has one.
pub(super) fn root_page(
    conn: &Connection,
    kind: &str,
    name: &str,
) -> rusqlite::Result<Option<u32>> {
    let root: Option<i64> = conn
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE type = ?1 AND name = ?2",
            [kind, name],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    Ok(root.and_then(|r| u32::try_from(r).ok()).filter(|&r| r > 0))
}

/// Whether a column declared `declared` has REAL affinity, by SQLite's rules in their order:
/// INT makes it INTEGER, CHAR, CLOB or TEXT makes it TEXT, BLOB or no type makes it BLOB,
/// then REAL, FLOA or DOUB make it REAL.
pub(super) fn real_affinity(declared: &str) -> bool {
    let d = declared.to_ascii_uppercase();
    let has = |s: &str| d.contains(s);
    if has("INT") || has("CHAR") || has("CLOB") || has("TEXT") || has("BLOB") || d.is_empty() {
        return false;
    }
    has("REAL") || has("FLOA") || has("DOUB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_affinity_follows_sqlites_rules() {
        for (declared, real) in [
            ("REAL", true),
            ("double precision", true),
            ("FLOAT", true),
            ("floating point", false), // "INT" in "POINT" comes first
            ("", false),
            ("INTEGER", false),
            ("varchar(16)", false),
            ("datetime", false),
            ("DECIMAL(10,5)", false),
            ("BLOBREAL", false),
        ] {
            assert_eq!(real_affinity(declared), real, "{declared}");
        }
        // Each against SQLite itself.
        let conn = Connection::open_in_memory().unwrap();
        for declared in [
            "REAL",
            "double precision",
            "FLOAT",
            "floating point",
            "DECIMAL",
        ] {
            let t: String = conn
                .query_row(&format!("SELECT typeof(CAST(1 AS {declared}))"), [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(t == "real", real_affinity(declared), "{declared}");
        }
    }
}
