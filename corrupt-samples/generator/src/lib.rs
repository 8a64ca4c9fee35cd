//! The corrupt-samples corpus: a deterministic generator of damaged SQLite databases,
//! the truth each one is scored against, and the scoring helper.
//!
//! * [`generate`] / [`generate_all`] write samples (`<out>/<name>/db.sqlite3`, sidecars,
//!   `expected.json`) and their truth files (`<out>/_truth/*.sqlite3`).
//! * [`committed_samples`] loads the small samples committed in `corrupt-samples/`.
//! * [`score`] compares a recovered database with a truth database.
//!
//! Never open a sample in place with SQLite: a WAL sample's `-wal` would be checkpointed
//! and deleted when the connection closes. Copy the sample directory first.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod data;
pub mod layout;
mod samples;
pub mod score;
pub mod unusual;

pub use data::{BaseSpec, Encoding, DEFAULT_SEED};
pub use layout::{read_layout, Key, Layout};
pub use samples::{generate_all_with_seed, generate_with_seed};
pub use score::{score, Score, TableScore};

/// Errors are boxed: this crate is a test helper.
pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;
pub type Result<T> = std::result::Result<T, Error>;

/// Every sample, in the order they are generated.
pub const SAMPLE_NAMES: [&str; 32] = [
    "healthy-rollback",
    "healthy-wal",
    "healthy-unusual",
    "leaf-zeroed",
    "interior-zeroed",
    "root-zeroed",
    "duplicate-child-pointer",
    "stray-page",
    "header-garbage",
    "schema-cells-damaged",
    "truncated",
    "bit-flips",
    "overflow-zeroed",
    "index-zeroed",
    "freelist-garbage",
    "wal-uncheckpointed",
    "wal-healed",
    "wal-torn-tail",
    "page-512",
    "page-65536",
    "utf16",
    "auto-vacuum",
    "not-a-database",
    "empty-file",
    "wal-reset-race",
    "wal-reset-race-fixed",
    "wal-missing",
    "backup-behind",
    "look-alike-swapped",
    "serial-types-altered",
    "index-and-table-leaf-zeroed",
    "schema-row-destroyed",
];

/// How big the generated databases are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Committed samples: 1 KiB pages (so b-trees are deep with few rows), ~300 KB each.
    Small,
    /// Generated at test time: 4 KiB pages, tens of thousands of events.
    Large,
}

impl Scale {
    pub fn name(self) -> &'static str {
        match self {
            Scale::Small => "small",
            Scale::Large => "large",
        }
    }
}

impl std::str::FromStr for Scale {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "small" => Ok(Scale::Small),
            "large" => Ok(Scale::Large),
            _ => Err(format!("unknown scale {s:?} (small or large)")),
        }
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `expected.json` of one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    pub name: String,
    /// One sentence: what was done to the database.
    pub damage: String,
    /// Real page size of the database (also when the header is destroyed); null for
    /// `not-a-database` and `empty-file`.
    pub page_size: Option<u32>,
    /// `UTF-8` or `UTF-16le`; null when there is no database.
    pub encoding: Option<String>,
    /// Pages (1-based) whose bytes were changed in the main database file.
    pub damaged_pages: Vec<u32>,
    /// Truth database, relative to the sample directory; null when there is none.
    pub truth: Option<String>,
    /// Per user table of the truth: row count and rows physically destroyed.
    pub tables: BTreeMap<String, TableExpected>,
    pub expect: Expect,
    /// Files in the sample directory besides expected.json.
    #[serde(default)]
    pub files: Vec<String>,
    /// The b-tree the damage was aimed at, if any.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub scale: Option<Scale>,
    #[serde(default)]
    pub seed: Option<u64>,
}

/// Truth rows of one table and what the damage destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableExpected {
    pub rows: u64,
    /// Rows whose cell (or overflow chain) was on a damaged page: a perfect recovery
    /// returns at most `rows - destroyed` of this table in place.
    pub destroyed: u64,
    /// Rowids, or PRIMARY KEY text for WITHOUT ROWID tables, of the destroyed rows.
    pub destroyed_keys: Vec<Key>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expect {
    /// False when there is nothing to recover (`not-a-database`, `empty-file`).
    pub usable: bool,
    /// True when the damage can change values in rows that still decode (bit flips,
    /// garbage): spurious rows are tolerated there, but must be flagged.
    pub values_unknowable: bool,
}

impl Expected {
    /// Rows of `table` a perfect recovery returns in place: `rows - destroyed`.
    pub fn ceiling(&self, table: &str) -> Option<u64> {
        self.tables.get(table).map(|t| t.rows - t.destroyed)
    }
}

/// One sample on disk.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub dir: PathBuf,
    /// `dir/db.sqlite3` (sidecars, if any, sit next to it).
    pub db: PathBuf,
    /// Absolute path of the truth database, if any.
    pub truth: Option<PathBuf>,
    pub expected: Expected,
}

impl Sample {
    /// The sidecar files present next to `db` (`db.sqlite3-wal`, `db.sqlite3-shm`).
    pub fn sidecars(&self) -> Vec<PathBuf> {
        ["-wal", "-shm", "-journal"]
            .iter()
            .map(|s| self.dir.join(format!("db.sqlite3{s}")))
            .filter(|p| p.exists())
            .collect()
    }

    /// Copy `db.sqlite3` and its sidecars into `dest_dir` (created if needed) and return
    /// the path of the copied database. Use this before opening a sample with SQLite.
    pub fn copy_to(&self, dest_dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dest_dir)?;
        let db = dest_dir.join("db.sqlite3");
        std::fs::copy(&self.db, &db)?;
        for side in self.sidecars() {
            std::fs::copy(&side, dest_dir.join(side.file_name().unwrap()))?;
        }
        Ok(db)
    }
}

/// Join a relative path (which may start with `../`) onto `dir` lexically.
pub(crate) fn resolve(dir: &Path, rel: &str) -> PathBuf {
    let mut out = dir.to_path_buf();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." if out.file_name().is_some() => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out
}

/// Read `sample_dir/expected.json`.
pub fn load_expected(sample_dir: &Path) -> Result<Expected> {
    let path = sample_dir.join("expected.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// Load the sample stored in `sample_dir`.
pub fn load_sample(sample_dir: &Path) -> Result<Sample> {
    let expected = load_expected(sample_dir)?;
    let truth = expected.truth.as_ref().map(|t| resolve(sample_dir, t));
    Ok(Sample {
        name: expected.name.clone(),
        dir: sample_dir.to_path_buf(),
        db: sample_dir.join("db.sqlite3"),
        truth,
        expected,
    })
}

/// The samples committed under `repo_root/corrupt-samples/`, in [`SAMPLE_NAMES`] order.
pub fn committed_samples(repo_root: &Path) -> Result<Vec<Sample>> {
    committed_samples_in(&repo_root.join("corrupt-samples"))
}

/// The samples stored in `corpus_dir` (a directory holding `<name>/expected.json`).
pub fn committed_samples_in(root: &Path) -> Result<Vec<Sample>> {
    SAMPLE_NAMES
        .iter()
        .map(|name| load_sample(&root.join(name)))
        .collect()
}

/// Generate the sample `name` (one of [`SAMPLE_NAMES`]) into `out_dir/<name>/`, writing
/// its truth under `out_dir/_truth/`, from [`DEFAULT_SEED`].
pub fn generate(name: &str, out_dir: &Path, scale: Scale) -> Result<Sample> {
    generate_with_seed(name, out_dir, scale, DEFAULT_SEED)
}

/// Generate every sample into `out_dir`, from [`DEFAULT_SEED`].
pub fn generate_all(out_dir: &Path, scale: Scale) -> Result<Vec<Sample>> {
    generate_all_with_seed(out_dir, scale, DEFAULT_SEED)
}

/// Damaged pages as short text: `58`, `5, 28, 29`, or `146-243` for runs.
pub fn pages_summary(pages: &[u32]) -> String {
    if pages.is_empty() {
        return "-".into();
    }
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &p in pages {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == p => *end = p,
            _ => runs.push((p, p)),
        }
    }
    runs.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The README table of samples: one Markdown row per sample.
pub fn markdown_table(samples: &[Sample]) -> String {
    let mut out = String::from(
        "| sample | page size | damaged pages | what was done | perfect recovery (rows in place / truth rows) | sqlite-rescue today |\n\
         |---|---|---|---|---|---|\n",
    );
    for s in samples {
        let e = &s.expected;
        let perfect = if s.name == "empty-file" {
            "nothing to recover: report an empty file, do not crash".to_string()
        } else if !e.expect.usable {
            "nothing to recover: report the file as not a database".to_string()
        } else {
            let rows: u64 = e.tables.values().map(|t| t.rows).sum();
            let ceil: u64 = e.tables.values().map(|t| t.rows - t.destroyed).sum();
            let hit: Vec<String> = e
                .tables
                .iter()
                .filter(|(_, t)| t.destroyed > 0)
                .map(|(n, t)| format!("{n} {}/{}", t.rows - t.destroyed, t.rows))
                .collect();
            let mut p = format!("{ceil}/{rows}");
            if !hit.is_empty() {
                p.push_str(&format!(" ({})", hit.join(", ")));
            }
            if e.expect.values_unknowable {
                p.push_str("; values may be altered: flag spurious rows");
            }
            p
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | to be measured |\n",
            s.name,
            e.page_size
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            pages_summary(&e.damaged_pages),
            e.damage.replace('|', "\\|"),
            perfect
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_summary_collapses_runs() {
        assert_eq!(pages_summary(&[]), "-");
        assert_eq!(
            pages_summary(&[5, 28, 29, 42, 203, 204]),
            "5, 28-29, 42, 203-204"
        );
    }

    #[test]
    fn resolve_handles_parent_components() {
        let dir = Path::new("/x/corrupt-samples/leaf-zeroed");
        assert_eq!(
            resolve(dir, "../_truth/a.sqlite3"),
            Path::new("/x/corrupt-samples/_truth/a.sqlite3")
        );
        assert_eq!(resolve(dir, "db.sqlite3"), dir.join("db.sqlite3"));
    }

    #[test]
    fn scale_parses() {
        assert_eq!("large".parse::<Scale>(), Ok(Scale::Large));
        assert!("huge".parse::<Scale>().is_err());
    }
}
