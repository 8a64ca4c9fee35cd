//! `sqlite-rescue snapshot`: byte-exact copies, hashes that match, WAL contents kept, and the
//! source never touched.

use crate::common;

use common::{cmd, sha256_file, SourceGuard};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

/// A WAL database whose latest committed rows are only in the -wal; the writer connection
/// is returned open (autocheckpoint off) so the WAL stays as it is.
fn wal_db_with_writer(dir: &Path) -> (PathBuf, Connection) {
    let db = dir.join("app.db");
    let conn = Connection::open(&db).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<500)
         INSERT INTO t SELECT x, printf('row %d', x) FROM c;",
    )
    .unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch(
        "INSERT INTO t(id, v) VALUES (1001, 'only in the wal');
         UPDATE t SET v = 'updated in the wal' WHERE id = 7;",
    )
    .unwrap();
    (db, conn)
}

fn snapshot_json(db: &Path, into: &Path) -> serde_json::Value {
    let out = cmd()
        .args(["snapshot", "--json"])
        .arg(db)
        .arg("--into")
        .arg(into)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "snapshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json output parses")
}

#[test]
fn wal_transactions_are_in_the_snapshot_and_hashes_match() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, writer) = wal_db_with_writer(tmp.path());
    assert!(
        std::fs::metadata(common::source_files(&db)[1].clone())
            .unwrap()
            .len()
            > 0
    );
    let guard = SourceGuard::new(&db);
    let into = tmp.path().join("incident/snap");
    let manifest = snapshot_json(&db, &into);
    guard.assert_unchanged();

    // The manifest on disk says the same as stdout, and its hashes match the copies.
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(into.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk, manifest);
    let files = manifest["files"].as_array().unwrap();
    let roles: Vec<&str> = files.iter().map(|f| f["role"].as_str().unwrap()).collect();
    assert!(roles.contains(&"db") && roles.contains(&"wal"), "{roles:?}");
    for f in files {
        let copy = into.join(f["name"].as_str().unwrap());
        assert_eq!(sha256_file(&copy), f["sha256"].as_str().unwrap());
        assert_eq!(
            std::fs::metadata(&copy).unwrap().len(),
            f["size"].as_u64().unwrap()
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&copy).unwrap().permissions(),
        );
        assert_eq!(mode & 0o222, 0, "copies are read-only");
        assert!(f["mtime"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        manifest["source"].as_str().unwrap(),
        std::fs::canonicalize(&db).unwrap().to_str().unwrap()
    );
    assert_eq!(
        manifest["sqlite_version"].as_str().unwrap(),
        rusqlite::version()
    );
    for key in ["tool_version", "host", "taken_at"] {
        assert!(!manifest[key].as_str().unwrap().is_empty(), "{key}");
    }

    // Open a writable copy of the snapshot: the rows only in the WAL are there.
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    for f in files {
        let name = f["name"].as_str().unwrap();
        if name.ends_with("-shm") {
            continue;
        }
        std::fs::copy(into.join(name), work.join(name)).unwrap();
        let mut perm = std::fs::metadata(work.join(name)).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
        std::fs::set_permissions(work.join(name), perm).unwrap();
    }
    let conn = Connection::open(work.join("app.db")).unwrap();
    let latest: String = conn
        .query_row("SELECT v FROM t WHERE id = 1001", [], |r| r.get(0))
        .unwrap();
    assert_eq!(latest, "only in the wal");
    let updated: String = conn
        .query_row("SELECT v FROM t WHERE id = 7", [], |r| r.get(0))
        .unwrap();
    assert_eq!(updated, "updated in the wal");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 501);
    drop(conn);

    guard.assert_unchanged();
    drop(writer);
}

#[test]
fn text_output_lists_files_hashes_and_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, writer) = wal_db_with_writer(tmp.path());
    let guard = SourceGuard::new(&db);
    let into = tmp.path().join("snap");
    let out = cmd()
        .arg("snapshot")
        .arg(&db)
        .arg("--into")
        .arg(&into)
        .output()
        .unwrap();
    guard.assert_unchanged();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("app.db-wal"), "{text}");
    assert!(text.contains(&sha256_file(&into.join("app.db"))), "{text}");
    assert!(text.contains("manifest.json"), "{text}");
    drop(writer);
}

#[test]
fn non_empty_target_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (db, writer) = wal_db_with_writer(tmp.path());
    let into = tmp.path().join("busy");
    std::fs::create_dir(&into).unwrap();
    std::fs::write(into.join("keep.txt"), b"mine").unwrap();
    let guard = SourceGuard::new(&db);
    let out = cmd()
        .arg("snapshot")
        .arg(&db)
        .arg("--into")
        .arg(&into)
        .output()
        .unwrap();
    guard.assert_unchanged();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(common::tree(&into), vec![into.join("keep.txt")]);
    drop(writer);
}

#[test]
fn symlinked_sidecar_is_refused_and_nothing_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("plain.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .unwrap();
    let elsewhere = tmp.path().join("elsewhere-journal");
    std::fs::write(&elsewhere, b"not ours").unwrap();
    std::os::unix::fs::symlink(&elsewhere, common::source_files(&db)[3].clone()).unwrap();
    let guard = SourceGuard::new(&db);
    let into = tmp.path().join("a/b");
    let out = cmd()
        .arg("snapshot")
        .arg(&db)
        .arg("--into")
        .arg(&into)
        .output()
        .unwrap();
    guard.assert_unchanged();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("symbolic link"), "{err}");
    assert!(
        !tmp.path().join("a").exists(),
        "created folders are removed"
    );
}

#[test]
fn unusable_sources_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.db");
    for (src, expect) in [
        (missing.clone(), "no such file"),
        (tmp.path().to_path_buf(), "directory"),
    ] {
        let guard = SourceGuard::new(&src);
        let into = tmp.path().join("never");
        let out = cmd()
            .arg("snapshot")
            .arg(&src)
            .arg("--into")
            .arg(&into)
            .output()
            .unwrap();
        guard.assert_unchanged();
        assert_eq!(out.status.code(), Some(3));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(expect), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!into.exists());
    }
}
