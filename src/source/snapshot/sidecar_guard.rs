//! A sidecar named where the database belongs: `app.db-wal` given to a command that wants
//! `app.db`. Every command refuses it (exit 2), naming the database it belongs to.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What each sidecar is, by the suffix SQLite gives it.
const SIDECAR_KINDS: [(&str, &str); 3] = [
    ("-wal", "write-ahead log"),
    ("-shm", "shared-memory WAL index"),
    ("-journal", "rollback journal"),
];

/// WAL header magic (big-endian; the last bit says which byte order the checksums use).
const WAL_MAGIC: [u32; 2] = [0x377f_0682, 0x377f_0683];
/// The WAL format version, in the WAL header and in the -shm index header.
const WAL_VERSION: u32 = 3_007_000;
/// Rollback-journal header magic.
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
/// The -shm index header is written twice, 48 bytes each, before the checkpoint info.
const SHM_HEADER: usize = 48;

/// Refuses (exit 2) a database's `-wal`, `-shm` or `-journal` named where the database itself
/// belongs, naming the database. A sidecar is known by its name (it ends in the suffix and
/// does not start with SQLite's database header) or by its content (WAL magic, the -shm
/// index header, journal magic), whatever its name. A path that cannot be read is left for
/// the caller to report.
pub fn refuse_sidecar(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if !meta.is_file() {
        return Ok(());
    }
    let mut head = Vec::with_capacity(2 * SHM_HEADER);
    if let Ok(f) = File::open(path) {
        let _ = f.take(2 * SHM_HEADER as u64).read_to_end(&mut head);
    }
    let by_name = SIDECAR_KINDS.iter().find(|(suffix, _)| {
        path.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() > suffix.len() && n.ends_with(suffix))
    });
    let by_content = sidecar_by_content(&head);
    let looks_like_database = head.starts_with(crate::format::header::MAGIC);
    let (suffix, what) = match (by_content, by_name) {
        (Some(kind), _) => kind,
        (None, Some(kind)) if !looks_like_database => *kind,
        _ => return Ok(()),
    };
    let database = by_name.map(|(s, _)| {
        let name = path.as_os_str().to_string_lossy();
        PathBuf::from(&name[..name.len() - s.len()])
    });
    let reason = match &database {
        Some(db) => format!(
            "this is the {what} ({suffix}) of the database {db}, not a database: run the \
             command on {db} instead (its -wal, -shm and -journal are read with it)",
            db = db.display()
        ),
        None => format!(
            "this is a SQLite {what} ({suffix} file), not a database: run the command on the \
             database it belongs to (SQLite keeps it beside the database, named as the \
             database with {suffix} added)"
        ),
    };
    Err(Error::Sidecar {
        path: path.to_path_buf(),
        database,
        reason,
    })
}

/// The sidecar whose header `head` (the first bytes of a file) is, if any.
fn sidecar_by_content(head: &[u8]) -> Option<(&'static str, &'static str)> {
    let be = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let le = |at: usize| {
        head.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let kind = |suffix: &str| SIDECAR_KINDS.iter().copied().find(|(s, _)| *s == suffix);
    if be(0).is_some_and(|m| WAL_MAGIC.contains(&m)) && be(4) == Some(WAL_VERSION) {
        return kind("-wal");
    }
    if head.starts_with(&JOURNAL_MAGIC) {
        return kind("-journal");
    }
    // The index header's version is in the writer's byte order, in both copies.
    let shm = (be(0) == Some(WAL_VERSION) && be(SHM_HEADER) == Some(WAL_VERSION))
        || (le(0) == Some(WAL_VERSION) && le(SHM_HEADER) == Some(WAL_VERSION));
    if shm {
        return kind("-shm");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[(usize, &[u8])]) -> Vec<u8> {
        let mut h = vec![0u8; 2 * SHM_HEADER];
        for (at, b) in bytes {
            h[*at..*at + b.len()].copy_from_slice(b);
        }
        h
    }

    #[test]
    fn each_sidecar_is_known_by_its_header() {
        let version = WAL_VERSION.to_be_bytes();
        for magic in WAL_MAGIC {
            let wal = head(&[(0, &magic.to_be_bytes()), (4, &version)]);
            assert_eq!(sidecar_by_content(&wal).map(|k| k.0), Some("-wal"));
        }
        let journal = head(&[(0, &JOURNAL_MAGIC)]);
        assert_eq!(sidecar_by_content(&journal).map(|k| k.0), Some("-journal"));
        for v in [WAL_VERSION.to_le_bytes(), WAL_VERSION.to_be_bytes()] {
            let shm = head(&[(0, &v), (SHM_HEADER, &v)]);
            assert_eq!(sidecar_by_content(&shm).map(|k| k.0), Some("-shm"));
        }
        // A database, zeroes, and a WAL magic with the wrong version are not sidecars.
        assert_eq!(sidecar_by_content(b"SQLite format 3\0"), None);
        assert_eq!(sidecar_by_content(&[0u8; 200]), None);
        let wrong = head(&[(0, &WAL_MAGIC[0].to_be_bytes()), (4, &[0, 0, 0, 1])]);
        assert_eq!(sidecar_by_content(&wrong), None);
        assert_eq!(sidecar_by_content(&[]), None);
    }

    #[test]
    fn a_sidecar_names_its_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        std::fs::write(&db, b"SQLite format 3\0").unwrap();
        for suffix in ["-wal", "-shm", "-journal"] {
            let side = dir.path().join(format!("app.db{suffix}"));
            std::fs::write(&side, b"").unwrap();
            match refuse_sidecar(&side) {
                Err(Error::Sidecar { database, .. }) => assert_eq!(database, Some(db.clone())),
                other => panic!("{suffix}: {other:?}"),
            }
        }
        assert!(refuse_sidecar(&db).is_ok());
        assert!(refuse_sidecar(&dir.path().join("missing-wal")).is_ok());
        assert!(refuse_sidecar(dir.path()).is_ok());
    }
}
