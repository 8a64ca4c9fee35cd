//! The structure of every b-tree of the output, proved from its pages: what `quick_check`
//! proves of a file this tool wrote, one job per tree, on every core. Each page is checked
//! as SQLite writes it (its header, its cells and freeblocks filling the content area
//! without overlap, the fragments its header counts), each tree's leaves are at one depth,
//! a table's rowids rise through the tree, each record's header fills its payload, no NULL
//! sits where a column is NOT NULL, every overflow chain is as long as its payload needs, and
//! every page of the file is used exactly once: by a tree, by the freelist, or (the page
//! holding byte 2^30) by nothing.
//!
//! In an auto-vacuum file each page's pointer-map entry is checked too (its type: root,
//! free, overflow, child; and its parent), and the header's largest root page.
//!
//! It vouches only for what it recognises. Anything else (a page or record SQLite would not
//! write, a row rule only SQL can evaluate) is a
//! [`Doubt`], and SQLite's `quick_check` of the whole file decides instead; a table whose
//! rows need SQL (a CHECK constraint, STRICT types, a generated column, no rowid) has its
//! rows checked by `quick_check(TABLE)`. So this path makes the proof quicker, never weaker.

mod plan;
pub(super) mod walk;

use super::reader::Pages;
use crate::format::{freelist, header::Header};
use plan::Plan;
pub(super) use plan::{RowRule, TreeKind};
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use walk::{Records, Walk};

/// The walk met something it does not vouch for: `quick_check` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Doubt;

/// The byte SQLite never stores anything at: its page is used by nothing.
const PENDING_BYTE: u64 = 0x4000_0000;

/// What a page is to the pointer map of an auto-vacuum file: its type there, and its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Root,
    Free,
    /// The first page of an overflow chain, of the cell on this b-tree page.
    FirstOverflow(u32),
    /// A later page of an overflow chain, after this one.
    Overflow(u32),
    /// A b-tree page under this one.
    Child(u32),
}

impl Role {
    /// The pointer map's five bytes for a page of this role.
    fn entry(self) -> [u8; 5] {
        let (kind, parent) = match self {
            Role::Root => (1u8, 0),
            Role::Free => (2, 0),
            Role::FirstOverflow(p) => (3, p),
            Role::Overflow(p) => (4, p),
            Role::Child(p) => (5, p),
        };
        let p = parent.to_be_bytes();
        [kind, p[0], p[1], p[2], p[3]]
    }
}

/// Which pages something has claimed, shared by every job.
pub(super) struct Ledger {
    used: Vec<AtomicU64>,
    page_count: u32,
    pending: u32,
    /// In an auto-vacuum file, the entries each pointer-map page holds (it and the pages it
    /// maps make a run of this many plus one, from page 2).
    pointer_map: Option<u32>,
}

impl Ledger {
    fn new(page_count: u32, page_size: usize) -> Ledger {
        let words = usize::try_from(page_count / 64 + 1).unwrap_or(usize::MAX);
        let pending = u32::try_from(PENDING_BYTE / page_size.max(1) as u64 + 1).unwrap_or(0);
        Ledger {
            used: (0..words).map(|_| AtomicU64::new(0)).collect(),
            page_count,
            pending,
            pointer_map: None,
        }
    }

    /// Whether page `pgno` is a pointer-map page.
    fn is_pointer_map(&self, pgno: u32) -> bool {
        self.pointer_map
            .is_some_and(|j| pgno >= 2 && (pgno - 2) % (j + 1) == 0)
    }

    /// Claims page `pgno` in `role`: a doubt when it is not a page of the file, is claimed
    /// already, or (in an auto-vacuum file) the pointer map says otherwise of it.
    fn claim(&self, pages: &Pages, pgno: u32, role: Role) -> Result<(), Doubt> {
        if pgno == 0 || pgno > self.page_count || pgno == self.pending || self.is_pointer_map(pgno)
        {
            return Err(Doubt);
        }
        let (word, bit) = (pgno as usize / 64, 1u64 << (pgno % 64));
        let before = self.used[word].fetch_or(bit, Ordering::Relaxed);
        if before & bit != 0 {
            return Err(Doubt);
        }
        match self.pointer_map {
            // Page 1 has no entry: the map starts at page 3.
            Some(j) if pgno > 2 => {
                let map = 2 + (pgno - 2) / (j + 1) * (j + 1);
                let mut entry = [0u8; 5];
                let offset = 5 * usize::try_from(pgno - map - 1).map_err(|_| Doubt)?;
                pages.read_at(map, offset, &mut entry)?;
                if entry == role.entry() {
                    Ok(())
                } else {
                    Err(Doubt)
                }
            }
            _ => Ok(()),
        }
    }

    fn every_page_used(&self) -> bool {
        (1..=self.page_count).all(|p| {
            p == self.pending
                || self.is_pointer_map(p)
                || self.used[p as usize / 64].load(Ordering::Relaxed) & (1 << (p % 64)) != 0
        })
    }
}

/// The structure proof of one file: its plan, and what its jobs have found so far.
pub(super) struct Structure {
    plan: Plan,
    ledger: Ledger,
    header: Header,
    doubt: AtomicBool,
}

impl Structure {
    /// The proof's plan for the file at `path`, open on `conn`; `None` when `quick_check`
    /// proves the file instead.
    pub(super) fn new(conn: &Connection, path: &Path) -> rusqlite::Result<Option<Structure>> {
        let Some(plan) = plan::plan(conn)? else {
            return Ok(None);
        };
        let Some((header, pages)) = header(path) else {
            return Ok(None);
        };
        let mut ledger = Ledger::new(pages.page_count, pages.page_size);
        if header.largest_root_page != 0 {
            // Where the map would meet the page SQLite leaves unused, quick_check decides; so
            // it does where the header names another largest root page than the schema's.
            let largest_root = plan.trees.iter().map(|t| t.root).max().unwrap_or(1);
            if pages.page_count >= ledger.pending || header.largest_root_page != largest_root {
                return Ok(None);
            }
            ledger.pointer_map = Some(u32::try_from(pages.usable / 5).unwrap_or(0).max(1));
        }
        Ok(Some(Structure {
            plan,
            ledger,
            header,
            doubt: AtomicBool::new(false),
        }))
    }

    /// How many trees there are to walk.
    pub(super) fn trees(&self) -> usize {
        self.plan.trees.len()
    }

    /// The name of tree `k` (a table's or an index's), and of its table.
    pub(super) fn tree_names(&self, k: usize) -> (&str, &str) {
        let tree = &self.plan.trees[k];
        (&tree.name, &tree.table)
    }

    /// Tables whose rows `quick_check(TABLE)` checks.
    pub(super) fn rows_by_sqlite(&self) -> &[String] {
        &self.plan.rows_by_sqlite
    }

    /// Walks tree `k` of the file at `path`.
    pub(super) fn walk_tree(&self, path: &Path, k: usize) {
        let tree = &self.plan.trees[k];
        let walked = Pages::open(path).map_err(Doubt::from).and_then(|pages| {
            let walk = Walk {
                pages: &pages,
                ledger: Some(&self.ledger),
                root: tree.root,
                kind: tree.kind,
                records: Records::Here(tree.rows.as_ref()),
            };
            walk::entries(&walk, |_, _| Ok(()))
        });
        self.note(walked);
    }

    /// What a digest scan of the tree named `name` proves of its structure as it reads it:
    /// where it claims pages, and the rule its rows follow.
    pub(super) fn proof(&self, name: &str) -> Option<TreeProof<'_>> {
        let tree = self.plan.trees.iter().find(|t| t.name == name)?;
        Some(TreeProof {
            ledger: &self.ledger,
            rule: tree.rows.as_ref(),
        })
    }

    /// A digest scan that was to prove a tree's structure could not: `quick_check` will.
    pub(super) fn doubt(&self) {
        self.note(Err(Doubt));
    }

    /// Walks the freelist of the file at `path`.
    pub(super) fn walk_freelist(&self, path: &Path) {
        let walked = Pages::open(path)
            .map_err(|_| Doubt)
            .and_then(|pages| freelist_ok(&pages, &self.ledger, &self.header));
        self.note(walked);
    }

    fn note(&self, walked: Result<(), Doubt>) {
        if walked.is_err() {
            self.doubt.store(true, Ordering::Relaxed);
        }
    }

    /// Once every job has run: whether the structure is proved, every page used once.
    pub(super) fn proved(&self) -> bool {
        !self.doubt.load(Ordering::Relaxed) && self.ledger.every_page_used()
    }
}

/// What a digest scan reading a tree's pages proves of it on the way.
#[derive(Clone, Copy)]
pub(super) struct TreeProof<'a> {
    pub(super) ledger: &'a Ledger,
    pub(super) rule: Option<&'a RowRule>,
}

/// The file's header and pages, when its header's page count is the file's.
fn header(path: &Path) -> Option<(Header, Pages)> {
    let pages = Pages::open(path).ok()?;
    let mut first = Vec::new();
    pages.read(1, 1, &mut first).ok()?;
    let header = Header::parse(&first).ok()?;
    (header.page_count_is_valid() && header.page_count == pages.page_count)
        .then_some((header, pages))
}

/// The freelist: its trunk pages and their leaves, each claimed, as many as the header
/// counts.
fn freelist_ok(pages: &Pages, ledger: &Ledger, header: &Header) -> Result<(), Doubt> {
    let mut trunk = header.freelist_trunk;
    let mut counted = 0u64;
    let mut data = Vec::new();
    while trunk != 0 {
        // A trunk claimed twice is a doubt: the loop ends within the file's page count.
        ledger.claim(pages, trunk, Role::Free)?;
        pages.read(trunk, 1, &mut data).map_err(|_| Doubt)?;
        let t = freelist::parse_trunk(&data, pages.usable).ok_or(Doubt)?;
        if u64::from(t.stored_leaf_count) != t.leaves.len() as u64 {
            return Err(Doubt);
        }
        for &leaf in &t.leaves {
            ledger.claim(pages, leaf, Role::Free)?;
        }
        counted += 1 + t.leaves.len() as u64;
        trunk = t.next_trunk;
    }
    if counted == u64::from(header.freelist_count) {
        Ok(())
    } else {
        Err(Doubt)
    }
}

#[cfg(test)]
mod tests;
