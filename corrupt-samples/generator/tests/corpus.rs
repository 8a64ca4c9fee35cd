//! Checks of the committed corpus (corrupt-samples/<name>/) and of the generator.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use corrupt_samples::{
    committed_samples, generate, generate_all, load_sample, read_layout, score, Key, Sample, Scale,
    SAMPLE_NAMES,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample(name: &str) -> Sample {
    load_sample(&corpus_dir().join(name)).unwrap()
}

/// Copy a sample (with sidecars) to a fresh temp dir; the returned dir must outlive use.
fn copy(s: &Sample) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let db = s.copy_to(tmp.path()).unwrap();
    (tmp, db)
}

fn open_ro(p: &Path) -> Connection {
    Connection::open_with_flags(p, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

#[test]
fn every_sample_is_committed_and_consistent() {
    let samples = committed_samples(&repo_root()).unwrap();
    assert_eq!(samples.len(), SAMPLE_NAMES.len());
    for s in &samples {
        let e = &s.expected;
        assert_eq!(e.name, s.name);
        assert!(s.db.exists(), "{} has no db.sqlite3", s.name);
        for f in &e.files {
            assert!(s.dir.join(f).exists(), "{}: {f} missing", s.name);
        }
        match &s.truth {
            Some(t) => assert!(t.exists(), "{}: truth {} missing", s.name, t.display()),
            None => assert!(!e.expect.usable, "{} is usable but has no truth", s.name),
        }
        let mut pages = e.damaged_pages.clone();
        pages.sort();
        pages.dedup();
        assert_eq!(
            pages, e.damaged_pages,
            "{}: damaged_pages not sorted",
            s.name
        );
        for (t, te) in &e.tables {
            assert_eq!(
                te.destroyed as usize,
                te.destroyed_keys.len(),
                "{} {t}",
                s.name
            );
            assert!(te.destroyed <= te.rows, "{} {t}", s.name);
        }
        if let Some(truth) = &s.truth {
            // Row counts in expected.json are those of the truth.
            let c = open_ro(truth);
            for (t, te) in &e.tables {
                let n: i64 = c
                    .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
                    .unwrap();
                assert_eq!(n as u64, te.rows, "{} {t}", s.name);
            }
        }
    }
}

#[test]
fn committed_corpus_is_what_the_generator_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = generate_all(tmp.path(), Scale::Small).unwrap();
    for f in &fresh {
        let committed = sample(&f.name);
        assert_eq!(
            committed.expected, f.expected,
            "{}: expected.json differs from a fresh generation; regenerate the corpus",
            f.name
        );
        // WAL files carry random salts, so only rollback files compare byte for byte.
        if f.expected.files.len() == 1 {
            assert!(
                std::fs::read(&committed.db).unwrap() == std::fs::read(&f.db).unwrap(),
                "{}: db.sqlite3 differs from a fresh generation",
                f.name
            );
        }
    }
}

#[test]
fn healthy_and_wal_samples_read_by_sqlite_equal_their_truth() {
    for name in [
        "healthy-rollback",
        "healthy-wal",
        "wal-uncheckpointed",
        "wal-healed",
        "wal-torn-tail",
        "page-65536",
    ] {
        let s = sample(name);
        let (_tmp, db) = copy(&s);
        {
            let c = Connection::open(&db).unwrap();
            let ok: String = c
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ok, "ok", "{name}");
        }
        let sc = score(s.truth.as_ref().unwrap(), &db).unwrap();
        assert!(sc.is_perfect(), "{name}:\n{sc}");
        assert_eq!(sc.total_truth_rows(), sc.total_in_place());
        assert!(sc.total_truth_rows() > 2000, "{name}");
    }
}

#[test]
fn wal_uncheckpointed_rows_exist_only_with_the_wal() {
    let s = sample("wal-uncheckpointed");
    let count = |db: &Path| -> (i64, i64) {
        let c = Connection::open(db).unwrap();
        c.query_row(
            "SELECT (SELECT count(*) FROM event_log WHERE kind = 'wal_insert'), \
                    (SELECT count(*) FROM kv_setting WHERE key = 'wal.marker')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    let (_a, with_wal) = copy(&s);
    let (wal_rows, marker) = count(&with_wal);
    assert!(wal_rows >= 30);
    assert_eq!(marker, 1);

    let b = tempfile::tempdir().unwrap();
    let without = b.path().join("db.sqlite3");
    std::fs::copy(&s.db, &without).unwrap();
    assert_eq!(count(&without), (0, 0));
}

#[test]
fn wal_torn_tail_truth_is_last_complete_commit() {
    let s = sample("wal-torn-tail");
    let (_t, db) = copy(&s);
    let c = Connection::open(&db).unwrap();
    let torn: i64 = c
        .query_row(
            "SELECT count(*) FROM event_log WHERE kind = 'torn'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(torn, 0, "the torn transaction must not be visible");
    let wal_rows: i64 = c
        .query_row(
            "SELECT count(*) FROM event_log WHERE kind = 'wal_insert'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(wal_rows >= 30, "the complete commit must be visible");
}

/// Every truth key of `table` is either destroyed (not readable by key lookup in the
/// damaged file, or read with other values) or read back intact, and the destroyed ones
/// are exactly `destroyed_keys`. Independent of dbstat: it probes the damaged b-tree.
fn check_destroyed_by_probing(name: &str, table: &str) {
    let s = sample(name);
    let e = &s.expected;
    let (_t, db) = copy(&s);
    let truth = open_ro(s.truth.as_ref().unwrap());
    let damaged = open_ro(&db);
    let ncol: i64 = truth
        .query_row(
            &format!("SELECT count(*) FROM pragma_table_info('{table}')"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    let ncol = ncol as usize;
    let mut st = truth
        .prepare(&format!("SELECT rowid, * FROM {table} ORDER BY rowid"))
        .unwrap();
    let mut rows = st.query([]).unwrap();
    let mut lost = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        let rowid: i64 = r.get(0).unwrap();
        let want: Vec<Value> = (1..=ncol).map(|i| r.get(i).unwrap()).collect();
        let got = damaged.query_row(
            &format!("SELECT * FROM {table} WHERE rowid = ?1"),
            [rowid],
            |r| {
                (0..ncol)
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<Result<Vec<_>, _>>()
            },
        );
        match got {
            Ok(v) if v == want => {}
            _ => lost.push(Key::Rowid(rowid)),
        }
    }
    assert_eq!(lost, e.tables[table].destroyed_keys, "{name} {table}");
    assert!(!lost.is_empty(), "{name}: nothing destroyed");
    for (t, te) in &e.tables {
        if t != table {
            assert_eq!(te.destroyed, 0, "{name} {t}");
        }
    }
}

#[test]
fn leaf_zeroed_destroys_exactly_the_rows_of_that_leaf() {
    for (name, table) in [
        ("leaf-zeroed", "monitor_check"),
        ("page-512", "monitor_check"),
        ("utf16", "auth_user"),
        ("auto-vacuum", "event_log"),
        ("stray-page", "monitor_check"),
    ] {
        check_destroyed_by_probing(name, table);
        // And by dbstat: the page is a leaf of that table holding that many cells.
        let s = sample(name);
        assert_eq!(s.expected.target.as_deref(), Some(table));
        let truth = open_ro(s.truth.as_ref().unwrap());
        let page = s.expected.damaged_pages[0];
        let (owner, kind, ncell): (String, String, i64) = truth
            .query_row(
                "SELECT name, pagetype, ncell FROM dbstat WHERE pageno = ?1",
                [page],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((owner.as_str(), kind.as_str()), (table, "leaf"), "{name}");
        assert_eq!(ncell as u64, s.expected.tables[table].destroyed, "{name}");
        let zeroed = std::fs::read(&s.db).unwrap();
        let ps = s.expected.page_size.unwrap() as usize;
        let img = &zeroed[(page as usize - 1) * ps..page as usize * ps];
        if name == "stray-page" {
            assert_eq!(img[0], 0x0d);
        } else {
            assert!(
                img.iter().all(|&b| b == 0),
                "{name}: page {page} not zeroed"
            );
        }
    }
}

#[test]
fn structural_damage_destroys_no_rows() {
    for name in [
        "interior-zeroed",
        "root-zeroed",
        "duplicate-child-pointer",
        "header-garbage",
        "schema-cells-damaged",
        "index-zeroed",
        "freelist-garbage",
    ] {
        let s = sample(name);
        assert!(!s.expected.damaged_pages.is_empty(), "{name}");
        for (t, te) in &s.expected.tables {
            assert_eq!(te.destroyed, 0, "{name} {t}");
        }
    }
}

#[test]
fn interior_zeroed_hits_a_non_root_interior_page_of_a_deep_tree() {
    let s = sample("interior-zeroed");
    let l = read_layout(s.truth.as_ref().unwrap()).unwrap();
    let bt = l.btree("event_log");
    assert!(bt.depth >= 3, "event_log depth {}", bt.depth);
    let page = s.expected.damaged_pages[0];
    let p = bt.pages.iter().find(|p| p.pageno == page).unwrap();
    assert_eq!(p.pagetype, "internal");
    assert_ne!(page, bt.root);
}

#[test]
fn unusable_samples_are_rejected_by_sqlite() {
    for name in ["not-a-database", "header-garbage"] {
        let s = sample(name);
        let (_t, db) = copy(&s);
        let c = Connection::open(&db).unwrap();
        let r = c.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        });
        let err = r.expect_err(name);
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::NotADatabase),
            "{name}: {err}"
        );
    }
    let s = sample("empty-file");
    assert_eq!(std::fs::metadata(&s.db).unwrap().len(), 0);
    assert!(!s.expected.expect.usable && s.truth.is_none());
}

#[test]
fn bit_flips_and_truncation_are_counted_conservatively() {
    let s = sample("bit-flips");
    assert!(s.expected.expect.values_unknowable);
    let total: u64 = s.expected.tables.values().map(|t| t.destroyed).sum();
    assert!(total > 0);
    let t = sample("truncated");
    let len = std::fs::metadata(&t.db).unwrap().len();
    let ps = u64::from(t.expected.page_size.unwrap());
    let first = *t.expected.damaged_pages.first().unwrap() as u64;
    assert_eq!(first, len / ps + 1, "first damaged page is the partial one");
    assert!(len % ps != 0);
}

#[test]
fn overflow_zeroed_destroys_one_attachment() {
    let s = sample("overflow-zeroed");
    assert_eq!(s.expected.tables["attachment"].destroyed, 1);
    let truth = open_ro(s.truth.as_ref().unwrap());
    let (kind, name): (String, String) = truth
        .query_row(
            "SELECT pagetype, name FROM dbstat WHERE pageno = ?1",
            [s.expected.damaged_pages[0]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((kind.as_str(), name.as_str()), ("overflow", "attachment"));
}

#[test]
fn freelist_pages_hold_deleted_rows() {
    let s = sample("freelist-garbage");
    let truth = std::fs::read(s.truth.as_ref().unwrap()).unwrap();
    let ps = s.expected.page_size.unwrap() as usize;
    // Walk the (intact) freelist of the truth.
    let mut free = Vec::new();
    let mut trunk = u32::from_be_bytes(truth[32..36].try_into().unwrap()) as usize;
    assert_eq!(trunk as u32, s.expected.damaged_pages[0]);
    while trunk != 0 {
        let p = &truth[(trunk - 1) * ps..trunk * ps];
        free.push(trunk);
        let n = u32::from_be_bytes(p[4..8].try_into().unwrap()) as usize;
        for i in 0..n {
            free.push(u32::from_be_bytes(p[8 + 4 * i..12 + 4 * i].try_into().unwrap()) as usize);
        }
        trunk = u32::from_be_bytes(p[0..4].try_into().unwrap()) as usize;
    }
    let with_events = free
        .iter()
        .filter(|&&pg| {
            truth[(pg - 1) * ps..pg * ps]
                .windows(8)
                .any(|w| w == b"{\"user\":")
        })
        .count();
    assert!(
        with_events >= 2,
        "{with_events} free pages hold event payloads"
    );
}

#[test]
fn schema_cells_damaged_hides_two_tables_from_sqlite() {
    let s = sample("schema-cells-damaged");
    let (_t, db) = copy(&s);
    let c = Connection::open(&db).unwrap();
    // SQLite either refuses the schema or no longer sees the two tables.
    let names: Result<BTreeSet<String>, _> = c
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
    if let Ok(names) = names {
        assert!(!names.contains("monitor_check") && !names.contains("audit_note"));
    }
}

#[test]
fn score_buckets_rows() {
    let s = sample("healthy-rollback");
    let truth = s.truth.clone().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("rec.sqlite3");
    std::fs::copy(&truth, &rec).unwrap();
    let c = Connection::open(&rec).unwrap();
    c.execute_batch(
        "DROP TRIGGER auth_user_audit;
         CREATE TABLE lost_and_found(rootpgno INTEGER, pgno INTEGER, nfield INTEGER, id INTEGER,
             c0, c1, c2, c3, c4, c5, c6, c7);
         -- 5 monitor_check rows to lost_and_found, IPK column stored as NULL.
         INSERT INTO lost_and_found SELECT 0, 0, 7, id, NULL, site_id, status_code, latency_ms,
             checked_at, ok, error, NULL FROM monitor_check WHERE id <= 5;
         DELETE FROM monitor_check WHERE id <= 5;
         -- 2 kv_setting rows to lost_and_found (WITHOUT ROWID: id NULL).
         INSERT INTO lost_and_found(rootpgno, pgno, nfield, id, c0, c1)
             SELECT 0, 0, 2, NULL, key, value FROM kv_setting ORDER BY key LIMIT 2;
         DELETE FROM kv_setting WHERE key IN (SELECT key FROM kv_setting ORDER BY key LIMIT 2);
         -- 2 event_log rows moved into a look-alike table.
         CREATE TABLE extra(id INTEGER PRIMARY KEY, kind TEXT, payload TEXT, created REAL);
         INSERT INTO extra SELECT * FROM event_log ORDER BY id LIMIT 2;
         DELETE FROM event_log WHERE id IN (SELECT id FROM extra);
         -- 3 event_log rows gone.
         DELETE FROM event_log WHERE id IN (SELECT id FROM event_log ORDER BY id DESC LIMIT 3);
         -- one auth_user row altered, one invented; REAL 1.0 vs INTEGER 1 differ.
         UPDATE auth_user SET email = 'x@y' WHERE id = 7;
         INSERT INTO auth_user(id, password, is_superuser, username, email, is_staff, date_joined)
             VALUES (100000, 'p', 0, 'ghost', 'g@h', 0, 'now');
         UPDATE kv_setting SET value = CAST(value AS REAL) WHERE key =
             (SELECT key FROM kv_setting WHERE typeof(value) = 'integer' ORDER BY key DESC LIMIT 1);
         -- a lost_and_found row matching nothing.
         INSERT INTO lost_and_found(rootpgno, pgno, nfield, id, c0) VALUES (1, 2, 1, 3, 'junk');",
    )
    .unwrap();
    drop(c);
    let sc = score(&truth, &rec).unwrap();
    let t = |n: &str| sc.table(n).unwrap().clone();
    let mc = t("monitor_check");
    assert_eq!((mc.in_lost_and_found, mc.missing, mc.spurious), (5, 0, 0));
    assert_eq!(mc.in_place, mc.truth_rows - 5);
    let kv = t("kv_setting");
    assert_eq!((kv.in_lost_and_found, kv.in_place), (2, kv.truth_rows - 3));
    assert_eq!((kv.missing, kv.spurious), (1, 1), "1 and 1.0 differ");
    let ev = t("event_log");
    assert_eq!((ev.wrong_table, ev.missing, ev.spurious), (2, 3, 0));
    let au = t("auth_user");
    assert_eq!((au.missing, au.spurious), (1, 2));
    assert_eq!(t("audit_note").in_place, t("audit_note").truth_rows);
    assert_eq!(
        t("django_migrations").in_place,
        t("django_migrations").truth_rows
    );
    assert_eq!(
        (sc.lost_and_found_rows, sc.lost_and_found_unmatched),
        (8, 1)
    );
    assert!(!sc.is_perfect());
}

#[test]
fn large_scale_samples_generate_with_consistent_layout() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["interior-zeroed", "leaf-zeroed", "wal-torn-tail"] {
        let s = generate(name, tmp.path(), Scale::Large).unwrap();
        assert_eq!(s.expected.page_size, Some(4096));
        assert!(s.expected.tables["event_log"].rows > 30_000);
        let truth = s.truth.as_ref().unwrap();
        if name == "wal-torn-tail" {
            let (_t, db) = copy(&s);
            assert!(score(truth, &db).unwrap().is_perfect());
        } else {
            let l = read_layout(truth).unwrap();
            assert!(l.btree("event_log").depth >= 3);
        }
    }
}
