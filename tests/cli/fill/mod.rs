//! `recover --fill-from BACKUP` and `lost --fill-from`: the rows a recovery lost, put back
//! from an older copy, against the `backup-behind` sample's truth (corrupt-samples/README.md).

use crate::common::{cmd, query_rows, sha256_file, SourceGuard};
use corrupt_samples::{Key, Sample};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The sample, copied: the damaged database and its backup side by side.
struct Scene {
    work: tempfile::TempDir,
    sample: Sample,
    db: PathBuf,
    backup: PathBuf,
    /// backup.json: what changed between the backup and the damage.
    since: serde_json::Value,
}

fn scene() -> Scene {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corrupt-samples/backup-behind");
    let sample = corrupt_samples::load_sample(&root).unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = sample.copy_to(&work.path().join("src")).unwrap();
    let backup = work.path().join("backups/nightly.sqlite3");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    std::fs::copy(root.join("backup.sqlite3"), &backup).unwrap();
    let since =
        serde_json::from_str(&std::fs::read_to_string(root.join("backup.json")).unwrap()).unwrap();
    Scene {
        work,
        sample,
        db,
        backup,
        since,
    }
}

impl Scene {
    /// `recover --json --fill-from` into a new incident folder, proving the database and
    /// every backup untouched; returns the exit code, the report and the recovered file.
    fn recover(&self, backups: &[&Path]) -> (i32, serde_json::Value, PathBuf) {
        let incident = self.work.path().join(format!("incident-{}", backups.len()));
        let mut c = cmd();
        c.args(["recover", "--quiet", "--json", "--incident-dir"])
            .arg(&incident)
            .arg(&self.db);
        for b in backups {
            c.arg("--fill-from").arg(b);
        }
        let (out, code) = self.guarded(backups, c);
        let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
        (code, report, incident.join("recovered.sqlite3"))
    }

    /// Runs `c`, checking that the database and `backups` (with their sidecars) kept their
    /// bytes, sizes, mtimes and modes; returns stdout and the exit code.
    fn guarded(&self, backups: &[&Path], mut c: assert_cmd::Command) -> (Vec<u8>, i32) {
        let guards: Vec<SourceGuard> = std::iter::once(self.db.as_path())
            .chain(backups.iter().copied())
            .map(SourceGuard::new)
            .collect();
        let hashes: Vec<String> = backups.iter().map(|b| sha256_file(b)).collect();
        let out = c.output().unwrap();
        for g in &guards {
            g.assert_unchanged();
        }
        let after: Vec<String> = backups.iter().map(|b| sha256_file(b)).collect();
        assert_eq!(hashes, after, "a backup changed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        (out.stdout, out.status.code().unwrap())
    }

    /// The rowids `backup.json` lists under `what` for `table`.
    fn since(&self, what: &str, table: &str) -> BTreeSet<i64> {
        self.since[what][table]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_i64().unwrap()).collect())
            .unwrap_or_default()
    }

    fn destroyed(&self, table: &str) -> BTreeSet<i64> {
        self.sample.expected.tables[table]
            .destroyed_keys
            .iter()
            .map(|k| match k {
                Key::Rowid(r) => *r,
                Key::Text(t) => panic!("not a rowid: {t}"),
            })
            .collect()
    }
}

fn open_ro(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn rowids(path: &Path, table: &str) -> BTreeSet<i64> {
    query_rows(&open_ro(path), &format!("SELECT rowid FROM {table}"))
        .into_iter()
        .map(|r| match r[0] {
            Value::Integer(i) => i,
            ref other => panic!("rowid {other:?}"),
        })
        .collect()
}

/// Every row of `table`, by rowid, with the columns named.
fn rows(path: &Path, table: &str, columns: &str) -> BTreeMap<i64, Vec<Value>> {
    query_rows(
        &open_ro(path),
        &format!("SELECT rowid, {columns} FROM {table}"),
    )
    .into_iter()
    .map(|mut r| {
        let Value::Integer(id) = r.remove(0) else {
            panic!("rowid")
        };
        (id, r)
    })
    .collect()
}

fn fill_of<'r>(report: &'r serde_json::Value, table: &str) -> &'r serde_json::Value {
    report["fill"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("no fill entry for {table}"))
}

const TABLES: [(&str, &str); 2] = [
    ("account", "username, email, balance"),
    ("note", "account_id, body"),
];

#[test]
fn every_lost_row_that_existed_at_backup_time_is_filled_and_recorded() {
    let s = scene();
    let (code, report, recovered) = s.recover(&[&s.backup]);
    // Filled rows are as they were at backup time: the recovery still reports rows lost.
    assert_eq!(code, 1);
    for field in [
        "filled_table",
        "collisions_table",
        "backups",
        "tables",
        "schema_differences",
        "filled_rows",
        "collided_rows",
        "deleted_since_rows",
    ] {
        assert!(report["fill"].get(field).is_some(), "fill lacks {field}");
    }
    for field in [
        "path",
        "sha256",
        "date",
        "date_from",
        "mtime",
        "filled_rows",
    ] {
        assert!(
            report["fill"]["backups"][0].get(field).is_some(),
            "backups[] lacks {field}"
        );
    }
    let sha = sha256_file(&s.backup);
    assert_eq!(report["fill"]["backups"][0]["sha256"], sha);
    let date = report["fill"]["backups"][0]["date"]
        .as_str()
        .unwrap()
        .to_string();
    let recorded: BTreeSet<(String, i64, String, String, String)> = query_rows(
        &open_ro(&recovered),
        "SELECT table_name, row_id, backup, backup_sha256, backup_date FROM rescue_filled",
    )
    .into_iter()
    .map(|r| match r.as_slice() {
        [Value::Text(t), Value::Integer(id), Value::Text(b), Value::Text(h), Value::Text(d)] => {
            (t.clone(), *id, b.clone(), h.clone(), d.clone())
        }
        other => panic!("{other:?}"),
    })
    .collect();
    let mut expected_records = BTreeSet::new();
    for (table, columns) in TABLES {
        let at_backup = rowids(&s.backup, table);
        let want: BTreeSet<i64> = s
            .destroyed(table)
            .intersection(&at_backup)
            .copied()
            .collect();
        assert!(
            !want.is_empty(),
            "{table}: the sample lost no row the backup has"
        );
        let backup_rows = rows(&s.backup, table, columns);
        let now = rows(&recovered, table, columns);
        for id in &want {
            assert_eq!(now.get(id), backup_rows.get(id), "{table} rowid {id}");
            expected_records.insert((
                table.to_string(),
                *id,
                s.backup.display().to_string(),
                sha.clone(),
                date.clone(),
            ));
        }
        assert_eq!(
            fill_of(&report, table)["filled"],
            want.len() as u64,
            "{table}"
        );
    }
    assert_eq!(recorded, expected_records);
    // A column added since the backup takes its default, and the difference is reported.
    let plans = rows(&recovered, "account", "plan");
    for id in s
        .destroyed("account")
        .intersection(&rowids(&s.backup, "account"))
    {
        assert_eq!(plans[id], vec![Value::Text("free".into())], "rowid {id}");
    }
    let diffs = report["fill"]["schema_differences"].as_array().unwrap();
    assert!(
        diffs.iter().any(|d| d["kind"] == "column_not_in_backup"
            && d["table"] == "account"
            && d["column"] == "plan"),
        "{diffs:?}"
    );
    let integrity: String = open_ro(&recovered)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

#[test]
fn rows_created_after_the_backup_stay_listed_as_lost() {
    let s = scene();
    let (_, report, recovered) = s.recover(&[&s.backup]);
    let created = s.since("rows_created_since", "account");
    let lost_new: BTreeSet<i64> = s
        .destroyed("account")
        .intersection(&created)
        .copied()
        .collect();
    assert!(
        !lost_new.is_empty(),
        "the sample lost no account created since"
    );
    let now = rowids(&recovered, "account");
    assert!(
        lost_new.is_disjoint(&now),
        "a row the backup never had came back"
    );
    let still: BTreeSet<i64> = fill_of(&report, "account")["still_lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rowid"].as_i64().unwrap())
        .collect();
    assert_eq!(still, lost_new);
    // Listed with the username the surviving index holds.
    let first = &fill_of(&report, "account")["still_lost"][0];
    let id = first["rowid"].as_i64().unwrap();
    assert_eq!(first["values"][0], format!("user{id:05}"));
    assert_eq!(
        fill_of(&report, "account")["still_lost_columns"][0],
        "username"
    );
}

#[test]
fn rows_deleted_after_the_backup_are_not_resurrected() {
    let s = scene();
    let (_, report, recovered) = s.recover(&[&s.backup]);
    for (table, _) in TABLES {
        let deleted = s.since("rows_deleted_since", table);
        assert!(!deleted.is_empty());
        let now = rowids(&recovered, table);
        let back: Vec<&i64> = deleted.intersection(&now).collect();
        assert!(back.is_empty(), "{table}: deleted rows came back: {back:?}");
        assert_eq!(
            fill_of(&report, table)["deleted_since"],
            deleted.len() as u64,
            "{table}"
        );
    }
    // One of them lay inside a lost range: the surviving index shows it was gone.
    let lost_range_deleted = s
        .since("rows_deleted_since", "account")
        .into_iter()
        .any(|id| {
            report["tables"][0]["lost"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| {
                    r["first_rowid"].as_i64() < Some(id) && Some(id) < r["last_rowid"].as_i64()
                })
        });
    assert!(
        lost_range_deleted,
        "the sample has no deletion inside a lost range"
    );
}

#[test]
fn surviving_rows_are_untouched_where_the_backup_holds_older_values() {
    let s = scene();
    let (_, report, recovered) = s.recover(&[&s.backup]);
    let truth = s.sample.truth.clone().unwrap();
    let columns = "username, email, balance, plan";
    let truth_rows = rows(&truth, "account", columns);
    let now = rows(&recovered, "account", columns);
    let backup_rows = rows(&s.backup, "account", "username, email, balance");
    let lost = s.destroyed("account");
    let mut checked = 0;
    for id in s.since("rows_updated_since", "account") {
        // Lost, or deleted since: not a surviving row.
        let Some(want) = truth_rows.get(&id).filter(|_| !lost.contains(&id)) else {
            continue;
        };
        assert_eq!(&now[&id], want, "surviving rowid {id} changed");
        assert_ne!(
            now[&id][2], backup_rows[&id][2],
            "rowid {id}: the backup is not older"
        );
        checked += 1;
    }
    assert!(checked > 10);
    // Every surviving row is exactly as the damaged database held it.
    for (id, row) in &truth_rows {
        if !lost.contains(id) {
            assert_eq!(&now[id], row, "rowid {id}");
        }
    }
    assert_eq!(report["fill"]["collided_rows"], 0);
}

#[test]
fn a_backup_row_that_collides_with_a_surviving_row_is_kept_aside_not_written_over() {
    let s = scene();
    // In this backup a lost account held the username a surviving account holds now (the
    // name changed hands since): it cannot go in without taking the survivor's place.
    let odd = s.work.path().join("backups/odd.sqlite3");
    std::fs::copy(&s.backup, &odd).unwrap();
    let lost_first = *s.destroyed("account").iter().next().unwrap();
    {
        let c = Connection::open(&odd).unwrap();
        c.execute_batch("UPDATE account SET username = 'renamed' WHERE id = 1")
            .unwrap();
        c.execute(
            "UPDATE account SET username = 'user00001' WHERE id = ?1",
            [lost_first],
        )
        .unwrap();
    }
    let (_, report, recovered) = s.recover(&[&odd]);
    let now = rows(&recovered, "account", "username, email");
    assert_eq!(
        now[&1],
        vec![
            Value::Text("user00001".into()),
            Value::Text("user00001@example.com".into())
        ]
    );
    assert!(!now.contains_key(&lost_first));
    assert_eq!(fill_of(&report, "account")["collided"], 1);
    let kept = query_rows(
        &open_ro(&recovered),
        "SELECT table_name, row_id, reason, json_extract(row, '$.username') FROM rescue_fill_collisions",
    );
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0][0], Value::Text("account".into()));
    assert_eq!(kept[0][1], Value::Integer(lost_first));
    assert_eq!(kept[0][3], Value::Text("user00001".into()));
    let Value::Text(reason) = &kept[0][2] else {
        panic!("{kept:?}")
    };
    assert!(reason.contains("UNIQUE"), "{reason}");
    // Everything else lost that the backup has is filled all the same.
    let want = s
        .destroyed("account")
        .intersection(&rowids(&odd, "account"))
        .count();
    assert_eq!(fill_of(&report, "account")["filled"], want as u64 - 1);
}

#[test]
fn the_newest_backup_wins() {
    let s = scene();
    let older = s.work.path().join("backups/older.sqlite3");
    std::fs::copy(&s.backup, &older).unwrap();
    {
        let c = Connection::open(&older).unwrap();
        c.execute("UPDATE account SET email = 'older@example.com'", [])
            .unwrap();
    }
    let day = std::time::Duration::from_secs(86_400);
    let now = std::time::SystemTime::now();
    let set = |p: &Path, t| {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    set(&older, now - 2 * day);
    set(&s.backup, now - day);
    let (_, report, recovered) = s.recover(&[&older, &s.backup]);
    let backups = report["fill"]["backups"].as_array().unwrap();
    assert_eq!(backups[0]["path"], s.backup.display().to_string());
    assert_eq!(backups[0]["date_from"], "mtime");
    assert_eq!(backups[1]["filled_rows"], 0, "{backups:?}");
    let id = *s.destroyed("account").iter().next().unwrap();
    let email = rows(&recovered, "account", "email");
    assert_eq!(
        email[&id],
        vec![Value::Text(format!("user{id:05}@example.com"))]
    );
}

#[test]
fn a_backup_of_a_different_database_is_refused() {
    let s = scene();
    let other = s.work.path().join("backups/other.sqlite3");
    {
        let c = Connection::open(&other).unwrap();
        c.execute_batch("CREATE TABLE invoice(id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoice VALUES (1, 2.5);")
            .unwrap();
    }
    let incident = s.work.path().join("refused");
    let mut c = cmd();
    c.args(["recover", "--quiet", "--incident-dir"])
        .arg(&incident)
        .arg(&s.db)
        .arg("--fill-from")
        .arg(&other);
    let guards = [SourceGuard::new(&s.db), SourceGuard::new(&other)];
    let out = c.output().unwrap();
    for g in &guards {
        g.assert_unchanged();
    }
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no table in common"), "{stderr}");
    assert!(stderr.contains("other.sqlite3"), "{stderr}");
    assert!(
        !incident.exists(),
        "nothing is created for a refused backup"
    );
    // `lost` refuses it the same way.
    let out = cmd()
        .args(["lost", "--quiet"])
        .arg(&s.db)
        .arg("--fill-from")
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn dry_run_says_what_would_be_filled_and_writes_nothing() {
    let s = scene();
    let mut c = cmd();
    c.args(["recover", "--dry-run", "--quiet"])
        .arg(&s.db)
        .arg("--fill-from")
        .arg(&s.backup);
    let before = crate::common::tree(s.work.path());
    let (out, code) = s.guarded(&[&s.backup], c);
    assert_eq!(code, 1);
    assert_eq!(
        crate::common::tree(s.work.path()),
        before,
        "a dry run wrote files"
    );
    let text = String::from_utf8_lossy(&out);
    let want = s
        .destroyed("account")
        .intersection(&rowids(&s.backup, "account"))
        .count();
    assert!(
        text.contains(&format!("{want} would be filled from the backup as of")),
        "{text}"
    );
    assert!(text.contains("would fill from backups"), "{text}");
    assert!(text.contains("still lost: rowid"), "{text}");
}

#[test]
fn lost_names_what_a_backup_can_fill() {
    let s = scene();
    let mut c = cmd();
    c.args(["lost", "--quiet", "--json"])
        .arg(&s.db)
        .arg("--fill-from")
        .arg(&s.backup);
    let (out, code) = s.guarded(&[&s.backup], c);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    for (table, _) in TABLES {
        let want = s
            .destroyed(table)
            .intersection(&rowids(&s.backup, table))
            .count();
        assert_eq!(fill_of(&report, table)["filled"], want as u64, "{table}");
    }
    assert!(report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["table"] == "account"));
}

mod fixtures;
