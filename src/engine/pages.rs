//! The claims ledger: what each page of the database turned out to be, and which tree (if
//! any) owns it. Every step that claims pages does it here, and every step that may have to
//! give its claims back takes a [`Checkpoint`] first and ends it with [`Claims::keep`] or
//! [`Claims::rollback`]. The report's page counts and the damage map read the same ledger.
//!
//! One status byte and one owner number per page: memory grows with the page count only.
//! Changes are journaled only while a checkpoint is open, so a walk that cannot fail keeps
//! nothing beyond the two arrays.

use serde::Serialize;
use std::collections::HashMap;
use std::num::NonZeroU32;

/// The status of one page, as the report and the damage map show it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, PartialOrd, Ord,
)]
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

/// What the report's page map and the damage map say of one page: the ledger's status, with
/// the pages read from the `-wal` and the pages missing past the end of a cut-short file told
/// apart (see `engine::page_map`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum MapStatus {
    /// Reached by a tree walk (interior or leaf page), read from the main file.
    Tree,
    /// An overflow page of a row reached by a walk, read from the main file.
    Overflow,
    Free,
    Ptrmap,
    /// A tree or overflow page whose image is a newer commit in the `-wal` (the main file
    /// holds an older copy, or none: the page was added after the last checkpoint).
    NewerInWal,
    /// A tree or overflow page read from the `-wal` whose main-file copy is damaged (zeroed,
    /// or not a b-tree page where the WAL's is one): the WAL healed it.
    HealedFromWal,
    /// A tree pointed here and the page could not be used: whatever rows it held are lost
    /// unless orphan pages filled its place.
    Lost,
    OrphanAttributed,
    OrphanLostAndFound,
    OrphanDuplicate,
    Unused,
    Unreadable,
    Unseen,
    /// Past the end of the file: the header (or a tree's pointer) says the database is longer
    /// than the files hold, so the file was cut short.
    MissingPastEnd,
}

impl From<PageStatus> for MapStatus {
    fn from(s: PageStatus) -> MapStatus {
        match s {
            PageStatus::Unseen => MapStatus::Unseen,
            PageStatus::Tree => MapStatus::Tree,
            PageStatus::Overflow => MapStatus::Overflow,
            PageStatus::Free => MapStatus::Free,
            PageStatus::Ptrmap => MapStatus::Ptrmap,
            PageStatus::Lost => MapStatus::Lost,
            PageStatus::OrphanAttributed => MapStatus::OrphanAttributed,
            PageStatus::OrphanLostAndFound => MapStatus::OrphanLostAndFound,
            PageStatus::OrphanDuplicate => MapStatus::OrphanDuplicate,
            PageStatus::Unused => MapStatus::Unused,
            PageStatus::Unreadable => MapStatus::Unreadable,
        }
    }
}

/// A position in the ledger's journal: the claims made after it can be listed, kept or
/// rolled back.
#[must_use = "a checkpoint must be ended with Claims::keep or Claims::rollback"]
#[derive(Debug)]
pub(crate) struct Checkpoint {
    at: usize,
}

/// One change, with what the page was before it.
#[derive(Debug, Clone, Copy)]
struct Change {
    pgno: u32,
    status: PageStatus,
    owner: Option<NonZeroU32>,
}

pub(crate) struct Claims {
    status: Vec<PageStatus>,
    /// The owner's number plus one, so that "no owner" costs no extra byte.
    owner: Vec<Option<NonZeroU32>>,
    /// Owner names, in the order they were first named; an owner's number indexes this.
    names: Vec<String>,
    by_name: HashMap<String, u32>,
    journal: Vec<Change>,
    open: usize,
}

impl Claims {
    pub(crate) fn new(page_count: u32) -> Claims {
        let n = page_count as usize + 1;
        Claims {
            status: vec![PageStatus::Unseen; n],
            owner: vec![None; n],
            names: Vec::new(),
            by_name: HashMap::new(),
            journal: Vec::new(),
            open: 0,
        }
    }

    pub(crate) fn page_count(&self) -> u32 {
        u32::try_from(self.status.len() - 1).unwrap_or(u32::MAX)
    }

    /// The owner number of a tree (or "(freelist)", "(pointer map)"), by name: the same name
    /// always gets the same number.
    pub(crate) fn owner_named(&mut self, name: &str) -> u32 {
        if let Some(&o) = self.by_name.get(name) {
            return o;
        }
        let o = u32::try_from(self.names.len()).unwrap_or(u32::MAX - 1);
        self.names.push(name.to_string());
        self.by_name.insert(name.to_string(), o);
        o
    }

    /// The names of every owner, indexed by owner number.
    pub(crate) fn owner_names(&self) -> &[String] {
        &self.names
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
            .flatten()
            .map(|o| o.get() - 1)
    }

    pub(crate) fn is_unseen(&self, pgno: u32) -> bool {
        pgno != 0 && self.status(pgno) == PageStatus::Unseen
    }

    /// Marks a page; returns false if it was already claimed by something (a page is
    /// claimed once: a second reference is damage, never followed).
    pub(crate) fn claim(&mut self, pgno: u32, status: PageStatus, owner: Option<u32>) -> bool {
        if !self.is_unseen(pgno) {
            return false;
        }
        self.set(pgno, status, owner);
        true
    }

    /// Sets a page's status whatever it was (used when the orphan pass decides).
    pub(crate) fn set(&mut self, pgno: u32, status: PageStatus, owner: Option<u32>) {
        let i = pgno as usize;
        let (Some(&was_status), Some(&was_owner)) = (self.status.get(i), self.owner.get(i)) else {
            return;
        };
        if self.open > 0 {
            self.journal.push(Change {
                pgno,
                status: was_status,
                owner: was_owner,
            });
        }
        self.status[i] = status;
        self.owner[i] = owner.and_then(|o| NonZeroU32::new(o.saturating_add(1)));
    }

    /// Starts journaling: every change from here can be listed or rolled back.
    pub(crate) fn checkpoint(&mut self) -> Checkpoint {
        self.open += 1;
        Checkpoint {
            at: self.journal.len(),
        }
    }

    /// The pages claimed or changed since `cp`, in order.
    pub(crate) fn changed_since(&self, cp: &Checkpoint) -> Vec<u32> {
        self.journal
            .get(cp.at..)
            .unwrap_or(&[])
            .iter()
            .map(|c| c.pgno)
            .collect()
    }

    /// Keeps every change since `cp`.
    pub(crate) fn keep(&mut self, cp: Checkpoint) {
        self.close(cp);
    }

    /// Undoes every change since `cp`, newest first, so each page is as it was at `cp`.
    pub(crate) fn rollback(&mut self, cp: Checkpoint) {
        let undo = self.journal.split_off(cp.at.min(self.journal.len()));
        for c in undo.into_iter().rev() {
            if let (Some(s), Some(o)) = (
                self.status.get_mut(c.pgno as usize),
                self.owner.get_mut(c.pgno as usize),
            ) {
                *s = c.status;
                *o = c.owner;
            }
        }
        self.close(cp);
    }

    /// Gives pages back as never seen, whatever claimed them: a step that claimed several
    /// tables' pages keeps some tables and gives the others back.
    pub(crate) fn release(&mut self, pages: &[u32]) {
        for &p in pages {
            self.set(p, PageStatus::Unseen, None);
        }
    }

    // Takes the checkpoint by value so that ending it (keep or rollback) uses it up.
    #[allow(clippy::needless_pass_by_value)]
    fn close(&mut self, cp: Checkpoint) {
        self.open = self.open.saturating_sub(1);
        if self.open == 0 {
            self.journal.clear();
        } else {
            let _ = cp;
        }
    }

    /// Marks as lost, owned by the table whose tree pointed there, each page a tree pointed
    /// at but could not use that the orphan pass then found to be a stray copy of rows
    /// recovered elsewhere, or a page with nothing to recover: its place in the tree, and
    /// whatever rows were there, is what was lost. `holes` gives (page, table owner).
    /// Pages whose rows were put back somewhere keep their status.
    pub(crate) fn mark_lost_in_place(&mut self, holes: impl IntoIterator<Item = (u32, u32)>) {
        for (pgno, owner) in holes {
            if matches!(
                self.status(pgno),
                PageStatus::OrphanDuplicate | PageStatus::Unused
            ) && pgno != 0
                && pgno <= self.page_count()
            {
                self.set(pgno, PageStatus::Lost, Some(owner));
            }
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
            let pgno = u32::try_from(i).unwrap_or(u32::MAX);
            (pgno, self.status[i], self.owner(pgno))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_every_page_as_it_was_at_the_checkpoint() {
        let mut c = Claims::new(6);
        let a = c.owner_named("a");
        let b = c.owner_named("b");
        assert!(c.claim(1, PageStatus::Tree, Some(a)));
        let outer = c.checkpoint();
        assert!(c.claim(2, PageStatus::Tree, Some(b)));
        let inner = c.checkpoint();
        assert!(c.claim(3, PageStatus::Overflow, Some(b)));
        c.set(1, PageStatus::Lost, None);
        assert_eq!(c.changed_since(&inner), vec![3, 1]);
        c.rollback(inner);
        assert_eq!(c.status(3), PageStatus::Unseen);
        assert_eq!((c.status(1), c.owner(1)), (PageStatus::Tree, Some(a)));
        assert_eq!(c.changed_since(&outer), vec![2]);
        c.rollback(outer);
        assert!(c.is_unseen(2));
        assert_eq!(c.owner(2), None);
    }

    #[test]
    fn kept_claims_stay_and_the_journal_empties() {
        let mut c = Claims::new(4);
        let a = c.owner_named("a");
        let cp = c.checkpoint();
        assert!(c.claim(4, PageStatus::Tree, Some(a)));
        assert!(
            !c.claim(4, PageStatus::Tree, Some(a)),
            "a page is claimed once"
        );
        c.keep(cp);
        assert_eq!(c.owner(4), Some(a));
        assert!(c.journal.is_empty());
        assert_eq!(c.owner_named("a"), a);
        assert_eq!(c.owner_names(), ["a".to_string()]);
    }

    #[test]
    fn a_stray_copy_where_a_tree_pointed_is_lost_in_place() {
        let mut c = Claims::new(5);
        let t = c.owner_named("t");
        c.set(2, PageStatus::OrphanDuplicate, None);
        c.set(3, PageStatus::Unused, None);
        c.set(4, PageStatus::OrphanAttributed, Some(t));
        c.mark_lost_in_place([(2, t), (3, t), (4, t), (9, t)]);
        assert_eq!((c.status(2), c.owner(2)), (PageStatus::Lost, Some(t)));
        assert_eq!(c.status(3), PageStatus::Lost);
        assert_eq!(
            c.status(4),
            PageStatus::OrphanAttributed,
            "its rows were put back"
        );
    }

    #[test]
    fn pages_out_of_range_are_ignored() {
        let mut c = Claims::new(2);
        assert!(!c.claim(0, PageStatus::Tree, None));
        assert!(!c.claim(9, PageStatus::Tree, None));
        c.set(9, PageStatus::Lost, Some(0));
        assert_eq!(c.status(9), PageStatus::Unused);
        assert_eq!(c.counts().get(&PageStatus::Unseen), Some(&2));
    }
}
