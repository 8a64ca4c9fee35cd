//! Tables that lost interior pages only, put back together and copied like whole ones.
//!
//! A zeroed interior (or root) page cuts its whole subtree off from the table, but every row is
//! still on its leaves, which now belong to no tree. When every hole in a table's tree lies
//! where such a page was, and the pages no tree reached hold subtrees whose keys fall inside
//! the holes, the engine writes a new interior page for each hole (pointing at those subtrees
//! in key order) into the page view SQLite reads through, and the table is copied as a whole
//! one would be. This is done only when an index of the table reads whole and holds exactly as
//! many entries as the rebuilt table has rows: the proof that nothing is missing and nothing
//! extra (an old copy of a page) came in. Otherwise the table is decoded and its orphan pages
//! put back row by row, as before.
//!
//! When every hole is a lost page of which nothing survives (no orphan subtree fits it), the
//! rows there are gone: each lost page is cut out of its parent in the view and the rest of the
//! table is copied, with exactly the rows its walk found ([`prune`]).

use crate::engine::copy::transfer::{self, Source};
use crate::engine::copy::vfs::Registration;
use crate::engine::pages::{Claims, PageStatus};
use crate::engine::schema::{SchemaEntry, Table};
use crate::engine::walk::{Hole, WalkStats, Walker};
use crate::engine::OrphanGroup;
use crate::format::cell::{cells, Cell};
use crate::format::freelist;
use crate::format::page::{BtreePage, PageKind};
use crate::format::varint;
use crate::source::pagefile::looks_like_btree_page;
use rusqlite::Connection;
use std::collections::HashSet;

/// A subtree no tree reached: its top page and the keys at its two ends.
#[derive(Debug, Clone)]
pub(crate) struct Subtree {
    top: u32,
    first: i64,
    last: i64,
}

/// Finds the tops of the table-tree subtrees among the pages nothing has claimed and the
/// freelist does not hold (a free page keeps the rows it had), with the keys at their ends.
pub(crate) fn orphan_subtrees(walker: &Walker<'_>, map: &Claims) -> Vec<Subtree> {
    let pf = walker.page_file();
    let free = freelist_pages(pf, map.page_count());
    let mut buf = Vec::new();
    let mut found = Vec::new();
    let mut children = HashSet::new();
    for pgno in 2..=map.page_count() {
        if !map.is_unseen(pgno) || free.contains(&pgno) || pf.read(pgno, &mut buf).is_none() {
            continue;
        }
        if !looks_like_btree_page(&buf[..pf.usable().min(buf.len())], 0) {
            continue;
        }
        let Ok(page) = BtreePage::parse_strict(&buf, 0, pf.usable()) else {
            continue;
        };
        match page.kind {
            PageKind::TableLeaf => found.push(pgno),
            PageKind::TableInterior => {
                found.push(pgno);
                for (_, cell) in cells(&page) {
                    if let Ok(Cell::TableInterior { left_child, .. }) = cell {
                        children.insert(left_child);
                    }
                }
                children.extend(page.right_child);
            }
            _ => {}
        }
    }
    found
        .into_iter()
        .filter(|p| !children.contains(p))
        .filter_map(|top| {
            let (first, last) = (end_key(pf, top, false)?, end_key(pf, top, true)?);
            (first <= last).then_some(Subtree { top, first, last })
        })
        .collect()
}

/// The smallest (or largest) rowid under a table-tree page, found by going down its left
/// (or right) edge. The walk that claims the subtree later checks it end to end.
fn end_key(pf: &crate::source::pagefile::PageFile, mut pgno: u32, largest: bool) -> Option<i64> {
    let mut buf = Vec::new();
    for _ in 0..32 {
        pf.read(pgno, &mut buf)?;
        let page = BtreePage::parse_strict(&buf, 0, pf.usable()).ok()?;
        let n = page.cell_count;
        match page.kind {
            PageKind::TableLeaf => {
                let at = if largest { n.checked_sub(1)? } else { 0 };
                return match cells(&page).nth(usize::from(at))?.1.ok()? {
                    Cell::TableLeaf { rowid, .. } => Some(rowid),
                    _ => None,
                };
            }
            PageKind::TableInterior if largest => pgno = page.right_child?,
            PageKind::TableInterior => match cells(&page).next()?.1.ok()? {
                Cell::TableInterior { left_child, .. } => pgno = left_child,
                _ => return None,
            },
            _ => return None,
        }
    }
    None
}

/// Every page the header's freelist names (trunks and leaves), as far as it can be followed.
fn freelist_pages(pf: &crate::source::pagefile::PageFile, page_count: u32) -> HashSet<u32> {
    let mut pages = HashSet::new();
    // The freelist as SQLite reads it: changed since the last checkpoint, it starts in the
    // -wal's page 1.
    let Some(header) = crate::engine::run::header_as_read(pf) else {
        return pages;
    };
    let mut trunk = header.freelist_trunk;
    let mut buf = Vec::new();
    while trunk != 0 && trunk <= page_count && pages.insert(trunk) {
        let Some(t) = pf
            .read(trunk, &mut buf)
            .and_then(|_| freelist::parse_trunk(&buf, pf.usable()))
        else {
            break;
        };
        pages.extend(t.leaves.into_iter().filter(|&l| l != 0 && l <= page_count));
        trunk = t.next_trunk;
    }
    pages
}

/// What putting a table back together did.
pub(crate) struct Repaired {
    pub attributed_rows: u64,
    pub holes: Vec<Hole>,
    pub groups: Vec<OrphanGroup>,
    pub indexes: Vec<String>,
    /// Whether the table's indexes were walked (their pages claimed) on the way.
    pub indexes_walked: bool,
}

/// How a table that did not read whole can still be copied.
pub(crate) enum Plan<'s> {
    /// Its lost interior pages rebuilt over the subtrees that survive, hole by hole.
    Rebuild(Vec<Planned<'s>>),
    /// Every hole is a lost page of which nothing survives: cut out of the parents ([`prune`]).
    Prune,
}

/// Plans the repair of `table`, whose own walk (`stats`) claimed its pages: `None` unless
/// every hole is a page of its own tree that was lost, and no cell or row is damaged. A
/// rebuild takes pages past the end of the view when one page cannot hold a hole's children.
pub(crate) fn plan<'s>(
    view: &Registration<'_>,
    pf: &crate::source::pagefile::PageFile,
    map: &Claims,
    owner: u32,
    table: &Table,
    stats: &'s WalkStats,
    subtrees: &'s [Subtree],
) -> Option<Plan<'s>> {
    let lost_here = |h: &Hole| {
        h.page != 0 && map.status(h.page) == PageStatus::Lost && map.owner(h.page) == Some(owner)
    };
    if table.internal
        || table.without_rowid
        || stats.holes.is_empty()
        || stats.bad_cells > 0
        || stats.suspect_rows > 0
        || stats.incomplete_rows > 0
        || !stats.holes.iter().all(lost_here)
    {
        return None;
    }
    // Each hole gets the subtrees whose keys lie inside it, in key order, none overlapping.
    let insides: Vec<Vec<&Subtree>> = stats
        .holes
        .iter()
        .map(|hole| {
            let mut inside: Vec<&Subtree> = subtrees
                .iter()
                .filter(|s| hole.covers(s.first, s.last))
                .collect();
            inside.sort_by_key(|s| s.first);
            inside
        })
        .collect();
    if insides.iter().all(Vec::is_empty) {
        return Some(Plan::Prune);
    }
    let mut planned = Vec::new();
    for (hole, inside) in stats.holes.iter().zip(insides) {
        let ordered = inside.windows(2).all(|w| w[0].last < w[1].first);
        let children: Vec<(u32, i64)> = inside.iter().map(|s| (s.top, s.last)).collect();
        let pages =
            interior_levels(view, children, pf.usable(), pf.page_size()).filter(|_| ordered)?;
        planned.push((hole, inside, pages));
    }
    Some(Plan::Rebuild(planned))
}

/// Puts a rebuild's pages into the view (`show`), or takes them out again.
pub(crate) fn show_rebuilt(view: &Registration<'_>, plan: &[Planned<'_>], show: bool) {
    for (hole, _, pages) in plan {
        for (pgno, page) in pages {
            let at = pgno.unwrap_or(hole.page);
            if show {
                view.rebuild(at, page.clone());
            } else {
                view.forget(at);
            }
        }
    }
}

/// Tries to rebuild `table`'s lost interior pages over `subtrees` and copy it. The table's
/// own walk (`stats`) has claimed its pages. `None`, with every claim this
/// made given back, when the table must be decoded instead.
#[allow(clippy::too_many_arguments)]
pub(crate) fn try_table(
    conn: &Connection,
    view: &Registration<'_>,
    source: &Source,
    walker: &mut Walker<'_>,
    map: &mut Claims,
    owner: u32,
    table: &Table,
    indexes: &[(&SchemaEntry, u32)],
    stats: &WalkStats,
    subtrees: &[Subtree],
) -> crate::Result<Option<Repaired>> {
    let plan = match self::plan(view, walker.page_file(), map, owner, table, stats, subtrees) {
        None => return Ok(None),
        Some(Plan::Prune) => return prune(conn, view, source, walker, table, indexes, stats),
        Some(Plan::Rebuild(plan)) => plan,
    };
    // The new pages go into the view and the copy starts at once, while the subtrees and the
    // indexes are walked beside it on a second thread; the copy is kept only if they read
    // whole and an index agrees on the count.
    show_rebuilt(view, &plan, true);
    let Some(planned) = transfer::fresh_plan(source, table, indexes, None) else {
        show_rebuilt(view, &plan, false);
        return Ok(None);
    };
    let cp = map.checkpoint();
    let (checked, copied) = {
        let (walker, map, plan) = (&mut *walker, &mut *map, &plan);
        transfer::copy_beside(
            conn,
            || transfer::start_fresh_copy(conn, view, table, &planned),
            move || check_rebuilt(walker, map, owner, table, indexes, stats.rows, plan),
            // Only an index that agrees on the count proves the table is complete.
            |c: &Rebuilt| !c.whole_indexes.is_empty(),
        )
    };
    let kept = match &checked {
        // Only an index that agrees on the count proves the table is complete.
        Ok(Some(c)) if !c.whole_indexes.is_empty() => {
            let total = stats.rows + c.attributed;
            let as_planned = planned
                .iter()
                .all(|(name, _)| c.whole_indexes.contains(name));
            if as_planned && matches!(copied, Some(Ok(n)) if n == total) {
                transfer::end_copy(conn, true)
            } else {
                // An index that did not read whole is built from the rows afterwards.
                transfer::end_copy(conn, false);
                transfer::copy_fresh(conn, view, source, table, indexes, &c.whole_indexes, total)?
            }
        }
        _ => {
            transfer::end_copy(conn, false);
            false
        }
    };
    let Some(rebuilt) = checked.ok().flatten().filter(|_| kept) else {
        show_rebuilt(view, &plan, false);
        map.rollback(cp);
        return Ok(None);
    };
    map.keep(cp);
    Ok(Some(repaired(table, stats, &plan, rebuilt)))
}

/// What the report says of a table put back together over its surviving subtrees.
pub(crate) fn repaired(
    table: &Table,
    stats: &WalkStats,
    plan: &[Planned<'_>],
    rebuilt: Rebuilt,
) -> Repaired {
    let Rebuilt {
        attributed,
        read,
        whole_indexes,
    } = rebuilt;
    let mut holes = stats.holes.clone();
    let mut groups = Vec::new();
    let mut read = read.into_iter();
    for ((_, inside, _), hole) in plan.iter().zip(holes.iter_mut()) {
        hole.filled = true;
        for s in inside {
            let (rows, pages) = read.next().unwrap_or_default();
            groups.push(OrphanGroup {
                top_page: s.top,
                pages: usize::try_from(pages).unwrap_or(usize::MAX),
                rows,
                first_rowid: Some(s.first),
                last_rowid: Some(s.last),
                outcome: crate::engine::GroupOutcome::Attributed,
                table: Some(table.name.clone()),
                reason: format!(
                    "rowids {}..{} lie in the part of {} under lost page {}, which was rebuilt \
                     over its surviving subtrees",
                    s.first, s.last, table.name, hole.page
                ),
                evidence: None,
            });
        }
    }
    Repaired {
        attributed_rows: attributed,
        holes,
        groups,
        indexes: whole_indexes.into_iter().collect(),
        indexes_walked: true,
    }
}

/// A table whose every hole is a lost page of which nothing survives anywhere (a zeroed leaf,
/// say): its rows there are gone, and the rest of the tree is whole. Each parent of a lost page
/// is shown without the pointer to it, and the table is copied as it now reads: exactly the
/// rows its walk found, as decoding it would insert. Its indexes, which still hold entries for
/// the lost rows, are built from the rows afterwards. The holes stay in the report, unfilled.
fn prune(
    conn: &Connection,
    view: &Registration<'_>,
    source: &Source,
    walker: &Walker<'_>,
    table: &Table,
    indexes: &[(&SchemaEntry, u32)],
    stats: &WalkStats,
) -> crate::Result<Option<Repaired>> {
    // No index is copied: an automatic one cannot be left out, so such a table is decoded.
    let Some(planned) = transfer::fresh_plan(source, table, indexes, Some(&HashSet::new())) else {
        return Ok(None);
    };
    let Some(parents) = pruned_parents(walker.page_file(), &stats.holes) else {
        return Ok(None);
    };
    for (pgno, page) in &parents {
        view.rebuild(*pgno, page.clone());
    }
    let copied = transfer::start_fresh_copy(conn, view, table, &planned);
    if !(matches!(copied, Some(Ok(n)) if n == stats.rows) && transfer::end_copy(conn, true)) {
        transfer::end_copy(conn, false);
        for (pgno, _) in &parents {
            view.forget(*pgno);
        }
        return Ok(None);
    }
    Ok(Some(Repaired {
        attributed_rows: 0,
        holes: stats.holes.clone(),
        groups: Vec::new(),
        indexes: Vec::new(),
        indexes_walked: false,
    }))
}

/// Each parent of the holes' pages, rewritten without its pointers to them. `None` if a
/// parent is not a readable table-interior page or would be left with no child.
pub(crate) fn pruned_parents(
    pf: &crate::source::pagefile::PageFile,
    holes: &[Hole],
) -> Option<Vec<(u32, Vec<u8>)>> {
    let mut lost: std::collections::BTreeMap<u32, HashSet<u32>> = Default::default();
    for h in holes {
        lost.entry(h.parent?).or_default().insert(h.page);
    }
    let mut buf = Vec::new();
    let mut pages = Vec::new();
    for (parent, gone) in lost {
        pf.read(parent, &mut buf)?;
        let page = BtreePage::parse_strict(&buf, 0, pf.usable()).ok()?;
        if page.kind != PageKind::TableInterior {
            return None;
        }
        let mut children = cells(&page)
            .map(|(_, c)| match c.ok()? {
                Cell::TableInterior { left_child, rowid } => Some((left_child, rowid)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        // The right-most child has no key of its own; it stays the right-most.
        children.push((page.right_child?, i64::MAX));
        children.retain(|(child, _)| !gone.contains(child));
        if children.is_empty() {
            return None;
        }
        pages.push((
            parent,
            interior_page(&children, pf.usable(), pf.page_size())?,
        ));
    }
    Some(pages)
}

/// What the walks beside a rebuilt table's copy found, when its subtrees read whole.
pub(crate) struct Rebuilt {
    /// Rows under the rebuilt pages.
    pub attributed: u64,
    /// Per subtree, in the plan's order: rows, pages.
    read: Vec<(u64, u64)>,
    /// The indexes that read whole with one entry per row of the rebuilt table.
    pub whole_indexes: HashSet<String>,
}

/// Claims the subtrees under the rebuilt pages for `table` (reading them again with its shape
/// check), then walks its indexes. `None` unless every subtree read whole with the keys its
/// ends promised.
pub(crate) fn check_rebuilt(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    owner: u32,
    table: &Table,
    indexes: &[(&SchemaEntry, u32)],
    walked_rows: u64,
    plan: &[Planned<'_>],
) -> crate::Result<Option<Rebuilt>> {
    let mut attributed = 0u64;
    let mut read = Vec::new();
    for (_, inside, _) in plan {
        for s in inside {
            let (st, readable) =
                walker.walk_whole(map, owner, s.top, table, PageStatus::OrphanAttributed)?;
            if !readable
                || st.is_damaged()
                || st.min_rowid != Some(s.first)
                || st.max_rowid != Some(s.last)
            {
                return Ok(None);
            }
            attributed += st.rows;
            read.push((st.rows, st.pages));
        }
    }
    let whole_indexes = transfer::whole_indexes(walker, map, indexes, walked_rows + attributed)?;
    Ok(Some(Rebuilt {
        attributed,
        read,
        whole_indexes,
    }))
}

/// One hole's part of the rebuild: the hole, the subtrees under it in key order, and the pages
/// that stand in for it.
pub(crate) type Planned<'s> = (&'s Hole, Vec<&'s Subtree>, Vec<(Option<u32>, Vec<u8>)>);

/// The pages that stand in for a lost interior page over `children` (page, largest key): one
/// page when they fit, else interior pages added past the end of the view (`Some(pgno)`)
/// under a top that takes the lost page's place (`None`).
#[allow(clippy::type_complexity)]
fn interior_levels(
    view: &Registration<'_>,
    mut children: Vec<(u32, i64)>,
    usable: usize,
    page_size: usize,
) -> Option<Vec<(Option<u32>, Vec<u8>)>> {
    // The most children a page takes whatever their keys (a key is at most 9 bytes).
    let per_page = (usable - 12) / (2 + 4 + 9) + 1;
    let mut pages = Vec::new();
    while children.len() > per_page {
        let mut parents = Vec::new();
        for group in children.chunks(per_page) {
            let page = interior_page(group, usable, page_size)?;
            let pgno = view.add_page();
            pages.push((Some(pgno), page));
            parents.push((pgno, group.last()?.1));
        }
        children = parents;
    }
    pages.push((None, interior_page(&children, usable, page_size)?));
    Some(pages)
}

/// A table-interior page pointing at `children` (page, largest key), in order: every child but
/// the last in a cell, the last as the right-most pointer. `None` if they do not fit.
fn interior_page(children: &[(u32, i64)], usable: usize, page_size: usize) -> Option<Vec<u8>> {
    let ((last, _), cells) = children.split_last()?;
    let mut page = vec![0u8; page_size];
    let mut content = usable;
    let mut pointers = Vec::with_capacity(cells.len());
    for (child, key) in cells {
        let mut cell = child.to_be_bytes().to_vec();
        // A rowid is stored as the varint of its two's-complement bits.
        cell.extend(varint::encode(u64::from_le_bytes(key.to_le_bytes())));
        content = content.checked_sub(cell.len())?;
        page.get_mut(content..content + cell.len())?
            .copy_from_slice(&cell);
        pointers.push(u16::try_from(content).ok()?);
    }
    if 12 + 2 * cells.len() > content {
        return None;
    }
    page[0] = 0x05;
    page[3..5].copy_from_slice(&u16::try_from(cells.len()).ok()?.to_be_bytes());
    // 65536 is stored as 0.
    let start = u16::try_from(content).unwrap_or(0);
    page[5..7].copy_from_slice(&start.to_be_bytes());
    page[8..12].copy_from_slice(&last.to_be_bytes());
    for (i, p) in pointers.iter().enumerate() {
        page[12 + 2 * i..14 + 2 * i].copy_from_slice(&p.to_be_bytes());
    }
    Some(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::page::BtreePage;

    #[test]
    fn a_rebuilt_interior_page_reads_back() {
        let page = interior_page(&[(7, 10), (9, 250), (3, 1 << 40)], 1024, 1024).unwrap();
        let p = BtreePage::parse_strict(&page, 0, 1024).unwrap();
        assert_eq!(p.kind, PageKind::TableInterior);
        assert_eq!(p.right_child, Some(3));
        let got: Vec<(u32, i64)> = cells(&p)
            .map(|(_, c)| match c.unwrap() {
                Cell::TableInterior { left_child, rowid } => (left_child, rowid),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, vec![(7, 10), (9, 250)]);
        assert!(interior_page(&[], 1024, 1024).is_none());
        let too_many: Vec<(u32, i64)> = (0..200).map(|i| (i + 2, i64::from(i) << 40)).collect();
        assert!(interior_page(&too_many, 1024, 1024).is_none());
    }
}
