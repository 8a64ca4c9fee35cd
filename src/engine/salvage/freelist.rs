//! The freelist and the pointer map: their pages are claimed so that they are not taken for
//! orphans, and deleted rows still on free pages can be exported.

use crate::engine::pages::{Claims, PageStatus};
use crate::engine::walk::{RowRef, TreeKind, Walker};
use crate::engine::writer::Writer;
use crate::engine::Engine;
use crate::error::Result;
use crate::format::freelist;
use crate::format::ptrmap;
use crate::source::pagefile::PageFile;

impl Engine<'_> {
    /// Follows the freelist from the header, claiming trunk and leaf pages. Stops at the
    /// first trunk that is out of range, already claimed or implausible.
    pub(crate) fn walk_freelist(
        &mut self,
        walker: &mut Walker<'_>,
        writer: &mut Writer,
        include_rows: bool,
    ) -> Result<(u64, Option<String>)> {
        // The header as SQLite reads it: a freelist changed since the last checkpoint starts
        // in the -wal's page 1.
        let Some(header) = crate::engine::run::current_header(self.pf)
            .or_else(|| self.pf.geometry().header.clone())
        else {
            return Ok((0, Some("header unreadable: freelist unknown".into())));
        };
        let owner = self.map.owner_named("(freelist)");
        let usable = self.pf.usable();
        let mut trunk = header.freelist_trunk;
        let mut buf = Vec::new();
        let mut found = 0u64;
        let mut leaves = Vec::new();
        let mut damaged = None;
        while trunk != 0 {
            if !self.map.is_unseen(trunk) || self.pf.read(trunk, &mut buf).is_none() {
                damaged = Some(format!(
                    "freelist trunk page {trunk} is invalid or already in use"
                ));
                break;
            }
            let Some(t) = freelist::parse_trunk(&buf, usable) else {
                break;
            };
            if t.stored_leaf_count as usize > (usable / 4).saturating_sub(2) {
                damaged = Some(format!(
                    "freelist trunk page {trunk} has an impossible leaf count"
                ));
                break;
            }
            self.map.claim(trunk, PageStatus::Free, Some(owner));
            found += 1;
            for leaf in t.leaves {
                if self.map.claim(leaf, PageStatus::Free, Some(owner)) {
                    found += 1;
                    leaves.push(leaf);
                }
            }
            trunk = t.next_trunk;
        }
        if damaged.is_none() && found != u64::from(header.freelist_count) {
            damaged = Some(format!(
                "header counts {} free pages, the freelist holds {found}",
                header.freelist_count
            ));
        }
        let mut rows = 0;
        if include_rows {
            for leaf in leaves {
                rows += export_free_page(walker, &mut self.map, leaf, writer)?;
            }
        }
        Ok((rows, damaged))
    }
}

impl Engine<'_> {
    /// Pages past the end the header states, where SQLite believes it (a file longer than its
    /// database: what `SQLITE_FCNTL_CHUNK_SIZE` or a VACUUM that shrank it leaves). SQLite
    /// never reads them, so whatever no tree reached there is free space, as the freelist
    /// is: its rows are old, and exported only when asked for. Returns the rows exported.
    pub(crate) fn claim_past_end(
        &mut self,
        walker: &mut Walker<'_>,
        writer: &mut Writer,
        include_rows: bool,
    ) -> Result<u64> {
        let Some(end) = crate::engine::run::current_header(self.pf)
            .filter(crate::format::header::Header::page_count_is_valid)
            .map(|h| h.page_count)
        else {
            return Ok(0);
        };
        let owner = self.map.owner_named("(freelist)");
        // Unless the -shm says a checkpoint wrote them after the header was: then they are
        // live pages the schema no longer reaches, left to the salvage of orphan pages.
        let live: std::collections::HashSet<u32> = self
            .pf
            .wal_index_gap()
            .map(|g| g.checkpointed_past_header.iter().copied().collect())
            .unwrap_or_default();
        let mut rows = 0;
        for pgno in end.saturating_add(1)..=self.map.page_count() {
            if self.map.is_unseen(pgno)
                && !live.contains(&pgno)
                && self.map.claim(pgno, PageStatus::Free, Some(owner))
                && include_rows
            {
                rows += export_free_page(walker, &mut self.map, pgno, writer)?;
            }
        }
        Ok(rows)
    }
}

/// Deleted rows still on a free page that reads as a table leaf: exported, never live.
pub(crate) fn export_free_page(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    pgno: u32,
    writer: &mut Writer,
) -> Result<u64> {
    // Walk it under a private map so the real map keeps it as free.
    let mut private = Claims::new(map.page_count());
    let mut rows = 0;
    walker.walk(
        &mut private,
        0,
        pgno,
        TreeKind::Table,
        PageStatus::Free,
        &|_, _| true,
        &mut |row: &RowRef<'_>| {
            rows += 1;
            writer.freelist_row(row.page, row.rowid, row.payload, row.fields)
        },
    )?;
    Ok(rows)
}

pub(crate) fn claim_ptrmap_pages(pf: &PageFile, map: &mut Claims) {
    let Some(h) = crate::engine::run::header_as_read(pf) else {
        return;
    };
    if h.largest_root_page == 0 {
        return;
    }
    let owner = map.owner_named("(pointer map)");
    let usable = pf.usable();
    let mut p = 2u32;
    // A usable size is at most 65536, so the step fits; were it not to, the loop stops at once.
    let step = u32::try_from(usable / 5 + 1).unwrap_or(u32::MAX);
    while p <= pf.page_count() {
        if ptrmap::is_ptrmap_page(p, usable) {
            map.claim(p, PageStatus::Ptrmap, Some(owner));
        }
        match p.checked_add(step) {
            Some(n) => p = n,
            None => break,
        }
    }
}
