//! Which rows were lost, named: rowid ranges per table, worked out from the holes the walk
//! left in each table's b-tree.
//!
//! A hole carries the key bounds its parent's divider keys gave it (exclusive low, inclusive
//! high). When both come from a surviving parent, the range is exact: every rowid the lost
//! page held lies in it and no rowid outside it was on that page. Where a bound is missing
//! (the parent or the root was lost too) or was set by orphan pages put back into part of
//! the hole, the range is bounded by the nearest recovered rows and marked as an estimate.
//! Rows that came back anyway are subtracted. When an index of the table survives whole,
//! its entries name the rowids that existed, which makes the range exact in membership and
//! gives the number of rows lost.

use crate::engine::pages::{Claims, MapStatus, PageStatus};
use crate::engine::schema::{SchemaEntry, Table};
use crate::engine::walk::Hole;
use crate::engine::{writer, OrphanGroup, TableReport};
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use evidence::{read_indexes, IndexEvidence};
use keys::without_rowid_range;
use rusqlite::{Connection, OptionalExtension};

/// At most this many recovered rowids are read to split one range (more means the range
/// is mostly recovered rows: the pieces are still listed, up to this many).
const MAX_SPLIT: i64 = 100_000;

/// Rows of one table that are really missing: the rowids `first_rowid..=last_rowid`, which
/// were on `page` (the page the tree pointed at, or the lost interior page above them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LostRange {
    /// First rowid that may be lost; null when no lower bound is known (or WITHOUT ROWID).
    pub first_rowid: Option<i64>,
    /// Last rowid that may be lost; null when no upper bound is known (or WITHOUT ROWID).
    pub last_rowid: Option<i64>,
    pub page: u32,
    /// True when the bounds are the parent's divider keys, or a surviving index lists
    /// exactly which rowids existed; false for an estimate from neighbouring rows.
    pub exact: bool,
    /// How many rows were lost, when known (from a surviving index).
    pub rows: Option<u64>,
    /// WITHOUT ROWID tables: the key range, from the parent's divider keys, or "unknown".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<String>,
}

impl LostRange {
    /// How many rowids the range spans, when both bounds are known: at most this many rows
    /// were lost in it. `None` when a bound is open, the bounds cross, or the span does not
    /// fit in a `u64` (only `i64::MIN..=i64::MAX` does not).
    pub fn span(&self) -> Option<u64> {
        let (a, b) = (self.first_rowid?, self.last_rowid?);
        u64::try_from(i128::from(b) - i128::from(a) + 1)
            .ok()
            .filter(|&n| n > 0)
    }

    /// One line for a person: "orders: rowids 10412–10477 lost (page 311, 66 rows)".
    pub fn describe(&self, table: &str) -> String {
        let what = match (&self.keys, self.first_rowid, self.last_rowid) {
            (Some(k), _, _) => format!("keys {k}"),
            (None, Some(a), Some(b)) if a == b => format!("rowid {a}"),
            (None, Some(a), Some(b)) => format!("rowids {a}\u{2013}{b}"),
            (None, Some(a), None) => format!("rowids {a} and above"),
            (None, None, Some(b)) => format!("rowids up to {b}"),
            (None, None, None) => "rowids unknown".to_string(),
        };
        let mut detail = vec![format!("page {}", self.page)];
        match (self.rows, self.first_rowid, self.last_rowid) {
            (Some(1), _, _) => detail.push("1 row".to_string()),
            (Some(n), _, _) => detail.push(format!("{n} rows")),
            (None, Some(a), Some(b)) if self.keys.is_none() && self.exact => {
                let span = (i128::from(b) - i128::from(a) + 1).max(0);
                detail.push(format!("at most {span} rows"));
            }
            _ => {}
        }
        if !self.exact {
            detail.push("estimate".to_string());
        }
        format!("{table}: {what} lost ({})", detail.join(", "))
    }
}

/// The most rows `ranges` can hold together: the sum of their spans, or `None` when one is
/// open on a side or the sum does not fit in a `u64`.
pub fn most_rows(ranges: &[LostRange]) -> Option<u64> {
    ranges
        .iter()
        .try_fold(0u64, |sum, r| sum.checked_add(r.span()?))
}

/// At most this many lost rows are listed with what the indexes still hold of them.
const MAX_LISTED: usize = 1000;

/// What a table's surviving indexes still hold of its lost rows. An index entry is a copy of
/// the indexed columns and the rowid, kept on other pages than the row: a row lost with its
/// leaf can still be named by its username, email or date.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexedValues {
    /// The indexes read: every index of the table that reads whole and is not partial.
    pub indexes: Vec<String>,
    /// The columns they hold, in the order the indexes name them.
    pub columns: Vec<String>,
    /// Lost rows in rowid order, at most 1000.
    pub rows: Vec<IndexedRow>,
    /// Lost rows the indexes name beyond those listed.
    pub not_listed: u64,
}

/// One lost row as the indexes remember it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexedRow {
    pub rowid: i64,
    /// One per column: a number, a string, `{"blob": HEX}`, or null (a NULL value, or an
    /// entry that did not read whole).
    pub values: Vec<serde_json::Value>,
}

impl IndexedValues {
    /// Lines for a person: which columns survive, then up to `max_rows` rows, each as
    /// "rowid 1042: kind 'login', created 1700000123.5". With `max_rows` 0, one line that
    /// says where to find them: `lost_command` (`sqlite-rescue lost /srv/app.db`) with the
    /// table named.
    pub fn describe(&self, table: &str, max_rows: usize, lost_command: &str) -> Vec<String> {
        let total = self.rows.len() as u64 + self.not_listed;
        let rows = if total == 1 {
            "its lost row".to_string()
        } else {
            format!("its {total} lost rows")
        };
        let (noun, verb) = match self.indexes.len() {
            1 => ("index", "holds"),
            _ => ("indexes", "hold"),
        };
        let head = format!(
            "{table}: {noun} {} still {verb} {} of {rows}",
            self.indexes.join(", "),
            self.columns.join(", "),
        );
        if max_rows == 0 {
            let them = if total == 1 { "it" } else { "them" };
            return vec![format!(
                "{head}: {lost_command} --table {table} lists {them}"
            )];
        }
        let mut lines = vec![format!("{head}:")];
        for row in self.rows.iter().take(max_rows) {
            let values: Vec<String> = self
                .columns
                .iter()
                .zip(&row.values)
                .map(|(c, v)| format!("{c} {}", sql_literal(v)))
                .collect();
            lines.push(format!("  rowid {}: {}", row.rowid, values.join(", ")));
        }
        let shown = max_rows.min(self.rows.len()) as u64;
        if total > shown {
            lines.push(format!(
                "  \u{2026} and {} more (--json lists {})",
                total - shown,
                if self.not_listed > 0 {
                    format!("{} of the {total}", self.rows.len())
                } else {
                    "them all".to_string()
                }
            ));
        }
        lines
    }
}

/// A JSON value as SQL would write it: 'text', 12, 1.5, x'00ff', NULL.
pub(crate) fn sql_literal(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".to_string(),
        serde_json::Value::String(s) => crate::util::quote::text(s),
        serde_json::Value::Object(o) => match o.get("blob").and_then(|b| b.as_str()) {
            Some(hex) => format!("x'{hex}'"),
            None => v.to_string(),
        },
        other => other.to_string(),
    }
}

/// Lines for the terminal under the per-table table: the lost ranges of one table and what
/// its indexes still hold of those rows (up to `value_rows` of them, [`IndexedValues::describe`]),
/// or that its unreadable pages cost no rows.
pub(crate) fn table_lines(t: &TableReport, value_rows: usize, lost_command: &str) -> Vec<String> {
    if !t.lost.is_empty() {
        // Exact ranges first: they are the ones to act on; a long tail is summarized (the
        // full list is in report.json and `sqlite-rescue lost`).
        let mut ranges: Vec<&LostRange> = t.lost.iter().collect();
        ranges.sort_by_key(|r| !r.exact);
        let mut lines: Vec<String> = ranges
            .iter()
            .take(MAX_TEXT_RANGES)
            .map(|r| r.describe(&t.name))
            .collect();
        if ranges.len() > MAX_TEXT_RANGES {
            lines.push(format!(
                "{}: … and {} more ranges (all of them: {lost_command} --table {})",
                t.name,
                ranges.len() - MAX_TEXT_RANGES,
                t.name
            ));
        }
        if let Some(values) = &t.lost_values {
            lines.extend(values.describe(&t.name, value_rows, lost_command));
        }
        return lines;
    }
    if t.holes.is_empty() || t.refused.is_some() || t.rows_may_be_missing {
        return Vec::new();
    }
    vec![format!(
        "{}: no rows lost (the rows under its unreadable pages were found and put back)",
        t.name
    )]
}

/// Lost ranges shown per table on the terminal.
const MAX_TEXT_RANGES: usize = 8;

/// Lines for indexes whose pages were lost: indexes are rebuilt from the table data, so
/// no row is lost with them.
pub(crate) fn index_lines(report: &crate::engine::Report) -> Vec<String> {
    let Some(map) = &report.page_map else {
        return Vec::new();
    };
    let mut per_index: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
    for run in map.runs.iter().filter(|r| r.status == MapStatus::Lost) {
        let Some(name) = map.owner_name(run.owner) else {
            continue;
        };
        let is_table = report.tables.iter().any(|t| t.name == name);
        if is_table || name.starts_with('(') || name == "sqlite_schema" {
            continue;
        }
        per_index
            .entry(name)
            .or_default()
            .extend(run.first..=run.last);
    }
    per_index
        .into_iter()
        .map(|(name, pages)| {
            let pages: Vec<String> = pages.iter().map(u32::to_string).collect();
            format!(
                "{name}: index page {} unreadable; the index was rebuilt from its table, no rows lost",
                pages.join(", ")
            )
        })
        .collect()
}

/// What the lost-rows pass needs from the engine, borrowed at the end of a recovery.
pub(crate) struct Inputs<'a> {
    pub conn: &'a Connection,
    pub pf: &'a PageFile,
    pub tables: &'a [Table],
    pub entries: &'a [SchemaEntry],
    pub groups: &'a [OrphanGroup],
    pub map: &'a Claims,
    pub encoding: TextEncoding,
}

/// Fills `lost` of every table report that has holes. Never fails: what cannot be worked
/// out is reported as an estimate or left open.
pub(crate) fn fill(inputs: &Inputs<'_>, reports: &mut [TableReport]) {
    let counts = inputs.map.counts();
    // Pages that could have held rows no tree reached and nothing put back: zeroed or
    // garbage pages, and orphans whose rows went to lost_and_found.
    let spare_pages = counts.get(&PageStatus::Unreadable).copied().unwrap_or(0)
        + counts
            .get(&PageStatus::OrphanLostAndFound)
            .copied()
            .unwrap_or(0)
        + missing_from_file(inputs, reports);
    for (t, table) in inputs.tables.iter().enumerate() {
        let Some(rep) = reports.get_mut(t) else {
            break;
        };
        if rep.holes.is_empty() || table.internal || rep.refused.is_some() {
            continue;
        }
        if table.without_rowid {
            rep.lost = rep
                .holes
                .iter()
                .map(|h| without_rowid_range(inputs.pf, h, inputs.encoding))
                .collect();
        } else {
            (rep.lost, rep.lost_values) = rowid_ranges(inputs, table, &rep.holes, spare_pages);
        }
    }
}

/// Pages a truncated file no longer has: the header's count beyond the pages present, or
/// at least one when a tree points past the end.
fn missing_from_file(inputs: &Inputs<'_>, reports: &[TableReport]) -> u64 {
    let present = inputs.pf.page_count();
    let claimed = inputs
        .pf
        .geometry()
        .header
        .as_ref()
        .map_or(0, |h| h.page_count.saturating_sub(present));
    let pointed_past = reports
        .iter()
        .flat_map(|r| &r.holes)
        .any(|h| h.page > present);
    u64::from(claimed).max(u64::from(pointed_past))
}

/// One piece of a hole on its way to becoming a [`LostRange`].
#[derive(Debug, Clone)]
struct Piece {
    first: Option<i64>,
    last: Option<i64>,
    first_exact: bool,
    last_exact: bool,
    /// Part of the hole was filled by orphan pages: its page was an interior page.
    filled: bool,
    page: u32,
}

impl Piece {
    /// Whether no rowid can lie in it (its bounds crossed).
    fn is_empty(&self) -> bool {
        matches!((self.first, self.last), (Some(a), Some(b)) if a > b)
    }
}

fn rowid_ranges(
    inputs: &Inputs<'_>,
    table: &Table,
    holes: &[Hole],
    spare_pages: u64,
) -> (Vec<LostRange>, Option<IndexedValues>) {
    let q = Queries {
        conn: inputs.conn,
        table: writer::ident(&table.name),
    };
    let attributed: Vec<&OrphanGroup> = inputs
        .groups
        .iter()
        .filter(|g| {
            g.outcome == crate::engine::GroupOutcome::Attributed
                && g.table.as_deref() == Some(table.name.as_str())
        })
        .collect();
    let mut pieces: Vec<Piece> = holes
        .iter()
        .filter_map(|h| piece_of(&q, h, &attributed))
        .flat_map(|piece| subtract_recovered(&q, piece))
        .collect();
    // A hole that orphan pages partly filled was an interior page; its other children can
    // only be lost if some page of the file is unaccounted for. With none, no index need be
    // read (a whole walk of it, on a large table) to know that nothing is lost there.
    if spare_pages == 0 {
        pieces.retain(|p| !p.filled);
    }
    let index = read_indexes(inputs, table, &pieces);
    let mut out = Vec::new();
    let mut lost_rowids = Vec::new();
    for p in pieces {
        let Some(range) = lost_range(&q, &p, index.as_ref(), &mut lost_rowids) else {
            continue; // the index says no row of this range is missing
        };
        out.push(range);
    }
    out.sort_by_key(|r| (r.first_rowid.is_some(), r.first_rowid, r.page));
    let values = index.and_then(|evidence| evidence.values_of(&lost_rowids));
    (out, values)
}

/// The rowids a hole may have held, each open side bounded by the nearest recovered row
/// beyond it; `None` when it can hold none.
fn piece_of(q: &Queries<'_>, h: &Hole, attributed: &[&OrphanGroup]) -> Option<Piece> {
    let lo_shrunk =
        h.lo.is_some_and(|lo| attributed.iter().any(|g| g.last_rowid == Some(lo)));
    let hi_shrunk = h.hi.is_some_and(|hi| {
        attributed
            .iter()
            .any(|g| g.first_rowid.is_some() && g.first_rowid == hi.checked_add(1))
    });
    let first = match h.lo {
        // (MAX, ...]: nothing can be in it
        Some(lo) => Some(lo.checked_add(1)?),
        None => None,
    };
    let mut piece = Piece {
        first,
        last: h.hi,
        first_exact: h.lo.is_some() && !lo_shrunk,
        last_exact: h.hi.is_some() && !hi_shrunk,
        filled: h.filled || lo_shrunk || hi_shrunk,
        page: h.page,
    };
    if let (Some(a), Some(b)) = (piece.first, piece.last) {
        if a > b {
            return None;
        }
    }
    if piece.first.is_none() {
        if let Some(r) = q.max_at_or_below(piece.last) {
            piece.first = Some(r.checked_add(1)?);
        }
    }
    if piece.last.is_none() {
        if let Some(r) = q.min_at_or_above(piece.first) {
            // Nothing lies below i64::MIN: bounded by a row there, the piece is empty.
            piece.last = Some(r.checked_sub(1)?);
        }
    }
    Some(piece)
}

/// What a piece says is lost: with an index, exactly the rowids it lists there that did not
/// come back (added to `lost_rowids`; `None` when there are none); without, the piece itself.
fn lost_range(
    q: &Queries<'_>,
    p: &Piece,
    index: Option<&IndexEvidence>,
    lost_rowids: &mut Vec<i64>,
) -> Option<LostRange> {
    let whole = index.filter(|e| !e.partial);
    if let Some(partial) = index.filter(|e| e.partial) {
        // Some of the rows a damaged index lists here: their values can be named, the range
        // stays what the hole gives.
        lost_rowids.extend(partial.rowids.iter().copied().filter(|r| {
            p.first.is_none_or(|a| *r >= a) && p.last.is_none_or(|b| *r <= b) && !q.has(*r)
        }));
    }
    let Some(evidence) = whole else {
        return Some(LostRange {
            first_rowid: p.first,
            last_rowid: p.last,
            page: p.page,
            exact: p.first_exact && p.last_exact,
            rows: None,
            keys: None,
        });
    };
    let inside: Vec<i64> = evidence
        .rowids
        .iter()
        .copied()
        .filter(|r| p.first.is_none_or(|a| *r >= a) && p.last.is_none_or(|b| *r <= b))
        .filter(|r| !q.has(*r))
        .collect();
    let (&a, &b) = (inside.first()?, inside.last()?);
    lost_rowids.extend_from_slice(&inside);
    Some(LostRange {
        first_rowid: Some(a),
        last_rowid: Some(b),
        page: p.page,
        exact: true,
        rows: Some(inside.len() as u64),
        keys: None,
    })
}

/// Splits a piece around recovered rows that lie inside it (rows that came back from the
/// WAL or from orphan pages): each remaining piece holds only rowids that are missing.
fn subtract_recovered(q: &Queries<'_>, piece: Piece) -> Vec<Piece> {
    if piece.is_empty() {
        // Its bounds crossed: an open side was bounded by the recovered row that is its
        // other bound.
        return Vec::new();
    }
    let inside = q.rowids_between(piece.first, piece.last);
    if inside.is_empty() {
        return vec![piece];
    }
    let mut out = Vec::new();
    let mut cur = Piece { ..piece.clone() };
    for r in inside {
        let left = Piece {
            last: r.checked_sub(1),
            last_exact: false,
            ..cur.clone()
        };
        // An open upper side here means r was i64::MIN: nothing lies below it.
        if left.last.is_some() && !left.is_empty() {
            out.push(left);
        }
        cur.first = r.checked_add(1);
        cur.first_exact = false;
        if cur.first.is_none() {
            return out;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

struct Queries<'a> {
    conn: &'a Connection,
    table: String,
}

impl Queries<'_> {
    fn one(&self, sql: &str, arg: i64) -> Option<i64> {
        self.conn
            .query_row(sql, [arg], |r| r.get::<_, Option<i64>>(0))
            .optional()
            .ok()
            .flatten()
            .flatten()
    }

    fn max_at_or_below(&self, bound: Option<i64>) -> Option<i64> {
        let sql = format!("SELECT max(rowid) FROM {} WHERE rowid <= ?1", self.table);
        self.one(&sql, bound.unwrap_or(i64::MAX))
    }

    fn min_at_or_above(&self, bound: Option<i64>) -> Option<i64> {
        let sql = format!("SELECT min(rowid) FROM {} WHERE rowid >= ?1", self.table);
        self.one(&sql, bound.unwrap_or(i64::MIN))
    }

    fn has(&self, rowid: i64) -> bool {
        let sql = format!("SELECT 1 FROM {} WHERE rowid = ?1", self.table);
        self.one(&sql, rowid).is_some()
    }

    fn rowids_between(&self, first: Option<i64>, last: Option<i64>) -> Vec<i64> {
        let sql = format!(
            "SELECT rowid FROM {} WHERE rowid BETWEEN ?1 AND ?2 ORDER BY rowid LIMIT {MAX_SPLIT}",
            self.table
        );
        let Ok(mut stmt) = self.conn.prepare(&sql) else {
            return Vec::new();
        };
        let args = [first.unwrap_or(i64::MIN), last.unwrap_or(i64::MAX)];
        let Ok(rows) = stmt.query_map(args, |r| r.get::<_, i64>(0)) else {
            return Vec::new();
        };
        rows.filter_map(Result::ok).collect()
    }
}

mod evidence;
pub(crate) mod keys;

#[cfg(test)]
mod tests;
