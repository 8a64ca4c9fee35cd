//! What the engine reports of one recovery: per table, per orphan group, per schema object,
//! and for the whole file. Built by the engine, rendered by `output/` and the commands.

use crate::engine::losses;
use crate::engine::pages::{MapStatus, PageStatus};
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
    /// How the result is proved sound: every b-tree's structure walked from its pages and a
    /// digest of every index against its table's rows (the default), or SQLite's full
    /// `integrity_check`.
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
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    /// A committed transaction the `-wal` holds past damage wrote to this table: it may miss
    /// any number of rows, whatever SQLite counts (`engine.wal.commits_ignored`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rows_lost_in_wal: bool,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ObjectReport {
    pub kind: ObjectKind,
    pub name: String,
    pub created: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything the engine knows about one recovery.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub source: PathBuf,
    pub output: PathBuf,
    pub geometry: Geometry,
    pub wal: Option<WalInfo>,
    /// A hot rollback journal beside the snapshot, whose original pages were read in place
    /// of the ones its unfinished transaction changed.
    pub journal: Option<crate::source::pagefile::JournalInfo>,
    /// Committed transactions the `-shm` records that neither the `-wal` nor the main file
    /// holds: rows, or changes to them, that are in no file.
    #[serde(default)]
    pub wal_index_gap: Option<crate::source::pagefile::WalIndexGap>,
    pub schema_entries: usize,
    /// The names of the tables the engine added beside the user's (lost_and_found, ...),
    /// chosen free of the source's own names.
    pub side_tables: crate::engine::writer::SideNames,
    /// Collations the schema names that only the application registers: stand-ins that kept
    /// the source's order served during the recovery; the application must register them
    /// again before it uses the file (see how-it-works.md §3).
    pub app_collations: Vec<String>,
    /// SQL functions only the application registers that the schema uses. Where no stored
    /// value depends on one (CHECK, DEFAULT, virtual generated columns) a stand-in returning
    /// NULL served during the recovery; tables and indexes whose stored values it computed
    /// were loaded as the source stores them. The application must register them again.
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
    /// Rows whose foreign key names no parent row (`PRAGMA foreign_key_check`); `None` where
    /// SQLite cannot count them (a key naming a parent key without a UNIQUE index).
    pub foreign_key_violations: Option<u64>,
    /// Every page's status and owner, in runs of consecutive pages: what the damage map
    /// draws (absent only from a report read back without it).
    #[serde(
        serialize_with = "serialize_page_map",
        deserialize_with = "deserialize_page_map",
        default
    )]
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

/// The final status and owner of every page, built once by the engine from its claims
/// ledger: the report's page map and what the damage map draws. Pages are numbered from 1
/// with no gap; a run covers consecutive pages of one status and one owner, so a long stretch
/// (a file cut short by gigabytes) costs one entry. Owners index `owners` (table and index
/// names, `(freelist)`, `(pointer map)`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PageMapSnapshot {
    pub owners: Vec<String>,
    pub runs: Vec<PageRun>,
}

/// Pages `first..=last`, all of one status and owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageRun {
    pub first: u32,
    pub last: u32,
    pub status: MapStatus,
    pub owner: Option<u32>,
}

impl PageMapSnapshot {
    /// Adds page `pgno`, which must follow the last page added.
    pub fn push(&mut self, pgno: u32, status: MapStatus, owner: Option<u32>) {
        self.push_run(pgno, pgno, status, owner);
    }

    /// Adds pages `first..=last`, which must follow the last page added.
    pub fn push_run(&mut self, first: u32, last: u32, status: MapStatus, owner: Option<u32>) {
        match self.runs.last_mut() {
            Some(r)
                if r.status == status
                    && r.owner == owner
                    && r.last.checked_add(1) == Some(first) =>
            {
                r.last = last;
            }
            _ => self.runs.push(PageRun {
                first,
                last,
                status,
                owner,
            }),
        }
    }

    /// How many pages the map covers.
    pub fn page_count(&self) -> u64 {
        self.runs.last().map_or(0, |r| u64::from(r.last))
    }

    /// Every page in order, with its status and owner (runs expanded as they are read).
    pub fn pages(&self) -> impl Iterator<Item = (u32, MapStatus, Option<u32>)> + '_ {
        self.runs
            .iter()
            .flat_map(|r| (r.first..=r.last).map(move |p| (p, r.status, r.owner)))
    }

    /// The name of an owner, if it has one.
    pub fn owner_name(&self, owner: Option<u32>) -> Option<&str> {
        owner
            .and_then(|o| self.owners.get(o as usize))
            .map(String::as_str)
    }
}

fn serialize_page_map<S: serde::Serializer>(
    map: &Option<std::sync::Arc<PageMapSnapshot>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&map.as_deref(), s)
}

fn deserialize_page_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::sync::Arc<PageMapSnapshot>>, D::Error> {
    let map: Option<PageMapSnapshot> = serde::Deserialize::deserialize(d)?;
    Ok(map.map(std::sync::Arc::new))
}

impl Report {
    pub fn integrity_ok(&self) -> bool {
        self.integrity.len() == 1 && self.integrity[0] == "ok"
    }
}

/// What `--fill-from` did: the backups used, and per table which lost rows came back from
/// them (docs/report-format.md, `fill`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FillReport {
    /// The side tables the filled rows and the collisions are recorded in.
    pub filled_table: String,
    pub collisions_table: String,
    /// Newest first: the order in which they were asked for rows.
    pub backups: Vec<BackupUsed>,
    pub tables: Vec<TableFill>,
    /// Every difference between a backup's schema and the recovered one.
    pub schema_differences: Vec<SchemaDifference>,
    /// Sums of the tables' counts.
    pub filled_rows: u64,
    pub collided_rows: u64,
    pub deleted_since_rows: u64,
}

/// Where a backup's date comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateSource {
    /// The newest timestamp found in a date or time column of its tables.
    NewestTimestamp,
    /// The file's modification time (no timestamp was found in it).
    Mtime,
}

/// One backup as it was read.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupUsed {
    pub path: std::path::PathBuf,
    /// SHA-256 of the backup file as read (hex).
    pub sha256: String,
    /// As of when its rows are (RFC 3339, UTC): see `date_from`.
    pub date: String,
    pub date_from: DateSource,
    /// The file's modification time (RFC 3339, UTC).
    pub mtime: String,
    /// Rows filled from this backup.
    pub filled_rows: u64,
}

/// How a filled row was matched with a lost one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// A surviving index names its rowid among the lost rows.
    Rowid,
    /// Its rowid lies in a lost range whose bounds are exact.
    Range,
    /// Its rowid lies in a lost range that is only an estimate.
    EstimatedRange,
    /// A surviving index holds its values (a username, an email) for a lost row whose
    /// rowid the backup does not have: filled under the lost row's rowid.
    IndexedValues,
}

impl MatchedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Rowid => "rowid",
            MatchedBy::Range => "range",
            MatchedBy::EstimatedRange => "estimated_range",
            MatchedBy::IndexedValues => "indexed_values",
        }
    }
}

/// What the backups gave one table that lost rows.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TableFill {
    pub table: String,
    /// Rows that came back in place from the damaged database itself.
    pub back_in_place: u64,
    /// Rows inserted from a backup (as of its date: they may be stale).
    pub filled: u64,
    /// Of `filled`, how many by each way of matching (`MatchedBy` names).
    pub matched_by: BTreeMap<String, u64>,
    /// Backup rows in a lost range whose key (or a UNIQUE value) is held by a surviving row:
    /// kept in the collisions table, never overwriting it.
    pub collided: u64,
    /// Backup rows outside every lost range and absent from the damaged database (or in a
    /// range a whole index shows held no such row): deleted since the backup, not brought
    /// back.
    pub deleted_since: u64,
    /// Backup rows outside every lost range whose indexed values a surviving row holds under
    /// another rowid: the same row renumbered, left as it is (neither filled nor counted
    /// deleted).
    pub elsewhere: u64,
    /// Lost rows a surviving index names that no backup holds (created after the backup?),
    /// with the values the index holds; at most 1000.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub still_lost: Vec<losses::IndexedRow>,
    /// The columns of `still_lost[].values`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub still_lost_columns: Vec<String>,
    /// Why nothing could be filled, when that is so (a WITHOUT ROWID table whose lost page has no bounded keys, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What differs between a backup's schema and the recovered database's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SchemaDifference {
    /// The table is not in the backup (added since): nothing to fill it from.
    TableNotInBackup { backup: String, table: String },
    /// The backup has a table the damaged database does not.
    TableOnlyInBackup { backup: String, table: String },
    /// A column added since the backup: filled rows take its default.
    ColumnNotInBackup {
        backup: String,
        table: String,
        column: String,
    },
    /// A column the backup has and the damaged database does not: left out.
    ColumnOnlyInBackup {
        backup: String,
        table: String,
        column: String,
    },
}

impl SchemaDifference {
    /// One line for a person.
    pub fn describe(&self) -> String {
        match self {
            SchemaDifference::TableNotInBackup { table, .. } => {
                format!("{table}: not in the backup (added since?): nothing filled")
            }
            SchemaDifference::TableOnlyInBackup { table, .. } => {
                format!("{table}: only in the backup (dropped since?): left out")
            }
            SchemaDifference::ColumnNotInBackup { table, column, .. } => {
                format!("{table}.{column}: not in the backup (added since): filled rows take its default")
            }
            SchemaDifference::ColumnOnlyInBackup { table, column, .. } => {
                format!("{table}.{column}: only in the backup (dropped since?): left out")
            }
        }
    }
}
