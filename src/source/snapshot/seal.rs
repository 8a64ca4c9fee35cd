//! Sealing a snapshot: its copies and folder synced, then its manifest written, last, so a
//! folder with a manifest holds every copy it lists. A snapshot without its manifest is not
//! finished, whatever else is in its folder.

use super::folder::DirGuard;
use super::{Manifest, MANIFEST_NAME};
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// What reaches the disk before the manifest is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sync {
    /// Nothing: a private snapshot, read and deleted by the run that took it.
    Nothing,
    /// The folder (the copies were synced as they were written), then the manifest.
    Folder,
    /// Every copy, the folder, then the manifest.
    Everything,
}

/// Writes the manifest of the copies in `into` after syncing what `sync` says, and keeps
/// them (`guard` removes them when this fails).
pub(super) fn seal(
    into: &Path,
    manifest: &Manifest,
    mut guard: DirGuard,
    sync: Sync,
) -> Result<()> {
    if sync == Sync::Everything {
        for file in &manifest.files {
            let path = into.join(&file.name);
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
    }
    if sync != Sync::Nothing {
        sync_dir(into)?;
    }
    write_manifest(into, manifest, &mut guard, sync != Sync::Nothing)?;
    guard.disarm();
    Ok(())
}

/// A snapshot being sealed on a thread of its own ([`super::take_sealing_behind`]). Dropped
/// unfinished, it still waits for the thread: no run ends while its snapshot is half sealed.
pub(crate) struct Sealing {
    into: PathBuf,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Sealing {
    pub(super) fn done() -> Sealing {
        Sealing {
            into: PathBuf::new(),
            thread: None,
        }
    }

    pub(super) fn start(into: &Path, manifest: Manifest, guard: DirGuard) -> Result<Sealing> {
        let dir = into.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("snapshot-seal".into())
            .spawn(move || seal(&dir, &manifest, guard, Sync::Everything))
            .map_err(|e| Error::io(into, e))?;
        Ok(Sealing {
            into: into.to_path_buf(),
            thread: Some(thread),
        })
    }

    /// Waits until the snapshot is on the disk with its manifest; an error when it could not
    /// be (its copies are removed then).
    pub(crate) fn finish(mut self) -> Result<()> {
        self.wait()
    }

    fn wait(&mut self) -> Result<()> {
        match self.thread.take() {
            None => Ok(()),
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(Error::io(
                    &self.into,
                    std::io::Error::other("sealing the snapshot stopped"),
                ))
            }),
        }
    }
}

impl Drop for Sealing {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// Writes the manifest to a temporary name, syncs it, and renames it into place.
pub(super) fn write_manifest(
    into: &Path,
    manifest: &Manifest,
    guard: &mut DirGuard,
    durable: bool,
) -> Result<()> {
    let tmp = into.join(".manifest.json.tmp");
    let path = into.join(MANIFEST_NAME);
    guard.written.push(tmp.clone());
    let json = serde_json::to_string_pretty(manifest)
        .map_err(|e| Error::io(&path, std::io::Error::other(e)))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    f.write_all(json.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| if durable { f.sync_all() } else { Ok(()) })
        .map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    guard.written.push(path);
    if durable {
        sync_dir(into)?;
    }
    Ok(())
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}
