//! The 100-byte database header at the start of page 1.

use super::{be_u16, be_u32, TextEncoding};

pub(crate) const HEADER_SIZE: usize = 100;
pub(crate) const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// The header fields, as stored. `parse` checks only that the bytes are there and the magic
/// matches; `problems` says which values are out of range, so a damaged header can still be
/// partly used.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Header {
    /// Page size in bytes, with the stored value 1 meaning 65536; 0 if the stored value is invalid.
    pub page_size: u32,
    pub write_version: u8,
    pub read_version: u8,
    pub reserved_bytes: u8,
    pub max_payload_fraction: u8,
    pub min_payload_fraction: u8,
    pub leaf_payload_fraction: u8,
    pub change_counter: u32,
    /// "In-header database size" in pages.
    pub page_count: u32,
    pub freelist_trunk: u32,
    pub freelist_count: u32,
    pub schema_cookie: u32,
    pub schema_format: u32,
    pub default_cache_size: u32,
    /// Largest root page when auto-vacuum or incremental vacuum is on, else 0.
    pub largest_root_page: u32,
    pub text_encoding_code: u32,
    pub user_version: u32,
    pub incremental_vacuum: u32,
    pub application_id: u32,
    pub version_valid_for: u32,
    pub sqlite_version_number: u32,
}

/// Why the first 100 bytes cannot be read as a header at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    TooShort(usize),
    BadMagic,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::TooShort(n) => write!(f, "file is {n} bytes, shorter than a header"),
            HeaderError::BadMagic => write!(f, "header does not start with \"SQLite format 3\""),
        }
    }
}

/// Turns the stored 2-byte page size into bytes: a power of two from 512 to 32768, or 1 for 65536.
pub fn decode_page_size(stored: u16) -> Option<u32> {
    match stored {
        1 => Some(65536),
        n if (512..=32768).contains(&n) && n.is_power_of_two() => Some(u32::from(n)),
        _ => None,
    }
}

impl Header {
    pub fn parse(bytes: &[u8]) -> Result<Header, HeaderError> {
        if bytes.len() < HEADER_SIZE {
            return Err(HeaderError::TooShort(bytes.len()));
        }
        if &bytes[..16] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        Ok(Self::parse_fields(bytes))
    }

    /// Reads the fields without checking the magic string: used when the magic is damaged
    /// but other fields may still be right.
    pub fn parse_fields(bytes: &[u8]) -> Header {
        let u32_at = |o| be_u32(bytes, o).unwrap_or(0);
        let u8_at = |o: usize| bytes.get(o).copied().unwrap_or(0);
        Header {
            page_size: be_u16(bytes, 16).and_then(decode_page_size).unwrap_or(0),
            write_version: u8_at(18),
            read_version: u8_at(19),
            reserved_bytes: u8_at(20),
            max_payload_fraction: u8_at(21),
            min_payload_fraction: u8_at(22),
            leaf_payload_fraction: u8_at(23),
            change_counter: u32_at(24),
            page_count: u32_at(28),
            freelist_trunk: u32_at(32),
            freelist_count: u32_at(36),
            schema_cookie: u32_at(40),
            schema_format: u32_at(44),
            default_cache_size: u32_at(48),
            largest_root_page: u32_at(52),
            text_encoding_code: u32_at(56),
            user_version: u32_at(60),
            incremental_vacuum: u32_at(64),
            application_id: u32_at(68),
            version_valid_for: u32_at(92),
            sqlite_version_number: u32_at(96),
        }
    }

    pub fn text_encoding(&self) -> Option<TextEncoding> {
        TextEncoding::from_code(self.text_encoding_code)
    }

    /// "wal" when the read/write versions say the database is in WAL mode, else "rollback".
    pub fn journal_mode(&self) -> &'static str {
        if self.read_version == 2 && self.write_version == 2 {
            "wal"
        } else {
            "rollback"
        }
    }

    /// Usable bytes per page (page size minus reserved bytes), if the page size is valid.
    pub fn usable_size(&self) -> Option<u32> {
        if self.page_size == 0 {
            return None;
        }
        self.page_size.checked_sub(u32::from(self.reserved_bytes))
    }

    /// The SQLite version that last wrote the file, as "3.45.1".
    pub fn sqlite_version(&self) -> String {
        let n = self.sqlite_version_number;
        format!("{}.{}.{}", n / 1_000_000, (n / 1000) % 1000, n % 1000)
    }

    /// Whether the in-header page count can be trusted (SQLite's own rule: it is valid when
    /// nonzero and the change counter matches the version-valid-for number).
    pub fn page_count_is_valid(&self) -> bool {
        self.page_count != 0 && self.change_counter == self.version_valid_for
    }

    /// Field values outside what the format allows, in words.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.page_size == 0 {
            out.push("page size is not a power of two between 512 and 65536".to_string());
        }
        if !(1..=2).contains(&self.write_version) || !(1..=2).contains(&self.read_version) {
            out.push(format!(
                "file format versions {}/{} are not 1 (rollback) or 2 (WAL)",
                self.write_version, self.read_version
            ));
        }
        if self.max_payload_fraction != 64
            || self.min_payload_fraction != 32
            || self.leaf_payload_fraction != 32
        {
            out.push("payload fractions are not 64/32/32".to_string());
        }
        if self.usable_size().is_some_and(|u| u < 480) {
            out.push(format!(
                "{} reserved bytes leave fewer than 480 usable bytes per page",
                self.reserved_bytes
            ));
        }
        if self.text_encoding().is_none() && self.text_encoding_code != 0 {
            out.push(format!(
                "text encoding {} is not 1, 2 or 3",
                self.text_encoding_code
            ));
        }
        if self.schema_format > 4 {
            out.push(format!("schema format {} is above 4", self.schema_format));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut h = vec![0u8; 100];
        h[..16].copy_from_slice(MAGIC);
        h[16..18].copy_from_slice(&4096u16.to_be_bytes());
        h[18] = 2;
        h[19] = 2;
        h[21] = 64;
        h[22] = 32;
        h[23] = 32;
        h[24..28].copy_from_slice(&7u32.to_be_bytes());
        h[28..32].copy_from_slice(&12u32.to_be_bytes());
        h[44..48].copy_from_slice(&4u32.to_be_bytes());
        h[56..60].copy_from_slice(&1u32.to_be_bytes());
        h[92..96].copy_from_slice(&7u32.to_be_bytes());
        h[96..100].copy_from_slice(&3_051_003u32.to_be_bytes());
        h
    }

    #[test]
    fn parses_a_sane_header() {
        let h = Header::parse(&sample()).unwrap();
        assert_eq!(h.page_size, 4096);
        assert_eq!(h.page_count, 12);
        assert!(h.page_count_is_valid());
        assert_eq!(h.journal_mode(), "wal");
        assert_eq!(h.sqlite_version(), "3.51.3");
        assert_eq!(h.text_encoding(), Some(TextEncoding::Utf8));
        assert!(h.problems().is_empty(), "{:?}", h.problems());
    }

    #[test]
    fn page_size_one_means_65536_and_odd_sizes_are_rejected() {
        assert_eq!(decode_page_size(1), Some(65536));
        assert_eq!(decode_page_size(1000), None);
        assert_eq!(decode_page_size(256), None);
        let mut b = sample();
        b[16..18].copy_from_slice(&3000u16.to_be_bytes());
        let h = Header::parse(&b).unwrap();
        assert_eq!(h.page_size, 0);
        assert!(!h.problems().is_empty());
    }

    #[test]
    fn rejects_short_and_foreign_bytes() {
        assert_eq!(Header::parse(&[0; 10]), Err(HeaderError::TooShort(10)));
        assert_eq!(Header::parse(&[0; 100]), Err(HeaderError::BadMagic));
    }
}
