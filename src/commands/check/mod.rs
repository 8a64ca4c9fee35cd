//! `check`: what is wrong with a database, from a private snapshot.
//!
//! The source is snapshotted into a temporary folder first; the header and WAL are read from
//! that snapshot with our own decoders, and `PRAGMA integrity_check` runs on a second,
//! writable copy (SQLite may replay the WAL or a hot journal when it opens a file). The
//! temporary folder is removed when the check ends, however it ends.

use crate::error::{exit, Error, Result};
use crate::format::header::Header;
use crate::source::pagefile::{looks_like_btree_page, Geometry, PageFile, WalInfo};
use crate::source::snapshot::{self, SnapshotOptions};
use crate::util::paths::working_copy;
use crate::util::progress::Progress;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// At most this many `integrity_check` messages.
    pub max_errors: u32,
    pub progress: Progress,
}

/// Everything `check` found, in the shape both the text and the JSON output are made from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckReport {
    /// Absolute path of the database checked.
    pub source: PathBuf,
    pub tool_version: String,
    pub sqlite_version: String,
    /// "healthy" or "damaged".
    pub status: String,
    /// The findings' summaries in words, or `["healthy"]`.
    pub classification: Vec<String>,
    pub findings: Vec<Finding>,
    pub header: HeaderFacts,
    pub wal: Option<WalFacts>,
    /// A hot `-journal`: a transaction that never committed, rolled back when read.
    pub journal: Option<crate::source::pagefile::JournalInfo>,
    pub integrity: IntegrityFacts,
    /// What the damage is consistent with, and how to prevent it (empty when healthy).
    pub causes: Vec<crate::engine::causes::Cause>,
    /// The time and free disk a recovery of this database should need.
    pub recovery_estimate: Option<crate::engine::estimate::Estimate>,
    /// Free bytes in the current folder, where `recover` makes its incident folder.
    pub free_here: Option<u64>,
    /// The command to run next.
    pub next_step: String,
    /// Caveats about the check itself (e.g. the source changed while it was copied).
    pub warnings: Vec<String>,
    pub exit_code: i32,
}

/// One conclusion, for an operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// A stable short name (serialized in kebab-case: "damaged-header", "truncated-file", ...).
    pub kind: FindingKind,
    /// What it means, in words.
    pub summary: String,
    /// Tables concerned, when known.
    pub tables: Vec<String>,
    /// Indexes concerned, when known.
    pub indexes: Vec<String>,
    /// Whether this counts as damage (exit code 1).
    pub damage: bool,
}

/// The kinds of damage a check names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    DamagedHeader,
    TruncatedFile,
    FreelistDamage,
    WalTornTail,
    WalUnusable,
    /// Committed transactions the `-shm` records that no file holds.
    WalLostCommits,
    /// A `-wal` cut short below the checkpoint the `-shm` records: SQLite would read its
    /// older frames over the main file's newer pages.
    WalOlderThanDatabase,
    BtreeStructure,
    IndexOnly,
    /// Index pages the engine's own walk of every index could not read (zeroed, garbage).
    IndexPages,
    TableData,
    SchemaUnreadable,
    Other,
}

/// What the first 100 bytes and the file size say.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeaderFacts {
    /// Whether the file starts with "SQLite format 3\0".
    pub magic_ok: bool,
    pub page_size: u32,
    /// Whether the page size was inferred (header damaged) rather than read.
    pub page_size_inferred: bool,
    pub file_size: u64,
    /// Pages physically in the main file (a partial last page counts).
    pub file_pages: u32,
    /// Whether the file size is a whole number of pages.
    pub whole_pages: bool,
    /// The in-header database size, when the header is readable.
    pub header_page_count: Option<u32>,
    /// Whether SQLite would trust the in-header size (change counter matches).
    pub header_page_count_valid: bool,
    /// Pages in the database as SQLite would see it, WAL applied.
    pub pages_with_wal: u32,
    /// Pages SQLite would read past the main file's end that no `-wal` or `-journal` holds:
    /// what a truncation cut off (after a checkpoint that stopped part way, the header may
    /// count pages only the `-wal` holds yet).
    pub pages_missing_past_end: u32,
    pub encoding: Option<String>,
    /// "wal" or "rollback", from the header's read/write versions.
    pub journal_mode: Option<String>,
    pub read_version: Option<u8>,
    pub write_version: Option<u8>,
    pub reserved_bytes: u8,
    pub freelist_count: Option<u32>,
    pub schema_format: Option<u32>,
    /// The SQLite version that last wrote the file, e.g. "3.45.1".
    pub last_written_by: Option<String>,
    /// Header fields outside what the format allows.
    pub problems: Vec<String>,
    /// Facts that had to be inferred.
    pub inferred: Vec<String>,
}

/// What the `-wal` holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WalFacts {
    pub bytes: u64,
    /// Frames that fit in the file.
    pub frames: u64,
    /// Frames with valid salts and checksums.
    pub valid_frames: u64,
    /// Valid frames up to the last commit: these are what SQLite applies.
    pub committed_frames: u64,
    /// Committed transactions in the WAL, not yet checkpointed into the main file.
    pub commits: u64,
    /// Frames after the last commit (stale frames from before a WAL reset, or a torn write).
    pub frames_after_last_commit: u64,
    /// Valid frames after the last commit: a transaction that never committed.
    pub tail_torn: bool,
    /// Distinct pages whose newest committed image is in the WAL.
    pub pages: usize,
    /// Database size in pages after the last commit.
    pub db_size: Option<u32>,
    /// Why the WAL is ignored as a whole, if it is.
    pub unusable: Option<String>,
}

/// How the database was found sound or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub enum CheckedBy {
    /// SQLite's `PRAGMA integrity_check` (and table by table where it stopped).
    #[default]
    #[serde(rename = "integrity_check")]
    IntegrityCheck,
    /// The proof `recover` makes of its result: every b-tree's structure walked from its pages
    /// (`quick_check` where the walk has a doubt), and every index matched with its table by
    /// digest, on every core. (Its JSON name is from when `quick_check` proved the structure.) Used first; a database it does not find sound is
    /// checked by `integrity_check`, whose messages say what is wrong.
    #[serde(rename = "quick_check+digests")]
    Digests,
}

/// What SQLite itself says.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IntegrityFacts {
    /// Which check gave the verdict.
    pub checked_by: CheckedBy,
    /// Whether the check ran to the end.
    pub ran: bool,
    /// Whether it answered "ok".
    pub ok: bool,
    /// Its messages (at most `limit`).
    pub messages: Vec<String>,
    pub limit: u32,
    /// Whether the limit was reached (there may be more).
    pub limit_reached: bool,
    /// What SQLite said when it could not open the database or read its schema.
    pub error: Option<String>,
    /// What SQLite said when the whole-database check stopped part way (it was then run
    /// table by table).
    pub aborted: Option<String>,
    /// Tables whose rows SQLite cannot read to the end.
    pub unreadable_tables: Vec<String>,
    /// Indexes SQLite cannot scan, while their table's rows read fine.
    pub unreadable_indexes: Vec<String>,
    /// Virtual tables whose own check stops for want of what the application registers (a
    /// tokenizer, a module, a function) while every b-tree checks out: not damage.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchecked_virtual_tables: Vec<String>,
    /// Rows `PRAGMA foreign_key_check` reports, when cheap enough to count: always where
    /// every key is counted from an index, and up to 256 MB otherwise.
    pub foreign_key_violations: Option<u64>,
}

mod classify;
mod evidence;
mod index_pages;
mod probe;
mod render;

/// Checks `db` (with its sidecars) from a private snapshot. Unusable inputs are errors
/// (exit 3); damage is a report with exit code 1.
pub fn check(db: &Path, opts: &CheckOptions) -> Result<CheckReport> {
    // Before the tests of the file itself: an empty -journal would otherwise be "empty".
    snapshot::refuse_sidecar(db)?;
    let source = crate::util::paths::resolved(db);
    let meta = std::fs::metadata(db).map_err(|e| snapshot::unusable_from_io(db, &e))?;
    if meta.is_dir() {
        return Err(Error::unusable(db, "is a directory, not a database file"));
    }
    if !meta.is_file() {
        return Err(Error::unusable(db, "is not a regular file"));
    }
    std::fs::File::open(db).map_err(|e| snapshot::unusable_from_io(db, &e))?;
    if meta.len() == 0 {
        return Err(Error::unusable(
            db,
            "empty file (0 bytes): not a database, nothing to check",
        ));
    }
    let tmp = crate::util::paths::temp_dir("sqlite-rescue-check-")?;
    let result = check_in(db, &source, tmp.path(), opts);
    let closed = tmp.close();
    let report = result?;
    closed.map_err(|e| Error::io(std::env::temp_dir(), e))?;
    Ok(report)
}

fn check_in(db: &Path, source: &Path, tmp: &Path, opts: &CheckOptions) -> Result<CheckReport> {
    let manifest = snapshot::take(
        db,
        &tmp.join("snapshot"),
        &SnapshotOptions {
            // A check is a diagnosis: take what is there and say so.
            allow_changing: true,
            progress: opts.progress,
            durable: false,
        },
    )?;
    let mut warnings = manifest.warnings.clone();
    let snap_db = manifest.db_path();
    let file_size = manifest.file("db").map_or(0, |f| f.size);
    if file_size == 0 {
        return Err(Error::unusable(db, "empty file (0 bytes): not a database"));
    }
    let head = read_head(&snap_db)?;
    let magic_ok = head.len() >= 100 && &head[..16] == crate::format::header::MAGIC;
    let pf = PageFile::open(&snap_db).map_err(|e| {
        let reason = match e {
            Error::Unusable { reason, .. } => reason,
            other => other.to_string(),
        };
        if magic_ok {
            Error::unusable(
                db,
                format!("damaged header and no usable page size: {reason}"),
            )
        } else {
            Error::unusable(db, reason)
        }
    })?;
    if !magic_ok && !pages_look_like_btrees(&pf) {
        return Err(Error::unusable(
            db,
            "not a SQLite database: no \"SQLite format 3\" header and its pages do not read as b-tree pages",
        ));
    }
    let mut header_facts = header_facts(pf.geometry(), magic_ok, file_size);
    header_facts.pages_missing_past_end = pf.pages_missing_past_end();
    let wal_facts = pf.wal().map(wal_facts);
    let journal = pf.journal().cloned();
    let (wal_findings, missing_wal) = sidecar_findings(&pf);
    // SQLite writes only to replay a -wal or roll a -journal back: without them it reads the
    // snapshot itself, read-only, and no gigabyte is copied a second time.
    let work = if crate::util::paths::has_wal_or_journal(&snap_db) {
        working_copy(&snap_db, &tmp.join("work"))?
    } else {
        snap_db.clone()
    };
    let limit = opts.max_errors.max(1);
    let (integrity, objects, conn) = probe::run_sqlite(&work, limit, file_size);
    warnings.extend(missing_wal);
    if manifest.attempts > 1 && warnings.is_empty() {
        warnings.push(format!(
            "the source changed while it was copied; {} passes were needed",
            manifest.attempts
        ));
    }

    let mut findings = classify::classify(
        &header_facts,
        wal_facts.as_ref(),
        &integrity,
        &objects,
        conn,
    );
    findings.extend(index_pages::finding(&pf));
    findings.extend(wal_findings);
    let sidecars = (pf.wal().is_some(), pf.journal().is_some());
    let causes = crate::engine::causes::likely_causes(&evidence::gather(
        &pf, sidecars, &integrity, &findings,
    ));
    drop(pf);
    let recovery_estimate =
        crate::engine::estimate::estimate(&snap_db, crate::engine::VerifyMode::Fast).ok();
    let damaged = findings.iter().any(|f| f.damage);
    let classification = if findings.is_empty() {
        vec!["healthy".to_string()]
    } else {
        findings.iter().map(|f| f.summary.clone()).collect()
    };
    let next_step = classify::next_step(source, &findings);
    Ok(CheckReport {
        source: source.to_path_buf(),
        tool_version: crate::VERSION.to_string(),
        sqlite_version: crate::sqlite_version().to_string(),
        status: if damaged { "damaged" } else { "healthy" }.to_string(),
        classification,
        findings,
        header: header_facts,
        wal: wal_facts,
        journal,
        integrity,
        causes,
        recovery_estimate,
        free_here: crate::engine::estimate::free_bytes(Path::new(".")),
        next_step,
        warnings,
        exit_code: if damaged { exit::DAMAGE } else { exit::OK },
    })
}

fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = Vec::with_capacity(100);
    f.take(100)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    Ok(head)
}

/// With the header gone, the pages themselves must look like a database: at least a
/// quarter of the first pages (up to 512) must parse as b-tree pages under the page size
/// that was inferred. Random bytes and text never get there.
fn pages_look_like_btrees(pf: &PageFile) -> bool {
    let sample = pf.geometry().file_pages.min(512);
    let mut buf = Vec::new();
    let mut good = 0u32;
    for pgno in 1..=sample {
        if pf.read(pgno, &mut buf).is_some()
            && looks_like_btree_page(&buf, if pgno == 1 { 100 } else { 0 })
        {
            good += 1;
        }
    }
    good >= 1 && good * 4 >= sample
}

/// What the header, the file's size and the geometry the pages were read with say.
fn header_facts(geo: &Geometry, magic_ok: bool, file_size: u64) -> HeaderFacts {
    let header = geo.header.clone();
    let page_size = geo.page_size;
    HeaderFacts {
        magic_ok,
        page_size,
        page_size_inferred: geo.inferred.iter().any(|i| i.starts_with("page size")),
        file_size,
        file_pages: geo.file_pages,
        whole_pages: page_size != 0 && file_size % u64::from(page_size) == 0,
        header_page_count: header.as_ref().map(|h| h.page_count),
        header_page_count_valid: header.as_ref().is_some_and(Header::page_count_is_valid),
        pages_with_wal: geo.page_count,
        pages_missing_past_end: 0,
        encoding: geo.encoding.map(|e| e.pragma_name().to_string()),
        journal_mode: header.as_ref().map(|h| h.journal_mode().to_string()),
        read_version: header.as_ref().map(|h| h.read_version),
        write_version: header.as_ref().map(|h| h.write_version),
        reserved_bytes: geo.reserved_bytes,
        freelist_count: header.as_ref().map(|h| h.freelist_count),
        schema_format: header.as_ref().map(|h| h.schema_format),
        last_written_by: header
            .as_ref()
            .filter(|h| h.sqlite_version_number != 0)
            .map(Header::sqlite_version),
        problems: header.as_ref().map(Header::problems).unwrap_or_default(),
        inferred: geo.inferred.clone(),
    }
}

/// What the `-wal` and `-shm` say that SQLite's checks do not: findings, and a warning.
fn sidecar_findings(pf: &PageFile) -> (Vec<Finding>, Option<String>) {
    let gap = pf.wal_index_gap();
    // The -shm's record of commits no file holds says more than the note would; when it is no
    // proof of loss (no -wal at all), it is the warning.
    let warning = match gap {
        Some(g) => (!g.is_loss()).then(|| g.describe()),
        None => {
            crate::source::pagefile::missing_wal_note(pf.geometry(), pf.wal()).map(str::to_string)
        }
    };
    let mut findings: Vec<Finding> = gap
        .filter(|g| g.is_loss())
        .map(classify::wal_index_finding)
        .into_iter()
        .collect();
    findings.extend(pf.wal().and_then(classify::older_wal_finding));
    (findings, warning)
}

/// What the WAL holds, as the engine read it.
fn wal_facts(w: &WalInfo) -> WalFacts {
    let frames = w.committed_frames + w.torn_frames;
    WalFacts {
        bytes: w.bytes,
        frames,
        valid_frames: w.valid_frames,
        committed_frames: w.committed_frames,
        commits: w.commits,
        frames_after_last_commit: w.torn_frames,
        tail_torn: w.valid_frames > w.committed_frames,
        pages: w.pages,
        db_size: w.db_size,
        unusable: w.unusable.clone(),
    }
}
