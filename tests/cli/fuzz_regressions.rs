//! Replays every input kept under `fuzz/regressions/<target>/` through the same code path as
//! the fuzz target of that name (the shared harness in fuzz/src/lib.rs), and the hand-made
//! seeds under `fuzz/seeds/` through every decoder target. A crash found by fuzzing is kept
//! here, as a file, once it is fixed; see docs/hostile-input.md.

use crate::harness;

use std::path::{Path, PathBuf};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn run_target(target: &str, data: &[u8]) {
    match target {
        "decode_page" => harness::decode_page(data),
        "record" => harness::record(data),
        "wal" => {
            harness::wal(data);
            let _ = harness::wal_on_disk(data);
        }
        "journal" => {
            harness::journal(data);
            let _ = harness::journal_on_disk(data);
        }
        "page_view" => {
            let _ = harness::page_view(data);
        }
        "report" => {
            let _ = harness::report(data);
        }
        "header" => harness::header(data),
        "engine" => {
            // Any typed error is an answer; the harness checks nothing was left behind.
            let _ = harness::engine(data);
        }
        other => panic!("fuzz/regressions/{other}: no such fuzz target"),
    }
}

#[test]
fn crash_inputs_found_by_fuzzing_stay_fixed() {
    let root = fuzz_dir().join("regressions");
    for target in files_under_dirs(&root) {
        let name = target.file_name().unwrap().to_string_lossy().to_string();
        for f in files_under(&target) {
            let data = std::fs::read(&f).unwrap();
            eprintln!("replaying {}", f.display());
            run_target(&name, &data);
        }
    }
}

fn files_under_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn hand_made_seeds_pass_every_decoder() {
    let seeds = files_under(&fuzz_dir().join("seeds"));
    assert!(!seeds.is_empty(), "fuzz/seeds is empty");
    for f in seeds {
        let data = std::fs::read(&f).unwrap();
        for target in [
            "decode_page",
            "record",
            "wal",
            "journal",
            "header",
            "report",
        ] {
            run_target(target, &data);
        }
    }
}

#[test]
fn engine_input_encoding_round_trips() {
    let (db, wal) = (b"main file".as_slice(), b"wal bytes".as_slice());
    let joined = harness::join_engine_input(db, Some(wal));
    assert_eq!(harness::split_engine_input(&joined), (db, Some(wal)));
    let joined = harness::join_engine_input(db, None);
    assert_eq!(harness::split_engine_input(&joined), (db, None));
    // A WAL length longer than the input takes all of it.
    assert_eq!(
        harness::split_engine_input(&[1, 0xff, 0xff, 0xff, 0xff, 7]),
        (&[][..], Some(&[7u8][..]))
    );
}

/// A database of `pages`-ish 1024-byte pages with table `t` (and an index), in rollback mode,
/// and the same database with its last commits in a `-wal` (copied while the writer was
/// open). Returns (main file, main file in WAL mode, its -wal).
fn generated_databases(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let make = |name: &str, wal: bool| {
        let path = dir.join(name);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mode = if wal { "WAL" } else { "DELETE" };
        conn.execute_batch(&format!(
            "PRAGMA page_size = 1024; PRAGMA journal_mode = {mode}; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200)
             INSERT INTO t SELECT x, printf('value %d', x) FROM c;"
        ))
        .unwrap();
        let main = std::fs::read(&path).unwrap();
        let wal = std::fs::read(dir.join(format!("{name}-wal"))).unwrap_or_default();
        (main, wal)
    };
    let (rollback, _) = make("rollback.db", false);
    let (main, wal) = make("wal.db", true);
    (rollback, main, wal)
}

/// A hot journal for a database of `pages` 1024-byte pages: one record (page 2, all 0x5a),
/// its checksum right, and the size before the transaction.
fn hot_journal(pages: u32) -> Vec<u8> {
    use sqlite_rescue::format::journal::{checksum, MAGIC};
    let mut j = MAGIC.to_vec();
    for v in [1, 99, pages, 512, 1024] {
        j.extend(v.to_be_bytes());
    }
    j.resize(512, 0);
    let page = vec![0x5au8; 1024];
    j.extend(2u32.to_be_bytes());
    j.extend(&page);
    j.extend(checksum(99, &page).to_be_bytes());
    j
}

#[test]
fn page_view_reads_generated_and_damaged_databases() {
    let dir = tempfile::tempdir().unwrap();
    let (rollback, main, wal) = generated_databases(dir.path());
    // Whole: every row of t is read, twice (before and after the registration is dropped,
    // less what the rebuilt page 2 hides).
    let read = harness::page_view(&harness::join_engine_input(&rollback, None));
    assert!(read >= 200, "{read} rows read");
    let with_wal = harness::page_view(&harness::join_engine_input(&main, Some(&wal)));
    assert!(with_wal >= 200, "{with_wal} rows read through the WAL");
    // Damaged: every page in turn zeroed, and the file cut at every page.
    for p in 0..rollback.len() / 1024 {
        let mut damaged = rollback.clone();
        damaged[p * 1024..(p + 1) * 1024].fill(0);
        harness::page_view(&harness::join_engine_input(&damaged, None));
        harness::page_view(&harness::join_engine_input(
            &rollback[..p * 1024 + 100],
            None,
        ));
    }
    // SQLite's own damaged databases.
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corrupt-dbs/sqlite-tests");
    for f in files_under(&shared)
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "db"))
    {
        let bytes = std::fs::read(f).unwrap();
        let head = &bytes[..bytes.len().min(65536)];
        harness::page_view(&harness::join_engine_input(head, None));
    }
}

#[test]
fn sidecars_on_disk_are_bounded_by_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, wal) = generated_databases(dir.path());
    // A real WAL: its frames are rechecksummed as they are (byte 12 odd), so its commits
    // count; the page count can only come from the main file and the frames.
    let mut w = wal.clone();
    w[12] |= 1;
    let pages = harness::wal_on_disk(&w).expect("opens");
    assert!(pages as usize <= 1 + (w.len() - 32) / (24 + 1024));
    assert!(pages > 1, "the WAL's commits grew the database");
    // The same WAL with every commit frame stating four billion pages.
    for frame in w[32..].chunks_exact_mut(24 + 1024) {
        if frame[4..8] != [0; 4] {
            frame[4..8].copy_from_slice(&(u32::MAX - 1).to_be_bytes());
        }
    }
    let bounded = harness::wal_on_disk(&w).expect("opens");
    assert!(bounded as usize <= 1 + (w.len() - 32) / (24 + 1024));
    // A hot journal stating four billion pages, whole and cut to its header.
    let j = hot_journal(u32::MAX - 1);
    assert_eq!(
        harness::journal_on_disk(&j),
        Some(2),
        "the main page and one record"
    );
    assert_eq!(harness::journal_on_disk(&j[..512]), Some(1));
    assert_eq!(harness::journal_on_disk(&hot_journal(1)), Some(1));
    for cut in [0, 27, 28, 100, 511, 513, 1000] {
        harness::journal(&j[..cut]);
        let _ = harness::journal_on_disk(&j[..cut]);
    }
}

#[test]
fn reports_read_back_from_a_real_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (rollback, _, _) = generated_databases(dir.path());
    let db = dir.path().join("app.db");
    let mut damaged = rollback.clone();
    // The last page of t's tree zeroed: some rows lost, ranges in the report.
    let last = damaged.len() / 1024 - 1;
    damaged[last * 1024..].fill(0);
    std::fs::write(&db, &damaged).unwrap();
    let incident = dir.path().join("incident");
    let guard = crate::common::SourceGuard::new(&db);
    let out = crate::common::cmd()
        .args(["recover", "-q", "--incident-dir"])
        .arg(&incident)
        .arg(&db)
        .output()
        .unwrap();
    guard.assert_unchanged();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    let report = std::fs::read(incident.join("report.json")).unwrap();
    harness::report(&report);
    let v: serde_json::Value = serde_json::from_slice(&report).unwrap();
    for t in v["tables"].as_array().unwrap() {
        let lost = serde_json::to_vec(&t["lost"]).unwrap();
        assert_eq!(harness::report(&lost), 1, "a lost list reads back");
    }
    let manifest = std::fs::read(incident.join("snapshot/manifest.json")).unwrap();
    assert_eq!(harness::report(&manifest), 1, "the manifest reads back");
    // Damaged copies of each: every byte position in turn set to a few values.
    for doc in [&report, &manifest] {
        for at in (0..doc.len()).step_by(7) {
            for b in [b'"', b'9', b'-', b'{', 0xff] {
                let mut bad = doc.clone();
                bad[at] = b;
                harness::report(&bad);
            }
        }
    }
}
