//! What the `-shm` says the `-wal` held. SQLite updates the `-shm` header only after a
//! transaction's frames are in the `-wal`, so when the header records committed frames that
//! the `-wal` no longer holds (cut short at a frame boundary, replaced, or gone) and that no
//! checkpoint copied into the main file, those transactions are in no file: a loss SQLite
//! itself would not see, since the first connection to open the database rebuilds the `-shm`
//! from the `-wal` it finds.

use super::{PageFile, WalInfo, MAX_PAGES_IGNORED};
use crate::format::shm::{frame_offset, frame_page, WalIndexHeader, HEADER_SIZE};
use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Committed transactions the `-shm` records and no file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalIndexLoss {
    pub path: PathBuf,
    /// The last frame of the last transaction the `-shm` records as committed.
    pub frames_recorded: u32,
    /// Frames a checkpoint had copied into the main file.
    pub frames_checkpointed: u32,
    /// Whether a `-wal` was beside the database.
    pub wal_beside: bool,
    /// Committed frames the `-wal` holds and that are applied (0 without a `-wal`).
    pub frames_applied: u64,
    /// Committed frames past both: what they wrote is in no file.
    pub frames_lost: u64,
    /// The pages those frames wrote, as the `-shm` records them (sorted, each once, at most
    /// [`MAX_PAGES_IGNORED`]): the tables they belong to miss rows, or miss changes.
    #[serde(skip)]
    pub pages_lost: Vec<u32>,
}

impl WalIndexLoss {
    /// The loss in words, for a reader of either command's report.
    pub fn describe(&self) -> String {
        let lost = self.frames_lost;
        if self.wal_beside {
            format!(
                "the -shm records {lost} committed -wal frame(s) past the {} the -wal holds: the \
                 -wal was cut short or replaced after SQLite wrote it, and the transactions those \
                 frames wrote are in neither file (only a backup taken after them still holds \
                 them)",
                self.frames_applied
            )
        } else {
            format!(
                "no -wal is beside the database, yet its -shm records {lost} committed -wal \
                 frame(s) that no checkpoint copied into the main file: the transactions they \
                 wrote are in neither file (put the -wal back beside the database and run \
                 again, if it still exists)"
            )
        }
    }
}

/// A `-shm` larger than this is read for its header only (it indexes 8 million frames: a
/// `-wal` of 32 GiB in pages of 4096 bytes).
const MAX_INDEX_BYTES: u64 = 1 << 26;

impl PageFile {
    /// Compares the `-shm` at `path` with the `-wal` loaded (if any). It speaks only when it
    /// can be trusted to speak of this `-wal`: a database in WAL mode, a header whose two
    /// copies agree and whose checksum is right, of the database's page size, and either no
    /// `-wal` at all or a usable one whose salts are the header's (a `-wal` restarted since,
    /// or one of another database, says nothing here).
    pub(super) fn check_wal_index(&mut self, path: &Path) {
        if !self.geometry.wal_mode() && self.wal.is_none() {
            return;
        }
        let Some(index) = Index::read(path, self.geometry.page_size, self.wal.as_ref()) else {
            return;
        };
        if index.applied > 0 && u64::from(index.header.checkpointed) > index.applied {
            self.skip_checkpointed_wal();
        }
        self.wal_index_loss = index.loss(path, self.wal.is_some());
    }

    /// Every frame the `-wal` holds was copied into the main file by a checkpoint that went
    /// further (the `-wal` was cut short since): the main file's pages are newer than any
    /// of its frames, so they are read alone, as SQLite reads them while its `-shm` says so.
    fn skip_checkpointed_wal(&mut self) {
        self.wal_pages = std::sync::Arc::default();
        self.geometry.page_count = self.geometry.file_pages;
        if let Some(w) = self.wal.as_mut() {
            w.older_than_main_file = true;
            w.pages = 0;
            w.db_size = None;
        }
    }
}

/// A trusted `-shm`: its file, its header, and the committed frames the `-wal` applies.
struct Index {
    file: File,
    len: u64,
    header: WalIndexHeader,
    applied: u64,
}

impl Index {
    fn read(path: &Path, page_size: u32, wal: Option<&WalInfo>) -> Option<Index> {
        let file = File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        let mut head = [0u8; HEADER_SIZE];
        file.read_exact_at(&mut head, 0).ok()?;
        let header = WalIndexHeader::parse(&head)?;
        if header.page_size != page_size {
            return None;
        }
        let applied = match wal {
            None => 0,
            Some(w) if w.unusable.is_none() && w.salts == Some(header.salts) => w.committed_frames,
            Some(_) => return None,
        };
        Some(Index {
            file,
            len,
            header,
            applied,
        })
    }

    /// The committed frames recorded past both what the `-wal` applies and what was
    /// checkpointed, if any.
    fn loss(&self, path: &Path, wal_beside: bool) -> Option<WalIndexLoss> {
        let header = &self.header;
        let covered = self.applied.max(u64::from(header.checkpointed));
        let recorded = u64::from(header.last_frame);
        if recorded <= covered {
            return None;
        }
        Some(WalIndexLoss {
            path: path.to_path_buf(),
            frames_recorded: header.last_frame,
            frames_checkpointed: header.checkpointed,
            wal_beside,
            frames_applied: self.applied,
            frames_lost: recorded - covered,
            // covered < recorded <= u32::MAX
            pages_lost: pages_of(&self.file, self.len, header, u32::try_from(covered).ok()?),
        })
    }
}

/// The pages frames `after + 1..=header.last_frame` wrote, as far as the file holds them.
fn pages_of(file: &File, len: u64, header: &WalIndexHeader, after: u32) -> Vec<u32> {
    let last = header.last_frame;
    let needed = frame_offset(last)
        .and_then(|o| u64::try_from(o).ok())
        .map_or(len, |o| o.saturating_add(4));
    let size = needed.min(len);
    if size > MAX_INDEX_BYTES {
        return Vec::new();
    }
    // Sized by the file's own length (at most what the last frame needs), never by a field.
    let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
    if file.read_exact_at(&mut bytes, 0).is_err() {
        return Vec::new();
    }
    let mut pages = BTreeSet::new();
    for frame in after.saturating_add(1)..=last {
        match frame_page(&bytes, frame, header) {
            Some(p) => {
                pages.insert(p);
            }
            None if frame_offset(frame).is_none_or(|o| o >= bytes.len()) => break,
            None => {}
        }
        if pages.len() >= MAX_PAGES_IGNORED {
            break;
        }
    }
    pages.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss_of(path: &Path, page_size: u32, wal: Option<&WalInfo>) -> Option<WalIndexLoss> {
        Index::read(path, page_size, wal)?.loss(path, wal.is_some())
    }

    /// A header that claims four billion frames over a file holding two: what the file holds
    /// is read, nothing is sized by the claim, and the loss is still said.
    #[test]
    fn a_claim_larger_than_the_file_reads_only_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db-shm");
        let mut bytes = crate::format::shm::test_header(u32::MAX, 0);
        bytes.extend_from_slice(&5u32.to_le_bytes());
        bytes.extend_from_slice(&9u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let loss = loss_of(&path, 4096, None).unwrap();
        assert_eq!(loss.frames_lost, u64::from(u32::MAX));
        assert_eq!(loss.pages_lost, vec![5, 9]);
        assert!(!loss.wal_beside);
        assert!(loss_of(&path, 1024, None).is_none(), "another page size");
        let other = WalInfo {
            salts: Some((1, 2)),
            ..WalInfo::default()
        };
        assert!(loss_of(&path, 4096, Some(&other)).is_none(), "another -wal");
        let this = WalInfo {
            salts: Some((0x0102_0304, 0x0506_0708)),
            committed_frames: 7,
            ..WalInfo::default()
        };
        let loss = loss_of(&path, 4096, Some(&this)).unwrap();
        assert_eq!(loss.frames_lost, u64::from(u32::MAX) - 7);
        assert!(loss.pages_lost.is_empty(), "frames 8 on are past the file");
    }
}
