//! Rows written before an `ALTER TABLE ADD COLUMN` are short: SQLite reads each missing
//! column as its default, worked out when it reads the row. Inserting the row without those
//! columns would have SQLite work the default out as an INSERT does, which can differ (a
//! `TEXT DEFAULT -0.0` reads as '-0.0' and inserts as '0.0'). So the writer gives a short row
//! the values SQLite reads, learned from a scratch database that holds a short row of the
//! table itself.

use crate::engine::schema::Table;
use crate::format::record::Field;
use crate::format::TextEncoding;
use crate::util::quote::ident;
use rusqlite::types::Value;
use rusqlite::Connection;

/// What SQLite reads for each stored field of a row of `table` whose record holds one field
/// only; `None` when a scratch database cannot hold such a row (a WITHOUT ROWID table, whose
/// tree a rowid table's row cannot stand in, or a definition the scratch cannot read).
pub(crate) fn read_as_defaults(table: &Table) -> Option<Vec<Value>> {
    if table.without_rowid {
        return None;
    }
    let sql = table.sql.as_deref()?;
    let conn = Connection::open_in_memory().ok()?;
    conn.execute_batch("CREATE TABLE scratch(a); INSERT INTO scratch VALUES (NULL);")
        .ok()?;
    // The scratch table's one-field row, under the table's own definition.
    super::setup::edit_schema(&conn, || {
        conn.execute(
            "UPDATE sqlite_schema SET name = ?1, tbl_name = ?1, sql = ?2 WHERE name = 'scratch'",
            [&table.name, sql],
        )
        .map(|_| ())
    })
    .ok()?;
    let columns: Vec<String> = table
        .stored
        .iter()
        .map(|&c| table.columns.get(c).map(|c| ident(&c.name)))
        .collect::<Option<_>>()?;
    let select = format!("SELECT {} FROM {}", columns.join(", "), ident(&table.name));
    conn.query_row(&select, [], |r| {
        (0..columns.len()).map(|i| r.get::<_, Value>(i)).collect()
    })
    .ok()
}

/// `payload` and `fields` of a short row, made whole: the fields from `fields.len()` on take
/// `defaults`, their bytes (text in `encoding`) appended to the payload.
pub(crate) fn complete_row(
    payload: &[u8],
    fields: &[Field],
    defaults: &[Value],
    encoding: TextEncoding,
) -> Option<(Vec<u8>, Vec<Field>)> {
    let mut bytes = payload.to_vec();
    let mut whole = fields.to_vec();
    for value in defaults.get(fields.len()..)? {
        let mut span = |data: &[u8]| -> Option<(u32, u32)> {
            let start = u32::try_from(bytes.len()).ok()?;
            bytes.extend_from_slice(data);
            Some((start, u32::try_from(data.len()).ok()?))
        };
        whole.push(match value {
            Value::Null => Field::Null,
            Value::Integer(i) => Field::Integer(*i),
            Value::Real(r) => Field::Real(*r),
            Value::Text(t) => {
                let (start, len) = span(&encoding.from_utf8(t))?;
                Field::Text { start, len }
            }
            Value::Blob(b) => {
                let (start, len) = span(b)?;
                Field::Blob { start, len }
            }
        });
    }
    Some((bytes, whole))
}
