//! `sqlite-rescue check`: healthy, damaged and unusable inputs, the source never touched,
//! nothing left in the temporary folder.

use crate::common;

use common::{cmd, SourceGuard};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// A rollback-journal database with two tables, one of them indexed over many pages.
fn build_db(path: &Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size=1024;
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, body TEXT);
         CREATE INDEX t_name ON t(name);
         CREATE TABLE other(id INTEGER PRIMARY KEY, note TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<2000)
         INSERT INTO t SELECT x, printf('name-%06d', (x * 7919) % 2000), printf('%080d', x) FROM c;
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<50)
         INSERT INTO other SELECT x, 'note ' || x FROM c;",
    )
    .unwrap();
}

/// The page number of a leaf page of `name` (a table or an index), from dbstat.
fn leaf_page(db: &Path, name: &str) -> u64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row(
        "SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf' ORDER BY pageno LIMIT 1 OFFSET 1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|p| p as u64)
    .unwrap()
}

fn zero_page(db: &Path, pgno: u64, page_size: u64) {
    let mut bytes = std::fs::read(db).unwrap();
    let start = ((pgno - 1) * page_size) as usize;
    bytes[start..start + page_size as usize].fill(0);
    std::fs::write(db, bytes).unwrap();
}

/// Runs `check` with TMPDIR pointed at a folder of the test's own, and asserts the source
/// is unchanged and that folder is empty afterwards.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run_check(db: &Path, extra: &[&str]) -> Run {
    let guard = SourceGuard::new(db);
    let scratch = tempfile::tempdir().unwrap();
    let out = cmd()
        .env("TMPDIR", scratch.path())
        .arg("check")
        .arg(db)
        .args(extra)
        .output()
        .unwrap();
    guard.assert_unchanged();
    assert_eq!(
        common::tree(scratch.path()),
        Vec::<PathBuf>::new(),
        "check left files in its temporary folder"
    );
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

fn check_json(db: &Path) -> (Run, serde_json::Value) {
    let run = run_check(db, &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("--json output does not parse: {e}\n{}", run.stdout));
    (run, v)
}

#[test]
fn healthy_database_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("good.db");
    build_db(&db);
    let run = run_check(&db, &[]);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("healthy"), "{}", run.stdout);
    assert!(run.stdout.contains("1024"), "{}", run.stdout);
    let (run, v) = check_json(&db);
    assert_eq!(run.code, Some(0));
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["header"]["page_size"], 1024);
    assert_eq!(v["header"]["journal_mode"], "rollback");
    assert_eq!(v["integrity"]["ok"], true);
}

#[test]
fn wal_database_with_open_writer_is_checked_without_touching_it() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("live.db");
    let writer = Connection::open(&db).unwrap();
    writer
        .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    writer
        .execute_batch(
            "PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             INSERT INTO t VALUES (1, 'a'), (2, 'b');",
        )
        .unwrap();
    let (run, v) = check_json(&db);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(v["header"]["journal_mode"], "wal");
    assert!(v["wal"]["commits"].as_u64().unwrap() >= 2, "{}", run.stdout);
    assert_eq!(v["wal"]["tail_torn"], false);
    let warned = |v: &serde_json::Value| {
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("has no -wal beside it"))
    };
    assert!(!warned(&v), "the -wal is there");
    drop(writer);
    // Closed cleanly the -wal is gone, which is normal, but worth a word at 3 a.m.
    assert!(!db.with_file_name("live.db-wal").exists());
    let (run, v) = check_json(&db);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(warned(&v), "{}", run.stdout);
}

#[test]
fn zeroed_table_leaf_exits_1_and_names_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("leaf.db");
    build_db(&db);
    let page = leaf_page(&db, "t");
    zero_page(&db, page, 1024);
    let run = run_check(&db, &[]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("table data damage in t"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("other"), "{}", run.stdout);
    assert!(
        run.stdout.contains("sqlite-rescue recover"),
        "{}",
        run.stdout
    );
    let (_, v) = check_json(&db);
    let table_finding = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "table-data")
        .expect("a table-data finding");
    assert_eq!(table_finding["tables"], serde_json::json!(["t"]));
}

#[test]
fn zeroed_index_leaf_is_index_only_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("index.db");
    build_db(&db);
    let page = leaf_page(&db, "t_name");
    zero_page(&db, page, 1024);
    let run = run_check(&db, &[]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("index-only damage: data intact"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("t_name"), "{}", run.stdout);
    assert!(!run.stdout.contains("table data damage"), "{}", run.stdout);
}

/// A value altered in a row its index still holds as written: integrity_check finds the row
/// missing from the index, as it would an entry lost with its page, but the index holds as
/// many entries as the table has rows. Rebuilding the index would make the altered value
/// final: the verdict says the rows disagree and sends the user to recover.
#[test]
fn a_row_its_index_contradicts_is_not_index_only_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("altered.db");
    build_db(&db);
    let page = leaf_page(&db, "t");
    let mut bytes = std::fs::read(&db).unwrap();
    let start = ((page - 1) * 1024) as usize;
    let at = bytes[start..start + 1024]
        .windows(5)
        .position(|w| w == b"name-")
        .map(|p| start + p + 5)
        .expect("a name on the table's leaf");
    bytes[at] = if bytes[at] == b'9' { b'8' } else { b'9' };
    std::fs::write(&db, bytes).unwrap();

    let (run, v) = check_json(&db);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let findings = v["findings"].as_array().unwrap();
    assert!(
        findings.iter().all(|f| f["kind"] != "index-only"),
        "{findings:?}"
    );
    let disagree = findings
        .iter()
        .find(|f| {
            f["summary"]
                .as_str()
                .unwrap_or("")
                .contains("disagree with index t_name")
        })
        .unwrap_or_else(|| panic!("{findings:?}"));
    assert_eq!(disagree["tables"], serde_json::json!(["t"]));
    let text = run_check(&db, &[]);
    assert!(!text.stdout.contains("REINDEX on it"), "{}", text.stdout);
    assert!(text.stdout.contains("recover"), "{}", text.stdout);
}

#[test]
fn zeroed_header_is_a_damaged_header() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("header.db");
    build_db(&db);
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..100].fill(0);
    std::fs::write(&db, bytes).unwrap();
    let (run, v) = check_json(&db);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert_eq!(v["header"]["magic_ok"], false);
    assert_eq!(v["header"]["page_size"], 1024);
    let text = run_check(&db, &[]);
    assert!(text.stdout.contains("damaged header"), "{}", text.stdout);
}

#[test]
fn truncated_file_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("short.db");
    build_db(&db);
    let len = std::fs::metadata(&db).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let run = run_check(&db, &[]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("truncated file"), "{}", run.stdout);
}

#[test]
fn json_carries_the_same_facts_as_text() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("same.db");
    build_db(&db);
    zero_page(&db, leaf_page(&db, "t"), 1024);
    let text = run_check(&db, &[]);
    let (json, v) = check_json(&db);
    assert_eq!(text.code, json.code);
    assert_eq!(v["exit_code"].as_i64(), text.code.map(i64::from));
    for c in v["classification"].as_array().unwrap() {
        assert!(text.stdout.contains(c.as_str().unwrap()), "{c}");
    }
    assert!(text.stdout.contains(&format!(
        "page size            {}",
        v["header"]["page_size"]
    )));
    assert!(text.stdout.contains(v["next_step"].as_str().unwrap()));
    for m in v["integrity"]["messages"].as_array().unwrap() {
        assert!(text.stdout.contains(m.as_str().unwrap()), "{m}");
    }
    assert_eq!(json.stderr, "");
}

fn assert_unusable(path: &Path, expect: &str) {
    for extra in [&[][..], &["--json"][..]] {
        let run = run_check(path, extra);
        assert_eq!(
            run.code,
            Some(3),
            "{}: {}{}",
            path.display(),
            run.stdout,
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(
            run.stderr.starts_with("sqlite-rescue: error: "),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(expect), "{}", run.stderr);
        assert_eq!(run.stdout, "");
    }
}

#[test]
fn unusable_inputs_exit_3_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    assert_unusable(&dir.join("missing.db"), "no such file");
    assert_unusable(dir, "directory");

    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert_unusable(&empty, "empty");

    let random = dir.join("random.db");
    std::fs::write(&random, common::pseudo_random(64 * 1024, 0x5eed)).unwrap();
    assert_unusable(&random, "not a SQLite database");

    let garbage = dir.join("garbage.db");
    let text = "this is a log file, not a database; ".repeat(300);
    std::fs::write(&garbage, text).unwrap();
    assert_unusable(&garbage, "not a SQLite database");

    // Even with the magic string intact, a header without a page size on random pages.
    let mut bad = b"SQLite format 3\0".to_vec();
    bad.extend(common::pseudo_random(8192, 42));
    bad[16] = 0x12;
    bad[17] = 0x34;
    let bad_header = dir.join("bad-header.db");
    std::fs::write(&bad_header, bad).unwrap();
    assert_unusable(&bad_header, "page size");
}

#[test]
fn unreadable_file_exits_3() {
    if common::is_root() {
        eprintln!("skipped: root can read a file whatever its mode");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("locked.db");
    build_db(&db);
    let mut perm = std::fs::metadata(&db).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o000);
    std::fs::set_permissions(&db, perm).unwrap();
    assert_unusable(&db, "permission denied");
}

#[test]
fn bundled_sqlite_is_new_enough_and_version_says_so() {
    assert!(rusqlite::version_number() >= 3_051_003);
    assert!(rusqlite::version_number() >= sqlite_rescue::MIN_SQLITE_VERSION_NUMBER);
    let out = cmd().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(text.contains(rusqlite::version()), "{text}");
}

/// The verdict comes from the engine's proof when it finds the database sound (a WAL
/// database too, its WAL checkpointed into the private copy), and from SQLite's
/// `integrity_check`, whose messages say what is wrong, when it does not.
#[test]
fn a_sound_database_is_proved_by_digests_and_a_damaged_one_by_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corrupt-samples");
    let mut seen = Vec::new();
    for name in ["healthy-wal", "healthy-rollback", "leaf-zeroed"] {
        let db = corrupt_samples::load_sample(&root.join(name))
            .unwrap()
            .copy_to(&dir.path().join(name))
            .unwrap();
        let guard = SourceGuard::new(&db);
        let out = cmd().args(["check", "--json"]).arg(&db).output().unwrap();
        guard.assert_unchanged();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let integrity = &report["integrity"];
        seen.push((
            name,
            out.status.code(),
            integrity["checked_by"].as_str().unwrap().to_string(),
            integrity["ok"].as_bool().unwrap(),
        ));
    }
    assert_eq!(
        seen,
        vec![
            (
                "healthy-wal",
                Some(0),
                "quick_check+digests".to_string(),
                true
            ),
            (
                "healthy-rollback",
                Some(0),
                "quick_check+digests".to_string(),
                true
            ),
            ("leaf-zeroed", Some(1), "integrity_check".to_string(), false),
        ]
    );
}
