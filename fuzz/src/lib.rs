//! What each fuzz target does with its input, kept apart from the `fuzz_target!` wrappers so
//! the same code paths can be replayed by ordinary tests (`tests/cli/hostile.rs` and
//! `tests/cli/fuzz_regressions.rs` include this file with `#[path]`).
//!
//! Every function takes arbitrary bytes and must return without panicking, hanging or
//! allocating more than a small multiple of the input (or of the 64 KiB page-size bound).

use sqlite_rescue::format::cell::{self, Cell};
use sqlite_rescue::format::header::{decode_page_size, Header};
use sqlite_rescue::format::page::BtreePage;
use sqlite_rescue::format::record::{self, Field};
use sqlite_rescue::format::wal::{self, WalHeader, FRAME_HEADER_SIZE, WAL_HEADER_SIZE};
use sqlite_rescue::format::{freelist, overflow, ptrmap, varint, TextEncoding};
use sqlite_rescue::source::pagefile;

/// Reserved-bytes choices for `decode_page`, picked by the top three bits of its control byte.
const RESERVED: [usize; 8] = [0, 1, 4, 8, 16, 32, 64, 255];

/// The page size a control byte asks for: its low four bits 1..=8 pick 512 << (n - 1); any
/// other value means "the rest of the input is the page, whatever its length" (up to 64 KiB).
pub fn page_size_from(ctl: u8, rest_len: usize) -> usize {
    match ctl & 0x0f {
        n @ 1..=8 => 256 << n,
        _ => rest_len.min(65536),
    }
}

/// Builds a page image from `ctl` and `rest` (cut or zero-padded to the chosen size) and
/// returns it with the header offset and usable size the control byte selects.
pub fn page_from_input(data: &[u8]) -> Option<(Vec<u8>, usize, usize)> {
    let (&ctl, rest) = data.split_first()?;
    let size = page_size_from(ctl, rest.len());
    let mut page = rest[..rest.len().min(size)].to_vec();
    page.resize(size, 0);
    let header_offset = if ctl & 0x10 != 0 { 100 } else { 0 };
    let usable = size.saturating_sub(RESERVED[usize::from(ctl >> 5)]);
    Some((page, header_offset, usable))
}

/// Decodes one record's payload every way the engine does.
fn decode_payload(payload: &[u8], fields: &mut Vec<Field>, types: &mut Vec<u64>) {
    if let Ok(d) = record::decode_fields(payload, fields) {
        assert_eq!(d.fields, fields.len());
        for f in fields.iter() {
            if let record::Value::Text(t) = f.value(payload) {
                for enc in [
                    TextEncoding::Utf8,
                    TextEncoding::Utf16le,
                    TextEncoding::Utf16be,
                ] {
                    let _ = enc.to_utf8(t);
                }
            }
        }
    }
    let _ = record::serial_types(payload, types);
}

/// Target `decode_page`: page header, cell pointers, every cell, carving of the content
/// area, the record in every local payload, and the same bytes read as the other page kinds
/// (overflow, freelist trunk, pointer map).
pub fn decode_page(data: &[u8]) {
    let Some((page, header_offset, usable)) = page_from_input(data) else {
        return;
    };
    let mut fields = Vec::new();
    let mut types = Vec::new();
    let _ = pagefile::looks_like_btree_page(&page, header_offset);
    let _ = BtreePage::parse_strict(&page, header_offset, usable);
    if let Ok(p) = BtreePage::parse(&page, header_offset, usable) {
        let _ = p.freeblocks_are_sane();
        for (_, c) in cell::cells(&p) {
            match c {
                Ok(
                    Cell::TableLeaf { payload, .. }
                    | Cell::IndexLeaf { payload }
                    | Cell::IndexInterior { payload, .. },
                ) => {
                    assert!(payload.local.len() as u64 <= payload.total);
                    decode_payload(payload.local, &mut fields, &mut types);
                    let local = payload.local.len();
                    let _ = overflow::pages_needed(payload.total, local, usable);
                }
                Ok(Cell::TableInterior { .. }) | Err(_) => {}
            }
        }
        for i in 0..p.cell_count {
            if let Some(off) = p.cell_offset(i) {
                if let Some(len) = cell::cell_len(&p, off) {
                    assert!(off + len <= page.len());
                }
            }
        }
        for off in cell::carve(&p) {
            assert!(off < p.usable);
            if let Ok(
                Cell::TableLeaf { payload, .. }
                | Cell::IndexLeaf { payload }
                | Cell::IndexInterior { payload, .. },
            ) = cell::parse(&p, off)
            {
                decode_payload(payload.local, &mut fields, &mut types);
            }
        }
    }
    let _ = overflow::split(&page, usable);
    let _ = freelist::parse_trunk(&page, usable);
    for index in 0..(usable / 5).min(64) {
        let _ = ptrmap::entry(&page, index);
    }
    let pgno = sqlite_rescue::format::be_u32(data, 0).unwrap_or(0);
    let _ = ptrmap::locate(pgno, usable);
    let _ = ptrmap::is_ptrmap_page(pgno, usable);
}

/// Target `record`: a record payload decoded field by field and as bare serial types,
/// and the bytes read as varints.
pub fn record(data: &[u8]) {
    let mut fields = Vec::new();
    let mut types = Vec::new();
    decode_payload(data, &mut fields, &mut types);
    let mut values = Vec::new();
    if let Ok(d) = record::decode(data, &mut values) {
        assert_eq!(values.len(), d.fields);
        if d.exact_length {
            assert!(d.complete);
        }
    }
    let mut at = 0;
    while let Some((v, next)) = varint::read_at(data, at) {
        assert!(next > at && next - at <= 9);
        let enc = varint::encode(v);
        assert_eq!(varint::read(&enc), Some((v, enc.len())));
        at = next;
    }
    for &t in &types {
        let _ = record::serial_type_len(t);
    }
}

/// Target `wal`: the WAL header as given, then (so the frames are reached even when the
/// header is damaged) a header repaired to pass its checksum, and every frame of the input
/// chunked at that page size, with the running checksum carried from frame to frame.
pub fn wal(data: &[u8]) {
    let header = match WalHeader::parse(data) {
        Ok(h) => h,
        Err(_) => {
            let Some(head) = data.get(..WAL_HEADER_SIZE) else {
                return;
            };
            let mut head = head.to_vec();
            head[..4].copy_from_slice(&0x377f_0682u32.to_be_bytes());
            let page_size = 512u32 << (head[11] % 8);
            head[8..12].copy_from_slice(&page_size.to_be_bytes());
            let (a, b) = wal::checksum(false, (0, 0), &head[..24]);
            head[24..28].copy_from_slice(&a.to_be_bytes());
            head[28..32].copy_from_slice(&b.to_be_bytes());
            WalHeader::parse(&head).expect("a repaired WAL header parses")
        }
    };
    assert!(header.frame_size() > FRAME_HEADER_SIZE as u64);
    let mut sum = header.checksum;
    let frames = data.get(WAL_HEADER_SIZE..).unwrap_or(&[]);
    let frame_size = usize::try_from(header.frame_size()).expect("a parsed frame size fits");
    for frame in frames.chunks(frame_size) {
        let (fh, page) = frame.split_at(frame.len().min(FRAME_HEADER_SIZE));
        let _ = wal::FrameHeader::parse(fh);
        // Also check the frame from a running checksum that is certainly wrong.
        let _ = wal::check_frame(&header, (sum.1, sum.0), fh, page);
        match wal::check_frame(&header, sum, fh, page) {
            Some((frame_header, next)) => {
                assert_ne!(frame_header.pgno, 0);
                sum = next;
            }
            None => break,
        }
    }
}

/// Target `journal`: a rollback journal's header (repaired when its magic or sizes are not a
/// journal's, so the records are always read) and every record after it.
pub fn journal(data: &[u8]) {
    use sqlite_rescue::format::journal::{check_record, checksum, JournalHeader, MAGIC};
    let header = JournalHeader::parse(data).or_else(|| {
        let mut head = data.get(..28)?.to_vec();
        head[..8].copy_from_slice(&MAGIC);
        let (sector, page) = (32u32 << (head[23] % 12), 512u32 << (head[27] % 8));
        head[20..24].copy_from_slice(&sector.to_be_bytes());
        head[24..28].copy_from_slice(&page.to_be_bytes());
        JournalHeader::parse(&head)
    });
    let Some(header) = header else {
        return;
    };
    let start = (header.sector_size as usize).min(data.len());
    let record_size = usize::try_from(header.record_size()).expect("a parsed record size fits");
    for record in data[start..].chunks(record_size) {
        if let Some((pgno, page)) = check_record(&header, record) {
            assert_ne!(pgno, 0);
            assert_eq!(page.len(), header.page_size as usize);
        }
        let _ = checksum(header.nonce, record);
    }
}

/// Target `header`: the 100-byte header read strictly and leniently, every derived value,
/// and the page-1 plausibility test used when the page size must be inferred.
pub fn header(data: &[u8]) {
    if let Ok(h) = Header::parse(data) {
        assert_eq!(h, Header::parse_fields(data));
    }
    let h = Header::parse_fields(data);
    let _ = h.problems();
    let _ = h.usable_size();
    let _ = h.sqlite_version();
    let _ = h.journal_mode();
    let _ = h.page_count_is_valid();
    let _ = h.text_encoding();
    if h.page_size != 0 {
        assert!(h.page_size.is_power_of_two() && (512..=65536).contains(&h.page_size));
    }
    let stored = sqlite_rescue::format::be_u16(data, 16).unwrap_or(0);
    let _ = decode_page_size(stored);
    let _ = pagefile::looks_like_btree_page(data, 100);
    let _ = pagefile::looks_like_btree_page(data, 0);
}

/// Splits an `engine` input into the main file and an optional WAL. The first byte is a
/// control byte: when odd, the next four bytes (big-endian) give the WAL's length, and the
/// WAL is that many bytes from the end of the rest (all of it if the length is larger). With
/// bit 1 set as well, [`engine`] writes those bytes as a rollback journal instead.
pub fn split_engine_input(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    let Some((&ctl, rest)) = data.split_first() else {
        return (&[], None);
    };
    if ctl & 1 == 0 {
        return (rest, None);
    }
    let Some(len) = sqlite_rescue::format::be_u32(rest, 0) else {
        return (rest, None);
    };
    let rest = &rest[4..];
    let cut = rest.len() - rest.len().min(len as usize);
    (&rest[..cut], Some(&rest[cut..]))
}

/// Encodes a main file and optional WAL as an `engine` input (the inverse of
/// [`split_engine_input`]).
pub fn join_engine_input(db: &[u8], wal: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(db.len() + wal.map_or(0, <[u8]>::len) + 5);
    match wal {
        None => {
            out.push(0);
            out.extend_from_slice(db);
        }
        Some(w) => {
            out.push(1);
            let len = u32::try_from(w.len()).expect("a WAL input under 4 GiB");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(db);
            out.extend_from_slice(w);
        }
    }
    out
}

/// Target `engine`: the input written as a database (and WAL) in a fresh temporary folder and
/// recovered into a new output file there. Any `Err` is an acceptable answer; a panic or a
/// hang is not. Returns the result for callers that check more.
pub fn engine(data: &[u8]) -> sqlite_rescue::Result<sqlite_rescue::engine::Report> {
    let (db, wal) = split_engine_input(data);
    let dir = tempfile::tempdir().expect("temporary folder");
    let db_path = dir.path().join("db.sqlite3");
    std::fs::write(&db_path, db).expect("write database");
    if let Some(w) = wal {
        // Bit 1 of the control byte makes the second file a rollback journal instead.
        let journal = data.first().is_some_and(|c| c & 2 != 0);
        let name = if journal {
            "db.sqlite3-journal"
        } else {
            "db.sqlite3-wal"
        };
        std::fs::write(dir.path().join(name), w).expect("write sidecar");
    }
    let out = dir.path().join("out.sqlite3");
    let result =
        sqlite_rescue::engine::recover(&db_path, &out, &sqlite_rescue::engine::Options::default());
    if result.is_err() {
        assert!(!out.exists(), "a failed recovery left its output behind");
    }
    result
}

/// A one-page database of `page_size`-byte pages holding nothing: a valid header and an
/// empty table leaf for the schema. The main file beside the sidecars the targets write.
pub fn empty_database(page_size: u32) -> Vec<u8> {
    let mut page = vec![0u8; page_size as usize];
    page[..16].copy_from_slice(b"SQLite format 3\0");
    let stored = if page_size == 65536 {
        1
    } else {
        u16::try_from(page_size).expect("a page size of at most 65536")
    };
    page[16..18].copy_from_slice(&stored.to_be_bytes());
    page[18..24].copy_from_slice(&[1, 1, 0, 64, 32, 32]);
    page[28..32].copy_from_slice(&1u32.to_be_bytes());
    page[44..48].copy_from_slice(&4u32.to_be_bytes());
    page[56..60].copy_from_slice(&1u32.to_be_bytes());
    page[100] = 13;
    let start = if page_size == 65536 {
        0
    } else {
        u16::try_from(page_size).expect("a page size of at most 65536")
    };
    page[105..107].copy_from_slice(&start.to_be_bytes());
    page
}

/// Writes `main` and a sidecar named `suffix` into a fresh folder, opens them as the engine
/// does, reads every page, and checks the page count is bounded by what the files hold: at
/// most the main file's pages plus one per `record` bytes of the sidecar. Returns the page
/// count, if the files opened.
fn open_with_sidecar(
    main: &[u8],
    suffix: &str,
    sidecar: &[u8],
    record: u64,
    page_size: u32,
) -> Option<u32> {
    let dir = tempfile::tempdir().expect("temporary folder");
    let db = dir.path().join("db");
    std::fs::write(&db, main).expect("write database");
    std::fs::write(dir.path().join(format!("db{suffix}")), sidecar).expect("write sidecar");
    let pf = pagefile::PageFile::open(&db).ok()?;
    let main_pages = (main.len() as u64).div_ceil(u64::from(page_size));
    let held = main_pages + sidecar.len() as u64 / record;
    assert!(
        u64::from(pf.page_count()) <= held,
        "{} pages claimed over {held} held",
        pf.page_count()
    );
    let mut buf = Vec::new();
    for pgno in 1..=pf.page_count() {
        if pf.read(pgno, &mut buf).is_some() {
            assert_eq!(buf.len(), page_size as usize);
        }
    }
    Some(pf.page_count())
}

/// The big-endian size at `at`, when it is a power of two from `min` to 65536.
fn valid_size(bytes: &[u8], at: usize, min: u32) -> Option<u32> {
    sqlite_rescue::format::be_u32(bytes, at)
        .filter(|&n| n >= min && n <= 65536 && n.is_power_of_two())
}

/// Target `wal` continued: the input as a `-wal` on disk beside a one-page database, its
/// header repaired (a page size that is not one taken from byte 11) and, when bit 0 of its byte 12 is set, every frame's salts and checksum
/// made right, so that commit frames (and the database size they state) are believed as far
/// as the files allow. Returns the page count the files opened with.
pub fn wal_on_disk(data: &[u8]) -> Option<u32> {
    let head = data.get(..WAL_HEADER_SIZE)?;
    let mut bytes = data.to_vec();
    let page_size = valid_size(head, 8, 512).unwrap_or(512u32 << (head[11] % 8));
    bytes[..4].copy_from_slice(&0x377f_0682u32.to_be_bytes());
    bytes[8..12].copy_from_slice(&page_size.to_be_bytes());
    let (a, b) = wal::checksum(false, (0, 0), &bytes[..24]);
    bytes[24..28].copy_from_slice(&a.to_be_bytes());
    bytes[28..32].copy_from_slice(&b.to_be_bytes());
    let frame_size = FRAME_HEADER_SIZE + page_size as usize;
    if head[12] & 1 != 0 {
        let (salts, mut sum) = (bytes[16..24].to_vec(), (a, b));
        for frame in bytes[WAL_HEADER_SIZE..].chunks_exact_mut(frame_size) {
            frame[8..16].copy_from_slice(&salts);
            sum = wal::checksum(false, sum, &frame[..8]);
            sum = wal::checksum(false, sum, &frame[FRAME_HEADER_SIZE..]);
            frame[16..20].copy_from_slice(&sum.0.to_be_bytes());
            frame[20..24].copy_from_slice(&sum.1.to_be_bytes());
        }
    }
    let main = empty_database(page_size);
    open_with_sidecar(&main, "-wal", &bytes, frame_size as u64, page_size)
}

/// Target `journal` continued: the input as a hot `-journal` on disk beside a one-page
/// database, its header repaired (sizes that are not ones taken from bytes 23 and 27) and every record's checksum made right, so that the size
/// before the transaction it states is believed as far as the files allow. Returns the page
/// count the files opened with.
pub fn journal_on_disk(data: &[u8]) -> Option<u32> {
    use sqlite_rescue::format::journal::{checksum, JournalHeader, MAGIC};
    let head = data.get(..28)?;
    let mut bytes = data.to_vec();
    let sector = valid_size(head, 20, 32).unwrap_or(32u32 << (head[23] % 12));
    let page_size = valid_size(head, 24, 512).unwrap_or(512u32 << (head[27] % 8));
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[20..24].copy_from_slice(&sector.to_be_bytes());
    bytes[24..28].copy_from_slice(&page_size.to_be_bytes());
    let header = JournalHeader::parse(&bytes).expect("a repaired journal header parses");
    let record = usize::try_from(header.record_size()).expect("a parsed record size fits");
    let start = (sector as usize).min(bytes.len());
    for r in bytes[start..].chunks_exact_mut(record) {
        let sum = checksum(header.nonce, &r[4..record - 4]);
        r[record - 4..].copy_from_slice(&sum.to_be_bytes());
    }
    let main = empty_database(page_size);
    open_with_sidecar(&main, "-journal", &bytes, record as u64, page_size)
}

/// Target `page_view`: the input written as a database (and WAL or journal, laid out as for
/// [`engine`]) and read through the page view SQLite reads through, as the copy paths use
/// it; bytes 1..61 also give raw reads at arbitrary offsets. Returns the rows read.
pub fn page_view(data: &[u8]) -> usize {
    let (db, side) = split_engine_input(data);
    let dir = tempfile::tempdir().expect("temporary folder");
    let db_path = dir.path().join("db.sqlite3");
    std::fs::write(&db_path, db).expect("write database");
    if let Some(side) = side {
        let journal = data.first().is_some_and(|c| c & 2 != 0);
        let name = if journal {
            "db.sqlite3-journal"
        } else {
            "db.sqlite3-wal"
        };
        std::fs::write(dir.path().join(name), side).expect("write sidecar");
    }
    let probes = data.get(1..data.len().min(61)).unwrap_or(&[]);
    sqlite_rescue::exercise_view(&db_path, probes)
}

/// Target `report`: the input read back as a recovery's `report.json` (as `restore` finds the
/// incident a recovered file belongs to), and as the report's lost-row ranges and a snapshot's
/// `manifest.json`, with what is worked out from them. Returns how many of these readings
/// took the input (0 to 4).
pub fn report(data: &[u8]) -> usize {
    use sqlite_rescue::engine::losses::{most_rows, IndexedValues, LostRange};
    use sqlite_rescue::source::snapshot::Manifest;
    let dir = tempfile::tempdir().expect("temporary folder");
    let incident = dir.path().join("incident");
    std::fs::create_dir(&incident).expect("incident folder");
    std::fs::write(incident.join("report.json"), data).expect("write report");
    let db = dir.path().join("app.db");
    std::fs::write(&db, b"").expect("write database");
    let from = incident.join("recovered.sqlite3");
    let mut took = 0;
    if let Some(found) = sqlite_rescue::commands::restore::incident_of(&from, &db) {
        assert_eq!(found, incident);
        took += 1;
    }
    if let Ok(ranges) = serde_json::from_slice::<Vec<LostRange>>(data) {
        took += 1;
        let total = most_rows(&ranges);
        for r in &ranges {
            let _ = r.describe("t");
            if let (Some(span), Some(total)) = (r.span(), total) {
                assert!(span <= total);
            }
        }
    }
    if let Ok(values) = serde_json::from_slice::<IndexedValues>(data) {
        took += 1;
        let _ = values.describe("t", 5, "sqlite-rescue lost app.db");
        let _ = values.describe("t", 0, "sqlite-rescue lost app.db");
    }
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(data) {
        took += 1;
        let again = serde_json::to_vec(&manifest).expect("a manifest serializes");
        let back: Manifest = serde_json::from_slice(&again).expect("and reads back");
        assert_eq!(back.files, manifest.files);
    }
    took
}
