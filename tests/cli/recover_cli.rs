//! The `recover` command through the real binary, on the committed corrupt samples.

use crate::common;

use common::{cmd, dry_run, sha256_file, tree, SourceGuard};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn sample_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corrupt-samples")
        .join(name)
}

/// Copies a sample's files into `dir` and returns the copy of its database.
fn copy_sample(name: &str, dir: &Path) -> PathBuf {
    let sample = corrupt_samples::load_sample(&sample_dir(name)).unwrap();
    sample.copy_to(dir).unwrap()
}

/// Every file under `root` with its hash (directories as "dir").
fn snapshot_of(root: &Path) -> BTreeMap<PathBuf, String> {
    tree(root)
        .into_iter()
        .map(|p| {
            let h = if p.is_dir() {
                "dir".to_string()
            } else {
                sha256_file(&p)
            };
            (p, h)
        })
        .collect()
}

#[test]
fn dry_run_leaves_everything_as_it_was() {
    let root = tempfile::tempdir().unwrap();
    let tmp = root.path().join("tmp");
    let cwd = root.path().join("cwd");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    for name in [
        "interior-zeroed",
        "healthy-wal",
        "leaf-zeroed",
        "header-garbage",
    ] {
        let db = copy_sample(name, &root.path().join(name));
        let guard = SourceGuard::new(&db);
        let before = snapshot_of(root.path());
        let out = cmd()
            .current_dir(&cwd)
            .env("TMPDIR", &tmp)
            .args(["recover", "--dry-run"])
            .arg(&db)
            .output()
            .unwrap();
        let code = out.status.code().unwrap();
        assert!(
            code == 0 || code == 1,
            "{name}: exit {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Dry run"),
            "{name}"
        );
        guard.assert_unchanged();
        assert_eq!(
            snapshot_of(root.path()),
            before,
            "{name}: the dry run changed files"
        );
    }
}

/// Exit 0 exactly when every truth row came back in place and nothing is in lost_and_found.
#[test]
fn exit_codes_match_what_was_really_lost() {
    let root = tempfile::tempdir().unwrap();
    for sample in corrupt_samples::committed_samples(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap()
    {
        let work = root.path().join(&sample.name);
        let db = sample.copy_to(&work.join("src")).unwrap();
        let guard = SourceGuard::new(&db);
        let incident = work.join("incident");
        let out = cmd()
            .args(["recover", "--quiet", "--incident-dir"])
            .arg(&incident)
            .arg(&db)
            .output()
            .unwrap();
        guard.assert_unchanged();
        let code = out.status.code().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", sample.name);
        if !sample.expected.expect.usable {
            assert_eq!(code, 3, "{}: {stderr}", sample.name);
            assert_eq!(
                stderr.lines().count(),
                1,
                "{}: one line: {stderr}",
                sample.name
            );
            assert!(
                !incident.exists(),
                "{}: nothing is created for an unusable input",
                sample.name
            );
            continue;
        }
        let recovered = incident.join("recovered.sqlite3");
        let score = corrupt_samples::score(sample.truth.as_ref().unwrap(), &recovered).unwrap();
        // Rows in lost_and_found that match no truth row are not rows the source holds.
        let everything_in_place = score.tables.iter().all(|t| t.in_place == t.truth_rows)
            && score.lost_and_found_rows == score.lost_and_found_unmatched;
        let expected = if everything_in_place { 0 } else { 1 };
        assert_eq!(
            code, expected,
            "{}: exit code vs truth\n{score}",
            sample.name
        );
        if sample.expected.expect.values_unknowable {
            assert_eq!(
                code, 1,
                "{}: damage that can alter values is never 'complete'",
                sample.name
            );
        }
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(incident.join("report.json")).unwrap()).unwrap();
        assert_eq!(report["exit_code"], code, "{}", sample.name);
    }
}

/// Field names in the first column of the tables of docs/report-format.md, per section.
fn documented_fields(section: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report-format.md"),
    )
    .unwrap();
    let start = doc
        .find(section)
        .unwrap_or_else(|| panic!("section {section} in report-format.md"));
    let body = &doc[start..];
    let body = &body[body.find('\n').unwrap()..];
    let end = body.find("\n## ").unwrap_or(body.len());
    body[..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            first
                .split(',')
                .filter_map(|f| f.trim().strip_prefix('`').and_then(|f| f.strip_suffix('`')))
                .map(|f| f.trim_end_matches("[]").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn report_json_has_every_documented_field() {
    let root = tempfile::tempdir().unwrap();
    let db = copy_sample("leaf-zeroed", &root.path().join("src"));
    let incident = root.path().join("incident");
    let out = cmd()
        .args(["recover", "--json", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let printed: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(incident.join("report.json")).unwrap()).unwrap();
    assert_eq!(printed["tables"], written["tables"]);
    assert_eq!(written["schema_version"], 2);
    for field in documented_fields("## Top level") {
        assert!(
            written.get(&field).is_some(),
            "report.json lacks documented field {field}"
        );
    }
    for field in documented_fields("## `tables[]`") {
        for t in written["tables"].as_array().unwrap() {
            assert!(
                t.get(&field).is_some(),
                "tables[] lacks documented field {field}"
            );
        }
    }
    for field in documented_fields("## `engine`") {
        assert!(
            written["engine"].get(&field).is_some(),
            "engine lacks documented field {field}"
        );
    }
    let monitor = written["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "monitor_check")
        .unwrap();
    assert_eq!(monitor["recovered_rows"], 581);
}

#[test]
fn unsafe_outputs_are_refused_and_nothing_is_touched() {
    let root = tempfile::tempdir().unwrap();
    let db = copy_sample("healthy-wal", &root.path().join("src"));
    let guard = SourceGuard::new(&db);
    let wal = sqlite_rescue::source::pagefile::sidecar(&db, "-wal");
    let existing = root.path().join("existing.sqlite3");
    std::fs::write(&existing, b"keep me").unwrap();
    for out in [db.clone(), wal, existing.clone()] {
        let res = cmd()
            .args(["recover", "--incident-dir"])
            .arg(root.path().join("incident-x"))
            .arg("--out")
            .arg(&out)
            .arg(&db)
            .output()
            .unwrap();
        assert_eq!(res.status.code(), Some(4), "--out {}", out.display());
        assert!(String::from_utf8_lossy(&res.stderr).contains("refused"));
        assert!(!root.path().join("incident-x").exists());
    }
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    // A non-empty incident folder is refused too.
    let busy = root.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), b"mine").unwrap();
    let res = cmd()
        .args(["recover", "--incident-dir"])
        .arg(&busy)
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(4));
    assert_eq!(std::fs::read(busy.join("notes.txt")).unwrap(), b"mine");
    guard.assert_unchanged();
}

#[test]
fn recover_then_diff_agree() {
    let root = tempfile::tempdir().unwrap();
    let db = copy_sample("interior-zeroed", &root.path().join("src"));
    let guard = SourceGuard::new(&db);
    let incident = root.path().join("incident");
    let out = cmd()
        .args(["recover", "-q", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let diff = cmd()
        .args(["diff", "--json"])
        .arg(&db)
        .arg(incident.join("recovered.sqlite3"))
        .output()
        .unwrap();
    assert_eq!(diff.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    let event_log = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "event_log")
        .unwrap();
    assert_eq!(event_log["difference"], 0);
    // Against an unrelated healthy database, diff says they differ.
    let other = copy_sample("leaf-zeroed", &root.path().join("other"));
    let diff = cmd()
        .arg("diff")
        .arg(&other)
        .arg(incident.join("recovered.sqlite3"))
        .output()
        .unwrap();
    assert_eq!(diff.status.code(), Some(1));
    guard.assert_unchanged();
}

/// A comment whose post is gone stays a comment: exit 0 (every row came back in place), the
/// table says so, and the summary says how many rows name a missing parent.
#[test]
fn rows_naming_a_missing_parent_are_kept_and_reported() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             CREATE TABLE posts(id INTEGER PRIMARY KEY, title TEXT);
             CREATE TABLE comments(id INTEGER PRIMARY KEY,
               post_id INTEGER NOT NULL REFERENCES posts(id) DEFERRABLE INITIALLY DEFERRED);
             INSERT INTO posts VALUES (1, 'kept');
             INSERT INTO comments(post_id) VALUES (1), (1), (2);",
        )
        .unwrap();
    let (code, text) = dry_run(&db);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("foreign_key_check: 1 row names a parent row that is not there"),
        "{text}"
    );
    let comments = text.lines().find(|l| l.starts_with("comments ")).unwrap();
    let counts: Vec<&str> = comments.split_whitespace().collect();
    assert_eq!(&counts[1..3], ["3", "3"], "{comments}");
}

/// A database in WAL mode comes back in WAL mode (the mode lives in the file: an app that
/// never sets it would otherwise switch to rollback journaling), with no `-wal` or `-shm`
/// left beside the recovered file, so `restore` takes it, keeping the originals in the
/// incident folder.
#[test]
fn wal_mode_is_kept_and_the_recovered_file_stands_alone() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch("CREATE TABLE t(a); INSERT INTO t VALUES (1), (2);")
        .unwrap();
    drop(conn);
    let incident = root.path().join("incident");
    let out = cmd()
        .args(["recover", "-q", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("WAL mode and has no -wal beside it"),
        "closed cleanly, the -wal is gone: the summary says what that can mean"
    );
    let recovered = incident.join("recovered.sqlite3");
    let header = std::fs::read(&recovered).unwrap();
    assert_eq!(&header[18..20], &[2, 2], "WAL mode, as the source");
    for sidecar in ["recovered.sqlite3-wal", "recovered.sqlite3-shm"] {
        assert!(!incident.join(sidecar).exists(), "{sidecar} left behind");
    }
    let restore = cmd()
        .args(["restore", "-q"])
        .arg(&db)
        .arg("--from")
        .arg(&recovered)
        .output()
        .unwrap();
    assert_eq!(
        restore.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    // The originals go into the incident folder RECOVERED came from, though it has no
    // default name.
    assert!(incident.join("pre-restore").join("app.db").is_file());
}
