//! The edges around a recovery where a slip could lose data (issue 19): a sidecar named as
//! the database, a diff that hid a loss, a restore of a lossy copy or of the same incident
//! twice, an undo after the application wrote, and incident folders that must not collide.

use crate::common::{cmd, sha256_file, tree, SourceGuard};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn side(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Copies a committed corrupt sample's files into `dir`; returns its database there.
fn copy_sample(name: &str, dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corrupt-samples");
    corrupt_samples::load_sample(&root.join(name))
        .unwrap()
        .copy_to(dir)
        .unwrap()
}

/// sha256 of the database and of each sidecar that exists, by suffix ("" for the database).
fn fingerprint(db: &Path) -> BTreeMap<String, String> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|s| (s.to_string(), side(db, s)))
        .filter(|(_, p)| p.is_file())
        .map(|(s, p)| (s, sha256_file(&p)))
        .collect()
}

/// Every file under `root` by hash, counted (to show nothing was deleted).
fn every_file(root: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in tree(root).into_iter().filter(|p| p.is_file()) {
        *out.entry(sha256_file(&p)).or_insert(0) += 1;
    }
    out
}

/// A WAL database whose last commits are only in its `-wal`, with its `-shm` beside it.
fn wal_db(dir: &Path) -> PathBuf {
    let build = dir.join("build");
    std::fs::create_dir_all(&build).unwrap();
    let live = build.join("app.db");
    let conn = Connection::open(&live).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300)
         INSERT INTO t(v) SELECT printf('row %d', x) FROM c;",
    )
    .unwrap();
    let db = dir.join("app.db");
    for s in ["", "-wal", "-shm"] {
        std::fs::copy(side(&live, s), side(&db, s)).unwrap();
    }
    drop(conn);
    std::fs::remove_dir_all(&build).unwrap();
    db
}

/// A rollback-journal database copied with its hot `-journal` mid-transaction.
fn journal_db(dir: &Path) -> PathBuf {
    let live = dir.join("live.db");
    let conn = Connection::open(&live).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024; PRAGMA journal_mode = DELETE;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000)
         INSERT INTO t SELECT x, printf('row %d', x) FROM c;
         PRAGMA cache_size = 10;
         BEGIN;
         UPDATE t SET v = 'changed ' || id;",
    )
    .unwrap();
    let db = dir.join("app.db");
    std::fs::copy(&live, &db).unwrap();
    std::fs::copy(side(&live, "-journal"), side(&db, "-journal")).unwrap();
    conn.execute_batch("ROLLBACK").unwrap();
    drop(conn);
    std::fs::remove_file(&live).unwrap();
    db
}

/// A healthy database with `rows` rows in `t`.
fn healthy_db(path: &Path, rows: i64) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);")
        .unwrap();
    for i in 0..rows {
        conn.execute("INSERT INTO t(v) VALUES (?1)", [format!("row {i}")])
            .unwrap();
    }
}

/// `recover -q --json --incident-dir INCIDENT DB`: its exit code and report.
fn recover_into(db: &Path, incident: &Path) -> (Option<i32>, serde_json::Value) {
    let out = cmd()
        .args(["recover", "-q", "--json", "--incident-dir"])
        .arg(incident)
        .arg(db)
        .output()
        .unwrap();
    (out.status.code(), json(&out))
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn table<'r>(report: &'r serde_json::Value, name: &str) -> &'r serde_json::Value {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no table {name} in {report:#}"))
}

// ---------------------------------------------------------------------------------------
// 1. A sidecar given as the database
// ---------------------------------------------------------------------------------------

/// Every command named on `-wal`, `-shm` or `-journal` refuses with exit 2, names the
/// database it belongs to, and touches and creates nothing.
#[test]
fn a_sidecar_given_as_the_database_is_refused_by_every_command() {
    let root = tempfile::tempdir().unwrap();
    let good = root.path().join("good.sqlite3");
    healthy_db(&good, 3);
    for (suffix, make) in [
        ("-wal", wal_db as fn(&Path) -> PathBuf),
        ("-shm", wal_db),
        ("-journal", journal_db),
    ] {
        let work = root.path().join(format!("work{suffix}"));
        std::fs::create_dir(&work).unwrap();
        let db = make(&work);
        let sidecar = side(&db, suffix);
        assert!(sidecar.is_file(), "{suffix}");
        let guard = SourceGuard::new(&db);
        let before = tree(&work);
        let snap = work.join("snap");
        let runs: Vec<Vec<std::ffi::OsString>> = vec![
            vec!["check".into(), sidecar.clone().into()],
            vec![
                "snapshot".into(),
                sidecar.clone().into(),
                "--into".into(),
                snap.clone().into(),
            ],
            vec!["recover".into(), sidecar.clone().into()],
            vec!["recover".into(), "--dry-run".into(), sidecar.clone().into()],
            vec!["lost".into(), sidecar.clone().into()],
            vec!["diff".into(), sidecar.clone().into(), good.clone().into()],
            vec!["diff".into(), good.clone().into(), sidecar.clone().into()],
            vec![
                "restore".into(),
                sidecar.clone().into(),
                "--from".into(),
                good.clone().into(),
            ],
            vec![
                "restore".into(),
                sidecar.clone().into(),
                "--from".into(),
                good.clone().into(),
                "--dry-run".into(),
            ],
        ];
        for args in runs {
            let out = cmd().current_dir(&work).args(&args).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let ctx = format!("{args:?}: {stderr}");
            assert_eq!(out.status.code(), Some(2), "{ctx}");
            assert_eq!(stderr.lines().count(), 1, "{ctx}");
            assert!(stderr.contains("not a database"), "{ctx}");
            assert!(
                stderr.contains(&format!("of the database {}", db.display())),
                "names the database: {ctx}"
            );
            assert!(out.stdout.is_empty(), "{ctx}");
        }
        guard.assert_unchanged();
        assert_eq!(tree(&work), before, "{suffix}: something was created");
        assert!(!snap.exists());

        // By content too, whatever the file is called.
        let renamed = root.path().join(format!("renamed{suffix}.bin"));
        std::fs::copy(&sidecar, &renamed).unwrap();
        let out = cmd().arg("check").arg(&renamed).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{suffix} by content: {stderr}");
        assert!(stderr.contains(&format!("({suffix} file)")), "{stderr}");
    }

    // An empty sidecar is known by its name alone.
    let empty = side(&good, "-journal");
    std::fs::write(&empty, b"").unwrap();
    let out = cmd().arg("check").arg(&empty).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    std::fs::remove_file(&empty).unwrap();
    // A database that merely has such a name is a database.
    let named = root.path().join("notes-wal");
    std::fs::copy(&good, &named).unwrap();
    cmd().arg("check").arg(&named).assert().code(0);
}

// ---------------------------------------------------------------------------------------
// 2. A diff never hides a loss
// ---------------------------------------------------------------------------------------

/// `leaf-zeroed`: SQLite cannot count `monitor_check`, the page walk finds 581 rows and
/// names rowids 296–314 lost. The count is a bound, the difference is not 0, the report's
/// `missing_rows` is not 0, and `diff` exits 1.
#[test]
fn a_walk_counted_source_whose_rows_were_lost_makes_diff_exit_non_zero() {
    let root = tempfile::tempdir().unwrap();
    let db = copy_sample("leaf-zeroed", &root.path().join("src"));
    let incident = root.path().join("incident");
    let (code, report) = recover_into(&db, &incident);
    assert_eq!(code, Some(1));
    let monitor = table(&report, "monitor_check");
    assert_eq!(monitor["source_counted_by"], "bounds", "{monitor:#}");
    assert!(!monitor["lost"].as_array().unwrap().is_empty());
    assert!(monitor["difference"].as_i64().unwrap() < 0, "{monitor:#}");
    assert!(monitor["missing_rows"].as_u64().unwrap() >= 1);
    assert_eq!(monitor["missing_rows_max"], 19);
    assert!(report["missing_rows"].as_u64().unwrap() >= 1);
    let auth = table(&report, "auth_user");
    assert_eq!(auth["source_counted_by"], "sqlite");
    assert_eq!(
        (auth["difference"].as_i64(), auth["missing_rows"].as_u64()),
        (Some(0), Some(0))
    );

    let recovered = incident.join("recovered.sqlite3");
    let out = cmd()
        .args(["diff", "--json"])
        .arg(&db)
        .arg(&recovered)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let diff = json(&out);
    let monitor = table(&diff, "monitor_check");
    assert_eq!(monitor["source_counted_by"], "bounds");
    assert_ne!(monitor["difference"], 0);
    assert!(diff["missing_rows"].as_u64().unwrap() >= 1);
    let out = cmd().arg("diff").arg(&db).arg(&recovered).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("same number of rows"), "{text}");
    assert!(text.contains("missing"), "{text}");

    // A walk that reached every row is a plain count ("walk"), and equal is equal.
    let db = copy_sample("root-zeroed", &root.path().join("whole"));
    let incident = root.path().join("incident-whole");
    let (code, report) = recover_into(&db, &incident);
    assert_eq!(code, Some(0));
    let monitor = table(&report, "monitor_check");
    assert_eq!(monitor["source_counted_by"], "walk", "{monitor:#}");
    assert_eq!(
        (
            monitor["source_rows"].as_u64(),
            monitor["difference"].as_i64()
        ),
        (Some(600), Some(0))
    );
    assert_eq!(monitor["missing_rows"], 0);
    assert_eq!(report["missing_rows"], 0);
}

// ---------------------------------------------------------------------------------------
// 3. Restore guards the live database
// ---------------------------------------------------------------------------------------

/// The copy of `leaf-zeroed` lacks the rows of one page: restore refuses it (exit 1, naming
/// the table and the counts), `--dry-run --accept-loss` says exactly what would move where
/// and moves nothing, `--accept-loss` restores, and a second restore of the same incident
/// says it was restored already and changes nothing.
#[test]
fn restore_refuses_a_lossy_copy_and_the_same_incident_twice() {
    let root = tempfile::tempdir().unwrap();
    let db = copy_sample("leaf-zeroed", &root.path().join("live"));
    let incident = root.path().join("incident");
    assert_eq!(recover_into(&db, &incident).0, Some(1));
    let recovered = incident.join("recovered.sqlite3");
    let before = fingerprint(&db);
    let restore = |extra: &[&str]| {
        cmd()
            .arg("restore")
            .arg(&db)
            .arg("--from")
            .arg(&recovered)
            .args(extra)
            .output()
            .unwrap()
    };

    let out = restore(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("monitor_check: 581 of at least 582 rows"),
        "{stderr}"
    );
    assert!(stderr.contains("--accept-loss"), "{stderr}");
    assert_eq!(fingerprint(&db), before);

    let out = restore(&["--dry-run", "--accept-loss"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let backup = incident.join("pre-restore");
    assert!(text.contains("nothing was changed"), "{text}");
    assert!(
        text.contains(&format!("move   {} ", db.display()))
            && text.contains(&format!("to {}", backup.join("db.sqlite3").display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("copy   {} ", recovered.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("to {}, fsync the folder", db.display())),
        "{text}"
    );
    let plan = json(&restore(&["--dry-run", "--accept-loss", "--json"]));
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["copy", "move", "rename", "write"]);
    assert_eq!(fingerprint(&db), before);
    assert!(!backup.exists(), "a dry run created the backup folder");

    let out = restore(&["--accept-loss", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = json(&out);
    assert_eq!(report["accepted_loss"][0]["table"], "monitor_check");
    assert_eq!(sha256_file(&db), sha256_file(&recovered));

    let after_first = fingerprint(&db);
    let incident_before = every_file(&incident);
    let out = restore(&["--accept-loss"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("already restored"), "{stderr}");
    assert!(stderr.contains(" undo "), "{stderr}");
    assert_eq!(fingerprint(&db), after_first);
    assert_eq!(every_file(&incident), incident_before);
}

/// A copy restores only over the database its incident snapshotted: not over another one
/// (exit 2), and not over the same one once it changed since the snapshot (exit 4).
#[test]
fn restore_refuses_a_database_the_incident_did_not_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    healthy_db(&db, 20);
    let incident = root.path().join("incident");
    assert_eq!(recover_into(&db, &incident).0, Some(0));
    let recovered = incident.join("recovered.sqlite3");

    let other = root.path().join("other.db");
    healthy_db(&other, 20);
    let before = fingerprint(&other);
    let out = cmd()
        .arg("restore")
        .arg(&other)
        .arg("--from")
        .arg(&recovered)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("was recovered from {}", db.display())),
        "{stderr}"
    );
    assert_eq!(fingerprint(&other), before);

    Connection::open(&db)
        .unwrap()
        .execute("INSERT INTO t(v) VALUES ('written after the snapshot')", [])
        .unwrap();
    let before = fingerprint(&db);
    let out = cmd()
        .arg("restore")
        .arg(&db)
        .arg("--from")
        .arg(&recovered)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("changed since the snapshot"), "{stderr}");
    assert_eq!(fingerprint(&db), before);
    assert!(!incident.join("pre-restore").exists());
}

// ---------------------------------------------------------------------------------------
// 4. Undo
// ---------------------------------------------------------------------------------------

/// Recover, restore, and the application writes (leaving a -wal): `undo INCIDENT` refuses
/// and changes nothing; `--force` puts the originals back byte for byte and keeps every file
/// that was in place in the incident folder: no file is gone. Then the incident can be
/// restored again.
#[test]
fn undo_refuses_after_the_app_wrote_and_force_keeps_every_file() {
    let root = tempfile::tempdir().unwrap();
    let db = copy_sample("healthy-wal", &root.path().join("live"));
    let originals = fingerprint(&db);
    assert!(originals.contains_key("-wal"));
    let incident = root.path().join("incident");
    assert_eq!(recover_into(&db, &incident).0, Some(0));
    let recovered = incident.join("recovered.sqlite3");
    cmd()
        .args(["restore", "-q"])
        .arg(&db)
        .arg("--from")
        .arg(&recovered)
        .assert()
        .code(0);

    // The application writes and is killed: its -wal and -shm stay beside the database.
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA wal_autocheckpoint=0; CREATE TABLE written_after(x);")
            .unwrap();
        for s in ["-wal", "-shm"] {
            std::fs::copy(side(&db, s), side(&db, &format!("{s}.keep"))).unwrap();
        }
        drop(conn);
        for s in ["-wal", "-shm"] {
            std::fs::rename(side(&db, &format!("{s}.keep")), side(&db, s)).unwrap();
        }
    }
    let written = fingerprint(&db);
    assert!(written.contains_key("-wal"));
    let files_before = every_file(root.path());
    let files_before_manifest = sha256_file(&incident.join("pre-restore").join("manifest.json"));

    let out = cmd().arg("undo").arg(&incident).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("changed since it was restored"), "{stderr}");
    assert_eq!(
        fingerprint(&db),
        written,
        "a refused undo changed the files"
    );
    assert_eq!(every_file(root.path()), files_before);

    let out = cmd()
        .args(["undo", "--json", "--force"])
        .arg(&incident)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = json(&out);
    assert_eq!(
        fingerprint(&db),
        originals,
        "the originals are back byte for byte"
    );
    let set_aside = PathBuf::from(report["set_aside_dir"].as_str().unwrap());
    assert!(set_aside.starts_with(&incident), "{set_aside:?}");
    assert_eq!(
        fingerprint(&set_aside.join("db.sqlite3")),
        written,
        "what the application wrote is kept"
    );
    // Nothing is gone: every file there was before is still somewhere under root, and
    // nothing else is (only the restore's manifest, which records the undo, was rewritten).
    let manifest = incident.join("pre-restore").join("manifest.json");
    let without = |mut files: BTreeMap<String, usize>, hash: &str| {
        if let Some(n) = files.get_mut(hash) {
            *n -= 1;
        }
        files.retain(|_, n| *n > 0);
        files
    };
    let manifest_then = files_before_manifest;
    assert_eq!(
        without(every_file(root.path()), &sha256_file(&manifest)),
        without(files_before, &manifest_then),
        "files were lost or made rather than moved"
    );

    // Undone: the same incident restores again.
    cmd()
        .args(["restore", "-q"])
        .arg(&db)
        .arg("--from")
        .arg(&recovered)
        .assert()
        .code(0);
    assert_eq!(sha256_file(&db), sha256_file(&recovered));
}

/// An original altered in the backup folder cannot be put back byte for byte: undo refuses
/// and changes nothing.
#[test]
fn undo_refuses_when_an_original_in_the_backup_was_altered() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    healthy_db(&db, 10);
    let incident = root.path().join("incident");
    assert_eq!(recover_into(&db, &incident).0, Some(0));
    cmd()
        .args(["restore", "-q"])
        .arg(&db)
        .arg("--from")
        .arg(incident.join("recovered.sqlite3"))
        .assert()
        .code(0);
    let original = incident.join("pre-restore").join("app.db");
    let mut bytes = std::fs::read(&original).unwrap();
    bytes.push(0);
    std::fs::write(&original, &bytes).unwrap();
    let files = every_file(root.path());
    let out = cmd().arg("undo").arg(&incident).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("not as restore left it"), "{stderr}");
    assert_eq!(every_file(root.path()), files);
}

// ---------------------------------------------------------------------------------------
// 6. Incident folders
// ---------------------------------------------------------------------------------------

/// Runs started together get folders of their own; the last line printed is the folder;
/// the `Next:` line, quoted for the shell, runs as printed from a folder with a space.
#[test]
fn incident_folders_are_unique_and_the_next_line_runs_as_printed() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("my app");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("it's.db");
    healthy_db(&db, 50);
    let guard = SourceGuard::new(&db);
    let children: Vec<std::process::Child> = (0..4)
        .map(|_| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("sqlite-rescue"))
                .args(["recover", "-q"])
                .arg(&db)
                .current_dir(&dir)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut folders = Vec::new();
    let mut next_lines = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let last = PathBuf::from(text.lines().last().unwrap());
        assert!(
            last.is_absolute() && last.join("report.json").is_file(),
            "{text}"
        );
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(last.join("report.json")).unwrap()).unwrap();
        assert_eq!(report["incident_dir"].as_str(), last.to_str());
        let next = text
            .lines()
            .find_map(|l| l.strip_prefix("Next: "))
            .unwrap()
            .to_string();
        assert!(!next.contains(" DB") && !next.contains("DIR"), "{next}");
        folders.push(last);
        next_lines.push(next);
    }
    folders.sort();
    folders.dedup();
    assert_eq!(folders.len(), 4, "two runs shared a folder: {folders:?}");
    guard.assert_unchanged();

    // `recover --json` gives the same path.
    let out = cmd()
        .args(["recover", "-q", "--json"])
        .arg(&db)
        .current_dir(&dir)
        .output()
        .unwrap();
    let report = json(&out);
    assert!(Path::new(report["incident_dir"].as_str().unwrap()).is_dir());

    // The Next: line, pasted into a shell elsewhere, restores.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&next_lines[0])
        .current_dir(root.path())
        .output()
        .unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}: {status:?}",
        next_lines[0]
    );

    // A dry run's Next: line names the database, quoted, too.
    let out = cmd()
        .args(["recover", "-q", "--dry-run"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let next = text.lines().find(|l| l.starts_with("Next: ")).unwrap();
    assert!(
        next.ends_with(&format!(
            "recover '{}'",
            db.display().to_string().replace('\'', r"'\''")
        )),
        "{next}"
    );
}

/// The runbook finds the incident folder from the command's own output, and reads a field
/// that cannot say 0 when rows were lost.
#[test]
fn the_runbook_uses_the_incident_path_and_missing_rows() {
    let runbook =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbook.md"))
            .unwrap();
    assert!(
        !runbook.contains("ls -d"),
        "the runbook still guesses the folder"
    );
    assert!(
        runbook.contains("tail -n 1"),
        "the runbook reads the last line"
    );
    let jq: Vec<&str> = runbook.lines().filter(|l| l.starts_with("jq ")).collect();
    assert!(
        jq.iter().any(|l| l.contains("missing_rows")),
        "no jq step reads missing_rows: {jq:?}"
    );
    assert!(
        runbook.contains("sqlite-rescue undo"),
        "the runbook undoes with undo"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Interrupts say what is left
// ---------------------------------------------------------------------------------------

/// SIGINT once the snapshot is complete: exit 4, and the one line says the snapshot is kept
/// (whole, with its manifest) and where; nothing else is in the incident folder, and no
/// partial file is anywhere.
#[test]
fn an_interrupt_after_the_snapshot_says_the_snapshot_is_kept() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("app.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 300000)
             INSERT INTO t SELECT x, printf('name-%07d', (x * 7919) % 1000003), x * 0.5 FROM c;
             CREATE INDEX t_name ON t(name);",
        )
        .unwrap();
    let incident = root.path().join("incident");
    let err_path = root.path().join("stderr");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("sqlite-rescue"))
        .args(["recover", "-q", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let manifest = incident.join("snapshot").join("manifest.json");
    let start = std::time::Instant::now();
    while !manifest.exists() && child.try_wait().unwrap().is_none() {
        assert!(start.elapsed().as_secs() < 60, "no snapshot after a minute");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    if child.try_wait().unwrap().is_some() {
        eprintln!("skipped: the recovery ended before the signal could be sent");
        return;
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) takes plain integers; the pid is our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    if status.code() == Some(0) {
        eprintln!("skipped: the recovery finished before it saw the signal");
        return;
    }
    assert_eq!(status.code(), Some(4), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the snapshot, complete with its manifest, is kept in {}",
            incident.join("snapshot").display()
        )),
        "{stderr}"
    );
    let names: Vec<String> = std::fs::read_dir(&incident)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["snapshot"], "{stderr}");
    let partial: Vec<PathBuf> = tree(root.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");
    assert_eq!(
        sha256_file(&incident.join("snapshot").join("app.db")),
        sha256_file(&db)
    );
}
