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

mod guards;

/// `recover` has SQLite count a snapshot's rows through its `-wal` (SQLite's own reading, as
/// the application's). The snapshot's files are linked, not copied, for that count: they keep
/// their hashes, and nothing is left in the incident folder but what the run writes.
#[test]
fn counting_a_wal_snapshot_leaves_the_snapshot_as_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let db = wal_db(dir.path());
    let guard = SourceGuard::new(&db);
    let incident = dir.path().join("incident");
    let out = cmd()
        .args(["recover", "-q", "--json", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    guard.assert_unchanged();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let table = &report["tables"][0];
    assert_eq!(
        table["source_rows"], 300,
        "the rows only the -wal holds count"
    );
    assert_eq!(table["source_counted_by"], "sqlite", "{table}");
    for file in report["snapshot"]["files"].as_array().unwrap() {
        let name = file["name"].as_str().unwrap();
        assert_eq!(
            sha256_file(&incident.join("snapshot").join(name)),
            file["sha256"].as_str().unwrap(),
            "{name} changed after its hash was taken"
        );
    }
    let mut left: Vec<String> = std::fs::read_dir(&incident)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["recovered.sqlite3", "report.json", "snapshot"]);
    let timings = &report["timings"];
    for step in ["snapshot", "recovery", "counts", "total"] {
        assert!(
            timings[step].as_f64().is_some_and(|s| s >= 0.0),
            "{step}: {timings}"
        );
    }
    assert!(timings["total"].as_f64() >= timings["recovery"].as_f64());
    let text = cmd().arg("report").arg(&incident).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("time: ") && l.contains("of which the proof")),
        "{text}"
    );
}
