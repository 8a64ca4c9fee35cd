//! What each page of the database turned out to be, and which tree (if any) owns it.
//! One byte and one owner index per page: memory grows with the page count only.

use serde::Serialize;

/// The status of one page, as the report and the damage map show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum PageStatus {
    /// Not reached by anything (yet).
    Unseen,
    /// An interior or leaf page reached by walking a tree from its root.
    Tree,
    /// An overflow page of a row reached by a walk.
    Overflow,
    /// A freelist trunk or leaf page.
    Free,
    /// A pointer-map page of an auto-vacuum database.
    Ptrmap,
    /// A page a tree pointed at that could not be used (zeroed, garbage, wrong kind).
    Lost,
    /// A page no tree reached whose rows were attributed back to their own table.
    OrphanAttributed,
    /// A page no tree reached whose rows went to lost_and_found.
    OrphanLostAndFound,
    /// A page no tree reached whose rows were all already recovered (a stray copy).
    OrphanDuplicate,
    /// A page no tree reached that reads well but holds no rows to recover (an orphaned
    /// index page: indexes are rebuilt from the data).
    Unused,
    /// A page no tree reached that is not a b-tree page at all (zeroed, garbage): whatever it
    /// held is gone.
    Unreadable,
}

pub(crate) const NO_OWNER: u32 = u32::MAX;

pub(crate) struct PageMap {
    status: Vec<PageStatus>,
    owner: Vec<u32>,
}

impl PageMap {
    pub(crate) fn new(page_count: u32) -> PageMap {
        let n = page_count as usize + 1;
        PageMap {
            status: vec![PageStatus::Unseen; n],
            owner: vec![NO_OWNER; n],
        }
    }

    pub(crate) fn page_count(&self) -> u32 {
        (self.status.len() - 1) as u32
    }

    pub(crate) fn status(&self, pgno: u32) -> PageStatus {
        self.status
            .get(pgno as usize)
            .copied()
            .unwrap_or(PageStatus::Unused)
    }

    pub(crate) fn owner(&self, pgno: u32) -> Option<u32> {
        self.owner
            .get(pgno as usize)
            .copied()
            .filter(|o| *o != NO_OWNER)
    }

    pub(crate) fn is_unseen(&self, pgno: u32) -> bool {
        pgno != 0 && self.status(pgno) == PageStatus::Unseen
    }

    /// Marks a page; returns false if it was already claimed by something (a page is
    /// claimed once: a second reference is damage, never followed).
    pub(crate) fn claim(&mut self, pgno: u32, status: PageStatus, owner: u32) -> bool {
        if !self.is_unseen(pgno) {
            return false;
        }
        self.set(pgno, status, owner);
        true
    }

    /// Sets a page's status whatever it was (used when the orphan pass decides).
    pub(crate) fn set(&mut self, pgno: u32, status: PageStatus, owner: u32) {
        if let (Some(s), Some(o)) = (
            self.status.get_mut(pgno as usize),
            self.owner.get_mut(pgno as usize),
        ) {
            *s = status;
            *o = owner;
        }
    }

    /// Pages per status, for the report.
    pub(crate) fn counts(&self) -> std::collections::BTreeMap<PageStatus, u64> {
        let mut out = std::collections::BTreeMap::new();
        for s in self.status.iter().skip(1) {
            *out.entry(*s).or_insert(0) += 1;
        }
        out
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, PageStatus, Option<u32>)> + '_ {
        (1..self.status.len()).map(move |i| {
            let o = self.owner[i];
            (i as u32, self.status[i], (o != NO_OWNER).then_some(o))
        })
    }
}
