//! Altered values: a row whose bytes changed after it was written still decodes, but its
//! indexed values no longer match what the index holds for its rowid. The row is named with
//! both values, and the recovery is not called complete.

use crate::common::{cmd, SourceGuard};
use rusqlite::Connection;
use std::path::Path;

/// `t(id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INT)`, 300 rows, plus an untouched table.
fn build(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024;
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INT);
         CREATE INDEX t_n ON t(n);
         CREATE TABLE other(x);
         INSERT INTO other VALUES (1), (2);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300)
         INSERT INTO t SELECT x, printf('name-%06d', x), x * 10 FROM c;",
    )
    .unwrap();
}

/// Changes `from` to `to` (same length) on one page of the tree `name` only (a table's own
/// leaf, or one of its indexes): the other copies of the value stay as they were written.
fn alter_in_tree(path: &Path, name: &str, from: &str, to: &str) {
    let conn = Connection::open(path).unwrap();
    let pages: Vec<i64> = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1")
        .unwrap()
        .query_map([name], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(conn);
    let mut bytes = std::fs::read(path).unwrap();
    let mut changed = 0;
    for p in pages {
        let range = (p as usize - 1) * 1024..p as usize * 1024;
        let page = &mut bytes[range];
        if let Some(at) = page.windows(from.len()).position(|w| w == from.as_bytes()) {
            page[at..at + to.len()].copy_from_slice(to.as_bytes());
            changed += 1;
        }
    }
    assert_eq!(changed, 1, "the value is on one page of {name}");
    std::fs::write(path, bytes).unwrap();
}

/// Changes `from` to `to` on the table's own leaf page only: the index keeps the value as it
/// was written.
fn alter_in_table(path: &Path, from: &str, to: &str) {
    alter_in_tree(path, "t", from, to);
}

#[test]
fn a_row_that_disagrees_with_its_index_is_named_and_the_recovery_is_not_complete() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    build(&db);
    alter_in_table(&db, "name-000123", "name-000999");
    let guard = SourceGuard::new(&db);
    let out = cmd()
        .args(["recover", "--dry-run", "-q", "--json"])
        .arg(&db)
        .output()
        .unwrap();
    guard.assert_unchanged();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "rows lost");
    let t = report["engine"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "t")
        .unwrap();
    assert_eq!(t["altered_rows"], 1, "{t}");
    let row = &t["altered"][0];
    assert_eq!(row["rowid"], 123);
    let col = &row["columns"][0];
    assert_eq!(col["column"], "name");
    assert_eq!(col["row_value"], "name-000999");
    assert_eq!(col["index_value"], "name-000123");
    assert_eq!(row["repaired"], true, "{row}");
    assert_eq!(t["repaired_rows"], 1);
    let other = report["engine"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "other")
        .unwrap();
    assert_eq!(other["altered_rows"], 0);
    // The text says why the recovery is not complete, though no row is missing.
    let text = cmd()
        .args(["recover", "--dry-run", "-q"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("No row is known missing, but not every row came back as the source held it: 1 row is altered in the file (1 given the values their indexes hold)"),
        "{text}"
    );
}

#[test]
fn a_healthy_table_has_no_altered_rows_even_decoded_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    build(&db);
    let out = dir.path().join("out.db");
    let options = sqlite_rescue::engine::Options {
        decode_all: true,
        ..Default::default()
    };
    let report = sqlite_rescue::engine::recover(&db, &out, &options).unwrap();
    assert!(report.tables.iter().all(|t| !t.copied_intact));
    assert!(
        report.tables.iter().all(|t| t.altered_rows == 0),
        "{:?}",
        report.tables
    );
}

/// Recovers `db` into `out` with the CLI; returns the exit code and the report.
fn recover_into(db: &Path, out: &Path) -> (i32, serde_json::Value) {
    let guard = SourceGuard::new(db);
    let run = cmd()
        .args(["recover", "-q", "--json", "--out"])
        .arg(out)
        .arg(db)
        // The incident folder goes beside the output, not into the repository.
        .current_dir(out.parent().unwrap())
        .output()
        .unwrap();
    guard.assert_unchanged();
    let report = serde_json::from_slice(&run.stdout).unwrap();
    (run.status.code().unwrap(), report)
}

fn table<'r>(report: &'r serde_json::Value, name: &str) -> &'r serde_json::Value {
    report["engine"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap()
}

#[test]
fn an_altered_row_takes_its_indexs_value_without_firing_triggers_and_keeps_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    build(&db);
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE log(msg);
             CREATE TRIGGER t_touch AFTER UPDATE ON t BEGIN INSERT INTO log VALUES ('fired'); END;",
        )
        .unwrap();
    alter_in_table(&db, "name-000123", "name-000999");
    let out = dir.path().join("out.db");
    let (code, report) = recover_into(&db, &out);
    assert_eq!(code, 1);
    let t = table(&report, "t");
    assert_eq!(
        (t["altered_rows"].as_u64(), t["repaired_rows"].as_u64()),
        (Some(1), Some(1))
    );
    let conn = Connection::open(&out).unwrap();
    let name: String = conn
        .query_row("SELECT name FROM t WHERE id = 123", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "name-000123", "the index's value");
    let fired: i64 = conn
        .query_row("SELECT count(*) FROM log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fired, 0, "the repair fired the application's trigger");
    let side = report["engine"]["side_tables"]["altered_rows"]
        .as_str()
        .unwrap();
    let kept: (String, i64, String) = conn
        .query_row(&format!("SELECT tbl, id, c1 FROM {side}"), [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        kept,
        ("t".into(), 123, "name-000999".into()),
        "the record as read"
    );
}

#[test]
fn an_index_value_that_breaks_a_check_is_flagged_and_the_row_kept_as_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 1024;
             CREATE TABLE c(id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE
                            CHECK (code LIKE 'ok-%'));
             WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM n WHERE x < 200)
             INSERT INTO c SELECT x, printf('ok-%05d', x) FROM n;",
        )
        .unwrap();
    }
    // The index's copy is altered this time: the row is right, and the index's value would
    // break the CHECK constraint.
    alter_in_tree(&db, "sqlite_autoindex_c_1", "ok-00077", "no-00077");
    let out = dir.path().join("out.db");
    let (code, report) = recover_into(&db, &out);
    assert_eq!(code, 1);
    let c = table(&report, "c");
    assert_eq!(c["altered_rows"], 1, "{c}");
    assert_eq!(c["repaired_rows"], 0);
    let row = &c["altered"][0];
    assert_eq!(row["rowid"], 77);
    assert_eq!(row["repaired"], false);
    let why = row["not_repaired"].as_str().unwrap();
    assert!(why.contains("CHECK"), "{why}");
    let code: String = Connection::open(&out)
        .unwrap()
        .query_row("SELECT code FROM c WHERE id = 77", [], |r| r.get(0))
        .unwrap();
    assert_eq!(code, "ok-00077", "kept as read, not dropped or coerced");
}

/// The committed sample: serial-type bytes changed in three auth_user records. Each is named,
/// takes back the username its UNIQUE index holds, and the one whose header no longer fits
/// its payload is said to be so.
#[test]
fn the_serial_types_sample_names_its_altered_rows_and_gives_their_usernames_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample =
        corrupt_samples::load_sample(&root.join("corrupt-samples/serial-types-altered")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = sample.copy_to(dir.path()).unwrap();
    let out = dir.path().join("out.db");
    let (code, report) = recover_into(&db, &out);
    assert_eq!(code, 1);
    let truth = Connection::open(sample.truth.as_ref().unwrap()).unwrap();
    let conn = Connection::open(&out).unwrap();
    let users = |c: &Connection| -> Vec<(i64, String)> {
        c.prepare("SELECT id, username FROM auth_user ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(users(&conn), users(&truth), "every username as written");
    let t = table(&report, "auth_user");
    let named: Vec<i64> = t["altered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rowid"].as_i64().unwrap())
        .collect();
    assert_eq!(named, [6, 61, 111], "{t}");
    assert_eq!(t["altered_rows"], 3);
    assert_eq!(t["repaired_rows"], 3);
    assert_eq!(t["altered"][2]["header_inconsistent"], true);
    let side = report["engine"]["side_tables"]["altered_rows"]
        .as_str()
        .unwrap();
    let kept: i64 = conn
        .query_row(&format!("SELECT count(*) FROM {side}"), [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 3);
    let notes = |c: &Connection| -> i64 {
        c.query_row("SELECT count(*) FROM audit_note", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(notes(&conn), notes(&truth), "auth_user_audit did not fire");
}

#[test]
fn an_index_value_that_breaks_a_strict_type_is_flagged_never_coerced() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "PRAGMA page_size = 1024;
             CREATE TABLE s(id INTEGER PRIMARY KEY, n INTEGER NOT NULL) STRICT;
             CREATE INDEX s_n ON s(n);
             WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM k WHERE x < 100)
             INSERT INTO s SELECT x, x FROM k;",
        )
        .unwrap();
    // The index entry (n = 77, rowid 77): header [3, 1, 1], body [77, 77]. Its serial type
    // for n becomes 15 (text of one byte): the same length, now a TEXT value.
    let mut bytes = std::fs::read(&db).unwrap();
    let entry = [5u8, 3, 1, 1, 77, 77];
    let at: Vec<usize> = bytes
        .windows(entry.len())
        .enumerate()
        .filter(|(_, w)| *w == entry)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "one index entry so written");
    bytes[at[0] + 2] = 15;
    std::fs::write(&db, bytes).unwrap();
    let out = dir.path().join("out.db");
    let (code, report) = recover_into(&db, &out);
    assert_eq!(code, 1);
    let s = table(&report, "s");
    assert_eq!(
        (s["altered_rows"].as_u64(), s["repaired_rows"].as_u64()),
        (Some(1), Some(0))
    );
    let row = &s["altered"][0];
    assert_eq!(row["rowid"], 77);
    let why = row["not_repaired"].as_str().unwrap();
    assert!(
        why.contains("cannot store TEXT value in INTEGER column"),
        "{why}"
    );
    let (n, kind): (i64, String) = Connection::open(&out)
        .unwrap()
        .query_row("SELECT n, typeof(n) FROM s WHERE id = 77", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((n, kind.as_str()), (77, "integer"), "the row as read");
}

#[test]
fn rows_whose_index_values_collide_are_flagged_and_kept_as_read() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    build(&db);
    // Rows 123 and 124 swap names in their records; the UNIQUE index keeps each as written.
    alter_in_table(&db, "name-000123", "name-0001ZZ");
    alter_in_table(&db, "name-000124", "name-000123");
    alter_in_table(&db, "name-0001ZZ", "name-000124");
    let out = dir.path().join("out.db");
    let (code, report) = recover_into(&db, &out);
    assert_eq!(code, 1);
    let t = table(&report, "t");
    assert_eq!(t["altered_rows"], 2, "{t}");
    for row in t["altered"].as_array().unwrap() {
        assert_eq!(row["repaired"], false, "{row}");
        let why = row["not_repaired"].as_str().unwrap();
        assert!(why.contains("UNIQUE"), "{why}");
    }
    let names: Vec<String> = Connection::open(&out)
        .unwrap()
        .prepare("SELECT name FROM t WHERE id IN (123, 124) ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(names, ["name-000124", "name-000123"], "both kept as read");
}
