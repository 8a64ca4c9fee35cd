//! `restore` and `undo` through the real binary: the swap, the backup and its manifest, the
//! undo command, and the refusals (database open elsewhere, RECOVERED damaged, inputs
//! missing, the application wrote after the restore).

use assert_cmd::Command;
use rusqlite::Connection;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

fn side(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// sha256 and mtime (ns) of the database and each sidecar that exists.
fn fingerprint(db: &Path) -> BTreeMap<String, (String, i64, i64)> {
    let mut out = BTreeMap::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = side(db, suffix);
        if let Ok(m) = std::fs::metadata(&p) {
            out.insert(suffix.to_string(), (sha(&p), m.mtime(), m.mtime_nsec()));
        }
    }
    out
}

/// A WAL-mode database whose last commits live only in its `-wal` (with `-shm` beside it),
/// as an application that was killed would leave it.
fn wal_db(dir: &Path) -> PathBuf {
    let build = dir.join("build");
    std::fs::create_dir_all(&build).unwrap();
    let tmp_db = build.join("app.db");
    let conn = Connection::open(&tmp_db).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);",
    )
    .unwrap();
    for i in 0..200 {
        conn.execute(
            "INSERT INTO t(v) VALUES (?1)",
            [format!("original row {i}")],
        )
        .unwrap();
    }
    let db = dir.join("app.db");
    for suffix in ["", "-wal", "-shm"] {
        std::fs::copy(side(&tmp_db, suffix), side(&db, suffix)).unwrap();
    }
    drop(conn);
    std::fs::remove_dir_all(&build).unwrap();
    assert!(std::fs::metadata(side(&db, "-wal")).unwrap().len() > 0);
    db
}

/// A healthy rollback-journal database with `rows` rows in `t`.
fn recovered_db(path: &Path, rows: i64) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size=4096;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         BEGIN;",
    )
    .unwrap();
    for i in 0..rows {
        conn.execute(
            "INSERT INTO t(id, v) VALUES (?1, ?2)",
            rusqlite::params![i, format!("recovered row {i} {}", "x".repeat(100))],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT;").unwrap();
}

fn bin() -> Command {
    Command::cargo_bin("sqlite-rescue").unwrap()
}

/// `sqlite-rescue restore DB --from FROM`, run in `cwd`; add flags before running it.
fn restore(cwd: &Path, db: impl AsRef<std::ffi::OsStr>, from: &Path) -> Command {
    let mut cmd = bin();
    cmd.current_dir(cwd)
        .arg("restore")
        .arg(db.as_ref())
        .arg("--from")
        .arg(from);
    cmd
}

/// [`restore`] with `--json` and `extra` flags; it must succeed. Its report.
fn restore_json(
    cwd: &Path,
    db: impl AsRef<std::ffi::OsStr>,
    from: &Path,
    extra: &[&std::ffi::OsStr],
) -> serde_json::Value {
    let out = restore(cwd, db, from)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn count_rows(db: &Path) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

/// Checks the swap and the backup, then runs the undo line and checks the originals are back.
fn check_restored_and_undo(
    db: &Path,
    recovered: &Path,
    before: &BTreeMap<String, (String, i64, i64)>,
    report: &serde_json::Value,
    expected_backup_dir: Option<&Path>,
) {
    for suffix in SIDECARS {
        assert!(
            !side(db, suffix).exists(),
            "{suffix} left beside the restored database"
        );
    }
    assert_eq!(
        std::fs::read(db).unwrap(),
        std::fs::read(recovered).unwrap()
    );

    let backup_dir = PathBuf::from(report["backup_dir"].as_str().unwrap());
    if let Some(expected) = expected_backup_dir {
        assert_eq!(
            std::fs::canonicalize(&backup_dir).unwrap(),
            std::fs::canonicalize(expected).unwrap()
        );
    }
    let moved = report["moved"].as_array().unwrap();
    assert_eq!(moved.len(), before.len(), "{report:#}");
    for m in moved {
        let name = m["name"].as_str().unwrap();
        let suffix = name.strip_prefix("app.db").unwrap();
        let backup = PathBuf::from(m["backup_path"].as_str().unwrap());
        assert_eq!(backup.parent().unwrap(), backup_dir);
        assert_eq!(m["sha256"].as_str().unwrap(), before[suffix].0, "{name}");
        assert_eq!(sha(&backup), before[suffix].0, "{name} in the backup");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["files"], report["moved"]);

    // The application runs on the restored file and grows sidecars: undo refuses, since
    // undoing would set its writes aside; `--force` undoes, keeping every file it finds.
    {
        let conn = Connection::open(db).unwrap();
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
        conn.execute("INSERT INTO t(v) VALUES ('after restore')", [])
            .unwrap();
        let sidecars: Vec<_> = ["-wal", "-shm"]
            .iter()
            .map(|s| side(db, s))
            .filter(|p| p.exists())
            .collect();
        assert!(!sidecars.is_empty());
        // Leave them behind as a crashed application would.
        for p in &sidecars {
            std::fs::copy(p, side(p, ".keep")).unwrap();
        }
        drop(conn);
        for p in &sidecars {
            std::fs::rename(side(p, ".keep"), p).unwrap();
        }
    }
    let written = fingerprint(db);
    assert!(written.contains_key("-wal"), "{written:?}");

    // The printed line runs as printed, from anywhere.
    let undo = report["undo_command"].as_str().unwrap();
    assert!(undo.contains(" undo "), "{undo}");
    let refused = std::process::Command::new("sh")
        .arg("-c")
        .arg(undo)
        .current_dir("/")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("changed since it was restored"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(fingerprint(db), written, "a refused undo changed the files");

    let forced = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{undo} --force --json"))
        .current_dir("/")
        .output()
        .unwrap();
    assert_eq!(forced.status.code(), Some(0), "{forced:?}");
    let done: serde_json::Value = serde_json::from_slice(&forced.stdout).unwrap();
    let after: BTreeMap<String, String> =
        fingerprint(db).into_iter().map(|(k, v)| (k, v.0)).collect();
    let expected: BTreeMap<String, String> = before
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    assert_eq!(
        after, expected,
        "undo did not restore the originals byte for byte"
    );
    // What the application had written is kept, byte for byte, in the backup folder.
    let set_aside = PathBuf::from(done["set_aside_dir"].as_str().unwrap());
    assert!(set_aside.starts_with(&backup_dir), "{set_aside:?}");
    let kept: BTreeMap<String, String> = fingerprint(&set_aside.join("app.db"))
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let wrote: BTreeMap<String, String> = written.into_iter().map(|(k, v)| (k, v.0)).collect();
    assert_eq!(kept, wrote, "--force lost a file that was in place");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["undone"]["forced"], true);
    assert_eq!(manifest["undone"]["changed_since_restore"], true);
    // Undone once: a second undo says so and changes nothing.
    let again = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{undo} --force"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(4), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("undone already"));
    let still: BTreeMap<String, String> =
        fingerprint(db).into_iter().map(|(k, v)| (k, v.0)).collect();
    assert_eq!(still, expected);
}

#[test]
fn restores_a_wal_database_into_the_latest_incident_folder_and_undoes() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_db(dir.path());
    let older = dir.path().join("app.db.rescue-20240101T000000");
    let incident = dir.path().join("app.db.rescue-20250101T000000");
    std::fs::create_dir(&older).unwrap();
    std::fs::create_dir(&incident).unwrap();
    let recovered = incident.join("recovered.sqlite3");
    recovered_db(&recovered, 50);
    std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let before = fingerprint(&db);
    assert_eq!(before.len(), 3);

    let report = restore_json(dir.path(), "app.db", &recovered, &[]);
    assert_eq!(count_rows(&db), 50);
    assert_eq!(
        std::fs::metadata(&db).unwrap().mode() & 0o7777,
        0o640,
        "mode not preserved"
    );
    assert_eq!(report["integrity_ok"], true);
    check_restored_and_undo(
        &db,
        &recovered,
        &before,
        &report,
        Some(&incident.join("pre-restore")),
    );
    assert_eq!(count_rows(&db), 200, "the original (with its WAL) is back");
}

#[test]
fn without_an_incident_folder_the_backup_goes_beside_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_db(dir.path());
    let recovered = dir.path().join("recovered.sqlite3");
    recovered_db(&recovered, 7);
    let before = fingerprint(&db);

    let out = restore(dir.path(), &db, &recovered).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("To undo"), "{text}");
    assert!(text.contains(" undo "), "{text}");
    let backups: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("app.db.pre-restore-")
        })
        .collect();
    assert_eq!(backups.len(), 1);
    let backup = backups[0].path();
    assert!(backup.join("manifest.json").exists());
    for suffix in ["", "-wal", "-shm"] {
        assert_eq!(sha(&side(&backup.join("app.db"), suffix)), before[suffix].0);
    }
    assert_eq!(count_rows(&db), 7);
}

#[test]
fn backup_on_another_filesystem_is_copied_and_verified() {
    let shm = Path::new("/dev/shm");
    let dir = tempfile::tempdir().unwrap();
    let Ok(other) = tempfile::tempdir_in(shm) else {
        eprintln!("skipped: no /dev/shm");
        return;
    };
    if std::fs::metadata(other.path()).unwrap().dev()
        == std::fs::metadata(dir.path()).unwrap().dev()
    {
        eprintln!("skipped: /dev/shm is on the same filesystem as the temp dir");
        return;
    }
    let db = wal_db(dir.path());
    let recovered = dir.path().join("recovered.sqlite3");
    recovered_db(&recovered, 3);
    let before = fingerprint(&db);
    let backup_dir = other.path().join("pre");
    let report = restore_json(
        dir.path(),
        &db,
        &recovered,
        &["--backup-dir".as_ref(), backup_dir.as_os_str()],
    );
    for m in report["moved"].as_array().unwrap() {
        assert_eq!(m["method"], "copy");
    }
    check_restored_and_undo(&db, &recovered, &before, &report, Some(&backup_dir));
}

fn have_python() -> bool {
    std::process::Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A python3 child holding the database open; returns once it has said "ready".
struct Holder(Child);

impl Holder {
    fn start(db: &Path, read_transaction: bool) -> Holder {
        let script = r#"
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "txn":
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM t").fetchone()
else:
    conn.execute("SELECT count(*) FROM t").fetchone()
print("ready", flush=True)
time.sleep(600)
"#;
        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(db)
            .arg(if read_transaction { "txn" } else { "idle" })
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn refused_while_open(read_transaction: bool, expect_lock: &str) {
    if !have_python() {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = wal_db(dir.path());
    let recovered = dir.path().join("recovered.sqlite3");
    recovered_db(&recovered, 5);
    let holder = Holder::start(&db, read_transaction);
    let pid = holder.0.id();
    let before = fingerprint(&db);

    let out = restore(dir.path(), &db, &recovered).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr: {stderr}");
    assert!(stderr.contains(expect_lock), "{stderr}");
    assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");
    assert!(stderr.contains("fuser"), "{stderr}");
    assert_eq!(
        fingerprint(&db),
        before,
        "refused restore changed the files"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("pre-restore") || n.contains(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    drop(holder);
}

#[test]
fn refuses_while_another_process_holds_a_read_transaction() {
    refused_while_open(true, "SHARED");
}

#[test]
fn refuses_while_another_process_merely_has_the_wal_database_open() {
    refused_while_open(false, "WAL DMS");
}

#[test]
fn force_restores_even_while_open() {
    if !have_python() {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = wal_db(dir.path());
    let recovered = dir.path().join("recovered.sqlite3");
    recovered_db(&recovered, 5);
    let holder = Holder::start(&db, true);
    let report = restore_json(dir.path(), &db, &recovered, &["--force".as_ref()]);
    drop(holder);
    assert!(!report["locks_held"].as_array().unwrap().is_empty());
    assert_eq!(count_rows(&db), 5);
}

/// Zeroes page 3 (a leaf of `t`) of a copy of a healthy database.
fn damaged_copy(dir: &Path) -> PathBuf {
    let healthy = dir.join("healthy.sqlite3");
    recovered_db(&healthy, 400);
    let damaged = dir.join("damaged.sqlite3");
    let mut bytes = std::fs::read(&healthy).unwrap();
    assert!(bytes.len() > 4 * 4096);
    bytes[2 * 4096..3 * 4096].fill(0);
    std::fs::write(&damaged, bytes).unwrap();
    let conn = Connection::open(&damaged).unwrap();
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_ne!(verdict, "ok");
    damaged
}

mod refusals;
