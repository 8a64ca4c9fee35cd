//! One tree walked from its root, each page checked as SQLite writes it, its entries handed
//! over in the tree's order: the structure proof's walk, and the digest scans' too, so that
//! a page read for one serves both.

use super::plan::{RowRule, TreeKind};
use super::{Doubt, Ledger, Role};
use crate::engine::verify::reader::{Pages, Unreadable};
use crate::format::cell::{self, Cell, Payload};
use crate::format::page::BtreePage;
use crate::format::{overflow, record, varint};

/// Trees deeper than this are not b-trees SQLite wrote.
const MAX_DEPTH: u32 = 40;

/// Pages read at once when leaves are neighbours.
const RUN: usize = 64;

impl From<Unreadable> for Doubt {
    fn from(_: Unreadable) -> Doubt {
        Doubt
    }
}

/// Who checks each record of the tree.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Records<'a> {
    /// The walk: its header fills its payload and (a table's, with a rule) no NULL sits
    /// where its column may not be NULL.
    Here(Option<&'a RowRule>),
    /// The caller's visitor, which decodes every record anyway ([`record_ok`] for a record
    /// it does not decode whole).
    ByVisitor,
}

/// How to walk one tree.
pub(crate) struct Walk<'a> {
    pub(crate) pages: &'a Pages,
    /// Where each page is claimed, overflow pages too; `None` when only the entries are
    /// wanted.
    pub(crate) ledger: Option<&'a Ledger>,
    pub(crate) root: u32,
    pub(crate) kind: TreeKind,
    pub(crate) records: Records<'a>,
}

/// A page to check, and the rowids a table page's keys must lie between: above `low`, at
/// most `high` (`None`: no bound).
#[derive(Debug, Clone, Copy)]
struct Node {
    pgno: u32,
    /// The page that names it (0 for the root).
    parent: u32,
    low: Option<i64>,
    high: Option<i64>,
}

/// Where a tree's entries are, in its order: whole leaves, and (in an index) the entries
/// interior pages hold between their children.
#[derive(Debug, Clone, Copy)]
enum Item {
    Leaf(Node),
    Entry { page: u32, cell: u16 },
}

/// Checks every page of the tree, and calls `visit(rowid, payload)` for each entry in the
/// tree's order (the rowid is `None` in an index).
pub(crate) fn entries(
    walk: &Walk<'_>,
    mut visit: impl FnMut(Option<i64>, &Payload<'_>) -> Result<(), Doubt>,
) -> Result<(), Doubt> {
    let root = Node {
        pgno: walk.root,
        parent: 0,
        low: None,
        high: None,
    };
    let mut items = Vec::new();
    let height = height(walk)?;
    if height == 0 {
        items.push(Item::Leaf(root));
    } else {
        interior(walk, root, (1, height), &mut 0, &mut items)?;
    }
    let (mut run, mut single) = (Vec::new(), Vec::new());
    let mut k = 0;
    while k < items.len() {
        match items[k] {
            Item::Entry { page, cell } => {
                walk.pages.read(page, 1, &mut single)?;
                let p = walk.pages.page(page, &single)?;
                let offset = p.cell_offset(cell).ok_or(Doubt)?;
                match cell::parse(&p, offset).map_err(|_| Doubt)? {
                    Cell::IndexInterior { payload, .. } => visit(None, &payload)?,
                    _ => return Err(Doubt),
                }
                k += 1;
            }
            Item::Leaf(first) => {
                // Neighbouring leaves, as a freshly written file lays them out, in one read.
                let mut n = 1;
                while n < RUN
                    && matches!(items.get(k + n), Some(Item::Leaf(p)) if u64::from(p.pgno) == u64::from(first.pgno) + n as u64)
                {
                    n += 1;
                }
                walk.pages.read(first.pgno, n, &mut run)?;
                for (j, data) in run.chunks(walk.pages.page_size).enumerate() {
                    let Item::Leaf(node) = items[k + j] else {
                        return Err(Doubt);
                    };
                    let children = page(walk, node, data, &mut visit)?;
                    if !children.is_empty() {
                        return Err(Doubt);
                    }
                }
                k += n;
            }
        }
    }
    Ok(())
}

/// How many levels of interior pages are above the leaves, down the leftmost path.
fn height(walk: &Walk<'_>) -> Result<u32, Doubt> {
    let mut data = Vec::new();
    let mut pgno = walk.root;
    for depth in 0..=MAX_DEPTH {
        walk.pages.read(pgno, 1, &mut data)?;
        let page = walk.pages.page(pgno, &data)?;
        if page.kind.is_leaf() {
            return Ok(depth);
        }
        pgno = match page.cell_offset(0) {
            Some(offset) => be_u32(page.data, offset).ok_or(Doubt)?,
            None => page.right_child.ok_or(Doubt)?,
        };
    }
    Err(Doubt)
}

/// Checks interior page `node`, at `depth` levels below the root, and lists what is under
/// it in `items`: the leaves at `height`, and an index's entries between its children.
/// `visited` counts the pages met: no tree has more than the file, even where pages are not
/// claimed (a page that names itself as its child many times would otherwise list without
/// end).
fn interior(
    walk: &Walk<'_>,
    node: Node,
    (depth, height): (u32, u32),
    visited: &mut u32,
    items: &mut Vec<Item>,
) -> Result<(), Doubt> {
    *visited += 1;
    if *visited > walk.pages.page_count {
        return Err(Doubt);
    }
    let mut data = Vec::new();
    walk.pages.read(node.pgno, 1, &mut data)?;
    let children = page(walk, node, &data, &mut |_, _| Err(Doubt))?;
    if children.is_empty() {
        return Err(Doubt);
    }
    let last = children.len() - 1;
    for (cell, child) in children.into_iter().enumerate() {
        if depth == height {
            *visited += 1;
            if *visited > walk.pages.page_count {
                return Err(Doubt);
            }
            items.push(Item::Leaf(child));
        } else {
            interior(walk, child, (depth + 1, height), visited, items)?;
        }
        if walk.kind == TreeKind::Index && cell < last {
            items.push(Item::Entry {
                page: node.pgno,
                cell: u16::try_from(cell).map_err(|_| Doubt)?,
            });
        }
    }
    Ok(())
}

/// Checks one page of the tree; calls `visit` for each entry of a leaf. Returns an interior
/// page's children in order (the right child last), each with the bounds of its keys.
fn page(
    walk: &Walk<'_>,
    node: Node,
    data: &[u8],
    visit: &mut impl FnMut(Option<i64>, &Payload<'_>) -> Result<(), Doubt>,
) -> Result<Vec<Node>, Doubt> {
    if let Some(ledger) = walk.ledger {
        let role = if node.pgno == walk.root {
            Role::Root
        } else {
            Role::Child(node.parent)
        };
        ledger.claim(walk.pages, node.pgno, role)?;
    }
    let page = walk.pages.page(node.pgno, data)?;
    if page.kind.is_table() != (walk.kind == TreeKind::Table)
        || (page.cell_count == 0 && node.pgno != walk.root)
    {
        return Err(Doubt);
    }
    let mut area = Area::of(&page)?;
    let mut children = Vec::new();
    // The key last seen: each is above it, the first above the page's lower bound.
    let mut last = node.low;
    let in_order = |key: i64, last: Option<i64>| {
        last.is_none_or(|l| key > l) && node.high.is_none_or(|h| key <= h)
    };
    let records = match walk.records {
        Records::Here(rule) => Some(rule),
        Records::ByVisitor => None,
    };
    for i in 0..page.cell_count {
        let offset = page.cell_offset(i).ok_or(Doubt)?;
        let cell = cell::parse(&page, offset).map_err(|_| Doubt)?;
        area.take(
            offset,
            cell::parsed_space(&page, offset, &cell).ok_or(Doubt)?,
        )?;
        match cell {
            Cell::TableLeaf { rowid, payload } => {
                if !in_order(rowid, last) {
                    return Err(Doubt);
                }
                last = Some(rowid);
                if let Some(rule) = records {
                    record_ok(&payload, rule)?;
                }
                overflow_chain(walk, node.pgno, &payload)?;
                visit(Some(rowid), &payload)?;
            }
            Cell::TableInterior {
                left_child,
                rowid: key,
            } => {
                if !in_order(key, last) {
                    return Err(Doubt);
                }
                children.push(Node {
                    pgno: left_child,
                    parent: node.pgno,
                    low: last,
                    high: Some(key),
                });
                last = Some(key);
            }
            Cell::IndexLeaf { payload } => {
                if records.is_some() {
                    record_ok(&payload, None)?;
                }
                overflow_chain(walk, node.pgno, &payload)?;
                visit(None, &payload)?;
            }
            Cell::IndexInterior {
                left_child,
                payload,
            } => {
                if records.is_some() {
                    record_ok(&payload, None)?;
                }
                overflow_chain(walk, node.pgno, &payload)?;
                children.push(Node {
                    pgno: left_child,
                    parent: node.pgno,
                    low: None,
                    high: None,
                });
            }
        }
    }
    if let Some(right) = page.right_child {
        children.push(Node {
            pgno: right,
            parent: node.pgno,
            low: last,
            high: node.high,
        });
    }
    area.finish(&page)?;
    Ok(children)
}

/// A page's content area, as its cells and freeblocks take it: they must not overlap or
/// leave it, and the bytes left between them are the fragments the header counts.
struct Area {
    start: usize,
    end: usize,
    /// One bit per byte of the page: taken.
    taken: Vec<u64>,
    /// Bytes taken.
    total: usize,
}

impl Area {
    fn of(page: &BtreePage<'_>) -> Result<Area, Doubt> {
        let start = usize::try_from(page.content_start).map_err(|_| Doubt)?;
        let end = page.usable;
        if start < page.pointers_end() || start > end {
            return Err(Doubt);
        }
        Ok(Area {
            start,
            end,
            taken: vec![0; end.div_ceil(64)],
            total: 0,
        })
    }

    /// Takes `len` bytes at `offset`: a doubt when they leave the area or are taken already.
    fn take(&mut self, offset: usize, len: usize) -> Result<(), Doubt> {
        let stop = offset.checked_add(len).ok_or(Doubt)?;
        if offset < self.start || stop > self.end {
            return Err(Doubt);
        }
        let mut at = offset;
        while at < stop {
            let (word, bit) = (at / 64, at % 64);
            let n = (64 - bit).min(stop - at);
            let mask = if n == 64 {
                !0
            } else {
                ((1u64 << n) - 1) << bit
            };
            if self.taken[word] & mask != 0 {
                return Err(Doubt);
            }
            self.taken[word] |= mask;
            at += n;
        }
        self.total += len;
        Ok(())
    }

    /// Takes the freeblocks, then checks that what is left is the fragments the header
    /// counts.
    fn finish(mut self, page: &BtreePage<'_>) -> Result<(), Doubt> {
        if !page.freeblocks_are_sane() {
            return Err(Doubt);
        }
        // freeblocks_are_sane bounds the chain: it moves forward.
        let mut at = usize::from(page.first_freeblock);
        while at != 0 {
            self.take(at, be_u16(page.data, at + 2).ok_or(Doubt)?)?;
            at = be_u16(page.data, at).ok_or(Doubt)?;
        }
        if self.end - self.start - self.total == usize::from(page.fragmented_bytes) {
            Ok(())
        } else {
            Err(Doubt)
        }
    }
}

fn be_u16(data: &[u8], at: usize) -> Option<usize> {
    let b = data.get(at..at + 2)?;
    Some(usize::from(u16::from_be_bytes([b[0], b[1]])))
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The record's header is on the page and well formed, its fields fill the payload exactly,
/// and (in a table with `rule`) no NULL sits where its column may not be NULL.
pub(crate) fn record_ok(payload: &Payload<'_>, rule: Option<&RowRule>) -> Result<(), Doubt> {
    let bytes = payload.local;
    let (header_len, mut at) = varint::read(bytes).ok_or(Doubt)?;
    let header_len = usize::try_from(header_len).map_err(|_| Doubt)?;
    if header_len < at || header_len > bytes.len() {
        return Err(Doubt);
    }
    let mut body = 0u64;
    let mut field = 0usize;
    while at < header_len {
        let (serial, after) = varint::read_at(bytes, at).ok_or(Doubt)?;
        if after > header_len {
            return Err(Doubt);
        }
        body += record::serial_type_len(serial).ok_or(Doubt)?;
        if serial == 0 && rule.is_some_and(|r| r.not_null.get(field) == Some(&true)) {
            return Err(Doubt);
        }
        field += 1;
        at = after;
    }
    if (header_len as u64).checked_add(body) != Some(payload.total) {
        return Err(Doubt);
    }
    // A short row (written before ADD COLUMN) takes each missing value from the column's
    // default, which only SQL knows: a missing NOT NULL column is a doubt.
    if rule.is_some_and(|r| field > r.not_null.len() || r.not_null[field..].contains(&true)) {
        return Err(Doubt);
    }
    Ok(())
}

/// The payload's overflow chain, where pages are claimed: as many pages as its size needs,
/// each claimed, the last ending the chain.
fn overflow_chain(walk: &Walk<'_>, pgno: u32, payload: &Payload<'_>) -> Result<(), Doubt> {
    let (Some(ledger), Some(mut next)) = (walk.ledger, payload.overflow) else {
        return Ok(());
    };
    let needed = overflow::pages_needed(payload.total, payload.local.len(), walk.pages.usable);
    let mut role = Role::FirstOverflow(pgno);
    for _ in 0..needed {
        // A page claimed twice is a doubt: the loop ends within the file's page count.
        ledger.claim(walk.pages, next, role)?;
        role = Role::Overflow(next);
        next = walk.pages.head(next)?;
    }
    if next == 0 {
        Ok(())
    } else {
        Err(Doubt)
    }
}
