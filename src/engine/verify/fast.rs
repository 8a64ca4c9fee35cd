//! The fast proof: `quick_check` for the structure of every b-tree, and for every index a
//! digest of its entries computed twice, once from its table's rows and once from the index
//! itself, each in one sequential scan, on every core.
//!
//! `quick_check` is `integrity_check` without two things (SQLite's documentation of the
//! pragma): it does not check that each index holds the entries its table implies, and it
//! does not check UNIQUE constraints. It does check every b-tree's shape, that each page is
//! used once, rowid order within table trees, index entry counts, NOT NULL and CHECK
//! constraints. What it leaves out is proved here: equal digests (a keyed 128-bit hash per
//! entry, summed) mean the index holds exactly the multiset of entries the rows imply; the
//! index's scan also checks that its entries are in SQLite's order (which `quick_check` does
//! not check within an index tree) and that a UNIQUE key does not repeat. A table with an
//! index the scans cannot reproduce (an expression, a partial index, a collation of the
//! application's) is checked with `integrity_check(TABLE)` instead.

use super::entry::{compare, encode, Digest, Keys};
use super::lock;
use super::plan::{self, IndexPlan, TableCheck, TablePlan};
use crate::error::{Error, Result};
use rusqlite::Connection;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

/// One piece of the proof, run on one connection.
#[derive(Debug, Clone, Copy)]
enum Job {
    QuickCheck,
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
}

/// The proof of the database at `path` (nothing may be writing it): its messages, at most
/// `limit`, or `["ok"]`. `rows` gives tables' row counts, so the largest start first.
pub(crate) fn check(
    path: &Path,
    rows: &BTreeMap<String, u64>,
    limit: usize,
) -> Result<Vec<String>> {
    let conn = super::open(path)?;
    // A schema SQLite cannot describe table by table is checked the slow way, whole.
    let Ok(plans) = plan::plan(&conn) else {
        return super::full::integrity_check(path, rows, limit);
    };
    drop(conn);
    let jobs = jobs(&plans, rows);
    let keys = Keys::new();
    let found = Mutex::new(Found::default());
    let ctx = Context {
        path,
        plans: &plans,
        keys: &keys,
        limit,
    };
    super::on_every_core(path, jobs.len(), |conn, n| {
        work(&ctx, conn, jobs[n].1, n, &found)
    })?;
    let found = found
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(messages(&plans, found, limit))
}

struct Context<'a> {
    path: &'a Path,
    plans: &'a [TablePlan],
    keys: &'a Keys,
    limit: usize,
}

/// Every job, the longest first so that the last to finish is a short one.
fn jobs(plans: &[TablePlan], rows: &BTreeMap<String, u64>) -> Vec<(u64, Job)> {
    let total: u64 = rows.values().sum();
    let mut jobs = vec![(total, Job::QuickCheck)];
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

/// Runs job `n`; a tree SQLite cannot read is a finding, as integrity_check reports it.
fn work(
    ctx: &Context<'_>,
    conn: &Connection,
    job: Job,
    n: usize,
    found: &Mutex<Found>,
) -> Result<()> {
    run(ctx, conn, job, n, found).or_else(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            let what = match job {
                Job::QuickCheck => "quick_check".to_string(),
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
) -> rusqlite::Result<()> {
    match job {
        Job::QuickCheck => {
            let messages = pragma(conn, "PRAGMA quick_check", ctx.limit)?;
            lock(found)
                .messages
                .extend(messages.into_iter().map(|m| (n, m)));
        }
        Job::Full(t) => {
            let messages = super::table_integrity(conn, &ctx.plans[t].name, ctx.limit)?;
            lock(found)
                .messages
                .extend(messages.into_iter().map(|m| (n, m)));
        }
        Job::Table(t) => {
            if let TableCheck::Stream { select, indexes } = &ctx.plans[t].check {
                let digests = scan_table(conn, select, indexes, ctx.keys)?;
                let mut found = lock(found);
                for (i, d) in digests {
                    found.from_rows.insert((t, i), d);
                }
            }
        }
        Job::Index(t, i) => {
            if let Some(index) = index_plan(ctx.plans, t, i) {
                let mut messages = Vec::new();
                let digest = scan_index(conn, index, ctx.keys, &mut messages, ctx.limit)?;
                let mut found = lock(found);
                found.messages.extend(messages.into_iter().map(|m| (n, m)));
                found.from_index.insert((t, i), digest);
            }
        }
    }
    Ok(())
}

fn pragma(conn: &Connection, sql: &str, limit: usize) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let messages = rows.take(limit).collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(messages.into_iter().filter(|m| m != "ok").collect())
}

/// One scan of a table: for each of its indexes (by position), the digest of the entries its
/// rows imply.
fn scan_table(
    conn: &Connection,
    select: &str,
    indexes: &[IndexPlan],
    keys: &Keys,
) -> rusqlite::Result<Vec<(usize, Digest)>> {
    let wanted: Vec<(usize, &IndexPlan)> = indexes
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.own_tree)
        .collect();
    let mut digests = vec![Digest::default(); wanted.len()];
    let mut stmt = conn.prepare(select)?;
    let width = stmt.column_count();
    let mut rows = stmt.raw_query();
    // Each value is read and encoded once per row, however many indexes hold it.
    let (mut values, mut spans) = (Vec::with_capacity(256), Vec::with_capacity(width));
    let mut buf = Vec::with_capacity(256);
    while let Some(row) = rows.next()? {
        values.clear();
        spans.clear();
        for c in 0..width {
            let start = values.len();
            encode(&mut values, row.get_ref(c)?);
            spans.push(start..values.len());
        }
        for (digest, (_, index)) in digests.iter_mut().zip(&wanted) {
            buf.clear();
            for &c in &index.columns {
                let bytes = spans
                    .get(c)
                    .and_then(|span| values.get(span.clone()))
                    .ok_or(rusqlite::Error::InvalidColumnIndex(c))?;
                buf.extend_from_slice(bytes);
            }
            digest.add(keys.hash(&buf));
        }
    }
    Ok(wanted.iter().map(|(i, _)| *i).zip(digests).collect())
}

/// One scan of an index, in its order: the digest of its entries, and a message for each
/// entry out of order and each repeated UNIQUE key (at most `limit`).
fn scan_index(
    conn: &Connection,
    index: &IndexPlan,
    keys: &Keys,
    messages: &mut Vec<String>,
    limit: usize,
) -> rusqlite::Result<Digest> {
    let mut stmt = conn.prepare(&index.select)?;
    let width = index.order.len();
    let mut rows = stmt.raw_query();
    let (mut previous, mut current) = (Vec::with_capacity(256), Vec::with_capacity(256));
    let mut digest = Digest::default();
    let what = if index.own_tree { "row" } else { "entry" };
    while let Some(row) = rows.next()? {
        current.clear();
        for c in 0..width {
            encode(&mut current, row.get_ref(c)?);
        }
        if digest.count > 0 && messages.len() < limit {
            let (order, _) = compare(&previous, &current, &index.order);
            if order != Ordering::Less {
                messages.push(format!(
                    "{} {}: {what} {} out of order",
                    if index.own_tree {
                        "primary key of"
                    } else {
                        "index"
                    },
                    index.name,
                    digest.count + 1
                ));
            }
            if let Some(k) = index.unique_prefix.filter(|_| !index.own_tree) {
                let prefix = &index.order[..k.min(width)];
                if compare(&previous, &current, prefix) == (Ordering::Equal, false) {
                    messages.push(format!("non-unique entry in index {}", index.name));
                }
            }
        }
        digest.add(keys.hash(&current));
        std::mem::swap(&mut previous, &mut current);
    }
    Ok(digest)
}

/// The messages in job order, then each index whose entries differ from what its rows imply.
fn messages(plans: &[TablePlan], mut found: Found, limit: usize) -> Vec<String> {
    found.messages.sort_by_key(|(n, _)| *n);
    let mut messages: Vec<String> = found.messages.into_iter().map(|(_, m)| m).collect();
    for (t, table) in plans.iter().enumerate() {
        let TableCheck::Stream { indexes, .. } = &table.check else {
            continue;
        };
        for (i, index) in indexes.iter().enumerate().filter(|(_, p)| !p.own_tree) {
            // A scan SQLite could not finish has said so already.
            let (Some(rows), Some(entries)) =
                (found.from_rows.get(&(t, i)), found.from_index.get(&(t, i)))
            else {
                continue;
            };
            if rows == entries {
                continue;
            }
            messages.push(if rows.count == entries.count {
                format!(
                    "index {} does not hold the entries table {} implies: as many entries as \
                     rows, not the same ones",
                    index.name, table.name
                )
            } else {
                format!(
                    "index {} does not hold the entries table {} implies: {} entries for {} rows",
                    index.name, table.name, entries.count, rows.count
                )
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    messages.retain(|m| seen.insert(m.clone()));
    messages.truncate(limit);
    if messages.is_empty() {
        messages.push("ok".to_string());
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page SQLite cannot read in the middle of a scan is a finding, not a failed run.
    #[test]
    fn an_unreadable_page_is_reported_not_raised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 4096;
             CREATE TABLE a(x TEXT); CREATE INDEX ax ON a(x);
             WITH RECURSIVE c(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM c WHERE v < 400)
             INSERT INTO a SELECT printf('%0300d', v) FROM c;",
        )
        .unwrap();
        let leaf: i64 = conn
            .query_row(
                "SELECT max(pageno) FROM dbstat WHERE name = 'a' AND pagetype = 'leaf'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        drop(conn);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = (usize::try_from(leaf).unwrap() - 1) * 4096;
        bytes[at..at + 4096].fill(0xA5);
        std::fs::write(&path, &bytes).unwrap();
        let messages = check(&path, &BTreeMap::new(), 20).unwrap();
        assert_ne!(messages, vec!["ok"]);
        assert!(messages.len() <= 20);
    }

    #[test]
    fn a_healthy_database_is_ok_and_limits_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE a(x, y UNIQUE); CREATE INDEX ax ON a(x DESC, y);
                 WITH RECURSIVE c(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM c WHERE v < 300)
                 INSERT INTO a SELECT v % 7, v FROM c;",
            )
            .unwrap();
        let rows = BTreeMap::from([("a".to_string(), 300)]);
        assert_eq!(check(&path, &rows, 20).unwrap(), vec!["ok"]);
    }
}
