//! The fast proof: the structure of every b-tree proved from its pages ([`structure`]), and
//! for every index a digest of its entries computed twice, once from its table's rows and
//! once from the index itself, each in one sequential scan, on every core.
//!
//! The structure walk checks what `quick_check` checks of a file SQLite wrote; what it does
//! not recognise makes `quick_check` of the whole file decide. `quick_check` is
//! `integrity_check` without two things (SQLite's documentation of the pragma): it does not
//! check that each index holds the entries its table implies, and it does not check UNIQUE
//! constraints. What it leaves out is proved here: equal digests (a keyed 128-bit hash per
//! entry, summed) mean the index holds exactly the multiset of entries the rows imply; the
//! index's scan also checks that its entries are in SQLite's order (which `quick_check` does
//! not check within an index tree) and that a UNIQUE key does not repeat. A table with an
//! index the scans cannot reproduce (an expression, a partial index, a collation of the
//! application's) is checked with `integrity_check(TABLE)` instead. The scans of rowid tables
//! and their indexes read pages ([`super::pages`]) where they can, proving those trees'
//! structure on the way, and SQL where they cannot.

use super::entry::{Digest, Keys};
use super::foreign_keys::{self, Scanned, Wanted};
use super::lock;
use super::pages;
use super::plan::{self, IndexPlan, TableCheck, TablePlan};
use super::structure::Structure;
use crate::error::{Error, Result};
use rusqlite::Connection;
use scans::{index_by_pages, scan_index, scan_table, table_by_pages};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

/// One piece of the proof, run on one connection.
#[derive(Debug, Clone, Copy)]
enum Job {
    /// `quick_check` of the whole file: when the structure is not proved from pages.
    QuickCheck,
    /// The structure of tree `k` ([`structure`]).
    Tree(usize),
    /// The freelist's pages.
    Freelist,
    /// `quick_check(TABLE)` of the `k`th table whose rows only SQL can check.
    Rows(usize),
    /// The digests of every index of table `t`, from its rows.
    Table(usize),
    /// Index `i` of table `t`: its digest, order and uniqueness, from its entries.
    Index(usize, usize),
    /// `integrity_check(TABLE)` of table `t`.
    Full(usize),
}

/// What the jobs found.
#[derive(Default)]
struct Found {
    messages: Vec<(usize, String)>,
    from_rows: HashMap<(usize, usize), Digest>,
    from_index: HashMap<(usize, usize), Digest>,
    /// Tables whose rows, and indexes whose entries, were read from their pages.
    rows_by_pages: HashSet<usize>,
    index_by_pages: HashSet<(usize, usize)>,
    /// What the scans found for the foreign keys they were asked about.
    scanned: Scanned,
}

/// Whether a job may read pages ([`super::pages`]) or goes through SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Pages,
    Sql,
}

/// The proof of the database at `path` (nothing may be writing it): its messages, at most
/// `limit`, or `["ok"]`. `rows` gives tables' row counts, so the largest start first.
pub(crate) fn check(
    path: &Path,
    rows: &BTreeMap<String, u64>,
    limit: usize,
) -> Result<Vec<String>> {
    proof(path, rows, limit).map(|(messages, _)| messages)
}

/// [`check`], and whether the structure was proved from pages (not by `quick_check`).
pub(super) fn proof(
    path: &Path,
    rows: &BTreeMap<String, u64>,
    limit: usize,
) -> Result<(Vec<String>, bool)> {
    proved(path, rows, limit, false).map(|(messages, by_pages, _)| (messages, by_pages))
}

/// [`check`], and the rows whose foreign key names no parent (as
/// [`super::foreign_key_violations`] counts them): each key the proof's scans read anyway is
/// counted from what they found, the others beside the proof.
pub(crate) fn check_with_keys(
    path: &Path,
    rows: &BTreeMap<String, u64>,
    limit: usize,
) -> Result<(Vec<String>, Option<u64>)> {
    proved(path, rows, limit, true).map(|(messages, _, keys)| (messages, keys))
}

/// The proof, whether its structure was proved from pages, and with `keys` the foreign-key
/// violations (`None` where SQLite cannot count them).
fn proved(
    path: &Path,
    rows: &BTreeMap<String, u64>,
    limit: usize,
    keys: bool,
) -> Result<(Vec<String>, bool, Option<u64>)> {
    let conn = super::open(path)?;
    // A schema SQLite cannot describe table by table is checked the slow way, whole.
    let Ok(plans) = plan::plan(&conn) else {
        drop(conn);
        return std::thread::scope(|scope| {
            let counted = keys.then(|| scope.spawn(|| foreign_keys::count_beside(path, None)));
            let messages = super::full::integrity_check(path, rows, limit)?;
            Ok((messages, false, counted.and_then(join)))
        });
    };
    // A file the walk cannot plan for is proved by quick_check.
    let structure = Structure::new(&conn, path).ok().flatten();
    let split = keys
        .then(|| foreign_keys::split(&conn, |s| foreign_keys::read_by_proof(&plans, s)))
        .flatten();
    drop(conn);
    let wanted = split.as_ref().map(|s| Wanted::of(&s.scanned));
    let jobs = jobs(&plans, rows, structure.as_ref());
    let keys_hash = Keys::new();
    let found = Mutex::new(Found::default());
    let ctx = Context {
        path,
        plans: &plans,
        keys: &keys_hash,
        limit,
        structure: structure.as_ref(),
        wanted: wanted.as_ref(),
    };
    // The keys the scans do not read are counted beside them.
    let beside = split.as_ref().map(|s| &s.others[..]);
    let others = std::thread::scope(|scope| {
        let others = keys.then(|| scope.spawn(|| foreign_keys::count_beside(path, beside)));
        let jobs: Vec<Job> = jobs.iter().map(|j| j.1).collect();
        let proved = prove(&ctx, &found, &jobs);
        proved.map(|()| others.and_then(join))
    })?;
    let by_pages = structure.as_ref().is_some_and(Structure::proved);
    let found = found
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let counted = match &split {
        Some(split) => foreign_keys::count_from_scans(path, split, &found.scanned)
            .zip(others)
            .map(|(a, b)| a.saturating_add(b)),
        None => others,
    };
    Ok((messages(&plans, found, limit), by_pages, counted))
}

/// Runs the jobs on every core, then works out again through SQL what pages could not
/// settle, and has `quick_check` decide what the structure walk doubts.
fn prove(ctx: &Context<'_>, found: &Mutex<Found>, jobs: &[Job]) -> Result<()> {
    super::on_every_core(ctx.path, jobs.len(), |conn, n| {
        work(ctx, conn, jobs[n], n, found, Read::Pages)
    })?;
    recheck_through_sql(ctx, found, jobs.len())?;
    // What the pages did not prove, SQLite's own check of the whole file does.
    if ctx.structure.is_some_and(|s| !s.proved()) {
        let conn = super::open(ctx.path)?;
        work(ctx, &conn, Job::QuickCheck, 0, found, Read::Sql)?;
    }
    Ok(())
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, Option<T>>) -> Option<T> {
    handle.join().ok().flatten()
}

/// Every digest read from pages that does not match its other side is read again through
/// SQL, both sides, before anything is said of it.
fn recheck_through_sql(ctx: &Context<'_>, found: &Mutex<Found>, jobs: usize) -> Result<()> {
    let again: Vec<Job> = {
        let mut found = lock(found);
        let found = &mut *found;
        let mut again = Vec::new();
        for (t, i) in mismatched(ctx.plans, found) {
            if found.rows_by_pages.remove(&t) {
                again.push(Job::Table(t));
            }
            if found.index_by_pages.remove(&(t, i)) {
                again.push(Job::Index(t, i));
            }
        }
        again
    };
    if again.is_empty() {
        return Ok(());
    }
    let conn = super::open(ctx.path)?;
    for (k, job) in again.into_iter().enumerate() {
        work(ctx, &conn, job, jobs + k, found, Read::Sql)?;
    }
    Ok(())
}

/// Every table and index of the database at `path` whose digests read from pages differ from
/// the same read through SQL (where pages can be read at all). Empty is what the fast proof
/// relies on: pages give what SQL gives.
pub(crate) fn pages_disagree_with_sql(path: &Path) -> Result<Vec<String>> {
    let conn = super::open(path)?;
    let Ok(plans) = plan::plan(&conn) else {
        return Ok(Vec::new());
    };
    let keys = Keys::new();
    let ctx = Context {
        path,
        plans: &plans,
        keys: &keys,
        limit: 20,
        structure: None,
        wanted: None,
    };
    let sql = |e| Error::sqlite(path, e);
    let mut out = Vec::new();
    for table in &plans {
        let TableCheck::Stream {
            select,
            indexes,
            pages,
        } = &table.check
        else {
            continue;
        };
        if let Some(Ok(by_pages)) = pages
            .as_ref()
            .map(|p| table_by_pages(&ctx, p, indexes, None, &mut None))
        {
            if by_pages != scan_table(&conn, select, indexes, &keys).map_err(sql)? {
                out.push(format!("table {}", table.name));
            }
        }
        for index in indexes.iter().filter(|i| i.pages.is_some()) {
            if let Ok(by_pages) = index_by_pages(&ctx, index, None) {
                if by_pages.digest != scan_index(&conn, index, &keys, 20).map_err(sql)?.digest {
                    out.push(format!("index {}", index.name));
                }
            }
        }
    }
    Ok(out)
}

/// Every (table, index) whose two digests are both there and differ.
fn mismatched(plans: &[TablePlan], found: &Found) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (t, table) in plans.iter().enumerate() {
        let TableCheck::Stream { indexes, .. } = &table.check else {
            continue;
        };
        for (i, _) in indexes.iter().enumerate().filter(|(_, p)| !p.own_tree) {
            if let (Some(rows), Some(entries)) =
                (found.from_rows.get(&(t, i)), found.from_index.get(&(t, i)))
            {
                if rows != entries {
                    out.push((t, i));
                }
            }
        }
    }
    out
}

struct Context<'a> {
    path: &'a Path,
    plans: &'a [TablePlan],
    keys: &'a Keys,
    limit: usize,
    /// The structure proved from pages; `None`: by `quick_check`.
    structure: Option<&'a Structure>,
    /// What the scans are to find for the foreign-key count.
    wanted: Option<&'a Wanted>,
}

/// Every job, the longest first so that the last to finish is a short one.
fn jobs(
    plans: &[TablePlan],
    rows: &BTreeMap<String, u64>,
    structure: Option<&Structure>,
) -> Vec<(u64, Job)> {
    let rows_of = |table: &str| rows.get(table).copied().unwrap_or(0);
    let mut jobs = match structure {
        None => vec![(rows.values().sum(), Job::QuickCheck)],
        Some(s) => {
            let mut jobs = vec![(0, Job::Freelist)];
            // A tree the digests read from its pages is proved by that scan.
            let covered = read_by_pages(plans);
            jobs.extend(
                (0..s.trees())
                    .filter(|&k| !covered.contains(s.tree_names(k).0))
                    .map(|k| (rows_of(s.tree_names(k).1) / 3, Job::Tree(k))),
            );
            // integrity_check(TABLE) checks a fallback table's rows already.
            let full = |name: &str| {
                plans
                    .iter()
                    .any(|p| p.name == name && matches!(p.check, TableCheck::Fallback(_)))
            };
            for (k, name) in s.rows_by_sqlite().iter().enumerate() {
                if !full(name) {
                    jobs.push((rows_of(name), Job::Rows(k)));
                }
            }
            jobs
        }
    };
    for (t, table) in plans.iter().enumerate() {
        let n = rows.get(&table.name).copied().unwrap_or(0);
        match &table.check {
            TableCheck::Nothing => {}
            // A virtual table's module checks its own shadow tables, which are streamed.
            TableCheck::Fallback(plan::Fallback::Virtual) => jobs.push((0, Job::Full(t))),
            // integrity_check(TABLE) looks each row up in each index: the longest job.
            TableCheck::Fallback(_) => jobs.push((n.saturating_mul(3), Job::Full(t))),
            TableCheck::Stream { indexes, .. } => {
                if indexes.iter().any(|i| !i.own_tree) {
                    jobs.push((n, Job::Table(t)));
                }
                jobs.extend((0..indexes.len()).map(|i| (n / 2, Job::Index(t, i))));
            }
        }
    }
    jobs.sort_by_key(|(weight, _)| std::cmp::Reverse(*weight));
    jobs
}

/// The trees whose pages the digest scans read: every table with a page plan and an index
/// (not its own tree) to digest, and every index with a page plan.
fn read_by_pages(plans: &[TablePlan]) -> HashSet<&str> {
    let mut names = HashSet::new();
    for table in plans {
        let TableCheck::Stream { indexes, pages, .. } = &table.check else {
            continue;
        };
        if pages.is_some() && indexes.iter().any(|i| !i.own_tree) {
            names.insert(table.name.as_str());
        }
        names.extend(
            indexes
                .iter()
                .filter(|i| i.pages.is_some())
                .map(|i| i.name.as_str()),
        );
    }
    names
}

/// Runs job `n`; a tree SQLite cannot read is a finding, as integrity_check reports it.
fn work(
    ctx: &Context<'_>,
    conn: &Connection,
    job: Job,
    n: usize,
    found: &Mutex<Found>,
    read: Read,
) -> Result<()> {
    run(ctx, conn, job, n, found, read).or_else(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            let what = match job {
                Job::QuickCheck | Job::Tree(_) | Job::Freelist => "quick_check".to_string(),
                Job::Rows(k) => ctx
                    .structure
                    .and_then(|s| s.rows_by_sqlite().get(k))
                    .map_or_else(String::new, |name| format!("table {name}")),
                Job::Table(t) | Job::Full(t) => format!("table {}", ctx.plans[t].name),
                Job::Index(t, i) => index_plan(ctx.plans, t, i)
                    .map_or_else(String::new, |p| format!("index {}", p.name)),
            };
            lock(found).messages.push((n, format!("{what}: {e}")));
            Ok(())
        }
        _ => Err(Error::sqlite(ctx.path, e)),
    })
}

fn index_plan(plans: &[TablePlan], t: usize, i: usize) -> Option<&IndexPlan> {
    match &plans.get(t)?.check {
        TableCheck::Stream { indexes, .. } => indexes.get(i),
        _ => None,
    }
}

fn run(
    ctx: &Context<'_>,
    conn: &Connection,
    job: Job,
    n: usize,
    found: &Mutex<Found>,
    read: Read,
) -> rusqlite::Result<()> {
    let messages = match job {
        Job::QuickCheck => pragma(conn, "PRAGMA quick_check", ctx.limit)?,
        Job::Rows(k) => match ctx.structure.and_then(|s| s.rows_by_sqlite().get(k)) {
            Some(name) => {
                let sql = format!("PRAGMA quick_check({})", crate::util::quote::ident(name));
                pragma(conn, &sql, ctx.limit)?
            }
            None => Vec::new(),
        },
        Job::Full(t) => super::table_integrity(conn, &ctx.plans[t].name, ctx.limit)?,
        Job::Tree(k) => {
            ctx.structure.inspect(|s| s.walk_tree(ctx.path, k));
            Vec::new()
        }
        Job::Freelist => {
            ctx.structure.inspect(|s| s.walk_freelist(ctx.path));
            Vec::new()
        }
        Job::Table(t) => {
            table_job(ctx, conn, t, found, read)?;
            Vec::new()
        }
        Job::Index(t, i) => {
            index_job(ctx, conn, (t, i), n, found, read)?;
            Vec::new()
        }
    };
    lock(found)
        .messages
        .extend(messages.into_iter().map(|m| (n, m)));
    Ok(())
}

/// The digests of every index of table `t`, from its rows: read from its pages (proving its
/// tree's structure on the way) where it can, else through SQL.
fn table_job(
    ctx: &Context<'_>,
    conn: &Connection,
    t: usize,
    found: &Mutex<Found>,
    read: Read,
) -> rusqlite::Result<()> {
    let TableCheck::Stream {
        select,
        indexes,
        pages,
    } = &ctx.plans[t].check
    else {
        return Ok(());
    };
    let name = &ctx.plans[t].name;
    let proof = ctx.structure.and_then(|s| s.proof(name));
    // A parent of a foreign key the scans count: its rowids, as runs.
    let parent = ctx
        .wanted
        .is_some_and(|w| w.parents.contains(&name.to_ascii_lowercase()));
    let mut runs = parent.then(Vec::new);
    let by_pages = pages
        .as_ref()
        .filter(|_| read == Read::Pages)
        .and_then(|p| table_by_pages(ctx, p, indexes, proof, &mut runs).ok());
    let from_pages = by_pages.is_some();
    if read == Read::Pages && pages.is_some() && !from_pages {
        // This scan was to prove the tree's structure: quick_check will.
        ctx.structure.inspect(|s| s.doubt());
    }
    let digests = match by_pages {
        Some(d) => d,
        None => scan_table(conn, select, indexes, ctx.keys)?,
    };
    let mut found = lock(found);
    if from_pages {
        found.rows_by_pages.insert(t);
        if let Some(runs) = runs {
            found
                .scanned
                .parents
                .insert(name.to_ascii_lowercase(), runs);
        }
    }
    for (i, d) in digests {
        found.from_rows.insert((t, i), d);
    }
    Ok(())
}

/// Index `i` of table `t`: its digest, order and uniqueness, from its pages (proving its
/// tree's structure on the way) where it can, else through SQL. A finding read from pages is
/// read again through SQL: SQL's is reported.
fn index_job(
    ctx: &Context<'_>,
    conn: &Connection,
    (t, i): (usize, usize),
    n: usize,
    found: &Mutex<Found>,
    read: Read,
) -> rusqlite::Result<()> {
    let Some(index) = index_plan(ctx.plans, t, i) else {
        return Ok(());
    };
    let proof = ctx.structure.and_then(|s| s.proof(&index.name));
    let read_pages = (read == Read::Pages)
        .then(|| index_by_pages(ctx, index, proof))
        .and_then(std::result::Result::ok);
    if read == Read::Pages && index.pages.is_some() && read_pages.is_none() {
        // This scan was to prove the tree's structure: quick_check will.
        ctx.structure.inspect(|s| s.doubt());
    }
    let by_pages = read_pages.filter(|check| check.messages.is_empty());
    let from_pages = by_pages.is_some();
    let mut check = match by_pages {
        Some(c) => c,
        None => scan_index(conn, index, ctx.keys, ctx.limit)?,
    };
    let mut found = lock(found);
    if from_pages {
        found.index_by_pages.insert((t, i));
    }
    if let Some(groups) = check.groups.take() {
        found.scanned.groups.insert(index.name.clone(), groups);
    }
    found
        .messages
        .extend(check.messages.into_iter().map(|m| (n, m)));
    found.from_index.insert((t, i), check.digest);
    Ok(())
}

fn pragma(conn: &Connection, sql: &str, limit: usize) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let messages = rows.take(limit).collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(messages.into_iter().filter(|m| m != "ok").collect())
}

/// The messages in job order, then each index whose entries differ from what its rows imply.
fn messages(plans: &[TablePlan], mut found: Found, limit: usize) -> Vec<String> {
    found.messages.sort_by_key(|(n, _)| *n);
    let mismatched = mismatched(plans, &found);
    let mut messages: Vec<String> = found.messages.into_iter().map(|(_, m)| m).collect();
    // A scan SQLite could not finish has said so already: it has no digest to differ.
    for (t, i) in mismatched {
        let (table, rows, entries) = (
            &plans[t].name,
            found.from_rows[&(t, i)],
            found.from_index[&(t, i)],
        );
        let Some(index) = index_plan(plans, t, i) else {
            continue;
        };
        messages.push(if rows.count == entries.count {
            format!(
                "index {} does not hold the entries table {table} implies: as many entries as \
                 rows, not the same ones",
                index.name
            )
        } else {
            format!(
                "index {} does not hold the entries table {table} implies: {} entries for {} rows",
                index.name, entries.count, rows.count
            )
        });
    }
    let mut seen = std::collections::HashSet::new();
    messages.retain(|m| seen.insert(m.clone()));
    messages.truncate(limit);
    if messages.is_empty() {
        messages.push("ok".to_string());
    }
    messages
}

mod scans;
#[cfg(test)]
mod tests;
