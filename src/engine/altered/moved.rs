//! Rows of another table of the same shape, read in place of this table's own (a child
//! pointer swapped between two look-alike trees, whose key ranges happen to match): nothing in
//! the pages shows it, but the other table's index lists each such row for its rowid. They are
//! put back in their own table: exchanged with that table's row of the same rowid when that
//! row is this table's (the two leaves were swapped), moved when it has none.

use super::{index_keys, key_hash, select_sql, Norm, Witness};
use crate::engine::salvage::membership::{indexes_of, whole, KeySource};
use crate::engine::schema::{SchemaEntry, Table};
use crate::engine::writer::rowid_name;
use crate::source::pagefile::PageFile;
use crate::util::quote::ident;
use rusqlite::types::Value as SqlValue;
use std::collections::BTreeMap;

/// A row of `home` found in the table being checked.
pub(crate) struct Stray<'t> {
    pub rowid: i64,
    pub home: &'t Table,
    /// The evidence, in words.
    pub why: String,
}

/// Altered rows that hold, in the columns an index of another table of the same shape
/// holds, what that index lists for their rowid: rows of that table, read from one of its
/// pages where this table's tree pointed (a swapped or stray pointer). Their values belong
/// together, only in the wrong table: this table's index values would make a row neither had.
pub(super) fn misplaced<'t>(
    conn: &rusqlite::Connection,
    pf: &PageFile,
    entries: &[SchemaEntry],
    tables: &'t [Table],
    table: &Table,
    rowids: &[i64],
) -> Vec<Stray<'t>> {
    let mut out: BTreeMap<i64, Stray<'t>> = BTreeMap::new();
    if rowids.is_empty() {
        return Vec::new();
    }
    let alike = tables.iter().filter(|o| {
        !o.name.eq_ignore_ascii_case(&table.name)
            && !o.internal
            && !o.without_rowid
            && o.stored.len() == table.stored.len()
    });
    for other in alike {
        for (name, root, keys) in indexes_of(entries, other) {
            // The other table's key columns, as this table's columns at the same places.
            let names: Option<Vec<Option<String>>> = keys
                .iter()
                .map(|k| match k {
                    KeySource::Rowid => Some(None),
                    KeySource::Field(i) => table.stored_column(*i).map(|c| Some(c.name.clone())),
                })
                .collect();
            let (Some(names), Some(listed)) = (names, index_keys(pf, root, keys.len())) else {
                continue;
            };
            let Some(sql) = select_sql(table, &names, true) else {
                continue;
            };
            for &r in rowids {
                let Some(expected) = listed.get(&r).filter(|_| !out.contains_key(&r)) else {
                    continue;
                };
                let held = conn.query_row(&sql, [r], |row| {
                    Ok(key_hash((0..names.len()).map(|i| {
                        Norm::sql(row.get_ref(1 + 2 * i).ok(), row.get_ref(2 + 2 * i).ok())
                    })))
                });
                if held.ok() == Some(*expected) {
                    let why = format!(
                        "it holds what index {name} of {0} lists for its rowid: a row of {0}, \
                         read from one of its pages",
                        other.name
                    );
                    out.insert(
                        r,
                        Stray {
                            rowid: r,
                            home: other,
                            why,
                        },
                    );
                }
            }
        }
    }
    out.into_values().collect()
}

/// Whether `theirs` (another table's row `r`, in record order) holds what this table's
/// index that flagged `r` holds for it: this table's own row, in the other table.
pub(super) fn holds_own(
    table: &Table,
    witnesses: &[Witness],
    flagged_by: Option<&usize>,
    r: i64,
    theirs: &[SqlValue],
) -> bool {
    let Some(w) = flagged_by.map(|w| &witnesses[*w]) else {
        return false;
    };
    let Some(held) = w.held.get(&r) else {
        return false;
    };
    w.names.iter().zip(held).all(|(name, value)| {
        let Some(name) = name else {
            return true; // the rowid: the same in both
        };
        let field = table
            .stored
            .iter()
            .position(|&c| table.columns[c].name.eq_ignore_ascii_case(name));
        match (field.and_then(|f| theirs.get(f)), value) {
            (Some(a), Some(b)) => same(a, b),
            _ => false,
        }
    })
}

/// Equal values, a whole REAL and the same INTEGER alike (a REAL column stores whole numbers
/// as integers in its records).
fn same(a: &SqlValue, b: &SqlValue) -> bool {
    match (a, b) {
        (SqlValue::Real(x), SqlValue::Integer(i)) | (SqlValue::Integer(i), SqlValue::Real(x)) => {
            whole(*x) == Some(*i)
        }
        _ => a == b,
    }
}

/// Puts each stray back in its home table. `ours` says whether the home table's row of the
/// same rowid (its values in record order) is this table's. Returns, per rowid, the table it
/// went to, or why it was left.
pub(crate) fn put_back(
    conn: &rusqlite::Connection,
    table: &Table,
    strays: &[Stray<'_>],
    ours: &dyn Fn(i64, &[SqlValue]) -> bool,
) -> BTreeMap<i64, Result<String, String>> {
    let mut out = BTreeMap::new();
    for s in strays {
        let done = (|| {
            let here = Columns::of(table).ok_or("its table has generated columns")?;
            let home = Columns::of(s.home).ok_or("the other table has generated columns")?;
            if here.names.len() != home.names.len() {
                return Err("the tables' columns differ".to_string());
            }
            let mine = here
                .row(conn, s.rowid)
                .ok_or("its values could not be read")?;
            match home.row(conn, s.rowid) {
                Some(theirs) if ours(s.rowid, &theirs) => in_savepoint(conn, || {
                    here.set(conn, s.rowid, &theirs)?;
                    home.set(conn, s.rowid, &mine)
                }),
                Some(_) => Err(format!(
                    "{} has a row of that rowid of its own",
                    s.home.name
                )),
                None => in_savepoint(conn, || {
                    home.insert(conn, s.rowid, &mine)?;
                    here.delete(conn, s.rowid)
                }),
            }
        })();
        let done = done
            .map(|()| s.home.name.clone())
            .map_err(|e| format!("{}; putting it back there failed: {e}", s.why));
        out.insert(s.rowid, done);
    }
    out
}

fn in_savepoint(
    conn: &rusqlite::Connection,
    f: impl FnOnce() -> rusqlite::Result<()>,
) -> Result<(), String> {
    conn.execute_batch("SAVEPOINT stray_row")
        .map_err(|e| e.to_string())?;
    let done = f();
    if done.is_err() {
        let _ = conn.execute_batch("ROLLBACK TO stray_row");
    }
    let _ = conn.execute_batch("RELEASE stray_row");
    done.map_err(|e| e.to_string())
}

/// A table's columns in record order (the INTEGER PRIMARY KEY left out: the rowid says it).
struct Columns<'t> {
    table: &'t Table,
    rowid: String,
    /// Per record field: the column's name, `None` for the INTEGER PRIMARY KEY.
    names: Vec<Option<String>>,
}

impl<'t> Columns<'t> {
    fn of(table: &'t Table) -> Option<Columns<'t>> {
        if table.stored.len() != table.columns.len() {
            return None;
        }
        let names = table
            .stored
            .iter()
            .map(|&c| (Some(c) != table.ipk).then(|| table.columns[c].name.clone()))
            .collect();
        Some(Columns {
            table,
            rowid: rowid_name(table)?,
            names,
        })
    }

    fn listed(&self) -> Vec<&str> {
        self.names.iter().flatten().map(String::as_str).collect()
    }

    /// The row's values in record order (NULL for the INTEGER PRIMARY KEY's place).
    fn row(&self, conn: &rusqlite::Connection, rowid: i64) -> Option<Vec<SqlValue>> {
        let cols: Vec<String> = self
            .names
            .iter()
            .map(|n| n.as_deref().map_or("NULL".to_string(), ident))
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = ?1",
            cols.join(", "),
            ident(&self.table.name),
            self.rowid
        );
        conn.query_row(&sql, [rowid], |r| {
            (0..cols.len()).map(|i| r.get::<_, SqlValue>(i)).collect()
        })
        .ok()
    }

    fn values<'v>(&self, values: &'v [SqlValue]) -> Vec<&'v SqlValue> {
        self.names
            .iter()
            .zip(values)
            .filter(|(n, _)| n.is_some())
            .map(|(_, v)| v)
            .collect()
    }

    fn set(
        &self,
        conn: &rusqlite::Connection,
        rowid: i64,
        values: &[SqlValue],
    ) -> rusqlite::Result<()> {
        let sets: Vec<String> = self
            .listed()
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ?{}", ident(c), i + 2))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = ?1",
            ident(&self.table.name),
            sets.join(", "),
            self.rowid
        );
        self.execute(conn, &sql, rowid, values)
    }

    fn insert(
        &self,
        conn: &rusqlite::Connection,
        rowid: i64,
        values: &[SqlValue],
    ) -> rusqlite::Result<()> {
        let listed = self.listed();
        let cols: Vec<String> = listed.iter().map(|c| ident(c)).collect();
        let marks: Vec<String> = (0..listed.len()).map(|i| format!("?{}", i + 2)).collect();
        let sql = format!(
            "INSERT INTO {}({}, {}) VALUES (?1, {})",
            ident(&self.table.name),
            self.rowid,
            cols.join(", "),
            marks.join(", ")
        );
        self.execute(conn, &sql, rowid, values)
    }

    /// Runs `sql` with the rowid as `?1` and the row's values from `?2` on.
    fn execute(
        &self,
        conn: &rusqlite::Connection,
        sql: &str,
        rowid: i64,
        values: &[SqlValue],
    ) -> rusqlite::Result<()> {
        let mut params: Vec<&dyn rusqlite::ToSql> = vec![&rowid];
        params.extend(
            self.values(values)
                .into_iter()
                .map(|v| v as &dyn rusqlite::ToSql),
        );
        conn.execute(sql, params.as_slice()).map(|_| ())
    }

    fn delete(&self, conn: &rusqlite::Connection, rowid: i64) -> rusqlite::Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE {} = ?1",
            ident(&self.table.name),
            self.rowid
        );
        conn.execute(&sql, [rowid]).map(|_| ())
    }
}
