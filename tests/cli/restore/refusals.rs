//! What restore refuses: a file that fails integrity_check, unusable inputs, a backup it would overwrite; and what it keeps (ownership, nothing beside a WAL copy).

use super::*;

#[test]
fn refuses_a_recovered_file_that_fails_integrity_check_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_db(dir.path());
    let damaged = damaged_copy(dir.path());
    let before = fingerprint(&db);

    let out = restore(dir.path(), &db, &damaged).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr: {stderr}");
    assert!(stderr.contains("integrity_check"), "{stderr}");
    assert_eq!(fingerprint(&db), before);

    let report = restore_json(dir.path(), &db, &damaged, &["--force".as_ref()]);
    assert_eq!(report["integrity_ok"], false);
    assert_eq!(
        std::fs::read(&db).unwrap(),
        std::fs::read(&damaged).unwrap()
    );
    for suffix in SIDECARS {
        assert!(!side(&db, suffix).exists());
    }
}

#[test]
fn missing_or_unusable_inputs_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_db(dir.path());
    let recovered = dir.path().join("recovered.sqlite3");
    recovered_db(&recovered, 1);
    let before = fingerprint(&db);
    let not_sqlite = dir.path().join("notes.txt");
    std::fs::write(&not_sqlite, "this is not a database, just some text").unwrap();

    let cases: [(PathBuf, PathBuf); 4] = [
        (db.clone(), dir.path().join("nope.sqlite3")),
        (dir.path().join("missing.db"), recovered.clone()),
        (db.clone(), not_sqlite),
        (db.clone(), dir.path().to_path_buf()),
    ];
    for (target, from) in cases {
        restore(dir.path(), &target, &from).assert().code(3);
    }
    assert_eq!(fingerprint(&db), before);
    assert!(!dir.path().join("missing.db").exists());
}

#[test]
fn from_must_not_be_the_database_itself() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_db(dir.path());
    let before = fingerprint(&db);
    restore(dir.path(), &db, &db).assert().code(2);
    assert_eq!(fingerprint(&db), before);
}

#[test]
fn refuses_to_overwrite_a_file_in_the_backup_folder() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_db(dir.path());
    let recovered = dir.path().join("recovered.sqlite3");
    recovered_db(&recovered, 2);
    let backup = dir.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    std::fs::write(backup.join("app.db-wal"), "someone else's file").unwrap();
    let before = fingerprint(&db);
    restore(dir.path(), &db, &recovered)
        .arg("--backup-dir")
        .arg(&backup)
        .assert()
        .code(4);
    assert_eq!(fingerprint(&db), before);
    assert_eq!(
        std::fs::read_to_string(backup.join("app.db-wal")).unwrap(),
        "someone else's file"
    );
    assert!(!backup.join("app.db").exists());
}

#[test]
fn the_restored_file_keeps_the_original_owner_when_run_as_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: not root, cannot give files away");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = wal_db(dir.path());
    std::os::unix::fs::chown(&db, Some(4321), Some(4322)).unwrap();
    let recovered = dir.path().join("recovered.sqlite3");
    recovered_db(&recovered, 2);
    let report = restore_json(dir.path(), &db, &recovered, &[]);
    let meta = std::fs::metadata(&db).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4321, 4322));
    assert_eq!(report["restored"]["uid"], 4321);
    let warnings = report["warnings"].as_array().unwrap();
    assert!(
        !warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("owner")),
        "{warnings:?}"
    );
}

#[test]
fn checking_a_wal_mode_recovered_file_leaves_nothing_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_db(dir.path());
    let from = dir.path().join("from.db");
    recovered_db(&from, 50);
    {
        // WAL mode is recorded in the header; closing removes the -wal and -shm.
        let conn = Connection::open(&from).unwrap();
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
    }
    assert!(!side(&from, "-wal").exists() && !side(&from, "-shm").exists());
    let out = bin()
        .current_dir(dir.path())
        .args(["restore", "--quiet"])
        .arg(&db)
        .arg("--from")
        .arg(&from)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !side(&from, "-wal").exists(),
        "restore created a -wal beside --from"
    );
    assert!(
        !side(&from, "-shm").exists(),
        "restore created a -shm beside --from"
    );
    assert_eq!(count_rows(&db), 50);
}
