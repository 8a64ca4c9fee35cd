//! The report's page map: every page's final status and owner, built once at the end of a
//! run from the claims ledger, for the report and the damage map alike. Two things the
//! ledger does not hold are folded in, so that a reader of the map need not look further:
//!
//! - where a walked page's image came from: a page read from the `-wal` is newer there (a
//!   commit not yet checkpointed, or a page the database grew by since), or healed from it
//!   (the main file's copy is zeroed, cut short, or not a b-tree page where the WAL's is one);
//! - pages past the end of a file cut short: the header, when SQLite would trust it, says how
//!   many pages the database had; those the files do not hold are drawn as missing.

use crate::engine::pages::{Claims, MapStatus, PageStatus};
use crate::engine::report::PageMapSnapshot;
use crate::source::pagefile::{looks_like_btree_page, Origin, PageFile};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// Builds the page map of a finished run.
pub(crate) fn build(pf: &PageFile, map: &Claims) -> PageMapSnapshot {
    let mut wal = WalImages::new(pf);
    let mut out = PageMapSnapshot {
        owners: map.owner_names().to_vec(),
        runs: Vec::new(),
    };
    for (pgno, status, owner) in map.iter() {
        let (status, owner) = match status {
            PageStatus::Tree | PageStatus::Overflow => {
                (wal.status(pgno).unwrap_or(status.into()), owner)
            }
            _ => (status.into(), owner),
        };
        out.push(pgno, status, owner);
    }
    let end = stated_page_count(pf);
    if end > map.page_count() {
        out.push_run(map.page_count() + 1, end, MapStatus::MissingPastEnd, None);
    }
    out
}

/// How many pages the header says the database has, when SQLite itself would believe it
/// (nonzero, and written by a version that kept it up to date); 0 otherwise. Only ever a
/// bound for a run of the map, never a size to allocate.
fn stated_page_count(pf: &PageFile) -> u32 {
    crate::engine::run::current_header(pf)
        .filter(crate::format::header::Header::page_count_is_valid)
        .map_or(0, |h| h.page_count)
}

/// Reads the main file's copy of pages whose image came from the `-wal`, to tell a newer
/// commit from a healed page.
struct WalImages<'a> {
    pf: &'a PageFile,
    main_file: Option<File>,
    main: Vec<u8>,
    wal: Vec<u8>,
}

impl<'a> WalImages<'a> {
    fn new(pf: &'a PageFile) -> WalImages<'a> {
        WalImages {
            pf,
            // No WAL: no page can have come from it, and the file need not be opened.
            main_file: pf.wal().and_then(|_| File::open(pf.path()).ok()),
            main: Vec::new(),
            wal: Vec::new(),
        }
    }

    /// `NewerInWal` or `HealedFromWal` for a page read from the `-wal`; `None` otherwise.
    fn status(&mut self, pgno: u32) -> Option<MapStatus> {
        let file = self.main_file.as_ref()?;
        if self.pf.origin(pgno) != Some(Origin::Wal) {
            return None;
        }
        if pgno > self.pf.geometry().file_pages {
            // The database grew after the last checkpoint: the page exists only in the WAL.
            return Some(MapStatus::NewerInWal);
        }
        let size = self.pf.page_size();
        self.main.resize(size, 0);
        let offset = u64::from(pgno - 1) * size as u64;
        let whole = file.read_exact_at(&mut self.main, offset).is_ok();
        let header = if pgno == 1 { 100 } else { 0 };
        let usable = self.pf.usable().min(size);
        let damaged = !whole
            || self.main.iter().all(|b| *b == 0)
            || (self.pf.read(pgno, &mut self.wal).is_some()
                && looks_like_btree_page(&self.wal[..usable.min(self.wal.len())], header)
                && !looks_like_btree_page(&self.main[..usable], header));
        Some(if damaged {
            MapStatus::HealedFromWal
        } else {
            MapStatus::NewerInWal
        })
    }
}
