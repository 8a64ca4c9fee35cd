//! What the holes the walks left mean for the tables: which unreadable pages nothing
//! explains, which tables may miss rows, which came back whole.

use crate::engine::pages::{Claims, PageStatus};
use crate::engine::report::TableReport;
use std::collections::HashSet;

/// Counts the unreadable pages nothing explains, marks the pages of holes lost in place, and
/// says which tables may miss rows; returns the count.
pub(super) fn settle_holes(map: &mut Claims, reports: &mut [TableReport], tables: usize) -> u64 {
    let unexplained = unexplained_pages(map, reports, tables);
    // After the count above, which reads a stray page's own bytes as what explains it.
    map.mark_lost_in_place(
        reports
            .iter()
            .flat_map(|r| r.holes.iter().map(move |h| (h.page, r.owner))),
    );
    for rep in reports.iter_mut() {
        // A WITHOUT ROWID table's hole has no rowid range that orphan pages could be shown
        // to cover: what filled it is not proof that nothing else was there.
        rep.rows_may_be_missing = rep.refused.is_some()
            || rep.holes.iter().any(|h| !h.filled)
            || (!rep.holes.is_empty() && (unexplained > 0 || rep.without_rowid));
    }
    unexplained
}

/// Tables that own a page an ignored `-wal` frame wrote (a committed transaction past damage
/// in the WAL) may miss rows: what that transaction wrote is in no page the engine read.
pub(super) fn mark_wal_losses(map: &Claims, pages: &[u32], reports: &mut [TableReport]) {
    let owners: HashSet<u32> = pages.iter().filter_map(|&p| map.owner(p)).collect();
    for rep in reports.iter_mut().filter(|r| owners.contains(&r.owner)) {
        rep.rows_may_be_missing = true;
        rep.rows_lost_in_wal = true;
    }
}

/// Tables every row of which came back: no part of their tree lost, none refused.
pub(super) fn intact_tables(reports: &[TableReport]) -> HashSet<String> {
    reports
        .iter()
        .filter(|r| r.holes.is_empty() && !r.rows_may_be_missing && r.refused.is_none())
        .map(|r| r.name.clone())
        .collect()
}

/// Unreadable pages that nothing explains. A lost page whose part of the tree orphan pages
/// filled was an interior page (it held no rows); a lost page of an index held no rows either.
pub(crate) fn unexplained_pages(map: &Claims, reports: &[TableReport], tables: usize) -> u64 {
    let table_owners: std::collections::HashSet<u32> = reports
        .iter()
        .take(tables.max(reports.len()))
        .map(|r| r.owner)
        .collect();
    let filled: std::collections::HashSet<u32> = reports
        .iter()
        .flat_map(|r| r.holes.iter().filter(|h| h.filled).map(|h| h.page))
        .collect();
    map.iter()
        .filter(|(pgno, status, owner)| match status {
            PageStatus::Unreadable => true,
            PageStatus::Lost => {
                owner.is_some_and(|o| table_owners.contains(&o)) && !filled.contains(pgno)
            }
            _ => false,
        })
        .count() as u64
}
