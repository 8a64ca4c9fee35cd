//! Walking one b-tree from a page: interior pages give children in key order, leaves give
//! rows. Every page is claimed once in the page map, so a second reference or a cycle is a
//! finding and never followed; depth and overflow chains are bounded. Where a child cannot
//! be used, the walk records a hole with the key bounds the parent gives it: the orphan pass
//! fills holes, and the report names what stays lost.

use crate::engine::pages::{Claims, PageStatus};
use crate::format::cell::{self, Cell};
use crate::format::page::{BtreePage, PageKind};
use crate::format::record::Field;
use crate::source::pagefile::PageFile;
use crate::Result;
use indicatif::ProgressBar;

mod belongs;
mod cells;
mod found;
pub use found::Hole;
pub(crate) use found::{RowRef, TreeKind, WalkStats};

/// Deeper than any real SQLite b-tree (a 512-byte-page tree of 2^64 rows is about 30 deep).
pub(crate) const MAX_DEPTH: usize = 40;

/// At most this many pages are listed by number in a report (counts stay exact).
pub(crate) const MAX_LISTED_PAGES: usize = 1000;

/// Checks a record's serial types against what a table can hold.
pub(crate) type ShapeCheck<'s> = &'s dyn Fn(Option<i64>, &[u64]) -> bool;

pub(crate) struct Walker<'a> {
    pf: &'a PageFile,
    page: Vec<u8>,
    ovf: Vec<u8>,
    payload: Vec<u8>,
    fields: Vec<Field>,
    types: Vec<u64>,
    bar: ProgressBar,
    /// Bytes of the current page that came from the file (less than a page when truncated).
    valid_len: usize,
    /// Signs of damage on the current page: its rows' values may not be what was written.
    anomalies: u32,
    interrupt: &'a (dyn Fn() -> bool + Sync),
    stop_when_damaged: bool,
    /// Pages and their structure only: cells are counted, no record is decoded.
    skim: bool,
    /// Records' shapes only: each row reaches the sink with its field count and no values.
    shapes_only: bool,
}

/// Why a page a tree pointed at was not used.
struct Unusable {
    reason: String,
    /// The page is a readable b-tree page that belongs elsewhere (not lost, just not here).
    stray: bool,
}

impl Unusable {
    fn lost(reason: String) -> Unusable {
        Unusable {
            reason,
            stray: false,
        }
    }

    fn stray(reason: String) -> Unusable {
        Unusable {
            reason,
            stray: true,
        }
    }
}

#[derive(Clone, Copy)]
struct Frame {
    pgno: u32,
    parent: Option<u32>,
    lo: Option<i64>,
    hi: Option<i64>,
    depth: usize,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(
        pf: &'a PageFile,
        bar: ProgressBar,
        interrupt: &'a (dyn Fn() -> bool + Sync),
    ) -> Walker<'a> {
        Walker {
            pf,
            page: Vec::new(),
            ovf: Vec::new(),
            payload: Vec::new(),
            fields: Vec::new(),
            types: Vec::new(),
            bar,
            valid_len: 0,
            anomalies: 0,
            interrupt,
            stop_when_damaged: false,
            skim: false,
            shapes_only: false,
        }
    }

    pub(crate) fn progress(&self) -> &ProgressBar {
        &self.bar
    }

    pub(crate) fn page_file(&self) -> &'a PageFile {
        self.pf
    }

    /// Walks the rows of `table` from `root` (its root, or the top of a subtree of it),
    /// claiming pages as `claim_as` with the table's shape check. Also returns whether every
    /// row read whole for the table ([`RowRef::whole_for`]).
    pub(crate) fn walk_whole(
        &mut self,
        map: &mut Claims,
        owner: impl Into<Option<u32>>,
        root: u32,
        table: &crate::engine::schema::Table,
        claim_as: PageStatus,
    ) -> Result<(WalkStats, bool)> {
        let owner = owner.into();
        let fits = |_: Option<i64>, types: &[u64]| table.fits(types);
        let mut whole = true;
        let stats = self.walk_shapes(
            map,
            owner,
            root,
            TreeKind::of(table),
            claim_as,
            &fits,
            &mut |row| {
                whole &= row.whole_for(table);
                Ok(())
            },
        )?;
        Ok((stats, whole))
    }

    /// Walks the tree under `root`, claiming its pages for `owner` with `claim_as`, and hands
    /// each row to `sink` (rows of index trees only when `emit_index_rows`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn walk(
        &mut self,
        map: &mut Claims,
        owner: impl Into<Option<u32>>,
        root: u32,
        tree: TreeKind,
        claim_as: PageStatus,
        shape: ShapeCheck<'_>,
        sink: &mut dyn FnMut(&RowRef<'_>) -> Result<()>,
    ) -> Result<WalkStats> {
        let owner = owner.into();
        let mut stats = WalkStats::default();
        let mut stack = vec![Frame {
            pgno: root,
            parent: None,
            lo: None,
            hi: None,
            depth: 0,
        }];
        while let Some(frame) = stack.pop() {
            if (self.interrupt)() {
                return Err(crate::Error::Interrupted {
                    path: self.pf.path().to_path_buf(),
                });
            }
            self.visit(
                map, owner, tree, claim_as, shape, sink, frame, &mut stack, &mut stats,
            )?;
            if self.stop_when_damaged && stats.is_damaged() {
                break;
            }
        }
        Ok(stats)
    }

    /// [`Walker::walk`] for a sink that asks only whether rows read whole: each row reaches it
    /// with its field count and no values (`fields` empty), which saves decoding them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn walk_shapes(
        &mut self,
        map: &mut Claims,
        owner: impl Into<Option<u32>>,
        root: u32,
        tree: TreeKind,
        claim_as: PageStatus,
        shape: ShapeCheck<'_>,
        sink: &mut dyn FnMut(&RowRef<'_>) -> Result<()>,
    ) -> Result<WalkStats> {
        self.shapes_only = true;
        let stats = self.walk(map, owner, root, tree, claim_as, shape, sink);
        self.shapes_only = false;
        stats
    }

    /// Makes walks stop at the first sign of damage (for walks that only ask whether a tree
    /// is whole).
    pub(crate) fn stop_when_damaged(&mut self, on: bool) {
        self.stop_when_damaged = on;
    }

    /// Makes walks read every page of a tree and check its structure (page kinds, child
    /// pointers, keys within their bounds, free blocks) without decoding the records: a few
    /// times faster, for a first look that finds a lost or overwritten page. Rows are
    /// counted as cells; no row reaches the sink.
    pub(crate) fn skim(&mut self, on: bool) {
        self.skim = on;
    }

    #[allow(clippy::too_many_arguments)]
    fn visit(
        &mut self,
        map: &mut Claims,
        owner: Option<u32>,
        tree: TreeKind,
        claim_as: PageStatus,
        shape: ShapeCheck<'_>,
        sink: &mut dyn FnMut(&RowRef<'_>) -> Result<()>,
        frame: Frame,
        stack: &mut Vec<Frame>,
        stats: &mut WalkStats,
    ) -> Result<()> {
        let hole = |reason: String| Hole {
            lo: frame.lo,
            hi: frame.hi,
            page: frame.pgno,
            parent: frame.parent,
            reason,
            filled: false,
        };
        if frame.depth > MAX_DEPTH {
            stats
                .holes
                .push(hole("tree deeper than any real b-tree".into()));
            return Ok(());
        }
        if !map.is_unseen(frame.pgno) {
            let why = match frame.pgno {
                0 => "child pointer is 0".to_string(),
                p if p > map.page_count() => format!("page {p} is past the end of the database"),
                p => format!("page {p} is referenced a second time ({:?})", map.status(p)),
            };
            stats.holes.push(hole(why));
            return Ok(());
        }
        let mut page = std::mem::take(&mut self.page);
        let result = self.visit_page(
            &mut page, map, owner, tree, claim_as, shape, sink, &frame, stack, stats,
        );
        self.page = page;
        if let Some(unusable) = result? {
            // A stray page (another tree's, or keys out of place) stays unclaimed so that its
            // own tree or the orphan pass can still take it; an unreadable page is lost.
            let unclaimed = map.status(frame.pgno) == PageStatus::Unseen;
            if unclaimed && !unusable.stray && claim_as == PageStatus::Tree {
                map.set(frame.pgno, PageStatus::Lost, owner);
            }
            stats.holes.push(hole(unusable.reason));
        }
        Ok(())
    }

    /// Returns why the page cannot be used where the tree expects it, if it cannot.
    #[allow(clippy::too_many_arguments)]
    fn visit_page(
        &mut self,
        buf: &mut Vec<u8>,
        map: &mut Claims,
        owner: Option<u32>,
        tree: TreeKind,
        claim_as: PageStatus,
        shape: ShapeCheck<'_>,
        sink: &mut dyn FnMut(&RowRef<'_>) -> Result<()>,
        frame: &Frame,
        stack: &mut Vec<Frame>,
        stats: &mut WalkStats,
    ) -> Result<Option<Unusable>> {
        let Some((_, valid_len)) = self.pf.read_valid(frame.pgno, buf) else {
            return Ok(Some(Unusable::lost("page could not be read".into())));
        };
        self.bar.inc(1);
        let header_offset = if frame.pgno == 1 { 100 } else { 0 };
        let page = match BtreePage::parse(buf, header_offset, self.pf.usable()) {
            Ok(p) => p,
            Err(e) => return Ok(Some(Unusable::lost(e.to_string()))),
        };
        if !tree.accepts(page.kind) {
            return Ok(Some(Unusable::stray(format!(
                "page is a {:?} page, not part of this tree",
                page.kind
            ))));
        }
        if !self.belongs(&page, frame, shape) {
            return Ok(Some(Unusable::stray(
                "page holds keys or records that do not belong here (a stray page)".into(),
            )));
        }
        self.valid_len = valid_len;
        map.claim(frame.pgno, claim_as, owner);
        stats.pages += 1;
        if page.kind.is_leaf() || page.kind == PageKind::IndexInterior {
            let rows_before = stats.rows;
            if self.skim {
                stats.rows += u64::from(page.cell_count);
            } else {
                self.emit_cells(&page, map, owner, sink, frame, stats)?;
            }
            if self.anomalies > 0 {
                stats.suspect_rows += stats.rows - rows_before;
                if stats.suspect_pages.len() < MAX_LISTED_PAGES {
                    stats.suspect_pages.push(frame.pgno);
                }
            }
        }
        if !page.kind.is_leaf() {
            push_children(&page, frame, stack);
        }
        Ok(None)
    }
}

fn push_children(page: &BtreePage<'_>, frame: &Frame, stack: &mut Vec<Frame>) {
    let cells: Vec<(u32, Option<i64>)> = cell::cells(page)
        .filter_map(|(_, cell)| match cell {
            Ok(Cell::TableInterior { left_child, rowid }) => Some((left_child, Some(rowid))),
            Ok(Cell::IndexInterior { left_child, .. }) => Some((left_child, None)),
            _ => None,
        })
        .collect();
    let trusted = trusted_dividers(&cells, frame);
    let mut children: Vec<Frame> = Vec::with_capacity(cells.len() + 1);
    let mut lo = frame.lo;
    for (i, &(child, key)) in cells.iter().enumerate() {
        // A divider out of order with its neighbours was altered: the bound is the next one
        // that is not, so the rows a child really holds stay inside its frame. Dividers in
        // order among themselves bound their children even past the bound the parent gave
        // (the parent's divider may be the altered one); `belongs` has already weighed this
        // page's keys against that bound.
        let hi = match key {
            Some(_) => (i..cells.len())
                .find_map(|j| trusted[j])
                .map_or(frame.hi, Some),
            None => frame.hi,
        };
        children.push(Frame {
            pgno: child,
            parent: Some(frame_pgno(frame)),
            lo,
            hi,
            depth: frame.depth + 1,
        });
        if let Some(k) = trusted[i] {
            lo = Some(k);
        }
    }
    if let Some(right) = page.right_child {
        // The page's own dividers reach past the parent's bound: that bound was altered,
        // and the rightmost child is bounded only by the rows after it.
        let past = matches!((lo, frame.hi), (Some(l), Some(h)) if l >= h);
        children.push(Frame {
            pgno: right,
            parent: Some(frame_pgno(frame)),
            lo,
            hi: if past { None } else { frame.hi },
            depth: frame.depth + 1,
        });
    }
    // Pushed in reverse so the leftmost child is walked first: rows come out in key order.
    stack.extend(children.into_iter().rev());
}

/// Each divider key of an interior table page that can bound its children: above the
/// page's own lower bound and in order with the dividers beside it (SQLite keeps them
/// strictly increasing). `None` for an index page's entries and for a divider that breaks
/// that order.
fn trusted_dividers(cells: &[(u32, Option<i64>)], frame: &Frame) -> Vec<Option<i64>> {
    (0..cells.len())
        .map(|i| {
            let key = cells[i].1?;
            let before = i.checked_sub(1).and_then(|j| cells[j].1);
            let after = cells.get(i + 1).and_then(|c| c.1);
            let in_order = before.is_none_or(|b| b < key) && after.is_none_or(|a| key < a);
            (in_order && frame.lo.is_none_or(|lo| key > lo)).then_some(key)
        })
        .collect()
}

fn frame_pgno(frame: &Frame) -> u32 {
    frame.pgno
}

/// Reads every readable row of the index tree at `root` under a ledger of its own, claiming
/// no page: an index consulted as evidence (of lost values, of which table a row belongs to)
/// rather than recovered.
pub(crate) fn read_index(
    pf: &PageFile,
    root: u32,
    sink: &mut dyn FnMut(&RowRef<'_>) -> Result<()>,
) -> Result<WalkStats> {
    read_tree(pf, root, TreeKind::Index, sink)
}

/// Reads every readable row of the tree at `root` under a ledger of its own, claiming no
/// page: rows read again after the recovery (the records of altered rows, kept as read).
pub(crate) fn read_tree(
    pf: &PageFile,
    root: u32,
    tree: TreeKind,
    sink: &mut dyn FnMut(&RowRef<'_>) -> Result<()>,
) -> Result<WalkStats> {
    read_trees(pf, std::iter::once(root), tree, sink)
}

/// [`read_tree`] for several roots (pages read as the top of a tree each) under one private
/// ledger: a page reached twice is read once, and the ledger is made once however many roots.
pub(crate) fn read_trees(
    pf: &PageFile,
    roots: impl Iterator<Item = u32>,
    tree: TreeKind,
    sink: &mut dyn FnMut(&RowRef<'_>) -> Result<()>,
) -> Result<WalkStats> {
    let mut claims = Claims::new(pf.page_count());
    let mut walker = Walker::new(
        pf,
        ProgressBar::hidden(),
        &crate::util::interrupt::interrupted,
    );
    let mut all = WalkStats::default();
    for root in roots {
        let stats = walker.walk(
            &mut claims,
            None,
            root,
            tree,
            PageStatus::Tree,
            &|_, _| true,
            sink,
        )?;
        all.absorb(stats);
    }
    Ok(all)
}

#[cfg(test)]
mod tests;
