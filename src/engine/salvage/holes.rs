//! The parts of a tree that were lost, as orphan groups fill them: found by key range, shrunk
//! as rows come back.

use crate::engine::walk::Hole;

fn low_key(h: &Hole) -> i64 {
    h.lo.unwrap_or(i64::MIN)
}

/// The hole of one tree that holds the keys `[first, last]`. A tree's holes are disjoint key
/// ranges; kept sorted by their low bound, the one to try is found by binary search, so the
/// orphan pass stays O(groups × log holes).
pub(crate) fn find_hole(holes: &[Hole], first: Option<i64>, last: Option<i64>) -> Option<usize> {
    let (Some(first), Some(last)) = (first, last) else {
        return (!holes.is_empty()).then_some(0);
    };
    let after = holes.partition_point(|h| h.lo.is_none_or(|lo| lo < first));
    let candidate = after.checked_sub(1)?;
    holes[candidate].covers(first, last).then_some(candidate)
}

/// Sorts a tree's holes by their low bound (see [`find_hole`]).
pub(crate) fn sort_holes(holes: &mut [Hole]) {
    holes.sort_by_key(low_key);
}

/// Removes the keys `[first, last]` from a hole, keeping what is left on either side, in order.
pub(crate) fn shrink_hole(
    holes: &mut Vec<Hole>,
    index: usize,
    first: Option<i64>,
    last: Option<i64>,
) {
    let (Some(first), Some(last)) = (first, last) else {
        // Keys with no rowid (a WITHOUT ROWID table's) do not say which part of the hole
        // came back: the hole stays, for the next group, and nothing proves it whole.
        if let Some(h) = holes.get_mut(index) {
            h.filled = true;
        }
        return;
    };
    let h = holes.remove(index);
    // Nothing lies below i64::MIN: no left piece then.
    let left = first.checked_sub(1).map(|hi| Hole {
        hi: Some(hi),
        filled: true,
        ..h.clone()
    });
    let right = Hole {
        lo: Some(last),
        filled: true,
        ..h
    };
    let mut at = index;
    for piece in left.into_iter().chain([right]) {
        let empty = matches!((piece.lo, piece.hi), (Some(lo), Some(hi)) if hi <= lo);
        if !empty {
            holes.insert(at, piece);
            at += 1;
        }
    }
}
