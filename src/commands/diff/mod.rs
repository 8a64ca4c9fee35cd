//! Row counts per table, source against recovered. The source is counted by SQLite on a
//! private copy (never the file itself: opening a WAL database can checkpoint it); where
//! SQLite cannot read a table, the engine's own page walk gives the count instead, and the
//! rows the walk knows it could not reach (its lost ranges) are added to it. A count never
//! hides a loss: `missing_rows` is at least the rows any evidence shows missing.

mod evidence;

pub use evidence::CountedBy;
pub(crate) use evidence::{walk_evidence, WalkEvidence};

use crate::error::{exit, Error, Result};
use crate::output::report::{text_table, Outcome};
use crate::source::pagefile::sidecar;
use crate::util::paths::{has_wal_or_journal, open_reading_copy, reading_copy, working_copy};
use crate::util::progress::Progress;
use crate::util::quote::ident;
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One table, both sides.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TableDiff {
    pub table: String,
    /// Rows the source held: SQLite's count, the page walk's, or (`bounds`) at least this
    /// many. Null when nothing could count them (or the source has no such table).
    pub source_rows: Option<u64>,
    /// How `source_rows` was obtained; null when it was not.
    pub source_counted_by: Option<CountedBy>,
    /// At most this many rows in the source (equal to `source_rows` unless counted by
    /// `bounds`; null when a lost range has no upper bound).
    pub source_rows_max: Option<u64>,
    /// Why SQLite could not count the source table, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_error: Option<String>,
    pub recovered_rows: Option<u64>,
    /// Rows of this table that are in the recovered database's lost_and_found (those whose
    /// root page names the table).
    pub lost_and_found_rows: u64,
    /// recovered - source; when rows are missing, `-missing_rows` (never 0 or more while a
    /// row is known lost, even if other rows were added).
    pub difference: Option<i64>,
    /// Rows of the source that are not in the recovered table, at least: the larger of what
    /// the counts show and what the lost ranges hold. Never 0 when any evidence shows a row
    /// lost.
    pub missing_rows: u64,
    /// At most this many rows are missing (null: unknown).
    pub missing_rows_max: Option<u64>,
}

impl TableDiff {
    /// Both sides provably hold the same rows: equal counts, nothing missing, nothing in
    /// lost_and_found, and a count that is not a bound.
    pub(crate) fn is_equal(&self) -> bool {
        self.difference == Some(0)
            && self.missing_rows == 0
            && self.lost_and_found_rows == 0
            && self.source_counted_by != Some(CountedBy::Bounds)
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DiffReport {
    pub source: PathBuf,
    pub recovered: PathBuf,
    pub tables: Vec<TableDiff>,
    /// Rows in the recovered database's lost_and_found, whatever table they came from.
    pub lost_and_found_rows: u64,
    /// Rows in rescue_conflicts (refused by a constraint, kept aside).
    pub conflict_rows: u64,
    /// `missing_rows` of every table added up: never 0 when any row is known lost.
    pub missing_rows: u64,
}

impl DiffReport {
    pub(crate) fn all_equal(&self) -> bool {
        self.tables.iter().all(TableDiff::is_equal)
            && self.lost_and_found_rows == 0
            && self.conflict_rows == 0
            && self.missing_rows == 0
    }

    /// The per-table table, as the terminal shows it.
    pub(crate) fn table_text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .tables
            .iter()
            .map(|t| {
                vec![
                    t.table.clone(),
                    source_cell(t),
                    opt(t.recovered_rows),
                    t.lost_and_found_rows.to_string(),
                    t.difference.map_or("?".into(), |d| {
                        if d > 0 {
                            format!("+{d}")
                        } else {
                            d.to_string()
                        }
                    }),
                    missing_cell(t),
                ]
            })
            .collect();
        text_table(
            &[
                "table",
                "in source",
                "recovered",
                "lost_and_found",
                "difference",
                "missing",
            ],
            &rows,
        )
    }
}

/// The "in source" cell: the count and, unless SQLite made it, how it was made.
pub(crate) fn source_cell(t: &TableDiff) -> String {
    match (t.source_counted_by, t.source_rows) {
        (Some(CountedBy::Sqlite), Some(n)) => n.to_string(),
        (Some(CountedBy::Walk), Some(n)) => format!("{n} (walk)"),
        (Some(CountedBy::Bounds), Some(n)) => match t.source_rows_max {
            Some(max) if max == n => format!("{n} (bounds)"),
            Some(max) => format!("{n}\u{2013}{max} (bounds)"),
            None => format!("\u{2265} {n} (bounds)"),
        },
        (None, None) if t.source_error.is_none() => "absent".to_string(),
        _ => "unreadable".to_string(),
    }
}

/// The "missing" cell: how many rows of the source are not in the recovered table.
pub(crate) fn missing_cell(t: &TableDiff) -> String {
    let n = t.missing_rows;
    match t.missing_rows_max {
        Some(max) if max == n => n.to_string(),
        Some(max) => format!("{n}\u{2013}{max}"),
        None if n == 0 => "unknown".to_string(),
        None => format!("\u{2265} {n}"),
    }
}

fn opt(n: Option<u64>) -> String {
    n.map_or("-".to_string(), |n| n.to_string())
}

impl Outcome for DiffReport {
    fn render_text(&self) -> String {
        let mut out = self.table_text();
        if self.lost_and_found_rows > 0 {
            out.push_str(&format!(
                "\n{} rows are in lost_and_found of {}\n",
                self.lost_and_found_rows,
                self.recovered.display()
            ));
        }
        if self.conflict_rows > 0 {
            out.push_str(&format!(
                "{} rows were refused by a constraint and kept in rescue_conflicts\n",
                self.conflict_rows
            ));
        }
        if self.missing_rows > 0 {
            out.push_str(&format!(
                "\nAt least {} missing from the recovered database.\n",
                if self.missing_rows == 1 {
                    "1 row of the source is".to_string()
                } else {
                    format!("{} rows of the source are", self.missing_rows)
                }
            ));
        }
        let unsure: Vec<&str> = self
            .tables
            .iter()
            .filter(|t| t.source_counted_by == Some(CountedBy::Bounds) && t.missing_rows == 0)
            .map(|t| t.table.as_str())
            .collect();
        if !unsure.is_empty() {
            out.push_str(&format!(
                "\nRows of {} may be missing: part of the tree could not be read, and how many \
                 rows it held cannot be told.\n",
                unsure.join(", ")
            ));
        }
        out.push_str(if self.all_equal() {
            "\nEvery table has the same number of rows on both sides.\n"
        } else {
            "\nThe databases differ.\n"
        });
        out
    }

    fn exit_code(&self) -> i32 {
        if self.all_equal() {
            exit::OK
        } else {
            exit::DAMAGE
        }
    }
}
/// `diff SOURCE RECOVERED` counts both databases; `diff INCIDENT` (an incident folder alone)
/// prints the counts its report holds.
pub fn run(source: &Path, recovered: Option<&Path>, progress: Progress) -> Result<DiffReport> {
    match (crate::commands::report::is_incident(source), recovered) {
        (true, None) => diff_incident(source, progress),
        (false, Some(recovered)) => diff(source, recovered),
        (true, Some(_)) => Err(Error::Usage(format!(
            "{} is an incident folder: `diff INCIDENT` alone prints the counts its report \
             holds; to count another copy against the database, give the database: diff DB \
             RECOVERED",
            source.display()
        ))),
        (false, None) => Err(Error::Usage(
            "diff takes SOURCE and RECOVERED, or an incident folder alone (diff INCIDENT)".into(),
        )),
    }
}

/// The comparison recover made, read back from the incident's report once its snapshot is
/// proved whole: nothing is counted or recovered again, and the source need not exist.
pub fn diff_incident(dir: &Path, progress: Progress) -> Result<DiffReport> {
    let incident = crate::commands::report::open(dir, progress)?;
    let mut diff = incident.report.diff;
    // recover wrote these as it was given them (maybe relative to where it ran).
    diff.source = incident.report.source;
    if let Some(recovered) = incident.report.recovered {
        diff.recovered = recovered;
    }
    Ok(diff)
}

/// Compares any two databases. The source may be damaged; it is read from a private copy.
pub fn diff(source: &Path, recovered: &Path) -> Result<DiffReport> {
    crate::source::snapshot::refuse_sidecar(source)?;
    crate::source::snapshot::refuse_sidecar(recovered)?;
    require_file(source)?;
    require_file(recovered)?;
    let work = crate::util::paths::temp_dir("sqlite-rescue-diff-")?;
    let copy = working_copy(source, work.path())?;
    compare(&copy, source, recovered, None)
}

/// What the engine knows of a snapshot it has just recovered.
pub(crate) struct Known {
    walk: BTreeMap<String, WalkEvidence>,
    /// The snapshot's `-shm` records a checkpoint past every frame its `-wal` holds: the
    /// main file is read alone.
    wal_older: bool,
}

impl Known {
    pub(crate) fn of(report: &crate::engine::Report) -> Known {
        Known {
            walk: walk_evidence(report),
            wal_older: report.wal.as_ref().is_some_and(|w| w.older_than_main_file),
        }
    }
}

/// Compares a snapshot (already a private copy the caller owns, sidecars beside it) with a
/// recovered database. `display_source` is the path to show. `known` holds what the engine's
/// walk knows of each table when the caller has just recovered the snapshot; it counts the
/// tables SQLite cannot, and its lost ranges count in every table (without it, the engine
/// walks the snapshot when SQLite cannot count a table).
pub(crate) fn compare(
    snapshot: &Path,
    display_source: &Path,
    recovered: &Path,
    known: Option<Known>,
) -> Result<DiffReport> {
    let wal_older = known.as_ref().map_or_else(
        || {
            crate::source::pagefile::PageFile::open(display_source)
                .is_ok_and(|pf| pf.wal().is_some_and(|w| w.older_than_main_file))
        },
        |k| k.wal_older,
    );
    let walk = known.map(|k| k.walk);
    let work = crate::util::paths::temp_dir_near(snapshot, ".sqlite-rescue-diff-")?;
    // SQLite builds a -shm to read a -wal and rolls a hot -journal back: gather the files
    // elsewhere for it then (links, for a -wal). Otherwise it reads the snapshot as immutable.
    let source_counts = if has_wal_or_journal(snapshot) && !wal_older {
        count_with_sqlite(&reading_copy(snapshot, work.path())?, false)
    } else {
        count_with_sqlite(snapshot, true)
    };
    // SIGINT/SIGTERM: a count SQLite was stopped in says nothing; stop here, and again
    // before a report made of such counts could be returned.
    let stopped = || {
        crate::util::interrupt::INTERRUPTED
            .load(std::sync::atomic::Ordering::SeqCst)
            .then(|| Error::Interrupted {
                path: work.path().to_path_buf(),
            })
    };
    if let Some(e) = stopped() {
        return Err(e);
    }
    let rec = open_recovered(recovered).map_err(|e| Error::unusable(recovered, e.to_string()))?;
    // A long count stops within a fraction of a second of SIGINT/SIGTERM.
    let _watch = crate::util::interrupt::InterruptWatch::start(rec.get_interrupt_handle());
    let recovered_tables =
        user_tables(&rec).map_err(|e| Error::unusable(recovered, e.to_string()))?;
    let mut names: Vec<String> = match &source_counts {
        Ok(c) => c.keys().cloned().collect(),
        Err(_) => Vec::new(),
    };
    for t in &recovered_tables {
        if !names.contains(t) {
            names.push(t.clone());
        }
    }
    let walk = match walk {
        Some(w) => Some(w),
        None if source_counts
            .as_ref()
            .map_or(true, |c| c.values().any(Result::is_err)) =>
        {
            Some(walk_snapshot(snapshot, work.path()))
        }
        None => None,
    };
    let side = crate::engine::side_table_names(snapshot)
        .unwrap_or_else(|_| crate::engine::SideNames::free_in(std::iter::empty()));
    let laf = lost_and_found_by_table(&rec, snapshot, &side.lost_and_found);
    let mut tables = Vec::new();
    for name in names {
        if side.contains(&name) {
            continue;
        }
        let sqlite_count = match &source_counts {
            Ok(c) => c.get(&name).cloned(),
            Err(e) => Some(Err(e.clone())),
        };
        let recovered_count = recovered_tables
            .contains(&name)
            .then(|| count(&rec, &name).map_err(|e| e.to_string()));
        let recovered_rows = recovered_count
            .as_ref()
            .and_then(|c| c.as_ref().ok().copied());
        // A virtual table whose module allows no scan (fts3tokenize, a contentless FTS4
        // table) cannot be counted on either side, alike: its rows, if any, are counted in
        // its shadow tables.
        let uncountable_alike = matches!(
            (&sqlite_count, &recovered_count),
            (Some(Err(a)), Some(Err(b))) if a == b && is_virtual(&rec, &name)
        );
        let evidence = walk.as_ref().and_then(|w| w.get(&name));
        let source = evidence::source_count(sqlite_count, evidence, recovered_rows);
        let lost_and_found_rows = laf.get(&name).copied().unwrap_or(0);
        let mut diff =
            evidence::table_diff(name, source, recovered_rows, evidence, lost_and_found_rows);
        if uncountable_alike && diff.missing_rows == 0 && lost_and_found_rows == 0 {
            diff.difference = Some(0);
        }
        tables.push(diff);
    }
    if let Some(e) = stopped() {
        return Err(e);
    }
    let missing_rows = tables
        .iter()
        .map(|t| t.missing_rows)
        .fold(0, u64::saturating_add);
    Ok(DiffReport {
        source: display_source.to_path_buf(),
        recovered: recovered.to_path_buf(),
        tables,
        lost_and_found_rows: count(&rec, &side.lost_and_found).unwrap_or(0),
        conflict_rows: count(&rec, &side.conflicts).unwrap_or(0),
        missing_rows,
    })
}

fn require_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::unusable(path, "is not a regular file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::unusable(path, "no such file"))
        }
        Err(e) => Err(Error::unusable(path, e.to_string())),
    }
}

type Counts = BTreeMap<String, std::result::Result<u64, String>>;

/// Opens RECOVERED read-only. Without a `-wal` beside it the file is the whole database and is
/// read as immutable: a file in WAL mode would otherwise get a `-wal` and `-shm` created beside
/// it (which `restore` then refuses). With one, SQLite must read it too.
pub(crate) fn open_recovered(recovered: &Path) -> rusqlite::Result<Connection> {
    if sidecar(recovered, "-wal").exists() {
        return Connection::open_with_flags(recovered, OpenFlags::SQLITE_OPEN_READ_ONLY);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
    Connection::open_with_flags(crate::source::pagefile::immutable_uri(recovered), flags)
}

/// Counts every table SQLite can see; a table it cannot read carries the error.
fn count_with_sqlite(db: &Path, immutable: bool) -> std::result::Result<Counts, String> {
    let conn = if immutable {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI;
        Connection::open_with_flags(crate::source::pagefile::immutable_uri(db), flags)
    } else {
        open_reading_copy(db)
    }
    .map_err(|e| e.to_string())?;
    let _watch = crate::util::interrupt::InterruptWatch::start(conn.get_interrupt_handle());
    let tables = user_tables(&conn).map_err(|e| e.to_string())?;
    Ok(tables
        .into_iter()
        .map(|t| {
            let n = count(&conn, &t).map_err(|e| e.to_string());
            (t, n)
        })
        .collect())
}

pub(crate) fn user_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

fn is_virtual(conn: &Connection, table: &str) -> bool {
    conn.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 AND rootpage = 0",
        [table],
        |r| r.get::<_, Option<String>>(0),
    )
    .is_ok_and(|sql| {
        sql.as_deref()
            .is_some_and(crate::engine::schema::declares_virtual_table)
    })
}

pub(crate) fn count(conn: &Connection, table: &str) -> rusqlite::Result<u64> {
    let n = conn.query_row(&format!("SELECT count(*) FROM {}", ident(table)), [], |r| {
        r.get::<_, i64>(0)
    })?;
    u64::try_from(n).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, n))
}

/// The engine's own evidence: recover into a scratch file and keep what each table walk
/// found and lost.
fn walk_snapshot(snapshot: &Path, dir: &Path) -> BTreeMap<String, WalkEvidence> {
    let out = dir.join("walk-count.sqlite3");
    // Only the counts are wanted: the private copy is not checked.
    let options = crate::engine::Options {
        skip_verify: true,
        ..crate::engine::Options::default()
    };
    match crate::engine::recover(snapshot, &out, &options) {
        Ok(report) => walk_evidence(&report),
        Err(_) => BTreeMap::new(),
    }
}

/// lost_and_found rows per source table, by the root page they name.
fn lost_and_found_by_table(rec: &Connection, source: &Path, table: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(mut stmt) = rec.prepare(&format!(
        "SELECT rootpgno, count(*) FROM {} WHERE rootpgno IS NOT NULL GROUP BY 1",
        ident(table)
    )) else {
        return out;
    };
    let Ok(rows) = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))) else {
        return out;
    };
    let roots = crate::engine::schema_roots(source).unwrap_or_default();
    for (root, n) in rows.flatten() {
        if let Some(name) = roots.get(&root) {
            // A group's count(*) is at least 1: the fallback is never taken.
            *out.entry(name.clone()).or_insert(0) += u64::try_from(n).unwrap_or(0);
        }
    }
    out
}
