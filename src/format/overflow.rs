//! Overflow pages: a 4-byte pointer to the next page of the chain, then payload bytes.

use super::be_u32;

/// The next page of the chain (0 ends it) and the payload bytes this page carries.
pub fn split(page: &[u8], usable: usize) -> Option<(u32, &[u8])> {
    let next = be_u32(page, 0)?;
    let content = page.get(4..usable.min(page.len()))?;
    Some((next, content))
}

/// How many overflow pages a payload of `total` bytes with `local` bytes on the b-tree page
/// needs: the most a chain may be followed before it is damage.
pub fn pages_needed(total: u64, local: usize, usable: usize) -> u64 {
    let rest = total.saturating_sub(local as u64);
    let per_page = (usable as u64).saturating_sub(4).max(1);
    rest.div_ceil(per_page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_count() {
        let mut p = vec![0u8; 512];
        p[..4].copy_from_slice(&9u32.to_be_bytes());
        let (next, content) = split(&p, 500).unwrap();
        assert_eq!((next, content.len()), (9, 496));
        assert_eq!(pages_needed(1000, 100, 500), 2);
        assert_eq!(pages_needed(100, 100, 500), 0);
        assert!(split(&[1, 2], 512).is_none());
    }
}
