//! The INSERT statements of the load and the values bound to them: text as UTF-8 where it has
//! a UTF-8 form, as bytes cast to TEXT where it has none.

use super::{ident, BATCH_ROWS, MAX_PARAMS};
use crate::engine::schema::Table;
use crate::format::record::{Field, Value};
use crate::format::TextEncoding;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::ToSql;
use std::borrow::Cow;

/// A field bound as an SQL parameter, text converted to UTF-8 when the source was UTF-16.
pub(super) struct Bind<'a>(pub(super) Value<'a>, pub(super) TextEncoding);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(i)),
            Value::Real(r) => ToSqlOutput::Borrowed(ValueRef::Real(r)),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Text(t) if !converts(self.1, t) => ToSqlOutput::Borrowed(ValueRef::Blob(t)),
            Value::Text(t) => match self.1.to_utf8(t) {
                Cow::Borrowed(b) => ToSqlOutput::Borrowed(ValueRef::Text(b)),
                Cow::Owned(v) => ToSqlOutput::Owned(rusqlite::types::Value::Text(
                    String::from_utf8(v).unwrap_or_default(),
                )),
            },
        })
    }
}

/// Whether stored text has a UTF-8 form SQLite turns back into the same bytes: always in a
/// UTF-8 database (the bytes are bound as they are, valid or not); in a UTF-16 one, unless a
/// surrogate is unpaired or a byte is left over.
pub(super) fn converts(encoding: TextEncoding, text: &[u8]) -> bool {
    let units = |c: &[u8]| match encoding {
        TextEncoding::Utf16be => u16::from_be_bytes([c[0], c[1]]),
        _ => u16::from_le_bytes([c[0], c[1]]),
    };
    encoding == TextEncoding::Utf8
        || (text.len() % 2 == 0
            && char::decode_utf16(text.chunks_exact(2).map(units)).all(|c| c.is_ok()))
}

/// Whether every text field of a record [`converts`].
pub(super) fn text_converts(encoding: TextEncoding, payload: &[u8], fields: &[Field]) -> bool {
    encoding == TextEncoding::Utf8
        || fields.iter().all(|f| match f.value(payload) {
            Value::Text(t) => converts(encoding, t),
            _ => true,
        })
}

/// The INSERT for the first `n` record fields of `table`.
pub(super) fn insert_sql(name: &str, table: &Table, n: usize) -> String {
    insert_sql_rows(name, table, n, 1)
}

/// Whether record field `i` is given to the INSERT (the rowid alias goes in as the rowid,
/// stored generated columns are computed by SQLite).
pub(super) fn is_inserted(table: &Table, i: usize) -> bool {
    let col = table.stored[i];
    Some(col) != table.ipk && table.columns[col].hidden != 3
}

/// Parameters one row of the first `n` record fields takes.
pub(super) fn params_per_row(table: &Table, n: usize) -> usize {
    usize::from(rowid_name(table).is_some()) + (0..n).filter(|&i| is_inserted(table, i)).count()
}

pub(super) fn batch_rows(table: &Table, n: usize) -> usize {
    (MAX_PARAMS / params_per_row(table, n).max(1)).clamp(1, BATCH_ROWS)
}

/// The INSERT of `rows` rows of the first `n` record fields of `table`.
pub(super) fn insert_sql_rows(name: &str, table: &Table, n: usize, rows: usize) -> String {
    let mut cols = Vec::new();
    cols.extend(rowid_name(table));
    for i in (0..n).filter(|&i| is_inserted(table, i)) {
        cols.push(ident(&table.columns[table.stored[i]].name));
    }
    let one = format!("({})", vec!["?"; cols.len()].join(", "));
    format!(
        "INSERT INTO {}({}) VALUES {}",
        ident(name),
        cols.join(", "),
        vec![one; rows].join(", ")
    )
}

/// The INSERT of one row whose text fields that do not [`converts`] are bound as blobs and
/// cast to TEXT, which SQLite takes as bytes in the database's encoding.
pub(super) fn insert_sql_raw(
    name: &str,
    table: &Table,
    n: usize,
    payload: &[u8],
    fields: &[Field],
) -> String {
    let mut cols = Vec::new();
    let mut marks = Vec::new();
    if let Some(rowid) = rowid_name(table) {
        cols.push(rowid);
        marks.push("?");
    }
    for (i, f) in fields.iter().enumerate().take(n) {
        if is_inserted(table, i) {
            cols.push(ident(&table.columns[table.stored[i]].name));
            marks.push(match f.value(payload) {
                Value::Text(_) => "CAST(? AS TEXT)",
                _ => "?",
            });
        }
    }
    format!(
        "INSERT INTO {}({}) VALUES ({})",
        ident(name),
        cols.join(", "),
        marks.join(", ")
    )
}

/// Binds one row's values starting at parameter `p`; returns the next free parameter.
#[allow(clippy::too_many_arguments)]
pub(super) fn bind_row(
    stmt: &mut rusqlite::Statement<'_>,
    mut p: usize,
    table: &Table,
    n: usize,
    rowid: Option<i64>,
    payload: &[u8],
    fields: &[Field],
    encoding: TextEncoding,
) -> rusqlite::Result<usize> {
    if rowid_name(table).is_some() {
        stmt.raw_bind_parameter(p, rowid)?;
        p += 1;
    }
    for (i, f) in fields.iter().take(n).enumerate() {
        if is_inserted(table, i) {
            stmt.raw_bind_parameter(p, Bind(f.value(payload), encoding))?;
            p += 1;
        }
    }
    Ok(p)
}

/// A name for the rowid that no column of the table shadows: `rowid`, `_rowid_` or `oid`,
/// else the INTEGER PRIMARY KEY column. `None` for a WITHOUT ROWID table, and for a table
/// whose columns are named all three and which has no INTEGER PRIMARY KEY: SQL cannot name
/// its rowid, so its rows are inserted without one (numbered afresh, in the source's order)
/// rather than one of its columns overwritten.
pub(crate) fn rowid_name(table: &Table) -> Option<String> {
    if table.without_rowid {
        return None;
    }
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|a| !table.columns.iter().any(|c| c.name.eq_ignore_ascii_case(a)))
        .map(str::to_string)
        .or_else(|| table.ipk.map(|c| ident(&table.columns[c].name)))
}

pub(super) fn same_value(have: ValueRef<'_>, want: Value<'_>, enc: TextEncoding) -> bool {
    match (have, want) {
        (ValueRef::Null, Value::Null) => true,
        (ValueRef::Integer(a), Value::Integer(b)) => a == b,
        (ValueRef::Real(a), Value::Real(b)) => a.to_bits() == b.to_bits(),
        // REAL columns store integral values as integers on disk.
        #[allow(clippy::cast_precision_loss, clippy::float_cmp)] // exact: compared as stored
        (ValueRef::Real(a), Value::Integer(b)) => a == b as f64,
        (ValueRef::Text(a), Value::Text(b)) => a == enc.to_utf8(b).as_ref(),
        (ValueRef::Blob(a), Value::Blob(b)) => a == b,
        _ => false,
    }
}
