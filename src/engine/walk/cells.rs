//! One page's cells handed to a walk's sink: each record decoded (or its shape read), its
//! overflow chain followed, and the signs of damage on the page counted.

use super::belongs::frame_contains;
use super::{Frame, Walker};
use super::{RowRef, WalkStats};
use crate::engine::pages::{Claims, PageStatus};
use crate::format::cell::{self, Cell, Payload};
use crate::format::overflow;
use crate::format::page::BtreePage;
use crate::format::record;
use crate::Result;

impl Walker<'_> {
    /// Hands each cell of `page` to `sink`: the listed cells, then those carving finds (which
    /// it looks for only when the listed cells leave bytes unaccounted for).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit_cells(
        &mut self,
        page: &BtreePage<'_>,
        map: &mut Claims,
        owner: Option<u32>,
        sink: &mut dyn FnMut(&RowRef<'_>) -> Result<()>,
        frame: &Frame,
        stats: &mut WalkStats,
    ) -> Result<()> {
        let mut last_rowid: Option<i64> = None;
        let mut listed_space = 0usize;
        let mut bad_pointers = 0usize;
        for i in 0..page.cell_count {
            let Some(offset) = page.cell_offset(i) else {
                bad_pointers += 1;
                continue;
            };
            // Each listed cell is parsed once: for its row, and for the space it takes.
            let cell = cell::parse(page, offset);
            if let Ok(c) = &cell {
                let space = cell::parsed_space(page, offset, c).unwrap_or(0);
                listed_space = listed_space.saturating_add(space);
            }
            let row = (cell, &mut last_rowid);
            self.emit_cell(page, map, owner, sink, frame, stats, row)?;
        }
        let carved = cell::carve_given(page, listed_space);
        // Cells behind a damaged pointer are counted lost unless carving found them.
        stats.bad_cells += bad_pointers.saturating_sub(carved.len()) as u64;
        // At most a page's cells: far below u32::MAX.
        self.anomalies += u32::try_from(bad_pointers + carved.len()).unwrap_or(u32::MAX);
        for offset in carved {
            let row = (cell::parse(page, offset), &mut last_rowid);
            self.emit_cell(page, map, owner, sink, frame, stats, row)?;
        }
        Ok(())
    }

    /// One cell of `page` (parsed, or why not) to `sink`; `last_rowid` is the rowid of the
    /// row before it on the page.
    #[allow(clippy::too_many_arguments)]
    fn emit_cell(
        &mut self,
        page: &BtreePage<'_>,
        map: &mut Claims,
        owner: Option<u32>,
        sink: &mut dyn FnMut(&RowRef<'_>) -> Result<()>,
        frame: &Frame,
        stats: &mut WalkStats,
        (cell, last_rowid): (Result<Cell<'_>, cell::CellError>, &mut Option<i64>),
    ) -> Result<()> {
        let (rowid, payload) = match cell {
            Ok(Cell::TableLeaf { rowid, payload }) => (Some(rowid), payload),
            Ok(Cell::IndexLeaf { payload } | Cell::IndexInterior { payload, .. }) => {
                (None, payload)
            }
            Ok(Cell::TableInterior { .. }) => return Ok(()),
            Err(_) => {
                stats.bad_cells += 1;
                self.anomalies += 1;
                return Ok(());
            }
        };
        if local_end(page, &payload) > self.valid_len {
            // The cell runs past the end of a truncated file: its bytes are not data.
            stats.bad_cells += 1;
            return Ok(());
        }
        let broken = self.assemble(map, owner, &payload);
        let payload_bytes: &[u8] = if payload.overflow.is_some() {
            &self.payload
        } else {
            payload.local
        };
        let decoded = if self.shapes_only {
            self.fields.clear();
            record::shape(payload_bytes)
        } else {
            record::decode_fields(payload_bytes, &mut self.fields)
        };
        let Ok(decoded) = decoded else {
            stats.bad_cells += 1;
            return Ok(());
        };
        if !decoded.exact_length && broken.is_none() && decoded.complete {
            self.anomalies += 1;
        }
        if let (Some(r), Some(prev)) = (rowid, *last_rowid) {
            if r <= prev {
                self.anomalies += 1;
            }
        }
        *last_rowid = rowid.or(*last_rowid);
        if rowid.is_some_and(|r| !frame_contains(frame, r)) {
            self.anomalies += 1;
        }
        let complete = decoded.complete && broken.is_none();
        if !complete {
            stats.incomplete_rows += 1;
        }
        stats.rows += 1;
        if let Some(r) = rowid {
            stats.min_rowid = Some(stats.min_rowid.map_or(r, |m| m.min(r)));
            stats.max_rowid = Some(stats.max_rowid.map_or(r, |m| m.max(r)));
        }
        sink(&RowRef {
            rowid,
            payload: payload_bytes,
            fields: &self.fields,
            field_count: decoded.fields,
            complete,
            broken_overflow: broken,
            first_missing: decoded.first_missing,
            exact_length: decoded.exact_length,
            page: frame.pgno,
        })
    }

    /// Puts the whole payload of a spilling cell into `self.payload`, following its overflow
    /// chain for at most as many pages as its size needs. Returns the page where the chain
    /// broke, if it did (the payload then holds the readable prefix).
    fn assemble(
        &mut self,
        map: &mut Claims,
        owner: Option<u32>,
        payload: &Payload<'_>,
    ) -> Option<u32> {
        let first = payload.overflow?;
        self.payload.clear();
        self.payload.extend_from_slice(payload.local);
        let usable = self.pf.usable();
        let needed = overflow::pages_needed(payload.total, payload.local.len(), usable);
        let mut next = first;
        let mut ovf = std::mem::take(&mut self.ovf);
        let mut broken = None;
        for n in 0..needed {
            let readable = map.is_unseen(next) && self.pf.read(next, &mut ovf).is_some();
            // A whole page of zeros is a zeroed page, not payload, unless it ends a value
            // whose zeros began before it (see ends_in_zeros): the last page of a zeroblob()
            // (written in place later, or not yet) is all zeros too, and SQLite reads it as
            // data. A value whose bytes just before that page are data lost its last page.
            let zero_tail = n + 1 == needed && ends_in_zeros(&self.payload);
            if !readable || (!zero_tail && ovf.iter().all(|b| *b == 0)) {
                broken = Some(next);
                break;
            }
            map.claim(next, PageStatus::Overflow, owner);
            let Some((after, content)) = overflow::split(&ovf, usable) else {
                broken = Some(next);
                break;
            };
            let want = usize::try_from(payload.total)
                .unwrap_or(usize::MAX)
                .saturating_sub(self.payload.len());
            self.payload
                .extend_from_slice(&content[..content.len().min(want)]);
            next = after;
        }
        self.ovf = ovf;
        broken
    }
}

/// Whether a page of zeros after the bytes read so far can be the rest of the record as
/// written: 8 zeros end what was read, or the field that goes on into the page has only
/// zeros before it (a zeroblob()), or no field does (the page starts a field, and SQLite
/// reads whatever it holds with nothing to say otherwise).
fn ends_in_zeros(payload: &[u8]) -> bool {
    let zeros = payload.iter().rev().take_while(|b| **b == 0).count();
    let field = payload
        .len()
        .checked_sub(1)
        .and_then(|last| record::field_span(payload, last));
    zeros >= 8 || field.is_some_and(|f| f.end == payload.len() || payload.len() - f.start <= zeros)
}

/// Offset just past a cell's local payload (and its overflow pointer) within the page.
fn local_end(page: &BtreePage<'_>, payload: &Payload<'_>) -> usize {
    let start = payload.local.as_ptr() as usize - page.data.as_ptr() as usize;
    let pointer = if payload.overflow.is_some() { 4 } else { 0 };
    start + payload.local.len() + pointer
}
