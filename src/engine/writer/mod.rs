//! The fresh database, written through the bundled SQLite: geometry set before the first
//! table, no sync and an in-memory journal while loading (the file is not the user's until
//! verified; the journal only serves to roll back a refused batch), the original CREATE
//! TABLE statements, one transaction, prepared inserts of batches of rows. A row SQLite refuses
//! (duplicate rowid, UNIQUE, NOT NULL) is never dropped: it goes to `rescue_conflicts` with
//! the reason.

use crate::engine::schema::Table;
use crate::error::{Error, Result};
use crate::format::record::Field;
use crate::format::TextEncoding;
use rusqlite::{Connection, ToSql};
use std::path::{Path, PathBuf};

mod defaults;
mod kept_index;
mod setup;
mod side;
mod sql;

pub(crate) use kept_index::{keep_source_index, SourceIndex};

pub(crate) use setup::*;
pub(crate) use side::AlteredRecords;
pub use side::SideNames;
use side::SideTable;
pub(crate) use sql::rowid_name;
use sql::*;

pub(crate) use crate::util::quote::ident;

/// Insert statements of one table, one per number of record fields (a record written before
/// an ALTER TABLE ADD COLUMN has fewer fields; the missing ones take their defaults).
struct TableWriter<'c> {
    name: String,
    /// Prepared INSERTs by number of record fields, held for the whole load: no per-row
    /// statement-cache lookups.
    by_fields: Vec<Option<rusqlite::Statement<'c>>>,
    /// The same, inserting a whole batch of rows in one statement.
    batch_by_fields: Vec<Option<rusqlite::Statement<'c>>>,
    pending: Pending,
    counts: RowCounts,
}

/// Rows in place and rows refused (kept in `rescue_conflicts`) so far, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RowCounts {
    pub in_place: u64,
    pub conflicts: u64,
}

/// Rows waiting to be inserted together, copied out of their pages (the pages are gone by
/// the time the batch runs). A batch SQLite refuses is rolled back whole (the journal is in
/// memory) and its rows inserted one by one, so a conflicting row is still caught alone.
#[derive(Default)]
struct Pending {
    fields_used: usize,
    payload: Vec<u8>,
    fields: Vec<Field>,
    rows: Vec<PendingRow>,
}

struct PendingRow {
    rowid: Option<i64>,
    page: u32,
    payload: std::ops::Range<usize>,
    fields: std::ops::Range<usize>,
}

/// Rows per batched INSERT (fewer when a row has many columns: SQLite's parameter limit).
pub(super) const BATCH_ROWS: usize = 16;
pub(super) const MAX_PARAMS: usize = 32766;

pub(crate) struct Writer<'c> {
    conn: &'c Connection,
    path: PathBuf,
    encoding: TextEncoding,
    tables: Vec<TableWriter<'c>>,
    lost_and_found: SideTable,
    conflicts: SideTable,
    damaged: SideTable,
    freelist: SideTable,
    /// Per table, what SQLite reads for the columns a short row lacks (see `defaults`),
    /// learned at its first short row.
    defaults: std::collections::HashMap<usize, Option<Vec<rusqlite::types::Value>>>,
}

/// Where a row that is not a clean insert went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Landed {
    InPlace,
    Conflict,
}

impl<'c> Writer<'c> {
    /// Writes rows into `conn` (made by [`create_database`]) for the given tables.
    pub(crate) fn new(
        conn: &'c Connection,
        path: &Path,
        encoding: TextEncoding,
        tables: &[Table],
        side: &SideNames,
    ) -> Writer<'c> {
        Writer {
            conn,
            path: path.to_path_buf(),
            encoding,
            tables: tables
                .iter()
                .map(|t| TableWriter {
                    name: t.name.clone(),
                    by_fields: Vec::new(),
                    batch_by_fields: Vec::new(),
                    pending: Pending::default(),
                    counts: RowCounts::default(),
                })
                .collect(),
            lost_and_found: SideTable {
                name: side.lost_and_found.clone(),
                lead: "rootpgno INTEGER, pgno INTEGER, nfield INTEGER, id INTEGER",
                lead_count: 4,
                width: None,
            },
            conflicts: SideTable {
                name: side.conflicts.clone(),
                lead: "tbl TEXT, reason TEXT, pgno INTEGER, nfield INTEGER, id INTEGER",
                lead_count: 5,
                width: None,
            },
            damaged: SideTable {
                name: side.damaged_values.clone(),
                lead: "tbl TEXT, id INTEGER, field INTEGER, reason TEXT, pgno INTEGER, prefix BLOB",
                lead_count: 6,
                width: None,
            },
            freelist: SideTable {
                name: side.freelist_rows.clone(),
                lead: "pgno INTEGER, nfield INTEGER, id INTEGER",
                lead_count: 3,
                width: None,
            },
            defaults: std::collections::HashMap::new(),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::sqlite(&self.path, e)
    }

    /// Queues a row for table `t` (index into the tables given to `create`). Rows are
    /// inserted in batches; [`Writer::flush`] inserts what is queued, and [`Writer::counts`]
    /// then says how many landed in place and how many were refused.
    pub(crate) fn insert_row(
        &mut self,
        t: usize,
        table: &Table,
        rowid: Option<i64>,
        payload: &[u8],
        fields: &[Field],
        page: u32,
    ) -> Result<()> {
        if fields.len() < table.stored.len() {
            let encoding = self.encoding;
            let defaults = self
                .defaults
                .entry(t)
                .or_insert_with(|| defaults::read_as_defaults(table));
            if let Some((bytes, whole)) = defaults
                .as_deref()
                .and_then(|d| defaults::complete_row(payload, fields, d, encoding))
            {
                return self.insert_row(t, table, rowid, &bytes, &whole, page);
            }
        }
        let table = table.loaded_as();
        let n = fields.len().min(table.stored.len());
        if !text_converts(self.encoding, payload, fields) {
            // Text that is not valid UTF-16 has no UTF-8 form to bind: it goes in on its own,
            // as bytes SQLite takes in the database's encoding.
            self.flush(t, table)?;
            let landed = self.insert_one(t, table, rowid, payload, fields, page)?;
            match landed {
                Landed::InPlace => self.tables[t].counts.in_place += 1,
                Landed::Conflict => self.tables[t].counts.conflicts += 1,
            }
            return Ok(());
        }
        let pending = &self.tables[t].pending;
        if !pending.rows.is_empty() && pending.fields_used != n {
            self.flush(t, table)?;
        }
        let pending = &mut self.tables[t].pending;
        pending.fields_used = n;
        let p0 = pending.payload.len();
        pending.payload.extend_from_slice(payload);
        let f0 = pending.fields.len();
        pending.fields.extend_from_slice(fields);
        pending.rows.push(PendingRow {
            rowid,
            page,
            payload: p0..pending.payload.len(),
            fields: f0..pending.fields.len(),
        });
        if pending.rows.len() >= batch_rows(table, n) {
            self.flush(t, table)?;
        }
        Ok(())
    }

    /// Rows of table `t` in place and refused so far (flush first).
    pub(crate) fn counts(&self, t: usize) -> RowCounts {
        self.tables[t].counts
    }

    /// Inserts every queued row of every table.
    pub(crate) fn flush_all(&mut self, tables: &[Table]) -> Result<()> {
        for (t, table) in tables.iter().enumerate() {
            self.flush(t, table)?;
        }
        Ok(())
    }

    /// Inserts the queued rows of table `t`: one statement for a full batch, one per row for
    /// a partial batch or when the batch is refused.
    pub(crate) fn flush(&mut self, t: usize, table: &Table) -> Result<()> {
        let table = table.loaded_as();
        let mut pending = std::mem::take(&mut self.tables[t].pending);
        let result = self.flush_pending(t, table, &pending);
        pending.payload.clear();
        pending.fields.clear();
        pending.rows.clear();
        self.tables[t].pending = pending;
        result
    }

    fn flush_pending(&mut self, t: usize, table: &Table, pending: &Pending) -> Result<()> {
        let n = pending.fields_used;
        if pending.rows.is_empty() {
            return Ok(());
        }
        if pending.rows.len() == batch_rows(table, n) && pending.rows.len() > 1 {
            match self.execute_batch(t, table, pending) {
                Ok(()) => {
                    self.tables[t].counts.in_place += pending.rows.len() as u64;
                    return Ok(());
                }
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        for row in &pending.rows {
            let payload = &pending.payload[row.payload.clone()];
            let fields = &pending.fields[row.fields.clone()];
            match self.insert_one(t, table, row.rowid, payload, fields, row.page)? {
                Landed::InPlace => self.tables[t].counts.in_place += 1,
                Landed::Conflict => self.tables[t].counts.conflicts += 1,
            }
        }
        Ok(())
    }

    fn execute_batch(
        &mut self,
        t: usize,
        table: &Table,
        pending: &Pending,
    ) -> rusqlite::Result<()> {
        let n = pending.fields_used;
        let encoding = self.encoding;
        let tw = &mut self.tables[t];
        if tw.batch_by_fields.len() <= n {
            tw.batch_by_fields.resize_with(n + 1, || None);
        }
        let stmt = match &mut tw.batch_by_fields[n] {
            Some(stmt) => stmt,
            slot => {
                let sql = insert_sql_rows(&tw.name, table, n, pending.rows.len());
                slot.insert(self.conn.prepare(&sql)?)
            }
        };
        let mut p = 1;
        for row in &pending.rows {
            let payload = &pending.payload[row.payload.clone()];
            let fields = &pending.fields[row.fields.clone()];
            p = bind_row(stmt, p, table, n, row.rowid, payload, fields, encoding)?;
        }
        stmt.raw_execute()?;
        Ok(())
    }

    /// Inserts one row now; a row SQLite refuses goes to `rescue_conflicts`.
    fn insert_one(
        &mut self,
        t: usize,
        table: &Table,
        rowid: Option<i64>,
        payload: &[u8],
        fields: &[Field],
        page: u32,
    ) -> Result<Landed> {
        let n = fields.len().min(table.stored.len());
        let encoding = self.encoding;
        let result = self.execute_insert(t, table, n, rowid, payload, fields);
        match result {
            Ok(()) => Ok(Landed::InPlace),
            Err(rusqlite::Error::SqliteFailure(e, msg))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                let reason = msg.unwrap_or_else(|| e.to_string());
                let lead: [&dyn ToSql; 5] = [
                    &table.name,
                    &reason,
                    &page,
                    &i64::try_from(fields.len()).unwrap_or(i64::MAX),
                    &rowid,
                ];
                side_insert(
                    self.conn,
                    &self.path,
                    encoding,
                    &mut self.conflicts,
                    &lead,
                    payload,
                    fields,
                )?;
                Ok(Landed::Conflict)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    fn execute_insert(
        &mut self,
        t: usize,
        table: &Table,
        n: usize,
        rowid: Option<i64>,
        payload: &[u8],
        fields: &[Field],
    ) -> rusqlite::Result<()> {
        let encoding = self.encoding;
        if !text_converts(encoding, payload, fields) {
            let sql = insert_sql_raw(&self.tables[t].name, table, n, payload, fields);
            let mut stmt = self.conn.prepare_cached(&sql)?;
            bind_row(&mut stmt, 1, table, n, rowid, payload, fields, encoding)?;
            stmt.raw_execute()?;
            return Ok(());
        }
        let tw = &mut self.tables[t];
        if tw.by_fields.len() <= n {
            tw.by_fields.resize_with(n + 1, || None);
        }
        let stmt = match &mut tw.by_fields[n] {
            Some(stmt) => stmt,
            slot => slot.insert(self.conn.prepare(&insert_sql(&tw.name, table, n))?),
        };
        bind_row(stmt, 1, table, n, rowid, payload, fields, encoding)?;
        stmt.raw_execute()?;
        Ok(())
    }

    /// A row whose table is unknown, as SQLite's own recovery lays it out.
    pub(crate) fn lost_and_found(
        &mut self,
        rootpgno: Option<u32>,
        page: u32,
        rowid: Option<i64>,
        payload: &[u8],
        fields: &[Field],
    ) -> Result<()> {
        let lead: [&dyn ToSql; 4] = [
            &rootpgno,
            &page,
            &i64::try_from(fields.len()).unwrap_or(i64::MAX),
            &rowid,
        ];
        side_insert(
            self.conn,
            &self.path,
            self.encoding,
            &mut self.lost_and_found,
            &lead,
            payload,
            fields,
        )
    }

    /// A deleted row found on a free page (only with --include-freelist).
    pub(crate) fn freelist_row(
        &mut self,
        page: u32,
        rowid: Option<i64>,
        payload: &[u8],
        fields: &[Field],
    ) -> Result<()> {
        let lead: [&dyn ToSql; 3] = [
            &page,
            &i64::try_from(fields.len()).unwrap_or(i64::MAX),
            &rowid,
        ];
        side_insert(
            self.conn,
            &self.path,
            self.encoding,
            &mut self.freelist,
            &lead,
            payload,
            fields,
        )
    }

    /// Notes a value that could not be read whole (a broken overflow chain): the row went in
    /// with that field NULL, and its readable prefix is kept here.
    pub(crate) fn damaged_value(
        &mut self,
        table: &str,
        rowid: Option<i64>,
        field: usize,
        reason: &str,
        page: Option<u32>,
        prefix: &[u8],
    ) -> Result<()> {
        let lead: [&dyn ToSql; 6] = [
            &table,
            &rowid,
            &i64::try_from(field).unwrap_or(i64::MAX),
            &reason,
            &page,
            &prefix,
        ];
        side_insert(
            self.conn,
            &self.path,
            self.encoding,
            &mut self.damaged,
            &lead,
            &[],
            &[],
        )
    }

    /// Whether `rowid` is already in table `t` with exactly these values.
    pub(crate) fn has_identical_row(
        &self,
        table: &Table,
        rowid: i64,
        payload: &[u8],
        fields: &[Field],
    ) -> Result<bool> {
        let table = table.loaded_as();
        let cols: Vec<String> = table
            .stored
            .iter()
            .map(|&c| {
                if Some(c) == table.ipk {
                    "NULL".to_string()
                } else {
                    ident(&table.columns[c].name)
                }
            })
            .collect();
        let Some(rowid_name) = rowid_name(table) else {
            return Ok(false);
        };
        let sql = format!(
            "SELECT {} FROM {} WHERE {rowid_name} = ?1",
            cols.join(", "),
            ident(&table.name),
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([rowid]).map_err(|e| self.err(e))?;
        let Some(row) = rows.next().map_err(|e| self.err(e))? else {
            return Ok(false);
        };
        for (i, f) in fields.iter().enumerate() {
            let Ok(have) = row.get_ref(i) else {
                return Ok(false);
            };
            if !same_value(have, f.value(payload), self.encoding) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn has_sequence_table(&self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Raises `sqlite_sequence` to at least the source's values.
    pub(crate) fn merge_sequence(&self, name: &str, seq: i64) -> Result<()> {
        if !self.has_sequence_table()? {
            return Ok(());
        }
        let updated = self
            .conn
            .execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1",
                rusqlite::params![name, seq],
            )
            .map_err(|e| self.err(e))?;
        if updated == 0 {
            self.conn
                .execute(
                    "INSERT INTO sqlite_sequence(name, seq) VALUES (?1, ?2)",
                    rusqlite::params![name, seq],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Makes `sqlite_sequence` hold exactly `rows` (rowid, name, seq), the source's.
    pub(crate) fn replace_sequence(&self, rows: &[(Option<i64>, String, i64)]) -> Result<()> {
        if !self.has_sequence_table()? {
            return Ok(());
        }
        self.conn
            .execute("DELETE FROM sqlite_sequence", [])
            .map_err(|e| self.err(e))?;
        let mut insert = self
            .conn
            .prepare("INSERT INTO sqlite_sequence(rowid, name, seq) VALUES (?1, ?2, ?3)")
            .map_err(|e| self.err(e))?;
        for (rowid, name, seq) in rows {
            insert
                .execute(rusqlite::params![rowid, name, seq])
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Ends the load transaction.
    pub(crate) fn commit(&self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }
}

/// One row into a side table (lost_and_found, freelist_rows, rescue_damaged_values).
fn side_insert(
    conn: &Connection,
    path: &Path,
    encoding: TextEncoding,
    table: &mut SideTable,
    lead: &[&dyn ToSql],
    payload: &[u8],
    fields: &[Field],
) -> Result<()> {
    table
        .insert(conn, lead, payload, fields, encoding)
        .map_err(|e| Error::sqlite(path, e))
}
