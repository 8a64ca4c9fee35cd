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
        "wal" => harness::wal(data),
        "journal" => harness::journal(data),
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
        for target in ["decode_page", "record", "wal", "header"] {
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
