//! Lost rows, named: the ranges the engine reports against the samples' truth.

use crate::common;

use corrupt_samples::{Key, Sample, Scale};
use sqlite_rescue::engine::losses::LostRange;
use sqlite_rescue::engine::{recover, Options, Report};
use std::collections::BTreeSet;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

fn committed(name: &str) -> Sample {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    corrupt_samples::load_sample(&root.join("corrupt-samples").join(name)).unwrap()
}

fn run(db: &Path, work: &Path) -> (Report, PathBuf) {
    let out = work.join("recovered.sqlite3");
    let report = recover(db, &out, &Options::default()).unwrap();
    (report, out)
}

fn lost_of<'r>(report: &'r Report, table: &str) -> &'r [LostRange] {
    &report
        .tables
        .iter()
        .find(|t| t.name == table)
        .unwrap_or_else(|| panic!("no table {table}"))
        .lost
}

fn rowids(db: &Path, sql: &str) -> BTreeSet<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, i64>(0)).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// The rowids of the rows on `page` of `tree`.
fn rowids_on(tree: &corrupt_samples::layout::BTree, page: u32) -> Vec<i64> {
    tree.keys_on_page(page)
        .into_iter()
        .map(|k| match k {
            Key::Rowid(r) => r,
            Key::Text(t) => panic!("not a rowid: {t}"),
        })
        .collect()
}

/// The entry for `table` in a JSON report's `tables`.
fn table_in<'r>(report: &'r serde_json::Value, table: &str) -> &'r serde_json::Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("no table {table} in the report"))
}

fn destroyed_rowids(sample: &Sample, table: &str) -> Vec<i64> {
    sample.expected.tables[table]
        .destroyed_keys
        .iter()
        .map(|k| match k {
            Key::Rowid(r) => *r,
            Key::Text(t) => panic!("not a rowid: {t}"),
        })
        .collect()
}

#[test]
fn a_zeroed_leaf_names_exactly_the_rowids_that_were_on_it() {
    let sample = committed("leaf-zeroed");
    let work = tempfile::tempdir().unwrap();
    let db = sample.copy_to(&work.path().join("src")).unwrap();
    let (report, out) = run(&db, work.path());
    let lost = lost_of(&report, "monitor_check");
    assert_eq!(lost.len(), 1, "{lost:?}");
    let r = &lost[0];
    let truth_lost = destroyed_rowids(&sample, "monitor_check");
    assert_eq!(r.first_rowid, truth_lost.iter().min().copied());
    assert_eq!(r.last_rowid, truth_lost.iter().max().copied());
    assert!(r.exact);
    assert_eq!(r.page, sample.expected.damaged_pages[0]);
    // Every truth rowid in the range that is missing from the output: the destroyed rows.
    let (a, b) = (r.first_rowid.unwrap(), r.last_rowid.unwrap());
    let in_range = rowids(
        sample.truth.as_ref().unwrap(),
        &format!("SELECT rowid FROM monitor_check WHERE rowid BETWEEN {a} AND {b}"),
    );
    let recovered = rowids(&out, "SELECT rowid FROM monitor_check");
    let missing = in_range.difference(&recovered).count() as u64;
    assert_eq!(missing, sample.expected.tables["monitor_check"].destroyed);
    // Nothing else is reported lost.
    for t in &report.tables {
        if t.name != "monitor_check" {
            assert!(t.lost.is_empty(), "{}: {:?}", t.name, t.lost);
        }
    }
}

#[test]
fn leaves_put_back_from_a_zeroed_interior_page_are_not_lost() {
    let sample = committed("interior-zeroed");
    let work = tempfile::tempdir().unwrap();
    let db = sample.copy_to(&work.path().join("src")).unwrap();
    let (report, _) = run(&db, work.path());
    let t = report
        .tables
        .iter()
        .find(|t| t.name == "event_log")
        .unwrap();
    assert!(
        t.attributed_rows > 0,
        "the sample's leaves were not put back"
    );
    assert!(t.lost.is_empty(), "{:?}", t.lost);
}

#[test]
fn a_zeroed_root_whose_leaves_came_back_loses_nothing() {
    let sample = committed("root-zeroed");
    let work = tempfile::tempdir().unwrap();
    let db = sample.copy_to(&work.path().join("src")).unwrap();
    let (report, _) = run(&db, work.path());
    assert!(lost_of(&report, "monitor_check").is_empty());
}

#[test]
fn healthy_databases_lose_nothing() {
    for name in ["healthy-rollback", "healthy-wal", "wal-healed"] {
        let sample = committed(name);
        let work = tempfile::tempdir().unwrap();
        let db = sample.copy_to(&work.path().join("src")).unwrap();
        let (report, _) = run(&db, work.path());
        for t in &report.tables {
            assert!(t.lost.is_empty(), "{name}: {}: {:?}", t.name, t.lost);
        }
    }
}

#[test]
fn a_surviving_index_counts_the_lost_rows() {
    // utf16: a zeroed leaf of auth_user, whose UNIQUE index survives.
    let sample = committed("utf16");
    let work = tempfile::tempdir().unwrap();
    let db = sample.copy_to(&work.path().join("src")).unwrap();
    let (report, _) = run(&db, work.path());
    let lost = lost_of(&report, "auth_user");
    let truth = destroyed_rowids(&sample, "auth_user");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].rows, Some(truth.len() as u64));
    assert_eq!(lost[0].first_rowid, truth.iter().min().copied());
    assert_eq!(lost[0].last_rowid, truth.iter().max().copied());
    assert!(lost[0].exact);
}

#[test]
fn recover_says_which_columns_of_the_lost_rows_survive() {
    // utf16: the lost rows' usernames are UTF-16 text in the surviving UNIQUE index.
    let sample = committed("utf16");
    let work = tempfile::tempdir().unwrap();
    let db = sample.copy_to(&work.path().join("src")).unwrap();
    let out = common::cmd()
        .args(["-q", "recover", "--dry-run"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut truth = destroyed_rowids(&sample, "auth_user");
    truth.sort_unstable();
    assert!(
        text.contains(&format!(
            "auth_user: index sqlite_autoindex_auth_user_1 still holds username of its {} lost \
             rows: ",
            truth.len()
        )) && text.contains(&format!(
            "sqlite-rescue lost {} --table auth_user lists them",
            db.display()
        )),
        "{text}"
    );
    let out = common::cmd()
        .args(["-q", "--json", "recover", "--dry-run"])
        .arg(&db)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let users = table_in(&report, "auth_user");
    let conn = rusqlite::Connection::open_with_flags(
        sample.truth.as_ref().unwrap(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let expected: Vec<serde_json::Value> = truth
        .iter()
        .map(|id| {
            let name: String = conn
                .query_row("SELECT username FROM auth_user WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .unwrap();
            serde_json::json!({ "rowid": id, "values": [name] })
        })
        .collect();
    assert_eq!(users["lost_values"]["rows"], serde_json::json!(expected));
    assert_eq!(
        users["lost_values"]["columns"],
        serde_json::json!(["username"])
    );
}

fn zero_pages(db: &Path, page_size: u64, pages: &[u32]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    for p in pages {
        f.seek(SeekFrom::Start(u64::from(p - 1) * page_size))
            .unwrap();
        f.write_all(&vec![0u8; page_size as usize]).unwrap();
    }
    f.sync_all().unwrap();
}

/// A large event_log with one leaf and its (non-root) parent zeroed; `also` more pages.
struct LeafAndParent {
    _work: tempfile::TempDir,
    report: Report,
    lost_rowids: Vec<i64>,
}

fn leaf_and_parent(zero_index_root: bool) -> LeafAndParent {
    let work = tempfile::tempdir().unwrap();
    let sample = corrupt_samples::generate("leaf-zeroed", work.path(), Scale::Large).unwrap();
    let truth = sample.truth.clone().unwrap();
    let layout = corrupt_samples::read_layout(&truth).unwrap();
    let tree = layout.btree("event_log");
    assert!(
        tree.depth >= 3,
        "event_log is not deep enough: {}",
        tree.depth
    );
    // A middle interior page just below the root, and a middle leaf under it.
    let interiors: Vec<_> = tree
        .pages
        .iter()
        .filter(|p| p.pagetype == "internal" && p.path.matches('/').count() == 2)
        .collect();
    let parent = interiors[interiors.len() / 2];
    let leaves: Vec<_> = tree
        .pages
        .iter()
        .filter(|p| {
            p.pagetype == "leaf"
                && p.path.starts_with(&parent.path)
                && p.path.matches('/').count() == 3
        })
        .collect();
    let leaf = leaves[leaves.len() / 2];
    let lost_rowids = rowids_on(tree, leaf.pageno);
    assert!(!lost_rowids.is_empty());
    let db = work.path().join("damaged.sqlite3");
    std::fs::copy(&truth, &db).unwrap();
    let page_size = u64::from(sample.expected.page_size.unwrap());
    let mut pages = vec![leaf.pageno, parent.pageno];
    if zero_index_root {
        pages.push(layout.btree("event_log_kind").root);
    }
    zero_pages(&db, page_size, &pages);
    let out = work.path().join("recovered.sqlite3");
    let report = recover(&db, &out, &Options::default()).unwrap();
    LeafAndParent {
        _work: work,
        report,
        lost_rowids,
    }
}

#[test]
fn leaf_and_parent_lost_gives_an_estimate_containing_every_lost_rowid() {
    // The index is zeroed too, so nothing can say which rowids existed: an estimate.
    let case = leaf_and_parent(true);
    let lost = lost_of(&case.report, "event_log");
    let (min, max) = (
        *case.lost_rowids.iter().min().unwrap(),
        *case.lost_rowids.iter().max().unwrap(),
    );
    let containing: Vec<&LostRange> = lost
        .iter()
        .filter(|r| r.first_rowid.is_none_or(|a| a <= min) && r.last_rowid.is_none_or(|b| b >= max))
        .collect();
    assert_eq!(
        containing.len(),
        1,
        "no single range holds {min}..{max}: {lost:?}"
    );
    assert!(!containing[0].exact, "{:?}", containing[0]);
    assert_eq!(containing[0].rows, None);
}

#[test]
fn leaf_and_parent_lost_with_the_index_intact_is_exact() {
    let case = leaf_and_parent(false);
    let lost = lost_of(&case.report, "event_log");
    assert_eq!(lost.len(), 1, "{lost:?}");
    let r = &lost[0];
    assert_eq!(r.first_rowid, case.lost_rowids.iter().min().copied());
    assert_eq!(r.last_rowid, case.lost_rowids.iter().max().copied());
    assert_eq!(r.rows, Some(case.lost_rowids.len() as u64));
    assert!(r.exact);
}

fn hash_tree(dir: &Path) -> Vec<(PathBuf, String)> {
    use sha2::Digest;
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let bytes = std::fs::read(&p).unwrap();
        out.push((p, hex::encode(sha2::Sha256::digest(&bytes))));
    }
    out
}

#[test]
fn lost_command_through_the_binary() {
    let work = tempfile::tempdir().unwrap();
    let damaged = committed("leaf-zeroed")
        .copy_to(&work.path().join("damaged"))
        .unwrap();
    let before = hash_tree(damaged.parent().unwrap());
    let out = assert_cmd::Command::cargo_bin("sqlite-rescue")
        .unwrap()
        .args([
            "lost",
            damaged.to_str().unwrap(),
            "--table",
            "monitor_check",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("monitor_check: rowids 296\u{2013}314 lost (page 58"),
        "{text}"
    );
    assert_eq!(hash_tree(damaged.parent().unwrap()), before);

    let json = assert_cmd::Command::cargo_bin("sqlite-rescue")
        .unwrap()
        .args(["lost", damaged.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let mc = table_in(&v, "monitor_check");
    assert_eq!(mc["lost"][0]["first_rowid"], 296);
    assert_eq!(mc["lost"][0]["last_rowid"], 314);
    assert_eq!(mc["lost"][0]["exact"], true);

    let healthy = committed("healthy-wal")
        .copy_to(&work.path().join("healthy"))
        .unwrap();
    let before = hash_tree(healthy.parent().unwrap());
    let out = assert_cmd::Command::cargo_bin("sqlite-rescue")
        .unwrap()
        .args(["lost", healthy.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Nothing was lost"), "{text}");
    assert_eq!(hash_tree(healthy.parent().unwrap()), before);

    let bad = assert_cmd::Command::cargo_bin("sqlite-rescue")
        .unwrap()
        .args(["lost", healthy.to_str().unwrap(), "--table", "no_such"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn recover_prints_and_reports_the_lost_range() {
    let work = tempfile::tempdir().unwrap();
    let damaged = committed("leaf-zeroed")
        .copy_to(&work.path().join("damaged"))
        .unwrap();
    let incident = work.path().join("incident");
    let out = assert_cmd::Command::cargo_bin("sqlite-rescue")
        .unwrap()
        .args(["-q", "recover", damaged.to_str().unwrap(), "--incident-dir"])
        .arg(&incident)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("monitor_check: rowids 296\u{2013}314 lost (page 58"),
        "{text}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(incident.join("report.json")).unwrap()).unwrap();
    let mc = table_in(&report, "monitor_check");
    assert_eq!(
        mc["lost"],
        serde_json::json!([{"first_rowid": 296, "last_rowid": 314, "page": 58, "exact": true, "rows": null}])
    );
}

/// A value as the lost-rows report writes it: numbers, strings, `{"blob": HEX}`, null.
fn as_json(v: rusqlite::types::Value) -> serde_json::Value {
    use rusqlite::types::Value;
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => i.into(),
        Value::Real(r) => r.into(),
        Value::Text(t) => t.into(),
        Value::Blob(b) => serde_json::json!({ "blob": hex::encode(b) }),
    }
}

#[test]
fn surviving_indexes_name_the_lost_rows_by_their_values() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("shop.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    // Every kind of index: UNIQUE (an autoindex), two columns (a REAL, NULL in some rows, and
    // a blob), an expression (holds no column), a partial one (does not list every row, so it
    // is not read).
    conn.execute_batch(
        "PRAGMA page_size = 1024;
         CREATE TABLE item(id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, price REAL,
                           tag BLOB, note TEXT);
         CREATE INDEX item_price_tag ON item(price, tag);
         CREATE INDEX item_note_lower ON item(lower(note));
         CREATE INDEX item_expensive ON item(note) WHERE price > 50;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO item
           SELECT i, 'sku-' || i, CASE WHEN i % 7 = 0 THEN NULL ELSE i * 0.5 END,
                  unhex(printf('%08x', i * 40503)), printf('note %d %.60c', i, 'x')
           FROM n;",
    )
    .unwrap();
    drop(conn);
    let truth = work.path().join("truth.sqlite3");
    std::fs::copy(&db, &truth).unwrap();
    let layout = corrupt_samples::read_layout(&truth).unwrap();
    let tree = layout.btree("item");
    let leaves: Vec<_> = tree.pages.iter().filter(|p| p.pagetype == "leaf").collect();
    assert!(leaves.len() > 4, "item has {} leaves", leaves.len());
    let leaf = leaves[leaves.len() / 2];
    let lost = rowids_on(tree, leaf.pageno);
    assert!(
        lost.iter().any(|r| r % 7 == 0),
        "no NULL price among {lost:?}"
    );
    assert!(
        lost.iter().any(|r| r % 2 == 0),
        "no whole price among {lost:?}"
    );
    zero_pages(&db, 1024, &[leaf.pageno]);

    let (report, _) = run(&db, work.path());
    let t = report.tables.iter().find(|t| t.name == "item").unwrap();
    let values = t
        .lost_values
        .as_ref()
        .expect("what the indexes hold of the lost rows");
    assert_eq!(
        values.indexes,
        ["sqlite_autoindex_item_1", "item_price_tag"]
    );
    assert_eq!(values.columns, ["sku", "price", "tag"]);
    assert_eq!(values.not_listed, 0);
    let conn = rusqlite::Connection::open(&truth).unwrap();
    let list = lost
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let expected: Vec<(i64, Vec<serde_json::Value>)> = common::query_rows(
        &conn,
        &format!("SELECT id, sku, price, tag FROM item WHERE id IN ({list}) ORDER BY id"),
    )
    .into_iter()
    .map(|row| {
        let mut row = row.into_iter().map(as_json);
        (row.next().unwrap().as_i64().unwrap(), row.collect())
    })
    .collect();
    let got: Vec<(i64, Vec<serde_json::Value>)> = values
        .rows
        .iter()
        .map(|r| (r.rowid, r.values.clone()))
        .collect();
    assert_eq!(got, expected);

    // The lost command lists them, ready for a ticket.
    let out = common::cmd()
        .args(["lost", "-q", "--table", "item"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let first = lost.iter().min().unwrap();
    assert!(
        text.contains("indexes sqlite_autoindex_item_1, item_price_tag still hold sku, price, tag"),
        "{text}"
    );
    assert!(
        text.contains(&format!("rowid {first}: sku 'sku-{first}', price ")),
        "{text}"
    );
}
