//! Score a recovered database against its truth.
//!
//! Every truth row of every user table lands in exactly one bucket, tried in this order:
//! `in_place` (same table, same rowid / PRIMARY KEY, all values equal), `in_lost_and_found`
//! (a `lost_and_found` row carries it), `wrong_table` (another recovered table has a row
//! with the same rowid and values), else `missing`. Recovered rows of a table that match
//! no truth row of that table by key and values are `spurious`.
//!
//! Values compare by storage class and value: integers exactly, reals by bit pattern
//! (with -0.0 = 0.0), text by its UTF-8 bytes (so UTF-16 databases compare with UTF-8
//! ones), blobs by bytes. `1` and `1.0` differ.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::layout::{quote_ident, quote_literal};
use crate::Result;

/// How the rows of one truth table fared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableScore {
    pub table: String,
    pub truth_rows: u64,
    pub in_place: u64,
    pub in_lost_and_found: u64,
    pub wrong_table: u64,
    /// Recovered rows of this table that are not truth rows of this table.
    pub spurious: u64,
    pub missing: u64,
}

/// The score of a whole recovered database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    pub tables: Vec<TableScore>,
    /// Rows in the recovered `lost_and_found` table (0 if there is none).
    pub lost_and_found_rows: u64,
    /// `lost_and_found` rows that matched no truth row.
    pub lost_and_found_unmatched: u64,
}

impl Score {
    pub fn table(&self, name: &str) -> Option<&TableScore> {
        self.tables.iter().find(|t| t.table == name)
    }
    pub fn total_truth_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.truth_rows).sum()
    }
    pub fn total_in_place(&self) -> u64 {
        self.tables.iter().map(|t| t.in_place).sum()
    }
    pub fn total_spurious(&self) -> u64 {
        self.tables.iter().map(|t| t.spurious).sum()
    }
    pub fn total_missing(&self) -> u64 {
        self.tables.iter().map(|t| t.missing).sum()
    }
    /// Every truth row in place and nothing spurious.
    pub fn is_perfect(&self) -> bool {
        self.tables
            .iter()
            .all(|t| t.in_place == t.truth_rows && t.spurious == 0)
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<20} {:>7} {:>8} {:>6} {:>6} {:>8} {:>7}",
            "table", "truth", "in_place", "l&f", "wrong", "spurious", "missing"
        )?;
        for t in &self.tables {
            writeln!(
                f,
                "{:<20} {:>7} {:>8} {:>6} {:>6} {:>8} {:>7}",
                t.table,
                t.truth_rows,
                t.in_place,
                t.in_lost_and_found,
                t.wrong_table,
                t.spurious,
                t.missing
            )?;
        }
        write!(
            f,
            "lost_and_found: {} rows, {} unmatched",
            self.lost_and_found_rows, self.lost_and_found_unmatched
        )
    }
}

/// Append a value to a byte encoding that is equal iff the values are equal.
fn encode(out: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => out.push(0),
        ValueRef::Integer(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_be_bytes());
        }
        ValueRef::Real(r) => {
            out.push(2);
            let r = if r == 0.0 { 0.0 } else { r };
            out.extend_from_slice(&r.to_bits().to_be_bytes());
        }
        ValueRef::Text(t) => {
            out.push(3);
            out.extend_from_slice(&(t.len() as u64).to_be_bytes());
            out.extend_from_slice(t);
        }
        ValueRef::Blob(b) => {
            out.push(4);
            out.extend_from_slice(&(b.len() as u64).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
}

fn encode_int(out: &mut Vec<u8>, i: i64) {
    encode(out, ValueRef::Integer(i));
}

struct TableInfo {
    name: String,
    columns: Vec<String>,
    without_rowid: bool,
    /// Columns of the PRIMARY KEY (WITHOUT ROWID tables).
    pk: Vec<usize>,
    /// Column index of an INTEGER PRIMARY KEY (rowid alias).
    ipk: Option<usize>,
}

fn open_ro(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()).into());
    }
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

fn user_tables(conn: &Connection) -> Result<Vec<TableInfo>> {
    let mut st = conn.prepare(
        "SELECT name, coalesce(sql, '') FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let tables: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    let mut out = Vec::new();
    for (name, sql) in tables {
        let upper = sql.to_ascii_uppercase();
        if upper.starts_with("CREATE VIRTUAL") {
            continue;
        }
        let without_rowid = upper.contains("WITHOUT ROWID");
        let mut st = conn.prepare(&format!(
            "SELECT name, type, pk FROM pragma_table_info({}) ORDER BY cid",
            quote_literal(&name)
        ))?;
        let cols: Vec<(String, String, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<std::result::Result<_, _>>()?;
        let mut pk: Vec<(i64, usize)> = cols
            .iter()
            .enumerate()
            .filter(|(_, c)| c.2 > 0)
            .map(|(i, c)| (c.2, i))
            .collect();
        pk.sort();
        let pk: Vec<usize> = pk.into_iter().map(|(_, i)| i).collect();
        let ipk =
            (!without_rowid && pk.len() == 1 && cols[pk[0]].1.eq_ignore_ascii_case("INTEGER"))
                .then(|| pk[0]);
        out.push(TableInfo {
            name,
            columns: cols.into_iter().map(|c| c.0).collect(),
            without_rowid,
            pk,
            ipk,
        });
    }
    Ok(out)
}

/// One row: its key encoding and its full encoding (rowid, then every column).
struct Row {
    key: Vec<u8>,
    full: Vec<u8>,
}

/// Read every row of `t` (columns named as in the truth) from `conn`.
/// `None` if the table or one of its columns is missing there.
fn read_rows(conn: &Connection, t: &TableInfo, mut f: impl FnMut(Row)) -> Result<bool> {
    let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(c)).collect();
    let sql = if t.without_rowid {
        format!("SELECT {} FROM {}", cols.join(", "), quote_ident(&t.name))
    } else {
        format!(
            "SELECT _rowid_, {} FROM {}",
            cols.join(", "),
            quote_ident(&t.name)
        )
    };
    let mut st = match conn.prepare(&sql) {
        Ok(st) => st,
        Err(_) => return Ok(false),
    };
    let n = t.columns.len();
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let mut full = Vec::with_capacity(64);
        let mut key = Vec::with_capacity(16);
        if t.without_rowid {
            full.push(b'W');
            for i in 0..n {
                encode(&mut full, r.get_ref(i)?);
            }
            for &i in &t.pk {
                encode(&mut key, r.get_ref(i)?);
            }
        } else {
            let rowid = r.get_ref(0)?;
            encode(&mut key, rowid);
            full.push(b'R');
            encode(&mut full, rowid);
            for i in 0..n {
                encode(&mut full, r.get_ref(i + 1)?);
            }
        }
        f(Row { key, full });
    }
    Ok(true)
}

/// `lost_and_found` rows as encodings of (id, c0..c(nfield-1)), with a count each.
fn read_lost_and_found(conn: &Connection, name: &str) -> Result<HashMap<Vec<u8>, u64>> {
    let mut out = HashMap::new();
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(out);
    }
    let mut st = conn.prepare(&format!("SELECT * FROM {}", quote_ident(name)))?;
    let names: Vec<String> = st.column_names().map(|s| s.to_string()).collect();
    let col = |n: &str| names.iter().position(|c| c.eq_ignore_ascii_case(n));
    let nfield_col = col("nfield").ok_or("lost_and_found has no nfield column")?;
    let id_col = col("id").ok_or("lost_and_found has no id column")?;
    let mut c_cols = Vec::new();
    while let Some(i) = col(&format!("c{}", c_cols.len())) {
        c_cols.push(i);
    }
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let nfield = match r.get_ref(nfield_col)? {
            ValueRef::Integer(n) if n >= 0 => (n as usize).min(c_cols.len()),
            _ => c_cols.len(),
        };
        let mut enc = Vec::with_capacity(64);
        match r.get_ref(id_col)? {
            ValueRef::Integer(id) => {
                enc.push(b'R');
                encode_int(&mut enc, id);
            }
            _ => enc.push(b'W'),
        }
        for &c in &c_cols[..nfield] {
            encode(&mut enc, r.get_ref(c)?);
        }
        *out.entry(enc).or_insert(0) += 1;
    }
    Ok(out)
}

/// The `lost_and_found` encodings a truth row can appear as: its full encoding, and for
/// a rowid alias column, the same with NULL in that column (how the record stores it).
fn lf_candidates(t: &TableInfo, full: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![full.to_vec()];
    if let Some(ipk) = t.ipk {
        // Re-encode with NULL at column `ipk`: walk the encoding value by value.
        let mut at = 1; // skip the 'R' marker
        let mut pieces: Vec<&[u8]> = Vec::new();
        while at < full.len() {
            let len = match full[at] {
                0 => 1,
                1 | 2 => 9,
                _ => {
                    let n = u64::from_be_bytes(full[at + 1..at + 9].try_into().unwrap());
                    9 + n as usize
                }
            };
            pieces.push(&full[at..at + len]);
            at += len;
        }
        let mut alt = vec![b'R'];
        for (i, p) in pieces.iter().enumerate() {
            // pieces[0] is the rowid, pieces[1 + c] column c.
            if i == ipk + 1 {
                alt.push(0);
            } else {
                alt.extend_from_slice(p);
            }
        }
        out.push(alt);
    }
    out
}

/// Compare the recovered database with the truth database (both opened read-only).
pub fn score(truth: &Path, recovered: &Path) -> Result<Score> {
    let tconn = open_ro(truth)?;
    let rconn = open_ro(recovered)?;
    let truth_tables = user_tables(&tconn)?;
    // The recovery's own table takes a name the truth does not use (lost_and_found_1 when the
    // truth has a lost_and_found of its own).
    let side = std::iter::once("lost_and_found".to_string())
        .chain((1..).map(|i| format!("lost_and_found_{i}")))
        .find(|n| !truth_tables.iter().any(|t| t.name.eq_ignore_ascii_case(n)))
        .unwrap_or_default();
    let rec_tables: Vec<TableInfo> = user_tables(&rconn)?
        .into_iter()
        .filter(|t| t.name != side)
        .collect();
    let mut lost = read_lost_and_found(&rconn, &side)?;
    let lost_total: u64 = lost.values().sum();

    // Truth rows not in place, per table, kept for the later buckets.
    let mut leftovers: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    let mut scores = Vec::new();
    for (ti, t) in truth_tables.iter().enumerate() {
        let mut truth_rows: HashMap<Vec<u8>, (Vec<u8>, bool)> = HashMap::new();
        read_rows(&tconn, t, |r| {
            truth_rows.insert(r.key, (r.full, false));
        })?;
        let mut s = TableScore {
            table: t.name.clone(),
            truth_rows: truth_rows.len() as u64,
            ..TableScore::default()
        };
        let rec_same = rec_tables.iter().any(|r| r.name == t.name);
        if rec_same {
            read_rows(&rconn, t, |r| match truth_rows.get_mut(&r.key) {
                Some((full, seen)) if !*seen && *full == r.full => {
                    *seen = true;
                    s.in_place += 1;
                }
                _ => s.spurious += 1,
            })?;
        }
        let left: Vec<Vec<u8>> = truth_rows
            .into_values()
            .filter(|(_, seen)| !seen)
            .map(|(full, _)| full)
            .collect();
        leftovers.push((ti, left));
        scores.push(s);
    }

    // lost_and_found.
    let mut still: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    for (ti, left) in leftovers {
        let t = &truth_tables[ti];
        let mut rest = Vec::new();
        for full in left {
            let hit = lf_candidates(t, &full)
                .into_iter()
                .find(|c| lost.get(c).is_some_and(|&n| n > 0));
            match hit {
                Some(c) => {
                    *lost.get_mut(&c).unwrap() -= 1;
                    scores[ti].in_lost_and_found += 1;
                }
                None => rest.push(full),
            }
        }
        still.push((ti, rest));
    }

    // Other recovered tables.
    let any_left = still.iter().any(|(_, r)| !r.is_empty());
    let mut elsewhere: HashMap<String, HashSet<Vec<u8>>> = HashMap::new();
    if any_left {
        for rt in &rec_tables {
            let mut set = HashSet::new();
            read_rows(&rconn, rt, |r| {
                set.insert(r.full);
            })?;
            elsewhere.insert(rt.name.clone(), set);
        }
    }
    for (ti, rest) in still {
        let t = &truth_tables[ti];
        for full in rest {
            let found = elsewhere.iter().any(|(name, set)| {
                name != &t.name && lf_candidates(t, &full).iter().any(|c| set.contains(c))
            });
            if found {
                scores[ti].wrong_table += 1;
            } else {
                scores[ti].missing += 1;
            }
        }
    }
    Ok(Score {
        tables: scores,
        lost_and_found_rows: lost_total,
        lost_and_found_unmatched: lost.values().sum(),
    })
}
