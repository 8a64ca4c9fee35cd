//! What a recovery is expected to cost before it starts: how long, and how much free disk,
//! from the size of the files and the schema's tables and indexes. The figures per gigabyte
//! are the benchmarks' (docs/performance.md, 2 cores, 2026-12-07): the whole `recover` of a
//! 1 GB file with an index per table took about 4 s, a Django-shaped one (an index on every
//! ForeignKey, about 1.75 per table) about 6 s; `--verify full` 10 s and 42 s. More indexes per table
//! cost more (every index is checked against its table); the estimate moves between the two
//! shapes with the schema's ratio.
//!
//! Free disk is read with `statvfs` (rustix) in one place, [`free_bytes`], which a test can
//! override with `SQLITE_RESCUE_TEST_FREE_BYTES` (no way exists to fill a real disk in a test).

use crate::engine::catalog::read_schema;
use crate::engine::pages::Claims;
use crate::engine::schema::SchemaKind;
use crate::engine::verify::VerifyMode;
use crate::error::{Error, Result};
use crate::source::pagefile::PageFile;
use crate::util::paths::sidecar;
use std::path::Path;

/// Seconds per gigabyte of the whole `recover`, fast proof: one index per table, and the
/// Django shape's 1.75 (docs/performance.md, session 13: 3.5–3.9 and 4.8–5.4 s per GB, in
/// memory and on disk).
const SECONDS_PER_GB: (f64, f64) = (4.0, 5.5);
/// The same with `--verify full`.
const SECONDS_PER_GB_FULL: (f64, f64) = (10.0, 42.0);
/// Indexes per table of the two benchmark shapes.
const INDEXES_PER_TABLE: (f64, f64) = (1.0, 1.75);
/// Under load the benchmarks varied by about this much either way.
const SPREAD: (f64, f64) = (0.7, 1.6);

const GB: f64 = 1_000_000_000.0;

/// What a recovery of one database is expected to need.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    /// Bytes of the database and its sidecars (what the snapshot copies).
    pub source_bytes: u64,
    pub pages: u32,
    pub page_size: u32,
    pub tables: usize,
    pub indexes: usize,
    /// Seconds the whole `recover` should take on 2 cores: about `seconds`, between
    /// `seconds_min` and `seconds_max` (the benchmarks' spread under load).
    pub seconds: u64,
    pub seconds_min: u64,
    pub seconds_max: u64,
    pub verify: VerifyMode,
    /// Free bytes the run needs where it writes: the snapshot, and the recovered database
    /// (at most as large as the source's pages), with a tenth more for SQLite's own files.
    pub disk_bytes: u64,
}

impl Estimate {
    /// "about 35 s (25 s to 1 min) and 2.3 GB free".
    pub fn summary(&self) -> String {
        let (low, high) = (duration(self.seconds_min), duration(self.seconds_max));
        let range = if low == high {
            String::new()
        } else {
            format!(" ({low} to {high})")
        };
        format!(
            "about {}{range} and {} free disk for the snapshot and the recovered file",
            duration(self.seconds),
            bytes(self.disk_bytes)
        )
    }
}

/// Estimates a recovery of `db` (read only, no locks: its schema and its files' sizes).
pub fn estimate(db: &Path, verify: VerifyMode) -> Result<Estimate> {
    let pf = PageFile::open(db)?;
    let mut claims = Claims::new(pf.page_count());
    // A schema that cannot be read still gets an estimate, as for a file without indexes.
    let entries = read_schema(&pf, &mut claims, indicatif::ProgressBar::hidden())
        .map(|(entries, _, _)| entries)
        .unwrap_or_default();
    let tables = entries
        .iter()
        .filter(|e| e.kind == SchemaKind::Table)
        .count();
    let indexes = entries
        .iter()
        .filter(|e| e.kind == SchemaKind::Index)
        .count();
    let source_bytes = ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|s| {
            if s.is_empty() {
                db.to_path_buf()
            } else {
                sidecar(db, s)
            }
        })
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum::<u64>();
    let page_size = pf.geometry().page_size;
    let pages = pf.page_count();
    let data = u64::from(pages) * u64::from(page_size);
    Ok(from_counts(source_bytes, data, tables, indexes, verify).with(pages, page_size))
}

/// The estimate for `data` bytes of pages (`source` bytes of files), by the per-GB figures.
fn from_counts(
    source: u64,
    data: u64,
    tables: usize,
    indexes: usize,
    verify: VerifyMode,
) -> Estimate {
    #[allow(clippy::cast_precision_loss)] // a ratio and a size in GB: precision is not needed
    let (ratio, gb) = (
        indexes as f64 / tables.max(1) as f64,
        source.max(data) as f64 / GB,
    );
    let t = ((ratio - INDEXES_PER_TABLE.0) / (INDEXES_PER_TABLE.1 - INDEXES_PER_TABLE.0))
        .clamp(0.0, 1.0);
    let (lo, hi) = match verify {
        VerifyMode::Fast => SECONDS_PER_GB,
        VerifyMode::Full => SECONDS_PER_GB_FULL,
    };
    let seconds = gb * (lo + (hi - lo) * t);
    let margin = data / 10;
    Estimate {
        source_bytes: source,
        pages: 0,
        page_size: 0,
        tables,
        indexes,
        seconds: whole_seconds(seconds),
        seconds_min: whole_seconds(seconds * SPREAD.0),
        seconds_max: whole_seconds(seconds * SPREAD.1),
        verify,
        disk_bytes: source.saturating_add(data).saturating_add(margin),
    }
}

impl Estimate {
    fn with(mut self, pages: u32, page_size: u32) -> Estimate {
        self.pages = pages;
        self.page_size = page_size;
        self
    }
}

/// Rounded up to a whole second (at least 1: nothing is instant).
fn whole_seconds(s: f64) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // ceil of a small positive
    let whole = s.ceil().clamp(1.0, 1e12) as u64;
    whole
}

/// "45 s", "3 min", "1 h 20 min".
fn duration(s: u64) -> String {
    match s {
        0..=99 => format!("{s} s"),
        100..=5999 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {} min", s / 3600, (s % 3600).div_ceil(60)),
    }
}

/// "812 MB", "2.3 GB", "523 kB" (rounded up below a gigabyte).
pub fn bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // shown to one decimal
    let gb = n as f64 / GB;
    if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else if n >= 1_000_000 {
        format!("{} MB", n.div_ceil(1_000_000))
    } else {
        format!("{} kB", n.div_ceil(1000))
    }
}

/// The environment variable a test sets to fake the free space of every folder.
const FAKE_FREE: &str = "SQLITE_RESCUE_TEST_FREE_BYTES";

/// Free bytes for an unprivileged writer on the file system that holds `dir` (or, when `dir`
/// does not exist yet, its nearest existing parent). `None` when it cannot be told.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    if let Some(fake) = std::env::var_os(FAKE_FREE) {
        return fake.to_str().and_then(|s| s.parse().ok());
    }
    let existing = dir.ancestors().find(|p| p.exists())?;
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    let st = rustix::fs::statvfs(existing).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Refuses a run that would fill the disk: `dir` is where it writes `need` bytes (the
/// incident folder, or the temporary folder of a dry run).
pub fn refuse_if_no_room(need: u64, dir: &Path) -> Result<()> {
    match free_bytes(dir) {
        Some(free) if free < need => Err(Error::NoRoom {
            path: crate::util::paths::absolute(dir),
            need: bytes(need),
            free: bytes(free),
        }),
        _ => Ok(()),
    }
}

/// Whether two folders (or their nearest existing parents) are on one file system, so that
/// what is written to both comes out of the same free space.
pub fn same_file_system(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| {
        p.ancestors()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .find_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.dev())
    };
    dev(a) == dev(b)
}

impl Estimate {
    /// The free disk needed for the snapshot, and for the recovered database.
    pub fn split(&self) -> (u64, u64) {
        (
            self.source_bytes,
            self.disk_bytes.saturating_sub(self.source_bytes),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_shapes_get_the_benchmark_figures() {
        let reference = from_counts(1_000_000_000, 1_000_000_000, 2, 2, VerifyMode::Fast);
        assert_eq!(reference.seconds, 4);
        let django = from_counts(1_000_000_000, 1_000_000_000, 8, 14, VerifyMode::Fast);
        assert_eq!(django.seconds, 6);
        let full = from_counts(1_000_000_000, 1_000_000_000, 8, 14, VerifyMode::Full);
        assert_eq!(full.seconds, 42);
        assert!(django.seconds_min < django.seconds && django.seconds < django.seconds_max);
        assert_eq!(django.disk_bytes, 2_100_000_000);
    }

    #[test]
    fn small_files_take_a_second_and_no_tables_is_no_division_by_zero() {
        let e = from_counts(4096, 4096, 0, 0, VerifyMode::Fast);
        assert_eq!((e.seconds, e.seconds_min), (1, 1));
        assert_eq!(duration(90), "90 s");
        assert_eq!(duration(600), "10 min");
        assert_eq!(bytes(2_345_000_000), "2.3 GB");
        assert_eq!(bytes(1), "1 kB");
        assert_eq!(bytes(1_500_000), "2 MB");
    }
}
