//! Pointer-map pages of auto-vacuum databases: 5-byte entries (type, parent page) for the
//! pages that follow each pointer-map page.

use super::be_u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtrmapType {
    RootPage,
    FreePage,
    FirstOverflow,
    LaterOverflow,
    Btree,
}

/// Whether `pgno` is a pointer-map page in an auto-vacuum database with this usable size.
pub fn is_ptrmap_page(pgno: u32, usable: usize) -> bool {
    let per_map = (usable / 5) as u64 + 1;
    pgno >= 2 && (u64::from(pgno) - 2) % per_map == 0
}

/// The pointer-map page that describes `pgno`, and the entry's index on it.
pub fn locate(pgno: u32, usable: usize) -> Option<(u32, usize)> {
    if pgno < 3 || is_ptrmap_page(pgno, usable) {
        return None;
    }
    let per_map = (usable / 5) as u64 + 1;
    let map = (u64::from(pgno) - 2) / per_map * per_map + 2;
    let index = usize::try_from(u64::from(pgno) - map - 1).ok()?;
    Some((u32::try_from(map).ok()?, index))
}

/// Reads entry `index` of a pointer-map page.
pub fn entry(page: &[u8], index: usize) -> Option<(PtrmapType, u32)> {
    let at = index.checked_mul(5)?;
    let kind = match *page.get(at)? {
        1 => PtrmapType::RootPage,
        2 => PtrmapType::FreePage,
        3 => PtrmapType::FirstOverflow,
        4 => PtrmapType::LaterOverflow,
        5 => PtrmapType::Btree,
        _ => return None,
    };
    Some((kind, be_u32(page, at + 1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_positions_for_1024_byte_pages() {
        // 1024/5 = 204 entries per map page: maps at 2, 207, 412...
        assert!(is_ptrmap_page(2, 1024));
        assert!(is_ptrmap_page(207, 1024));
        assert!(!is_ptrmap_page(3, 1024));
        assert_eq!(locate(3, 1024), Some((2, 0)));
        assert_eq!(locate(206, 1024), Some((2, 203)));
        assert_eq!(locate(208, 1024), Some((207, 0)));
        let page = [5u8, 0, 0, 0, 9];
        assert_eq!(entry(&page, 0), Some((PtrmapType::Btree, 9)));
        assert_eq!(entry(&page, 1), None);
    }
}
