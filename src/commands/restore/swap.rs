//! The file moves `restore` and `undo` share: a move that is a rename on one filesystem and a
//! verified copy across two, the swap that moves the live files away and renames what was
//! staged into their place with signals ignored (rolled back if any step fails), and the
//! hashes and fsyncs around it.

use super::locks::{probe_locks, refuse_locked};
use crate::error::{Error, Result};
use crate::source::pagefile::sidecar;
use crate::util::progress::Progress;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// The sidecars SQLite keeps beside a database, in the order they are moved away.
pub(crate) const SIDECARS: [(&str, &str); 3] =
    [("-journal", "journal"), ("-wal", "wal"), ("-shm", "shm")];

/// How a file got where it was moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MoveMethod {
    /// rename(2) on the same filesystem: the very same inode.
    Rename,
    /// Another filesystem: copied, fsynced, hash verified, original removed.
    Copy,
}

/// A live file beside the database (the database itself or a sidecar), before it is moved.
#[derive(Debug, Clone)]
pub(crate) struct Original {
    pub path: PathBuf,
    pub name: String,
    /// "database", "wal", "shm" or "journal".
    pub role: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A file already moved into a keeping folder, so it can be moved back.
#[derive(Debug)]
pub(crate) struct Moved {
    pub original: Original,
    pub backup: PathBuf,
    pub method: MoveMethod,
    /// (size, sha256) when the move was a verified copy.
    pub hash: Option<(u64, String)>,
}

/// A file staged in the database's folder under a temporary name, renamed to `target`
/// (absent by then) by [`swap_in`].
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    pub tmp: PathBuf,
    pub target: PathBuf,
}

/// What [`swap_in`] needs besides the files.
pub(crate) struct SwapOptions<'a> {
    /// Go ahead although other processes hold locks on the database.
    pub force: bool,
    pub progress: &'a Progress,
    /// The command to name in a refusal ("restore", "undo").
    pub command: &'a str,
}

/// The database and the sidecars beside it now: the database first.
pub(crate) fn live_files(db: &Path) -> Result<Vec<Original>> {
    let mut out = Vec::new();
    if std::fs::symlink_metadata(db).is_ok() {
        out.push(original(db, "database")?);
    }
    for (suffix, role) in SIDECARS {
        let path = sidecar(db, suffix);
        if std::fs::symlink_metadata(&path).is_ok() {
            out.push(original(&path, role)?);
        }
    }
    Ok(out)
}

fn original(path: &Path, role: &'static str) -> Result<Original> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    Ok(Original {
        path: path.to_path_buf(),
        name: file_name(path),
        role,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// The order files leave the database's folder: sidecars first, then the database. A
/// database path without its -wal is consistent (the last checkpoint), while a -wal beside
/// a missing or new database could be replayed into the wrong file.
pub(crate) fn leaving_order(files: &[Original]) -> Vec<&Original> {
    let (db, sides): (Vec<&Original>, Vec<&Original>) =
        files.iter().partition(|o| o.role == "database");
    sides.into_iter().chain(db).collect()
}

/// The swap itself, once what goes in is staged beside the database: look at the locks once
/// more (unless forced), then with SIGINT/SIGTERM/SIGHUP ignored move `outgoing` (in
/// [`leaving_order`]) into `keep_dir`, check that no sidecar is left beside the database,
/// and rename each staged file to its target, in the order given (the database last). The
/// folder is fsynced after. If any step fails, what was done is undone and the error says
/// what became of the files.
pub(crate) fn swap_in(
    db: &Path,
    outgoing: &[Original],
    keep_dir: &Path,
    incoming: &[Staged],
    opts: &SwapOptions<'_>,
) -> Result<(Vec<Moved>, Vec<String>)> {
    if crate::util::interrupt::INTERRUPTED.load(Ordering::SeqCst) {
        return Err(Error::Interrupted {
            path: db.to_path_buf(),
        });
    }
    // Look again right before touching anything: staging may have taken a while.
    if !opts.force {
        let locks = probe_locks(db)?;
        if !locks.is_empty() {
            return Err(refuse_locked(db, &locks, opts.command));
        }
    }
    let guard = IgnoreSignals::new();
    let mut moved: Vec<Moved> = Vec::new();
    for orig in leaving_order(outgoing) {
        let target = keep_dir.join(&orig.name);
        match move_file(&orig.path, &target, orig.mode, *opts.progress) {
            Ok((method, hash)) => moved.push(Moved {
                original: orig.clone(),
                backup: target,
                method,
                hash,
            }),
            Err(e) => return Err(roll_back(e, &[], &moved)),
        }
    }
    let left: Vec<String> = std::iter::once(db.to_path_buf())
        .chain(SIDECARS.iter().map(|(s, _)| sidecar(db, s)))
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !left.is_empty() {
        let e = Error::Refused(format!(
            "{} appeared beside the database while swapping (is a process still using it?)",
            left.join(", ")
        ));
        return Err(roll_back(e, &[], &moved));
    }
    let mut placed: Vec<&Staged> = Vec::new();
    for staged in incoming {
        if let Err(e) = std::fs::rename(&staged.tmp, &staged.target) {
            return Err(roll_back(Error::io(&staged.target, e), &placed, &moved));
        }
        placed.push(staged);
    }
    drop(guard);
    let mut warnings = Vec::new();
    let dir = parent_of(db);
    if let Err(e) = sync_dir(&dir) {
        warnings.push(format!("could not fsync {}: {e}", dir.display()));
    }
    Ok((moved, warnings))
}

/// Renames what was put in place back to its temporary name, then moves what was moved back,
/// newest first; the error says what happened to the files.
fn roll_back(err: Error, placed: &[&Staged], moved: &[Moved]) -> Error {
    let mut failed = Vec::new();
    for staged in placed.iter().rev() {
        if let Err(e) = std::fs::rename(&staged.target, &staged.tmp) {
            failed.push(format!(
                "{} could not be taken back out ({e})",
                staged.target.display()
            ));
        }
    }
    for m in moved.iter().rev() {
        if let Err(e) = move_file(
            &m.backup,
            &m.original.path,
            m.original.mode,
            Progress::HIDDEN,
        ) {
            failed.push(format!(
                "{} is still at {} ({e})",
                m.original.path.display(),
                m.backup.display()
            ));
        }
    }
    if moved.is_empty() && placed.is_empty() {
        with_context(err, "nothing was moved")
    } else if failed.is_empty() {
        with_context(err, "the files were moved back; nothing was changed")
    } else {
        with_context(
            err,
            &format!(
                "could not move every file back: {}; move them back by hand",
                failed.join("; ")
            ),
        )
    }
}

/// Adds a note to an error's message, where the error carries one.
pub(crate) fn with_context(err: Error, note: &str) -> Error {
    match err {
        Error::Io { path, source } => Error::Io {
            path,
            source: std::io::Error::new(source.kind(), format!("{source}; {note}")),
        },
        Error::Refused(msg) => Error::Refused(format!("{msg}; {note}")),
        Error::Sqlite { path, message } => Error::Sqlite {
            path,
            message: format!("{message}; {note}"),
        },
        other => other,
    }
}

/// Ignores SIGINT, SIGTERM and SIGHUP while alive, so the moves and the rename run to the end
/// (or are rolled back) once started; the previous handlers come back on drop.
struct IgnoreSignals {
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

impl IgnoreSignals {
    fn new() -> IgnoreSignals {
        let mut saved = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: `sigaction` is a plain C struct, valid when zeroed; we set SIG_IGN with an
            // empty mask, and the kernel writes the old action into `old`, which we own.
            unsafe {
                let mut ignore: libc::sigaction = std::mem::zeroed();
                ignore.sa_sigaction = libc::SIG_IGN;
                libc::sigemptyset(&raw mut ignore.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &raw const ignore, &raw mut old) == 0 {
                    saved.push((sig, old));
                }
            }
        }
        IgnoreSignals { saved }
    }
}

impl Drop for IgnoreSignals {
    fn drop(&mut self) {
        for (sig, old) in &self.saved {
            // SAFETY: `old` is the action the kernel handed back for this signal in `new`;
            // reinstalling it is what it was before, and we pass no place for an old action.
            unsafe {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
    }
}

/// Moves `src` to `dst`, which must not exist: rename on the same filesystem; otherwise copy,
/// fsync, verify the copy's hash, then remove `src`. Returns (size, sha256) for a copy.
pub(crate) fn move_file(
    src: &Path,
    dst: &Path,
    mode: u32,
    progress: Progress,
) -> Result<(MoveMethod, Option<(u64, String)>)> {
    if std::fs::symlink_metadata(dst).is_ok() {
        return Err(Error::Refused(format!(
            "{} already exists; not overwriting it",
            dst.display()
        )));
    }
    match std::fs::rename(src, dst) {
        Ok(()) => return Ok((MoveMethod::Rename, None)),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
        Err(e) => return Err(Error::io(src, e)),
    }
    let len = std::fs::metadata(src).map_err(|e| Error::io(src, e))?.len();
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| Error::io(dst, e))?;
    let bar = progress.bytes("moving", len);
    let copied = copy_hashing(src, &mut out, Some(&bar), false);
    bar.finish_and_clear();
    let verified = copied
        .and_then(|h| {
            out.set_permissions(std::fs::Permissions::from_mode(mode))?;
            out.sync_all()?;
            Ok(h)
        })
        .map_err(|e| Error::io(dst, e))
        .and_then(|h| {
            let again = hash_file(dst, None)?;
            if again == h {
                Ok(h)
            } else {
                Err(Error::io(
                    dst,
                    std::io::Error::other("the copy reads back differently from the original"),
                ))
            }
        });
    let hash = match verified {
        Ok(h) => h,
        Err(e) => {
            let _ = std::fs::remove_file(dst);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::remove_file(src) {
        let _ = std::fs::remove_file(dst);
        return Err(Error::io(src, e));
    }
    Ok((MoveMethod::Copy, Some(hash)))
}

/// Copies `src` into `out` (from its current position), returning (bytes, sha256). When
/// `interruptible`, stops with `ErrorKind::Interrupted` once SIGINT/SIGTERM was received.
pub(crate) fn copy_hashing(
    src: &Path,
    out: &mut File,
    bar: Option<&indicatif::ProgressBar>,
    interruptible: bool,
) -> std::io::Result<(u64, String)> {
    let mut input = File::open(src)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        if interruptible && crate::util::interrupt::INTERRUPTED.load(Ordering::Relaxed) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "interrupted",
            ));
        }
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        total += n as u64;
        if let Some(bar) = bar {
            bar.inc(n as u64);
        }
    }
    out.flush()?;
    Ok((total, hex::encode(hasher.finalize())))
}

/// (size, sha256) of a file.
pub(crate) fn hash_file(
    path: &Path,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<(u64, String)> {
    let mut input = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
        if let Some(bar) = bar {
            bar.inc(n as u64);
        }
    }
    Ok((total, hex::encode(hasher.finalize())))
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(crate) fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "db".to_string(), |n| n.to_string_lossy().into_owned())
}
