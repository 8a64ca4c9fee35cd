//! Proof that a database this tool wrote is sound: every b-tree well formed, and every index
//! holding exactly the entries its table implies.
//!
//! Two ways to the same guarantee ([`VerifyMode`]): the fast proof ([`fast`]: the structure of
//! every b-tree walked from its pages, `quick_check` where the walk has a doubt, plus a digest
//! of every index from its table's rows and from its own entries, each one sequential scan),
//! and SQLite's full `integrity_check` ([`full`]: every row looked up in every index). Both
//! run on every core, on read-only connections.

mod entry;
mod fast;
mod foreign_keys;
mod full;
mod pages;
mod plan;
mod plan_pages;
mod reader;
mod structure;

// `restore` checks a file it did not write with SQLite's own check.
pub(crate) use full::integrity_check;

use crate::engine::stand_ins;
use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How the recovered database is proved sound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// Every b-tree's structure walked from its pages (`quick_check` where the walk has a
    /// doubt), and every index's entries matched against its table's rows by digest,
    /// in sequential scans; a table with an index on an expression, a partial index or a
    /// collation of the application's is checked with `integrity_check(TABLE)`.
    #[default]
    Fast,
    /// SQLite's `integrity_check` of every table: every row looked up in every index.
    Full,
}

impl std::str::FromStr for VerifyMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<VerifyMode, String> {
        match s {
            "fast" => Ok(VerifyMode::Fast),
            "full" => Ok(VerifyMode::Full),
            _ => Err(format!("`{s}`: expected `fast` or `full`")),
        }
    }
}

impl std::fmt::Display for VerifyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VerifyMode::Fast => "fast",
            VerifyMode::Full => "full",
        })
    }
}

/// Proves the database at `path` (which nothing may be writing) sound, and returns what is
/// wrong with it, at most `limit` messages, or `["ok"]`. `rows` gives the row count of the
/// tables it knows, so the largest are started first.
pub(crate) fn check(
    path: &Path,
    rows: &BTreeMap<String, u64>,
    limit: usize,
    mode: VerifyMode,
) -> Result<Vec<String>> {
    match mode {
        // Text is compared as SQLite orders it only in UTF-8.
        VerifyMode::Fast if utf8(path)? => fast::check(path, rows, limit),
        _ => full::integrity_check(path, rows, limit),
    }
}

/// [`check`], and the rows whose foreign key names no parent ([`foreign_key_violations`]),
/// counted beside the proof and, where the keys allow, from the proof's own scans.
pub(crate) fn check_with_keys(
    path: &Path,
    rows: &BTreeMap<String, u64>,
    limit: usize,
    mode: VerifyMode,
) -> Result<(Vec<String>, Option<u64>)> {
    if mode == VerifyMode::Fast && utf8(path)? {
        return fast::check_with_keys(path, rows, limit);
    }
    std::thread::scope(|scope| {
        let keys = scope.spawn(|| foreign_key_violations(path));
        let messages = full::integrity_check(path, rows, limit)?;
        Ok((messages, keys.join().ok().flatten()))
    })
}

/// The tables and indexes of the database at `path` whose scans read from pages give other
/// digests than the same scans through SQL: empty when the proof's quick path is sound there
/// (for tests, over every shape of database they generate).
pub fn pages_disagree_with_sql(path: &Path) -> Result<Vec<String>> {
    fast::pages_disagree_with_sql(path)
}

/// The fast proof of the database at `path`, and whether it proved the structure of every
/// b-tree from the pages, without `quick_check` (for tests: a healthy file always is).
pub fn structure_proved_by_pages(path: &Path) -> Result<(Vec<String>, bool)> {
    if !utf8(path)? {
        return Ok((full::integrity_check(path, &BTreeMap::new(), 100)?, false));
    }
    fast::proof(path, &BTreeMap::new(), 100)
}

/// [`check`] of any database: what `recover` runs on its result, for tools and tests.
pub fn verify(path: &Path, mode: VerifyMode) -> Result<Vec<String>> {
    check(path, &BTreeMap::new(), 100, mode)
}

fn utf8(path: &Path) -> Result<bool> {
    let conn = open(path)?;
    let encoding: String = conn
        .query_row("PRAGMA encoding", [], |r| r.get(0))
        .map_err(|e| Error::sqlite(path, e))?;
    Ok(encoding == "UTF-8")
}

/// How many rows of the database at `path` name a parent that is not there
/// (`PRAGMA foreign_key_check`); `None` where SQLite cannot count them (a key naming a
/// parent key without a UNIQUE index: the pragma fails).
pub(crate) fn foreign_key_violations(path: &Path) -> Option<u64> {
    keys_counted(path, |conn| foreign_keys::count(conn, true))
}

/// Runs `count` on a connection of its own to `path`, which an interrupt stops; `None` when
/// the file cannot be opened.
fn keys_counted(path: &Path, count: impl FnOnce(&Connection) -> Option<u64>) -> Option<u64> {
    let conn = open(path).ok()?;
    let _watch = crate::util::interrupt::InterruptWatch::start(conn.get_interrupt_handle());
    count(&conn)
}

/// What `PRAGMA foreign_key_check` counts in the database open on `conn`, counted from
/// indexes where the keys allow; `None` when the pragma fails, or when a table needs it and
/// `pragma_allowed` is false.
pub(crate) fn foreign_key_count(conn: &Connection, pragma_allowed: bool) -> Option<u64> {
    foreign_keys::count(conn, pragma_allowed)
}

/// `PRAGMA integrity_check(TABLE)`, at most `limit` messages, "ok" left out. An index whose
/// expression or WHERE calls a function only the application registers cannot be compared
/// with its table here: SQLite stops at the unknown function. The function then gets a
/// stand-in on this connection and what the check says of such indexes' entries is left
/// out; their b-trees are still checked. (`recover` keeps such an index only when its
/// entries are the source's and list exactly the rows its table holds.)
pub(crate) fn table_integrity(
    conn: &Connection,
    table: &str,
    limit: usize,
) -> rusqlite::Result<Vec<String>> {
    let sql = format!(
        "PRAGMA integrity_check({})",
        crate::util::quote::ident(table)
    );
    let run = |limit: usize| -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let messages = rows.take(limit).collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(messages.into_iter().filter(|m| m != "ok").collect())
    };
    let first = run(limit);
    if !first
        .as_ref()
        .is_err_and(|e| stand_ins::missing_function(e).is_some())
    {
        return first;
    }
    // Each unknown function in turn gets a stand-in, until the check runs through.
    let mut unknown: Vec<String> = Vec::new();
    let messages = loop {
        match run(usize::MAX) {
            Err(e) => match stand_ins::missing_function(&e) {
                Some(f) if !unknown.contains(&f) && unknown.len() < 64 => {
                    let given = stand_ins::run_with_stand_ins(conn, &format!("SELECT {f}()"));
                    if given.is_empty() {
                        break Err(e);
                    }
                    unknown.push(f);
                }
                _ => break Err(e),
            },
            done => break done,
        }
    };
    let computed_by_app = app_indexes(conn, table, &unknown);
    // The connection checks other tables next: they meet the unknown functions themselves.
    for name in &unknown {
        let _ = conn.remove_function(name.as_str(), -1);
    }
    let (computed_by_app, mut messages) = (computed_by_app?, messages?);
    messages.retain(|m| {
        !computed_by_app
            .iter()
            .any(|i| m.ends_with(&format!(" index {i}")))
    });
    messages.truncate(limit);
    Ok(messages)
}

/// The indexes of `table` whose SQL names one of `functions`.
fn app_indexes(
    conn: &Connection,
    table: &str,
    functions: &[String],
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name, lower(sql) FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
    )?;
    let rows = stmt.query_map([table], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, sql) = row?;
        if functions
            .iter()
            .any(|f| sql.contains(&format!("{}(", f.to_ascii_lowercase())))
        {
            out.push(name);
        }
    }
    Ok(out)
}

/// Runs `run(connection, n)` for every job `n` in `0..jobs`, in that order, on every core:
/// each worker takes the next job on its own read-only connection (which a signal
/// interrupts). The first error stops the others at their next job and is returned.
fn on_every_core(
    path: &Path,
    jobs: usize,
    run: impl Fn(&Connection, usize) -> Result<()> + Sync,
) -> Result<()> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(jobs)
        .max(1);
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let work = || -> Result<()> {
        let conn = open(path)?;
        let _watch = crate::util::interrupt::InterruptWatch::start(conn.get_interrupt_handle());
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            if n >= jobs {
                return Ok(());
            }
            run(&conn, n)?;
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                if let Err(e) = work() {
                    lock(&first_error).get_or_insert(e);
                    next.store(jobs, Ordering::Relaxed);
                }
            });
        }
    });
    match first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Read-only and immutable: no lock is taken and no `-wal` or `-shm` is created beside it.
fn open(path: &Path) -> Result<Connection> {
    Connection::open_with_flags(
        crate::source::pagefile::immutable_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| Error::sqlite(path, e))
}
