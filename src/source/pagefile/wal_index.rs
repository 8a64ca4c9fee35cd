//! What the `-shm` says the `-wal` held. SQLite updates the `-shm` header only after a
//! transaction's frames are in the `-wal`, so when the header records committed frames that
//! the `-wal` no longer holds (cut short at a frame boundary, replaced, or gone) and that no
//! checkpoint copied into the main file, those transactions are in no file: a loss SQLite
//! itself would not see, since the first connection to open the database rebuilds the `-shm`
//! from the `-wal` it finds.

use super::sidecars::commits_from;
use super::{PageFile, WalInfo, MAX_PAGES_IGNORED};
use crate::format::shm::{frame_offset, frame_page, WalIndexHeader, HEADER_SIZE};
use crate::format::wal::{FRAME_HEADER_SIZE, WAL_HEADER_SIZE};
use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Committed transactions the `-shm` records and no file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WalIndexGap {
    pub path: PathBuf,
    /// The last frame of the last transaction the `-shm` records as committed.
    pub frames_recorded: u32,
    /// Frames a checkpoint had copied into the main file.
    pub frames_checkpointed: u32,
    /// Whether a `-wal` was beside the database.
    pub wal_beside: bool,
    /// Committed frames the `-wal` holds and that are applied (0 without a `-wal`).
    pub frames_applied: u64,
    /// Committed frames past both that the `-wal` does not hold either (gone, or a frame of
    /// another page in their place): what they wrote is in no file.
    pub frames_missing: u64,
    /// The pages those frames wrote, as the `-shm` records them (sorted, each once, at most
    /// [`MAX_PAGES_IGNORED`]): the tables they belong to miss rows, or miss changes.
    #[serde(skip)]
    pub pages_missing: Vec<u32>,
    /// With no `-wal`: pages of the main file past the count its header states that frames
    /// the `-shm` records as checkpointed wrote. The header is older than the checkpoint (it
    /// stopped before page 1), so these pages hold committed rows the schema no longer
    /// reaches, and the frames missing are certainly lost.
    #[serde(skip)]
    pub checkpointed_past_header: Vec<u32>,
    /// How many there are.
    #[serde(default)]
    pub pages_past_header: usize,
}

impl WalIndexGap {
    /// Whether the frames are certainly lost: a `-wal` is there, cut short or emptied. With
    /// no `-wal` at all they may be in one that was moved or deleted, or the `-shm` may be
    /// stale (a connection in exclusive locking mode keeps its index in memory and leaves an
    /// older `-shm` behind; so does a backup put back beside one): said, not counted.
    pub fn is_loss(&self) -> bool {
        // From the count, which a report read back keeps (the pages themselves it does not).
        self.wal_beside || self.pages_past_header > 0
    }

    /// The gap in words, for a reader of either command's report.
    pub fn describe(&self) -> String {
        let missing = self.frames_missing;
        if self.wal_beside {
            let held = match self.frames_applied {
                0 => "none of which the -wal holds".to_string(),
                n => format!("past the {n} the -wal holds"),
            };
            format!(
                "the -shm records {missing} committed -wal frame(s) {held}: the -wal was cut \
                 short, emptied or overwritten after SQLite wrote it, and the transactions those \
                 frames wrote are in neither file (only a backup taken after them still holds \
                 them)"
            )
        } else if self.pages_past_header > 0 {
            format!(
                "no -wal is beside the database, yet its -shm records {missing} committed -wal \
                 frame(s) that no checkpoint copied into the main file, and a checkpoint that \
                 stopped before page 1 left {} page(s) past the count the header states: the \
                 -wal was moved or deleted, and those transactions are in neither file (put it \
                 back beside the database and run again, if it still exists); rows on those \
                 pages are in lost_and_found",
                self.pages_past_header
            )
        } else {
            format!(
                "no -wal is beside the database, yet its -shm records {missing} committed -wal \
                 frame(s) that no checkpoint copied into the main file: if a -wal was moved or \
                 deleted, put it back beside the database and run again, since without it those \
                 transactions are in neither file (a -shm left behind by a connection in \
                 exclusive locking mode, or beside a backup put back, records frames that are \
                 no loss)"
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
            self.skip_checkpointed_wal(index.header.checkpointed);
        }
        let frames = self.wal.as_ref().map(|w| WalFrames {
            file: self.wal_file.as_deref(),
            bytes: w.bytes,
            frame_size: FRAME_HEADER_SIZE as u64 + u64::from(self.geometry.page_size),
        });
        self.wal_index_gap = index.loss(path, frames.as_ref()).map(|mut gap| {
            if !gap.wal_beside {
                gap.checkpointed_past_header = self.checkpointed_past_header(&index);
                gap.pages_past_header = gap.checkpointed_past_header.len();
            }
            gap
        });
    }

    /// Pages past the count the main file's header states, inside the file, that frames the
    /// `-shm` records as checkpointed wrote.
    fn checkpointed_past_header(&self, index: &Index) -> Vec<u32> {
        let header = self.geometry.header.as_ref();
        let Some(stated) = header
            .filter(|h| h.page_count_is_valid())
            .map(|h| h.page_count)
        else {
            return Vec::new();
        };
        let file_pages = self.geometry.file_pages;
        if stated >= file_pages || index.header.checkpointed == 0 {
            return Vec::new();
        }
        let written = pages_of(
            &index.file,
            index.len,
            &index.header,
            1..=index.header.checkpointed,
        );
        written
            .into_iter()
            .filter(|&p| p > stated && p <= file_pages)
            .collect()
    }

    /// Every frame the `-wal` holds was copied into the main file by a checkpoint that went
    /// further (the `-wal` was cut short since): the main file's pages are newer than any
    /// of its frames, so they are read alone, as SQLite reads them while its `-shm` says so.
    /// Commits past a break in its checksums count as lost only past what was checkpointed.
    fn skip_checkpointed_wal(&mut self, checkpointed: u32) {
        self.wal_pages = std::sync::Arc::default();
        self.geometry.page_count = self.geometry.file_pages;
        let frame_size = FRAME_HEADER_SIZE as u64 + u64::from(self.geometry.page_size);
        let (Some(w), Some(file)) = (self.wal.as_mut(), self.wal_file.as_ref()) else {
            return;
        };
        w.older_than_main_file = true;
        w.pages = 0;
        w.db_size = None;
        if let (true, Some(salts)) = (w.commits_ignored > 0, w.salts) {
            let frames = w.bytes.saturating_sub(WAL_HEADER_SIZE as u64) / frame_size;
            (w.commits_ignored, w.pages_ignored) =
                commits_from(file, u64::from(checkpointed), frames, frame_size, salts);
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
            // Emptied: a -wal SQLite truncates has its -shm reset first.
            Some(w) if w.bytes < WAL_HEADER_SIZE as u64 => 0,
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
    /// checkpointed, and that the `-wal` (if any) does not hold either: a frame still in it
    /// with the page number the `-shm` records is there, whatever its checksum says (a
    /// break in the checksums is judged by the `-wal`'s own frames).
    fn loss(&self, path: &Path, wal: Option<&WalFrames<'_>>) -> Option<WalIndexGap> {
        let header = &self.header;
        let covered = self.applied.max(u64::from(header.checkpointed));
        let recorded = u64::from(header.last_frame);
        if recorded <= covered {
            return None;
        }
        // covered < recorded <= u32::MAX
        let frames = u32::try_from(covered).ok()? + 1..=header.last_frame;
        let (mut held, mut pages) = (0u64, BTreeSet::new());
        for_each_frame_page(&self.file, self.len, header, frames, |frame, page| {
            if wal.is_some_and(|w| w.page_of(frame) == Some(page)) {
                held += 1;
            } else if pages.len() < MAX_PAGES_IGNORED {
                pages.insert(page);
            }
        });
        let missing = recorded - covered - held;
        (missing > 0).then(|| WalIndexGap {
            path: path.to_path_buf(),
            frames_recorded: header.last_frame,
            frames_checkpointed: header.checkpointed,
            wal_beside: wal.is_some(),
            frames_applied: self.applied,
            frames_missing: missing,
            pages_missing: pages.into_iter().collect(),
            checkpointed_past_header: Vec::new(),
            pages_past_header: 0,
        })
    }
}

/// The `-wal` beside a `-shm`, as far as its frames' page numbers go.
pub(super) struct WalFrames<'a> {
    pub(super) file: Option<&'a File>,
    pub(super) bytes: u64,
    pub(super) frame_size: u64,
}

impl WalFrames<'_> {
    /// The page number in the header of `frame` (counted from 1), if the file holds the
    /// whole frame.
    fn page_of(&self, frame: u32) -> Option<u32> {
        let at = u64::from(frame.checked_sub(1)?)
            .checked_mul(self.frame_size)?
            .checked_add(WAL_HEADER_SIZE as u64)?;
        if at.checked_add(self.frame_size)? > self.bytes {
            return None;
        }
        let mut word = [0u8; 4];
        self.file?.read_exact_at(&mut word, at).ok()?;
        Some(u32::from_be_bytes(word))
    }
}

/// The pages `frames` (counted from 1) wrote, as far as the file holds them.
fn pages_of(
    file: &File,
    len: u64,
    header: &WalIndexHeader,
    frames: std::ops::RangeInclusive<u32>,
) -> Vec<u32> {
    let mut pages = BTreeSet::new();
    for_each_frame_page(file, len, header, frames, |_, page| {
        if pages.len() < MAX_PAGES_IGNORED {
            pages.insert(page);
        }
    });
    pages.into_iter().collect()
}

/// Calls `each(frame, page)` for the frames of `frames` whose page number the file holds.
fn for_each_frame_page(
    file: &File,
    len: u64,
    header: &WalIndexHeader,
    frames: std::ops::RangeInclusive<u32>,
    mut each: impl FnMut(u32, u32),
) {
    let last = *frames.end();
    let needed = frame_offset(last)
        .and_then(|o| u64::try_from(o).ok())
        .map_or(len, |o| o.saturating_add(4));
    let size = needed.min(len);
    if size > MAX_INDEX_BYTES {
        return;
    }
    // Sized by the file's own length (at most what the last frame needs), never by a field.
    let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
    if file.read_exact_at(&mut bytes, 0).is_err() {
        return;
    }
    for frame in frames {
        match frame_page(&bytes, frame, header) {
            Some(p) => each(frame, p),
            None if frame_offset(frame).is_none_or(|o| o >= bytes.len()) => break,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss_of(path: &Path, page_size: u32, wal: Option<&WalInfo>) -> Option<WalIndexGap> {
        let frames = wal.map(|w| WalFrames {
            file: None,
            bytes: w.bytes,
            frame_size: 24 + u64::from(page_size),
        });
        Index::read(path, page_size, wal)?.loss(path, frames.as_ref())
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
        assert_eq!(loss.frames_missing, u64::from(u32::MAX));
        assert_eq!(loss.pages_missing, vec![5, 9]);
        assert!(!loss.wal_beside);
        assert!(loss_of(&path, 1024, None).is_none(), "another page size");
        let other = WalInfo {
            bytes: 32 + 7 * (24 + 4096),
            salts: Some((1, 2)),
            ..WalInfo::default()
        };
        assert!(loss_of(&path, 4096, Some(&other)).is_none(), "another -wal");
        let this = WalInfo {
            bytes: 32 + 7 * (24 + 4096),
            salts: Some((0x0102_0304, 0x0506_0708)),
            committed_frames: 7,
            ..WalInfo::default()
        };
        let loss = loss_of(&path, 4096, Some(&this)).unwrap();
        assert_eq!(loss.frames_missing, u64::from(u32::MAX) - 7);
        assert!(
            loss.pages_missing.is_empty(),
            "frames 8 on are past the file"
        );
    }
}
