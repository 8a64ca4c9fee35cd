//! What only the application registers: collations, SQL functions, virtual-table modules.
//!
//! Collations. SQLite will not create a table or index that
//! names a collation it does not have, nor check or extend such an index. For the length of
//! the process, every connection SQLite opens gets a stand-in of the same name whenever one
//! is missing (an auto-extension installs SQLite's `collation_needed` hook). The stand-in
//! keeps the source's order: before anything is copied, each index (and WITHOUT ROWID key)
//! whose first column uses the collation is read in its order from the snapshot, and the
//! values are ranked as they came. Rows copied as they are stay in that order, indexes built
//! from decoded rows are sorted into it, and `integrity_check` finds the same order. Values
//! the source's indexes never held compare as bytes. The report names every collation that
//! needed a stand-in: the application must register it again before using the file.
//!
//! SQL functions only the application registers get a stand-in returning NULL where no
//! stored value depends on them (CHECK, DEFAULT, virtual generated columns), and a virtual
//! table whose module is the application's keeps its schema row as the source has it.

use crate::engine::schema::{SchemaEntry, SchemaKind};
use crate::engine::ObjectReport;
use crate::util::quote::ident;
use rusqlite::Connection;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, Once};

/// Learned order of each stand-in (collation name in lower case → value → rank).
static RANKS: Mutex<BTreeMap<String, HashMap<String, u64>>> = Mutex::new(BTreeMap::new());
/// Every chain of values learned so far, by collation. A later database of the process adds
/// its chains to those before: the orders of one real collation agree, and the values of
/// any one index stay in their order, so ranks already in use keep their meaning.
type Chains = BTreeMap<String, Vec<Vec<String>>>;
static CHAINS: Mutex<Chains> = Mutex::new(BTreeMap::new());
/// SQL functions given stand-ins that return NULL (lower case names).
static FUNCTIONS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static INSTALL: Once = Once::new();

/// Installs the hook on every connection opened from now on (once per process).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        // SAFETY: `init` only sets a callback on the connection it is given; it neither
        // opens nor closes a database nor touches the list of auto-extensions.
        let _ = unsafe { rusqlite::auto_extension::register_auto_extension(init) };
    });
}

/// The auto-extension's entry point: SQLite calls it for every new connection.
unsafe extern "C" fn init(
    db: *mut rusqlite::ffi::sqlite3,
    err: *mut *mut std::ffi::c_char,
    _: *const rusqlite::ffi::sqlite3_api_routines,
) -> std::ffi::c_int {
    // SAFETY: SQLite hands a valid connection being opened; the Connection made from it does
    // not own it (it is not closed when dropped).
    unsafe { rusqlite::auto_extension::init_auto_extension(db, err, hook) }
}

#[allow(clippy::needless_pass_by_value)] // the signature rusqlite's connection hook takes
fn hook(conn: Connection) -> rusqlite::Result<()> {
    let functions: Vec<String> = FUNCTIONS
        .lock()
        .map(|f| f.iter().cloned().collect())
        .unwrap_or_default();
    for name in functions {
        null_function(&conn, &name)?;
    }
    conn.collation_needed(make_stand_in)
}

/// A function of any number of arguments that returns NULL: a CHECK it appears in passes
/// (SQLite fails a CHECK only on false), a virtual generated column reads NULL.
fn null_function(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        name,
        -1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |_| Ok(rusqlite::types::Null),
    )
}

/// The function an error names as missing.
/// SQLite says "no such function: NAME" when it prepares a statement and "unknown function:
/// NAME()" when it meets one while running (a schema's expression).
pub(crate) fn missing_function(e: &rusqlite::Error) -> Option<String> {
    let text = e.to_string();
    let rest = ["no such function: ", "unknown function: "]
        .iter()
        .find_map(|lead| text.split(lead).nth(1))?;
    let name = rest.split(|c: char| c.is_whitespace() || c == '(').next()?;
    (!name.is_empty()).then(|| name.to_string())
}

/// Runs `sql` on `conn`, giving each function it lacks a stand-in there; returns the names.
pub(crate) fn run_with_stand_ins(conn: &Connection, sql: &str) -> Vec<String> {
    let mut names = Vec::new();
    while let Err(e) = conn.execute_batch(sql) {
        match missing_function(&e) {
            Some(name) if !names.contains(&name) && null_function(conn, &name).is_ok() => {
                names.push(name)
            }
            _ => break,
        }
    }
    names
}

/// Finds the SQL functions the schema's tables name that only the application registers,
/// and gives every connection opened from now on a stand-in for those no row depends on:
/// used in CHECK constraints, DEFAULT values and virtual generated columns only. A function
/// an index (its expression or WHERE) or a table with stored generated columns uses gets
/// none: rows and index entries would hold the stand-in's result (such tables and indexes
/// are loaded through twins, see `schema::twin`).
pub(crate) fn functions_for(entries: &[SchemaEntry]) -> AppFunctions {
    install();
    let Ok(scratch) = Connection::open_in_memory() else {
        return AppFunctions::default();
    };
    let _ = scratch.execute_batch("PRAGMA writable_schema = ON");
    // Stand-ins made for an earlier database of this process are not this schema's findings.
    for name in FUNCTIONS.lock().map(|f| f.clone()).unwrap_or_default() {
        let _ = scratch.remove_function(name.as_str(), -1);
    }
    let mut safe: BTreeSet<String> = BTreeSet::new();
    let mut unsafe_: BTreeSet<String> = BTreeSet::new();
    for e in entries
        .iter()
        .filter(|e| e.kind == SchemaKind::Table && e.rootpage > 0)
    {
        let Some(sql) = &e.sql else { continue };
        let names = run_with_stand_ins(&scratch, sql);
        let stored: bool = scratch
            .query_row(
                "SELECT count(*) FROM pragma_table_xinfo(?1) WHERE hidden = 3",
                [&e.name],
                |r| r.get::<_, i64>(0),
            )
            .is_ok_and(|n| n > 0);
        for n in names {
            match stored {
                true => unsafe_.insert(n.to_ascii_lowercase()),
                false => safe.insert(n.to_ascii_lowercase()),
            };
        }
    }
    for e in entries.iter().filter(|e| e.kind == SchemaKind::Index) {
        if let Some(sql) = &e.sql {
            unsafe_.extend(
                run_with_stand_ins(&scratch, sql)
                    .iter()
                    .map(|n| n.to_ascii_lowercase()),
            );
        }
    }
    let given: Vec<String> = safe.difference(&unsafe_).cloned().collect();
    if let Ok(mut f) = FUNCTIONS.lock() {
        f.extend(given.iter().cloned());
    }
    AppFunctions {
        all: safe.union(&unsafe_).cloned().collect(),
        stand_ins: given,
    }
}

/// Gives `conn` stand-ins for exactly `names`, whatever an earlier database of the process
/// left registered: the schema is read as this database's own functions allow.
pub(crate) fn only_stand_ins_for(conn: &Connection, names: &[String]) {
    for name in FUNCTIONS.lock().map(|f| f.clone()).unwrap_or_default() {
        if !names.contains(&name) {
            let _ = conn.remove_function(name.as_str(), -1);
        }
    }
    for name in names {
        let _ = null_function(conn, name);
    }
}

/// The SQL functions a schema needs from the application.
#[derive(Debug, Clone, Default)]
pub(crate) struct AppFunctions {
    /// Every one (lower case).
    pub(crate) all: Vec<String>,
    /// Those no stored value depends on, given stand-ins returning NULL.
    pub(crate) stand_ins: Vec<String>,
}

/// Registers a stand-in for `name` on `conn` (SQLite asks only for collations it lacks).
fn make_stand_in(conn: &Connection, name: &str) -> rusqlite::Result<()> {
    let key = name.to_ascii_lowercase();
    conn.create_collation(name, move |a: &str, b: &str| compare(&key, a, b))
}

fn compare(key: &str, a: &str, b: &str) -> Ordering {
    let ranks = RANKS.lock().ok();
    let ranked = ranks
        .as_ref()
        .and_then(|r| r.get(key))
        .and_then(|r| Some((*r.get(a)?, *r.get(b)?)));
    match ranked {
        Some((x, y)) => x.cmp(&y),
        None => a.as_bytes().cmp(b.as_bytes()),
    }
}

/// The collations the schema's tables and indexes name that SQLite does not have: those a
/// scratch database that ran every CREATE TABLE and CREATE INDEX had to be given stand-ins
/// for.
pub(crate) fn needed_by(entries: &[SchemaEntry]) -> Vec<String> {
    install();
    let list = |c: &Connection| -> BTreeSet<String> {
        c.prepare("SELECT name FROM pragma_collation_list")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .unwrap_or_default()
    };
    let (Ok(scratch), Ok(fresh)) = (Connection::open_in_memory(), Connection::open_in_memory())
    else {
        return Vec::new();
    };
    let _ = scratch.execute_batch("PRAGMA writable_schema = ON");
    for kind in [SchemaKind::Table, SchemaKind::Index] {
        for e in entries.iter().filter(|e| e.kind == kind && e.rootpage > 0) {
            if let Some(sql) = &e.sql {
                let _ = scratch.execute_batch(sql);
            }
        }
    }
    let builtin = list(&fresh);
    list(&scratch).difference(&builtin).cloned().collect()
}

/// Learns the source's order of every collation in `names` from the snapshot attached at
/// `uri` (the engine's page view): each index or WITHOUT ROWID key whose first column uses
/// it is scanned in its own order, which needs no comparison.
pub(crate) fn learn(uri: &str, entries: &[SchemaEntry], names: &[String]) {
    let wanted: BTreeSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    if wanted.is_empty() {
        return;
    }
    let Ok(conn) = Connection::open_in_memory() else {
        return;
    };
    if conn.execute("ATTACH ?1 AS src", [uri]).is_err() {
        return;
    }
    let mut chains: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for e in entries
        .iter()
        .filter(|e| e.kind == SchemaKind::Table && e.rootpage > 0)
    {
        for (index, column, desc, coll) in key_columns(&conn, &e.name) {
            let coll = coll.to_ascii_lowercase();
            if !wanted.contains(&coll) {
                continue;
            }
            let from = match &index {
                Some(i) => format!("src.{} INDEXED BY {}", ident(&e.name), ident(i)),
                None => format!("src.{} NOT INDEXED", ident(&e.name)),
            };
            let sql = format!("SELECT {} FROM {from}", ident(&column));
            let Ok(mut values) = scan(&conn, &sql) else {
                continue;
            };
            if desc {
                values.reverse();
            }
            chains.entry(coll).or_default().push(values);
        }
    }
    let (Ok(mut all), Ok(mut ranks)) = (CHAINS.lock(), RANKS.lock()) else {
        return;
    };
    for (coll, chains) in chains {
        let known = all.entry(coll.clone()).or_default();
        known.extend(chains);
        ranks.insert(coll, rank(known));
    }
}

/// The first key column of each index of `table` (and of a WITHOUT ROWID table's key, index
/// `None`): (index, column, descending, collation). Expressions are left out.
fn key_columns(conn: &Connection, table: &str) -> Vec<(Option<String>, String, bool, String)> {
    let list = format!(
        "SELECT l.name, l.origin, x.name, x.desc, x.coll FROM pragma_index_list({0}, 'src') l,
                pragma_index_xinfo(l.name, 'src') x
         WHERE x.seqno = 0 AND x.name IS NOT NULL AND x.coll IS NOT NULL",
        crate::util::quote::text(table)
    );
    let without_rowid = conn
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE schema = 'src' AND name = ?1",
            [table],
            |r| r.get::<_, bool>(0),
        )
        .unwrap_or(false);
    let Ok(mut stmt) = conn.prepare(&list) else {
        return Vec::new();
    };
    let rows = stmt.query_map([], |r| {
        let origin: String = r.get(1)?;
        let index: String = r.get(0)?;
        Ok((
            (!(without_rowid && origin == "pk")).then_some(index),
            r.get::<_, String>(2)?,
            r.get::<_, bool>(3)?,
            r.get::<_, String>(4)?,
        ))
    });
    rows.map(|r| r.flatten().collect()).unwrap_or_default()
}

fn scan(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut out: Vec<String> = Vec::new();
    while let Some(row) = rows.next()? {
        if let rusqlite::types::ValueRef::Text(t) = row.get_ref(0)? {
            let s = String::from_utf8_lossy(t).into_owned();
            if out.last() != Some(&s) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// One order of every value of `chains` (each in the source's order) that keeps each chain's
/// order: values are taken as soon as nothing before them in a chain is left, the smallest
/// (as bytes) first among those ready.
fn rank(chains: &[Vec<String>]) -> HashMap<String, u64> {
    let mut after: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut before: HashMap<&str, usize> = HashMap::new();
    for chain in chains {
        for v in chain {
            before.entry(v.as_str()).or_insert(0);
        }
        for pair in chain.windows(2) {
            after.entry(&pair[0]).or_default().push(&pair[1]);
            *before.entry(&pair[1]).or_insert(0) += 1;
        }
    }
    let mut ready: BTreeSet<&str> = before
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(v, _)| *v)
        .collect();
    let mut out = HashMap::new();
    while out.len() < before.len() {
        // A cycle (values the application's collation holds equal, met in both orders) is
        // broken at its smallest value.
        let next = match ready.pop_first() {
            Some(v) => v,
            None => match before.keys().filter(|v| !out.contains_key(**v)).min() {
                Some(v) => v,
                None => break,
            },
        };
        if out.contains_key(next) {
            continue;
        }
        out.insert(next.to_string(), out.len() as u64);
        for &n in after.get(next).into_iter().flatten() {
            if let Some(c) = before.get_mut(n) {
                *c = c.saturating_sub(1);
                if *c == 0 && !out.contains_key(n) {
                    ready.insert(n);
                }
            }
        }
    }
    out
}

/// Why this SQLite cannot load virtual table `name` at all, if that is the trouble: its
/// module is one only the application registers. SQLite then answers with a plain error,
/// where a damaged table answers that its file is corrupt. (An FTS5 table whose tokenizer is
/// the application's reads, but fails SQLite's integrity check: it is not kept.)
pub(crate) fn module_missing(conn: &Connection, name: &str) -> Option<String> {
    let plain = |e: &rusqlite::Error| e.sqlite_error_code() == Some(rusqlite::ErrorCode::Unknown);
    // Preparing connects the table (its module, its tokenizer); running it may not be
    // allowed at all (fts3tokenize wants its input, a contentless table has no rows to
    // scan), which says nothing of whether this SQLite can load it.
    let probe = format!("SELECT * FROM {}", ident(name));
    if let Err(e) = conn.prepare(&probe) {
        return plain(&e).then(|| e.to_string());
    }
    None
}

/// The report of a virtual table whose schema row is kept as the source has it although this
/// SQLite cannot load it: its rows are in its shadow tables, and the application that
/// registers its module opens it as before.
pub(crate) fn kept_verbatim(name: &str, why: &str) -> ObjectReport {
    ObjectReport {
        kind: crate::engine::ObjectKind::VirtualTable,
        name: name.to_string(),
        created: true,
        error: Some(format!(
            "kept as the source has it, but this SQLite cannot load it ({why}): the \
             application must register what it provides for it (its module or tokenizer) again"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_keep_every_chain_in_order() {
        let chains = vec![
            vec!["z".to_string(), "m".into(), "a".into()],
            vec!["q".to_string(), "m".into(), "b".into()],
        ];
        let r = rank(&chains);
        assert!(r["z"] < r["m"] && r["m"] < r["a"]);
        assert!(r["q"] < r["m"] && r["m"] < r["b"]);
        assert_eq!(r.len(), 5);
    }
}
