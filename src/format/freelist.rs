//! Freelist trunk pages: next trunk, number of leaf pointers, then the leaf page numbers.

use super::be_u32;

/// A decoded trunk page. Leaf numbers are capped at what the page can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub next_trunk: u32,
    /// The leaf count as stored (may exceed what fits, which is damage).
    pub stored_leaf_count: u32,
    pub leaves: Vec<u32>,
}

pub fn parse_trunk(page: &[u8], usable: usize) -> Option<Trunk> {
    let next_trunk = be_u32(page, 0)?;
    let stored_leaf_count = be_u32(page, 4)?;
    let capacity = (usable.min(page.len()) / 4).saturating_sub(2);
    let n = (stored_leaf_count as usize).min(capacity);
    let leaves = (0..n).filter_map(|i| be_u32(page, 8 + 4 * i)).collect();
    Some(Trunk {
        next_trunk,
        stored_leaf_count,
        leaves,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_counts_are_capped() {
        let mut p = vec![0u8; 512];
        p[0..4].copy_from_slice(&7u32.to_be_bytes());
        p[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let t = parse_trunk(&p, 512).unwrap();
        assert_eq!(t.next_trunk, 7);
        assert_eq!(t.leaves.len(), 126);
    }
}
