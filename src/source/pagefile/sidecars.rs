//! The sidecars [`PageFile::open`] lays over the main file: a hot `-journal`'s original pages
//! and a `-wal`'s committed frames. Every size either states is bounded by what the files
//! hold before anything is sized by it.

use super::{JournalInfo, PageFile, WalInfo, MAX_PAGES_IGNORED};
use crate::error::{Error, Result};
use crate::format::journal::{check_record, JournalHeader, HEADER_FIELDS};
use crate::format::wal::{check_frame, FrameHeader, WalHeader, FRAME_HEADER_SIZE, WAL_HEADER_SIZE};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

impl PageFile {
    /// Reads a hot journal once, front to back, keeping for each page its first (original)
    /// image, and sizes the database as it was before the transaction. A journal that is
    /// missing, empty, or whose header is zeroed or not a journal's is not hot: nothing changes.
    pub(super) fn load_journal(&mut self, path: &Path) -> Result<()> {
        let Ok(file) = File::open(path) else {
            return Ok(());
        };
        let bytes = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let mut head = [0u8; HEADER_FIELDS];
        let Some(first) = file
            .read_exact_at(&mut head, 0)
            .ok()
            .and_then(|()| JournalHeader::parse(&head))
        else {
            return Ok(());
        };
        let mut info = JournalInfo {
            path: path.to_path_buf(),
            bytes,
            db_size: first.initial_pages,
            ..JournalInfo::default()
        };
        if first.page_size != self.geometry.page_size {
            info.unusable = Some(format!(
                "journal page size {} differs from the database's {}",
                first.page_size, self.geometry.page_size
            ));
            self.journal = Some(info);
            return Ok(());
        }
        let mut header = first;
        let mut offset = u64::from(header.sector_size);
        // cast: a parsed header's page size is at most 65536, so a record at most 65544 bytes
        #[allow(clippy::cast_possible_truncation)]
        let mut record = vec![0u8; header.record_size() as usize];
        let mut pages: HashMap<u32, u64> = HashMap::new();
        'segments: loop {
            let mut left = header.records;
            while left != Some(0) {
                let read = offset
                    .checked_add(header.record_size())
                    .filter(|&end| end <= bytes)
                    .and_then(|_| file.read_exact_at(&mut record, offset).ok());
                let Some((pgno, _)) = read.and_then(|()| check_record(&header, &record)) else {
                    info.torn = left.is_some();
                    break 'segments;
                };
                info.valid_records += 1;
                if pgno <= first.initial_pages {
                    pages.entry(pgno).or_insert(offset + 4);
                }
                offset += header.record_size();
                left = left.map(|n| n - 1);
            }
            // The next segment, if any, starts at the next sector boundary.
            let sector = u64::from(header.sector_size);
            let Some(next_at) = offset.div_ceil(sector).checked_mul(sector) else {
                break;
            };
            offset = next_at;
            let next = file
                .read_exact_at(&mut head, offset)
                .ok()
                .and_then(|()| JournalHeader::parse(&head))
                .filter(|h| h.page_size == first.page_size);
            match next {
                Some(h) => {
                    header = h;
                    offset += u64::from(h.sector_size);
                }
                None => break,
            }
        }
        if first.initial_pages > 0 {
            let size = self.bounded_size(first.initial_pages, "-journal", &pages);
            pages.retain(|pgno, _| *pgno <= size);
            self.geometry.page_count = size;
            info.db_size = size;
        }
        info.pages = pages.len();
        self.journal_pages = Arc::new(pages);
        self.journal_file = Some(Arc::new(file));
        self.journal = Some(info);
        Ok(())
    }

    /// The database size a sidecar states, bounded by what the files hold: every page past
    /// the main file's end must have its image in the sidecar (`pages`), so a larger size is
    /// damage, and believing it would size the engine's page map by a number rather than by
    /// the files (a 512-byte journal can claim four billion pages). The bounding is recorded
    /// in `geometry.inferred`.
    fn bounded_size(&mut self, stated: u32, sidecar: &str, pages: &HashMap<u32, u64>) -> u32 {
        let main = self.geometry.file_pages;
        let beyond = pages.keys().filter(|&&p| p > main).count();
        let held = main.saturating_add(u32::try_from(beyond).unwrap_or(u32::MAX));
        // A page the sidecar holds is readable whatever lies below it (a main file cut short
        // loses the pages between), so long as the ledger its number needs stays small beside
        // what the files hold.
        let highest = pages.keys().copied().max().unwrap_or(0);
        let reach = held.max(highest.min(held.saturating_mul(4).max(1 << 20)));
        if stated <= reach {
            return stated;
        }
        self.geometry.inferred.push(format!(
            "page count (the {sidecar} says {stated} pages; no file holds a page past {reach})"
        ));
        reach
    }

    /// Reads the WAL once, front to back, keeping for each page the newest frame of a
    /// committed transaction. Frames after the last valid commit are counted as a torn tail.
    pub(super) fn load_wal(&mut self, wal_path: &Path, header: WalHeader) -> Result<()> {
        let file = File::open(wal_path).map_err(|e| Error::io(wal_path, e))?;
        let bytes = file.metadata().map_err(|e| Error::io(wal_path, e))?.len();
        let mut info = WalInfo {
            path: wal_path.to_path_buf(),
            bytes,
            salts: Some((header.salt1, header.salt2)),
            ..WalInfo::default()
        };
        if header.page_size != self.geometry.page_size {
            info.unusable = Some(format!(
                "WAL page size {} differs from the database's {}",
                header.page_size, self.geometry.page_size
            ));
            self.wal = Some(info);
            return Ok(());
        }
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut skip = [0u8; WAL_HEADER_SIZE];
        reader
            .read_exact(&mut skip)
            .map_err(|e| Error::io(wal_path, e))?;
        let mut frame_header = [0u8; FRAME_HEADER_SIZE];
        let mut page = vec![0u8; header.page_size as usize];
        let mut sum = header.checksum;
        let mut pending: Vec<(u32, u64)> = Vec::new();
        let mut pages: HashMap<u32, u64> = HashMap::new();
        let mut offset = WAL_HEADER_SIZE as u64;
        let total_frames = bytes.saturating_sub(WAL_HEADER_SIZE as u64) / header.frame_size();
        for _ in 0..total_frames {
            if reader.read_exact(&mut frame_header).is_err()
                || reader.read_exact(&mut page).is_err()
            {
                break;
            }
            let Some((frame, next)) = check_frame(&header, sum, &frame_header, &page) else {
                break;
            };
            sum = next;
            info.valid_frames += 1;
            pending.push((frame.pgno, offset + FRAME_HEADER_SIZE as u64));
            if frame.commit_size != 0 {
                info.commits += 1;
                info.committed_frames = info.valid_frames;
                info.db_size = Some(frame.commit_size);
                pages.extend(pending.drain(..));
            }
            offset += header.frame_size();
        }
        info.torn_frames = total_frames - info.committed_frames;
        // A frame cut short at the end of the file is a torn write, of a transaction that
        // never committed as far as the application was told: only whole frames count. The
        // transaction the break fell in is counted from its first frame: the pages its valid
        // frames wrote before the break are as lost as those after it.
        (info.commits_ignored, info.pages_ignored) = commits_from(
            &file,
            info.committed_frames,
            total_frames,
            header.frame_size(),
            (header.salt1, header.salt2),
        );
        if let Some(stated) = info.db_size {
            let size = self.bounded_size(stated, "-wal", &pages);
            pages.retain(|pgno, _| *pgno <= size);
            self.geometry.page_count = size;
            info.db_size = Some(size);
        }
        info.pages = pages.len();
        self.wal_pages = Arc::new(pages);
        self.wal_file = Some(Arc::new(file));
        self.wal = Some(info);
        Ok(())
    }
}

/// Commit frames carrying `salts` among frames `first..total` (each `frame_size` bytes),
/// and the pages the frames with those salts wrote up to the last such commit (sorted, each
/// once, at most [`MAX_PAGES_IGNORED`]). Only the frames' headers are read.
pub(super) fn commits_from(
    file: &File,
    first: u64,
    total: u64,
    frame_size: u64,
    salts: (u32, u32),
) -> (u64, Vec<u32>) {
    let mut head = [0u8; FRAME_HEADER_SIZE];
    let (mut commits, mut pending, mut pages) = (0, Vec::new(), std::collections::BTreeSet::new());
    for k in first..total {
        let at = WAL_HEADER_SIZE as u64 + k * frame_size;
        if file.read_exact_at(&mut head, at).is_err() {
            break;
        }
        let Some(f) = FrameHeader::parse(&head) else {
            continue;
        };
        if f.pgno == 0 || (f.salt1, f.salt2) != salts {
            continue;
        }
        pending.push(f.pgno);
        if f.commit_size != 0 {
            commits += 1;
            pages.extend(pending.drain(..));
        }
    }
    (commits, pages.into_iter().take(MAX_PAGES_IGNORED).collect())
}

/// The commit frames of a WAL whose header is damaged, and their pages (see
/// [`commits_from`]). The header's page size is taken when it is a valid one, else the
/// database's (`page_size`); the salts are the first frame's, which always belongs to the
/// WAL's current generation (a damaged header's own salts may be the damage).
pub(super) fn commits_behind_damaged_header(wal_path: &Path, page_size: u32) -> (u64, Vec<u32>) {
    let Ok(file) = File::open(wal_path) else {
        return (0, Vec::new());
    };
    let mut head = [0u8; WAL_HEADER_SIZE];
    if file.read_exact_at(&mut head, 0).is_err() {
        return (0, Vec::new());
    }
    let page_size = WalHeader::parse_unchecked(&head).map_or(page_size, |(size, _, _)| size);
    let mut first = [0u8; FRAME_HEADER_SIZE];
    if page_size == 0
        || file
            .read_exact_at(&mut first, WAL_HEADER_SIZE as u64)
            .is_err()
    {
        return (0, Vec::new());
    }
    let Some(frame) = FrameHeader::parse(&first) else {
        return (0, Vec::new());
    };
    let frame_size = FRAME_HEADER_SIZE as u64 + u64::from(page_size);
    let bytes = file.metadata().map_or(0, |m| m.len());
    let whole = bytes.saturating_sub(WAL_HEADER_SIZE as u64) / frame_size;
    commits_from(&file, 0, whole, frame_size, (frame.salt1, frame.salt2))
}

pub(super) fn read_wal_header(wal_path: &Path) -> Option<WalHeader> {
    let file = File::open(wal_path).ok()?;
    let mut head = [0u8; WAL_HEADER_SIZE];
    file.read_exact_at(&mut head, 0).ok()?;
    WalHeader::parse(&head).ok()
}

pub(super) fn read_wal_header_error(wal_path: &Path) -> Option<String> {
    let file = File::open(wal_path).ok()?;
    let mut head = [0u8; WAL_HEADER_SIZE];
    match file.read_exact_at(&mut head, 0) {
        Err(_) => Some("WAL file is shorter than its header".to_string()),
        Ok(()) => WalHeader::parse(&head).err().map(|e| e.to_string()),
    }
}
