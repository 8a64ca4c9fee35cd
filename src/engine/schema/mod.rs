//! The schema: rows of `sqlite_schema` read from page 1's tree (damaged cells skipped), and
//! each table's columns as the bundled SQLite itself understands its CREATE statement. SQL is
//! never parsed by hand: every CREATE TABLE runs in a scratch in-memory database and SQLite
//! is asked for the columns.

use crate::format::record::Field;
use crate::format::TextEncoding;
use rusqlite::Connection;

mod twin;

/// The type of a `sqlite_schema` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SchemaKind {
    Table,
    Index,
    View,
    Trigger,
}

impl SchemaKind {
    /// The kind `sqlite_schema.type` names; `None` for anything else (a damaged row).
    pub(crate) fn parse(s: &str) -> Option<SchemaKind> {
        match s {
            "table" => Some(SchemaKind::Table),
            "index" => Some(SchemaKind::Index),
            "view" => Some(SchemaKind::View),
            "trigger" => Some(SchemaKind::Trigger),
            _ => None,
        }
    }
}

/// One row of `sqlite_schema`.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SchemaEntry {
    pub kind: SchemaKind,
    pub name: String,
    pub tbl_name: String,
    pub rootpage: i64,
    pub sql: Option<String>,
    /// The row was lost from this file and taken from a reference schema (--schema-from), or
    /// rebuilt from the rows of the table's indexes (salvage::rebuilt): the table's root page
    /// is unknown, its rows can only come back from orphan pages.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub from_reference: bool,
}

impl SchemaEntry {
    /// Whether this row declares a virtual table, which has no tree of its own (root page 0):
    /// its module keeps its rows, in shadow tables of their own. A plain table with root page
    /// 0 is damage: its tree is lost.
    pub(crate) fn is_virtual_table(&self) -> bool {
        self.kind == SchemaKind::Table && self.sql.as_deref().is_some_and(declares_virtual_table)
    }

    /// Whether this row is an index (automatic ones included) of table `table`.
    pub(crate) fn is_index_of(&self, table: &str) -> bool {
        self.kind == SchemaKind::Index && self.tbl_name.eq_ignore_ascii_case(table)
    }
}

/// Whether `sql` is a `CREATE VIRTUAL TABLE` statement.
pub(crate) fn declares_virtual_table(sql: &str) -> bool {
    let words: Vec<&str> = sql.split_whitespace().take(3).collect();
    words.len() == 3
        && ["CREATE", "VIRTUAL", "TABLE"]
            .iter()
            .zip(&words)
            .all(|(want, word)| word.eq_ignore_ascii_case(want))
}

/// How a column's declared type makes SQLite store values (its affinity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

impl Affinity {
    /// SQLite's rules for the affinity of a declared type, in SQLite's order.
    pub(crate) fn of(decl: &str) -> Affinity {
        let t = decl.to_ascii_uppercase();
        if t.contains("INT") {
            Affinity::Integer
        } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
            Affinity::Text
        } else if t.contains("BLOB") || t.is_empty() {
            Affinity::Blob
        } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub decl_type: String,
    pub affinity: Affinity,
    pub not_null: bool,
    /// Position in the primary key (1-based), 0 if not part of it.
    pub pk: u32,
    /// 0 normal, 1 hidden (virtual table), 2 virtual generated, 3 stored generated.
    pub hidden: i64,
}

/// A table that holds rows in a b-tree of this file.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub name: String,
    pub root: u32,
    pub sql: Option<String>,
    pub columns: Vec<Column>,
    /// Record field i holds column `stored[i]`.
    pub stored: Vec<usize>,
    /// The INTEGER PRIMARY KEY column (an alias of the rowid), if any.
    pub ipk: Option<usize>,
    pub without_rowid: bool,
    /// `sqlite_sequence`, `sqlite_stat1`, ...: created by SQLite itself, not by CREATE TABLE.
    pub internal: bool,
    /// The table the rows are loaded into when this one's definition cannot load them
    /// ([`twin`]); the definition is put back after.
    pub twin: Option<Box<Table>>,
}

impl Table {
    /// Whether a record with these serial types can be a row of this table.
    pub(crate) fn fits(&self, types: &[u64]) -> bool {
        if types.is_empty() || types.len() > self.stored.len() {
            return false;
        }
        types.iter().zip(&self.stored).all(|(&serial, &col)| {
            let c = &self.columns[col];
            let is_null = serial == 0;
            if Some(col) == self.ipk {
                return is_null;
            }
            if is_null {
                return !(c.not_null || (self.without_rowid && c.pk > 0));
            }
            let numeric = (1..=9).contains(&serial);
            !(c.affinity == Affinity::Text && numeric)
        })
    }

    /// The table rows are inserted into: the storage twin if there is one, else this one.
    pub(crate) fn loaded_as(&self) -> &Table {
        self.twin.as_deref().unwrap_or(self)
    }

    /// Column names in the order of the record's fields.
    pub(crate) fn stored_column(&self, field: usize) -> Option<&Column> {
        self.stored.get(field).map(|&c| &self.columns[c])
    }
}

/// Decodes a `sqlite_schema` record (type, name, tbl_name, rootpage, sql).
pub(crate) fn entry_from_record(
    payload: &[u8],
    fields: &[Field],
    encoding: TextEncoding,
) -> Option<SchemaEntry> {
    if fields.len() != 5 {
        return None;
    }
    let text = |f: &Field| -> Option<String> {
        match f.value(payload) {
            crate::format::record::Value::Text(b) => {
                String::from_utf8(encoding.to_utf8(b).into_owned()).ok()
            }
            _ => None,
        }
    };
    let rootpage = match fields[3] {
        Field::Integer(i) => i,
        Field::Null => 0,
        _ => return None,
    };
    let kind = SchemaKind::parse(&text(&fields[0])?)?;
    Some(SchemaEntry {
        kind,
        name: text(&fields[1])?,
        tbl_name: text(&fields[2])?,
        rootpage,
        sql: if fields[4].is_null() {
            None
        } else {
            Some(text(&fields[4])?)
        },
        from_reference: false,
    })
}

/// Guesses the text encoding from the bytes of a schema record's first field ("table",
/// "index", ...), for when the header's encoding field is damaged.
pub(crate) fn sniff_encoding(text: &[u8]) -> TextEncoding {
    match text {
        [a, 0, ..] if a.is_ascii_alphabetic() => TextEncoding::Utf16le,
        [0, b, ..] if b.is_ascii_alphabetic() => TextEncoding::Utf16be,
        _ => TextEncoding::Utf8,
    }
}

/// Schema rows of a healthy database with the same schema (a fresh database the application
/// migrated, or an old backup), for the objects this file's schema lost.
pub(crate) fn reference_entries(
    path: &std::path::Path,
    have: &[SchemaEntry],
) -> rusqlite::Result<Vec<SchemaEntry>> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        let kind: String = r.get(0)?;
        let (name, tbl_name, sql) = (r.get(1)?, r.get(2)?, r.get(3)?);
        Ok(SchemaKind::parse(&kind).map(|kind| SchemaEntry {
            kind,
            name,
            tbl_name,
            rootpage: 0,
            sql,
            from_reference: true,
        }))
    })?;
    let mut out = Vec::new();
    for e in rows {
        let Some(e) = e? else {
            continue;
        };
        let is_virtual = e.kind == SchemaKind::Table
            && e.sql
                .as_deref()
                .is_some_and(|s| s.to_ascii_uppercase().starts_with("CREATE VIRTUAL"));
        if !is_virtual && !have.iter().any(|h| h.name == e.name) {
            out.push(e);
        }
    }
    Ok(out)
}

/// Columns of the internal tables whose CREATE statements SQLite will not run for us.
pub(crate) fn internal_columns(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "sqlite_sequence" => Some(&["name", "seq"]),
        "sqlite_stat1" => Some(&["tbl", "idx", "stat"]),
        "sqlite_stat4" => Some(&["tbl", "idx", "neq", "nlt", "ndlt", "sample"]),
        _ => None,
    }
}

/// Asks a scratch database what the tables of `entries` look like. Tables whose SQL SQLite
/// refuses come back in the second list with the reason.
/// `stand_ins` are the application's functions given stand-ins (no stored value depends on
/// them); a table that needs any other is loaded through a twin.
pub(crate) fn interpret(
    entries: &[SchemaEntry],
    stand_ins: &[String],
) -> (Vec<Table>, Vec<(SchemaEntry, String)>) {
    let mut tables = Vec::new();
    let mut refused = Vec::new();
    let scratch = match Connection::open_in_memory() {
        Ok(c) => c,
        Err(e) => {
            let why = format!("scratch database: {e}");
            return (
                tables,
                entries.iter().map(|e| (e.clone(), why.clone())).collect(),
            );
        }
    };
    // A legacy table named `sqlite_*` (older SQLite let applications create them) is an
    // ordinary table: SQLite creates one only with the schema writable.
    let _ = scratch.execute_batch("PRAGMA writable_schema = ON");
    crate::engine::stand_ins::only_stand_ins_for(&scratch, stand_ins);
    for entry in entries.iter().filter(|e| e.kind == SchemaKind::Table) {
        let Ok(root) = u32::try_from(entry.rootpage) else {
            refused.push((
                entry.clone(),
                format!("root page {} is invalid", entry.rootpage),
            ));
            continue;
        };
        if root == 0 && !entry.from_reference && entry.is_virtual_table() {
            continue; // its rows live in its shadow tables
        }
        if let Some(cols) = internal_columns(&entry.name) {
            tables.push(internal_table(entry, root, cols));
            continue;
        }
        match table_from_sql(&scratch, entry, root) {
            Ok(mut t) => {
                // A stored generated column loaded through its own definition would be
                // computed again by this SQLite, which may not give what the source stored
                // (another version's float formatting, a pragma set at run time): a twin
                // keeps the stored values.
                if !twin::rowid_addressable(&t) || t.columns.iter().any(|c| c.hidden == 3) {
                    t.twin = twin::twin_of(&scratch, &t).map(Box::new);
                }
                tables.push(t);
            }
            Err(why) => match twin::loaded_by_twin(entry, root) {
                Some(t) => tables.push(t),
                None => refused.push((entry.clone(), why)),
            },
        }
    }
    (tables, refused)
}

fn internal_table(entry: &SchemaEntry, root: u32, cols: &[&str]) -> Table {
    Table {
        name: entry.name.clone(),
        root,
        sql: entry.sql.clone(),
        columns: cols
            .iter()
            .map(|n| Column {
                name: n.to_string(),
                decl_type: String::new(),
                affinity: Affinity::Blob,
                not_null: false,
                pk: 0,
                hidden: 0,
            })
            .collect(),
        stored: (0..cols.len()).collect(),
        ipk: None,
        without_rowid: false,
        internal: true,
        twin: None,
    }
}

pub(super) fn table_from_sql(
    scratch: &Connection,
    entry: &SchemaEntry,
    root: u32,
) -> Result<Table, String> {
    let sql = entry.sql.as_deref().ok_or("no CREATE TABLE statement")?;
    if !sql
        .trim_start()
        .to_ascii_uppercase()
        .starts_with("CREATE TABLE")
    {
        return Err("statement is not a CREATE TABLE".into());
    }
    scratch.execute_batch(sql).map_err(|e| e.to_string())?;
    let columns = table_columns(scratch, &entry.name).map_err(|e| e.to_string())?;
    if columns.is_empty() {
        return Err("SQLite reports no columns".into());
    }
    let without_rowid: bool = scratch
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
            [&entry.name],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    let pk_cols: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.pk > 0)
        .map(|(i, _)| i)
        .collect();
    // A lone INTEGER primary key aliases the rowid, unless SQLite made an index for it
    // (`INTEGER PRIMARY KEY DESC` as a column constraint is an ordinary unique column).
    let ipk = match pk_cols.as_slice() {
        [only]
            if !without_rowid
                && columns[*only].decl_type.eq_ignore_ascii_case("INTEGER")
                && !has_pk_index(scratch, &entry.name).map_err(|e| e.to_string())? =>
        {
            Some(*only)
        }
        _ => None,
    };
    let is_stored = |c: &Column| c.hidden != 2;
    let stored = if without_rowid {
        let mut keyed: Vec<usize> = pk_cols.clone();
        keyed.sort_by_key(|&i| columns[i].pk);
        keyed.extend((0..columns.len()).filter(|i| columns[*i].pk == 0 && is_stored(&columns[*i])));
        keyed
    } else {
        (0..columns.len())
            .filter(|i| is_stored(&columns[*i]))
            .collect()
    };
    Ok(Table {
        name: entry.name.clone(),
        root,
        sql: entry.sql.clone(),
        columns,
        stored,
        ipk,
        without_rowid,
        internal: false,
        twin: None,
    })
}

/// Whether SQLite keeps an automatic index for the table's PRIMARY KEY.
fn has_pk_index(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_index_list(?1) WHERE origin = 'pk'",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<Column>> {
    let mut stmt =
        conn.prepare("SELECT name, type, \"notnull\", pk, hidden FROM pragma_table_xinfo(?1)")?;
    let rows = stmt.query_map([table], |r| {
        let decl_type: String = r.get::<_, Option<String>>(1)?.unwrap_or_default();
        Ok(Column {
            name: r.get(0)?,
            affinity: Affinity::of(&decl_type),
            decl_type,
            not_null: r.get::<_, i64>(2)? != 0,
            pk: u32::try_from(r.get::<_, i64>(3)?.clamp(0, i64::from(u32::MAX))).unwrap_or(0),
            hidden: r.get(4)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, sql: &str) -> SchemaEntry {
        SchemaEntry {
            kind: SchemaKind::Table,
            name: name.into(),
            tbl_name: name.into(),
            rootpage: 2,
            sql: Some(sql.into()),
            from_reference: false,
        }
    }

    #[test]
    fn columns_come_from_sqlite() {
        let (tables, refused) = interpret(
            &[
                entry(
                    "t",
                    "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, n)",
                ),
                entry(
                    "w",
                    "CREATE TABLE w(a, k TEXT PRIMARY KEY, b) WITHOUT ROWID",
                ),
                entry("bad", "CREATE TABLE bad(x"),
            ],
            &[],
        );
        assert_eq!(refused.len(), 1);
        let t = &tables[0];
        assert_eq!(t.ipk, Some(0));
        assert_eq!(t.stored, vec![0, 1, 2]);
        assert!(t.fits(&[0, 13 + 2 * 3, 1]));
        assert!(!t.fits(&[1, 19, 1]), "the rowid alias is stored as NULL");
        assert!(!t.fits(&[0, 1, 1]), "TEXT affinity never stores an integer");
        assert!(!t.fits(&[0, 0, 1]), "NOT NULL");
        let w = &tables[1];
        assert!(w.without_rowid);
        assert_eq!(
            w.stored,
            vec![1, 0, 2],
            "primary key first in WITHOUT ROWID records"
        );
    }

    #[test]
    fn affinity_rules() {
        assert_eq!(Affinity::of("varchar(255)"), Affinity::Text);
        assert_eq!(Affinity::of("bigint"), Affinity::Integer);
        assert_eq!(Affinity::of("datetime"), Affinity::Numeric);
        assert_eq!(Affinity::of(""), Affinity::Blob);
        assert_eq!(Affinity::of("double precision"), Affinity::Real);
    }
}
