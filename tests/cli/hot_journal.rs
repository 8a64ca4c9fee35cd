//! A crash in the middle of a transaction, in rollback-journal mode: the main file holds some
//! pages of the unfinished transaction and the `-journal` their originals. Recovery reads the
//! database as it was at its last commit, as SQLite itself would after rolling back.

use crate::common;

use common::{cmd, dry_run, id_name_rows as rows, SourceGuard};
use rusqlite::Connection;
use sqlite_rescue::engine::{recover, Options};
use std::path::Path;

/// Copies the database and its journal while a transaction that changed most of its pages,
/// with too small a cache to hold them, is still open: what a crash would leave.
fn crashed_mid_transaction(dir: &Path) -> (std::path::PathBuf, Vec<(i64, String)>) {
    let live = dir.join("live.db");
    let conn = Connection::open(&live).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024; PRAGMA journal_mode = DELETE;
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT);
         CREATE INDEX t_name ON t(name);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000)
         INSERT INTO t SELECT x, printf('name-%06d', x) FROM c;",
    )
    .unwrap();
    let committed = rows(&live);
    conn.execute_batch(
        "PRAGMA cache_size = 10;
         BEGIN;
         UPDATE t SET name = 'changed-' || id;
         DELETE FROM t WHERE id % 3 = 0;
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000)
         INSERT INTO t SELECT 5000 + x, printf('new-%06d', x) FROM c;",
    )
    .unwrap();
    let crashed = dir.join("crashed");
    std::fs::create_dir(&crashed).unwrap();
    let db = crashed.join("app.db");
    std::fs::copy(&live, &db).unwrap();
    std::fs::copy(dir.join("live.db-journal"), crashed.join("app.db-journal")).unwrap();
    conn.execute_batch("ROLLBACK").unwrap();
    (db, committed)
}

#[test]
fn an_unfinished_transaction_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let (db, committed) = crashed_mid_transaction(dir.path());

    // Without its journal the main file holds pages of the unfinished transaction.
    let alone = dir.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(&db, alone.join("app.db")).unwrap();
    let out = dir.path().join("alone.out");
    let report = recover(&alone.join("app.db"), &out, &Options::default()).unwrap();
    assert!(report.journal.is_none());
    assert_ne!(
        rows(&out),
        committed,
        "the test needs pages changed in the main file"
    );

    let out = dir.path().join("out.db");
    let report = recover(&db, &out, &Options::default()).unwrap();
    assert!(report.integrity_ok(), "{:?}", report.integrity);
    let journal = report.journal.as_ref().expect("the journal is hot");
    assert!(journal.pages > 10, "{journal:?}");
    assert!(!journal.torn);
    assert_eq!(rows(&out), committed, "the last commit, row for row");
    assert_eq!(report.lost_and_found_rows, 0);

    // SQLite, opening the crashed copy, rolls the journal back to the same rows.
    assert_eq!(rows(&db), committed);
}

/// A journal whose header was zeroed (what `journal_mode = PERSIST` leaves after a commit)
/// holds nothing to roll back.
#[test]
fn a_finished_journal_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = crashed_mid_transaction(dir.path());
    let journal = db.with_file_name("app.db-journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[..28].fill(0);
    std::fs::write(&journal, &bytes).unwrap();
    let out = dir.path().join("out.db");
    let report = recover(&db, &out, &Options::default()).unwrap();
    assert!(report.journal.is_none());
}

/// Through the binary: the journal is rolled back in the snapshot, the summary says so, and
/// the user's database and journal are left exactly as they were (SQLite, opening them,
/// would have rolled the journal back and deleted it).
#[test]
fn recover_says_it_rolled_back_and_leaves_the_journal_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = crashed_mid_transaction(dir.path());
    let (code, text) = dry_run(&db);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("hot journal: a transaction that never committed was rolled back"),
        "{text}"
    );
    assert!(db.with_file_name("app.db-journal").exists());
}

/// `check` says there is a hot journal and that it must stay with the database.
#[test]
fn check_names_the_hot_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = crashed_mid_transaction(dir.path());
    let guard = SourceGuard::new(&db);
    let out = cmd().arg("check").arg(&db).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Hot journal ("), "{text}");
    assert!(
        text.contains("keep the -journal with the database"),
        "{text}"
    );
    guard.assert_unchanged();
}
