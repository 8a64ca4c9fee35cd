//! Tables that could not be copied are walked page by page and their rows decoded and
//! inserted one by one; SQLite's own tables (sequence, planner statistics) are kept apart.

use crate::engine::pages::PageStatus;
use crate::engine::report::TableReport;
use crate::engine::schema::{SchemaEntry, SchemaKind, Table};
use crate::engine::walk::{Hole, RowRef, TreeKind, Walker};
use crate::engine::writer::Writer;
use crate::engine::Engine;
use crate::error::Result;
use crate::format::record::Field;
use crate::format::TextEncoding;

impl Engine<'_> {
    pub(crate) fn walk_table(
        &mut self,
        walker: &mut Walker<'_>,
        writer: &mut Writer,
        t: usize,
        table: &Table,
        internal: &mut InternalRows,
    ) -> Result<TableReport> {
        let owner = self.map.owner_named(&table.name);
        let mut rep = TableReport {
            name: table.name.clone(),
            owner,
            root_page: table.root,
            without_rowid: table.without_rowid,
            ..TableReport::default()
        };
        let kind = TreeKind::of(table);
        if table.root == 0 {
            // No root page known (its schema row was lost, or names page 0): its whole tree
            // is a hole for orphans to fill.
            rep.holes.push(Hole {
                lo: None,
                hi: None,
                page: 0,
                parent: None,
                reason: "no root page is known for it: its schema row was lost (its columns \
                         taken from --schema-from or its indexes), or names page 0"
                    .into(),
                filled: false,
            });
            return Ok(rep);
        }
        let encoding = self.encoding;
        let fits = |_rowid: Option<i64>, types: &[u64]| table.fits(types);
        let before = writer.counts(t);
        let stats = walker.walk(
            &mut self.map,
            owner,
            table.root,
            kind,
            PageStatus::Tree,
            &fits,
            &mut |row: &RowRef<'_>| {
                if table.name == "sqlite_sequence" {
                    if let Some(entry) = sequence_entry(row, encoding) {
                        internal.sequence.push(entry);
                    }
                    return Ok(());
                }
                if PLANNER_TABLES.contains(&table.name.as_str()) && row.complete {
                    let values = row
                        .fields
                        .iter()
                        .map(|f| owned_value(f.value(row.payload), encoding))
                        .collect();
                    internal.planner.push(PlannerRow {
                        table: table.name.clone(),
                        rowid: row.rowid,
                        values,
                    });
                    return Ok(());
                }
                if table.internal {
                    return Ok(());
                }
                insert_walked_row(writer, t, table, row, &mut rep)
            },
        )?;
        writer.flush(t, table)?;
        let after = writer.counts(t);
        rep.walked_rows = after.in_place - before.in_place;
        rep.conflict_rows += after.conflicts - before.conflicts;
        rep.bad_cells = stats.bad_cells;
        rep.suspect_rows = stats.suspect_rows;
        rep.suspect_pages = stats.suspect_pages;
        rep.holes = stats.holes;
        Ok(rep)
    }

    /// A table whose CREATE TABLE SQLite refused: its rows are still read, into lost_and_found.
    pub(crate) fn walk_refused(
        &mut self,
        walker: &mut Walker<'_>,
        writer: &mut Writer,
        entry: &SchemaEntry,
        why: &str,
    ) -> Result<TableReport> {
        let root = u32::try_from(entry.rootpage).unwrap_or(0);
        let owner = self.map.owner_named(&entry.name);
        let mut rows = 0;
        let stats = walker.walk(
            &mut self.map,
            owner,
            root,
            TreeKind::Table,
            PageStatus::Tree,
            &|_, _| true,
            &mut |row: &RowRef<'_>| {
                rows += 1;
                writer.lost_and_found(Some(root), row.page, row.rowid, row.payload, row.fields)
            },
        )?;
        Ok(TableReport {
            name: entry.name.clone(),
            owner,
            root_page: root,
            bad_cells: stats.bad_cells,
            holes: stats.holes,
            refused: Some(format!("{why}; its {rows} rows are in lost_and_found")),
            ..TableReport::default()
        })
    }

    /// Walks index trees only to claim their pages (indexes are rebuilt from the data).
    pub(crate) fn walk_indexes(
        &mut self,
        walker: &mut Walker<'_>,
        entries: &[SchemaEntry],
    ) -> Result<()> {
        for e in entries
            .iter()
            .filter(|e| e.kind == SchemaKind::Index && !self.indexes_walked.contains(&e.name))
        {
            let Ok(root) = u32::try_from(e.rootpage) else {
                continue;
            };
            if root == 0 {
                continue;
            }
            let owner = self.map.owner_named(&e.name);
            walker.walk(
                &mut self.map,
                owner,
                root,
                TreeKind::Index,
                PageStatus::Tree,
                &|_, _| true,
                &mut |_| Ok(()),
            )?;
        }
        Ok(())
    }
}

pub(crate) fn insert_walked_row(
    writer: &mut Writer,
    t: usize,
    table: &Table,
    row: &RowRef<'_>,
    rep: &mut TableReport,
) -> Result<()> {
    if row.fields.len() > table.stored.len() {
        writer.lost_and_found(
            Some(table.root),
            row.page,
            row.rowid,
            row.payload,
            row.fields,
        )?;
        return Ok(());
    }
    if !row.complete {
        note_damaged_value(writer, table, row)?;
        rep.damaged_rows += 1;
    }
    writer.insert_row(t, table, row.rowid, row.payload, row.fields, row.page)
}

/// Records the field a broken overflow chain cut short, with its readable prefix.
pub(crate) fn note_damaged_value(
    writer: &mut Writer,
    table: &Table,
    row: &RowRef<'_>,
) -> Result<()> {
    let (field, offset) = row
        .first_missing
        .unwrap_or((row.fields.len(), row.payload.len()));
    let prefix = row.payload.get(offset..).unwrap_or(&[]);
    let column = table.stored_column(field).map_or("?", |c| c.name.as_str());
    let reason = match row.broken_overflow {
        Some(p) => format!("column {column}: overflow page {p} unreadable; value set to NULL"),
        None => format!("column {column}: payload cut short; value set to NULL"),
    };
    writer.damaged_value(
        &table.name,
        row.rowid,
        field,
        &reason,
        row.broken_overflow,
        prefix,
    )
}

/// The query planner's statistics tables, restored as they were so that the recovered
/// database plans its queries as the source did (an ANALYZE of its own would read it all).
pub(crate) const PLANNER_TABLES: [&str; 2] = ["sqlite_stat1", "sqlite_stat4"];

/// Rows of SQLite's own tables, which are not inserted like the others.
#[derive(Default)]
pub(crate) struct InternalRows {
    /// `sqlite_sequence`: its rowid, a table's name and its highest AUTOINCREMENT value.
    pub(crate) sequence: Vec<(Option<i64>, String, i64)>,
    /// Rows of [`PLANNER_TABLES`].
    pub(crate) planner: Vec<PlannerRow>,
}

/// One row of a planner statistics table, under its own rowid.
pub(crate) struct PlannerRow {
    pub(crate) table: String,
    pub(crate) rowid: Option<i64>,
    pub(crate) values: Vec<rusqlite::types::Value>,
}

pub(crate) fn owned_value(
    value: crate::format::record::Value<'_>,
    encoding: TextEncoding,
) -> rusqlite::types::Value {
    use crate::format::record::Value;
    use rusqlite::types::Value as Sql;
    match value {
        Value::Null => Sql::Null,
        Value::Integer(i) => Sql::Integer(i),
        Value::Real(r) => Sql::Real(r),
        Value::Blob(b) => Sql::Blob(b.to_vec()),
        Value::Text(t) => Sql::Text(String::from_utf8_lossy(&encoding.to_utf8(t)).into_owned()),
    }
}

pub(crate) fn sequence_entry(
    row: &RowRef<'_>,
    encoding: TextEncoding,
) -> Option<(Option<i64>, String, i64)> {
    use crate::format::record::Value;
    let name = match row.fields.first()?.value(row.payload) {
        Value::Text(t) => String::from_utf8(encoding.to_utf8(t).into_owned()).ok()?,
        _ => return None,
    };
    match row.fields.get(1)? {
        Field::Integer(n) => Some((row.rowid, name, *n)),
        _ => None,
    }
}
