//! The snapshot folder: new or empty, and left as it was found when the snapshot fails.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Removes what a failed snapshot wrote: the files, and the folder if we created it.
pub(super) struct DirGuard {
    dir: PathBuf,
    created: Option<PathBuf>,
    pub(super) written: Vec<PathBuf>,
    armed: bool,
}

impl DirGuard {
    pub(super) fn remove_written(&mut self) {
        for p in self.written.drain(..) {
            let _ = std::fs::remove_file(&p);
        }
    }

    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.remove_written();
        if let Some(top) = &self.created {
            // Only folders we made, and only if they are empty now (remove_dir refuses otherwise).
            let mut d = self.dir.clone();
            loop {
                if std::fs::remove_dir(&d).is_err() || d == *top {
                    break;
                }
                match d.parent() {
                    Some(p) => d = p.to_path_buf(),
                    None => break,
                }
            }
        }
    }
}

/// DIR must not exist (it is created) or be an empty folder.
pub(super) fn prepare_dir(into: &Path) -> Result<DirGuard> {
    match std::fs::symlink_metadata(into) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(Error::Refused(format!(
                    "{} exists and is not a folder; give a new or empty folder to --into",
                    into.display()
                )));
            }
            let mut entries = std::fs::read_dir(into).map_err(|e| Error::io(into, e))?;
            if entries.next().is_some() {
                return Err(Error::Refused(format!(
                    "{} is not empty; a snapshot goes into a new or empty folder so nothing is overwritten",
                    into.display()
                )));
            }
            Ok(DirGuard {
                dir: into.to_path_buf(),
                created: None,
                written: Vec::new(),
                armed: true,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Remember the highest folder we create, to remove it again on failure.
            let mut top = into.to_path_buf();
            while let Some(parent) = top.parent() {
                if parent.as_os_str().is_empty() || parent.exists() {
                    break;
                }
                top = parent.to_path_buf();
            }
            std::fs::create_dir_all(into).map_err(|e| Error::io(into, e))?;
            Ok(DirGuard {
                dir: into.to_path_buf(),
                created: Some(top),
                written: Vec::new(),
                armed: true,
            })
        }
        Err(e) => Err(Error::io(into, e)),
    }
}
