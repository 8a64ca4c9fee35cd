//! The rollback journal (`DB-journal`): what a transaction that never committed changed.
//!
//! Before SQLite changes a page in rollback-journal mode it copies the page's original
//! content into the journal. A journal whose header is intact after a crash is "hot": the main
//! file may hold pages of the unfinished transaction, and the originals in the journal put it
//! back as it was at the last commit. A segment is a header (padded to the sector size) and
//! then records of a page number, the original page and a checksum; a journal may hold
//! several segments, each starting at a sector boundary. A journal that finished its work is
//! empty, gone, or has a zeroed header, and none of it counts.

use super::be_u32;

pub const MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// The bytes of a header that carry fields (the rest of its sector is padding).
pub(crate) const HEADER_FIELDS: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalHeader {
    /// Records in this segment; `None` when they run to the end of the file (the count was
    /// never written: a journal kept without syncing).
    pub records: Option<u32>,
    /// Seeds every record's checksum.
    pub nonce: u32,
    /// The database's size in pages when the transaction began: pages past it were added
    /// by the transaction.
    pub initial_pages: u32,
    /// The header is padded to this size, and each segment starts on a multiple of it.
    pub sector_size: u32,
    pub page_size: u32,
}

impl JournalHeader {
    /// A header at the start of `bytes`; `None` unless the magic is there and the sizes are
    /// ones SQLite writes.
    pub fn parse(bytes: &[u8]) -> Option<JournalHeader> {
        if bytes.get(..MAGIC.len())? != MAGIC {
            return None;
        }
        let records = match be_u32(bytes, 8)? {
            0 | u32::MAX => None,
            n => Some(n),
        };
        let sector_size = be_u32(bytes, 20)?;
        let page_size = be_u32(bytes, 24)?;
        let power = |n: u32, lo: u32| n >= lo && n <= 65536 && n.is_power_of_two();
        (power(sector_size, 32) && power(page_size, 512)).then_some(JournalHeader {
            records,
            nonce: be_u32(bytes, 12)?,
            initial_pages: be_u32(bytes, 16)?,
            sector_size,
            page_size,
        })
    }

    /// Bytes one record takes: page number, page, checksum.
    pub fn record_size(&self) -> u64 {
        u64::from(self.page_size) + 8
    }
}

/// A record's page number and original page, if `record` (one record's bytes) checks out
/// against the header's nonce.
pub fn check_record<'r>(header: &JournalHeader, record: &'r [u8]) -> Option<(u32, &'r [u8])> {
    let size = header.page_size as usize;
    let pgno = be_u32(record, 0)?;
    let page = record.get(4..4 + size)?;
    let stored = be_u32(record, 4 + size)?;
    (pgno != 0 && checksum(header.nonce, page) == stored).then_some((pgno, page))
}

/// The journal's page checksum: the nonce plus every 200th byte of the page, counting back
/// from 200 bytes before its end.
pub fn checksum(nonce: u32, page: &[u8]) -> u32 {
    let mut sum = nonce;
    let mut at = page.len().checked_sub(200);
    while let Some(i) = at.filter(|&i| i > 0) {
        sum = sum.wrapping_add(u32::from(page[i]));
        at = i.checked_sub(200);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(records: u32, nonce: u32, pages: u32) -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        for v in [records, nonce, pages, 512, 1024] {
            h.extend(v.to_be_bytes());
        }
        h.resize(512, 0);
        h
    }

    fn record(nonce: u32, pgno: u32, fill: u8) -> Vec<u8> {
        let page = vec![fill; 1024];
        let mut r = pgno.to_be_bytes().to_vec();
        r.extend(&page);
        r.extend(checksum(nonce, &page).to_be_bytes());
        r
    }

    #[test]
    fn a_header_and_its_records_read_back() {
        let h = JournalHeader::parse(&header(2, 77, 9)).unwrap();
        assert_eq!(h.records, Some(2));
        assert_eq!(
            (h.nonce, h.initial_pages, h.sector_size, h.page_size),
            (77, 9, 512, 1024)
        );
        assert_eq!(h.record_size(), 1032);
        let r = record(77, 3, 0xab);
        let (pgno, page) = check_record(&h, &r).unwrap();
        assert_eq!(pgno, 3);
        assert!(page.iter().all(|&b| b == 0xab));
    }

    #[test]
    fn checksum_adds_every_200th_byte_from_the_end() {
        let mut page = vec![0u8; 1024];
        for i in [824, 624, 424, 224, 24] {
            page[i] = 1;
        }
        page[0] = 100; // offset 0 is never counted
        page[1023] = 100;
        assert_eq!(checksum(10, &page), 15);
    }

    #[test]
    fn a_damaged_record_or_header_does_not_count() {
        let h = JournalHeader::parse(&header(1, 5, 4)).unwrap();
        let mut r = record(5, 2, 7);
        r[4 + 824] ^= 1;
        assert!(
            check_record(&h, &r).is_none(),
            "a byte the checksum covers changed"
        );
        assert!(
            check_record(&h, &record(5, 0, 7)).is_none(),
            "page 0 does not exist"
        );
        assert!(check_record(&h, &r[..100]).is_none(), "cut short");
        let mut zeroed = header(1, 5, 4);
        zeroed[..8].fill(0);
        assert!(
            JournalHeader::parse(&zeroed).is_none(),
            "a finished journal"
        );
        let mut odd = header(1, 5, 4);
        odd[24..28].copy_from_slice(&1000u32.to_be_bytes());
        assert!(JournalHeader::parse(&odd).is_none(), "no such page size");
        assert_eq!(
            JournalHeader::parse(&header(0, 5, 4)).unwrap().records,
            None
        );
        assert_eq!(
            JournalHeader::parse(&header(u32::MAX, 5, 4))
                .unwrap()
                .records,
            None
        );
        assert!(JournalHeader::parse(&[0xd9; 4]).is_none());
    }
}
