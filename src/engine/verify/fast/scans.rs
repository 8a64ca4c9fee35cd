//! The scans the fast proof digests: a table's rows into the entries each of its indexes
//! should hold, and an index's own entries in its order, through SQL or from pages.

use super::{pages, Context};
use crate::engine::verify::entry::{compare, encode, first_integer, Digest, Keys};
use crate::engine::verify::foreign_keys;
use crate::engine::verify::plan::{IndexPlan, PagePlan};
use crate::engine::verify::reader;
use crate::engine::verify::structure::TreeProof;
use rusqlite::Connection;
use std::cmp::Ordering;
use std::ops::Range;

/// The digests of a table's indexes, added to row by row.
struct RowDigests<'p> {
    wanted: Vec<(usize, &'p IndexPlan)>,
    digests: Vec<Digest>,
    buf: Vec<u8>,
}

impl<'p> RowDigests<'p> {
    fn new(indexes: &'p [IndexPlan]) -> RowDigests<'p> {
        let wanted: Vec<(usize, &IndexPlan)> = indexes
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.own_tree)
            .collect();
        RowDigests {
            digests: vec![Digest::default(); wanted.len()],
            wanted,
            buf: Vec::with_capacity(256),
        }
    }

    /// One row: its values in the canonical encoding, `spans` saying where each one is.
    /// `Err(c)` names a value the row does not have.
    fn add(
        &mut self,
        values: &[u8],
        spans: &[Range<usize>],
        keys: &Keys,
    ) -> std::result::Result<(), usize> {
        for (digest, (_, index)) in self.digests.iter_mut().zip(&self.wanted) {
            self.buf.clear();
            for &c in &index.columns {
                let bytes = spans
                    .get(c)
                    .and_then(|span| values.get(span.clone()))
                    .ok_or(c)?;
                self.buf.extend_from_slice(bytes);
            }
            digest.add(keys.hash(&self.buf));
        }
        Ok(())
    }

    fn finish(self) -> Vec<(usize, Digest)> {
        self.wanted
            .iter()
            .map(|(i, _)| *i)
            .zip(self.digests)
            .collect()
    }
}

/// One scan of a table: for each of its indexes (by position), the digest of the entries its
/// rows imply.
pub(super) fn scan_table(
    conn: &Connection,
    select: &str,
    indexes: &[IndexPlan],
    keys: &Keys,
) -> rusqlite::Result<Vec<(usize, Digest)>> {
    let mut digests = RowDigests::new(indexes);
    let mut stmt = conn.prepare(select)?;
    let width = stmt.column_count();
    let mut rows = stmt.raw_query();
    // Each value is read and encoded once per row, however many indexes hold it.
    let (mut values, mut spans) = (Vec::with_capacity(256), Vec::with_capacity(width));
    while let Some(row) = rows.next()? {
        values.clear();
        spans.clear();
        for c in 0..width {
            let start = values.len();
            encode(&mut values, row.get_ref(c)?);
            spans.push(start..values.len());
        }
        digests
            .add(&values, &spans, keys)
            .map_err(rusqlite::Error::InvalidColumnIndex)?;
    }
    Ok(digests.finish())
}

/// [`scan_table`], reading the table's pages (and proving its tree's structure on the way,
/// with `proof`); where `runs` holds a list, its rowids too, as runs
/// ([`foreign_keys::add_rowid`]; `None` left there when there are too many).
pub(super) fn table_by_pages(
    ctx: &Context<'_>,
    plan: &PagePlan,
    indexes: &[IndexPlan],
    proof: Option<TreeProof<'_>>,
    runs: &mut Option<Vec<(i64, i64)>>,
) -> std::result::Result<Vec<(usize, Digest)>, reader::Unreadable> {
    let mut digests = RowDigests::new(indexes);
    let mut missing = false;
    pages::scan_table(ctx.path, plan, proof, |rowid, values, spans| {
        missing |= digests.add(values, spans, ctx.keys).is_err();
        if runs
            .as_mut()
            .is_some_and(|r| !foreign_keys::add_rowid(r, rowid))
        {
            *runs = None;
        }
    })?;
    if missing {
        return Err(reader::Unreadable);
    }
    Ok(digests.finish())
}

/// What one scan of an index found: the digest of its entries, and a message for each entry
/// out of order and each repeated UNIQUE key.
pub(super) struct EntryCheck<'p> {
    index: &'p IndexPlan,
    limit: usize,
    previous: Vec<u8>,
    pub(super) digest: Digest,
    pub(super) messages: Vec<String>,
    /// With [`EntryCheck::count_groups`]: each value of the first column and how many
    /// entries hold it, in order, NULLs left out; `None` once a value is not an integer.
    pub(super) groups: Option<Vec<(i64, u64)>>,
}

impl<'p> EntryCheck<'p> {
    fn new(index: &'p IndexPlan, limit: usize) -> EntryCheck<'p> {
        EntryCheck {
            index,
            limit,
            previous: Vec::with_capacity(256),
            digest: Digest::default(),
            messages: Vec::new(),
            groups: None,
        }
    }

    /// Makes the scan count the entries of each value of the first column too, for a
    /// foreign key.
    pub(super) fn count_groups(mut self) -> EntryCheck<'p> {
        self.groups = Some(Vec::new());
        self
    }

    fn group(&mut self, entry: &[u8]) {
        let Some(groups) = self.groups.as_mut() else {
            return;
        };
        match first_integer(entry) {
            Some(None) => {}
            Some(Some(v)) => match groups.last_mut() {
                Some((last, n)) if *last == v => *n += 1,
                _ => groups.push((v, 1)),
            },
            None => self.groups = None,
        }
    }

    /// The next entry in the index's order, in the canonical encoding (taken: `current` is
    /// left holding the entry before it).
    fn add(&mut self, current: &mut Vec<u8>, keys: &Keys) {
        let index = self.index;
        if self.digest.count > 0 && self.messages.len() < self.limit {
            let (order, _) = compare(&self.previous, current, &index.order);
            if order != Ordering::Less {
                let (what, tree) = if index.own_tree {
                    ("row", "primary key of")
                } else {
                    ("entry", "index")
                };
                self.messages.push(format!(
                    "{tree} {}: {what} {} out of order",
                    index.name,
                    self.digest.count + 1
                ));
            }
            if let Some(k) = index.unique_prefix.filter(|_| !index.own_tree) {
                let prefix = &index.order[..k.min(index.order.len())];
                if compare(&self.previous, current, prefix) == (Ordering::Equal, false) {
                    self.messages
                        .push(format!("non-unique entry in index {}", index.name));
                }
            }
        }
        self.group(current);
        self.digest.add(keys.hash(current));
        std::mem::swap(&mut self.previous, current);
    }
}

/// One scan of an index, in its order, through SQL.
pub(super) fn scan_index<'p>(
    conn: &Connection,
    index: &'p IndexPlan,
    keys: &Keys,
    limit: usize,
) -> rusqlite::Result<EntryCheck<'p>> {
    let mut stmt = conn.prepare(&index.select)?;
    let width = index.order.len();
    let mut rows = stmt.raw_query();
    let mut check = EntryCheck::new(index, limit);
    let mut current = Vec::with_capacity(256);
    while let Some(row) = rows.next()? {
        current.clear();
        for c in 0..width {
            encode(&mut current, row.get_ref(c)?);
        }
        check.add(&mut current, keys);
    }
    Ok(check)
}

/// [`scan_index`], reading the index's pages (and proving its tree's structure on the way,
/// with `proof`).
pub(super) fn index_by_pages<'p>(
    ctx: &Context<'_>,
    index: &'p IndexPlan,
    proof: Option<TreeProof<'_>>,
) -> std::result::Result<EntryCheck<'p>, reader::Unreadable> {
    let mut check = EntryCheck::new(index, ctx.limit);
    if ctx.wanted.is_some_and(|w| w.indexes.contains(&index.name)) {
        check = check.count_groups();
    }
    pages::scan_index(ctx.path, index, proof, |current| {
        check.add(current, ctx.keys)
    })?;
    Ok(check)
}
