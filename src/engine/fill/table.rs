//! One table filled from one backup: which of the backup's rows were lost (and go in), which
//! collide with a surviving row (kept aside), which were deleted since (left out).

use super::backup::{columns, Backup};
use super::record::{json_value, Origin, Recorder, RowKey};
use crate::engine::losses::{IndexedRow, LostRange};
use crate::engine::report::{MatchedBy, TableFill};
use crate::engine::TableReport;
use crate::util::interrupt::interrupted;
use crate::util::quote::ident;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};
use std::collections::{HashMap, HashSet};

/// A table's progress over every backup, newest first.
pub(super) struct TableState<'r> {
    pub(super) rep: &'r TableReport,
    pub(super) out: TableFill,
    /// Rowids filled so far (from a newer backup): not collisions when an older one has them.
    filled: HashSet<i64>,
    /// Backup rowids found deleted since, counted once over every backup.
    deleted: HashSet<i64>,
    /// The same for WITHOUT ROWID tables, by primary key (a JSON array).
    pub(super) filled_keys: HashSet<String>,
    pub(super) deleted_keys: HashSet<String>,
}

impl<'r> TableState<'r> {
    pub(super) fn new(rep: &'r TableReport) -> TableState<'r> {
        TableState {
            rep,
            out: TableFill {
                table: rep.name.clone(),
                back_in_place: rep.recovered_rows,
                ..TableFill::default()
            },
            filled: HashSet::new(),
            deleted: HashSet::new(),
            filled_keys: HashSet::new(),
            deleted_keys: HashSet::new(),
        }
    }

    /// The lost rows the indexes name that no backup gave back.
    pub(super) fn finish(&mut self) {
        self.out.deleted_since = (self.deleted.len() + self.deleted_keys.len()) as u64;
        if let Some(values) = &self.rep.lost_values {
            self.out.still_lost = values
                .rows
                .iter()
                .filter(|r| !self.filled.contains(&r.rowid))
                .cloned()
                .collect();
            if !self.out.still_lost.is_empty() {
                self.out.still_lost_columns.clone_from(&values.columns);
            }
        }
    }
}

/// What to do with one backup row.
struct Planned {
    /// Its rowid in the backup.
    from: i64,
    /// The rowid it takes in the recovered table.
    to: i64,
    how: MatchedBy,
}

/// The names a table's rows are read and written under, in the backup and the recovered
/// database.
pub(super) struct Shape {
    pub(super) table: String,
    pub(super) backup_table: String,
    /// Columns both have, as the recovered table names them and as the backup does.
    pub(super) names: Vec<String>,
    pub(super) backup_names: Vec<String>,
    rowid: String,
    backup_rowid: String,
}

/// Fills `state`'s table from `backup`; returns the rows filled.
pub(super) fn fill_table(
    main: &Connection,
    backup: &Backup,
    origin: &Origin<'_>,
    recorder: &Recorder<'_>,
    state: &mut TableState<'_>,
) -> rusqlite::Result<u64> {
    let Some(shape) = shape_of(main, backup, &state.rep.name) else {
        return Ok(0); // not in this backup: a schema difference says so
    };
    if shape.rowid.is_empty() || shape.backup_rowid.is_empty() {
        state.out.note =
            Some("its columns are named rowid, _rowid_ and oid: SQL cannot name its rowids".into());
        return Ok(0);
    }
    let plan = plan(main, backup, &shape, state)?;
    let mut filled = 0;
    for (rowid, reason) in plan.collisions {
        let values = backup_row(&backup.conn, &shape, rowid)?;
        recorder.collided(
            main,
            &shape.table,
            RowKey::Rowid(rowid),
            &reason,
            &shape.names,
            &values,
            origin,
        )?;
        state.out.collided += 1;
    }
    for p in plan.fill {
        let values = backup_row(&backup.conn, &shape, p.from)?;
        match insert(main, &shape, p.to, &values) {
            Ok(()) => {
                recorder.filled(main, &shape.table, RowKey::Rowid(p.to), p.how, origin)?;
                state.filled.insert(p.to);
                state.out.filled += 1;
                *state
                    .out
                    .matched_by
                    .entry(p.how.as_str().to_string())
                    .or_default() += 1;
                filled += 1;
            }
            // A UNIQUE value a surviving row holds (a username taken again since): kept aside.
            Err(e) => {
                let reason = format!("not inserted: {e}");
                recorder.collided(
                    main,
                    &shape.table,
                    RowKey::Rowid(p.from),
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

/// The columns both sides have and a name for the rowid on each; `None` when the backup has
/// no such table or SQL cannot name a rowid.
pub(super) fn shape_of(main: &Connection, backup: &Backup, table: &str) -> Option<Shape> {
    let backup_table = backup
        .tables
        .iter()
        .find(|t| t.eq_ignore_ascii_case(table))?
        .clone();
    let ours = columns(main, table);
    let theirs = columns(&backup.conn, &backup_table);
    let (mut names, mut backup_names) = (Vec::new(), Vec::new());
    for (name, _, _) in ours.iter().filter(|c| c.2 == 0) {
        if let Some((b, _, _)) = theirs
            .iter()
            .find(|c| c.2 == 0 && c.0.eq_ignore_ascii_case(name))
        {
            names.push(name.clone());
            backup_names.push(b.clone());
        }
    }
    Some(Shape {
        table: table.to_string(),
        backup_table,
        names,
        backup_names,
        // A WITHOUT ROWID table has none: its rows are named by their primary key.
        rowid: rowid_alias(&ours).unwrap_or_default(),
        backup_rowid: rowid_alias(&theirs).unwrap_or_default(),
    })
}

/// `rowid`, `_rowid_` or `oid`, whichever no column shadows.
fn rowid_alias(cols: &[(String, String, i64)]) -> Option<String> {
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|a| !cols.iter().any(|c| c.0.eq_ignore_ascii_case(a)))
        .map(str::to_string)
}

struct Plan {
    fill: Vec<Planned>,
    collisions: Vec<(i64, String)>,
}

/// What the table's losses say of one rowid.
enum Place<'a> {
    /// In a lost range.
    InRange(&'a LostRange),
    Outside,
}

fn place(lost: &[LostRange], rowid: i64) -> Place<'_> {
    lost.iter()
        .filter(|r| r.keys.is_none())
        .find(|r| {
            r.first_rowid.is_none_or(|a| rowid >= a) && r.last_rowid.is_none_or(|b| rowid <= b)
        })
        .map_or(Place::Outside, Place::InRange)
}

/// Reads the backup's rowids (with the values indexes hold of lost rows) and decides, row by
/// row, what each is.
fn plan(
    main: &Connection,
    backup: &Backup,
    shape: &Shape,
    state: &mut TableState<'_>,
) -> rusqlite::Result<Plan> {
    let rep = state.rep;
    let known: HashMap<i64, &IndexedRow> = rep
        .lost_values
        .iter()
        .flat_map(|v| v.rows.iter().map(|r| (r.rowid, r)))
        .collect();
    // Every lost row a whole index lists is named: a rowid it does not name did not exist.
    let all_named = rep.lost_values.as_ref().is_some_and(|v| v.not_listed == 0);
    let matcher = ValueMatcher::new(main, rep, shape);
    let select_cols: String = matcher
        .backup_columns
        .iter()
        .map(|c| format!(", {}", ident(c)))
        .collect();
    let sql = format!(
        "SELECT {}{select_cols} FROM {} ORDER BY 1",
        shape.backup_rowid,
        ident(&shape.backup_table)
    );
    let has_sql = format!(
        "SELECT 1 FROM {} WHERE {} = ?1",
        ident(&shape.table),
        shape.rowid
    );
    let mut has = main.prepare(&has_sql)?;
    let mut present = |r: i64| {
        has.query_row([r], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
    };
    let mut out = Plan {
        fill: Vec::new(),
        collisions: Vec::new(),
    };
    let mut by_values: Vec<(i64, String)> = Vec::new();
    let mut seen_known: HashSet<i64> = HashSet::new();
    let mut stmt = backup.conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        if interrupted() {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
                None,
            ));
        }
        let Ok(rowid) = row.get::<_, i64>(0) else {
            continue;
        };
        if known.contains_key(&rowid) {
            seen_known.insert(rowid);
        }
        if state.filled.contains(&rowid) {
            continue;
        }
        let place = place(&rep.lost, rowid);
        if present(rowid)? {
            if matches!(place, Place::InRange(_)) || known.contains_key(&rowid) {
                out.collisions
                    .push((rowid, format!("a surviving row has rowid {rowid}")));
            }
            continue;
        }
        let how = match place {
            _ if known.contains_key(&rowid) => Some(MatchedBy::Rowid),
            Place::InRange(r) if r.rows.is_some() && all_named => None,
            Place::InRange(r) if r.exact => Some(MatchedBy::Range),
            Place::InRange(_) => Some(MatchedBy::EstimatedRange),
            Place::Outside => None,
        };
        match how {
            Some(how) => out.fill.push(Planned {
                from: rowid,
                to: rowid,
                how,
            }),
            None => match matcher.values_of(row) {
                Some(values) => by_values.push((rowid, values)),
                None if matcher.survives(main, shape, row)? => state.out.elsewhere += 1,
                None => {
                    state.deleted.insert(rowid);
                }
            },
        }
    }
    let matched = matcher.pair(&by_values, &seen_known, &state.filled);
    for (from, _) in by_values {
        match matched.get(&from) {
            Some(&to) if !present(to)? => {
                out.fill.push(Planned {
                    from,
                    to,
                    how: MatchedBy::IndexedValues,
                });
            }
            _ => {
                state.deleted.insert(from);
            }
        }
    }
    Ok(out)
}

/// Lost rows known only by the values an index holds: a backup row outside every lost range
/// with exactly those values is that row, under another rowid (VACUUM renumbers rowids that
/// no INTEGER PRIMARY KEY holds).
struct ValueMatcher {
    /// The backup's names of the columns the indexes hold.
    backup_columns: Vec<String>,
    /// Lost rowids by the key of their indexed values (none NULL).
    known: HashMap<String, Vec<i64>>,
}

impl ValueMatcher {
    fn new(main: &Connection, rep: &TableReport, shape: &Shape) -> ValueMatcher {
        let mut m = ValueMatcher {
            backup_columns: Vec::new(),
            known: HashMap::new(),
        };
        let Some(values) = &rep.lost_values else {
            return m;
        };
        // Only the columns of a UNIQUE index name one row: equal values in another column
        // (a kind, a date) prove nothing.
        let Some(unique) = unique_columns(main, &shape.table).into_iter().find(|cols| {
            cols.iter()
                .all(|c| values.columns.iter().any(|v| v.eq_ignore_ascii_case(c)))
        }) else {
            return m;
        };
        let mut slots = Vec::new();
        for column in &unique {
            let slot = values
                .columns
                .iter()
                .position(|v| v.eq_ignore_ascii_case(column));
            let i = shape
                .names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(column));
            let (Some(slot), Some(i)) = (slot, i) else {
                return ValueMatcher {
                    backup_columns: Vec::new(),
                    known: HashMap::new(),
                };
            };
            m.backup_columns.push(shape.backup_names[i].clone());
            slots.push(slot);
        }
        for row in &values.rows {
            let picked: Vec<serde_json::Value> = slots
                .iter()
                .map(|&s| row.values.get(s).cloned().unwrap_or_default())
                .collect();
            if let Some(k) = key(&picked) {
                m.known.entry(k).or_default().push(row.rowid);
            }
        }
        m
    }

    /// The key of a backup row's indexed values, when some lost row has the same ones.
    fn values_of(&self, row: &rusqlite::Row<'_>) -> Option<String> {
        if self.known.is_empty() {
            return None;
        }
        let values: Vec<serde_json::Value> = (0..self.backup_columns.len())
            .map(|i| {
                row.get_ref(i + 1)
                    .map_or(serde_json::Value::Null, json_value)
            })
            .collect();
        key(&values).filter(|k| self.known.contains_key(k))
    }

    /// Whether the damaged database holds a backup row's indexed values under another
    /// rowid: a row that survived renumbered (not one deleted since).
    fn survives(
        &self,
        main: &Connection,
        shape: &Shape,
        row: &rusqlite::Row<'_>,
    ) -> rusqlite::Result<bool> {
        if self.backup_columns.is_empty() {
            return Ok(false);
        }
        let mut conds = Vec::new();
        let mut values = Vec::new();
        for (i, b) in self.backup_columns.iter().enumerate() {
            let v = row.get::<_, Value>(i + 1)?;
            if v == Value::Null {
                return Ok(false);
            }
            let ours = shape
                .backup_names
                .iter()
                .position(|n| n == b)
                .map(|p| &shape.names[p]);
            conds.push(format!("{} = ?{}", ident(ours.unwrap_or(b)), i + 1));
            values.push(v);
        }
        let sql = format!(
            "SELECT 1 FROM {} WHERE {} LIMIT 1",
            ident(&shape.table),
            conds.join(" AND ")
        );
        let mut stmt = main.prepare_cached(&sql)?;
        let found = stmt
            .query_row(rusqlite::params_from_iter(values), |_| Ok(()))
            .optional()?;
        Ok(found.is_some())
    }

    /// Backup rowid → lost rowid, where exactly one lost row not otherwise found has the
    /// values, and exactly one backup row: an ambiguous match fills nothing.
    fn pair(
        &self,
        candidates: &[(i64, String)],
        seen: &HashSet<i64>,
        filled: &HashSet<i64>,
    ) -> HashMap<i64, i64> {
        let mut out = HashMap::new();
        for (from, k) in candidates {
            let lost: Vec<i64> = self.known[k]
                .iter()
                .copied()
                .filter(|r| !seen.contains(r) && !filled.contains(r))
                .collect();
            let rivals = candidates.iter().filter(|(_, v)| v == k).count();
            if let ([one], 1) = (lost.as_slice(), rivals) {
                out.insert(*from, *one);
            }
        }
        out
    }
}

/// The columns of each UNIQUE index of `table` that is neither partial nor on expressions.
fn unique_columns(main: &Connection, table: &str) -> Vec<Vec<String>> {
    let list = |sql: &str, arg: &str| -> Vec<(String, i64, i64)> {
        main.prepare(sql)
            .and_then(|mut st| {
                st.query_map([arg], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .unwrap_or_default()
    };
    let indexes = list(
        "SELECT name, \"unique\", partial FROM pragma_index_list(?1)",
        table,
    );
    indexes
        .into_iter()
        .filter(|(_, unique, partial)| *unique == 1 && *partial == 0)
        .filter_map(|(name, _, _)| {
            let cols = main
                .prepare("SELECT name, cid FROM pragma_index_info(?1) ORDER BY seqno")
                .and_then(|mut st| {
                    st.query_map([&name], |r| {
                        Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .ok()?;
            cols.into_iter()
                .map(|(n, cid)| n.filter(|_| cid >= 0))
                .collect::<Option<Vec<String>>>()
        })
        .collect()
}

/// Indexed values as one comparable key (numbers as numbers: an index may keep a REAL
/// column's integral value as an integer); `None` when one is NULL.
fn key(values: &[serde_json::Value]) -> Option<String> {
    let mut parts = Vec::with_capacity(values.len());
    for v in values {
        parts.push(match v {
            serde_json::Value::Null => return None,
            serde_json::Value::Number(n) => format!("n{}", n.as_f64().unwrap_or(f64::NAN)),
            other => other.to_string(),
        });
    }
    Some(parts.join("\u{1f}"))
}

/// The backup row's values of the columns both sides have.
fn backup_row(conn: &Connection, shape: &Shape, rowid: i64) -> rusqlite::Result<Vec<Value>> {
    let cols: Vec<String> = shape.backup_names.iter().map(|c| ident(c)).collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {} = ?1",
        if cols.is_empty() {
            "NULL".to_string()
        } else {
            cols.join(", ")
        },
        ident(&shape.backup_table),
        shape.backup_rowid
    );
    let n = shape.backup_names.len();
    conn.prepare_cached(&sql)?
        .query_row([rowid], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
}

/// Inserts a filled row under `rowid`. `OR ABORT` overrides a table's own conflict clause: an
/// `ON CONFLICT REPLACE` must not delete a surviving row to make room.
fn insert(main: &Connection, shape: &Shape, rowid: i64, values: &[Value]) -> rusqlite::Result<()> {
    let cols: String = shape
        .names
        .iter()
        .map(|c| format!(", {}", ident(c)))
        .collect();
    let params: String = (0..values.len()).map(|i| format!(", ?{}", i + 2)).collect();
    let sql = format!(
        "INSERT OR ABORT INTO {}({}{cols}) VALUES (?1{params})",
        ident(&shape.table),
        shape.rowid
    );
    let mut stmt = main.prepare_cached(&sql)?;
    stmt.raw_bind_parameter(1, rowid)?;
    for (i, v) in values.iter().enumerate() {
        stmt.raw_bind_parameter(i + 2, v)?;
    }
    stmt.raw_execute().map(|_| ())
}
