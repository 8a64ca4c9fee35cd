//! The record of a fill in the recovered database: one side table naming every filled row
//! (which backup, its SHA-256, as of when), one keeping the backup rows that could not go in
//! because a surviving row holds their key.

use crate::engine::report::MatchedBy;
use crate::util::quote::ident;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection};

/// Which row: its rowid, or (WITHOUT ROWID) its primary key as a JSON array.
#[derive(Clone, Copy)]
pub(super) enum RowKey<'a> {
    Rowid(i64),
    Key(&'a str),
}

impl RowKey<'_> {
    fn columns(self) -> (Option<i64>, Option<String>) {
        match self {
            RowKey::Rowid(r) => (Some(r), None),
            RowKey::Key(k) => (None, Some(k.to_string())),
        }
    }
}

/// Where a row came from, as the side tables record it.
pub(super) struct Origin<'a> {
    pub(super) backup: &'a str,
    pub(super) sha256: &'a str,
    pub(super) date: &'a str,
}

pub(super) struct Recorder<'a> {
    pub(super) filled: &'a str,
    pub(super) collisions: &'a str,
}

impl Recorder<'_> {
    /// Creates the two tables (names free in the source, see `SideNames`).
    pub(super) fn create(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {}(table_name TEXT, row_id INTEGER, key TEXT, \
             matched_by TEXT, backup TEXT, backup_sha256 TEXT, backup_date TEXT);
             CREATE TABLE IF NOT EXISTS {}(table_name TEXT, row_id INTEGER, key TEXT, \
             reason TEXT, backup TEXT, backup_sha256 TEXT, backup_date TEXT, row TEXT);",
            ident(self.filled),
            ident(self.collisions)
        ))
    }

    pub(super) fn filled(
        &self,
        conn: &Connection,
        table: &str,
        row: RowKey<'_>,
        how: MatchedBy,
        from: &Origin<'_>,
    ) -> rusqlite::Result<()> {
        let sql = format!(
            "INSERT INTO {} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            ident(self.filled)
        );
        let (rowid, key) = row.columns();
        conn.prepare_cached(&sql)?.execute(params![
            table,
            rowid,
            key,
            how.as_str(),
            from.backup,
            from.sha256,
            from.date
        ])?;
        Ok(())
    }

    /// Keeps a backup row that was not inserted, whole, as a JSON object of its columns.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn collided(
        &self,
        conn: &Connection,
        table: &str,
        row: RowKey<'_>,
        reason: &str,
        names: &[String],
        values: &[Value],
        from: &Origin<'_>,
    ) -> rusqlite::Result<()> {
        let whole: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(values)
            .map(|(n, v)| (n.clone(), json_value(v.into())))
            .collect();
        let sql = format!(
            "INSERT INTO {} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            ident(self.collisions)
        );
        let (rowid, key) = row.columns();
        conn.prepare_cached(&sql)?.execute(params![
            table,
            rowid,
            key,
            reason,
            from.backup,
            from.sha256,
            from.date,
            serde_json::Value::Object(whole).to_string()
        ])?;
        Ok(())
    }
}

/// A value as the lost-values evidence writes it: a number, a string, `{"blob": HEX}`, null.
pub(super) fn json_value(v: ValueRef<'_>) -> serde_json::Value {
    match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(r) => {
            serde_json::Number::from_f64(r).map_or(serde_json::Value::Null, Into::into)
        }
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(b) => serde_json::json!({ "blob": hex::encode(b) }),
    }
}

/// The application's triggers, dropped while rows are filled (a filled row is a row that
/// existed, not a new write: no audit row, no `updated_at` bump) and created again after,
/// all in the caller's transaction.
pub(super) struct Triggers(Vec<(String, String)>);

impl Triggers {
    pub(super) fn drop_all(conn: &Connection) -> rusqlite::Result<Triggers> {
        let mut stmt = conn.prepare(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND sql IS NOT NULL",
        )?;
        let all: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (name, _) in &all {
            conn.execute_batch(&format!("DROP TRIGGER {}", ident(name)))?;
        }
        Ok(Triggers(all))
    }

    pub(super) fn restore(self, conn: &Connection) -> rusqlite::Result<()> {
        for (_, sql) in self.0 {
            conn.execute_batch(&sql)?;
        }
        Ok(())
    }
}
