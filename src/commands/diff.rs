//! Row counts per table, source against recovered. The source is counted by SQLite on a
//! private copy (never the file itself: opening a WAL database can checkpoint it); where
//! SQLite cannot read a table, the engine's own page walk gives the count instead.

use crate::engine::writer::ident;
use crate::error::{exit, Error, Result};
use crate::output::report::{text_table, Outcome};
use crate::source::pagefile::sidecar;
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One table, both sides.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableDiff {
    pub table: String,
    /// Rows in the source as SQLite counts them, or as the page walk found them.
    pub source_rows: Option<u64>,
    /// "sqlite", or "page walk" when SQLite could not read the table in the source.
    pub source_counted_by: String,
    /// Why SQLite could not count the source table, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_error: Option<String>,
    pub recovered_rows: Option<u64>,
    /// Rows of this table that are in the recovered database's lost_and_found (those whose
    /// root page names the table).
    pub lost_and_found_rows: u64,
    /// recovered - source (negative: rows missing from the recovered table).
    pub difference: Option<i64>,
}

impl TableDiff {
    pub(crate) fn is_equal(&self) -> bool {
        self.difference == Some(0) && self.lost_and_found_rows == 0
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DiffReport {
    pub source: PathBuf,
    pub recovered: PathBuf,
    pub tables: Vec<TableDiff>,
    /// Rows in the recovered database's lost_and_found, whatever table they came from.
    pub lost_and_found_rows: u64,
    /// Rows in rescue_conflicts (refused by a constraint, kept aside).
    pub conflict_rows: u64,
}

impl DiffReport {
    pub(crate) fn all_equal(&self) -> bool {
        self.tables.iter().all(TableDiff::is_equal)
            && self.lost_and_found_rows == 0
            && self.conflict_rows == 0
    }

    /// The per-table table, as the terminal shows it.
    pub(crate) fn table_text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .tables
            .iter()
            .map(|t| {
                vec![
                    t.table.clone(),
                    source_cell(t.source_rows, &t.source_counted_by),
                    opt(t.recovered_rows),
                    t.lost_and_found_rows.to_string(),
                    t.difference.map_or("?".into(), |d| {
                        if d > 0 {
                            format!("+{d}")
                        } else {
                            d.to_string()
                        }
                    }),
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
            ],
            &rows,
        )
    }
}

/// The "in source" cell: SQLite's count, or "unreadable" with what the page walk found.
pub(crate) fn source_cell(rows: Option<u64>, counted_by: &str) -> String {
    match (rows, counted_by) {
        (Some(n), "sqlite") => n.to_string(),
        (Some(n), _) => format!("unreadable ({n} found by page walk)"),
        (None, _) => "unreadable".to_string(),
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

/// Compares any two databases. The source may be damaged; it is read from a private copy.
pub fn diff(source: &Path, recovered: &Path) -> Result<DiffReport> {
    require_file(source)?;
    require_file(recovered)?;
    let work = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let copy = private_copy(source, work.path())?;
    compare(&copy, source, recovered, None)
}

/// Compares a snapshot (already a private copy the caller owns, sidecars beside it) with a
/// recovered database. `display_source` is the path to show. `walked` holds the engine's own
/// row counts per table when the caller has just recovered the snapshot; they are used for
/// tables SQLite cannot count (otherwise the engine walks the snapshot to count them).
pub(crate) fn compare(
    snapshot: &Path,
    display_source: &Path,
    recovered: &Path,
    walked: Option<BTreeMap<String, u64>>,
) -> Result<DiffReport> {
    let work = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    // SQLite writes a -shm, checkpoints or rolls back when it opens a database with a -wal
    // or a hot -journal: give it a copy then. Otherwise it reads the snapshot as immutable.
    let needs_copy = ["-wal", "-journal"]
        .iter()
        .any(|s| sidecar(snapshot, s).exists());
    let source_counts = if needs_copy {
        count_with_sqlite(&private_copy(snapshot, work.path())?, false)
    } else {
        count_with_sqlite(snapshot, true)
    };
    let rec = open_recovered(recovered).map_err(|e| Error::unusable(recovered, e.to_string()))?;
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
    let walked = if source_counts
        .as_ref()
        .map_or(true, |c| c.values().any(|v| v.is_err()))
    {
        Some(walked.unwrap_or_else(|| count_by_walk(snapshot, work.path())))
    } else {
        None
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
        let (source_rows, by, error) = match sqlite_count {
            Some(Ok(n)) => (Some(n), "sqlite", None),
            Some(Err(e)) => (
                walked.as_ref().and_then(|w| w.get(&name).copied()),
                "page walk",
                Some(e),
            ),
            None => (None, "absent", None),
        };
        let recovered_rows = if recovered_tables.contains(&name) {
            count(&rec, &name).ok()
        } else {
            None
        };
        let difference = match (source_rows, recovered_rows) {
            (Some(s), Some(r)) => Some(r as i64 - s as i64),
            (Some(s), None) => Some(-(s as i64)),
            (None, Some(r)) => Some(r as i64),
            (None, None) => None,
        };
        tables.push(TableDiff {
            lost_and_found_rows: laf.get(&name).copied().unwrap_or(0),
            table: name,
            source_rows,
            source_counted_by: by.to_string(),
            source_error: error,
            recovered_rows,
            difference,
        });
    }
    Ok(DiffReport {
        source: display_source.to_path_buf(),
        recovered: recovered.to_path_buf(),
        tables,
        lost_and_found_rows: count(&rec, &side.lost_and_found).unwrap_or(0),
        conflict_rows: count(&rec, &side.conflicts).unwrap_or(0),
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

/// Copies a database and its -wal/-journal into `dir` (not -shm: SQLite rebuilds it).
fn private_copy(db: &Path, dir: &Path) -> Result<PathBuf> {
    let name = db
        .file_name()
        .unwrap_or_else(|| std::ffi::OsStr::new("source.db"));
    let copy = dir.join(name);
    if copy == db {
        return Ok(copy);
    }
    copy_writable(db, &copy)?;
    for suffix in ["-wal", "-journal"] {
        let side = sidecar(db, suffix);
        if side.is_file() {
            copy_writable(&side, &sidecar(&copy, suffix))?;
        }
    }
    Ok(copy)
}

/// Copies a file and makes the copy writable: snapshot files are read-only, and SQLite opens
/// a read-only WAL database read-only (it could not replay the WAL into a -shm).
fn copy_writable(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to).map_err(|e| Error::io(from, e))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(to, e))
}

type Counts = BTreeMap<String, std::result::Result<u64, String>>;

/// Opens RECOVERED read-only. Without a `-wal` beside it the file is the whole database and is
/// read as immutable: a file in WAL mode would otherwise get a `-wal` and `-shm` created beside
/// it (which `restore` then refuses). With one, SQLite must read it too.
fn open_recovered(recovered: &Path) -> rusqlite::Result<Connection> {
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
        Connection::open(db)
    }
    .map_err(|e| e.to_string())?;
    let tables = user_tables(&conn).map_err(|e| e.to_string())?;
    Ok(tables
        .into_iter()
        .map(|t| {
            let n = count(&conn, &t).map_err(|e| e.to_string());
            (t, n)
        })
        .collect())
}

fn user_tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

fn count(conn: &Connection, table: &str) -> rusqlite::Result<u64> {
    conn.query_row(&format!("SELECT count(*) FROM {}", ident(table)), [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
}

/// The engine's own count: recover into a scratch file and count what each table walk found.
fn count_by_walk(snapshot: &Path, dir: &Path) -> BTreeMap<String, u64> {
    let out = dir.join("walk-count.sqlite3");
    // Only the counts are wanted: the private copy is not checked.
    let options = crate::engine::Options {
        skip_verify: true,
        ..crate::engine::Options::default()
    };
    match crate::engine::recover(snapshot, &out, &options) {
        Ok(report) => walked_counts(&report),
        Err(_) => BTreeMap::new(),
    }
}

/// Rows per table as the engine's walk found them (in the tree, or put back from orphans).
pub(crate) fn walked_counts(report: &crate::engine::Report) -> BTreeMap<String, u64> {
    report
        .tables
        .iter()
        .map(|t| (t.name.clone(), t.walked_rows + t.attributed_rows))
        .collect()
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
            *out.entry(name.clone()).or_insert(0) += n as u64;
        }
    }
    out
}
