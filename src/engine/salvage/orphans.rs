//! Pages no tree reached. They are grouped (an orphaned interior page brings its subtree
//! with it), and each group's rows go back to their own table when the evidence is clear:
//! the table lost part of its tree (a hole) whose key range contains the group's keys, and
//! the group's records have a shape that table can hold, and no other table fits as well.
//! A group that fits a table with no hole is checked row by row against what that table
//! already has: identical rows are a stray copy, counted and not inserted twice. Everything
//! else goes to `lost_and_found`, with the reason in the report. A row lands once.

use crate::engine::pages::{Claims, PageStatus};
use crate::engine::salvage::holes::{find_hole, shrink_hole, sort_holes};
use crate::engine::salvage::membership::{RowPrint, Witnesses, MAX_PRINTS};
use crate::engine::schema::{SchemaEntry, Table};
use crate::engine::walk::{RowRef, TreeKind, Walker};
use crate::engine::writer::Writer;
use crate::engine::{note_damaged_value, GroupOutcome, OrphanGroup, TableReport};
use crate::format::page::{BtreePage, PageKind};
use crate::format::record::Field;
use crate::source::pagefile::looks_like_btree_page;
use crate::Result;
use std::collections::HashSet;

pub(crate) struct OrphanResult {
    pub groups: Vec<OrphanGroup>,
    /// Rows in lost_and_found that may be live rows of some table.
    pub lost_and_found_rows: u64,
    /// Rows in lost_and_found that cannot be live: every tree was whole, so no table is
    /// missing them (deleted rows on a page the freelist lost, or stale copies).
    pub stale_rows: u64,
    pub duplicate_rows: u64,
}

/// What the rows of one group look like.
struct Evidence {
    rows: u64,
    first: Option<i64>,
    last: Option<i64>,
    /// Per table: how many rows have a shape the table can hold.
    fit: Vec<u64>,
    /// The rows themselves (up to a bound), to be looked up in the tables' indexes.
    prints: Vec<RowPrint>,
}

enum Decision {
    Attribute {
        table: usize,
        hole: usize,
        /// The index evidence that told look-alike tables apart, when it took that.
        witness: Option<String>,
    },
    CheckDuplicates {
        tables: Vec<usize>,
        reason: String,
    },
    LostAndFound(String),
    Ignore(String),
}

pub(crate) fn recover_orphans(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    tables: &[Table],
    reports: &mut [TableReport],
    writer: &mut Writer,
    schema_whole: bool,
    entries: &[SchemaEntry],
) -> Result<OrphanResult> {
    for rep in reports.iter_mut() {
        sort_holes(&mut rep.holes);
    }
    // When the schema and every table's tree read whole, nothing is missing from any table:
    // orphan rows that are not copies of live rows cannot be live themselves.
    let trees_whole = schema_whole
        && reports
            .iter()
            .all(|r| r.holes.is_empty() && r.refused.is_none());
    let candidates = scan_unseen(walker, map)?;
    let children = children_of_orphan_interiors(walker, &candidates);
    let mut result = OrphanResult {
        groups: Vec::new(),
        lost_and_found_rows: 0,
        stale_rows: 0,
        duplicate_rows: 0,
    };
    // Tops first; then whatever a cycle of orphan pages left unclaimed.
    let tops = candidates.iter().filter(|(p, _)| !children.contains(p));
    let rest = candidates.iter().filter(|(p, _)| children.contains(p));
    for &(top, kind) in tops.chain(rest) {
        if !map.is_unseen(top) {
            continue;
        }
        let tree = if kind.is_table() {
            TreeKind::Table
        } else {
            TreeKind::Index
        };
        let (evidence, pages) = gather(walker, map, top, tree, tables)?;
        let witnesses = Witnesses {
            pf: walker.page_file(),
            entries,
        };
        let decision = decide(top, &evidence, tree, tables, reports, &witnesses);
        let group = apply(
            walker,
            map,
            top,
            tree,
            tables,
            reports,
            writer,
            trees_whole,
            &evidence,
            pages,
            decision,
            &mut result,
        )?;
        result.groups.push(group);
    }
    Ok(result)
}

/// Reads every page nothing has claimed; keeps those that read as b-tree pages.
fn scan_unseen(walker: &mut Walker<'_>, map: &mut Claims) -> Result<Vec<(u32, PageKind)>> {
    let pf = walker.page_file();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for pgno in 1..=map.page_count() {
        if !map.is_unseen(pgno) {
            continue;
        }
        if crate::engine::interrupted() {
            return Err(crate::Error::Interrupted {
                path: pf.path().to_path_buf(),
            });
        }
        walker.progress().inc(1);
        let header_offset = if pgno == 1 { 100 } else { 0 };
        let kind = pf.read(pgno, &mut buf).and_then(|_| {
            if !looks_like_btree_page(&buf[..pf.usable().min(buf.len())], header_offset) {
                return None;
            }
            BtreePage::parse(&buf, header_offset, pf.usable())
                .ok()
                .map(|p| p.kind)
        });
        match kind {
            Some(k) => out.push((pgno, k)),
            None => map.set(pgno, PageStatus::Unreadable, None),
        }
    }
    Ok(out)
}

fn children_of_orphan_interiors(
    walker: &Walker<'_>,
    candidates: &[(u32, PageKind)],
) -> HashSet<u32> {
    let pf = walker.page_file();
    let mut buf = Vec::new();
    let mut children = HashSet::new();
    for &(pgno, kind) in candidates.iter().filter(|(_, k)| !k.is_leaf()) {
        if pf.read(pgno, &mut buf).is_none() {
            continue;
        }
        let header_offset = if pgno == 1 { 100 } else { 0 };
        let Ok(page) = BtreePage::parse(&buf, header_offset, pf.usable()) else {
            continue;
        };
        debug_assert_eq!(page.kind, kind);
        for (_, cell) in crate::format::cell::cells(&page) {
            if let Ok(
                crate::format::cell::Cell::TableInterior { left_child, .. }
                | crate::format::cell::Cell::IndexInterior { left_child, .. },
            ) = cell
            {
                children.insert(left_child);
            }
        }
        if let Some(r) = page.right_child {
            children.insert(r);
        }
    }
    children
}

/// Walks a group once to see what it holds, then releases its pages for the real walk.
fn gather(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    top: u32,
    tree: TreeKind,
    tables: &[Table],
) -> Result<(Evidence, usize)> {
    let mut ev = Evidence {
        rows: 0,
        first: None,
        last: None,
        fit: vec![0; tables.len()],
        prints: Vec::new(),
    };
    let mut types = Vec::new();
    let cp = map.checkpoint();
    walk_group(
        walker,
        map,
        None,
        top,
        tree,
        PageStatus::OrphanLostAndFound,
        &mut |row: &RowRef<'_>| {
            ev.rows += 1;
            if ev.prints.len() < MAX_PRINTS {
                ev.prints.extend(RowPrint::of(row));
            }
            if let Some(r) = row.rowid {
                ev.first = Some(ev.first.map_or(r, |m| m.min(r)));
                ev.last = Some(ev.last.map_or(r, |m| m.max(r)));
            }
            pseudo_serial_types(row.fields, &mut types);
            for (t, table) in tables.iter().enumerate() {
                // A WITHOUT ROWID row has every field: an index's entry (fewer fields, its
                // key and a rowid) would otherwise fit the table's first columns.
                let whole = !table.without_rowid || types.len() == table.stored.len();
                if whole && table.fits(&types) {
                    ev.fit[t] += 1;
                }
            }
            Ok(())
        },
    )?;
    let claimed = map.changed_since(&cp).len();
    map.rollback(cp);
    Ok((ev, claimed))
}

/// Serial types standing for the decoded fields' storage classes (enough for shape checks).
fn pseudo_serial_types(fields: &[Field], out: &mut Vec<u64>) {
    out.clear();
    out.extend(fields.iter().map(|f| match f {
        Field::Null => 0,
        Field::Integer(_) => 1,
        Field::Real(_) => 7,
        Field::Blob { .. } => 12,
        Field::Text { .. } => 13,
    }));
}

fn mostly(part: u64, whole: u64) -> bool {
    whole > 0 && part * 10 >= whole * 9
}

fn decide(
    top_page: u32,
    ev: &Evidence,
    tree: TreeKind,
    tables: &[Table],
    reports: &[TableReport],
    witnesses: &Witnesses<'_>,
) -> Decision {
    if ev.rows == 0 {
        return Decision::Ignore("no rows on these pages".into());
    }
    let shaped: Vec<usize> = (0..tables.len())
        .filter(|&t| {
            let table = &tables[t];
            !table.internal
                && table.without_rowid == (tree == TreeKind::Index)
                && mostly(ev.fit[t], ev.rows)
        })
        .collect();
    let with_hole: Vec<(usize, usize)> = shaped
        .iter()
        .filter_map(|&t| {
            let hole = find_hole(&reports[t].holes, ev.first, ev.last)?;
            Some((t, hole))
        })
        .collect();
    let best = with_hole.iter().map(|(t, _)| ev.fit[*t]).max().unwrap_or(0);
    let top: Vec<&(usize, usize)> = with_hole
        .iter()
        .filter(|(t, _)| ev.fit[*t] == best)
        .collect();
    match top.as_slice() {
        [(t, h)] => Decision::Attribute {
            table: *t,
            hole: *h,
            witness: None,
        },
        [] if tree == TreeKind::Index => {
            Decision::Ignore("orphan index pages (indexes are rebuilt from the data)".into())
        }
        [] if shaped.is_empty() => {
            Decision::LostAndFound("no table has records of this shape".into())
        }
        [] => Decision::CheckDuplicates {
            tables: shaped.clone(),
            reason: format!(
                "records fit {} but no part of it was lost in this key range",
                names(tables, &shaped)
            ),
        },
        many => {
            let ts: Vec<usize> = many.iter().map(|(t, _)| *t).collect();
            let separated = witnesses
                .separate(&ev.prints, (ev.first, ev.last), tables, &ts)
                .or_else(|| witnesses.pointer_map_root(top_page, tables, &ts));
            match separated {
                Some((table, why)) => Decision::Attribute {
                    table,
                    hole: many
                        .iter()
                        .find(|(t, _)| *t == table)
                        .map_or(0, |(_, h)| *h),
                    witness: Some(why),
                },
                None => Decision::LostAndFound(format!(
                    "ambiguous: fits {} equally, and no index or pointer map tells them apart",
                    names(tables, &ts)
                )),
            }
        }
    }
}

fn names(tables: &[Table], ts: &[usize]) -> String {
    ts.iter()
        .map(|&t| tables[t].name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One orphan group being placed: where its tree starts, and the walker and ledger that
/// claim its pages.
struct GroupWalk<'w, 'a> {
    walker: &'w mut Walker<'a>,
    map: &'w mut Claims,
    top: u32,
    tree: TreeKind,
}

impl GroupWalk<'_, '_> {
    fn walk(
        &mut self,
        owner: Option<u32>,
        status: PageStatus,
        sink: &mut dyn FnMut(&RowRef<'_>) -> Result<()>,
    ) -> Result<()> {
        walk_group(
            self.walker,
            self.map,
            owner,
            self.top,
            self.tree,
            status,
            sink,
        )
    }
}

/// Where placed rows go, and the totals they add to.
struct Destination<'d, 'c> {
    tables: &'d [Table],
    reports: &'d mut [TableReport],
    writer: &'d mut Writer<'c>,
    result: &'d mut OrphanResult,
    trees_whole: bool,
}

#[allow(clippy::too_many_arguments)]
fn apply(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    top: u32,
    tree: TreeKind,
    tables: &[Table],
    reports: &mut [TableReport],
    writer: &mut Writer,
    trees_whole: bool,
    ev: &Evidence,
    pages: usize,
    decision: Decision,
    result: &mut OrphanResult,
) -> Result<OrphanGroup> {
    let mut group = OrphanGroup {
        top_page: top,
        pages,
        rows: ev.rows,
        first_rowid: ev.first,
        last_rowid: ev.last,
        outcome: GroupOutcome::LostAndFound,
        table: None,
        reason: String::new(),
        evidence: None,
    };
    let mut g = GroupWalk {
        walker,
        map,
        top,
        tree,
    };
    let mut to = Destination {
        tables,
        reports,
        writer,
        result,
        trees_whole,
    };
    match decision {
        Decision::Ignore(reason) => {
            g.walk(None, PageStatus::Unused, &mut |_| Ok(()))?;
            group.outcome = GroupOutcome::Ignored;
            group.reason = reason;
        }
        Decision::Attribute {
            table,
            hole,
            witness,
        } => {
            attribute(&mut g, &mut to, ev, table, hole, &mut group)?;
            group.evidence = witness;
        }
        Decision::CheckDuplicates { tables: ts, reason } => {
            check_duplicates(&mut g, &mut to, &ts, &reason, &mut group)?;
        }
        Decision::LostAndFound(reason) => {
            let mut lost = 0u64;
            let writer = &mut *to.writer;
            g.walk(None, PageStatus::OrphanLostAndFound, &mut |row| {
                lost += 1;
                writer.lost_and_found(None, row.page, row.rowid, row.payload, row.fields)
            })?;
            unplaced(&mut group, to.result, lost, reason, to.trees_whole);
        }
    }
    Ok(group)
}

/// Puts a group's rows back in table `t`, filling the hole they came from.
fn attribute(
    g: &mut GroupWalk<'_, '_>,
    to: &mut Destination<'_, '_>,
    ev: &Evidence,
    t: usize,
    hole: usize,
    group: &mut OrphanGroup,
) -> Result<()> {
    let table = &to.tables[t];
    let owner = to.reports[t].owner;
    let rep = &mut to.reports[t];
    let writer = &mut *to.writer;
    let mut lost = 0;
    let before = writer.counts(t);
    g.walk(Some(owner), PageStatus::OrphanAttributed, &mut |row| {
        if row.fields.len() > table.stored.len() {
            lost += 1;
            return writer.lost_and_found(None, row.page, row.rowid, row.payload, row.fields);
        }
        if !row.complete {
            note_damaged_value(writer, table, row)?;
            rep.damaged_rows += 1;
        }
        writer.insert_row(t, table, row.rowid, row.payload, row.fields, row.page)?;
        Ok(())
    })?;
    writer.flush(t, table)?;
    let after = writer.counts(t);
    rep.attributed_rows += after.in_place - before.in_place;
    rep.conflict_rows += after.conflicts - before.conflicts;
    to.result.lost_and_found_rows += lost;
    shrink_hole(&mut rep.holes, hole, ev.first, ev.last);
    group.outcome = GroupOutcome::Attributed;
    group.table = Some(table.name.clone());
    group.reason = match (ev.first, ev.last) {
        (Some(a), Some(b)) => format!(
            "records fit {} and rowids {a}..{b} lie in the part of its tree that was lost",
            table.name
        ),
        _ => format!("records fit {} and its tree lost pages", table.name),
    };
    Ok(())
}

/// A group that fits tables with no hole for it: rows identical to ones already recovered
/// are a stray copy; the others go to lost_and_found.
fn check_duplicates(
    g: &mut GroupWalk<'_, '_>,
    to: &mut Destination<'_, '_>,
    ts: &[usize],
    reason: &str,
    group: &mut OrphanGroup,
) -> Result<()> {
    let (tables, writer) = (to.tables, &mut *to.writer);
    let mut dup = 0u64;
    let mut lost = 0u64;
    let cp = g.map.checkpoint();
    g.walk(None, PageStatus::OrphanLostAndFound, &mut |row| {
        if let Some(rowid) = row.rowid {
            for &t in ts {
                if writer.has_identical_row(&tables[t], rowid, row.payload, row.fields)? {
                    dup += 1;
                    return Ok(());
                }
            }
        }
        lost += 1;
        writer.lost_and_found(None, row.page, row.rowid, row.payload, row.fields)
    })?;
    to.result.duplicate_rows += dup;
    let claimed = g.map.changed_since(&cp);
    g.map.keep(cp);
    if lost == 0 {
        for p in claimed {
            g.map.set(p, PageStatus::OrphanDuplicate, None);
        }
        group.outcome = GroupOutcome::Duplicate;
        group.reason = format!(
            "every row is already in {}: a stray copy",
            names(tables, ts)
        );
    } else {
        let reason = format!("{reason}; {dup} rows were identical copies");
        unplaced(group, to.result, lost, reason, to.trees_whole);
    }
    Ok(())
}

/// Walks an orphan group as it is: no parent gives bounds, and any record shape is read
/// (the evidence decides where the rows go, not the walk).
fn walk_group(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    owner: Option<u32>,
    top: u32,
    tree: TreeKind,
    status: PageStatus,
    sink: &mut dyn FnMut(&RowRef<'_>) -> Result<()>,
) -> Result<()> {
    walker.walk(map, owner, top, tree, status, &|_, _| true, sink)?;
    Ok(())
}

/// Records rows that went to lost_and_found: possibly live, or stale when every tree was whole.
fn unplaced(
    group: &mut OrphanGroup,
    result: &mut OrphanResult,
    rows: u64,
    reason: String,
    trees_whole: bool,
) {
    if trees_whole {
        result.stale_rows += rows;
        group.outcome = GroupOutcome::Stale;
        group.reason = format!(
            "{reason}; every table's tree read whole, so these are not live rows \
             (deleted rows on a page the freelist lost, or an old copy)"
        );
    } else {
        result.lost_and_found_rows += rows;
        group.outcome = GroupOutcome::LostAndFound;
        group.reason = reason;
    }
}
