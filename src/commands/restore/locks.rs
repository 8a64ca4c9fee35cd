//! SQLite's locks on a database, seen from outside: which other process holds what, without
//! taking any lock or opening the database with SQLite. `restore` and `undo` both refuse to
//! swap files under a process that holds one.

use crate::error::{Error, Result};
use crate::source::pagefile::sidecar;
use crate::util::quote::shell;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// SQLite's lock bytes in the database file (os_unix.c: PENDING_BYTE and what follows).
const PENDING_BYTE: i64 = 0x4000_0000;
const RESERVED_BYTE: i64 = PENDING_BYTE + 1;
const SHARED_FIRST: i64 = PENDING_BYTE + 2;
const SHARED_SIZE: i64 = 510;

/// SQLite's lock bytes in the `-shm` file: 8 WAL lock slots from byte 120, then the DMS byte.
const SHM_LOCK_FIRST: i64 = 120;
const SHM_DMS: i64 = 128;

/// A lock some other process holds on the database or its `-shm`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HeldLock {
    /// The file the lock is on (DB or DB-shm).
    pub file: PathBuf,
    /// SQLite's name for the lock and what it means, e.g. "SHARED (a read transaction is open)".
    pub lock: String,
    /// "read" or "write".
    pub kind: String,
    /// The holder's process id, as `fcntl(F_GETLK)` reports it (None when unknown, e.g. OFD locks).
    pub pid: Option<i32>,
}

impl std::fmt::Display for HeldLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} lock on {}",
            self.lock,
            self.kind,
            self.file.display()
        )?;
        match self.pid {
            Some(pid) => write!(f, ", held by pid {pid}"),
            None => write!(f, ", holder's pid unknown"),
        }
    }
}

/// The refusal for a database others hold locks on; `command` is what to run again.
pub(crate) fn refuse_locked(db: &Path, locks: &[HeldLock], command: &str) -> Error {
    let list: Vec<String> = locks.iter().map(ToString::to_string).collect();
    let pids: Vec<String> = locks
        .iter()
        .filter_map(|l| l.pid)
        .map(|p| p.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let who = if pids.is_empty() {
        String::new()
    } else {
        format!(
            " (pid {}; see `ps -o pid,args -p {}`)",
            pids.join(", "),
            pids.join(",")
        )
    };
    Error::Refused(format!(
        "{} is open in another process{who}: {}. Stop the application and every process using it \
         (find them with `fuser -v {}` or `lsof {}`), then run {command} again; nothing was changed \
         (--force goes ahead anyway)",
        db.display(),
        list.join("; "),
        shell(db),
        shell(db)
    ))
}

/// The locks other processes hold on `db` (SQLite's PENDING, RESERVED and SHARED bytes) and
/// on `db-shm` (the WAL lock slots and the DMS byte that every open WAL connection holds).
/// Uses `fcntl(F_GETLK)`, which takes no lock. Locks held by this process are not seen, and a
/// connection to a rollback-journal database that is open but idle holds no lock at all.
pub(crate) fn probe_locks(db: &Path) -> Result<Vec<HeldLock>> {
    let mut held = Vec::new();
    let file = File::open(db).map_err(|e| Error::io(db, e))?;
    let db_ranges = [
        (PENDING_BYTE, 1, "PENDING (a writer is about to commit)"),
        (RESERVED_BYTE, 1, "RESERVED (a write transaction is open)"),
        (
            SHARED_FIRST,
            SHARED_SIZE,
            "SHARED (a read transaction is open)",
        ),
    ];
    for (start, len, name) in db_ranges {
        if let Some(l) = test_lock(&file, start, len).map_err(|e| Error::io(db, e))? {
            held.push(HeldLock {
                file: db.to_path_buf(),
                lock: name.to_string(),
                kind: l.kind.to_string(),
                pid: l.pid,
            });
        }
    }
    let shm = sidecar(db, "-shm");
    match File::open(&shm) {
        Ok(file) => {
            for byte in SHM_LOCK_FIRST..=SHM_DMS {
                if let Some(l) = test_lock(&file, byte, 1).map_err(|e| Error::io(&shm, e))? {
                    held.push(HeldLock {
                        file: shm.clone(),
                        lock: shm_lock_name(byte),
                        kind: l.kind.to_string(),
                        pid: l.pid,
                    });
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&shm, e)),
    }
    Ok(held)
}

fn shm_lock_name(byte: i64) -> String {
    match byte - SHM_LOCK_FIRST {
        0 => "WAL WRITE (a write transaction is open)".to_string(),
        1 => "WAL CHECKPOINT (a checkpoint is running)".to_string(),
        2 => "WAL RECOVER (the WAL index is being rebuilt)".to_string(),
        n @ 3..=7 => format!("WAL READ{} (a read transaction is open)", n - 3),
        _ => "WAL DMS (a connection has the database open)".to_string(),
    }
}

struct TestedLock {
    kind: &'static str,
    pid: Option<i32>,
}

/// Asks the kernel whether a write lock on `len` bytes at `start` would conflict with a lock
/// another process holds; returns that lock if so. Takes no lock itself.
fn test_lock(file: &File, start: i64, len: i64) -> std::io::Result<Option<TestedLock>> {
    // SAFETY: `libc::flock` is a plain C struct of integers, for which all-zero is valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    // cast: F_WRLCK and SEEK_SET are small constants (at most 2) that fit a c_short
    #[allow(clippy::cast_possible_truncation)]
    {
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
    }
    fl.l_start = start as libc::off_t;
    fl.l_len = len as libc::off_t;
    // SAFETY: the descriptor belongs to `file`, which outlives the call; F_GETLK reads and
    // writes only the `flock` struct we pass, which lives on this stack frame.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    if libc::c_int::from(fl.l_type) == libc::F_UNLCK {
        return Ok(None);
    }
    let kind = if libc::c_int::from(fl.l_type) == libc::F_RDLCK {
        "read"
    } else {
        "write"
    };
    Ok(Some(TestedLock {
        kind,
        pid: (fl.l_pid > 0).then_some(fl.l_pid),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shm_lock_names() {
        assert!(shm_lock_name(120).starts_with("WAL WRITE"));
        assert!(shm_lock_name(123).starts_with("WAL READ0"));
        assert!(shm_lock_name(127).starts_with("WAL READ4"));
        assert!(shm_lock_name(128).starts_with("WAL DMS"));
    }
}
