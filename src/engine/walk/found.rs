//! What a walk finds: the kind of tree, the rows it hands on, the parts it could not read,
//! and its counts.

use crate::format::page::PageKind;
use crate::format::record::Field;

/// Whether a tree stores rows by rowid (table b-tree) or by key (index b-tree, which is also
/// how WITHOUT ROWID tables are stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TreeKind {
    Table,
    Index,
}

impl TreeKind {
    /// The kind of tree a table's rows are stored in.
    pub(crate) fn of(table: &crate::engine::schema::Table) -> TreeKind {
        if table.without_rowid {
            TreeKind::Index
        } else {
            TreeKind::Table
        }
    }

    pub(super) fn accepts(self, kind: PageKind) -> bool {
        kind.is_table() == (self == TreeKind::Table)
    }
}

/// A place in a tree whose rows could not be read: the key range it covered (exclusive low,
/// inclusive high, `None` for unbounded) and the page that should have held them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hole {
    pub lo: Option<i64>,
    pub hi: Option<i64>,
    pub page: u32,
    pub parent: Option<u32>,
    pub reason: String,
    /// Orphan pages were put back into this part of the tree; what is left of it is the gaps
    /// between them (which hold rows only if some page of the file could not be read).
    pub filled: bool,
}

impl Hole {
    /// Whether every key in `[first, last]` lies inside this hole.
    pub(crate) fn covers(&self, first: i64, last: i64) -> bool {
        self.lo.is_none_or(|lo| first > lo) && self.hi.is_none_or(|hi| last <= hi)
    }
}

/// One row as the walk found it: fields index into `payload`.
pub(crate) struct RowRef<'a> {
    pub rowid: Option<i64>,
    pub payload: &'a [u8],
    /// The record's fields, decoded; empty in a walk of shapes only ([`super::Walker::walk_shapes`]).
    pub fields: &'a [Field],
    /// How many fields the record's header declares.
    pub field_count: usize,
    /// False when part of the payload (an overflow page) could not be read.
    pub complete: bool,
    /// The overflow page where the chain broke, when it did.
    pub broken_overflow: Option<u32>,
    /// The first field not wholly read, and the byte offset in `payload` where it starts.
    pub first_missing: Option<(usize, usize)>,
    /// The record's header accounts for its payload's length exactly (false: the header
    /// was altered, or the payload was cut short).
    pub exact_length: bool,
    pub page: u32,
}

impl RowRef<'_> {
    /// Whether the row reads whole as a row of `table`: every value there, and no more
    /// fields than it has columns (what a copy of its record would carry as it is).
    pub(crate) fn whole_for(&self, table: &crate::engine::schema::Table) -> bool {
        self.complete && self.field_count <= table.stored.len()
    }
}

/// What one walk saw.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct WalkStats {
    pub pages: u64,
    pub rows: u64,
    /// Cells that could not be decoded (their rows are lost).
    pub bad_cells: u64,
    /// Rows whose payload was cut short by a broken overflow chain.
    pub incomplete_rows: u64,
    pub holes: Vec<Hole>,
    /// Pages whose rows were read despite signs of damage (bad cells, keys out of order,
    /// records of the wrong length): their values may not be what was written.
    pub suspect_pages: Vec<u32>,
    /// Rows read from those pages.
    pub suspect_rows: u64,
    /// Smallest and largest rowid emitted (table trees).
    pub min_rowid: Option<i64>,
    pub max_rowid: Option<i64>,
}

impl WalkStats {
    /// Adds what another walk saw to this one's counts and lists.
    pub(crate) fn absorb(&mut self, other: WalkStats) {
        self.pages += other.pages;
        self.rows += other.rows;
        self.bad_cells += other.bad_cells;
        self.incomplete_rows += other.incomplete_rows;
        self.holes.extend(other.holes);
        self.suspect_pages.extend(other.suspect_pages);
        self.suspect_rows += other.suspect_rows;
        self.min_rowid = match (self.min_rowid, other.min_rowid) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_rowid = match (self.max_rowid, other.max_rowid) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Whether anything in the walk was less than whole: a hole, a cell that would not
    /// decode, a page with signs of damage, a value cut short.
    pub(crate) fn is_damaged(&self) -> bool {
        !self.holes.is_empty()
            || self.bad_cells > 0
            || self.suspect_rows > 0
            || self.incomplete_rows > 0
    }
}
