//! "Likely cause": each signature's sample names its cause with the evidence behind it, the
//! control names no WAL-reset race, and a healthy database names no cause at all.

use crate::common::{cmd, SourceGuard};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corrupt-samples")
        .join(name)
        .join("db.sqlite3")
}

/// `check --json` on a private copy of a sample (a WAL-mode sample must never be opened in
/// place), with the copy's files hashed before and after.
fn causes_of(name: &str) -> Vec<Value> {
    causes_from(name, &["check"])
}

/// The causes `args` (a command and its flags) name for a private copy of sample `name`.
fn causes_from(name: &str, args: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    std::fs::copy(sample(name), &db).unwrap();
    let guard = SourceGuard::new(&db);
    let out = cmd()
        .args(args)
        .arg(&db)
        .arg("--json")
        .current_dir(dir.path())
        .output()
        .unwrap();
    guard.assert_unchanged();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["causes"].as_array().cloned().unwrap_or_default()
}

fn ids(causes: &[Value]) -> Vec<&str> {
    causes.iter().filter_map(|c| c["id"].as_str()).collect()
}

fn evidence(cause: &Value) -> String {
    cause["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_wal_reset_race_is_named_with_the_version_and_the_structure_damage() {
    let causes = causes_of("wal-reset-race");
    assert_eq!(ids(&causes)[0], "wal-reset-race", "{causes:?}");
    assert_eq!(causes[0]["likelihood"], "likely");
    let ev = evidence(&causes[0]);
    assert!(ev.contains("WAL mode"), "{ev}");
    assert!(ev.contains("3.40.1"), "{ev}");
    assert!(ev.contains("2nd reference to page"), "{ev}");
    let prevention = causes[0]["prevention"].as_str().unwrap();
    assert!(prevention.contains("3.51.3") && prevention.contains("mmap_size"));
}

#[test]
fn the_same_damage_written_by_a_fixed_sqlite_names_no_race() {
    let causes = causes_of("wal-reset-race-fixed");
    assert!(!ids(&causes).contains(&"wal-reset-race"), "{causes:?}");
    assert!(!causes.is_empty(), "damage is never left without a word");
}

#[test]
fn truncation_is_named_from_the_page_count() {
    let causes = causes_of("truncated");
    assert_eq!(ids(&causes), vec!["truncation"]);
    assert!(evidence(&causes[0]).contains("pages"));
}

#[test]
fn zeroed_pages_point_to_lost_writes() {
    let causes = causes_of("leaf-zeroed");
    assert_eq!(ids(&causes), vec!["lost-writes"]);
    assert_eq!(causes[0]["likelihood"], "possible");
    assert!(evidence(&causes[0]).contains("only zeros"));
}

#[test]
fn pages_past_the_end_of_a_wal_database_without_its_wal_name_the_missing_wal() {
    let causes = causes_of("wal-missing");
    assert_eq!(ids(&causes)[0], "separated-sidecar", "{causes:?}");
    assert!(evidence(&causes[0]).contains("past the end"));
}

#[test]
fn healthy_databases_name_no_cause() {
    for name in ["healthy-rollback", "healthy-wal"] {
        assert!(causes_of(name).is_empty(), "{name}");
    }
}

#[test]
fn no_cause_is_stated_as_certain_and_each_names_its_evidence() {
    for name in [
        "wal-reset-race",
        "wal-reset-race-fixed",
        "truncated",
        "leaf-zeroed",
        "wal-missing",
        "duplicate-child-pointer",
        "stray-page",
    ] {
        for c in causes_of(name) {
            let summary = c["summary"].as_str().unwrap();
            assert!(
                summary.starts_with("consistent with") || c["id"] == "unrecognised",
                "{name}: {summary}"
            );
            assert!(!evidence(&c).is_empty(), "{name}");
        }
    }
}

#[test]
fn recover_names_the_same_causes_from_its_own_walk() {
    let recover = |name| causes_from(name, &["recover", "--dry-run", "-q"]);
    let race = recover("wal-reset-race");
    assert_eq!(ids(&race)[0], "wal-reset-race", "{race:?}");
    assert!(evidence(&race[0]).contains("walk: page"), "{race:?}");
    assert!(!ids(&recover("wal-reset-race-fixed")).contains(&"wal-reset-race"));
    assert_eq!(ids(&recover("wal-missing"))[0], "separated-sidecar");
    assert_eq!(ids(&recover("truncated")), vec!["truncation"]);
    assert_eq!(ids(&recover("leaf-zeroed")), vec!["lost-writes"]);
    for name in ["healthy-rollback", "healthy-wal"] {
        assert!(recover(name).is_empty(), "{name}");
    }
}
