//! Whether a page belongs where a walk found it: its keys inside the bounds its parent gives,
//! its records of a shape the tree's table can hold.

use super::{Frame, ShapeCheck, Walker};
use crate::format::cell::{self, Cell, Payload};
use crate::format::page::BtreePage;
use crate::format::record;

impl Walker<'_> {
    /// A page belongs where the walk found it when most of its keys fall inside the bounds
    /// its parent gives and most of its records have a shape the tree's table can hold.
    pub(super) fn belongs(
        &mut self,
        page: &BtreePage<'_>,
        frame: &Frame,
        shape: ShapeCheck<'_>,
    ) -> bool {
        self.anomalies = u32::from(!page.freeblocks_are_sane());
        if page.cell_count == 0 {
            return true;
        }
        let mut good = 0u32;
        let mut bad = 0u32;
        let in_bounds = |k: i64| frame_contains(frame, k);
        // A sample of cells decides; every row is still checked against the bounds as it is
        // emitted (see emit_cells), so damage on other cells is still flagged.
        let n = page.cell_count;
        // A skim, which only looks for pages out of place, samples fewer.
        let samples = if self.skim {
            BELONGS_SAMPLE / 4
        } else {
            BELONGS_SAMPLE
        };
        let step = (n / samples).max(1);
        let sample = (0..n)
            .step_by(usize::from(step))
            .chain(std::iter::once(n - 1));
        for i in sample {
            let Some(offset) = page.cell_offset(i) else {
                continue;
            };
            let ok = match cell::parse(page, offset) {
                Ok(Cell::TableInterior { rowid, .. }) => in_bounds(rowid),
                Ok(Cell::TableLeaf { rowid, payload }) => {
                    in_bounds(rowid)
                        && self
                            .shape_fits(Some(rowid), &payload, shape)
                            .unwrap_or(true)
                }
                Ok(Cell::IndexLeaf { payload } | Cell::IndexInterior { payload, .. }) => {
                    match self.shape_fits(None, &payload, shape) {
                        Some(fits) => fits,
                        None => continue,
                    }
                }
                Err(_) => continue,
            };
            if ok {
                good += 1;
            } else {
                bad += 1;
            }
        }
        self.anomalies += bad;
        good >= bad
    }

    /// Whether the cell's record has a shape its tree's table can hold; `None` when its
    /// header runs on into the overflow pages (a row of hundreds of columns), which a sample
    /// does not follow: the walk reads it whole.
    fn shape_fits(
        &mut self,
        rowid: Option<i64>,
        payload: &Payload<'_>,
        shape: ShapeCheck<'_>,
    ) -> Option<bool> {
        if record::serial_types(payload.local, &mut self.types).is_ok() {
            return Some(shape(rowid, &self.types));
        }
        let header_len = crate::format::varint::read(payload.local).map(|(n, _)| n);
        let spills = payload.overflow.is_some()
            && header_len.is_some_and(|n| n > payload.local.len() as u64 && n <= payload.total);
        (!spills).then_some(false)
    }
}

/// Cells of a page checked to decide whether it belongs where the walk found it.
const BELONGS_SAMPLE: u16 = 16;

pub(super) fn frame_contains(frame: &Frame, key: i64) -> bool {
    frame.lo.is_none_or(|lo| key > lo) && frame.hi.is_none_or(|hi| key <= hi)
}
