//! The foreign keys the fast proof's own scans serve: the child's index, which the proof
//! reads in order anyway, gives each value of the key and how many rows hold it; the
//! parent's rows, which it reads to digest the parent's indexes, give its rowids. Counting
//! such a key then needs no scan and no lookup of its own.

use super::{by_pragma, child_tables, count, count_tables, key_scans, missing_parents, KeyScan};
use crate::engine::verify::plan::{TableCheck, TablePlan};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// What the proof's scans found for the keys it was asked about ([`split`]): an index's
/// groups (each value of its first column and how many entries hold it, in order), and a
/// parent table's rowids as runs of consecutive values. Whatever is missing is read here.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    pub(crate) groups: HashMap<String, Vec<(i64, u64)>>,
    /// By the parent's name in lower case (a key may name its parent in any case).
    pub(crate) parents: HashMap<String, Vec<(i64, i64)>>,
}

/// The child tables, split ([`split`]).
#[derive(Debug, Default)]
pub(crate) struct Split {
    /// Those whose every key the proof's scans read: counted from what they find.
    pub(crate) scanned: Vec<(String, Vec<KeyScan>)>,
    /// The others, counted beside the proof ([`count_beside`]).
    pub(crate) others: Vec<String>,
}

/// The child tables, split by whether `fused` accepts every key of theirs.
pub(crate) fn split(conn: &Connection, fused: impl Fn(&KeyScan) -> bool) -> Option<Split> {
    let mut split = Split::default();
    for table in child_tables(conn).ok()? {
        match key_scans(conn, &table) {
            Some(scans) if scans.iter().all(&fused) => split.scanned.push((table, scans)),
            _ => split.others.push(table),
        }
    }
    Some(split)
}

/// The violations of the tables `split` gave to the proof's scans, from what they found; a
/// table whose keys cannot be counted so is counted by the pragma.
fn count_scanned(
    conn: &Connection,
    tables: &[(String, Vec<KeyScan>)],
    scanned: &Scanned,
) -> Option<u64> {
    let mut total = 0u64;
    for (table, scans) in tables {
        let n = scans
            .iter()
            .map(|scan| missing_parents(conn, scan, scanned))
            .try_fold(0u64, |sum, n| Some(sum.saturating_add(n?)));
        total = total.saturating_add(match n {
            Some(n) => n,
            None => by_pragma(conn, table)?,
        });
    }
    Some(total)
}

/// What the proof's scans are to find for the keys [`split`] gave them: the groups of these
/// indexes, the rowids of these parents (in lower case).
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    pub(crate) indexes: HashSet<String>,
    pub(crate) parents: HashSet<String>,
}

impl Wanted {
    pub(crate) fn of(tables: &[(String, Vec<KeyScan>)]) -> Wanted {
        let scans = || tables.iter().flat_map(|(_, scans)| scans);
        Wanted {
            indexes: scans().map(|s| s.index.clone()).collect(),
            parents: scans().map(|s| s.parent.to_ascii_lowercase()).collect(),
        }
    }
}

/// Whether the proof reads what `scan` needs from pages anyway: the key's index in a scan of
/// its own, and the parent's rows in the scan that digests its indexes.
pub(crate) fn read_by_proof(plans: &[TablePlan], scan: &KeyScan) -> bool {
    let streams = || {
        plans.iter().filter_map(|t| match &t.check {
            TableCheck::Stream { indexes, pages, .. } => Some((t, indexes, pages)),
            _ => None,
        })
    };
    let index = streams().any(|(_, indexes, _)| {
        indexes
            .iter()
            .any(|i| i.name == scan.index && !i.own_tree && i.pages.is_some())
    });
    let parent = streams().any(|(t, indexes, pages)| {
        t.name.eq_ignore_ascii_case(&scan.parent)
            && pages.is_some()
            && indexes.iter().any(|i| !i.own_tree)
    });
    index && parent
}

/// Adds `rowid` (each above the one before) to `runs`; false when they are more than a
/// scan may keep ([`MAX_RUNS`]).
pub(crate) fn add_rowid(runs: &mut Vec<(i64, i64)>, rowid: i64) -> bool {
    match runs.last_mut() {
        Some((_, end)) if end.checked_add(1) == Some(rowid) => *end = rowid,
        _ => runs.push((rowid, rowid)),
    }
    runs.len() <= MAX_RUNS
}

/// The most runs of rowids kept for one parent (4 MB): a table of scattered rowids is
/// looked up row by row instead.
const MAX_RUNS: usize = 1 << 18;

pub(super) fn in_runs(runs: &[(i64, i64)], value: i64) -> bool {
    let after = runs.partition_point(|&(start, _)| start <= value);
    after > 0 && runs[after - 1].1 >= value
}

/// The violations of the child tables `tables` (every one when `None`), counted on a
/// connection of their own, beside the proof.
pub(crate) fn count_beside(path: &Path, tables: Option<&[String]>) -> Option<u64> {
    crate::engine::verify::keys_counted(path, |conn| match tables {
        Some(tables) => count_tables(conn, tables, true),
        None => count(conn, true),
    })
}

/// The violations of the tables whose keys the proof's scans read, from what they found
/// (`scanned`), once the proof is done.
pub(crate) fn count_from_scans(path: &Path, split: &Split, scanned: &Scanned) -> Option<u64> {
    if split.scanned.is_empty() {
        return Some(0);
    }
    crate::engine::verify::keys_counted(path, |conn| count_scanned(conn, &split.scanned, scanned))
}
