//! WITHOUT ROWID tables filled from a backup. Their rows are named by primary key, and a
//! lost page's keys lie between the divider keys its parent holds on either side of it (read
//! from the snapshot: the report gives them only as text). A side the parent does not bound
//! is bounded by the nearest surviving key, as an estimate. SQLite compares the keys, so the
//! columns' collations apply.

use super::backup::Backup;
use super::record::{json_value, Origin, Recorder, RowKey};
use super::table::{shape_of, Shape, TableState};
use crate::engine::losses::keys::dividers_with;
use crate::engine::report::MatchedBy;
use crate::format::record::{self, Value as Raw};
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use crate::util::quote::ident;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use std::collections::HashSet;

/// The snapshot's pages, where the divider keys are read.
pub(crate) struct Pages {
    pub(crate) pf: PageFile,
    pub(crate) encoding: TextEncoding,
}

/// One lost key range: keys strictly between `after` and `before` (open when `None`).
struct KeyRange {
    after: Option<Vec<Value>>,
    before: Option<Vec<Value>>,
    exact: bool,
}

/// Fills `state`'s WITHOUT ROWID table from `backup`; returns the rows filled.
pub(super) fn fill_keyed(
    main: &Connection,
    backup: &Backup,
    origin: &Origin<'_>,
    recorder: &Recorder<'_>,
    state: &mut TableState<'_>,
    pages: Option<&Pages>,
) -> rusqlite::Result<u64> {
    let Some(shape) = shape_of(main, backup, &state.rep.name) else {
        return Ok(0);
    };
    let pk = match primary_key(main, &shape) {
        Ok(pk) => pk,
        Err(why) => {
            state.out.note = Some(why.to_string());
            return Ok(0);
        }
    };
    let Some(pages) = pages else {
        state.out.note = Some("its lost keys could not be read again from the snapshot".into());
        return Ok(0);
    };
    let ranges = ranges(main, &shape, &pk, state, pages)?;
    if ranges.is_empty() {
        state.out.note = Some("no lost page of it has keys bounded on either side".into());
        return Ok(0);
    }
    let keys = Keys::new(&shape, &pk);
    let mut lost: Vec<(Vec<Value>, MatchedBy)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for r in &ranges {
        let how = if r.exact {
            MatchedBy::Range
        } else {
            MatchedBy::EstimatedRange
        };
        for key in keys.backup_between(&backup.conn, r)? {
            if seen.insert(key_text(&key)) {
                lost.push((key, how));
            }
        }
    }
    // A backup row outside every lost range that the damaged database lacks was deleted.
    for key in keys.all_backup(&backup.conn)? {
        let text = key_text(&key);
        if !seen.contains(&text) && !keys.present(main, &key)? {
            state.deleted_keys.insert(text);
        }
    }
    let mut filled = 0;
    for (key, how) in lost {
        let text = key_text(&key);
        if state.filled_keys.contains(&text) || keys.present(main, &key)? {
            continue; // filled from a newer backup, or it survived
        }
        let Some(values) = keys.backup_row(&backup.conn, &key)? else {
            continue;
        };
        match keys.insert(main, &values) {
            Ok(()) => {
                recorder.filled(main, &shape.table, RowKey::Key(&text), how, origin)?;
                state.filled_keys.insert(text);
                state.out.filled += 1;
                *state
                    .out
                    .matched_by
                    .entry(how.as_str().to_string())
                    .or_default() += 1;
                filled += 1;
            }
            Err(e) => {
                let reason = format!("not inserted: {e}");
                let row = RowKey::Key(&text);
                recorder.collided(
                    main,
                    &shape.table,
                    row,
                    &reason,
                    &shape.names,
                    &values,
                    origin,
                )?;
                state.out.collided += 1;
            }
        }
    }
    Ok(filled)
}

/// The primary key's columns, in key order, as the recovered table names them; refused when
/// a column is DESC (row-value comparisons would run against the b-tree's order) or the
/// backup lacks one.
fn primary_key(main: &Connection, shape: &Shape) -> Result<Vec<String>, &'static str> {
    let index: Option<String> = main
        .query_row(
            "SELECT name FROM pragma_index_list(?1) WHERE origin = 'pk'",
            [&shape.table],
            |r| r.get(0),
        )
        .optional()
        .ok()
        .flatten();
    let Some(index) = index else {
        return Err("its primary key could not be read");
    };
    let cols: Vec<(Option<String>, bool)> = main
        .prepare("SELECT name, desc FROM pragma_index_xinfo(?1) WHERE key ORDER BY seqno")
        .and_then(|mut st| {
            st.query_map([&index], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(|_| "its primary key could not be read")?;
    if cols.iter().any(|(_, desc)| *desc) {
        return Err("a DESC primary key column: its lost key ranges are not matched yet");
    }
    let names: Option<Vec<String>> = cols.into_iter().map(|(n, _)| n).collect();
    let names = names.ok_or("its primary key could not be read")?;
    if !names
        .iter()
        .all(|n| shape.names.iter().any(|c| c.eq_ignore_ascii_case(n)))
    {
        return Err("the backup lacks a primary key column: its rows cannot be matched");
    }
    Ok(names)
}

/// The key ranges of the table's lost pages: from the parent's divider keys, an open side
/// bounded by the nearest surviving key (then an estimate). A page whose parent is lost
/// too gives none.
fn ranges(
    main: &Connection,
    shape: &Shape,
    pk: &[String],
    state: &TableState<'_>,
    pages: &Pages,
) -> rusqlite::Result<Vec<KeyRange>> {
    let keys = Keys::new(shape, pk);
    let mut out = Vec::new();
    for hole in &state.rep.holes {
        let Some(parent) = hole.parent else { continue };
        let (after, before) = dividers_with(&pages.pf, parent, hole.page, |local| {
            key_of(local, pk.len(), pages.encoding)
        });
        if after.is_none() && before.is_none() {
            continue;
        }
        let exact = after.is_some() && before.is_some();
        let after = match after {
            Some(a) => Some(a),
            None => keys.surviving(main, before.as_deref(), true)?,
        };
        let before = match before {
            Some(b) => Some(b),
            None => keys.surviving(main, after.as_deref(), false)?,
        };
        out.push(KeyRange {
            after,
            before,
            exact,
        });
    }
    Ok(out)
}

/// The first `n` fields of a divider record (the primary key, which leads a WITHOUT ROWID
/// record), when it holds them all whole.
fn key_of(local: &[u8], n: usize, encoding: TextEncoding) -> Option<Vec<Value>> {
    let mut fields = Vec::new();
    let decoded = record::decode_fields(local, &mut fields).ok()?;
    // A key cut short by an overflow page bounds nothing.
    if fields.len() < n || decoded.first_missing.is_some_and(|(i, _)| i < n) {
        return None;
    }
    let key = fields[..n].iter().map(|f| match f.value(local) {
        Raw::Null => Value::Null,
        Raw::Integer(i) => Value::Integer(i),
        Raw::Real(r) => Value::Real(r),
        Raw::Text(t) => Value::Text(String::from_utf8_lossy(&encoding.to_utf8(t)).into_owned()),
        Raw::Blob(b) => Value::Blob(b.to_vec()),
    });
    Some(key.collect())
}

/// A key as JSON text: how the side tables record it, and how keys are told apart here.
fn key_text(key: &[Value]) -> String {
    serde_json::Value::Array(key.iter().map(|v| json_value(v.into())).collect()).to_string()
}

/// SQL over a table's primary key, on either side.
struct Keys<'s> {
    shape: &'s Shape,
    /// The key columns as the recovered table names them, and as the backup does.
    ours: Vec<String>,
    theirs: Vec<String>,
}

impl<'s> Keys<'s> {
    fn new(shape: &'s Shape, pk: &[String]) -> Keys<'s> {
        let theirs = pk
            .iter()
            .map(|p| {
                let i = shape.names.iter().position(|c| c.eq_ignore_ascii_case(p));
                i.map_or_else(|| p.clone(), |i| shape.backup_names[i].clone())
            })
            .collect();
        Keys {
            shape,
            ours: pk.to_vec(),
            theirs,
        }
    }

    fn tuple(cols: &[String]) -> String {
        let c: Vec<String> = cols.iter().map(|c| ident(c)).collect();
        format!("({})", c.join(", "))
    }

    fn params(from: usize, n: usize) -> String {
        let p: Vec<String> = (from..from + n).map(|i| format!("?{i}")).collect();
        format!("({})", p.join(", "))
    }

    fn read_keys(
        &self,
        conn: &Connection,
        sql: &str,
        args: Vec<Value>,
    ) -> rusqlite::Result<Vec<Vec<Value>>> {
        let n = self.theirs.len();
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map(params_from_iter(args), |r| {
            (0..n).map(|i| r.get(i)).collect()
        })?;
        rows.collect()
    }

    /// The backup's keys strictly inside a lost range.
    fn backup_between(&self, conn: &Connection, r: &KeyRange) -> rusqlite::Result<Vec<Vec<Value>>> {
        let (t, n) = (Self::tuple(&self.theirs), self.theirs.len());
        let mut conds = vec!["1".to_string()];
        let mut args = Vec::new();
        if let Some(a) = &r.after {
            conds.push(format!("{t} > {}", Self::params(1, n)));
            args.extend(a.iter().cloned());
        }
        if let Some(b) = &r.before {
            conds.push(format!("{t} < {}", Self::params(args.len() + 1, n)));
            args.extend(b.iter().cloned());
        }
        let cols: Vec<String> = self.theirs.iter().map(|c| ident(c)).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            cols.join(", "),
            ident(&self.shape.backup_table),
            conds.join(" AND ")
        );
        self.read_keys(conn, &sql, args)
    }

    fn all_backup(&self, conn: &Connection) -> rusqlite::Result<Vec<Vec<Value>>> {
        let cols: Vec<String> = self.theirs.iter().map(|c| ident(c)).collect();
        let sql = format!(
            "SELECT {} FROM {}",
            cols.join(", "),
            ident(&self.shape.backup_table)
        );
        self.read_keys(conn, &sql, Vec::new())
    }

    /// The nearest surviving key below `bound` (`below`) or above it; `None` when none.
    fn surviving(
        &self,
        main: &Connection,
        bound: Option<&[Value]>,
        below: bool,
    ) -> rusqlite::Result<Option<Vec<Value>>> {
        let Some(bound) = bound else { return Ok(None) };
        let (t, n) = (Self::tuple(&self.ours), self.ours.len());
        let (op, order) = if below { ("<", "DESC") } else { (">", "ASC") };
        let cols: Vec<String> = self
            .ours
            .iter()
            .map(|c| format!("{} {order}", ident(c)))
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {t} {op} {} ORDER BY {} LIMIT 1",
            self.ours
                .iter()
                .map(|c| ident(c))
                .collect::<Vec<_>>()
                .join(", "),
            ident(&self.shape.table),
            Self::params(1, n),
            cols.join(", ")
        );
        Ok(self
            .read_keys(main, &sql, bound.to_vec())?
            .into_iter()
            .next())
    }

    fn present(&self, main: &Connection, key: &[Value]) -> rusqlite::Result<bool> {
        let sql = format!(
            "SELECT 1 FROM {} WHERE {} = {}",
            ident(&self.shape.table),
            Self::tuple(&self.ours),
            Self::params(1, self.ours.len())
        );
        let found = main
            .prepare_cached(&sql)?
            .query_row(params_from_iter(key.iter()), |_| Ok(()))
            .optional()?;
        Ok(found.is_some())
    }

    /// The backup row with this key: the columns both sides have.
    fn backup_row(&self, conn: &Connection, key: &[Value]) -> rusqlite::Result<Option<Vec<Value>>> {
        let cols: Vec<String> = self.shape.backup_names.iter().map(|c| ident(c)).collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {} = {}",
            cols.join(", "),
            ident(&self.shape.backup_table),
            Self::tuple(&self.theirs),
            Self::params(1, self.theirs.len())
        );
        let n = cols.len();
        conn.prepare_cached(&sql)?
            .query_row(params_from_iter(key.iter()), |r| {
                (0..n).map(|i| r.get(i)).collect()
            })
            .optional()
    }

    /// Inserts a filled row; `OR ABORT`, as for rowid tables, never replaces a survivor.
    fn insert(&self, main: &Connection, values: &[Value]) -> rusqlite::Result<()> {
        let sql = format!(
            "INSERT OR ABORT INTO {}{} VALUES {}",
            ident(&self.shape.table),
            Self::tuple(&self.shape.names),
            Self::params(1, values.len())
        );
        main.prepare_cached(&sql)?
            .execute(params_from_iter(values.iter()))
            .map(|_| ())
    }
}
