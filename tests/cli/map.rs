//! The damage map: valid XML, one cell per page, and every page's status the one report.json
//! gives it (the engine's page map, built from its claims ledger).

use crate::common::{cmd, SourceGuard};
use corrupt_samples::Sample;
use sqlite_rescue::engine::pages::MapStatus;
use sqlite_rescue::engine::PageMapSnapshot;
use std::collections::BTreeMap;
use std::path::Path;

fn committed(name: &str) -> Sample {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    corrupt_samples::load_sample(&root.join("corrupt-samples").join(name)).unwrap()
}

/// Page number → (status, owner name) as the map draws it.
type Drawn = BTreeMap<u32, (String, Option<String>)>;

/// The map's cells: every `data-page` cell, with its status and the owner its hover names.
fn drawn(svg: &str) -> Drawn {
    let doc = roxmltree::Document::parse(svg).expect("the map is well-formed XML");
    let mut out = BTreeMap::new();
    for n in doc.descendants().filter(|n| n.has_attribute("data-page")) {
        let page: u32 = n.attribute("data-page").unwrap().parse().unwrap();
        let status = n.attribute("data-status").expect("every cell has a status");
        let hover = n
            .children()
            .find(|c| c.has_tag_name("title"))
            .and_then(|t| t.text())
            .unwrap_or_default();
        let owner = hover.rsplit_once("; ").map(|(_, o)| o.to_string());
        let owner = owner.filter(|o| o != "no owner");
        assert!(
            out.insert(page, (status.to_string(), owner)).is_none(),
            "page {page} drawn twice"
        );
    }
    out
}

/// The report's page map, page by page, from the JSON `recover --json` printed.
fn reported(report: &serde_json::Value) -> Drawn {
    let map = &report["engine"]["page_map"];
    let owners: Vec<&str> = map["owners"]
        .as_array()
        .expect("page_map.owners")
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    let mut out = BTreeMap::new();
    for run in map["runs"].as_array().expect("page_map.runs") {
        let owner = run["owner"]
            .as_u64()
            .map(|o| owners[o as usize].to_string());
        let status = run["status"].as_str().unwrap().to_string();
        for p in run["first"].as_u64().unwrap()..=run["last"].as_u64().unwrap() {
            out.insert(p as u32, (status.clone(), owner.clone()));
        }
    }
    out
}

/// Runs `recover --dry-run --json --map` on a copy of the sample; returns the report, the map
/// page by page and the SVG.
fn recover_with_map(name: &str, work: &Path) -> (serde_json::Value, Drawn, Drawn) {
    let db = committed(name).copy_to(&work.join(name)).unwrap();
    let map = work.join(format!("{name}.svg"));
    let guard = SourceGuard::new(&db);
    let out = cmd()
        .args(["recover", "--dry-run", "--json", "-q"])
        .arg(&db)
        .arg("--map")
        .arg(&map)
        .output()
        .unwrap();
    guard.assert_unchanged();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let drawn = drawn(&std::fs::read_to_string(&map).unwrap());
    let reported = reported(&report);
    (report, drawn, reported)
}

/// The pages with `status`.
fn pages_with(map: &Drawn, status: &str) -> Vec<u32> {
    map.iter()
        .filter(|(_, (s, _))| s == status)
        .map(|(p, _)| *p)
        .collect()
}

#[test]
fn pages_only_in_the_wal_are_newer_there_and_a_damaged_main_copy_is_healed() {
    let work = tempfile::tempdir().unwrap();
    for name in ["wal-uncheckpointed", "wal-healed"] {
        let (_, drawn, reported) = recover_with_map(name, work.path());
        assert_eq!(
            drawn, reported,
            "{name}: the map draws what the report says"
        );
        let newer = pages_with(&drawn, "newer-in-wal");
        assert!(newer.len() >= 10, "{name}: {newer:?}");
        let healed = pages_with(&drawn, "healed-from-wal");
        match name {
            // Nothing is damaged: every page the WAL holds is a newer commit, none healed.
            "wal-uncheckpointed" => assert!(healed.is_empty(), "{healed:?}"),
            // Page 58's main copy is zeroed; the WAL's copy is the one read.
            _ => assert_eq!(healed, [58]),
        }
        assert!(!newer.contains(&58) || name == "wal-uncheckpointed");
        assert!(pages_with(&drawn, "lost").is_empty(), "{name}");
    }
}

#[test]
fn a_lost_leaf_is_drawn_lost_in_its_table() {
    let work = tempfile::tempdir().unwrap();
    let (report, drawn, reported) = recover_with_map("leaf-zeroed", work.path());
    assert_eq!(drawn, reported);
    assert_eq!(drawn.len(), 243, "one cell per page");
    assert_eq!(
        drawn[&58],
        ("lost".to_string(), Some("monitor_check".to_string()))
    );
    assert_eq!(pages_with(&drawn, "lost"), [58]);
    assert_eq!(report["engine"]["pages"]["lost"], 1, "the counts agree");
}

#[test]
fn pages_past_a_truncated_end_are_drawn_missing() {
    let work = tempfile::tempdir().unwrap();
    let (report, drawn, reported) = recover_with_map("truncated", work.path());
    assert_eq!(drawn, reported);
    // The file holds 146 pages (the last one partly); the header says 243.
    assert_eq!(report["engine"]["geometry"]["file_pages"], 146);
    assert_eq!(drawn.len(), 243, "every page the header counts is drawn");
    assert_eq!(
        pages_with(&drawn, "missing-past-end"),
        (147..=243).collect::<Vec<u32>>()
    );
}

#[test]
fn check_draws_the_same_map() {
    let work = tempfile::tempdir().unwrap();
    let db = committed("leaf-zeroed")
        .copy_to(&work.path().join("damaged"))
        .unwrap();
    let map = work.path().join("check.svg");
    let guard = SourceGuard::new(&db);
    let out = cmd()
        .args(["-q", "check"])
        .arg(&db)
        .arg("--map")
        .arg(&map)
        .output()
        .unwrap();
    guard.assert_unchanged();
    assert_eq!(out.status.code(), Some(1));
    let drawn = drawn(&std::fs::read_to_string(&map).unwrap());
    assert_eq!(drawn.len(), 243);
    assert_eq!(pages_with(&drawn, "lost"), [58]);
}

#[test]
fn a_large_file_is_binned_and_keeps_its_worst_page() {
    let mut map = PageMapSnapshot {
        owners: vec!["t".into()],
        runs: Vec::new(),
    };
    for p in 1..=50_000u32 {
        let s = if p == 31_337 {
            MapStatus::Lost
        } else {
            MapStatus::Tree
        };
        map.push(p, s, Some(0));
    }
    let svg = sqlite_rescue::output::map::render(&map, "big").to_string();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let cells: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_attribute("data-first-page"))
        .collect();
    assert_eq!(cells.len(), sqlite_rescue::output::map::MAX_CELLS);
    let lost: Vec<_> = cells
        .iter()
        .filter(|n| n.attribute("data-status") == Some("lost"))
        .map(|n| n.attribute("data-first-page").unwrap())
        .collect();
    // Bins of five pages: 31336-31340 holds the lost page.
    assert_eq!(lost, ["31336"], "the worst page of a bin is shown");
}

#[test]
fn other_damaged_samples_draw_what_the_report_says() {
    let work = tempfile::tempdir().unwrap();
    for name in [
        "interior-zeroed",
        "index-zeroed",
        "stray-page",
        "auto-vacuum",
    ] {
        let (report, drawn, reported) = recover_with_map(name, work.path());
        assert_eq!(drawn, reported, "{name}");
        let pages = report["engine"]["geometry"]["page_count"].as_u64().unwrap();
        assert_eq!(drawn.len() as u64, pages, "{name}: one cell per page");
    }
}

#[test]
fn a_stray_page_where_a_leaf_was_is_lost_not_a_stray_copy() {
    // Page 53 of monitor_check was overwritten with a copy of a leaf of auth_user: the rows
    // that were on it are lost, which is what the map and the counts must show.
    let work = tempfile::tempdir().unwrap();
    let (report, drawn, reported) = recover_with_map("stray-page", work.path());
    assert_eq!(drawn, reported);
    assert_eq!(
        drawn[&53],
        ("lost".to_string(), Some("monitor_check".to_string()))
    );
    assert_eq!(report["engine"]["pages"]["lost"], 1);
    assert!(report["engine"]["pages"].get("orphan-duplicate").is_none());
}
