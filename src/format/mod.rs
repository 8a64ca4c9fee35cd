//! Pure decoders for the SQLite file format: byte slices in, typed values out.
//! No I/O and no policy here, and nothing the file controls can make them panic,
//! loop forever or allocate without bound, so each can be fuzzed on its own.

#![forbid(unsafe_code)]

pub mod cell;
pub mod freelist;
pub mod header;
pub mod journal;
pub mod overflow;
pub mod page;
pub mod ptrmap;
pub mod record;
pub mod shm;
pub mod varint;
pub mod wal;

/// Reads a big-endian u16 at `offset`, if it is inside `bytes`.
pub fn be_u16(bytes: &[u8], offset: usize) -> Option<u16> {
    let b = bytes.get(offset..offset.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads a big-endian u32 at `offset`, if it is inside `bytes`.
pub fn be_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let b = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Text encoding of a database, from header offset 56.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextEncoding {
    Utf8,
    Utf16le,
    Utf16be,
}

impl TextEncoding {
    pub(crate) fn from_code(code: u32) -> Option<TextEncoding> {
        match code {
            1 => Some(TextEncoding::Utf8),
            2 => Some(TextEncoding::Utf16le),
            3 => Some(TextEncoding::Utf16be),
            _ => None,
        }
    }

    /// The name `PRAGMA encoding` uses.
    pub(crate) fn pragma_name(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf16le => "UTF-16le",
            TextEncoding::Utf16be => "UTF-16be",
        }
    }

    /// Text as this encoding stores it, from UTF-8.
    pub fn from_utf8(self, text: &str) -> std::borrow::Cow<'_, [u8]> {
        match self {
            TextEncoding::Utf8 => std::borrow::Cow::Borrowed(text.as_bytes()),
            TextEncoding::Utf16le => {
                std::borrow::Cow::Owned(text.encode_utf16().flat_map(u16::to_le_bytes).collect())
            }
            TextEncoding::Utf16be => {
                std::borrow::Cow::Owned(text.encode_utf16().flat_map(u16::to_be_bytes).collect())
            }
        }
    }

    /// Turns stored text bytes into UTF-8 bytes, borrowing when they already are.
    pub fn to_utf8(self, bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
        match self {
            TextEncoding::Utf8 => std::borrow::Cow::Borrowed(bytes),
            TextEncoding::Utf16le | TextEncoding::Utf16be => {
                let units = bytes.chunks_exact(2).map(|c| match self {
                    TextEncoding::Utf16le => u16::from_le_bytes([c[0], c[1]]),
                    _ => u16::from_be_bytes([c[0], c[1]]),
                });
                let s: String = char::decode_utf16(units)
                    .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect();
                std::borrow::Cow::Owned(s.into_bytes())
            }
        }
    }
}
