//! What the engine reports of one recovery: per table, per orphan group, per schema object,
//! and for the whole file. Built by the engine, rendered by `output/` and the commands.

use crate::engine::losses;
use crate::engine::pages::PageStatus;
use crate::engine::walk::Hole;
use crate::source::pagefile::{Geometry, WalInfo};
use crate::util::progress::Progress;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Also export rows found on free pages (deleted rows) into `freelist_rows`.
    pub include_freelist: bool,
    /// A healthy database with the same schema, for tables whose schema rows were lost.
    pub schema_from: Option<PathBuf>,
    /// Leave out the proof that the result is sound (the caller checks it, or a benchmark
    /// times the recovery step alone). The report's `integrity` then says "not checked", and
    /// a copied index that disagrees with its rows is not found and rebuilt: a caller that
    /// skips the check and finds a problem later recovers again with the check on.
    pub skip_verify: bool,
    /// How the result is proved sound: `quick_check` and a digest of every index against its
    /// table's rows (the default), or SQLite's full `integrity_check`.
    pub verify: crate::engine::verify::VerifyMode,
    /// Decode every table row by row, also those that read whole (which are otherwise copied
    /// by SQLite's transfer path): the same rows, slower; for comparison and benchmarks.
    pub decode_all: bool,
    /// Never copy the whole database with `VACUUM INTO`, even when every tree reads whole:
    /// take the tables one by one, as for a damaged database; for comparison and benchmarks.
    pub table_by_table: bool,
    pub progress: Progress,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::HIDDEN
    }
}

/// What happened to one table.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableReport {
    pub name: String,
    /// Index of the tree in the page map's owner list.
    #[serde(skip)]
    pub owner: u32,
    pub root_page: u32,
    pub without_rowid: bool,
    /// Rows read by walking the table's tree from its root.
    pub walked_rows: u64,
    /// Rows from pages no tree reached, attributed back to this table by evidence.
    pub attributed_rows: u64,
    /// Rows SQLite refused on insert (duplicate key, constraint): kept in `rescue_conflicts`.
    pub conflict_rows: u64,
    /// Rows whose values could not all be read (broken overflow chain): the missing values
    /// are NULL and listed in `rescue_damaged_values`.
    pub damaged_rows: u64,
    /// Cells on readable pages that could not be decoded.
    pub bad_cells: u64,
    /// Rows read from pages that show signs of damage: present, but their values may have
    /// been altered (a flipped bit, say). Listed so they can be checked by hand.
    pub suspect_rows: u64,
    pub suspect_pages: Vec<u32>,
    /// Rows whose indexed values disagree with what an index of the source holds for their
    /// rowid: back, but not as written. The first of them are described in `altered`.
    pub altered_rows: u64,
    /// Of those, the rows that now hold the values their indexes hold (each row's record as
    /// read is kept in the side table `side_tables.altered_rows`).
    pub repaired_rows: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub altered: Vec<crate::engine::altered::AlteredRow>,
    /// Rows that are in the recovered table now.
    pub recovered_rows: u64,
    /// Parts of the tree that could not be read and were not filled from orphan pages.
    pub holes: Vec<Hole>,
    /// True when the table and its indexes read whole and SQLite copied its records as they
    /// are (after the engine had decoded and checked every one); false when its rows were
    /// decoded and inserted one by one.
    pub copied_intact: bool,
    /// True when rows of this table may be missing: a part of its tree could not be read and
    /// was not filled from orphan pages, or was filled but some page of the file that could
    /// have held its rows is unreadable.
    pub rows_may_be_missing: bool,
    /// The rowid ranges (or keys) of rows that are really missing, worked out from `holes`.
    pub lost: Vec<losses::LostRange>,
    /// What the table's surviving indexes still hold of its lost rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_values: Option<losses::IndexedValues>,
    /// Why the table's rows went to lost_and_found instead (its CREATE TABLE was refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// What became of an orphan group's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupOutcome {
    /// Put back in their own table.
    Attributed,
    /// Kept in lost_and_found: no table could be told.
    LostAndFound,
    /// In lost_and_found, but not live: every tree read whole (deleted rows, old copies).
    Stale,
    /// Every row already recovered: a stray copy.
    Duplicate,
    /// Nothing to recover (index pages, no rows).
    Ignored,
}

/// A group of pages no tree reached, and what became of its rows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrphanGroup {
    pub top_page: u32,
    pub pages: usize,
    pub rows: u64,
    pub first_rowid: Option<i64>,
    pub last_rowid: Option<i64>,
    pub outcome: GroupOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub reason: String,
    /// The index evidence that placed the group, when look-alike tables had to be told apart
    /// ("index X of T lists 118 of the 120 rows looked up; no index of U lists any").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// The kinds of schema object created after the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Index,
    View,
    Trigger,
    #[serde(rename = "virtual table")]
    VirtualTable,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Index => "index",
            ObjectKind::View => "view",
            ObjectKind::Trigger => "trigger",
            ObjectKind::VirtualTable => "virtual table",
        })
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectReport {
    pub kind: ObjectKind,
    pub name: String,
    pub created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything the engine knows about one recovery.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub source: PathBuf,
    pub output: PathBuf,
    pub geometry: Geometry,
    pub wal: Option<WalInfo>,
    /// A hot rollback journal beside the snapshot, whose original pages were read in place
    /// of the ones its unfinished transaction changed.
    pub journal: Option<crate::source::pagefile::JournalInfo>,
    pub schema_entries: usize,
    /// The names of the tables the engine added beside the user's (lost_and_found, ...),
    /// chosen free of the source's own names.
    pub side_tables: crate::engine::writer::SideNames,
    /// Collations the schema names that only the application registers: stand-ins that kept
    /// the source's order served during the recovery; the application must register them
    /// again before it uses the file (see how-it-works.md §3).
    pub app_collations: Vec<String>,
    /// SQL functions only the application registers, used by the schema where no stored
    /// value depends on them (CHECK, DEFAULT, virtual generated columns): stand-ins that
    /// return NULL served during the recovery; the application must register them again.
    pub app_functions: Vec<String>,
    /// Header settings of the source that the recovered file does not have, each as
    /// "setting: source X, recovered Y" (SQLite cannot write every one).
    pub settings_not_kept: Vec<String>,
    pub tables: Vec<TableReport>,
    pub objects: Vec<ObjectReport>,
    pub orphans: Vec<OrphanGroup>,
    /// Rows in lost_and_found that may be live rows of some table.
    pub lost_and_found_rows: u64,
    /// Rows also in lost_and_found that cannot be live rows: every tree read whole, so no
    /// table is missing them (deleted rows on a page the freelist lost, or an old copy).
    pub stale_rows: u64,
    pub duplicate_rows: u64,
    pub conflict_rows: u64,
    pub freelist_rows: u64,
    pub freelist_damaged: Option<String>,
    /// Pages per status ("tree", "free", "lost", "orphan-attributed", ...).
    pub pages: BTreeMap<PageStatus, u64>,
    /// `PRAGMA integrity_check` on the recovered database ("ok" or the first messages).
    pub integrity: Vec<String>,
    pub foreign_key_violations: u64,
    #[serde(skip)]
    pub page_map: Option<std::sync::Arc<PageMapSnapshot>>,
    /// The schema (page 1's tree) had unreadable parts: some tables may be unknown.
    pub schema_damaged: bool,
    /// Tables whose `sqlite_schema` row was lost, given back their name (and the columns
    /// their indexes name) from the rows of their indexes that survive.
    pub schema_rebuilt: Vec<crate::engine::salvage::rebuilt::RebuiltTable>,
    /// Every part of a tree the walks could not read, with why, as first met (before orphan
    /// pages filled any; at most 1000): the evidence `causes` reads.
    pub walk_damage: Vec<Hole>,
    /// Pages that could not be read and are not the page of a hole that orphan pages filled
    /// (zeroed or garbage pages, pages past the end): rows may have been on them.
    pub unexplained_pages: u64,
    /// SQLite's `VACUUM INTO` made the output (see [`vacuum`]): every table that read whole,
    /// was put back together or was copied around lost pages came with it.
    pub whole_database_copied: bool,
    /// Seconds spent reading and loading rows, building indexes, verifying.
    pub timings: BTreeMap<String, f64>,
}

/// The final status and owner of every page (for damage maps); owners index `owners`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageMapSnapshot {
    pub owners: Vec<String>,
    pub pages: Vec<(PageStatus, Option<u32>)>,
}

impl Report {
    pub fn integrity_ok(&self) -> bool {
        self.integrity.len() == 1 && self.integrity[0] == "ok"
    }
}
