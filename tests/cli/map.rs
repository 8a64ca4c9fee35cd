//! The damage map: valid XML, one cell per page, and marks that agree with the engine.

use corrupt_samples::Sample;
use sqlite_rescue::engine::{recover, Options, Report};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn committed(name: &str) -> Sample {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    corrupt_samples::load_sample(&root.join("corrupt-samples").join(name)).unwrap()
}

fn recovered(name: &str, work: &Path) -> (Report, PathBuf) {
    let db = committed(name).copy_to(&work.join(name)).unwrap();
    let out = work.join(format!("{name}.recovered.sqlite3"));
    (recover(&db, &out, &Options::default()).unwrap(), db)
}

/// Per `data-status`, how many cells carry `attr`.
fn cells_by_status(svg: &str, attr: &str) -> BTreeMap<String, u64> {
    let doc = roxmltree::Document::parse(svg).expect("the map is well-formed XML");
    let mut out = BTreeMap::new();
    for n in doc.descendants().filter(|n| n.attribute(attr).is_some()) {
        let status = n.attribute("data-status").expect("every cell has a status");
        *out.entry(status.to_string()).or_insert(0) += 1;
    }
    out
}

fn engine_counts(report: &Report) -> BTreeMap<String, u64> {
    report
        .pages
        .iter()
        .map(|(s, n)| {
            (
                serde_json::to_value(s)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
                *n,
            )
        })
        .collect()
}

#[test]
fn the_map_of_damaged_samples_matches_the_engine_page_for_page() {
    let work = tempfile::tempdir().unwrap();
    for name in [
        "leaf-zeroed",
        "interior-zeroed",
        "index-zeroed",
        "stray-page",
    ] {
        let (report, db) = recovered(name, work.path());
        let file = work.path().join(format!("{name}.svg"));
        sqlite_rescue::output::map::write(&report, &db, &file).unwrap();
        let svg = std::fs::read_to_string(&file).unwrap();
        let counts = cells_by_status(&svg, "data-page");
        let pages = report.page_map.as_ref().unwrap().pages.len() as u64;
        assert_eq!(
            counts.values().sum::<u64>(),
            pages,
            "{name}: one cell per page"
        );
        assert_eq!(counts, engine_counts(&report), "{name}");
        assert!(
            counts.contains_key("lost")
                || counts.contains_key("orphan-duplicate")
                || counts.contains_key("unused"),
            "{name}: no damage drawn: {counts:?}"
        );
        // The damaged page of leaf-zeroed is drawn as lost, in monitor_check's colour.
        if name == "leaf-zeroed" {
            let doc = roxmltree::Document::parse(&svg).unwrap();
            let cell = doc
                .descendants()
                .find(|n| n.attribute("data-page") == Some("58"))
                .unwrap();
            assert_eq!(cell.attribute("data-status"), Some("lost"));
            assert!(
                doc.descendants()
                    .any(|n| n.is_text() && n.text().map(str::trim) == Some("monitor_check")),
                "the legend names the table"
            );
        }
    }
}

#[test]
fn a_page_healed_from_the_wal_is_marked() {
    let work = tempfile::tempdir().unwrap();
    let (report, db) = recovered("wal-healed", work.path());
    let file = work.path().join("map.svg");
    sqlite_rescue::output::map::write(&report, &db, &file).unwrap();
    let svg = std::fs::read_to_string(&file).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let healed: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("data-wal") == Some("healed"))
        .filter_map(|n| n.attribute("data-page"))
        .collect();
    assert_eq!(healed, ["58"]);
    // A healthy WAL database heals nothing.
    let (report, db) = recovered("healthy-wal", work.path());
    let file = work.path().join("healthy.svg");
    sqlite_rescue::output::map::write(&report, &db, &file).unwrap();
    assert!(!std::fs::read_to_string(&file).unwrap().contains("data-wal"));
}

#[test]
fn recover_and_check_draw_the_map_through_the_binary() {
    let work = tempfile::tempdir().unwrap();
    let db = committed("leaf-zeroed")
        .copy_to(&work.path().join("damaged"))
        .unwrap();
    for (args, file) in [
        (vec!["-q", "recover", "--dry-run"], "recover.svg"),
        (vec!["-q", "check"], "check.svg"),
    ] {
        let map = work.path().join(file);
        let out = assert_cmd::Command::cargo_bin("sqlite-rescue")
            .unwrap()
            .args(&args)
            .arg(&db)
            .arg("--map")
            .arg(&map)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let svg = std::fs::read_to_string(&map).unwrap();
        let counts = cells_by_status(&svg, "data-page");
        assert_eq!(counts.values().sum::<u64>(), 243, "{args:?}");
        assert_eq!(counts.get("lost"), Some(&1), "{args:?}");
    }
}

#[test]
fn a_large_file_is_binned() {
    let snapshot = sqlite_rescue::engine::PageMapSnapshot {
        owners: vec!["t".into()],
        pages: (0..50_000u32)
            .map(|i| {
                let s = if i == 31_337 {
                    sqlite_rescue::engine::pages::PageStatus::Lost
                } else {
                    sqlite_rescue::engine::pages::PageStatus::Tree
                };
                (s, Some(0))
            })
            .collect(),
    };
    let svg = sqlite_rescue::output::map::render(&snapshot, &Default::default(), "big").to_string();
    let counts = cells_by_status(&svg, "data-first-page");
    let cells: u64 = counts.values().sum();
    assert!(
        cells <= sqlite_rescue::output::map::MAX_CELLS as u64,
        "{cells}"
    );
    assert_eq!(cells, 10_000);
    assert_eq!(
        counts.get("lost"),
        Some(&1),
        "the worst page of a bin is shown"
    );
}
