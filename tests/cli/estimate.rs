//! Before a long run: `check` and `recover --dry-run` state the time and free disk a recovery
//! needs, and `recover` refuses early (exit 5, one line) when the disk has no room. Free space
//! is faked with `SQLITE_RESCUE_TEST_FREE_BYTES`, read where the tool asks the file system.

use crate::common::{cmd, tree, SourceGuard};
use std::path::{Path, PathBuf};

fn sample(name: &str, work: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    corrupt_samples::load_sample(&root.join("corrupt-samples").join(name))
        .unwrap()
        .copy_to(&work.join(name))
        .unwrap()
}

fn json_of(args: &[&str], db: &Path, free: Option<&str>) -> (Option<i32>, String, String) {
    let mut c = cmd();
    c.args(args).arg(db);
    if let Some(f) = free {
        c.env("SQLITE_RESCUE_TEST_FREE_BYTES", f);
    }
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_and_the_rehearsal_state_time_and_disk() {
    let work = tempfile::tempdir().unwrap();
    let db = sample("leaf-zeroed", work.path());
    let guard = SourceGuard::new(&db);
    let (code, out, _) = json_of(&["check", "--json"], &db, None);
    assert_eq!(code, Some(1));
    let check: serde_json::Value = serde_json::from_str(&out).unwrap();
    let e = &check["recovery_estimate"];
    assert_eq!(e["pages"], 243);
    // The snapshot (the file) plus the recovered file, at most as large, plus a tenth.
    assert_eq!(e["disk_bytes"], 248_832 * 2 + 24_883);
    assert!(e["indexes"].as_u64().unwrap() > 0);
    assert!(e["seconds_min"].as_u64() <= e["seconds"].as_u64());
    let (_, text, _) = json_of(&["check"], &db, None);
    assert!(
        text.contains("A recovery should take about 1 s") && text.contains("523 kB free disk"),
        "{text}"
    );
    let (code, text, _) = json_of(&["recover", "--dry-run", "-q"], &db, None);
    assert_eq!(code, Some(1));
    assert!(
        text.contains("The recovery itself should take about"),
        "{text}"
    );
    guard.assert_unchanged();
}

#[test]
fn recover_refuses_early_when_the_disk_has_no_room() {
    let work = tempfile::tempdir().unwrap();
    let db = sample("leaf-zeroed", work.path());
    let guard = SourceGuard::new(&db);
    let before = tree(work.path());
    let incident = work.path().join("incident");
    for args in [
        vec!["recover", "--incident-dir", incident.to_str().unwrap()],
        vec!["recover", "--dry-run"],
    ] {
        let mut c = cmd();
        let out = c
            .args(&args)
            .arg(&db)
            .env("SQLITE_RESCUE_TEST_FREE_BYTES", "100000")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(5), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains("not enough free disk")
                && err.contains("about 523 kB there and 100 kB is free"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    assert!(!incident.exists(), "nothing was written");
    assert_eq!(tree(work.path()), before, "nothing was written");
    // With room enough, the same run goes ahead.
    let out = cmd()
        .args(["recover", "-q", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .env("SQLITE_RESCUE_TEST_FREE_BYTES", "600000")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(incident.join("recovered.sqlite3").exists());
    guard.assert_unchanged();
}
