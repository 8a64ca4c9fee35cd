//! The three soundness reproductions of issue 19, pinned: sidecars that state a database
//! size no file holds (a 512-byte `-journal` claiming four billion pages, a `-wal` whose
//! commit frame does the same) and rowids at `i64::MIN` and `i64::MAX` beside a lost page.
//! The page view's own soundness (a registration dropped or leaked while SQLite still reads
//! through it) is unit-tested beside its unsafe code, in src/engine/copy/vfs/tests.rs.

use crate::common::{cmd, query_rows, SourceGuard};
use rusqlite::Connection;
use sqlite_rescue::format::varint;
use sqlite_rescue::format::wal::checksum;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Address space the binary may use, in KiB: sizing anything by a four-billion-page count
/// (16 GiB and more) fails under it, a recovery of these small files does not.
const ADDRESS_SPACE_KIB: u64 = 2 << 20;

/// A size no file here holds: the count SQLite would write for a database of 2^32 − 16
/// pages.
const HUGE: u32 = u32::MAX - 15;

/// Runs `sqlite-rescue recover -q --incident-dir INCIDENT DB` with its address space
/// limited (`ulimit -v`), checking that DB and its sidecars are left as they were. Returns
/// the exit code, stderr, the time taken and the incident folder.
fn recover_bounded(db: &Path) -> (Option<i32>, String, Duration, PathBuf) {
    let guard = SourceGuard::new(db);
    let incident = db.with_extension("incident");
    let bin = assert_cmd::cargo::cargo_bin("sqlite-rescue");
    let started = Instant::now();
    let out = assert_cmd::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KIB} && exec \"$@\""))
        .arg("sh")
        .arg(&bin)
        .args(["recover", "-q", "--incident-dir"])
        .arg(&incident)
        .arg(db)
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    guard.assert_unchanged();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr, started.elapsed(), incident)
}

fn report_of(incident: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(incident.join("report.json")).unwrap()).unwrap()
}

fn inferred(report: &serde_json::Value) -> Vec<String> {
    report["engine"]["geometry"]["inferred"]
        .as_array()
        .or_else(|| report["geometry"]["inferred"].as_array())
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn ids(db: &Path, table: &str) -> Vec<i64> {
    let conn = Connection::open(db).unwrap();
    query_rows(&conn, &format!("SELECT rowid FROM {table} ORDER BY rowid"))
        .into_iter()
        .map(|r| match r[0] {
            rusqlite::types::Value::Integer(i) => i,
            ref v => panic!("rowid {v:?}"),
        })
        .collect()
}

/// `app.db` (1024-byte pages) with 300 rows in `t`, closed cleanly (rollback mode).
fn small_database(dir: &Path) -> PathBuf {
    let db = dir.join("app.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "PRAGMA page_size = 1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300)
             INSERT INTO t SELECT x, printf('row %d', x) FROM c;",
        )
        .unwrap();
    db
}

#[test]
fn a_512_byte_journal_claiming_four_billion_pages_is_bounded_by_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_database(dir.path());
    let pages = std::fs::metadata(&db).unwrap().len() / 1024;
    // A hot journal's header, alone: magic, no records, nonce, the size before the
    // transaction (four billion pages), sector size 512, page size 1024.
    let mut journal = vec![0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
    for field in [0, 7, HUGE, 512, 1024] {
        journal.extend(field.to_be_bytes());
    }
    journal.resize(512, 0);
    std::fs::write(dir.path().join("app.db-journal"), &journal).unwrap();
    let (code, stderr, took, incident) = recover_bounded(&db);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let report = report_of(&incident);
    let noted = inferred(&report);
    assert!(
        noted
            .iter()
            .any(|n| n.contains(&format!("-journal says {HUGE} pages"))),
        "{noted:?}"
    );
    assert_eq!(
        report["engine"]["geometry"]["page_count"].as_u64(),
        Some(pages),
        "{report}"
    );
    assert_eq!(
        ids(&incident.join("recovered.sqlite3"), "t"),
        (1..=300).collect::<Vec<_>>()
    );
}

#[test]
fn a_wal_whose_commit_claims_four_billion_pages_is_bounded_by_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let conn = Connection::open(&live).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300)
         INSERT INTO t SELECT x, printf('row %d', x) FROM c;",
    )
    .unwrap();
    // Copied while the connection is open, so the -wal is not checkpointed away on close.
    let db = dir.path().join("app.db");
    std::fs::copy(&live, &db).unwrap();
    let mut wal = std::fs::read(dir.path().join("live.db-wal")).unwrap();
    drop(conn);
    assert_eq!(
        u32::from_be_bytes(wal[..4].try_into().unwrap()),
        0x377f_0682
    );
    // Every frame's commit size becomes HUGE where it is set, the checksums made right, so
    // the frames are valid and their stated size is what must be bounded.
    let frame = 24 + 1024;
    let mut sum = checksum(false, (0, 0), &wal[..24]);
    let mut commits = 0;
    for f in wal[32..].chunks_exact_mut(frame) {
        if f[4..8] != [0; 4] {
            f[4..8].copy_from_slice(&HUGE.to_be_bytes());
            commits += 1;
        }
        sum = checksum(false, checksum(false, sum, &f[..8]), &f[24..]);
        f[16..20].copy_from_slice(&sum.0.to_be_bytes());
        f[20..24].copy_from_slice(&sum.1.to_be_bytes());
    }
    assert!(commits > 0);
    let wal_frames = (wal.len() - 32) / frame;
    std::fs::write(dir.path().join("app.db-wal"), &wal).unwrap();
    let (code, stderr, took, incident) = recover_bounded(&db);
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {stderr}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let report = report_of(&incident);
    let noted = inferred(&report);
    assert!(
        noted
            .iter()
            .any(|n| n.contains(&format!("-wal says {HUGE} pages"))),
        "{noted:?}"
    );
    let main_pages = std::fs::metadata(&db).unwrap().len().div_ceil(1024);
    let count = report["engine"]["geometry"]["page_count"].as_u64().unwrap();
    assert!(count <= main_pages + wal_frames as u64, "{count} pages");
    assert_eq!(report["engine"]["wal"]["commits"].as_u64(), Some(commits));
    // The frames are valid: every row the WAL committed comes back.
    assert_eq!(
        ids(&incident.join("recovered.sqlite3"), "t"),
        (1..=300).collect::<Vec<_>>()
    );
}

/// The child pages of an interior table page, in key order.
fn children(page: &[u8]) -> Vec<u32> {
    assert_eq!(page[0], 5, "not an interior table page");
    let cells = u16::from_be_bytes([page[3], page[4]]) as usize;
    let mut out: Vec<u32> = (0..cells)
        .map(|i| {
            let at = u16::from_be_bytes([page[12 + 2 * i], page[13 + 2 * i]]) as usize;
            u32::from_be_bytes(page[at..at + 4].try_into().unwrap())
        })
        .collect();
    out.push(u32::from_be_bytes(page[8..12].try_into().unwrap()));
    out
}

/// `app.db` whose table `t` holds 40 rows at each end of the rowid range, `i64::MIN..` and
/// `..=i64::MAX`, about 8 to a 1024-byte leaf, with (if `index`) an index on `v`. Returns the
/// database and the leaves of `t` in key order, with the rowids each holds.
fn extreme_rowids(dir: &Path, index: bool) -> (PathBuf, Vec<(u32, Vec<i64>)>) {
    let db = dir.join("app.db");
    let conn = Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA page_size = 1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);")
        .unwrap();
    if index {
        conn.execute_batch("CREATE INDEX t_v ON t(v);").unwrap();
    }
    for k in 0..40i64 {
        for id in [i64::MIN + k, i64::MAX - k] {
            conn.execute(
                "INSERT INTO t VALUES (?1, printf('%.90c%d', 'x', ?1))",
                [id],
            )
            .unwrap();
        }
    }
    let root: u32 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 't'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(conn);
    let bytes = std::fs::read(&db).unwrap();
    let page = |n: u32| &bytes[(n as usize - 1) * 1024..n as usize * 1024];
    let leaves = children(page(root))
        .into_iter()
        .map(|leaf| {
            let p = page(leaf);
            assert_eq!(p[0], 13, "t is one level deep");
            let cells = u16::from_be_bytes([p[3], p[4]]) as usize;
            let rowids = (0..cells)
                .map(|i| {
                    let at = u16::from_be_bytes([p[8 + 2 * i], p[9 + 2 * i]]) as usize;
                    let (_, n) = varint::read(&p[at..]).unwrap();
                    varint::read(&p[at + n..]).unwrap().0 as i64
                })
                .collect();
            (leaf, rowids)
        })
        .collect();
    (db, leaves)
}

fn zero_pages(db: &Path, pages: &[u32]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    for p in pages {
        f.seek(SeekFrom::Start(u64::from(p - 1) * 1024)).unwrap();
        f.write_all(&[0u8; 1024]).unwrap();
    }
}

/// A lost range as a report gives it: first and last rowid, rows (when counted).
type Range = (Option<i64>, Option<i64>, Option<u64>);

/// The lost ranges of `t` in a report.
fn lost_ranges(report: &serde_json::Value) -> Vec<Range> {
    let t = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "t" || t["table"] == "t")
        .unwrap_or_else(|| panic!("no table t in {report}"));
    t["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["first_rowid"].as_i64(),
                r["last_rowid"].as_i64(),
                r["rows"].as_u64(),
            )
        })
        .collect()
}

/// Zeroes the first leaf (holding `i64::MIN`), the last (holding `i64::MAX`) and the first
/// leaf of the high end (its range runs from near `i64::MIN` to near `i64::MAX`), recovers,
/// and checks every lost rowid lies in a lost range and no recovered one does. Returns the
/// ranges and the rowids lost.
fn lose_the_ends(index: bool) -> (Vec<Range>, Vec<i64>) {
    let dir = tempfile::tempdir().unwrap();
    let (db, leaves) = extreme_rowids(dir.path(), index);
    assert!(leaves.len() >= 6, "{} leaves", leaves.len());
    let middle = leaves
        .iter()
        .position(|(_, r)| r.last().is_some_and(|&l| l > 0))
        .unwrap();
    let lost_leaves = [0, middle, leaves.len() - 1];
    let lost: Vec<i64> = lost_leaves
        .iter()
        .flat_map(|&i| leaves[i].1.clone())
        .collect();
    assert!(lost.contains(&i64::MIN) && lost.contains(&i64::MAX));
    let pages: Vec<u32> = lost_leaves.iter().map(|&i| leaves[i].0).collect();
    zero_pages(&db, &pages);
    let (code, stderr, _, incident) = recover_bounded(&db);
    assert_eq!(code, Some(1), "rows were lost: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let recovered = ids(&incident.join("recovered.sqlite3"), "t");
    let expected: Vec<i64> = leaves
        .iter()
        .flat_map(|(_, r)| r.clone())
        .filter(|r| !lost.contains(r))
        .collect();
    assert_eq!(recovered, expected);
    let ranges = lost_ranges(&report_of(&incident));
    let inside = |r: i64, (a, b, _): &Range| a.is_none_or(|a| r >= a) && b.is_none_or(|b| r <= b);
    for r in &lost {
        assert!(
            ranges.iter().any(|g| inside(*r, g)),
            "{r} in no range: {ranges:?}"
        );
    }
    for r in &recovered {
        assert!(
            !ranges.iter().any(|g| inside(*r, g)),
            "recovered {r} in {ranges:?}"
        );
    }
    (ranges, lost)
}

#[test]
fn lost_pages_beside_rowids_at_i64_min_and_max_give_true_ranges() {
    let (ranges, _) = lose_the_ends(false);
    // The page between the two ends: its parent's dividers bound it, about 2^64 rowids
    // apart, and the count that does not fit is not wrapped into a small one.
    assert!(
        ranges
            .iter()
            .any(|(a, b, _)| a.is_some_and(|a| a < 0) && b.is_some_and(|b| b > 0)),
        "{ranges:?}"
    );
}

#[test]
fn with_an_index_the_ranges_at_the_ends_are_exact_and_counted() {
    let (ranges, lost) = lose_the_ends(true);
    let counted: u64 = ranges.iter().map(|(_, _, n)| n.unwrap()).sum();
    assert_eq!(counted, lost.len() as u64, "{ranges:?}");
    let firsts: Vec<i64> = ranges.iter().filter_map(|(a, _, _)| *a).collect();
    assert!(firsts.contains(&i64::MIN), "{ranges:?}");
    let lasts: Vec<i64> = ranges.iter().filter_map(|(_, b, _)| *b).collect();
    assert!(lasts.contains(&i64::MAX), "{ranges:?}");
}

#[test]
fn the_cli_names_the_lost_ranges_at_the_ends_without_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let (db, leaves) = extreme_rowids(dir.path(), false);
    let middle = leaves
        .iter()
        .position(|(_, r)| r.last().is_some_and(|&l| l > 0))
        .unwrap();
    zero_pages(&db, &[leaves[middle].0]);
    let guard = SourceGuard::new(&db);
    let out = cmd()
        .args(["lost"])
        .arg(&db)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    guard.assert_unchanged();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("t: rowids -"), "{stdout}");
}
