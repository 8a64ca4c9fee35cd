//! Pages as SQLite would see them: the snapshot's main file overlaid by the frames of its
//! `-wal` up to the last valid commit, or, with a hot `-journal`, by the original pages it
//! holds (the unfinished transaction rolled back). Pages are read on demand with positioned
//! reads, so memory stays bounded by what the caller keeps, not by the size of the database.

use crate::error::{Error, Result};
use crate::format::header::{Header, HEADER_SIZE, MAGIC};
use crate::format::page::BtreePage;
use crate::format::wal::WalHeader;
use crate::format::TextEncoding;
use sidecars::{read_wal_header, read_wal_header_error};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod sidecars;
mod wal_index;

pub use wal_index::WalIndexGap;

/// Page size, reserved bytes, encoding and size of the database, and which of these facts
/// came from the header and which were inferred.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Geometry {
    pub page_size: u32,
    pub reserved_bytes: u8,
    /// Text encoding when the header states a valid one; the schema reader infers it otherwise.
    pub encoding: Option<TextEncoding>,
    /// Pages in the database as SQLite would see it (the WAL's last commit decides when present).
    pub page_count: u32,
    /// Pages physically present in the main file.
    pub file_pages: u32,
    /// The header, when its magic string was intact.
    #[serde(skip)]
    pub header: Option<Header>,
    /// Facts that were inferred because the header could not be trusted ("page size", ...).
    pub inferred: Vec<String>,
}

impl Geometry {
    pub(crate) fn usable(&self) -> usize {
        (self.page_size as usize).saturating_sub(usize::from(self.reserved_bytes))
    }

    /// Whether the header says the database is in WAL mode.
    pub(crate) fn wal_mode(&self) -> bool {
        self.header
            .as_ref()
            .is_some_and(|h| h.journal_mode() == "wal")
    }
}

/// What to tell the user when a database in WAL mode has no `-wal` beside it: normal after a
/// clean close, but also what a deleted or moved `-wal` looks like.
pub(crate) fn missing_wal_note(geometry: &Geometry, wal: Option<&WalInfo>) -> Option<&'static str> {
    (geometry.wal_mode() && wal.is_none()).then_some(
        "the database is in WAL mode and has no -wal beside it: normal once every connection \
         has closed cleanly; but if the app was running, or a -wal was moved or deleted, put it \
         back beside the database and run again (its commits are not in the main file)",
    )
}

/// What the `-wal` file holds and which of it counts.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct WalInfo {
    pub path: PathBuf,
    pub bytes: u64,
    /// Why the WAL is ignored as a whole, if it is (bad header, page size mismatch).
    pub unusable: Option<String>,
    /// Frames whose salts and running checksum are valid.
    pub valid_frames: u64,
    /// Valid frames up to and including the last commit frame: these are applied.
    pub committed_frames: u64,
    pub commits: u64,
    /// Frames after the last valid commit (valid or not): a torn tail, never applied.
    pub torn_frames: u64,
    /// Commit frames of this WAL (its salts) past the frame where its checksums break, or
    /// after a damaged header: transactions that committed, that SQLite no longer applies,
    /// and whose rows are therefore not in what it reads.
    #[serde(default)]
    pub commits_ignored: u64,
    /// The pages those ignored transactions wrote, from the first frame of the one the break
    /// fell in to the last ignored commit (at most [`MAX_PAGES_IGNORED`]): the tables they
    /// belong to may miss rows.
    #[serde(skip)]
    pub pages_ignored: Vec<u32>,
    /// Distinct pages whose newest committed image is in the WAL.
    pub pages: usize,
    /// The salts of the header, when it is usable (the `-shm` must carry the same).
    #[serde(skip)]
    pub salts: Option<(u32, u32)>,
    /// The `-shm` records that a checkpoint copied more frames into the main file than the
    /// `-wal` holds now (it was cut short since): its frames are older than the main file's
    /// pages, and are not read.
    #[serde(default)]
    pub older_than_main_file: bool,
    /// Database size in pages after the last commit, if there was one (bounded by the pages
    /// the files hold: see `bounded_size`).
    pub db_size: Option<u32>,
}

impl WalInfo {
    pub fn tail_is_torn(&self) -> bool {
        self.torn_frames > 0
    }
}

/// Pages of ignored WAL frames kept to name the tables they belong to.
pub(crate) const MAX_PAGES_IGNORED: usize = 100_000;

/// What a hot `-journal` held: the original pages of a transaction that never committed.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct JournalInfo {
    pub path: PathBuf,
    pub bytes: u64,
    /// Why the journal is ignored as a whole, if it is (its page size differs).
    pub unusable: Option<String>,
    /// Records whose checksum is right.
    pub valid_records: u64,
    /// A record before the end its header announced did not check out: the records after
    /// it were never relied on (SQLite writes the journal before the pages it protects).
    pub torn: bool,
    /// Distinct pages put back as they were before the transaction.
    pub pages: usize,
    /// The database's size in pages before the transaction (bounded as the WAL's is).
    pub db_size: u32,
}

/// Where a page image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    MainFile,
    Wal,
    /// The original of a page an unfinished transaction changed, from a hot journal.
    Journal,
}

/// The files are shared (see [`PageFile::share`]): they are read with positioned reads only.
pub struct PageFile {
    path: PathBuf,
    file: Arc<File>,
    file_len: u64,
    geometry: Geometry,
    wal_file: Option<Arc<File>>,
    /// pgno -> byte offset of the newest committed frame's page image in the WAL.
    wal_pages: Arc<HashMap<u32, u64>>,
    wal: Option<WalInfo>,
    journal_file: Option<Arc<File>>,
    /// pgno -> byte offset of the page's original image in the hot journal.
    journal_pages: Arc<HashMap<u32, u64>>,
    journal: Option<JournalInfo>,
    wal_index_gap: Option<WalIndexGap>,
}

impl PageFile {
    /// Opens a database file (read-only) and, if it exists beside it, its `-wal`.
    pub fn open(path: &Path) -> Result<PageFile> {
        let meta = std::fs::metadata(path).map_err(|e| open_error(path, &e))?;
        if meta.is_dir() {
            return Err(Error::unusable(path, "is a directory, not a database file"));
        }
        let file = File::open(path).map_err(|e| open_error(path, &e))?;
        let file_len = meta.len();
        let mut head =
            vec![0u8; usize::try_from(file_len).map_or(HEADER_SIZE, |n| n.min(HEADER_SIZE))];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| Error::io(path, e))?;
        let wal_path = sidecar(path, "-wal");
        let wal_header = read_wal_header(&wal_path);
        if file_len == 0 && wal_header.is_none() {
            return Err(Error::unusable(
                path,
                "the file is empty (0 bytes) and has no -wal: there is nothing to recover",
            ));
        }
        let mut geometry = geometry_from_header(&head, wal_header.as_ref());
        if geometry.page_size != 0 && geometry.inferred.is_empty() {
            check_header_page_size(&file, file_len, &mut geometry);
        }
        if geometry.page_size != 0 && geometry.reserved_bytes != 0 {
            check_reserved_bytes(&file, file_len, &mut geometry);
        }
        if geometry.page_size == 0 {
            geometry.page_size = infer_page_size(&file, file_len).ok_or_else(|| {
                Error::unusable(
                    path,
                    "not a SQLite database: no header and no page size under which its pages read as b-tree pages",
                )
            })?;
            geometry.inferred.push("page size".to_string());
        }
        geometry.file_pages = u32::try_from(file_len.div_ceil(u64::from(geometry.page_size)))
            .map_err(|_| Error::unusable(path, "file is larger than any SQLite database"))?;
        geometry.page_count = geometry.file_pages;
        let mut pf = PageFile {
            path: path.to_path_buf(),
            file: Arc::new(file),
            file_len,
            geometry,
            wal_file: None,
            wal_pages: Arc::default(),
            wal: None,
            journal_file: None,
            journal_pages: Arc::default(),
            journal: None,
            wal_index_gap: None,
        };
        if wal_header.is_none() {
            // In WAL mode a journal is not SQLite's to roll back, so only without a WAL.
            pf.load_journal(&sidecar(path, "-journal"))?;
        }
        if let Some(wal_header) = wal_header {
            pf.load_wal(&wal_path, wal_header)?;
        } else if let Ok(meta) = std::fs::metadata(&wal_path) {
            pf.wal = Some(WalInfo {
                path: wal_path.clone(),
                bytes: meta.len(),
                unusable: Some(match read_wal_header_error(&wal_path) {
                    Some(why) => why,
                    None => "WAL file is empty".to_string(),
                }),
                commits_ignored: 0,
                ..WalInfo::default()
            });
        }
        if let Some(w) = pf.wal.as_mut().filter(|w| w.unusable.is_some()) {
            (w.commits_ignored, w.pages_ignored) =
                sidecars::commits_behind_damaged_header(&wal_path, pf.geometry.page_size);
        }
        pf.check_wal_index(&sidecar(path, "-shm"));
        Ok(pf)
    }

    /// A second handle on the same files, showing the same pages: the files and the maps of
    /// WAL and journal pages are shared, not copied, so this is cheap. The page view keeps
    /// one, so that what SQLite reads through it never depends on this one living.
    pub(crate) fn share(&self) -> PageFile {
        PageFile {
            path: self.path.clone(),
            file: Arc::clone(&self.file),
            file_len: self.file_len,
            geometry: self.geometry.clone(),
            wal_file: self.wal_file.clone(),
            wal_pages: Arc::clone(&self.wal_pages),
            wal: self.wal.clone(),
            journal_file: self.journal_file.clone(),
            journal_pages: Arc::clone(&self.journal_pages),
            journal: self.journal.clone(),
            wal_index_gap: self.wal_index_gap.clone(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Lets the schema reader settle the encoding, saying why when it was inferred.
    pub(crate) fn set_encoding(&mut self, encoding: TextEncoding, inferred: Option<String>) {
        self.geometry.encoding = Some(encoding);
        self.geometry.inferred.extend(inferred);
    }

    pub fn wal(&self) -> Option<&WalInfo> {
        self.wal.as_ref()
    }

    /// Committed transactions the `-shm` records that neither the `-wal` nor the main file
    /// holds.
    pub fn wal_index_gap(&self) -> Option<&WalIndexGap> {
        self.wal_index_gap.as_ref()
    }

    pub(crate) fn journal(&self) -> Option<&JournalInfo> {
        self.journal.as_ref()
    }

    pub(crate) fn page_size(&self) -> usize {
        self.geometry.page_size as usize
    }

    pub(crate) fn usable(&self) -> usize {
        self.geometry.usable()
    }

    pub fn page_count(&self) -> u32 {
        self.geometry.page_count
    }

    /// Pages SQLite reads past the main file's end that no sidecar holds: up to the size the
    /// `-wal`'s last commit or the `-journal` states when one does, else the header's (when
    /// SQLite would trust it).
    pub(crate) fn pages_missing_past_end(&self) -> u32 {
        let sized_by_sidecar = self.wal.as_ref().is_some_and(|w| w.db_size.is_some())
            || self.journal.as_ref().is_some_and(|j| j.unusable.is_none());
        let stated = self
            .geometry
            .header
            .as_ref()
            .filter(|h| h.page_count_is_valid())
            .map_or(0, |h| h.page_count);
        let end = if sized_by_sidecar {
            self.geometry.page_count
        } else {
            stated
        };
        let main = self.geometry.file_pages;
        let held = self
            .wal_pages
            .keys()
            .chain(self.journal_pages.keys())
            .filter(|&&p| p > main && p <= end)
            .collect::<std::collections::HashSet<_>>()
            .len();
        end.saturating_sub(main)
            .saturating_sub(u32::try_from(held).unwrap_or(u32::MAX))
    }

    /// Where page `pgno`'s current image lives, without reading it.
    pub(crate) fn origin(&self, pgno: u32) -> Option<Origin> {
        if pgno == 0 || pgno > self.geometry.page_count {
            return None;
        }
        if self.wal_pages.contains_key(&pgno) {
            return Some(Origin::Wal);
        }
        if self.journal_pages.contains_key(&pgno) {
            return Some(Origin::Journal);
        }
        let start = u64::from(pgno - 1) * u64::from(self.geometry.page_size);
        (start < self.file_len).then_some(Origin::MainFile)
    }

    /// Reads page `pgno` into `buf` (resized to the page size). Bytes past the end of a
    /// truncated file read as zeros. Returns `None` for page 0, pages past the database's
    /// end and pages that could not be read.
    pub fn read(&self, pgno: u32, buf: &mut Vec<u8>) -> Option<Origin> {
        self.read_valid(pgno, buf).map(|(origin, _)| origin)
    }

    /// Like [`PageFile::read`], also returning how many leading bytes came from the file
    /// (fewer than a page only for the last page of a truncated file).
    pub(crate) fn read_valid(&self, pgno: u32, buf: &mut Vec<u8>) -> Option<(Origin, usize)> {
        // Every byte is read over, or zeroed past the end of a short file, below.
        buf.resize(self.page_size(), 0);
        self.read_into(pgno, buf)
    }

    /// [`PageFile::read_valid`] into `buf`, exactly a page long (`None` otherwise): for a
    /// caller that has the page's place ready, such as SQLite's buffer behind the view.
    pub(crate) fn read_into(&self, pgno: u32, buf: &mut [u8]) -> Option<(Origin, usize)> {
        if buf.len() != self.page_size() {
            return None;
        }
        let origin = self.origin(pgno)?;
        let valid = match origin {
            Origin::Wal => {
                let offset = *self.wal_pages.get(&pgno)?;
                self.wal_file.as_ref()?.read_exact_at(buf, offset).ok()?;
                buf.len()
            }
            Origin::Journal => {
                let offset = *self.journal_pages.get(&pgno)?;
                self.journal_file
                    .as_ref()?
                    .read_exact_at(buf, offset)
                    .ok()?;
                buf.len()
            }
            Origin::MainFile => {
                let start = u64::from(pgno - 1) * u64::from(self.geometry.page_size);
                let avail =
                    usize::try_from(self.file_len - start).map_or(buf.len(), |n| n.min(buf.len()));
                self.file.read_exact_at(&mut buf[..avail], start).ok()?;
                buf[avail..].fill(0);
                avail
            }
        };
        Some((origin, valid))
    }
}

fn open_error(path: &Path, e: &std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::unusable(path, "no such file"),
        std::io::ErrorKind::PermissionDenied => {
            Error::unusable(path, "permission denied (cannot read the file)")
        }
        _ => Error::unusable(path, e.to_string()),
    }
}

/// `DB-wal`, `DB-shm`, `DB-journal`: SQLite's names for the files beside a database.
pub use crate::util::paths::sidecar;

/// `file:` URI that opens `db` read-only and immutable (no locks, no journal, no -shm).
pub(crate) fn immutable_uri(db: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &b in std::path::absolute(db)
        .unwrap_or_else(|_| db.to_path_buf())
        .as_os_str()
        .as_bytes()
    {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Takes what the header says when it is sane; leaves page size 0 when it must be inferred.
fn geometry_from_header(head: &[u8], wal: Option<&WalHeader>) -> Geometry {
    let magic_ok = head.len() >= HEADER_SIZE && &head[..16] == MAGIC;
    let header = magic_ok.then(|| Header::parse_fields(head));
    let mut inferred = Vec::new();
    let header_page_size = header.as_ref().map_or(0, |h| h.page_size);
    let page_size = match (header_page_size, wal) {
        (n, _) if n != 0 => n,
        (_, Some(w)) => {
            inferred.push("page size (from the WAL header)".to_string());
            w.page_size
        }
        _ => 0,
    };
    let reserved_bytes = match &header {
        Some(h) if h.usable_size().is_some_and(|u| u >= 480) => h.reserved_bytes,
        Some(_) if page_size != 0 => {
            inferred.push("reserved bytes (assumed 0)".to_string());
            0
        }
        _ => 0,
    };
    let encoding = header.as_ref().and_then(Header::text_encoding);
    Geometry {
        page_size,
        reserved_bytes,
        encoding,
        page_count: 0,
        file_pages: 0,
        header,
        inferred,
    }
}

/// How many bytes from the start of the file are read under each page size when guessing it:
/// the same bytes for every size, so that each is judged on the same pages (512 pages of 4096
/// bytes).
const INFER_SAMPLE_BYTES: u64 = 512 * 4096;

/// Tries every page size from 512 to 65536 and keeps the one under which the most sampled
/// pages parse as b-tree pages. A wrong, smaller size fails because cell pointers point past
/// its end; a wrong, larger size sees fewer pages.
pub(crate) fn infer_page_size(file: &File, file_len: u64) -> Option<u32> {
    let mut best: Option<(u32, u64)> = None;
    for shift in 9..=16 {
        let size = 1u32 << shift;
        let score = btree_page_score(file, file_len, size);
        if score > best.map_or(0, |(_, s)| s) {
            best = Some((size, score));
        }
    }
    best.map(|(size, _)| size)
}

/// How many pages of the file's first [`INFER_SAMPLE_BYTES`] read as b-tree pages when the file
/// is cut into `size`-byte pages. (Sampled by pages instead, a larger size would be judged on
/// more of the file: pages further on, where more b-tree pages and fewer overflow pages may lie,
/// could make half of the true pages outscore all of them.)
fn btree_page_score(file: &File, file_len: u64, size: u32) -> u64 {
    let pages = file_len.min(INFER_SAMPLE_BYTES.max(u64::from(size))) / u64::from(size);
    let mut buf = vec![0u8; size as usize];
    let mut score = 0;
    for i in 0..pages {
        if file.read_exact_at(&mut buf, i * u64::from(size)).is_err() {
            break;
        }
        if looks_like_btree_page(&buf, if i == 0 { HEADER_SIZE } else { 0 }) {
            score += 1;
        }
    }
    score
}

/// A page size the header states validly can still be wrong (a damaged header can hold any
/// valid value). When another size makes clearly more pages read as b-tree pages, it wins.
fn check_header_page_size(file: &File, file_len: u64, geometry: &mut Geometry) {
    let stated = geometry.page_size;
    let stated_score = btree_page_score(file, file_len, stated);
    let Some(inferred) = infer_page_size(file, file_len) else {
        return;
    };
    let inferred_score = btree_page_score(file, file_len, inferred);
    if inferred != stated && inferred_score >= 2 && inferred_score > 2 * stated_score {
        geometry.page_size = inferred;
        geometry.reserved_bytes = 0;
        geometry.inferred.push(format!(
            "page size (the header says {stated}, the pages read as {inferred}-byte pages)"
        ));
    }
}

/// Reserved bytes the header states can be wrong too. SQLite never puts a cell in a page's
/// reserved tail, and fills each page's content area from the usable end down: when more of
/// the sampled b-tree pages hold cells that run into the stated tail than hold their cells
/// clear of it, the pages were written with fewer reserved bytes, and the largest cell end
/// says how many.
fn check_reserved_bytes(file: &File, file_len: u64, geometry: &mut Geometry) {
    let size = geometry.page_size;
    let stated = geometry.reserved_bytes;
    let usable = (size as usize).saturating_sub(usize::from(stated));
    let pages = file_len.min(INFER_SAMPLE_BYTES.max(u64::from(size))) / u64::from(size);
    let mut buf = vec![0u8; size as usize];
    let (mut into_tail, mut clear, mut furthest) = (0u32, 0u32, 0usize);
    for i in 0..pages {
        if file.read_exact_at(&mut buf, i * u64::from(size)).is_err() {
            break;
        }
        let Some(end) = cells_end(&buf, if i == 0 { HEADER_SIZE } else { 0 }) else {
            continue;
        };
        furthest = furthest.max(end);
        if end > usable {
            into_tail += 1;
        } else {
            clear += 1;
        }
    }
    let written = u8::try_from((size as usize).saturating_sub(furthest)).unwrap_or(u8::MAX);
    if into_tail >= 2
        && into_tail > clear
        && written < stated
        && size as usize - usize::from(written) >= 480
    {
        geometry.reserved_bytes = written;
        geometry.inferred.push(format!(
            "reserved bytes (the header says {stated}, the pages' cells run to byte {furthest} of {size})"
        ));
    }
}

/// Where the furthest cell of a page that reads as a b-tree page (its whole length usable)
/// ends; `None` for any other page, or one without cells.
fn cells_end(page: &[u8], header_offset: usize) -> Option<usize> {
    if !looks_like_btree_page(page, header_offset) {
        return None;
    }
    let parsed = BtreePage::parse_strict(page, header_offset, page.len()).ok()?;
    (0..parsed.cell_count)
        .filter_map(|i| parsed.cell_offset(i))
        .filter_map(|at| Some(at + crate::format::cell::cell_len(&parsed, at)?))
        .max()
}

/// A strict plausibility test: header, cell pointers and freeblocks all in range.
pub fn looks_like_btree_page(page: &[u8], header_offset: usize) -> bool {
    match BtreePage::parse_strict(page, header_offset, page.len()) {
        Ok(p) => {
            p.freeblocks_are_sane()
                && (p.content_start as usize) <= page.len()
                && (p.cell_count == 0 || p.content_start as usize >= p.pointers_end())
        }
        Err(_) => false,
    }
}
