//! Byte-exact copies of a database and its sidecars, hashed in the same pass.
//!
//! The source is only ever opened for reading with plain file I/O: never by SQLite (which
//! could checkpoint or delete the WAL), never locked. Each file is read exactly once; the
//! SHA-256 is computed from the same buffer that is written to the copy. Files are stat'ed
//! before and after the copy, and the whole set is taken again if anything moved.

use crate::error::{Error, Result};
use crate::source::pagefile::sidecar;
use crate::util::paths::resolved;
use crate::util::progress::Progress;

mod folder;
mod seal;
mod sidecar_guard;

pub use sidecar_guard::refuse_sidecar;

use folder::{prepare_dir, DirGuard};
pub(crate) use seal::Sealing;
use seal::Sync;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How many times the whole set of files is copied before giving up on a changing source.
pub(crate) const ATTEMPTS: u32 = 3;

/// The sidecars SQLite may keep beside a database, with the role each one plays, in the order
/// they are copied: the `-shm` before the `-wal`, because SQLite records a commit in the
/// `-shm` only after its frames are in the `-wal`, so a copy taken while the application
/// writes (`--allow-changing`) never holds a `-shm` ahead of its `-wal`.
pub(crate) const SIDECARS: [(&str, &str); 3] =
    [("-shm", "shm"), ("-wal", "wal"), ("-journal", "journal")];

/// The name of the manifest inside a snapshot folder.
pub(crate) const MANIFEST_NAME: &str = "manifest.json";

const CHUNK: usize = 1 << 20;

/// How many bytes may wait in the page cache before the writeback thread pushes them to disk.
const WRITEBACK_EVERY: u64 = 32 << 20;

#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// Keep the last copy (with a warning in the manifest) if the source keeps changing.
    pub allow_changing: bool,
    pub progress: Progress,
    /// Synced to the disk before it counts as taken: evidence that outlives the run. A
    /// private copy a diagnosis reads and deletes is not, and spares the disk its writes.
    pub durable: bool,
}

/// One copied file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestFile {
    /// File name inside the snapshot folder (the source's own name).
    pub name: String,
    /// "db", "wal", "shm" or "journal".
    pub role: String,
    /// Bytes copied.
    pub size: u64,
    /// SHA-256 of the bytes copied, lowercase hex.
    pub sha256: String,
    /// The source file's modification time, RFC 3339 UTC.
    pub mtime: String,
}

/// What a snapshot holds and where it came from; written to `DIR/manifest.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Absolute path of the source database.
    pub source: PathBuf,
    /// The snapshot folder (absolute).
    pub dir: PathBuf,
    /// The database first, then its sidecars.
    pub files: Vec<ManifestFile>,
    pub tool_version: String,
    /// The SQLite bundled into the tool that took the snapshot.
    pub sqlite_version: String,
    pub host: String,
    /// When the copy finished, RFC 3339 UTC.
    pub taken_at: String,
    /// How many passes over the files were needed (more than one if the source changed).
    pub attempts: u32,
    /// Anything a reader of the snapshot must know (e.g. the source changed during the copy).
    pub warnings: Vec<String>,
}

impl Manifest {
    /// The copy of the database inside the snapshot folder (its sidecars sit beside it
    /// under SQLite's names, so SQLite and `PageFile` find them).
    pub(crate) fn db_path(&self) -> PathBuf {
        let name = self
            .files
            .iter()
            .find(|f| f.role == "db")
            .map_or("db", |f| f.name.as_str());
        self.dir.join(name)
    }

    /// Where the manifest was written.
    pub(crate) fn manifest_path(&self) -> PathBuf {
        self.dir.join(MANIFEST_NAME)
    }

    /// The copied file playing `role`, if there was one.
    pub(crate) fn file(&self, role: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.role == role)
    }
}

/// A source file to copy: where it is, what it is, and what it looked like before.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    path: PathBuf,
    name: String,
    role: &'static str,
    stat: Stat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    size: u64,
    mtime: Option<SystemTime>,
}

impl Stat {
    fn of(meta: &std::fs::Metadata) -> Stat {
        Stat {
            size: meta.len(),
            mtime: meta.modified().ok(),
        }
    }
}

/// Copies `db` and every sidecar beside it into `into` (which must not exist, or be empty),
/// and writes `into/manifest.json` last. On failure nothing is left in `into`.
pub fn take(db: &Path, into: &Path, opts: &SnapshotOptions) -> Result<Manifest> {
    take_reading(db, into, opts, &|file| Box::new(file))
}

/// [`take`], except that a durable snapshot is synced behind the caller: the copies are
/// complete and hashed when this returns, and reach the disk (the manifest last, once they
/// have) on a thread of their own while the caller reads them. [`Sealing::finish`] waits
/// for that and says whether it worked; until then the folder has no manifest.
pub(crate) fn take_sealing_behind(
    db: &Path,
    into: &Path,
    opts: &SnapshotOptions,
) -> Result<(Manifest, Sealing)> {
    let (manifest, guard) = copy_set(db, into, opts, false, &|file| Box::new(file))?;
    if !opts.durable {
        seal::seal(into, &manifest, guard, Sync::Nothing)?;
        return Ok((manifest, Sealing::done()));
    }
    let sealing = Sealing::start(into, manifest.clone(), guard)?;
    Ok((manifest, sealing))
}

/// How a copy reads an opened source file: the file itself, or (in tests) a reader wrapped
/// around it that fails part-way, standing in for a read error no test can cause for real.
type ReadThrough<'r> = &'r dyn for<'f> Fn(&'f File) -> Box<dyn Read + 'f>;

/// [`take`], reading every source file through `read_through`.
fn take_reading(
    db: &Path,
    into: &Path,
    opts: &SnapshotOptions,
    read_through: ReadThrough<'_>,
) -> Result<Manifest> {
    let (manifest, guard) = copy_set(db, into, opts, opts.durable, read_through)?;
    let sync = if opts.durable {
        Sync::Folder
    } else {
        Sync::Nothing
    };
    seal::seal(into, &manifest, guard, sync)?;
    Ok(manifest)
}

/// Copies and hashes the set of files, each synced as it is copied when `sync_copies`; the
/// guard removes them again unless the snapshot is sealed.
fn copy_set(
    db: &Path,
    into: &Path,
    opts: &SnapshotOptions,
    sync_copies: bool,
    read_through: ReadThrough<'_>,
) -> Result<(Manifest, DirGuard)> {
    let source = resolved(db);
    refuse_sidecar(db)?;
    check_source(db)?;
    let name = db
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::unusable(db, "has no file name usable in a snapshot"))?
        .to_string();
    let mut guard = prepare_dir(into)?;
    let dir = resolved(into);

    let mut warnings = Vec::new();
    let mut attempt = 0;
    let files = loop {
        attempt += 1;
        let sources = list_sources(db, &name)?;
        let total: u64 = sources.iter().map(|s| s.stat.size).sum();
        let bar = opts.progress.bytes("snapshot", total);
        let mut copied = Vec::with_capacity(sources.len());
        let mut changed: Option<String> = None;
        for src in &sources {
            let dest = into.join(&src.name);
            guard.written.push(dest.clone());
            let (file, moved) =
                copy_one(src, &dest, &bar, read_through, sync_copies).map_err(|e| {
                    match e {
                        // Name the folder: whatever was copied into it is removed again.
                        Error::Interrupted { .. } => Error::Interrupted {
                            path: into.to_path_buf(),
                        },
                        other => other,
                    }
                })?;
            if changed.is_none() {
                changed = moved;
            }
            copied.extend(file);
        }
        bar.finish_and_clear();
        // The set as a whole must not have moved either (a WAL appearing, the database
        // written while its WAL was being copied).
        if changed.is_none() {
            let after = list_sources(db, &name)?;
            if after != sources {
                changed = Some(describe_set_change(&sources, &after));
            }
        }
        match changed {
            None => break copied,
            Some(what) if attempt >= ATTEMPTS => {
                if opts.allow_changing {
                    warnings.push(format!(
                        "the source was still changing after {attempt} tries ({what}); this copy may mix old and new pages (taken with --allow-changing)"
                    ));
                    break copied;
                }
                return Err(Error::StillChanging {
                    path: source,
                    attempts: attempt,
                });
            }
            Some(_) => {
                guard.remove_written();
                std::thread::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)));
            }
        }
    };

    let manifest = Manifest {
        source,
        dir,
        files,
        tool_version: crate::VERSION.to_string(),
        sqlite_version: crate::sqlite_version().to_string(),
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        taken_at: rfc3339(SystemTime::now()),
        attempts: attempt,
        warnings,
    };
    Ok((manifest, guard))
}

/// The source must be a readable regular file. Whether it is a database is for the
/// commands that read it to decide.
fn check_source(db: &Path) -> Result<()> {
    let meta = std::fs::metadata(db).map_err(|e| unusable_from_io(db, &e))?;
    if meta.is_dir() {
        return Err(Error::unusable(db, "is a directory, not a database file"));
    }
    if !meta.is_file() {
        return Err(Error::unusable(db, "is not a regular file"));
    }
    File::open(db).map_err(|e| unusable_from_io(db, &e))?;
    Ok(())
}

/// Turns an error from opening or stat'ing an input into the "unusable input" error.
pub(crate) fn unusable_from_io(path: &Path, e: &std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::unusable(path, "no such file"),
        std::io::ErrorKind::PermissionDenied => {
            Error::unusable(path, "permission denied (cannot read the file)")
        }
        _ => Error::unusable(path, e.to_string()),
    }
}

/// The database and the sidecars that exist now, with their sizes and mtimes.
fn list_sources(db: &Path, name: &str) -> Result<Vec<Source>> {
    let meta = std::fs::metadata(db).map_err(|e| unusable_from_io(db, &e))?;
    let mut out = vec![Source {
        path: db.to_path_buf(),
        name: name.to_string(),
        role: "db",
        stat: Stat::of(&meta),
    }];
    for (suffix, role) in SIDECARS {
        let path = sidecar(db, suffix);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(&path, e)),
        };
        if meta.file_type().is_symlink() {
            return Err(Error::Refused(format!(
                "{} is a symbolic link; SQLite would not use it as the database's {role} file. \
                 Copy the files by hand, or remove the link if it is not meant to be there",
                path.display()
            )));
        }
        if !meta.is_file() {
            return Err(Error::Refused(format!(
                "{} exists but is not a regular file; cannot take it as the database's {role} file",
                path.display()
            )));
        }
        out.push(Source {
            path,
            name: format!("{name}{suffix}"),
            role,
            stat: Stat::of(&meta),
        });
    }
    Ok(out)
}

fn describe_set_change(before: &[Source], after: &[Source]) -> String {
    for a in after {
        match before.iter().find(|b| b.path == a.path) {
            None => return format!("{} appeared", a.path.display()),
            Some(b) if b.stat != a.stat => return format!("{} changed", a.path.display()),
            _ => {}
        }
    }
    for b in before {
        if !after.iter().any(|a| a.path == b.path) {
            return format!("{} disappeared", b.path.display());
        }
    }
    "the files changed".to_string()
}

/// Copies one file in a single streaming pass, hashing what is written. Returns the
/// manifest entry and, if the file moved under us, what changed.
fn copy_one(
    src: &Source,
    dest: &Path,
    bar: &indicatif::ProgressBar,
    read_through: ReadThrough<'_>,
    durable: bool,
) -> Result<(Option<ManifestFile>, Option<String>)> {
    let input = match File::open(&src.path) {
        Ok(f) => f,
        // SQLite deletes a rollback journal when its transaction ends, so while the app
        // writes one comes and goes between the listing and the copy: the set moved.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && src.role != "db" => {
            return Ok((None, Some(format!("{} disappeared", src.path.display()))));
        }
        Err(e) => return Err(Error::io(&src.path, e)),
    };
    let mut reader = read_through(&input);
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| Error::io(dest, e))?;
    let (size, digest) = copy_and_hash(&mut *reader, &mut output, src, dest, bar, durable)?;
    if durable {
        output.sync_all().map_err(|e| Error::io(dest, e))?;
    }
    drop(output);
    drop(reader);
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o444))
        .map_err(|e| Error::io(dest, e))?;
    let after_open = input.metadata().map_err(|e| Error::io(&src.path, e))?;
    let after_path = std::fs::symlink_metadata(&src.path).ok();
    let mut changed = None;
    if Stat::of(&after_open) != src.stat || size != src.stat.size {
        changed = Some(format!(
            "{} changed while it was copied",
            src.path.display()
        ));
    } else if after_path.map(|m| Stat::of(&m)) != Some(src.stat) && src.role != "db" {
        changed = Some(format!("{} was replaced", src.path.display()));
    }
    let file = ManifestFile {
        name: src.name.clone(),
        role: src.role.to_string(),
        size,
        sha256: hex::encode(digest),
        mtime: src.stat.mtime.map(rfc3339).unwrap_or_default(),
    };
    Ok((Some(file), changed))
}

/// Streams `reader` into `output` while a second thread hashes the same chunks: one pass over
/// the bytes, with SHA-256 (the slower half) off the copying thread. A third thread syncs what
/// has been written so far while the copy goes on, so the disk works alongside the copy and
/// the caller's final sync has little left to wait for. Returns the bytes copied and their
/// digest.
fn copy_and_hash(
    reader: &mut dyn Read,
    output: &mut File,
    src: &Source,
    dest: &Path,
    bar: &indicatif::ProgressBar,
    durable: bool,
) -> Result<(u64, [u8; 32])> {
    let (to_hasher, chunks) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    let (give_back, returned) = std::sync::mpsc::channel::<Vec<u8>>();
    let written = std::sync::atomic::AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    let syncing = output.try_clone().map_err(|e| Error::io(dest, e))?;
    std::thread::scope(|scope| {
        if durable {
            scope.spawn(|| write_back(&syncing, &written, &done));
        }
        let hasher = scope.spawn(move || {
            let mut hasher = Sha256::new();
            for chunk in chunks {
                hasher.update(&chunk);
                let _ = give_back.send(chunk);
            }
            <[u8; 32]>::from(hasher.finalize())
        });
        let mut spare: Vec<Vec<u8>> = (0..3).map(|_| Vec::with_capacity(CHUNK)).collect();
        let mut size = 0u64;
        let copied = loop {
            // SIGINT/SIGTERM: stop at the next chunk; the caller's guard removes the copies.
            if crate::util::interrupt::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) {
                break Err(Error::Interrupted {
                    path: dest.to_path_buf(),
                });
            }
            let mut buf = match spare.pop() {
                Some(b) => b,
                None => match returned.recv() {
                    Ok(b) => b,
                    Err(_) => break Err(Error::io(dest, std::io::Error::other("hashing stopped"))),
                },
            };
            buf.resize(CHUNK, 0);
            let n = match reader.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    spare.push(buf);
                    continue;
                }
                Err(e) => break Err(Error::io(&src.path, e)),
            };
            buf.truncate(n);
            if let Err(e) = output.write_all(&buf) {
                break Err(Error::io(dest, e));
            }
            size += n as u64;
            written.store(size, std::sync::atomic::Ordering::Relaxed);
            bar.inc(n as u64);
            if to_hasher.send(buf).is_err() {
                break Err(Error::io(dest, std::io::Error::other("hashing stopped")));
            }
        };
        drop(to_hasher);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let digest = hasher
            .join()
            .map_err(|_| Error::io(dest, std::io::Error::other("hashing failed")))?;
        copied.map(|()| (size, digest))
    })
}

/// Syncs `file` each time another [`WRITEBACK_EVERY`] bytes have been written to it, until
/// `done`. A failure here is not reported: the caller's own final sync reports it.
fn write_back(
    file: &File,
    written: &std::sync::atomic::AtomicU64,
    done: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut synced = 0;
    while !done.load(Relaxed) {
        let now = written.load(Relaxed);
        if now - synced >= WRITEBACK_EVERY {
            if file.sync_data().is_err() {
                return;
            }
            synced = now;
        } else {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// RFC 3339 in UTC, to the microsecond.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

#[cfg(test)]
mod tests;
