//! `check`: what is wrong with a database, from a private snapshot.
//!
//! The source is snapshotted into a temporary folder first; the header and WAL are read from
//! that snapshot with our own decoders, and `PRAGMA integrity_check` runs on a second,
//! writable copy (SQLite may replay the WAL or a hot journal when it opens a file). The
//! temporary folder is removed when the check ends, however it ends.

use crate::error::{exit, Error, Result};
use crate::output::progress::Progress;
use crate::output::report::Outcome;
use crate::source::pagefile::{looks_like_btree_page, PageFile};
use crate::source::snapshot::{self, SnapshotOptions};
use crate::util::paths::working_copy;
use crate::util::quote::{ident, shell};
use rusqlite::{Connection, OpenFlags};
use std::collections::{BTreeSet, HashMap};
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
    /// The command to run next.
    pub next_step: String,
    /// Caveats about the check itself (e.g. the source changed while it was copied).
    pub warnings: Vec<String>,
    pub exit_code: i32,
}

/// One conclusion, for an operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// A stable short name: "damaged-header", "truncated-file", "freelist-damage",
    /// "wal-torn-tail", "wal-unusable", "btree-structure", "index-only", "table-data",
    /// "schema-unreadable", "other".
    pub kind: String,
    /// What it means, in words.
    pub summary: String,
    /// Tables concerned, when known.
    pub tables: Vec<String>,
    /// Indexes concerned, when known.
    pub indexes: Vec<String>,
    /// Whether this counts as damage (exit code 1).
    pub damage: bool,
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

/// What SQLite itself says.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IntegrityFacts {
    /// Whether `PRAGMA integrity_check` ran to the end.
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
    /// Rows reported by `PRAGMA foreign_key_check`, when it was cheap enough to run.
    pub foreign_key_violations: Option<u64>,
}

impl Outcome for CheckReport {
    fn render_text(&self) -> String {
        let mut o = String::new();
        let mut line = |s: String| {
            o.push_str(&s);
            o.push('\n');
        };
        line(format!("Check of {}", self.source.display()));
        line(String::new());
        let h = &self.header;
        line("Header".into());
        line(format!(
            "  magic                {}",
            if h.magic_ok {
                "SQLite format 3"
            } else {
                "damaged"
            }
        ));
        line(format!(
            "  page size            {}{}",
            h.page_size,
            if h.page_size_inferred {
                " (inferred)"
            } else {
                ""
            }
        ));
        line(format!(
            "  pages                header {}, file {} ({} bytes{}), as SQLite sees it {}",
            opt(&h.header_page_count),
            h.file_pages,
            h.file_size,
            if h.whole_pages {
                ""
            } else {
                ", not a whole number of pages"
            },
            h.pages_with_wal
        ));
        line(format!("  encoding             {}", opt(&h.encoding)));
        line(format!(
            "  journal mode         {} (read/write versions {}/{})",
            opt(&h.journal_mode),
            opt(&h.read_version),
            opt(&h.write_version)
        ));
        line(format!("  freelist pages       {}", opt(&h.freelist_count)));
        line(format!("  schema format        {}", opt(&h.schema_format)));
        line(format!(
            "  last written by      SQLite {}",
            opt(&h.last_written_by)
        ));
        for p in &h.problems {
            line(format!("  problem: {p}"));
        }
        for i in &h.inferred {
            line(format!("  inferred: {i}"));
        }
        line(String::new());
        if let Some(j) = &self.journal {
            line(format!("Hot journal ({} bytes)", j.bytes));
            match &j.unusable {
                Some(why) => line(format!("  ignored: {why}")),
                None => line(format!(
                    "  a transaction that never committed: its {} original pages are read in place \
                     of the ones it changed, as SQLite's rollback does; keep the -journal with the \
                     database",
                    j.pages
                )),
            }
            line(String::new());
        }
        match &self.wal {
            None => line("WAL: none".into()),
            Some(w) => {
                line(format!("WAL ({} bytes)", w.bytes));
                if let Some(why) = &w.unusable {
                    line(format!("  unusable: {why}"));
                } else {
                    line(format!(
                        "  frames               {} ({} valid, {} committed)",
                        w.frames, w.valid_frames, w.committed_frames
                    ));
                    line(format!(
                        "  commits              {} not yet in the main file ({} pages)",
                        w.commits, w.pages
                    ));
                    line(format!(
                        "  after last commit    {} frames{}",
                        w.frames_after_last_commit,
                        if w.tail_torn {
                            " (torn: an incomplete transaction)"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }
        line(String::new());
        let i = &self.integrity;
        line(format!("integrity_check (at most {} messages)", i.limit));
        if let Some(e) = &i.error {
            line(format!("  SQLite: {e}"));
        }
        if let Some(e) = &i.aborted {
            line(format!("  stopped part way ({e}); checked table by table"));
        }
        if !i.unreadable_tables.is_empty() {
            line(format!(
                "  tables SQLite cannot read to the end: {}",
                i.unreadable_tables.join(", ")
            ));
        }
        if !i.unreadable_indexes.is_empty() {
            line(format!(
                "  indexes SQLite cannot scan: {}",
                i.unreadable_indexes.join(", ")
            ));
        }
        if i.ok {
            line("  ok".into());
        }
        for m in &i.messages {
            line(format!("  {m}"));
        }
        if i.limit_reached {
            line("  (limit reached: there may be more; raise --max-errors)".into());
        }
        if let Some(n) = i.foreign_key_violations {
            line(format!("  foreign key violations: {n}"));
        }
        line(String::new());
        line(format!("Verdict: {}", self.status));
        for c in &self.classification {
            line(format!("  - {c}"));
        }
        for w in &self.warnings {
            line(format!("warning: {w}"));
        }
        line(String::new());
        line(format!("Next: {}", self.next_step));
        o
    }

    fn exit_code(&self) -> i32 {
        self.exit_code
    }
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "unknown".to_string(),
    }
}

/// Checks `db` (with its sidecars) from a private snapshot. Unusable inputs are errors
/// (exit 3); damage is a report with exit code 1.
pub fn check(db: &Path, opts: &CheckOptions) -> Result<CheckReport> {
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
    let geo = pf.geometry();
    let header = geo.header.clone();
    let page_size = geo.page_size;
    let header_facts = HeaderFacts {
        magic_ok,
        page_size,
        page_size_inferred: geo.inferred.iter().any(|i| i.starts_with("page size")),
        file_size,
        file_pages: geo.file_pages,
        whole_pages: page_size != 0 && file_size % u64::from(page_size) == 0,
        header_page_count: header.as_ref().map(|h| h.page_count),
        header_page_count_valid: header.as_ref().is_some_and(|h| h.page_count_is_valid()),
        pages_with_wal: geo.page_count,
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
            .map(|h| h.sqlite_version()),
        problems: header.as_ref().map(|h| h.problems()).unwrap_or_default(),
        inferred: geo.inferred.clone(),
    };
    let wal_facts = pf.wal().map(|w| {
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
    });
    let journal = pf.journal().cloned();
    let missing_wal = crate::source::pagefile::missing_wal_note(pf.geometry(), pf.wal());
    drop(pf);

    let work = working_copy(&snap_db, &tmp.join("work"))?;
    let limit = opts.max_errors.max(1);
    let (integrity, objects, conn) = run_sqlite(&work, limit, file_size);
    warnings.extend(missing_wal.map(str::to_string));
    if manifest.attempts > 1 && warnings.is_empty() {
        warnings.push(format!(
            "the source changed while it was copied; {} passes were needed",
            manifest.attempts
        ));
    }

    let findings = classify(
        &header_facts,
        wal_facts.as_ref(),
        &integrity,
        &objects,
        conn,
    );
    let damaged = findings.iter().any(|f| f.damage);
    let classification = if findings.is_empty() {
        vec!["healthy".to_string()]
    } else {
        findings.iter().map(|f| f.summary.clone()).collect()
    };
    let next_step = next_step(source, &findings);
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

/// A b-tree named in `sqlite_schema`.
#[derive(Debug, Clone)]
struct Object {
    kind: String,
    name: String,
    table: String,
    rootpage: u32,
}

/// Foreign key checks are skipped above this size: they can scan every table.
const FK_CHECK_MAX_BYTES: u64 = 256 << 20;

fn run_sqlite(
    work: &Path,
    limit: u32,
    file_size: u64,
) -> (IntegrityFacts, Vec<Object>, Option<Connection>) {
    let mut facts = IntegrityFacts {
        limit,
        ..IntegrityFacts::default()
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(work, flags) {
        Ok(c) => c,
        Err(e) => {
            facts.error = Some(e.to_string());
            return (facts, Vec::new(), None);
        }
    };
    let mut objects = vec![Object {
        kind: "table".into(),
        name: "sqlite_schema".into(),
        table: "sqlite_schema".into(),
        rootpage: 1,
    }];
    let schema = conn
        .prepare("SELECT type, name, tbl_name, rootpage FROM sqlite_schema")
        .and_then(|mut stmt| {
            let rows = stmt.query_map([], |r| {
                Ok(Object {
                    kind: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    name: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    table: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    rootpage: r
                        .get::<_, Option<i64>>(3)?
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0),
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<Object>>>()
        });
    match schema {
        Ok(list) => objects.extend(list.into_iter().filter(|o| o.rootpage != 0)),
        Err(e) => {
            facts.error = Some(format!("cannot read the schema: {e}"));
            return (facts, objects, Some(conn));
        }
    }
    match collect_rows(&conn, &format!("PRAGMA integrity_check({limit})"), limit) {
        (rows, None) => {
            facts.ran = true;
            if rows.len() == 1 && rows[0] == "ok" {
                facts.ok = true;
            } else {
                facts.limit_reached = rows.len() >= limit as usize;
                facts.messages = rows;
            }
        }
        (_, Some(e)) => {
            // integrity_check stops at the first page it cannot read while it scans rows.
            // Run it table by table (which finds the same messages again), and find out
            // which tables and indexes cannot be read.
            facts.aborted = Some(e);
            per_table_check(&conn, &objects, limit, &mut facts);
            facts.ran = true;
        }
    }
    if facts.ran && file_size <= FK_CHECK_MAX_BYTES {
        facts.foreign_key_violations = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()
            .and_then(|n| u64::try_from(n).ok());
    }
    (facts, objects, Some(conn))
}

/// Runs a query whose rows are one text column, keeping at most `limit` rows (split into
/// lines, without the "*** in database main ***" banner) and the error that stopped it.
fn collect_rows(conn: &Connection, sql: &str, limit: u32) -> (Vec<String>, Option<String>) {
    let mut out = Vec::new();
    let mut stmt = match conn.prepare(sql) {
        Ok(s) => s,
        Err(e) => return (out, Some(e.to_string())),
    };
    let mut rows = match stmt.query([]) {
        Ok(r) => r,
        Err(e) => return (out, Some(e.to_string())),
    };
    loop {
        match rows.next() {
            Ok(Some(row)) => {
                if let Ok(Some(text)) = row.get::<_, Option<String>>(0) {
                    for l in text.lines() {
                        if !l.starts_with("*** in database") && out.len() < limit as usize {
                            out.push(l.to_string());
                        }
                    }
                }
            }
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
}

/// Whether every row of `sql` can be stepped through, every column decoded.
fn reads_to_the_end(conn: &Connection, sql: &str) -> bool {
    let Ok(mut stmt) = conn.prepare(sql) else {
        return false;
    };
    let columns = stmt.column_count();
    let Ok(mut rows) = stmt.query([]) else {
        return false;
    };
    loop {
        match rows.next() {
            Ok(Some(row)) => {
                for i in 0..columns {
                    if row.get_ref(i).is_err() {
                        return false;
                    }
                }
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// Scans an index b-tree alone, through a query its columns cover.
fn index_reads(conn: &Connection, table: &str, index: &str) -> Option<bool> {
    let columns: Vec<Option<String>> = conn
        .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
        .and_then(|mut s| {
            s.query_map([index], |r| r.get::<_, Option<String>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .ok()?;
    // Expression indexes cannot be forced this way.
    let columns: Vec<String> = columns.into_iter().collect::<Option<Vec<_>>>()?;
    let first = columns.first()?;
    let sql = format!(
        "SELECT {} FROM {} INDEXED BY {} WHERE {} IS NULL OR {} IS NOT NULL",
        columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        ident(table),
        ident(index),
        ident(first),
        ident(first)
    );
    Some(reads_to_the_end(conn, &sql))
}

fn per_table_check(conn: &Connection, objects: &[Object], limit: u32, facts: &mut IntegrityFacts) {
    for t in objects
        .iter()
        .filter(|o| o.kind == "table" && o.name != "sqlite_schema")
    {
        let room = limit.saturating_sub(facts.messages.len() as u32).max(1);
        let sql = format!("PRAGMA integrity_check({})", ident(&t.name));
        let (rows, stopped) = collect_rows(conn, &sql, room);
        for r in rows.into_iter().filter(|r| r != "ok").take(room as usize) {
            if !facts.messages.contains(&r) {
                facts.messages.push(r);
            }
        }
        if stopped.is_none() {
            continue;
        }
        let scan = format!("SELECT * FROM {} NOT INDEXED", ident(&t.name));
        if !reads_to_the_end(conn, &scan) {
            facts.unreadable_tables.push(t.name.clone());
            continue;
        }
        let indexes: Vec<&Object> = objects
            .iter()
            .filter(|o| o.kind == "index" && o.table == t.name)
            .collect();
        let broken: Vec<String> = indexes
            .iter()
            .filter(|i| index_reads(conn, &t.name, &i.name) != Some(true))
            .map(|i| i.name.clone())
            .collect();
        if broken.is_empty() {
            // Neither the rows nor the indexes fail on their own: blame the table.
            facts.unreadable_tables.push(t.name.clone());
        } else {
            facts.unreadable_indexes.extend(broken);
        }
    }
    facts.limit_reached = facts.messages.len() >= limit as usize;
}

/// What one integrity_check message is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Concern {
    Index {
        index: String,
        table: String,
    },
    Table(String),
    Freelist,
    /// "Page N: never used": a page no tree and no freelist claims. A consequence when a
    /// tree is cut off above it; freelist damage when nothing else is wrong.
    Unreferenced,
    /// SQLite's bare "database disk image is malformed", which names nothing.
    Generic,
    Unknown,
}

/// The number right after `word` in `msg`, if there is one.
fn number_after(msg: &str, word: &str) -> Option<u32> {
    let at = msg.find(word)? + word.len();
    let digits: String = msg[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The identifier after `word` (up to whitespace, a comma or a dot when `dotted` is false).
fn name_after(msg: &str, word: &str) -> Option<String> {
    let at = msg.find(word)? + word.len();
    let name: String = msg[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn concern_of(msg: &str, objects: &[Object], owners: &HashMap<u32, String>) -> Concern {
    let by_name = |name: &str| objects.iter().find(|o| o.name.eq_ignore_ascii_case(name));
    let of_object = |o: &Object| {
        if o.kind == "index" {
            Concern::Index {
                index: o.name.clone(),
                table: o.table.clone(),
            }
        } else {
            Concern::Table(o.table.clone())
        }
    };
    for pattern in [
        " missing from index ",
        "wrong # of entries in index ",
        "non-unique entry in UNIQUE index ",
    ] {
        if let Some(index) = name_after(msg, pattern) {
            let table = by_name(&index).map(|o| o.table.clone()).unwrap_or_default();
            return Concern::Index { index, table };
        }
    }
    let lower = msg.to_ascii_lowercase();
    if lower.contains("never used") {
        return Concern::Unreferenced;
    }
    if lower.contains("freelist") {
        return Concern::Freelist;
    }
    if lower.trim() == "database disk image is malformed" {
        return Concern::Generic;
    }
    if let Some(root) = number_after(msg, "Tree ") {
        if let Some(o) = objects.iter().find(|o| o.rootpage == root) {
            return of_object(o);
        }
    }
    for word in ["Tree ", "On tree page ", " page "] {
        let page = match word {
            "Tree " => number_after(msg, "Tree ").and(number_after(msg, " page ")),
            w => number_after(msg, w),
        };
        if let Some(page) = page {
            if let Some(o) = objects.iter().find(|o| o.rootpage == page) {
                return of_object(o);
            }
            if let Some(name) = owners.get(&page) {
                if let Some(o) = by_name(name) {
                    return of_object(o);
                }
            }
        }
    }
    // "NULL value in t.c", "TEXT value in t.c", "CHECK constraint failed in t", ...
    if let Some(rest) = name_after(msg, " in ") {
        let table = rest.split('.').next().unwrap_or("");
        if let Some(o) = by_name(table) {
            return of_object(o);
        }
    }
    Concern::Unknown
}

/// Which table or index each page belongs to, from the dbstat virtual table (one object at
/// a time, so a tree SQLite cannot walk does not hide the others).
fn page_owners(conn: &Connection, objects: &[Object]) -> HashMap<u32, String> {
    let mut owners = HashMap::new();
    let Ok(mut stmt) = conn.prepare("SELECT pageno FROM dbstat WHERE name = ?1") else {
        return owners;
    };
    for o in objects {
        let Ok(mut rows) = stmt.query([&o.name]) else {
            continue;
        };
        while let Ok(Some(row)) = rows.next() {
            if let Ok(Some(p)) = row.get::<_, Option<i64>>(0) {
                if let Ok(p) = u32::try_from(p) {
                    owners.entry(p).or_insert_with(|| o.name.clone());
                }
            }
        }
    }
    owners
}

fn finding(kind: &str, summary: String, damage: bool) -> Finding {
    Finding {
        kind: kind.to_string(),
        summary,
        tables: Vec::new(),
        indexes: Vec::new(),
        damage,
    }
}

fn classify(
    h: &HeaderFacts,
    wal: Option<&WalFacts>,
    integrity: &IntegrityFacts,
    objects: &[Object],
    conn: Option<Connection>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if !h.magic_ok {
        out.push(finding(
            "damaged-header",
            format!(
                "damaged header: the file does not start with \"SQLite format 3\"; its pages read as a database with {}-byte pages",
                h.page_size
            ),
            true,
        ));
    } else if !h.problems.is_empty() {
        out.push(finding(
            "damaged-header",
            format!("damaged header: {}", h.problems.join("; ")),
            true,
        ));
    }
    if let Some(count) = h.header_page_count {
        if h.header_page_count_valid && count > h.file_pages {
            out.push(finding(
                "truncated-file",
                format!(
                    "truncated file: the header says {count} pages but the file holds {} ({} bytes missing)",
                    h.file_pages,
                    u64::from(count - h.file_pages) * u64::from(h.page_size)
                ),
                true,
            ));
        }
    }
    if !h.whole_pages && !out.iter().any(|f| f.kind == "truncated-file") {
        out.push(finding(
            "truncated-file",
            format!(
                "truncated file: {} bytes is not a whole number of {}-byte pages (the last page is cut short)",
                h.file_size, h.page_size
            ),
            true,
        ));
    }
    if let Some(free) = h.freelist_count {
        if h.magic_ok && free >= h.pages_with_wal.max(1) {
            out.push(finding(
                "freelist-damage",
                format!(
                    "freelist damage: the header counts {free} free pages in a {}-page database",
                    h.pages_with_wal
                ),
                true,
            ));
        }
    }
    if let Some(w) = wal {
        if let Some(why) = &w.unusable {
            if w.bytes > 0 {
                out.push(finding(
                    "wal-unusable",
                    format!("WAL unusable: {why}; any transactions in it are not in the database"),
                    true,
                ));
            }
        } else if w.tail_torn {
            out.push(finding(
                "wal-torn-tail",
                format!(
                    "WAL tail torn: last transaction incomplete ({} frames after the last commit are ignored, as SQLite does)",
                    w.valid_frames - w.committed_frames
                ),
                true,
            ));
        }
    }
    if let Some(e) = &integrity.error {
        if h.magic_ok {
            out.push(finding(
                "schema-unreadable",
                format!("SQLite cannot read the database: {e}"),
                true,
            ));
        }
    }
    if integrity.messages.is_empty()
        && integrity.unreadable_tables.is_empty()
        && integrity.unreadable_indexes.is_empty()
    {
        if let Some(e) = &integrity.aborted {
            out.push(finding(
                "other",
                format!("integrity_check stopped: {e}"),
                true,
            ));
        }
        return out;
    }

    let needs_owners = integrity.messages.iter().any(|m| {
        let root_known =
            number_after(m, "Tree ").is_some_and(|r| objects.iter().any(|o| o.rootpage == r));
        !root_known && (m.contains("page ") || m.contains("Page "))
    });
    let owners = match (&conn, needs_owners) {
        (Some(c), true) => page_owners(c, objects),
        _ => HashMap::new(),
    };
    drop(conn);

    let lower: Vec<String> = integrity
        .messages
        .iter()
        .map(|m| m.to_ascii_lowercase())
        .collect();
    let structure = lower
        .iter()
        .any(|m| m.contains("2nd reference to page") || m.contains("child page depth differs"));
    let mut concerns: Vec<Concern> = integrity
        .messages
        .iter()
        .map(|m| concern_of(m, objects, &owners))
        .collect();
    concerns.extend(
        integrity
            .unreadable_tables
            .iter()
            .map(|t| Concern::Table(t.clone())),
    );
    concerns.extend(integrity.unreadable_indexes.iter().map(|i| {
        Concern::Index {
            index: i.clone(),
            table: objects
                .iter()
                .find(|o| &o.name == i)
                .map(|o| o.table.clone())
                .unwrap_or_default(),
        }
    }));
    let mut tables = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    let mut index_tables = BTreeSet::new();
    let mut freelist = false;
    let mut unreferenced = false;
    let mut generic = false;
    let mut unknown = 0usize;
    for c in &concerns {
        match c {
            Concern::Index { index, table } => {
                indexes.insert(index.clone());
                if !table.is_empty() {
                    index_tables.insert(table.clone());
                }
            }
            Concern::Table(t) => {
                tables.insert(t.clone());
            }
            Concern::Freelist => freelist = true,
            Concern::Unreferenced => unreferenced = true,
            Concern::Generic => generic = true,
            Concern::Unknown => unknown += 1,
        }
    }
    if structure {
        let mut f = finding(
            "btree-structure",
            "b-tree structure damage (2nd reference to page / child page depth differs): typical of memory-mapped I/O spreading a torn write".to_string(),
            true,
        );
        f.tables = tables.iter().cloned().collect();
        out.push(f);
    }
    // Pages cut off from a damaged tree show up as "never used": a consequence, not a cause.
    let something_named =
        structure || freelist || unknown > 0 || !tables.is_empty() || !indexes.is_empty();
    if unreferenced && !something_named {
        freelist = true;
    }
    if generic && !something_named && !freelist {
        unknown += 1;
    }
    let index_only = !structure && !freelist && unknown == 0 && tables.is_empty();
    if index_only && !indexes.is_empty() {
        let mut f = finding(
            "index-only",
            format!(
                "index-only damage: data intact, rebuild indexes (REINDEX or recover): {}",
                join(&indexes)
            ),
            true,
        );
        f.indexes = indexes.iter().cloned().collect();
        f.tables = index_tables.iter().cloned().collect();
        out.push(f);
    }
    if !tables.is_empty() {
        let mut f = finding(
            "table-data",
            format!("table data damage in {}", join(&tables)),
            true,
        );
        f.tables = tables.iter().cloned().collect();
        f.indexes = indexes.iter().cloned().collect();
        out.push(f);
    }
    if freelist && !out.iter().any(|f| f.kind == "freelist-damage") {
        out.push(finding(
            "freelist-damage",
            "freelist damage: free pages are lost or listed wrongly (no rows are affected; recover or VACUUM rebuilds it)".to_string(),
            true,
        ));
    }
    if unknown > 0 && !structure {
        out.push(finding(
            "other",
            format!(
                "other damage: {unknown} integrity_check messages name no table (see the messages)"
            ),
            true,
        ));
    }
    out
}

fn join(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn next_step(source: &Path, findings: &[Finding]) -> String {
    let db = shell(source);
    let damaged: Vec<&Finding> = findings.iter().filter(|f| f.damage).collect();
    if damaged.is_empty() {
        return format!(
            "nothing to repair. To keep a copy as evidence anyway: sqlite-rescue snapshot {db} --into DIR"
        );
    }
    if damaged.iter().all(|f| f.kind == "index-only") {
        return format!(
            "stop the application, keep a copy (sqlite-rescue snapshot {db} --into DIR), then run REINDEX on it; or rehearse a full recovery: sqlite-rescue recover {db} --dry-run"
        );
    }
    format!("sqlite-rescue recover {db} --dry-run")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects() -> Vec<Object> {
        vec![
            Object {
                kind: "table".into(),
                name: "t".into(),
                table: "t".into(),
                rootpage: 2,
            },
            Object {
                kind: "index".into(),
                name: "t_v".into(),
                table: "t".into(),
                rootpage: 3,
            },
        ]
    }

    #[test]
    fn messages_map_to_tables_and_indexes() {
        let o = objects();
        let none = HashMap::new();
        assert_eq!(
            concern_of("row 5 missing from index t_v", &o, &none),
            Concern::Index {
                index: "t_v".into(),
                table: "t".into()
            }
        );
        assert_eq!(
            concern_of("Tree 2 page 9 cell 0: invalid page number", &o, &none),
            Concern::Table("t".into())
        );
        assert_eq!(
            concern_of(
                "Tree 3 page 7: btreeInitPage() returns error code 11",
                &o,
                &none
            ),
            Concern::Index {
                index: "t_v".into(),
                table: "t".into()
            }
        );
        let mut owners = HashMap::new();
        owners.insert(9, "t".to_string());
        assert_eq!(
            concern_of("On tree page 9 cell 0: Rowid 4 out of order", &o, &owners),
            Concern::Table("t".into())
        );
        assert_eq!(
            concern_of("Page 12: never used", &o, &none),
            Concern::Unreferenced
        );
        assert_eq!(
            concern_of("Freelist: invalid page number 99", &o, &none),
            Concern::Freelist
        );
        assert_eq!(
            concern_of("NULL value in t.v", &o, &none),
            Concern::Table("t".into())
        );
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell(Path::new("/a/b.db")), "/a/b.db");
        assert_eq!(shell(Path::new("/a b/c.db")), "'/a b/c.db'");
    }
}
