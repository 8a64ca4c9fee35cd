//! The engine's view of the snapshot, readable by SQLite.
//!
//! When whole tables are copied by SQLite's transfer path, SQLite must read exactly the pages
//! the engine walked and checked: the main file with the WAL's committed frames laid over it,
//! a truncated tail read as zeros, and the geometry the engine settled on even where the
//! header said otherwise. So SQLite does not open the snapshot's files itself. It opens a
//! name registered here, through a read-only VFS whose reads come from the engine's
//! [`PageFile`]. Page 1's header is presented as a rollback-journal database whose stated
//! size and geometry are the engine's, so SQLite looks for no WAL and reads no page past the
//! end the engine uses.

use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;
use rusqlite::ffi;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

const VFS_NAME: &CStr = c"sqlite-rescue-view";

/// Views SQLite may open, by the name handed to it. An entry lives as long as its
/// [`Registration`] (which removes it when dropped); an open file holds its view itself.
static VIEWS: Mutex<Vec<(String, Arc<View>)>> = Mutex::new(Vec::new());

/// What a view shows: the page file, and pages the engine rebuilt in place of lost ones (or
/// added past the end, when one page cannot hold what a lost page pointed at).
///
/// Every view is owned by reference counts, never borrowed: by its registration, by the
/// table of names SQLite opens, and by every file SQLite opened on it (from `x_open` to
/// `x_close`). Its page file is a handle of its own ([`PageFile::share`]). So no order of
/// drops, and no registration leaked with `mem::forget`, leaves SQLite reading freed memory:
/// whatever the engine does with its registration and its page file, a connection that
/// still has the view attached reads what it read before.
struct View {
    pf: PageFile,
    rebuilt: Mutex<HashMap<u32, Vec<u8>>>,
    /// Pages in the view: the file's, or more (see [`file_pages`]), or up to the last added.
    pages: AtomicU32,
}

/// Views are read from whichever thread SQLite runs on.
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<View>();
};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A page file made openable by SQLite, under a name, for as long as this lives. The view
/// shows `'a`'s page file as it is when registered (geometry included); the borrow keeps
/// the engine from changing that page file meanwhile.
pub(crate) struct Registration<'a> {
    name: String,
    view: Arc<View>,
    _pf: PhantomData<&'a PageFile>,
}

impl<'a> Registration<'a> {
    /// Registers `pf`; `None` if the VFS could not be registered with SQLite.
    pub(crate) fn new(pf: &'a PageFile) -> Option<Registration<'a>> {
        register_vfs()?;
        let name = format!(
            "/sqlite-rescue-view/{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let view = Arc::new(View {
            pf: pf.share(),
            rebuilt: Mutex::new(HashMap::new()),
            pages: AtomicU32::new(file_pages(pf)),
        });
        VIEWS.lock().ok()?.push((name.clone(), Arc::clone(&view)));
        Some(Registration {
            name,
            view,
            _pf: PhantomData,
        })
    }

    /// Shows `page` (a whole page image) in place of page `pgno` from now on. SQLite must
    /// attach the view afresh to see it (an attached view keeps what it has read).
    pub(crate) fn rebuild(&self, pgno: u32, page: Vec<u8>) {
        if let Ok(mut rebuilt) = self.view.rebuilt.lock() {
            rebuilt.insert(pgno, page);
        }
    }

    /// Shows page `pgno` as the file has it again (undoes [`Self::rebuild`]).
    pub(crate) fn forget(&self, pgno: u32) {
        if let Ok(mut rebuilt) = self.view.rebuilt.lock() {
            rebuilt.remove(&pgno);
        }
    }

    /// A page number past the end of the view, for a page to add with [`Self::rebuild`].
    pub(crate) fn add_page(&self) -> u32 {
        let page_size = u32::try_from(self.view.pf.page_size()).unwrap_or(65536);
        // The page holding byte 2^30 is SQLite's lock page and never part of a tree.
        let lock_page = (1u32 << 30) / page_size.max(512) + 1;
        loop {
            let pgno = self.view.pages.fetch_add(1, Ordering::Relaxed) + 1;
            if pgno != lock_page {
                return pgno;
            }
        }
    }

    /// The URI to ATTACH: read-only, immutable (no locks, no journal), through the view.
    pub(crate) fn uri(&self) -> String {
        format!(
            "file:{}?vfs={}&mode=ro&immutable=1",
            self.name,
            VFS_NAME.to_str().unwrap_or_default()
        )
    }
}

impl Drop for Registration<'_> {
    /// The name opens nothing from now on; files SQLite already opened on the view keep it.
    fn drop(&mut self) {
        if let Ok(mut views) = VIEWS.lock() {
            views.retain(|(n, _)| *n != self.name);
        }
    }
}

fn lookup(name: &str) -> Option<Arc<View>> {
    let views = VIEWS.lock().ok()?;
    views
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| Arc::clone(v))
}

/// An open view: SQLite's file object, followed by ours. `view` is a strong reference
/// (from [`Arc::into_raw`]) taken by `x_open` and given back by `x_close`.
#[repr(C)]
struct ViewFile {
    base: ffi::sqlite3_file,
    view: *const View,
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_lock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// Registers the view VFS with SQLite once per process (not as the default).
fn register_vfs() -> Option<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS, which lives for the
        // process; we only copy its function pointers.
        let default = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
        if default.is_null() {
            return false;
        }
        // SAFETY: `default` is a valid VFS (checked non-null above).
        let mut vfs: ffi::sqlite3_vfs = unsafe { std::ptr::read(default) };
        vfs.iVersion = vfs.iVersion.min(2);
        vfs.szOsFile = c_int::try_from(std::mem::size_of::<ViewFile>()).unwrap_or(c_int::MAX);
        vfs.pNext = std::ptr::null_mut();
        vfs.zName = VFS_NAME.as_ptr();
        vfs.pAppData = std::ptr::null_mut();
        vfs.xOpen = Some(x_open);
        vfs.xDelete = Some(x_delete);
        vfs.xAccess = Some(x_access);
        vfs.xFullPathname = Some(x_full_pathname);
        vfs.xSetSystemCall = None;
        vfs.xGetSystemCall = None;
        vfs.xNextSystemCall = None;
        let leaked = Box::into_raw(Box::new(vfs));
        // SAFETY: `leaked` points to a complete VFS that is never freed; 0 = not default.
        let rc = unsafe { ffi::sqlite3_vfs_register(leaked, 0) };
        rc == ffi::SQLITE_OK
    });
    registered.then_some(())
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite hands a file object of szOsFile bytes (a ViewFile); marking it unopened
    // first means a failed open is never closed.
    unsafe { (*file).pMethods = std::ptr::null() };
    if name.is_null() || flags & ffi::SQLITE_OPEN_MAIN_DB == 0 {
        return ffi::SQLITE_CANTOPEN;
    }
    // SAFETY: a non-null file name from SQLite is a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
    let Some(view_data) = lookup(&name) else {
        return ffi::SQLITE_CANTOPEN;
    };
    let view = file.cast::<ViewFile>();
    // SAFETY: `file` has room for a ViewFile (szOsFile bytes, aligned by SQLite's allocator
    // for any pointer-sized field). The strong reference stored here keeps the view alive
    // until x_close gives it back; with pMethods set, SQLite calls x_close exactly once.
    unsafe {
        (*view).view = Arc::into_raw(view_data);
        (*view).base.pMethods = &raw const METHODS;
        if !out_flags.is_null() {
            *out_flags = ffi::SQLITE_OPEN_READONLY;
        }
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_delete(_: *mut ffi::sqlite3_vfs, _: *const c_char, _: c_int) -> c_int {
    ffi::SQLITE_IOERR_DELETE
}

/// Nothing beside a view exists: no journal, no WAL.
unsafe extern "C" fn x_access(
    _: *mut ffi::sqlite3_vfs,
    _: *const c_char,
    _: c_int,
    out: *mut c_int,
) -> c_int {
    if !out.is_null() {
        // SAFETY: SQLite passes a valid pointer for the answer.
        unsafe { *out = 0 };
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_full_pathname(
    _: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n_out: c_int,
    out: *mut c_char,
) -> c_int {
    if name.is_null() || out.is_null() || n_out <= 0 {
        return ffi::SQLITE_CANTOPEN;
    }
    // SAFETY: `name` is NUL-terminated; `out` has `n_out` bytes, and at most n_out - 1 are
    // copied before the terminating NUL.
    unsafe {
        let bytes = CStr::from_ptr(name).to_bytes();
        // `n_out` > 0, checked above.
        let n = bytes.len().min(usize::try_from(n_out).unwrap_or(1) - 1);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast::<u8>(), n);
        *out.add(n) = 0;
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes only files x_open opened (a ViewFile holding one strong
    // reference in `view`), once each. The reference is taken out before it is given back,
    // so a second close would find null and give back nothing.
    unsafe {
        let file = file.cast::<ViewFile>();
        let view = std::mem::replace(&mut (*file).view, std::ptr::null());
        (*file).base.pMethods = std::ptr::null();
        if !view.is_null() {
            drop(Arc::from_raw(view));
        }
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: SQLite reads only files x_open opened and x_close has not closed: a ViewFile
    // whose `view` holds a strong reference, so the view lives at least until this returns.
    let view = unsafe { &*(*file.cast::<ViewFile>()).view };
    let (Ok(amount), Ok(offset)) = (usize::try_from(amount), u64::try_from(offset)) else {
        return ffi::SQLITE_IOERR_READ;
    };
    // SAFETY: SQLite provides `amount` writable bytes at `buf`.
    let out = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), amount) };
    if read_view(view, offset, out) {
        ffi::SQLITE_OK
    } else {
        ffi::SQLITE_IOERR_SHORT_READ
    }
}

/// Pages in the view: the engine's page count, or more if the header states more (a file cut
/// short). SQLite refuses a schema whose root pages lie past the end, so the missing pages
/// are presented, as zeros, and only the trees that need them fail to read.
fn file_pages(pf: &PageFile) -> u32 {
    let stated = pf.geometry().header.as_ref().map_or(0, |h| h.page_count);
    pf.page_count().max(stated)
}

/// Fills `out` with the view's bytes at `offset`; false (the rest zeroed) past the end.
fn read_view(view: &View, offset: u64, out: &mut [u8]) -> bool {
    let pf = &view.pf;
    let rebuilt = view.rebuilt.lock().ok();
    let page_bytes = pf.page_size();
    let page_size = page_bytes as u64;
    let end = u64::from(view.pages.load(Ordering::Relaxed)) * page_size;
    let mut page = Vec::new();
    let mut done = 0usize;
    while done < out.len() {
        let at = offset.saturating_add(done as u64);
        if at >= end {
            out[done..].fill(0);
            return false;
        }
        let Ok(pgno) = u32::try_from(at / page_size + 1) else {
            out[done..].fill(0);
            return false;
        };
        // Below the page size, which is at most 65536.
        let within = usize::try_from(at % page_size).unwrap_or(0);
        let image = rebuilt.as_ref().and_then(|r| r.get(&pgno));
        // A whole page as the file has it, the copy's usual read, goes straight to SQLite.
        if within == 0 && pgno != 1 && image.is_none() && out.len() - done >= page_bytes {
            let place = &mut out[done..done + page_bytes];
            if pf.read_into(pgno, place).is_none() {
                place.fill(0);
            }
            done += page_bytes;
            continue;
        }
        match image {
            Some(image) => {
                page.clear();
                page.extend_from_slice(image);
                page.resize(page_bytes, 0);
            }
            None => {
                if pf.read(pgno, &mut page).is_none() {
                    page.clear();
                    page.resize(page_bytes, 0);
                }
            }
        }
        if pgno == 1 {
            present_header(pf, view.pages.load(Ordering::Relaxed), &mut page);
        }
        let n = (page.len() - within).min(out.len() - done);
        out[done..done + n].copy_from_slice(&page[within..within + n]);
        done += n;
    }
    true
}

/// Page 1's header as the engine reads the file: its page size, reserved bytes, encoding and
/// size, valid, and a rollback-journal database (so SQLite looks for no WAL).
fn present_header(pf: &PageFile, pages: u32, page: &mut [u8]) {
    if page.len() < 100 {
        return;
    }
    let g = pf.geometry();
    page[..16].copy_from_slice(b"SQLite format 3\0");
    // The header stores 65536 as 1.
    let size = u16::try_from(g.page_size).unwrap_or(1);
    page[16..18].copy_from_slice(&size.to_be_bytes());
    page[18] = 1;
    page[19] = 1;
    page[20] = g.reserved_bytes;
    page[21] = 64;
    page[22] = 32;
    page[23] = 32;
    let counter = [page[24], page[25], page[26], page[27]];
    page[92..96].copy_from_slice(&counter);
    page[28..32].copy_from_slice(&pages.to_be_bytes());
    if !(1..=4).contains(&u32::from_be_bytes([
        page[44], page[45], page[46], page[47],
    ])) {
        page[44..48].copy_from_slice(&4u32.to_be_bytes());
    }
    let encoding: u32 = match g.encoding.unwrap_or(TextEncoding::Utf8) {
        TextEncoding::Utf8 => 1,
        TextEncoding::Utf16le => 2,
        TextEncoding::Utf16be => 3,
    };
    page[56..60].copy_from_slice(&encoding.to_be_bytes());
}

unsafe extern "C" fn x_write(
    _: *mut ffi::sqlite3_file,
    _: *const c_void,
    _: c_int,
    _: ffi::sqlite3_int64,
) -> c_int {
    ffi::SQLITE_READONLY
}

unsafe extern "C" fn x_truncate(_: *mut ffi::sqlite3_file, _: ffi::sqlite3_int64) -> c_int {
    ffi::SQLITE_READONLY
}

unsafe extern "C" fn x_sync(_: *mut ffi::sqlite3_file, _: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: `file` is a ViewFile x_open opened and x_close has not closed, whose `view`
    // holds a strong reference; `size` is a valid out pointer.
    unsafe {
        let view = &*(*file.cast::<ViewFile>()).view;
        let page_size = i64::try_from(view.pf.page_size()).unwrap_or(0);
        *size = i64::from(view.pages.load(Ordering::Relaxed)) * page_size;
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_lock(_: *mut ffi::sqlite3_file, _: c_int) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_check_reserved_lock(_: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    if !out.is_null() {
        // SAFETY: SQLite passes a valid pointer for the answer.
        unsafe { *out = 0 };
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_file_control(_: *mut ffi::sqlite3_file, _: c_int, _: *mut c_void) -> c_int {
    ffi::SQLITE_NOTFOUND
}

unsafe extern "C" fn x_sector_size(_: *mut ffi::sqlite3_file) -> c_int {
    4096
}

unsafe extern "C" fn x_device_characteristics(_: *mut ffi::sqlite3_file) -> c_int {
    ffi::SQLITE_IOCAP_IMMUTABLE
}

mod exercise;
pub use exercise::exercise_view;

#[cfg(test)]
mod tests;
