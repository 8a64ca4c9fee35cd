//! From facts to findings: what kind of damage the file shows, in words, and what to run
//! next.

use super::probe::Object;
use super::{Finding, FindingKind, HeaderFacts, IntegrityFacts, WalFacts};
use crate::util::quote::{ident, shell, tool_command};
use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// What one integrity_check message is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Concern {
    Index {
        index: String,
        table: String,
    },
    Table(String),
    Freelist,
    /// "Page N: never used": a page no tree and no freelist claims. A consequence when a
    /// tree is cut off above it; freelist damage when nothing else is wrong.
    Unreferenced,
    /// SQLite's bare "database disk image is malformed", which names nothing.
    Generic,
    Unknown,
}

/// The number right after `word` in `msg`, if there is one.
fn number_after(msg: &str, word: &str) -> Option<u32> {
    let at = msg.find(word)? + word.len();
    let digits: String = msg[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The identifier after `word` (up to whitespace, a comma or a dot when `dotted` is false).
fn name_after(msg: &str, word: &str) -> Option<String> {
    let at = msg.find(word)? + word.len();
    let name: String = msg[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn concern_of(msg: &str, objects: &[Object], owners: &HashMap<u32, String>) -> Concern {
    let by_name = |name: &str| objects.iter().find(|o| o.name.eq_ignore_ascii_case(name));
    let of_object = |o: &Object| {
        if o.kind == "index" {
            Concern::Index {
                index: o.name.clone(),
                table: o.table.clone(),
            }
        } else {
            Concern::Table(o.table.clone())
        }
    };
    for pattern in [
        " missing from index ",
        "wrong # of entries in index ",
        "non-unique entry in UNIQUE index ",
    ] {
        if let Some(index) = name_after(msg, pattern) {
            let table = by_name(&index).map(|o| o.table.clone()).unwrap_or_default();
            return Concern::Index { index, table };
        }
    }
    let lower = msg.to_ascii_lowercase();
    if lower.contains("never used") {
        return Concern::Unreferenced;
    }
    if lower.contains("freelist") {
        return Concern::Freelist;
    }
    if lower.trim() == "database disk image is malformed" {
        return Concern::Generic;
    }
    if let Some(root) = number_after(msg, "Tree ") {
        if let Some(o) = objects.iter().find(|o| o.rootpage == root) {
            return of_object(o);
        }
    }
    for word in ["Tree ", "On tree page ", " page "] {
        let page = match word {
            "Tree " => number_after(msg, "Tree ").and(number_after(msg, " page ")),
            w => number_after(msg, w),
        };
        if let Some(page) = page {
            if let Some(o) = objects.iter().find(|o| o.rootpage == page) {
                return of_object(o);
            }
            if let Some(name) = owners.get(&page) {
                if let Some(o) = by_name(name) {
                    return of_object(o);
                }
            }
        }
    }
    // "NULL value in t.c", "TEXT value in t.c", "CHECK constraint failed in t", ...
    if let Some(rest) = name_after(msg, " in ") {
        let table = rest.split('.').next().unwrap_or("");
        if let Some(o) = by_name(table) {
            return of_object(o);
        }
    }
    Concern::Unknown
}

/// Which table or index each page belongs to, from the dbstat virtual table (one object at
/// a time, so a tree SQLite cannot walk does not hide the others).
fn page_owners(conn: &Connection, objects: &[Object]) -> HashMap<u32, String> {
    let mut owners = HashMap::new();
    let Ok(mut stmt) = conn.prepare("SELECT pageno FROM dbstat WHERE name = ?1") else {
        return owners;
    };
    for o in objects {
        let Ok(mut rows) = stmt.query([&o.name]) else {
            continue;
        };
        while let Ok(Some(row)) = rows.next() {
            if let Ok(Some(p)) = row.get::<_, Option<i64>>(0) {
                if let Ok(p) = u32::try_from(p) {
                    owners.entry(p).or_insert_with(|| o.name.clone());
                }
            }
        }
    }
    owners
}

fn finding(kind: FindingKind, summary: String, damage: bool) -> Finding {
    Finding {
        kind,
        summary,
        tables: Vec::new(),
        indexes: Vec::new(),
        damage,
    }
}

/// Every finding, from the file's facts first, then from what integrity_check said.
pub(super) fn classify(
    h: &HeaderFacts,
    wal: Option<&WalFacts>,
    integrity: &IntegrityFacts,
    objects: &[Object],
    conn: Option<Connection>,
) -> Vec<Finding> {
    let mut out = header_findings(h);
    out.extend(wal.and_then(wal_finding));
    if let Some(e) = integrity.error.as_ref().filter(|_| h.magic_ok) {
        out.push(finding(
            FindingKind::SchemaUnreadable,
            format!("SQLite cannot read the database: {e}"),
            true,
        ));
    }
    if integrity.messages.is_empty()
        && integrity.unreadable_tables.is_empty()
        && integrity.unreadable_indexes.is_empty()
    {
        if let Some(e) = &integrity.aborted {
            out.push(finding(
                FindingKind::Other,
                format!("integrity_check stopped: {e}"),
                true,
            ));
        }
        return out;
    }
    let tally = Tally::of(integrity, objects, conn);
    tally.findings(&mut out);
    out
}

/// What the header, the file's size and the freelist count say.
fn header_findings(h: &HeaderFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    if !h.magic_ok {
        out.push(finding(
            FindingKind::DamagedHeader,
            format!(
                "damaged header: the file does not start with \"SQLite format 3\"; its pages read as a database with {}-byte pages",
                h.page_size
            ),
            true,
        ));
    } else if !h.problems.is_empty() {
        out.push(finding(
            FindingKind::DamagedHeader,
            format!("damaged header: {}", h.problems.join("; ")),
            true,
        ));
    }
    if let Some(count) = h.header_page_count {
        if h.header_page_count_valid && count > h.file_pages && h.pages_missing_past_end > 0 {
            out.push(finding(
                FindingKind::TruncatedFile,
                format!(
                    "truncated file: the header says {count} pages but the file holds {} ({} bytes missing)",
                    h.file_pages,
                    u64::from(count - h.file_pages) * u64::from(h.page_size)
                ),
                true,
            ));
        }
    }
    if !h.whole_pages && !out.iter().any(|f| f.kind == FindingKind::TruncatedFile) {
        out.push(finding(
            FindingKind::TruncatedFile,
            format!(
                "truncated file: {} bytes is not a whole number of {}-byte pages (the last page is cut short)",
                h.file_size, h.page_size
            ),
            true,
        ));
    }
    if let Some(free) = h.freelist_count {
        if h.magic_ok && free >= h.pages_with_wal.max(1) {
            out.push(finding(
                FindingKind::FreelistDamage,
                format!(
                    "freelist damage: the header counts {free} free pages in a {}-page database",
                    h.pages_with_wal
                ),
                true,
            ));
        }
    }
    out
}

/// What the WAL says, if it is unusable or its last transaction is torn.
fn wal_finding(w: &WalFacts) -> Option<Finding> {
    if let Some(why) = &w.unusable {
        return (w.bytes > 0).then(|| {
            finding(
                FindingKind::WalUnusable,
                format!("WAL unusable: {why}; any transactions in it are not in the database"),
                true,
            )
        });
    }
    w.tail_torn.then(|| {
        finding(
            FindingKind::WalTornTail,
            format!(
                "WAL tail torn: last transaction incomplete ({} frames after the last commit are ignored, as SQLite does)",
                w.valid_frames - w.committed_frames
            ),
            true,
        )
    })
}

/// Transactions the `-shm` records that no file holds, where that is a loss.
pub(super) fn wal_index_finding(loss: &crate::source::pagefile::WalIndexGap) -> Finding {
    finding(FindingKind::WalLostCommits, loss.describe(), true)
}

/// A `-wal` older than the main file: what SQLite shows of it is an older database.
pub(super) fn older_wal_finding(w: &crate::source::pagefile::WalInfo) -> Option<Finding> {
    w.older_than_main_file.then(|| {
        finding(
            FindingKind::WalOlderThanDatabase,
            "the -wal was cut short below the checkpoint the -shm records: SQLite, once it \
             rebuilds its -shm, reads the -wal's older frames over the main file's newer pages \
             and shows rows the checkpoint had replaced; recover reads the main file alone"
                .to_string(),
            true,
        )
    })
}

/// What integrity_check's messages are about, added up.
#[derive(Default)]
struct Tally {
    structure: bool,
    tables: BTreeSet<String>,
    indexes: BTreeSet<String>,
    index_tables: BTreeSet<String>,
    freelist: bool,
    unreferenced: bool,
    generic: bool,
    unknown: usize,
    /// Tables whose rows an index contradicts (table → index), from [`contradicted`].
    contradicted: BTreeMap<String, String>,
}

impl Tally {
    fn of(integrity: &IntegrityFacts, objects: &[Object], conn: Option<Connection>) -> Tally {
        let needs_owners = integrity.messages.iter().any(|m| {
            let root_known =
                number_after(m, "Tree ").is_some_and(|r| objects.iter().any(|o| o.rootpage == r));
            !root_known && (m.contains("page ") || m.contains("Page "))
        });
        let owners = match (&conn, needs_owners) {
            (Some(c), true) => page_owners(c, objects),
            _ => HashMap::new(),
        };
        let contradicted = conn
            .as_ref()
            .map(|c| contradicted(c, &integrity.messages, objects))
            .unwrap_or_default();
        drop(conn);
        let mut concerns: Vec<Concern> = integrity
            .messages
            .iter()
            .map(|m| concern_of(m, objects, &owners))
            .collect();
        concerns.extend(
            integrity
                .unreadable_tables
                .iter()
                .map(|t| Concern::Table(t.clone())),
        );
        concerns.extend(integrity.unreadable_indexes.iter().map(|i| {
            Concern::Index {
                index: i.clone(),
                table: objects
                    .iter()
                    .find(|o| &o.name == i)
                    .map(|o| o.table.clone())
                    .unwrap_or_default(),
            }
        }));
        // An index that contradicts its rows says nothing of which side is right.
        concerns.retain(
            |c| !matches!(c, Concern::Index { table, .. } if contradicted.contains_key(table)),
        );
        let mut tally = Tally {
            contradicted,
            structure: integrity.messages.iter().any(|m| {
                let m = m.to_ascii_lowercase();
                m.contains("2nd reference to page") || m.contains("child page depth differs")
            }),
            ..Tally::default()
        };
        for c in concerns {
            tally.add(c);
        }
        tally
    }

    fn add(&mut self, c: Concern) {
        match c {
            Concern::Index { index, table } => {
                self.indexes.insert(index);
                if !table.is_empty() {
                    self.index_tables.insert(table);
                }
            }
            Concern::Table(t) => {
                self.tables.insert(t);
            }
            Concern::Freelist => self.freelist = true,
            Concern::Unreferenced => self.unreferenced = true,
            Concern::Generic => self.generic = true,
            Concern::Unknown => self.unknown += 1,
        }
    }

    fn findings(mut self, out: &mut Vec<Finding>) {
        if self.structure {
            let mut f = finding(
                FindingKind::BtreeStructure,
                "b-tree structure damage (2nd reference to page / child page depth differs): typical of memory-mapped I/O spreading a torn write".to_string(),
                true,
            );
            f.tables = self.tables.iter().cloned().collect();
            out.push(f);
        }
        // Pages cut off from a damaged tree show up as "never used": a consequence, not a cause.
        let something_named = self.structure
            || self.freelist
            || self.unknown > 0
            || !self.tables.is_empty()
            || !self.indexes.is_empty();
        if self.unreferenced && !something_named {
            self.freelist = true;
        }
        if self.generic && !something_named && !self.freelist {
            self.unknown += 1;
        }
        let index_only = !self.structure
            && !self.freelist
            && self.unknown == 0
            && self.tables.is_empty()
            && self.contradicted.is_empty();
        if index_only && !self.indexes.is_empty() {
            let mut f = finding(
                FindingKind::IndexOnly,
                format!(
                    "index-only damage: data intact, rebuild indexes (REINDEX or recover): {}",
                    join(&self.indexes)
                ),
                true,
            );
            f.indexes = self.indexes.iter().cloned().collect();
            f.tables = self.index_tables.iter().cloned().collect();
            out.push(f);
        }
        for (table, index) in &self.contradicted {
            let mut f = finding(
                FindingKind::TableData,
                format!(
                    "rows of {table} disagree with index {index}: it holds as many entries as \
                     the table has rows, yet integrity_check finds rows missing from it, so a \
                     value was altered in a row or in its entry. REINDEX would make the rows' \
                     values final; recover compares each row with its entries"
                ),
                true,
            );
            f.tables = vec![table.clone()];
            f.indexes = vec![index.clone()];
            out.push(f);
        }
        self.tables.retain(|t| !self.contradicted.contains_key(t));
        if !self.tables.is_empty() {
            let mut f = finding(
                FindingKind::TableData,
                format!("table data damage in {}", join(&self.tables)),
                true,
            );
            f.tables = self.tables.iter().cloned().collect();
            f.indexes = self.indexes.iter().cloned().collect();
            out.push(f);
        }
        if self.freelist && !out.iter().any(|f| f.kind == FindingKind::FreelistDamage) {
            out.push(finding(
                FindingKind::FreelistDamage,
                "freelist damage: free pages are lost or listed wrongly (no rows are affected; recover or VACUUM rebuilds it)".to_string(),
                true,
            ));
        }
        if self.unknown > 0 && !self.structure {
            out.push(finding(
                FindingKind::Other,
                format!(
                    "other damage: {} integrity_check messages name no table (see the messages)",
                    self.unknown
                ),
                true,
            ));
        }
    }
}

/// The tables with an index that integrity_check finds rows missing from while it holds at
/// least as many entries as the table has rows: its entries are not missing but different
/// (table → index). An index that cannot be counted (a partial one, an unreadable page) is
/// left out: its entries may well be missing.
fn contradicted(
    conn: &Connection,
    messages: &[String],
    objects: &[Object],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let named: BTreeSet<String> = messages
        .iter()
        .filter_map(|m| name_after(m, " missing from index "))
        .collect();
    for index in named {
        let Some(o) = objects.iter().find(|o| o.name.eq_ignore_ascii_case(&index)) else {
            continue;
        };
        let (t, i) = (ident(&o.table), ident(&o.name));
        let count = |sql: String| conn.query_row(&sql, [], |r| r.get::<_, i64>(0)).ok();
        let entries = count(format!("SELECT count(*) FROM {t} INDEXED BY {i}"));
        let rows = count(format!("SELECT count(*) FROM {t} NOT INDEXED"));
        if let (Some(entries), Some(rows)) = (entries, rows) {
            if entries >= rows && !out.contains_key(&o.table) {
                out.insert(o.table.clone(), o.name.clone());
            }
        }
    }
    out
}

fn join(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

pub(super) fn next_step(source: &Path, findings: &[Finding]) -> String {
    let tool = tool_command();
    let db = shell(source);
    let mut evidence = source.as_os_str().to_owned();
    evidence.push(".evidence");
    let evidence = shell(Path::new(&evidence));
    let damaged: Vec<&Finding> = findings.iter().filter(|f| f.damage).collect();
    if damaged.is_empty() {
        return format!(
            "nothing to repair. To keep a copy as evidence anyway: {tool} snapshot {db} --into {evidence}"
        );
    }
    if damaged
        .iter()
        .all(|f| matches!(f.kind, FindingKind::IndexOnly | FindingKind::IndexPages))
    {
        return format!(
            "stop the application, keep a copy ({tool} snapshot {db} --into {evidence}), then run REINDEX on it; or rehearse a full recovery: {tool} recover {db} --dry-run"
        );
    }
    format!("{tool} recover {db} --dry-run")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects() -> Vec<Object> {
        vec![
            Object {
                kind: "table".into(),
                name: "t".into(),
                table: "t".into(),
                rootpage: 2,
            },
            Object {
                kind: "index".into(),
                name: "t_v".into(),
                table: "t".into(),
                rootpage: 3,
            },
        ]
    }

    #[test]
    fn messages_map_to_tables_and_indexes() {
        let o = objects();
        let none = HashMap::new();
        assert_eq!(
            concern_of("row 5 missing from index t_v", &o, &none),
            Concern::Index {
                index: "t_v".into(),
                table: "t".into()
            }
        );
        assert_eq!(
            concern_of("Tree 2 page 9 cell 0: invalid page number", &o, &none),
            Concern::Table("t".into())
        );
        assert_eq!(
            concern_of(
                "Tree 3 page 7: btreeInitPage() returns error code 11",
                &o,
                &none
            ),
            Concern::Index {
                index: "t_v".into(),
                table: "t".into()
            }
        );
        let mut owners = HashMap::new();
        owners.insert(9, "t".to_string());
        assert_eq!(
            concern_of("On tree page 9 cell 0: Rowid 4 out of order", &o, &owners),
            Concern::Table("t".into())
        );
        assert_eq!(
            concern_of("Page 12: never used", &o, &none),
            Concern::Unreferenced
        );
        assert_eq!(
            concern_of("Freelist: invalid page number 99", &o, &none),
            Concern::Freelist
        );
        assert_eq!(
            concern_of("NULL value in t.v", &o, &none),
            Concern::Table("t".into())
        );
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell(Path::new("/a/b.db")), "/a/b.db");
        assert_eq!(shell(Path::new("/a b/c.db")), "'/a b/c.db'");
    }
}
