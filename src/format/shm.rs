//! The `-shm` file: SQLite's index of the `-wal` (its "wal-index", as the unix and windows
//! VFSes lay it out). Its header records the last frame of the last transaction committed to
//! the `-wal` and how many frames a checkpoint copied into the main file; its blocks record
//! the page each frame wrote. So it says what the `-wal` held even when the `-wal` no longer
//! holds it.
//!
//! Layout: 32768-byte blocks. The first begins with a 136-byte header: two copies of a
//! 48-byte header (a writer changes the first, then the second), then checkpoint information
//! (the frames copied into the main file at byte 96). Each block then holds the page number of
//! each of its frames as a 32-bit word (4062 in the first block, after the header; 4096 in
//! each later one), followed by a hash table this module does not need. Words are in the byte
//! order of the machine that wrote the file; the salts are the `-wal` header's bytes as they
//! are.

use super::be_u32;

/// Bytes before the first block's page numbers.
pub const HEADER_SIZE: usize = 136;
const BLOCK_SIZE: usize = 32768;
const FIRST_BLOCK_FRAMES: u32 = 4062;
const BLOCK_FRAMES: u32 = 4096;
/// The header's version field (SQLite 3.7.0's number, unchanged since).
const VERSION: u32 = 3_007_000;
/// Where the count of frames copied into the main file is.
const BACKFILL_AT: usize = 96;

/// What the `-shm` header records, once both copies agree and its checksum is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalIndexHeader {
    /// The last frame of the last committed transaction (`mxFrame`); 0 for none.
    pub last_frame: u32,
    /// The database's size in pages after that transaction.
    pub db_pages: u32,
    /// The `-wal` header's salts when the index was written (big-endian, as there).
    pub salts: (u32, u32),
    pub page_size: u32,
    /// Frames a checkpoint has copied into the main file (`nBackfill`).
    pub checkpointed: u32,
    /// The writing machine's byte order was big-endian.
    pub big_endian: bool,
}

impl WalIndexHeader {
    /// The header at the start of `bytes`, if it is one: `None` when the two copies differ
    /// (a writer was changing it), it is not initialised, or its checksum is wrong under
    /// either byte order.
    pub fn parse(bytes: &[u8]) -> Option<WalIndexHeader> {
        let head = bytes.get(..HEADER_SIZE)?;
        if head[..48] != head[48..96] {
            return None;
        }
        [false, true]
            .into_iter()
            .find_map(|big_endian| parse_as(head, big_endian))
    }
}

fn word(bytes: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    })
}

fn parse_as(head: &[u8], big_endian: bool) -> Option<WalIndexHeader> {
    let w = |at| word(head, at, big_endian);
    let is_init = head.get(12) == Some(&1);
    if w(0)? != VERSION || !is_init {
        return None;
    }
    if super::wal::checksum(big_endian, (0, 0), head.get(..40)?) != (w(40)?, w(44)?) {
        return None;
    }
    let size: [u8; 2] = head.get(14..16)?.try_into().ok()?;
    let size = if big_endian {
        u16::from_be_bytes(size)
    } else {
        u16::from_le_bytes(size)
    };
    let page_size = if size == 1 { 65536 } else { u32::from(size) };
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return None;
    }
    Some(WalIndexHeader {
        last_frame: w(16)?,
        db_pages: w(20)?,
        salts: (be_u32(head, 32)?, be_u32(head, 36)?),
        page_size,
        checkpointed: w(BACKFILL_AT)?,
        big_endian,
    })
}

/// Where the page number of `frame` (counted from 1) lies in the file.
pub fn frame_offset(frame: u32) -> Option<usize> {
    let k = usize::try_from(frame.checked_sub(1)?).ok()?;
    let first = FIRST_BLOCK_FRAMES as usize;
    if k < first {
        return HEADER_SIZE.checked_add(k.checked_mul(4)?);
    }
    let k = k - first;
    let per_block = BLOCK_FRAMES as usize;
    let block = BLOCK_SIZE.checked_mul(1 + k / per_block)?;
    block.checked_add((k % per_block) * 4)
}

/// The page `frame` (counted from 1) wrote, as the index in `bytes` records it; `None` past
/// the end of `bytes` or for a page number of 0 (no page).
pub fn frame_page(bytes: &[u8], frame: u32, header: &WalIndexHeader) -> Option<u32> {
    word(bytes, frame_offset(frame)?, header.big_endian).filter(|&p| p != 0)
}

/// A header as a little-endian writer lays it out, both copies, checksum right, for a
/// database of 4096-byte pages whose `-wal` salts are bytes 1 to 8.
#[cfg(test)]
pub(crate) fn test_header(last_frame: u32, checkpointed: u32) -> Vec<u8> {
    tests::header(last_frame, checkpointed)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn header(last_frame: u32, checkpointed: u32) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_SIZE];
        h[..4].copy_from_slice(&VERSION.to_le_bytes());
        h[12] = 1;
        h[14..16].copy_from_slice(&4096u16.to_le_bytes());
        h[16..20].copy_from_slice(&last_frame.to_le_bytes());
        h[20..24].copy_from_slice(&7u32.to_le_bytes());
        h[32..40].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let (s0, s1) = super::super::wal::checksum(false, (0, 0), &h[..40]);
        h[40..44].copy_from_slice(&s0.to_le_bytes());
        h[44..48].copy_from_slice(&s1.to_le_bytes());
        let copy = h[..48].to_vec();
        h[48..96].copy_from_slice(&copy);
        h[96..100].copy_from_slice(&checkpointed.to_le_bytes());
        h
    }

    #[test]
    fn reads_a_consistent_header() {
        let h = WalIndexHeader::parse(&header(12, 3)).unwrap();
        assert_eq!(h.last_frame, 12);
        assert_eq!(h.checkpointed, 3);
        assert_eq!(h.db_pages, 7);
        assert_eq!(h.page_size, 4096);
        assert_eq!(h.salts, (0x0102_0304, 0x0506_0708));
        assert!(!h.big_endian);
    }

    #[test]
    fn refuses_a_header_a_writer_left_midway_or_damaged() {
        let mut torn = header(12, 3);
        torn[16] = 13; // the first copy changed, the second not yet
        assert_eq!(WalIndexHeader::parse(&torn), None);
        let mut both = header(12, 3);
        both[16] = 13;
        both[64] = 13; // both copies agree, but the checksum does not
        assert_eq!(WalIndexHeader::parse(&both), None);
        let mut uninit = header(12, 3);
        uninit[12] = 0;
        uninit[60] = 0;
        assert_eq!(WalIndexHeader::parse(&uninit), None);
        assert_eq!(WalIndexHeader::parse(&header(12, 3)[..100]), None);
        assert_eq!(WalIndexHeader::parse(&[0xff; HEADER_SIZE]), None);
    }

    proptest::proptest! {
        /// Any bytes, or a whole header with one byte changed: parsing never panics, and a
        /// change to either copy of the header alone makes it refused.
        #[test]
        fn any_bytes_parse_or_not_without_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            at in 0usize..136,
            value in proptest::prelude::any::<u8>(),
            frame in proptest::prelude::any::<u32>(),
        ) {
            if let Some(h) = WalIndexHeader::parse(&bytes) {
                let _ = frame_page(&bytes, frame, &h);
            }
            let mut h = header(frame, 0);
            let changed = h[at] != value;
            h[at] = value;
            match WalIndexHeader::parse(&h) {
                Some(parsed) => {
                    proptest::prop_assert!(!(changed && at < 96), "byte {} changed", at);
                    let _ = frame_page(&h, frame, &parsed);
                }
                None => proptest::prop_assert!(changed),
            }
            let _ = frame_offset(frame);
        }
    }

    #[test]
    fn frames_lie_in_blocks_after_the_header() {
        assert_eq!(frame_offset(0), None);
        assert_eq!(frame_offset(1), Some(136));
        assert_eq!(frame_offset(4062), Some(136 + 4061 * 4));
        assert_eq!(frame_offset(4063), Some(32768));
        assert_eq!(frame_offset(4063 + 4096), Some(65536));
        assert!(frame_offset(u32::MAX).is_some());
        let h = WalIndexHeader::parse(&header(2, 0)).unwrap();
        let mut bytes = header(2, 0);
        bytes.extend_from_slice(&9u32.to_le_bytes());
        assert_eq!(frame_page(&bytes, 1, &h), Some(9));
        assert_eq!(frame_page(&bytes, 2, &h), None);
    }
}
