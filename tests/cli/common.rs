//! Shared test helpers: every test that runs a command proves the source was not touched.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The database and the sidecars SQLite may keep beside it.
pub fn source_files(db: &Path) -> Vec<PathBuf> {
    let mut out = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        out.push(PathBuf::from(name));
    }
    out
}

/// What one source file looked like: absent, or its hash, size, mtime and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    Absent,
    Unreadable {
        mtime: Option<SystemTime>,
        len: u64,
    },
    Present {
        sha256: String,
        len: u64,
        mtime: Option<SystemTime>,
        mode: u32,
    },
}

pub fn file_state(path: &Path) -> FileState {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return FileState::Absent;
    };
    if meta.is_dir() {
        return FileState::Unreadable {
            mtime: meta.modified().ok(),
            len: 0,
        };
    }
    match std::fs::read(path) {
        Ok(bytes) => FileState::Present {
            sha256: hex::encode(Sha256::digest(&bytes)),
            len: meta.len(),
            mtime: meta.modified().ok(),
            mode: meta.permissions().mode(),
        },
        Err(_) => FileState::Unreadable {
            mtime: meta.modified().ok(),
            len: meta.len(),
        },
    }
}

/// Records the source files (db, -wal, -shm, -journal) and checks later that none of them
/// changed: same presence, bytes, size, mtime and mode.
pub struct SourceGuard {
    files: Vec<(PathBuf, FileState)>,
}

impl SourceGuard {
    pub fn new(db: &Path) -> SourceGuard {
        SourceGuard {
            files: source_files(db)
                .into_iter()
                .map(|p| {
                    let s = file_state(&p);
                    (p, s)
                })
                .collect(),
        }
    }

    pub fn assert_unchanged(&self) {
        for (path, before) in &self.files {
            let after = file_state(path);
            assert_eq!(
                &after,
                before,
                "source file {} changed during the command",
                path.display()
            );
        }
    }
}

/// The path of the built binary, run through assert_cmd.
pub fn cmd() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("sqlite-rescue").expect("binary built")
}

/// Runs `recover --dry-run -q DB`, checking that DB and its sidecars were left as they
/// were; returns the exit code and what was printed.
pub fn dry_run(db: &Path) -> (Option<i32>, String) {
    let guard = SourceGuard::new(db);
    let out = cmd()
        .args(["recover", "--dry-run", "-q"])
        .arg(db)
        .output()
        .expect("the binary runs");
    guard.assert_unchanged();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Every row `sql` returns, every column as SQLite gives it.
pub fn query_rows(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
    let mut stmt = conn.prepare(sql).expect("prepare");
    let n = stmt.column_count();
    stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

/// `(id, name)` of every row of table `t`, in id order.
pub fn id_name_rows(path: &Path) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(path).expect("open");
    let mut stmt = conn
        .prepare("SELECT id, name FROM t ORDER BY id")
        .expect("table t");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("rows");
    rows
}

/// Whether this process runs as root (root reads files whatever their mode).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("readable")))
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Lists every entry under `dir`, recursively (for "nothing left behind" checks).
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}
