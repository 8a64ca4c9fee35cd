//! Sealing a snapshot: its folder synced, and its manifest written last.

use super::folder::DirGuard;
use super::{Manifest, MANIFEST_NAME};
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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
