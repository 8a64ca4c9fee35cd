//! The write-ahead log: a 32-byte header, then frames of a 24-byte frame header and one page.
//! A frame counts only if its salts equal the header's and its running checksum is right;
//! a transaction counts only up to its commit frame (the one whose "db size" is nonzero).

use super::be_u32;

pub const WAL_HEADER_SIZE: usize = 32;
pub const FRAME_HEADER_SIZE: usize = 24;
const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct WalHeader {
    /// Checksums are computed over big-endian words (else little-endian).
    pub big_endian_checksum: bool,
    pub format_version: u32,
    pub page_size: u32,
    pub checkpoint_seq: u32,
    pub salt1: u32,
    pub salt2: u32,
    /// The checksum at the end of the header, the seed for the first frame's.
    pub checksum: (u32, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalHeaderError {
    TooShort,
    BadMagic,
    BadPageSize(u32),
    BadChecksum,
}

impl std::fmt::Display for WalHeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalHeaderError::TooShort => write!(f, "WAL file is shorter than its 32-byte header"),
            WalHeaderError::BadMagic => write!(f, "WAL header magic number is wrong"),
            WalHeaderError::BadPageSize(n) => write!(f, "WAL header page size {n} is invalid"),
            WalHeaderError::BadChecksum => write!(f, "WAL header checksum does not match"),
        }
    }
}

impl WalHeader {
    pub fn parse(bytes: &[u8]) -> Result<WalHeader, WalHeaderError> {
        let head = bytes
            .get(..WAL_HEADER_SIZE)
            .ok_or(WalHeaderError::TooShort)?;
        let field = |o| be_u32(head, o).unwrap_or(0);
        let big_endian_checksum = match field(0) {
            MAGIC_LE => false,
            MAGIC_BE => true,
            _ => return Err(WalHeaderError::BadMagic),
        };
        let page_size = field(8);
        let valid_size = (512..=65536).contains(&page_size) && page_size.is_power_of_two();
        if !valid_size {
            return Err(WalHeaderError::BadPageSize(page_size));
        }
        let computed = checksum(big_endian_checksum, (0, 0), &head[..24]);
        if computed != (field(24), field(28)) {
            return Err(WalHeaderError::BadChecksum);
        }
        Ok(WalHeader {
            big_endian_checksum,
            format_version: field(4),
            page_size,
            checkpoint_seq: field(12),
            salt1: field(16),
            salt2: field(20),
            checksum: computed,
        })
    }

    /// The page size and salts a header states, its checksum not checked: enough to
    /// recognise the frames written after it when the header itself is damaged.
    pub fn parse_unchecked(bytes: &[u8]) -> Option<(u32, u32, u32)> {
        let head = bytes.get(..WAL_HEADER_SIZE)?;
        if !matches!(be_u32(head, 0)?, MAGIC_LE | MAGIC_BE) {
            return None;
        }
        let page_size = be_u32(head, 8)?;
        let valid_size = (512..=65536).contains(&page_size) && page_size.is_power_of_two();
        valid_size.then_some((page_size, be_u32(head, 16)?, be_u32(head, 20)?))
    }

    /// Size in bytes of one frame (header plus page).
    pub fn frame_size(&self) -> u64 {
        FRAME_HEADER_SIZE as u64 + u64::from(self.page_size)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub pgno: u32,
    /// Database size in pages after this commit; nonzero only on a commit frame.
    pub commit_size: u32,
    pub salt1: u32,
    pub salt2: u32,
    pub checksum: (u32, u32),
}

impl FrameHeader {
    pub fn parse(bytes: &[u8]) -> Option<FrameHeader> {
        Some(FrameHeader {
            pgno: be_u32(bytes, 0)?,
            commit_size: be_u32(bytes, 4)?,
            salt1: be_u32(bytes, 8)?,
            salt2: be_u32(bytes, 12)?,
            checksum: (be_u32(bytes, 16)?, be_u32(bytes, 20)?),
        })
    }
}

/// Checks one frame against the WAL header and the running checksum `prev`.
/// Returns the frame header and the new running checksum if the frame is valid.
pub fn check_frame(
    header: &WalHeader,
    prev: (u32, u32),
    frame_header: &[u8],
    page: &[u8],
) -> Option<(FrameHeader, (u32, u32))> {
    let fh = FrameHeader::parse(frame_header)?;
    if fh.salt1 != header.salt1 || fh.salt2 != header.salt2 || fh.pgno == 0 {
        return None;
    }
    if page.len() != header.page_size as usize {
        return None;
    }
    let sum = checksum(header.big_endian_checksum, prev, frame_header.get(..8)?);
    let sum = checksum(header.big_endian_checksum, sum, page);
    (sum == fh.checksum).then_some((fh, sum))
}

/// The WAL's running checksum over `data` (a multiple of 8 bytes), continuing from `seed`.
pub fn checksum(big_endian: bool, seed: (u32, u32), data: &[u8]) -> (u32, u32) {
    let (mut s0, mut s1) = seed;
    for pair in data.chunks_exact(8) {
        let word = |b: &[u8]| {
            let a = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        s0 = s0.wrapping_add(word(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(page_size: u32) -> Vec<u8> {
        let mut h = Vec::new();
        for v in [MAGIC_LE, 3_007_000, page_size, 0, 0x1234, 0x5678] {
            h.extend_from_slice(&v.to_be_bytes());
        }
        let (a, b) = checksum(false, (0, 0), &h);
        h.extend_from_slice(&a.to_be_bytes());
        h.extend_from_slice(&b.to_be_bytes());
        h
    }

    #[test]
    fn header_round_trip_and_damage() {
        let bytes = header_bytes(1024);
        let h = WalHeader::parse(&bytes).unwrap();
        assert_eq!(h.page_size, 1024);
        assert_eq!((h.salt1, h.salt2), (0x1234, 0x5678));
        let mut bad = bytes.clone();
        bad[13] ^= 1;
        assert_eq!(WalHeader::parse(&bad), Err(WalHeaderError::BadChecksum));
        assert_eq!(
            WalHeader::parse(&bytes[..20]),
            Err(WalHeaderError::TooShort)
        );
    }

    #[test]
    fn frame_checksum_chains_and_salts_must_match() {
        let h = WalHeader::parse(&header_bytes(512)).unwrap();
        let page = vec![7u8; 512];
        let mut fh = Vec::new();
        for v in [3u32, 5, h.salt1, h.salt2] {
            fh.extend_from_slice(&v.to_be_bytes());
        }
        let sum = checksum(false, checksum(false, h.checksum, &fh[..8]), &page);
        fh.extend_from_slice(&sum.0.to_be_bytes());
        fh.extend_from_slice(&sum.1.to_be_bytes());
        let (frame, next) = check_frame(&h, h.checksum, &fh, &page).unwrap();
        assert_eq!((frame.pgno, frame.commit_size, next), (3, 5, sum));
        let mut other_salt = fh.clone();
        other_salt[11] ^= 1;
        assert!(check_frame(&h, h.checksum, &other_salt, &page).is_none());
        assert!(check_frame(&h, (1, 1), &fh, &page).is_none());
    }
}
