//! Cells of b-tree pages: keys, child pointers, and the part of the payload stored locally.

use super::page::{BtreePage, PageKind};
use super::{be_u32, varint};

/// The payload of a cell: its full size, the bytes stored on this page, and the first
/// overflow page holding the rest (if the payload spills).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    pub total: u64,
    pub local: &'a [u8],
    pub overflow: Option<u32>,
}

#[cfg(test)]
impl Payload<'_> {
    fn is_complete_locally(&self) -> bool {
        self.overflow.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    TableLeaf {
        rowid: i64,
        payload: Payload<'a>,
    },
    TableInterior {
        left_child: u32,
        rowid: i64,
    },
    IndexLeaf {
        payload: Payload<'a>,
    },
    IndexInterior {
        left_child: u32,
        payload: Payload<'a>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellError {
    Truncated,
    ZeroChild,
    PayloadTooLarge,
}

impl std::fmt::Display for CellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CellError::Truncated => write!(f, "cell runs past the end of the page"),
            CellError::ZeroChild => write!(f, "cell points at child page 0"),
            CellError::PayloadTooLarge => write!(f, "cell payload size is implausible"),
        }
    }
}

/// SQLite's limit on the size of a row or blob is about 2^31; anything above is damage.
const MAX_PAYLOAD: u64 = 1 << 31;

/// How many bytes of a payload of `total` bytes are stored on the page, per the file format:
/// all of it when small enough, else a minimum plus whatever makes the overflow pages full.
pub(crate) fn local_payload_len(kind: PageKind, usable: usize, total: u64) -> usize {
    let u = usable as u64;
    let max_local = if kind.is_table() {
        u.saturating_sub(35)
    } else {
        ((u.saturating_sub(12)) * 64 / 255).saturating_sub(23)
    };
    // Every length returned below is at most `max_local`, itself at most `usable`: it fits in
    // a usize. Were it not to, usize::MAX makes the caller's bounds check fail.
    let fits = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    if total <= max_local {
        return fits(total);
    }
    let min_local = ((u.saturating_sub(12)) * 32 / 255).saturating_sub(23);
    let per_overflow = u.saturating_sub(4).max(1);
    let k = min_local + (total - min_local) % per_overflow;
    if k <= max_local {
        fits(k)
    } else {
        fits(min_local)
    }
}

fn read_payload<'a>(
    page: &BtreePage<'a>,
    total: u64,
    start: usize,
) -> Result<Payload<'a>, CellError> {
    if total > MAX_PAYLOAD {
        return Err(CellError::PayloadTooLarge);
    }
    let local_len = local_payload_len(page.kind, page.usable, total);
    let end = start.checked_add(local_len).ok_or(CellError::Truncated)?;
    let local = page.data.get(start..end).filter(|_| end <= page.usable);
    let local = local.ok_or(CellError::Truncated)?;
    let overflow = if (local_len as u64) < total {
        match be_u32(page.data, end).filter(|_| end + 4 <= page.usable) {
            Some(0) | None => return Err(CellError::Truncated),
            Some(n) => Some(n),
        }
    } else {
        None
    };
    Ok(Payload {
        total,
        local,
        overflow,
    })
}

/// Decodes the cell that starts at `offset` on `page`.
pub fn parse<'a>(page: &BtreePage<'a>, offset: usize) -> Result<Cell<'a>, CellError> {
    let data = page.data;
    match page.kind {
        PageKind::TableLeaf => {
            let (total, at) = varint::read_at(data, offset).ok_or(CellError::Truncated)?;
            let (rowid, at) = varint::read_at(data, at).ok_or(CellError::Truncated)?;
            let payload = read_payload(page, total, at)?;
            Ok(Cell::TableLeaf {
                rowid: varint::to_i64(rowid),
                payload,
            })
        }
        PageKind::TableInterior => {
            let left_child = be_u32(data, offset).ok_or(CellError::Truncated)?;
            if left_child == 0 {
                return Err(CellError::ZeroChild);
            }
            let (rowid, _) = varint::read_at(data, offset + 4).ok_or(CellError::Truncated)?;
            Ok(Cell::TableInterior {
                left_child,
                rowid: varint::to_i64(rowid),
            })
        }
        PageKind::IndexLeaf => {
            let (total, at) = varint::read_at(data, offset).ok_or(CellError::Truncated)?;
            Ok(Cell::IndexLeaf {
                payload: read_payload(page, total, at)?,
            })
        }
        PageKind::IndexInterior => {
            let left_child = be_u32(data, offset).ok_or(CellError::Truncated)?;
            if left_child == 0 {
                return Err(CellError::ZeroChild);
            }
            let (total, at) = varint::read_at(data, offset + 4).ok_or(CellError::Truncated)?;
            Ok(Cell::IndexInterior {
                left_child,
                payload: read_payload(page, total, at)?,
            })
        }
    }
}

/// The cells of a page, in order; a damaged cell yields its error and the walk goes on.
pub fn cells<'a>(
    page: &BtreePage<'a>,
) -> impl Iterator<Item = (u16, Result<Cell<'a>, CellError>)> + 'a {
    let page = *page;
    (0..page.cell_count).map(move |i| {
        let cell = page
            .cell_offset(i)
            .ok_or(CellError::Truncated)
            .and_then(|off| parse(&page, off));
        (i, cell)
    })
}

/// Total bytes of the cell at `offset` (header varints, local payload, overflow pointer).
pub fn cell_len(page: &BtreePage<'_>, offset: usize) -> Option<usize> {
    parsed_len(page, offset, &parse(page, offset).ok()?)
}

/// [`cell_len`] of `cell`, parsed already from `offset`.
pub fn parsed_len(page: &BtreePage<'_>, offset: usize, cell: &Cell<'_>) -> Option<usize> {
    let end = match cell {
        Cell::TableInterior { .. } => {
            let (_, at) = varint::read_at(page.data, offset + 4)?;
            at
        }
        Cell::TableLeaf { payload, .. }
        | Cell::IndexLeaf { payload }
        | Cell::IndexInterior { payload, .. } => {
            let start =
                (payload.local.as_ptr() as usize).checked_sub(page.data.as_ptr() as usize)?;
            start + payload.local.len() + if payload.overflow.is_some() { 4 } else { 0 }
        }
    };
    end.checked_sub(offset)
}

/// [`cell_space`] of `cell`, parsed already from `offset`.
pub fn parsed_space(page: &BtreePage<'_>, offset: usize, cell: &Cell<'_>) -> Option<usize> {
    parsed_len(page, offset, cell).map(|n| n.max(MIN_CELL_SPACE))
}

/// The least space SQLite gives a cell: a smaller one (a 2-byte record under a 1-byte
/// header, in an index or a WITHOUT ROWID table) is padded to it.
const MIN_CELL_SPACE: usize = 4;

/// The bytes the cell at `offset` takes in the content area: its length, padded to
/// [`MIN_CELL_SPACE`].
pub fn cell_space(page: &BtreePage<'_>, offset: usize) -> Option<usize> {
    cell_len(page, offset).map(|n| n.max(MIN_CELL_SPACE))
}

/// Cells found by reading the cell content area front to back, for pages whose cell pointer
/// array is damaged or whose content area holds bytes nothing accounts for (a lowered cell
/// count): SQLite packs cells there, with freeblocks (listed in their own chain) between
/// them. Returns the offsets of cells no valid pointer names, in page order.
pub fn carve(page: &BtreePage<'_>) -> Vec<usize> {
    carve_given(page, listed_space(page))
}

/// [`carve`], given the space the listed cells take ([`listed_space`]), which a caller that
/// parses them anyway adds up on the way.
pub fn carve_given(page: &BtreePage<'_>, listed: usize) -> Vec<usize> {
    let pointers_damaged = (0..page.cell_count).any(|i| page.cell_offset(i).is_none());
    if !pointers_damaged && unaccounted_given(page, listed) < 4 {
        return Vec::new();
    }
    let mut known = vec![false; page.usable];
    for offset in (0..page.cell_count).filter_map(|i| page.cell_offset(i)) {
        known[offset] = true;
    }
    let free = freeblocks(page);
    let mut next_free = 0;
    let mut out = Vec::new();
    let mut at = (page.content_start as usize).max(page.pointers_end());
    let mut misses = 0;
    let mut fields = Vec::new();
    // Each miss costs at most one record header; a budget keeps a hostile page linear.
    while at < page.usable && misses < MAX_CARVE_MISSES {
        while next_free < free.len() && free[next_free].0 < at {
            next_free += 1;
        }
        if let Some(&(start, size)) = free.get(next_free).filter(|(start, _)| *start == at) {
            at = start + size;
            continue;
        }
        match cell_space(page, at).filter(|_| plausible_cell(page, at, &mut fields)) {
            Some(len) if len > 0 => {
                if !known[at] {
                    out.push(at);
                }
                at += len;
            }
            // Not a cell boundary (a fragment, or damage): try the next byte.
            _ => {
                at += 1;
                misses += 1;
            }
        }
    }
    out
}

/// Bytes of the cell content area that no listed cell, freeblock or fragment accounts for.
/// On a page SQLite wrote there are none: more means cells no pointer lists any longer.
pub fn unaccounted(page: &BtreePage<'_>) -> usize {
    unaccounted_given(page, listed_space(page))
}

/// The space the cells the pointer array lists take, each padded as SQLite pads it (a cell
/// that does not parse counts nothing).
pub fn listed_space(page: &BtreePage<'_>) -> usize {
    (0..page.cell_count)
        .filter_map(|i| page.cell_offset(i))
        .filter_map(|offset| cell_space(page, offset))
        .fold(0, usize::saturating_add)
}

fn unaccounted_given(page: &BtreePage<'_>, listed: usize) -> usize {
    let start = (page.content_start as usize).max(page.pointers_end());
    let area = page.usable.saturating_sub(start);
    let free: usize = freeblocks(page)
        .iter()
        .map(|&(_, size)| size)
        .fold(0, usize::saturating_add);
    area.saturating_sub(
        listed
            .saturating_add(free)
            .saturating_add(usize::from(page.fragmented_bytes)),
    )
}

/// Failed carving attempts allowed per page.
const MAX_CARVE_MISSES: usize = 4096;

/// The freeblock chain as (start, size), in page order, stopping where it stops moving forward.
fn freeblocks(page: &BtreePage<'_>) -> Vec<(usize, usize)> {
    let mut free = Vec::new();
    let mut at = usize::from(page.first_freeblock);
    while at != 0 && at + 4 <= page.usable {
        let size = usize::from(super::be_u16(page.data, at + 2).unwrap_or(0));
        free.push((at, size.max(4)));
        let next = usize::from(super::be_u16(page.data, at).unwrap_or(0));
        if next <= at {
            break;
        }
        at = next;
    }
    free
}

/// A carved cell must hold a record that decodes to exactly its payload's length.
fn plausible_cell(page: &BtreePage<'_>, at: usize, fields: &mut Vec<super::record::Field>) -> bool {
    let payload = match parse(page, at) {
        Ok(Cell::TableInterior { .. }) => return true,
        Ok(
            Cell::TableLeaf { payload, .. }
            | Cell::IndexLeaf { payload }
            | Cell::IndexInterior { payload, .. },
        ) => payload,
        Err(_) => return false,
    };
    if payload.overflow.is_some() {
        return super::record::serial_types(payload.local, &mut Vec::new()).is_ok();
    }
    matches!(
        super::record::decode_fields(payload.local, fields),
        Ok(d) if d.exact_length && d.fields > 0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte of a page SQLite wrote is a cell, a freeblock or a fragment: after inserts,
    /// deletes and updates that leave freeblocks and fragments, nothing is unaccounted for
    /// and nothing is carved. Cells of 3 bytes (keys 0, 1, '' and x'' of a WITHOUT ROWID
    /// table) take the 4 bytes SQLite gives any cell.
    #[test]
    fn pages_sqlite_wrote_account_for_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA page_size = 1024; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             CREATE INDEX tv ON t(v);
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)
             INSERT INTO t SELECT i, printf('%.*c', i % 90, 'x') FROM c;
             DELETE FROM t WHERE id % 7 = 0;
             UPDATE t SET v = v || 'yz' WHERE id % 5 = 0;
             CREATE TABLE w(k PRIMARY KEY) WITHOUT ROWID;
             INSERT INTO w VALUES (325972), (''), (x''), (1), (0), ('a'), (2);",
        )
        .unwrap();
        drop(conn);
        let bytes = std::fs::read(&path).unwrap();
        let mut checked = 0;
        for (n, data) in bytes.chunks(1024).enumerate() {
            let offset = if n == 0 { 100 } else { 0 };
            let Ok(page) = BtreePage::parse(data, offset, 1024) else {
                continue;
            };
            assert_eq!(unaccounted(&page), 0, "page {}", n + 1);
            assert!(carve(&page).is_empty(), "page {}", n + 1);
            checked += 1;
        }
        assert!(checked > 50);
    }

    #[test]
    fn local_sizes_follow_the_format() {
        // Table leaf with 4096-byte pages: up to 4061 bytes stay local.
        assert_eq!(local_payload_len(PageKind::TableLeaf, 4096, 4061), 4061);
        let spilled = local_payload_len(PageKind::TableLeaf, 4096, 5000);
        assert!((489..4061).contains(&spilled), "{spilled}");
        // The overflow part fills whole overflow pages.
        assert_eq!((5000 - spilled as u64) % 4092, 0);
        // Index pages keep less locally.
        assert_eq!(local_payload_len(PageKind::IndexLeaf, 4096, 1002), 1002);
        assert!(local_payload_len(PageKind::IndexLeaf, 4096, 1003) < 1003);
    }

    #[test]
    fn table_leaf_cell() {
        let mut p = vec![0u8; 512];
        p[0] = 13;
        p[3..5].copy_from_slice(&1u16.to_be_bytes());
        p[8..10].copy_from_slice(&400u16.to_be_bytes());
        // payload 3 bytes, rowid 42, record: header 2, serial type 1 (int8), value 7
        p[400..405].copy_from_slice(&[3, 42, 2, 1, 7]);
        let page = BtreePage::parse(&p, 0, 512).unwrap();
        let (_, cell) = cells(&page).next().unwrap();
        match cell.unwrap() {
            Cell::TableLeaf { rowid, payload } => {
                assert_eq!(rowid, 42);
                assert_eq!(payload.local, &[2, 1, 7]);
                assert!(payload.is_complete_locally());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn payload_past_page_end_is_an_error() {
        let mut p = vec![0u8; 512];
        p[0] = 13;
        p[3..5].copy_from_slice(&1u16.to_be_bytes());
        p[8..10].copy_from_slice(&500u16.to_be_bytes());
        p[500..502].copy_from_slice(&[100, 1]);
        let page = BtreePage::parse(&p, 0, 512).unwrap();
        assert_eq!(cells(&page).next().unwrap().1, Err(CellError::Truncated));
    }
}
