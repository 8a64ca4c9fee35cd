//! The tables the engine adds beside the user's (lost_and_found, rescue_conflicts, ...): their
//! names, free in the source, and rows with a varying number of fields.

use super::ident;
use super::sql::Bind;
use crate::format::record::Field;
use crate::format::TextEncoding;
use rusqlite::{Connection, ToSql};

/// The names of the tables the engine adds to the output beside the user's: the usual name
/// where the source has no object of that name, else the first free `name_N`. Recorded in the
/// report; only tables so named are the tool's own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SideNames {
    pub lost_and_found: String,
    pub conflicts: String,
    pub damaged_values: String,
    pub freelist_rows: String,
    /// Rows `--fill-from` took from a backup: which, from where, as of when.
    pub filled: String,
    /// Backup rows `--fill-from` did not insert because a surviving row holds their key.
    pub fill_collisions: String,
    /// The records of altered rows as they were read, before the values their indexes hold
    /// replaced the ones that disagreed.
    pub altered_rows: String,
}

impl SideNames {
    /// Names free among `taken` (the source's schema objects, compared as SQLite compares
    /// names: ASCII case folded).
    pub(crate) fn free_in<'n>(taken: impl Iterator<Item = &'n str>) -> SideNames {
        let taken: std::collections::HashSet<String> = taken.map(str::to_ascii_lowercase).collect();
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
            filled: free("rescue_filled"),
            fill_collisions: free("rescue_fill_collisions"),
            altered_rows: free("rescue_altered_rows"),
        }
    }

    /// Whether `name` is one of these tables.
    pub fn contains(&self, name: &str) -> bool {
        [
            &self.lost_and_found,
            &self.conflicts,
            &self.damaged_values,
            &self.freelist_rows,
            &self.filled,
            &self.fill_collisions,
            &self.altered_rows,
        ]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// The side table of altered rows' records (`SideNames::altered_rows`), created with its
/// first row.
pub(crate) struct AlteredRecords(SideTable);

impl AlteredRecords {
    pub(crate) fn new(names: &SideNames) -> AlteredRecords {
        AlteredRecords(SideTable {
            name: names.altered_rows.clone(),
            lead: "tbl TEXT, id INTEGER, pgno INTEGER, nfield INTEGER",
            lead_count: 4,
            width: None,
        })
    }

    /// Keeps the record of row `rowid` of `table`, read on `page`, as it is.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn keep(
        &mut self,
        conn: &Connection,
        table: &str,
        rowid: i64,
        page: u32,
        payload: &[u8],
        fields: &[Field],
        encoding: TextEncoding,
    ) -> rusqlite::Result<()> {
        let nfield = i64::try_from(fields.len()).unwrap_or(i64::MAX);
        let lead: [&dyn ToSql; 4] = [&table, &rowid, &page, &nfield];
        self.0.insert(conn, &lead, payload, fields, encoding)
    }
}

/// A table of rows with a varying number of fields: fixed leading columns, then c0..cN,
/// widened with ALTER TABLE when a wider row arrives.
pub(super) struct SideTable {
    pub(super) name: String,
    pub(super) lead: &'static str,
    pub(super) lead_count: usize,
    pub(super) width: Option<usize>,
}

impl SideTable {
    pub(super) fn ensure(&mut self, conn: &Connection, fields: usize) -> rusqlite::Result<()> {
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

    pub(super) fn insert(
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
