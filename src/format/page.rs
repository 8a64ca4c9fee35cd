//! B-tree page headers and cell pointer arrays.

use super::{be_u16, be_u32};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PageKind {
    IndexInterior,
    TableInterior,
    IndexLeaf,
    TableLeaf,
}

impl PageKind {
    pub(crate) fn from_flag(flag: u8) -> Option<PageKind> {
        match flag {
            2 => Some(PageKind::IndexInterior),
            5 => Some(PageKind::TableInterior),
            10 => Some(PageKind::IndexLeaf),
            13 => Some(PageKind::TableLeaf),
            _ => None,
        }
    }

    pub fn is_leaf(self) -> bool {
        matches!(self, PageKind::IndexLeaf | PageKind::TableLeaf)
    }

    pub(crate) fn is_table(self) -> bool {
        matches!(self, PageKind::TableLeaf | PageKind::TableInterior)
    }

    /// Bytes in the page header: 8 for leaves, 12 for interior pages (right-most pointer).
    pub(crate) fn header_len(self) -> usize {
        if self.is_leaf() {
            8
        } else {
            12
        }
    }
}

/// Why a page cannot be read as a b-tree page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    NotBtree(u8),
    TooShort,
    CellCountTooLarge(u16),
    CellPointerOutOfRange { cell: u16, offset: u16 },
    BadFreeblockChain,
    BadRightChild,
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageError::NotBtree(0) => write!(f, "not a b-tree page (zeroed or free)"),
            PageError::NotBtree(b) => write!(f, "not a b-tree page (type byte {b:#04x})"),
            PageError::TooShort => write!(f, "page is shorter than its header"),
            PageError::CellCountTooLarge(n) => write!(f, "cell count {n} does not fit the page"),
            PageError::CellPointerOutOfRange { cell, offset } => {
                write!(f, "cell {cell} points outside the page (offset {offset})")
            }
            PageError::BadFreeblockChain => write!(f, "freeblock chain is damaged"),
            PageError::BadRightChild => write!(f, "right-most child pointer is 0"),
        }
    }
}

/// A b-tree page whose header and cell pointer array are in range. Cells themselves are
/// decoded one at a time by [`super::cell`], each of which may still be damaged.
#[derive(Debug, Clone, Copy)]
pub struct BtreePage<'a> {
    pub data: &'a [u8],
    pub kind: PageKind,
    /// Where the page header starts: 100 on page 1, else 0.
    pub header_offset: usize,
    pub cell_count: u16,
    pub first_freeblock: u16,
    pub content_start: u32,
    pub fragmented_bytes: u8,
    /// Right-most child of an interior page.
    pub right_child: Option<u32>,
    /// Usable bytes of the page (page size minus reserved bytes).
    pub usable: usize,
}

impl<'a> BtreePage<'a> {
    /// Parses the page header at `header_offset` (100 for page 1) and checks that the cell
    /// pointer array fits. `usable` is the usable size; `data` may be the whole page.
    pub fn parse(
        data: &'a [u8],
        header_offset: usize,
        usable: usize,
    ) -> Result<BtreePage<'a>, PageError> {
        let usable = usable.min(data.len());
        let flag = *data.get(header_offset).ok_or(PageError::TooShort)?;
        let kind = PageKind::from_flag(flag).ok_or(PageError::NotBtree(flag))?;
        let hdr_end = header_offset + kind.header_len();
        if hdr_end > usable {
            return Err(PageError::TooShort);
        }
        let cell_count = be_u16(data, header_offset + 3).ok_or(PageError::TooShort)?;
        let pointers_end = hdr_end + 2 * usize::from(cell_count);
        if pointers_end > usable {
            return Err(PageError::CellCountTooLarge(cell_count));
        }
        let content_start = match be_u16(data, header_offset + 5).ok_or(PageError::TooShort)? {
            0 => 65536,
            n => u32::from(n),
        };
        let right_child = if kind.is_leaf() {
            None
        } else {
            match be_u32(data, header_offset + 8) {
                Some(0) | None => return Err(PageError::BadRightChild),
                Some(n) => Some(n),
            }
        };
        let page = BtreePage {
            data,
            kind,
            header_offset,
            cell_count,
            first_freeblock: be_u16(data, header_offset + 1).ok_or(PageError::TooShort)?,
            content_start,
            fragmented_bytes: data.get(header_offset + 7).copied().unwrap_or(0),
            right_child,
            usable,
        };
        Ok(page)
    }

    /// Like [`BtreePage::parse`], but also requires every cell pointer to be in range: the
    /// test for a page found by scanning, where nothing vouches for it.
    pub fn parse_strict(
        data: &'a [u8],
        header_offset: usize,
        usable: usize,
    ) -> Result<BtreePage<'a>, PageError> {
        let page = Self::parse(data, header_offset, usable)?;
        for i in 0..page.cell_count {
            if page.cell_offset(i).is_none() {
                let at = page.pointers_end() - 2 * usize::from(page.cell_count - i);
                let offset = be_u16(data, at).unwrap_or(0);
                return Err(PageError::CellPointerOutOfRange { cell: i, offset });
            }
        }
        Ok(page)
    }

    /// Offset within the page of cell `i`'s content, if its pointer is inside the page's
    /// cell content area (a damaged pointer yields `None`; the other cells stay readable).
    pub fn cell_offset(&self, i: u16) -> Option<usize> {
        if i >= self.cell_count {
            return None;
        }
        let at = self.header_offset + self.kind.header_len() + 2 * usize::from(i);
        let offset = usize::from(be_u16(self.data, at)?);
        (offset >= self.pointers_end() && offset < self.usable).then_some(offset)
    }

    /// End of the cell pointer array.
    pub(crate) fn pointers_end(&self) -> usize {
        self.header_offset + self.kind.header_len() + 2 * usize::from(self.cell_count)
    }

    /// Whether the freeblock list moves strictly forward inside the page, as SQLite keeps it.
    pub fn freeblocks_are_sane(&self) -> bool {
        let mut at = usize::from(self.first_freeblock);
        let mut steps = 0;
        while at != 0 {
            steps += 1;
            if at < self.pointers_end() || at + 4 > self.usable || steps > self.usable / 4 {
                return false;
            }
            let next = usize::from(be_u16(self.data, at).unwrap_or(0));
            let size = usize::from(be_u16(self.data, at + 2).unwrap_or(0));
            if size < 4 || at + size > self.usable || (next != 0 && next < at + size) {
                return false;
            }
            at = next;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_page_is_not_btree() {
        assert_eq!(
            BtreePage::parse(&[0u8; 1024], 0, 1024).unwrap_err(),
            PageError::NotBtree(0)
        );
    }

    #[test]
    fn leaf_with_one_cell() {
        let mut p = vec![0u8; 512];
        p[0] = 13;
        p[3..5].copy_from_slice(&1u16.to_be_bytes());
        p[5..7].copy_from_slice(&500u16.to_be_bytes());
        p[8..10].copy_from_slice(&500u16.to_be_bytes());
        let page = BtreePage::parse(&p, 0, 512).unwrap();
        assert_eq!(page.kind, PageKind::TableLeaf);
        assert_eq!(page.cell_offset(0), Some(500));
        assert_eq!(page.cell_offset(1), None);
        assert!(page.freeblocks_are_sane());
        p[8..10].copy_from_slice(&600u16.to_be_bytes());
        assert!(matches!(
            BtreePage::parse_strict(&p, 0, 512),
            Err(PageError::CellPointerOutOfRange { .. })
        ));
        let lenient = BtreePage::parse(&p, 0, 512).unwrap();
        assert_eq!(lenient.cell_offset(0), None);
    }

    #[test]
    fn huge_cell_count_is_rejected() {
        let mut p = vec![0u8; 512];
        p[0] = 13;
        p[3..5].copy_from_slice(&5000u16.to_be_bytes());
        assert_eq!(
            BtreePage::parse(&p, 0, 512).unwrap_err(),
            PageError::CellCountTooLarge(5000)
        );
    }
}
