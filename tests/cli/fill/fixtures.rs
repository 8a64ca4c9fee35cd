//! `--fill-from` on fixtures built here (and on other samples): lost rows matched by the
//! values a UNIQUE index holds, a WAL-mode backup, a WITHOUT ROWID table.

use super::{fill_of, open_ro, rows, Scene};
use crate::common::{cmd, query_rows, SourceGuard};
use corrupt_samples::Key;
use rusqlite::types::Value;
use rusqlite::Connection;
use std::collections::BTreeSet;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// A table without INTEGER PRIMARY KEY whose backup numbers its rows otherwise (as after a
/// VACUUM): the lost rows are found in the backup by the username the surviving UNIQUE
/// index still holds, and filled under their own rowids.
#[test]
fn lost_rows_under_other_rowids_are_matched_by_their_indexed_values() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("app.db");
    let backup = work.path().join("app.backup.db");
    let build = |path: &Path, shift: i64| {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "PRAGMA page_size = 1024; CREATE TABLE member(username TEXT UNIQUE, bio TEXT);",
        )
        .unwrap();
        for i in 1..=300i64 {
            c.execute(
                "INSERT INTO member(rowid, username, bio) VALUES (?1, ?2, ?3)",
                rusqlite::params![i + shift, format!("m{i:04}"), "x".repeat(40)],
            )
            .unwrap();
        }
        // An application trigger: a filled row is not a new write and must not fire it.
        c.execute_batch(
            "CREATE TABLE audit(who TEXT);
             CREATE TRIGGER member_added AFTER INSERT ON member
             BEGIN INSERT INTO audit VALUES (new.username); END;",
        )
        .unwrap();
    };
    build(&db, 0);
    build(&backup, 5000);
    let layout = corrupt_samples::read_layout(&db).unwrap();
    let leaves: Vec<u32> = layout.btree("member").leaves().map(|p| p.pageno).collect();
    let leaf = leaves[leaves.len() / 2];
    let lost: Vec<i64> = layout
        .btree("member")
        .keys_on_page(leaf)
        .into_iter()
        .map(|k| match k {
            Key::Rowid(r) => r,
            Key::Text(t) => panic!("{t}"),
        })
        .collect();
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.seek(SeekFrom::Start(u64::from(leaf - 1) * 1024)).unwrap();
    f.write_all(&[0u8; 1024]).unwrap();
    drop(f);
    let incident = work.path().join("incident");
    let guards = [SourceGuard::new(&db), SourceGuard::new(&backup)];
    let out = cmd()
        .args(["recover", "--quiet", "--json", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .arg("--fill-from")
        .arg(&backup)
        .output()
        .unwrap();
    for g in &guards {
        g.assert_unchanged();
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let member = fill_of(&report, "member");
    assert_eq!(
        member["matched_by"]["indexed_values"],
        lost.len() as u64,
        "{member}"
    );
    assert_eq!(member["deleted_since"], 0, "{member}");
    assert_eq!(member["elsewhere"], 300 - lost.len() as u64, "{member}");
    let now = rows(&incident.join("recovered.sqlite3"), "member", "username");
    for id in &lost {
        assert_eq!(now[id], vec![Value::Text(format!("m{id:04}"))]);
    }
    let recovered = open_ro(&incident.join("recovered.sqlite3"));
    assert_eq!(
        query_rows(&recovered, "SELECT * FROM audit"),
        Vec::<Vec<Value>>::new()
    );
    let triggers = query_rows(
        &recovered,
        "SELECT name FROM sqlite_schema WHERE type = 'trigger'",
    );
    assert_eq!(triggers, vec![vec![Value::Text("member_added".into())]]);
}

/// A backup in WAL mode, its last transaction only in its `-wal`: read through the WAL from
/// a private copy, and neither it nor its `-wal` and `-shm` touched (a checkpoint would have
/// changed all three). Its date is the newest timestamp in it, not the file's mtime.
#[test]
fn a_wal_mode_backup_is_read_through_its_wal_and_left_as_it_was() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corrupt-samples");
    let damaged = corrupt_samples::load_sample(&root.join("leaf-zeroed")).unwrap();
    let replica = corrupt_samples::load_sample(&root.join("wal-uncheckpointed")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = damaged.copy_to(&work.path().join("src")).unwrap();
    let backup = replica.copy_to(&work.path().join("replica")).unwrap();
    let s = Scene {
        since: serde_json::Value::Null,
        db,
        backup,
        sample: damaged,
        work,
    };
    let (_, report, recovered) = s.recover(&[&s.backup]);
    let lost = s.destroyed("monitor_check");
    assert_eq!(
        fill_of(&report, "monitor_check")["filled"],
        lost.len() as u64
    );
    let b = &report["fill"]["backups"][0];
    assert_eq!(b["date_from"], "newest_timestamp", "{b}");
    assert!(b["date"].as_str() < b["mtime"].as_str(), "{b}");
    // The rows are the replica's as SQLite reads it, its -wal applied: its truth.
    let truth = rows(replica.truth.as_ref().unwrap(), "monitor_check", "*");
    let now = rows(&recovered, "monitor_check", "*");
    for id in &lost {
        assert_eq!(now[id], truth[id], "rowid {id}");
    }
    // One of them the replica's last transaction changed: only its -wal holds that value.
    let before = rows(s.sample.truth.as_ref().unwrap(), "monitor_check", "*");
    assert!(lost.iter().any(|id| before[id] != truth[id]));
}

/// A WITHOUT ROWID table: the lost page's keys lie between the divider keys its parent
/// holds, so backup rows with keys there are filled (recorded by key), and backup rows
/// outside it that the damaged database lacks were deleted since.
#[test]
fn without_rowid_rows_are_filled_by_the_key_range_their_page_held() {
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("kv.db");
    let backup = work.path().join("kv.backup.db");
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA page_size = 1024;
             CREATE TABLE kv(k TEXT PRIMARY KEY COLLATE NOCASE, v TEXT) WITHOUT ROWID;",
        )
        .unwrap();
        for i in 1..=400 {
            c.execute(
                "INSERT INTO kv VALUES (?1, ?2)",
                rusqlite::params![format!("Key{i:04}"), format!("{i}").repeat(12)],
            )
            .unwrap();
        }
    }
    std::fs::copy(&db, &backup).unwrap();
    let text_keys = |page: u32, layout: &corrupt_samples::Layout| -> Vec<String> {
        layout
            .btree("kv")
            .keys_on_page(page)
            .into_iter()
            .map(|k| match k {
                Key::Text(t) => t,
                Key::Rowid(r) => panic!("{r}"),
            })
            .collect()
    };
    // Since the backup: two keys far from the page to be lost deleted, values updated.
    {
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "DELETE FROM kv WHERE k IN ('key0003', 'key0398');
             UPDATE kv SET v = 'newer' WHERE k = 'key0001';",
        )
        .unwrap();
    }
    let layout = corrupt_samples::read_layout(&db).unwrap();
    let leaves: Vec<u32> = layout.btree("kv").leaves().map(|p| p.pageno).collect();
    let leaf = leaves[leaves.len() / 2];
    let lost = text_keys(leaf, &layout);
    assert!(lost.len() > 3);
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.seek(SeekFrom::Start(u64::from(leaf - 1) * 1024)).unwrap();
    f.write_all(&[0u8; 1024]).unwrap();
    drop(f);
    let incident = work.path().join("incident");
    let guards = [SourceGuard::new(&db), SourceGuard::new(&backup)];
    let out = cmd()
        .args(["recover", "--quiet", "--json", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .arg("--fill-from")
        .arg(&backup)
        .output()
        .unwrap();
    for g in &guards {
        g.assert_unchanged();
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kv = fill_of(&report, "kv");
    assert_eq!(kv["filled"], lost.len() as u64, "{kv}");
    assert_eq!(kv["matched_by"]["range"], lost.len() as u64, "{kv}");
    assert_eq!(kv["deleted_since"], 2, "{kv}");
    let recovered = open_ro(&incident.join("recovered.sqlite3"));
    let keys: BTreeSet<String> = query_rows(&recovered, "SELECT k FROM kv")
        .into_iter()
        .map(|r| match &r[0] {
            Value::Text(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(keys.len(), 398);
    assert!(!keys.contains("Key0003") && !keys.contains("Key0398"));
    let v: String = recovered
        .query_row("SELECT v FROM kv WHERE k = 'key0001'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, "newer", "a surviving row was overwritten");
    let recorded: BTreeSet<String> = query_rows(
        &recovered,
        "SELECT key FROM rescue_filled WHERE table_name = 'kv' AND row_id IS NULL",
    )
    .into_iter()
    .map(|r| match &r[0] {
        Value::Text(t) => t.clone(),
        other => panic!("{other:?}"),
    })
    .collect();
    let want: BTreeSet<String> = lost.iter().map(|k| format!("[\"{k}\"]")).collect();
    assert_eq!(recorded, want);
}
