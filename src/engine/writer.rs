//! The fresh database, written through the bundled SQLite: geometry set before the first
//! table, no sync and an in-memory journal while loading (the file is not the user's until
//! verified; the journal only serves to roll back a refused batch), the original CREATE
//! TABLE statements, one transaction, prepared inserts of batches of rows. A row SQLite refuses
//! (duplicate rowid, UNIQUE, NOT NULL) is never dropped: it goes to `rescue_conflicts` with
//! the reason.

use crate::engine::schema::Table;
use crate::error::{Error, Result};
use crate::format::record::{Field, Value};
use crate::format::TextEncoding;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

pub(crate) use crate::util::quote::ident;

/// Quotes an SQL string literal.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Settings carried over from the source file.
#[derive(Debug, Clone)]
pub(crate) struct OutputSettings {
    pub page_size: u32,
    pub encoding: TextEncoding,
    /// 0 none, 1 full, 2 incremental.
    pub auto_vacuum: u8,
    pub user_version: u32,
    pub application_id: u32,
    /// Bytes at the end of every page kept for an extension (a checksum, say).
    pub reserved_bytes: u8,
}

/// A field bound as an SQL parameter, text converted to UTF-8 when the source was UTF-16.
struct Bind<'a>(Value<'a>, TextEncoding);

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
fn converts(encoding: TextEncoding, text: &[u8]) -> bool {
    let units = |c: &[u8]| match encoding {
        TextEncoding::Utf16be => u16::from_be_bytes([c[0], c[1]]),
        _ => u16::from_le_bytes([c[0], c[1]]),
    };
    encoding == TextEncoding::Utf8
        || (text.len() % 2 == 0
            && char::decode_utf16(text.chunks_exact(2).map(units)).all(|c| c.is_ok()))
}

/// Whether every text field of a record [`converts`].
fn text_converts(encoding: TextEncoding, payload: &[u8], fields: &[Field]) -> bool {
    encoding == TextEncoding::Utf8
        || fields.iter().all(|f| match f.value(payload) {
            Value::Text(t) => converts(encoding, t),
            _ => true,
        })
}

/// The names of the tables the engine adds to the output beside the user's: the usual name
/// where the source has no object of that name, else the first free `name_N`. Recorded in the
/// report; only tables so named are the tool's own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SideNames {
    pub lost_and_found: String,
    pub conflicts: String,
    pub damaged_values: String,
    pub freelist_rows: String,
}

impl SideNames {
    /// Names free among `taken` (the source's schema objects, compared as SQLite compares
    /// names: ASCII case folded).
    pub(crate) fn free_in<'n>(taken: impl Iterator<Item = &'n str>) -> SideNames {
        let taken: std::collections::HashSet<String> =
            taken.map(|n| n.to_ascii_lowercase()).collect();
        let free = |base: &str| {
            std::iter::once(base.to_string())
                .chain((1u32..).map(|i| format!("{base}_{i}")))
                .find(|n| !taken.contains(&n.to_ascii_lowercase()))
                .unwrap_or_else(|| base.to_string())
        };
        SideNames {
            lost_and_found: free("lost_and_found"),
            conflicts: free("rescue_conflicts"),
            damaged_values: free("rescue_damaged_values"),
            freelist_rows: free("freelist_rows"),
        }
    }

    /// Whether `name` is one of these tables.
    pub(crate) fn contains(&self, name: &str) -> bool {
        [
            &self.lost_and_found,
            &self.conflicts,
            &self.damaged_values,
            &self.freelist_rows,
        ]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// A table of rows with a varying number of fields: fixed leading columns, then c0..cN,
/// widened with ALTER TABLE when a wider row arrives.
struct SideTable {
    name: String,
    lead: &'static str,
    lead_count: usize,
    width: Option<usize>,
}

impl SideTable {
    fn ensure(&mut self, conn: &Connection, fields: usize) -> rusqlite::Result<()> {
        match self.width {
            None => {
                let cols: Vec<String> = (0..fields).map(|i| format!(", c{i}")).collect();
                conn.execute_batch(&format!(
                    "CREATE TABLE {}({}{})",
                    ident(&self.name),
                    self.lead,
                    cols.concat()
                ))?;
                self.width = Some(fields);
            }
            Some(w) if w < fields => {
                for i in w..fields {
                    conn.execute_batch(&format!(
                        "ALTER TABLE {} ADD COLUMN c{i}",
                        ident(&self.name)
                    ))?;
                }
                self.width = Some(fields);
            }
            Some(_) => {}
        }
        Ok(())
    }

    fn insert(
        &mut self,
        conn: &Connection,
        lead: &[&dyn ToSql],
        payload: &[u8],
        fields: &[Field],
        encoding: TextEncoding,
    ) -> rusqlite::Result<()> {
        self.ensure(conn, fields.len())?;
        let params: Vec<String> = (1..=self.lead_count + fields.len())
            .map(|i| format!("?{i}"))
            .collect();
        let cols: Vec<String> = (0..fields.len()).map(|i| format!(", c{i}")).collect();
        let lead_names: Vec<&str> = self
            .lead
            .split(',')
            .map(|c| c.split_whitespace().next().unwrap_or(""))
            .collect();
        let sql = format!(
            "INSERT INTO {}({}{}) VALUES ({})",
            ident(&self.name),
            lead_names.join(", "),
            cols.concat(),
            params.join(", ")
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        for (i, p) in lead.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, p)?;
        }
        for (i, f) in fields.iter().enumerate() {
            stmt.raw_bind_parameter(self.lead_count + i + 1, Bind(f.value(payload), encoding))?;
        }
        stmt.raw_execute()?;
        Ok(())
    }
}

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
const BATCH_ROWS: usize = 16;
const MAX_PARAMS: usize = 32766;

pub(crate) struct Writer<'c> {
    conn: &'c Connection,
    path: PathBuf,
    encoding: TextEncoding,
    tables: Vec<TableWriter<'c>>,
    lost_and_found: SideTable,
    conflicts: SideTable,
    damaged: SideTable,
    freelist: SideTable,
}

/// Where a row that is not a clean insert went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Landed {
    InPlace,
    Conflict,
}

/// Creates the database at `path` (which must not exist) with the source's settings, opened
/// as [`open_for_load`] opens it.
pub(crate) fn create_database(path: &Path, settings: &OutputSettings) -> Result<Connection> {
    let conn = open_for_load(path)?;
    let sql = |e| Error::sqlite(path, e);
    conn.execute_batch(&format!(
        "PRAGMA page_size = {}; PRAGMA encoding = '{}'; PRAGMA auto_vacuum = {};",
        settings.page_size,
        settings.encoding.pragma_name(),
        settings.auto_vacuum,
    ))
    .map_err(sql)?;
    // Before the first write: the reserve is fixed when page 1 is.
    if settings.reserved_bytes > 0 {
        set_reserved_bytes(&conn, settings.reserved_bytes).map_err(sql)?;
    }
    conn.execute_batch(&format!(
        "PRAGMA user_version = {}; PRAGMA application_id = {};",
        settings.user_version as i32, settings.application_id as i32,
    ))
    .map_err(sql)?;
    Ok(conn)
}

/// Sets the bytes reserved at the end of every page of a database not yet written.
fn set_reserved_bytes(conn: &Connection, bytes: u8) -> rusqlite::Result<()> {
    let mut value = std::ffi::c_int::from(bytes);
    // SAFETY: the handle is this open connection's and is used only for this call; the schema
    // name is a NUL-terminated literal; SQLITE_FCNTL_RESERVE_BYTES reads and writes one int
    // through the pointer, which outlives the call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_RESERVE_BYTES,
            (&mut value as *mut std::ffi::c_int).cast(),
        )
    };
    match rc {
        rusqlite::ffi::SQLITE_OK => Ok(()),
        code => Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            Some(format!("cannot reserve {bytes} bytes per page")),
        )),
    }
}

/// The header settings of the finished output at `out` that differ from the source's
/// (`source`, page 1 as SQLite reads it), each as "setting: source X, recovered Y": what
/// SQLite could not carry over (a schema format number it no longer writes, say).
pub(crate) fn settings_not_kept(source: &crate::format::header::Header, out: &Path) -> Vec<String> {
    use std::io::Read;
    let mut head = [0u8; crate::format::header::HEADER_SIZE];
    let read = std::fs::File::open(out).and_then(|mut f| f.read_exact(&mut head));
    let Ok(()) = read else {
        return Vec::new();
    };
    let Ok(o) = crate::format::header::Header::parse(&head) else {
        return Vec::new();
    };
    let av = |h: &crate::format::header::Header| match (h.largest_root_page, h.incremental_vacuum) {
        (0, _) => 0,
        (_, 0) => 1,
        _ => 2,
    };
    [
        ("page size", source.page_size, o.page_size),
        (
            "text encoding",
            source.text_encoding_code,
            o.text_encoding_code,
        ),
        (
            "reserved bytes per page",
            source.reserved_bytes.into(),
            o.reserved_bytes.into(),
        ),
        (
            "schema format number",
            source.schema_format,
            o.schema_format,
        ),
        ("user_version", source.user_version, o.user_version),
        ("application_id", source.application_id, o.application_id),
        ("auto_vacuum", av(source), av(&o)),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .map(|(name, a, b)| format!("{name}: source {a}, recovered {b}"))
    .collect()
}

/// Opens the output to load rows into: no journal on disk and no sync (the file is synced
/// once, complete), and an exclusive lock.
///
/// Foreign keys are not enforced while it is written (this SQLite enforces them by default):
/// a row whose parent is missing, because the source held it so or because the parent was
/// lost, belongs in its own table all the same, and the check afterwards counts it. Enforced,
/// they would also turn SQLite's transfer off for every table with a foreign key.
pub(crate) fn open_for_load(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| Error::sqlite(path, e))?;
    conn.execute_batch(
        "PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; PRAGMA cache_size = -32768;
         PRAGMA locking_mode = EXCLUSIVE; PRAGMA foreign_keys = OFF;",
    )
    .map_err(|e| Error::sqlite(path, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Drops `tables` (and with them their indexes and triggers).
pub(crate) fn drop_tables<'n>(
    conn: &Connection,
    path: &Path,
    tables: impl Iterator<Item = &'n str>,
) -> Result<()> {
    for_each_name(conn, path, tables, "DROP TABLE ", "dropping table")
}

/// Builds every index of `tables` (or the indexes named) again from the rows.
pub(crate) fn reindex<'n>(
    conn: &Connection,
    path: &Path,
    tables: impl Iterator<Item = &'n str>,
) -> Result<()> {
    for_each_name(
        conn,
        path,
        tables,
        "REINDEX main.",
        "building the indexes of",
    )
}

/// Runs `statement` followed by each quoted name.
fn for_each_name<'n>(
    conn: &Connection,
    path: &Path,
    names: impl Iterator<Item = &'n str>,
    statement: &str,
    doing: &str,
) -> Result<()> {
    for name in names {
        conn.execute_batch(&format!("{statement}{}", ident(name)))
            .map_err(|e| Error::sqlite(path, format!("{doing} {name}: {e}")))?;
    }
    Ok(())
}

/// Drops every trigger of a database copied whole, so that rows added to its tables later
/// (from orphan pages) fire none; they are created again with the other objects.
pub(crate) fn drop_triggers(conn: &Connection, path: &Path) -> Result<()> {
    let sql = |e| Error::sqlite(path, e);
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'")
        .map_err(sql)?
        .query_map([], |r| r.get(0))
        .map_err(sql)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sql)?;
    for_each_name(
        conn,
        path,
        names.iter().map(String::as_str),
        "DROP TRIGGER ",
        "dropping trigger",
    )
}

/// Puts the source's query-planner statistics tables (`tables`, e.g. `sqlite_stat1`) and
/// their rows into the finished database. `ANALYZE sqlite_schema` creates the tables this
/// SQLite keeps without gathering anything; those the source did not have are dropped again.
/// Statistics only steer the planner, so if they cannot be written they are left out.
pub(crate) fn restore_planner_stats(
    conn: &Connection,
    tables: &[&str],
    rows: &[(String, Vec<rusqlite::types::Value>)],
) {
    if tables.is_empty() {
        return;
    }
    let restore = || -> rusqlite::Result<()> {
        conn.execute_batch("BEGIN; ANALYZE sqlite_schema;")?;
        let made: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE name LIKE 'sqlite\\_stat%' ESCAPE '\\'")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for extra in made.iter().filter(|m| !tables.contains(&m.as_str())) {
            conn.execute_batch(&format!("DROP TABLE {}", ident(extra)))?;
        }
        for (table, values) in rows {
            let marks = vec!["?"; values.len()].join(", ");
            conn.prepare_cached(&format!("INSERT INTO {} VALUES ({marks})", ident(table)))?
                .execute(rusqlite::params_from_iter(values))?;
        }
        conn.execute_batch("COMMIT")
    };
    if restore().is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// Opens the load transaction and creates the given tables.
pub(crate) fn begin_load<'t>(
    conn: &Connection,
    path: &Path,
    tables: impl Iterator<Item = &'t Table>,
) -> Result<()> {
    conn.execute_batch("BEGIN")
        .map_err(|e| Error::sqlite(path, e))?;
    for t in tables.filter(|t| !t.internal) {
        create_table(conn, t.sql.as_deref().unwrap_or_default(), &t.name)
            .map_err(|e| Error::sqlite(path, format!("creating table {}: {e}", t.name)))?;
    }
    Ok(())
}

/// Runs a table's CREATE statement. A legacy table named `sqlite_*` (older SQLite let
/// applications create them) is created with the schema writable, the only way SQLite
/// allows the name now.
pub(crate) fn create_table(conn: &Connection, sql: &str, name: &str) -> rusqlite::Result<()> {
    let reserved = name
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("sqlite_"));
    if !reserved {
        return conn.execute_batch(sql);
    }
    conn.execute_batch("PRAGMA writable_schema = ON")?;
    let created = conn.execute_batch(sql);
    conn.execute_batch("PRAGMA writable_schema = OFF")?;
    created
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
                let lead: [&dyn ToSql; 5] =
                    [&table.name, &reason, &page, &(fields.len() as i64), &rowid];
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
        let lead: [&dyn ToSql; 4] = [&rootpgno, &page, &(fields.len() as i64), &rowid];
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
        let lead: [&dyn ToSql; 3] = [&page, &(fields.len() as i64), &rowid];
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
        let lead: [&dyn ToSql; 6] = [&table, &rowid, &(field as i64), &reason, &page, &prefix];
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

    /// Raises `sqlite_sequence` to at least the source's values.
    pub(crate) fn merge_sequence(&self, name: &str, seq: i64) -> Result<()> {
        let exists: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self.err(e))?
            > 0;
        if !exists {
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

    /// Removes the rows of `sqlite_sequence` for tables other than `names` (the source's).
    pub(crate) fn keep_sequences_of<'n>(&self, names: impl Iterator<Item = &'n str>) -> Result<()> {
        let keep: std::collections::HashSet<&str> = names.collect();
        let have: Vec<String> = self
            .conn
            .prepare("SELECT name FROM sqlite_sequence")
            .and_then(|mut stmt| {
                stmt.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .unwrap_or_default();
        for name in have.iter().filter(|n| !keep.contains(n.as_str())) {
            self.conn
                .execute("DELETE FROM sqlite_sequence WHERE name = ?1", [name])
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

/// The INSERT for the first `n` record fields of `table`.
fn insert_sql(name: &str, table: &Table, n: usize) -> String {
    insert_sql_rows(name, table, n, 1)
}

/// Whether record field `i` is given to the INSERT (the rowid alias goes in as the rowid,
/// stored generated columns are computed by SQLite).
fn is_inserted(table: &Table, i: usize) -> bool {
    let col = table.stored[i];
    Some(col) != table.ipk && table.columns[col].hidden != 3
}

/// Parameters one row of the first `n` record fields takes.
fn params_per_row(table: &Table, n: usize) -> usize {
    usize::from(rowid_name(table).is_some()) + (0..n).filter(|&i| is_inserted(table, i)).count()
}

fn batch_rows(table: &Table, n: usize) -> usize {
    (MAX_PARAMS / params_per_row(table, n).max(1)).clamp(1, BATCH_ROWS)
}

/// The INSERT of `rows` rows of the first `n` record fields of `table`.
fn insert_sql_rows(name: &str, table: &Table, n: usize, rows: usize) -> String {
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
fn insert_sql_raw(name: &str, table: &Table, n: usize, payload: &[u8], fields: &[Field]) -> String {
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
fn bind_row(
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

fn same_value(have: ValueRef<'_>, want: Value<'_>, enc: TextEncoding) -> bool {
    match (have, want) {
        (ValueRef::Null, Value::Null) => true,
        (ValueRef::Integer(a), Value::Integer(b)) => a == b,
        (ValueRef::Real(a), Value::Real(b)) => a.to_bits() == b.to_bits(),
        // REAL columns store integral values as integers on disk.
        (ValueRef::Real(a), Value::Integer(b)) => a == b as f64,
        (ValueRef::Text(a), Value::Text(b)) => a == enc.to_utf8(b).as_ref(),
        (ValueRef::Blob(a), Value::Blob(b)) => a == b,
        _ => false,
    }
}
