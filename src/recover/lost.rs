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

use super::pagemap::{PageMap, PageStatus};
use super::schema::{SchemaEntry, Table};
use super::walk::{Hole, RowRef, TreeKind, Walker};
use super::{writer, OrphanGroup, TableReport};
use crate::format::cell::{self, Cell};
use crate::format::page::BtreePage;
use crate::format::record::{self, Field, Value};
use crate::format::TextEncoding;
use crate::pagefile::PageFile;
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

/// Lines for the terminal under the per-table table: the lost ranges of one table, or
/// that its unreadable pages cost no rows.
pub fn table_lines(t: &TableReport) -> Vec<String> {
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
                "{}: … and {} more ranges (all of them: sqlite-rescue lost DB --table {})",
                t.name,
                ranges.len() - MAX_TEXT_RANGES,
                t.name
            ));
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
pub fn index_lines(report: &super::Report) -> Vec<String> {
    let Some(map) = &report.page_map else {
        return Vec::new();
    };
    let mut per_index: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
    for (i, (status, owner)) in map.pages.iter().enumerate() {
        if *status != PageStatus::Lost {
            continue;
        }
        let Some(name) = owner.and_then(|o| map.owners.get(o as usize)) else {
            continue;
        };
        let is_table = report.tables.iter().any(|t| &t.name == name);
        if is_table || name.starts_with('(') || name == "sqlite_schema" {
            continue;
        }
        per_index
            .entry(name.as_str())
            .or_default()
            .push(i as u32 + 1);
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
    pub map: &'a PageMap,
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
        rep.lost = if table.without_rowid {
            rep.holes
                .iter()
                .map(|h| without_rowid_range(inputs.pf, h, inputs.encoding))
                .collect()
        } else {
            rowid_ranges(inputs, table, &rep.holes, spare_pages)
        };
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

fn rowid_ranges(
    inputs: &Inputs<'_>,
    table: &Table,
    holes: &[Hole],
    spare_pages: u64,
) -> Vec<LostRange> {
    let q = Queries {
        conn: inputs.conn,
        table: writer::ident(&table.name),
    };
    let attributed: Vec<&OrphanGroup> = inputs
        .groups
        .iter()
        .filter(|g| g.outcome == "attributed" && g.table.as_deref() == Some(table.name.as_str()))
        .collect();
    let mut pieces = Vec::new();
    for h in holes {
        let lo_shrunk =
            h.lo.is_some_and(|lo| attributed.iter().any(|g| g.last_rowid == Some(lo)));
        let hi_shrunk = h.hi.is_some_and(|hi| {
            attributed
                .iter()
                .any(|g| g.first_rowid.is_some() && g.first_rowid == hi.checked_add(1))
        });
        let first = match h.lo {
            Some(lo) => match lo.checked_add(1) {
                Some(f) => Some(f),
                None => continue, // (MAX, ...]: nothing can be in it
            },
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
                continue;
            }
        }
        // An open side is bounded by the nearest recovered row beyond it.
        if piece.first.is_none() {
            if let Some(r) = q.max_at_or_below(piece.last) {
                piece.first = r.checked_add(1);
                if piece.first.is_none() {
                    continue;
                }
            }
        }
        if piece.last.is_none() {
            if let Some(r) = q.min_at_or_above(piece.first) {
                piece.last = Some(r.saturating_sub(1));
            }
        }
        pieces.extend(subtract_recovered(&q, piece));
    }
    let index = complete_index_rowids(inputs, table, &pieces);
    let mut out = Vec::new();
    for p in pieces {
        let exact = p.first_exact && p.last_exact;
        match &index {
            Some(rowids) => {
                let inside: Vec<i64> = rowids
                    .iter()
                    .copied()
                    .filter(|r| p.first.is_none_or(|a| *r >= a) && p.last.is_none_or(|b| *r <= b))
                    .filter(|r| !q.has(*r))
                    .collect();
                let (Some(&a), Some(&b)) = (inside.first(), inside.last()) else {
                    continue; // the index says no row of this range is missing
                };
                out.push(LostRange {
                    first_rowid: Some(a),
                    last_rowid: Some(b),
                    page: p.page,
                    exact: true,
                    rows: Some(inside.len() as u64),
                    keys: None,
                });
            }
            None => {
                // A hole that orphan pages partly filled was an interior page; its other
                // children can only be lost if some page of the file is unaccounted for.
                if p.filled && spare_pages == 0 {
                    continue;
                }
                out.push(LostRange {
                    first_rowid: p.first,
                    last_rowid: p.last,
                    page: p.page,
                    exact,
                    rows: None,
                    keys: None,
                });
            }
        }
    }
    out.sort_by_key(|r| (r.first_rowid.is_some(), r.first_rowid, r.page));
    out
}

/// Splits a piece around recovered rows that lie inside it (rows that came back from the
/// WAL or from orphan pages): each remaining piece holds only rowids that are missing.
fn subtract_recovered(q: &Queries<'_>, piece: Piece) -> Vec<Piece> {
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
        let nonempty = match (left.first, left.last) {
            (Some(a), Some(b)) => a <= b,
            (_, None) => false,
            (None, Some(_)) => true,
        };
        if nonempty {
            out.push(left);
        }
        cur.first = r.checked_add(1);
        cur.first_exact = false;
        if cur.first.is_none() {
            return out;
        }
    }
    let nonempty = match (cur.first, cur.last) {
        (Some(a), Some(b)) => a <= b,
        _ => true,
    };
    if nonempty {
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
        rows.filter_map(|r| r.ok()).collect()
    }
}

/// The rowids a surviving index of `table` lists inside any of `pieces`, sorted; `None`
/// when no index of the table could be read whole (a partial index never counts).
fn complete_index_rowids(inputs: &Inputs<'_>, table: &Table, pieces: &[Piece]) -> Option<Vec<i64>> {
    if pieces.is_empty() {
        return None;
    }
    let wanted = |r: i64| -> bool {
        pieces
            .iter()
            .any(|p| p.first.is_none_or(|a| r >= a) && p.last.is_none_or(|b| r <= b))
    };
    for e in inputs.entries.iter().filter(|e| {
        e.kind == "index"
            && e.tbl_name == table.name
            && e.rootpage > 0
            && !e
                .sql
                .as_deref()
                .is_some_and(|s| s.to_ascii_lowercase().contains(" where "))
    }) {
        let Ok(root) = u32::try_from(e.rootpage) else {
            continue;
        };
        let mut map = PageMap::new(inputs.pf.page_count());
        let mut walker = Walker::new(
            inputs.pf,
            indicatif::ProgressBar::hidden(),
            &super::interrupted,
        );
        let mut rowids = Vec::new();
        let mut odd = 0u64;
        let stats = walker.walk(
            &mut map,
            0,
            root,
            TreeKind::Index,
            PageStatus::Tree,
            &|_, _| true,
            &mut |row: &RowRef<'_>| {
                match row.fields.last() {
                    Some(Field::Integer(r)) if row.complete => {
                        if wanted(*r) {
                            rowids.push(*r);
                        }
                    }
                    _ => odd += 1,
                }
                Ok(())
            },
        );
        let Ok(stats) = stats else {
            continue;
        };
        if !stats.holes.is_empty() || stats.bad_cells > 0 || odd > 0 || stats.suspect_rows > 0 {
            continue;
        }
        rowids.sort_unstable();
        rowids.dedup();
        return Some(rowids);
    }
    None
}

/// A hole in a WITHOUT ROWID table: the keys between the parent's divider keys.
fn without_rowid_range(pf: &PageFile, h: &Hole, encoding: TextEncoding) -> LostRange {
    let (after, before) = h
        .parent
        .map(|p| dividers(pf, p, h.page, encoding))
        .unwrap_or((None, None));
    let exact = after.is_some() && before.is_some();
    let keys = match (after, before) {
        (Some(a), Some(b)) => format!("after {a} and before {b}"),
        (Some(a), None) => format!("after {a} (upper bound unknown)"),
        (None, Some(b)) => format!("before {b} (lower bound unknown)"),
        (None, None) => "unknown".to_string(),
    };
    LostRange {
        first_rowid: None,
        last_rowid: None,
        page: h.page,
        exact,
        rows: None,
        keys: Some(keys),
    }
}

/// The keys of the index-interior cells on either side of `child` in page `parent`.
fn dividers(
    pf: &PageFile,
    parent: u32,
    child: u32,
    encoding: TextEncoding,
) -> (Option<String>, Option<String>) {
    let mut buf = Vec::new();
    if pf.read(parent, &mut buf).is_none() {
        return (None, None);
    }
    let offset = if parent == 1 { 100 } else { 0 };
    let Ok(page) = BtreePage::parse(&buf, offset, pf.usable()) else {
        return (None, None);
    };
    let mut previous: Option<String> = None;
    for (_, c) in cell::cells(&page) {
        let Ok(Cell::IndexInterior {
            left_child,
            payload,
        }) = c
        else {
            continue;
        };
        let key = key_text(payload.local, encoding);
        if left_child == child {
            return (previous, key);
        }
        previous = key;
    }
    if page.right_child == Some(child) {
        return (previous, None);
    }
    (None, None)
}

/// A record as `('a', 3)`; fields cut short by an overflow page show as `…`.
fn key_text(local: &[u8], encoding: TextEncoding) -> Option<String> {
    let mut fields = Vec::new();
    let decoded = record::decode_fields(local, &mut fields).ok()?;
    let mut parts: Vec<String> = fields
        .iter()
        .map(|f| match f.value(local) {
            Value::Null => "NULL".to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Real(r) => r.to_string(),
            Value::Text(t) => {
                let s = String::from_utf8_lossy(&encoding.to_utf8(t)).into_owned();
                let short: String = s.chars().take(40).collect();
                format!("'{}'", short.replace('\'', "''"))
            }
            Value::Blob(b) => format!("x'{}'", hex::encode(&b[..b.len().min(16)])),
        })
        .collect();
    if !decoded.complete {
        parts.push("\u{2026}".to_string());
    }
    Some(format!("({})", parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(first: Option<i64>, last: Option<i64>, exact: bool, rows: Option<u64>) -> LostRange {
        LostRange {
            first_rowid: first,
            last_rowid: last,
            page: 311,
            exact,
            rows,
            keys: None,
        }
    }

    #[test]
    fn describes_exact_and_estimated_ranges() {
        assert_eq!(
            range(Some(10412), Some(10477), true, Some(66)).describe("orders"),
            "orders: rowids 10412\u{2013}10477 lost (page 311, 66 rows)"
        );
        assert_eq!(
            range(Some(5), Some(9), false, None).describe("t"),
            "t: rowids 5\u{2013}9 lost (page 311, estimate)"
        );
        assert_eq!(
            range(Some(5), None, false, None).describe("t"),
            "t: rowids 5 and above lost (page 311, estimate)"
        );
    }

    #[test]
    fn serializes_with_the_documented_names() {
        let v = serde_json::to_value(range(Some(1), Some(2), true, None)).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["exact", "first_rowid", "last_rowid", "page", "rows"]);
    }

    #[test]
    fn key_text_never_panics_on_garbage() {
        for len in 0..64u8 {
            let bytes: Vec<u8> = (0..len)
                .map(|i| i.wrapping_mul(37).wrapping_add(len))
                .collect();
            let _ = key_text(&bytes, TextEncoding::Utf8);
        }
    }
}
