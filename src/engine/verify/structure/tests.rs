use super::*;
use crate::engine::verify::fast;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Every tree and the freelist walked here alone, one after the other: whether the walk
/// proves the structure (no digest scan helping).
fn walk_alone(path: &Path) -> bool {
    let conn = Connection::open(path).unwrap();
    let Ok(Some(structure)) = Structure::new(&conn, path) else {
        return false;
    };
    for k in 0..structure.trees() {
        structure.walk_tree(path, k);
    }
    structure.walk_freelist(path);
    structure.proved()
}

/// The fast proof's messages, and whether it proved the structure from pages.
fn proof(path: &Path) -> (Vec<String>, bool) {
    crate::engine::verify::structure_proved_by_pages(path).unwrap()
}

/// SQLite's `quick_check` of the file: its messages, or the error that stopped it.
fn quick_check(path: &Path) -> Vec<String> {
    let run = || -> rusqlite::Result<Vec<String>> {
        let conn = Connection::open(path)?;
        let mut stmt = conn.prepare("PRAGMA quick_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    run().unwrap_or_else(|e| vec![e.to_string()])
}

fn build(dir: &Path, name: &str, sql: &str) -> PathBuf {
    let path = dir.join(name);
    Connection::open(&path).unwrap().execute_batch(sql).unwrap();
    path
}

/// Overflow chains, a freelist, tables two and three levels deep, entries on interior index
/// pages, a WITHOUT ROWID table, NOT NULL columns, the rowid's alias, empty tables.
const SHAPES: &str = "
    CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL, b BLOB, c REAL NOT NULL);
    CREATE INDEX t_a ON t(a);
    CREATE INDEX t_cb ON t(c DESC, b);
    CREATE TABLE d(k INTEGER PRIMARY KEY DESC NOT NULL, v);
    CREATE TABLE w(k TEXT, n INTEGER NOT NULL, v, PRIMARY KEY(k, n)) WITHOUT ROWID;
    CREATE TABLE bare(x, y NOT NULL);
    CREATE TABLE empty(x NOT NULL); CREATE INDEX empty_x ON empty(x);
    CREATE TABLE seq(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
    WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 700)
    INSERT INTO t SELECT i, printf('%.*c', 5 + i % 40, 'a') || i,
        CASE WHEN i % 50 = 0 THEN zeroblob(3000 + i) ELSE randomblob(i % 7) END, i / 7.0 FROM c;
    INSERT INTO d SELECT id, a FROM t;
    INSERT INTO w SELECT 'k' || (id % 13), id, b FROM t WHERE id % 3 = 0;
    INSERT INTO bare SELECT a, id FROM t;
    INSERT INTO seq(v) SELECT id FROM t WHERE id < 40;
    DELETE FROM bare WHERE rowid % 4 = 0;
    DELETE FROM t WHERE id % 97 = 0;
    CREATE TABLE junk(x); INSERT INTO junk SELECT zeroblob(2000) FROM t WHERE id < 30;
    DROP TABLE junk;";

#[test]
fn healthy_files_are_proved_from_pages() {
    let dir = tempfile::tempdir().unwrap();
    for (page_size, auto_vacuum) in [
        (512, 0),
        (1024, 0),
        (4096, 0),
        (65536, 0),
        (1024, 1),
        (4096, 2),
    ] {
        let name = format!("p{page_size}-v{auto_vacuum}.sqlite3");
        let path = build(
            dir.path(),
            &name,
            &format!(
                "PRAGMA page_size = {page_size}; PRAGMA auto_vacuum = {auto_vacuum}; {SHAPES}"
            ),
        );
        let conn = Connection::open(&path).unwrap();
        let free: i64 = conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap();
        // FULL auto-vacuum gives free pages back at each commit.
        assert!(
            free > 0 || auto_vacuum == 1,
            "{name}: the deletes leave free pages"
        );
        assert!(walk_alone(&path), "{name}");
        let (messages, by_pages) = fast::proof(&path, &BTreeMap::new(), 20).unwrap();
        assert_eq!(messages, ["ok"], "{name}");
        assert!(by_pages, "{name}");
    }
}

/// A NULL where the schema says NOT NULL (the schema edited after the row was written) is a
/// doubt: `quick_check` runs and names it.
#[test]
fn a_null_in_a_not_null_column_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(
        dir.path(),
        "n.sqlite3",
        "CREATE TABLE n(a, b); CREATE INDEX n_a ON n(a);
         INSERT INTO n VALUES (1, 2), (3, NULL);
         PRAGMA writable_schema = 1;
         UPDATE sqlite_schema SET sql = 'CREATE TABLE n(a, b NOT NULL)' WHERE name = 'n';",
    );
    assert!(!walk_alone(&path));
    let (messages, by_pages) = fast::proof(&path, &BTreeMap::new(), 20).unwrap();
    assert!(!by_pages);
    assert_eq!(messages, ["NULL value in n.b"]);
}

/// A page no tree and no freelist holds: `quick_check` finds it never used.
#[test]
fn a_page_nothing_uses_is_a_doubt() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(
        dir.path(),
        "u.sqlite3",
        "PRAGMA page_size = 1024; CREATE TABLE u(a); CREATE INDEX u_a ON u(a);
         INSERT INTO u SELECT randomblob(300) FROM (SELECT 1 UNION ALL SELECT 2);
         CREATE TABLE gone(x); INSERT INTO gone VALUES (zeroblob(4000));",
    );
    // The table's entry leaves the schema; its pages stay, used by nothing.
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA writable_schema = 1; DELETE FROM sqlite_schema WHERE name = 'gone';")
        .unwrap();
    assert_ne!(quick_check(&path), ["ok"]);
    assert!(!walk_alone(&path));
    let (messages, by_pages) = fast::proof(&path, &BTreeMap::new(), 20).unwrap();
    assert!(!by_pages);
    assert_ne!(messages, ["ok"]);
}

/// In an auto-vacuum file the header names the largest root page: another number there is
/// damage `quick_check` reports (SQLite then fails to create a table), which the walk leaves
/// to it.
#[test]
fn a_wrong_largest_root_page_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(
        dir.path(),
        "r.sqlite3",
        &format!("PRAGMA page_size = 1024; PRAGMA auto_vacuum = 1; {SHAPES}"),
    );
    assert_eq!(proof(&path), (vec!["ok".to_string()], true));
    let mut bytes = std::fs::read(&path).unwrap();
    let largest = u32::from_be_bytes(bytes[52..56].try_into().unwrap());
    for wrong in [1, largest - 1, largest + 1] {
        bytes[52..56].copy_from_slice(&wrong.to_be_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert_ne!(quick_check(&path), ["ok"], "{wrong}");
        assert!(!walk_alone(&path), "{wrong}");
        let (messages, by_pages) = proof(&path);
        assert!(!by_pages, "{wrong}");
        assert_ne!(messages, ["ok"], "{wrong}");
    }
}

/// What `quick_check` counts and the walk leaves to the digests: an index's entry count.
fn counts_only(messages: &[String]) -> bool {
    messages
        .iter()
        .all(|m| m.starts_with("wrong # of entries in index"))
}

/// The databases the damage test starts from: page size, and auto-vacuum (none, full,
/// incremental: a pointer map).
const FUZZ_BASES: [(usize, u8); 5] = [(512, 0), (1024, 0), (4096, 0), (1024, 1), (4096, 2)];

fn fuzz_base(k: usize) -> &'static Vec<u8> {
    static BASES: [std::sync::OnceLock<Vec<u8>>; 5] = [const { std::sync::OnceLock::new() }; 5];
    BASES[k].get_or_init(|| {
        let (page_size, auto_vacuum) = FUZZ_BASES[k];
        let dir = tempfile::tempdir().unwrap();
        let path = build(
            dir.path(),
            "base.sqlite3",
            &format!(
                "PRAGMA page_size = {page_size}; PRAGMA auto_vacuum = {auto_vacuum}; {SHAPES}"
            ),
        );
        std::fs::read(path).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Damage anywhere past the file header (a bit, a byte, a two-byte number), half the time
    /// in a page's header and cell pointers, at three page sizes and in auto-vacuum files: wherever SQLite's `quick_check` finds something
    /// wrong, the walk alone doubts (an index's entry count aside, which the digests prove),
    /// and the fast proof does not say "ok".
    #[test]
    fn whatever_quick_check_finds_the_walk_doubts(
        base in 0..FUZZ_BASES.len(),
        at in 100usize..1_000_000, head in any::<bool>(), kind in 0u8..3, value in any::<u16>()
    ) {
        let page_size = FUZZ_BASES[base].0;
        let mut bytes = fuzz_base(base).clone();
        let mut at = at % bytes.len();
        if head {
            at = (at / page_size * page_size + usize::from(value % 40)).max(100);
        }
        match kind {
            0 => bytes[at] ^= 1 << (value % 8),
            1 => bytes[at] = value.to_be_bytes()[0],
            _ => {
                let end = (at + 2).min(bytes.len());
                bytes[at..end].copy_from_slice(&value.to_be_bytes()[..end - at]);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.sqlite3");
        std::fs::write(&path, &bytes).unwrap();
        let sqlite = quick_check(&path);
        if sqlite != ["ok"] {
            if !counts_only(&sqlite) {
                prop_assert!(!walk_alone(&path), "byte {}: quick_check says {:?}", at, sqlite);
            }
            if let Ok((messages, _)) = fast::proof(&path, &BTreeMap::new(), 20) {
                prop_assert_ne!(messages, vec!["ok".to_string()], "byte {}: {:?}", at, sqlite);
            }
        }
    }
}

/// An index page of 512 bytes whose 40 cells (each holding the entry `1`) and right child all
/// name page `child`; a leaf holding one entry when `child` is 0.
fn index_page(child: u32) -> Vec<u8> {
    let mut page = vec![0u8; 512];
    let cell: Vec<u8> = if child == 0 {
        vec![2, 2, 9]
    } else {
        [&child.to_be_bytes()[..], &[2, 2, 9]].concat()
    };
    let (header, cells) = if child == 0 { (8, 1) } else { (12, 40) };
    let space = cell.len().max(4);
    page[0] = if child == 0 { 10 } else { 2 };
    page[3..5].copy_from_slice(&u16::try_from(cells).unwrap().to_be_bytes());
    let start = 512 - space * cells;
    page[5..7].copy_from_slice(&u16::try_from(start).unwrap().to_be_bytes());
    if child != 0 {
        page[8..12].copy_from_slice(&child.to_be_bytes());
    }
    for i in 0..cells {
        let at = 512 - space * (i + 1);
        page[at..at + cell.len()].copy_from_slice(&cell);
        page[header + 2 * i..header + 2 * i + 2]
            .copy_from_slice(&u16::try_from(at).unwrap().to_be_bytes());
    }
    page
}

/// Thirty index pages, each naming the next as all 41 of its children: a tree of 41^30
/// entries on 31 pages. Walked without claiming pages, the listing stops at the file's page
/// count instead of running for ever.
#[test]
fn a_tree_naming_one_page_many_times_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = build(
        dir.path(),
        "dag.sqlite3",
        "PRAGMA page_size = 512; CREATE TABLE t(a);",
    );
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 1024);
    for k in 3u32..=32 {
        bytes.extend(index_page(k + 1));
    }
    bytes.extend(index_page(0));
    std::fs::write(&path, &bytes).unwrap();
    let pages = Pages::open(&path).unwrap();
    let walk = |ledger| Walk {
        pages: &pages,
        ledger,
        root: 3,
        kind: TreeKind::Index,
        records: Records::ByVisitor,
    };
    let mut entries = 0u64;
    let started = std::time::Instant::now();
    let listed = walk::entries(&walk(None), |_, _| {
        entries += 1;
        Ok(())
    });
    assert_eq!(listed, Err(Doubt));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Claimed, the second mention of a page is the doubt.
    let ledger = Ledger::new(pages.page_count, pages.page_size);
    assert_eq!(
        walk::entries(&walk(Some(&ledger)), |_, _| Ok(())),
        Err(Doubt)
    );
}
