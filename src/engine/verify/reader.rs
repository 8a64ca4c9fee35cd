//! A database file of the proof's read page by page: what its scans of pages, and its walk of
//! every tree's structure, read.

use crate::format::cell::Payload;
use crate::format::page::BtreePage;
use crate::format::{header::Header, overflow};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The scan cannot go on by pages: SQL takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unreadable;

pub(super) type Read<T> = Result<T, Unreadable>;

/// A database file read page by page.
pub(super) struct Pages {
    file: File,
    pub(super) page_size: usize,
    pub(super) usable: usize,
    /// Whole pages in the file.
    pub(super) page_count: u32,
}

impl Pages {
    pub(super) fn open(path: &Path) -> Read<Pages> {
        let file = File::open(path).map_err(|_| Unreadable)?;
        let mut head = [0u8; 100];
        file.read_exact_at(&mut head, 0).map_err(|_| Unreadable)?;
        let header = Header::parse(&head).map_err(|_| Unreadable)?;
        // SQL hands text over as UTF-8; pages hold it in the database's encoding.
        if header.text_encoding() != Some(crate::format::TextEncoding::Utf8) {
            return Err(Unreadable);
        }
        let page_size = usize::try_from(header.page_size).map_err(|_| Unreadable)?;
        let usable = header
            .usable_size()
            .and_then(|u| usize::try_from(u).ok())
            .ok_or(Unreadable)?;
        let len = file.metadata().map_err(|_| Unreadable)?.len();
        let page_count =
            u32::try_from(len / u64::from(header.page_size.max(1))).unwrap_or(u32::MAX);
        Ok(Pages {
            file,
            page_size,
            usable,
            page_count,
        })
    }

    /// Pages `first..first + n` into `buf` (resized).
    pub(super) fn read(&self, first: u32, n: usize, buf: &mut Vec<u8>) -> Read<()> {
        let last = u64::from(first) + n as u64 - 1;
        if first == 0 || n == 0 || last > u64::from(self.page_count) {
            return Err(Unreadable);
        }
        buf.resize(n * self.page_size, 0);
        let at = u64::from(first - 1) * self.page_size as u64;
        self.file.read_exact_at(buf, at).map_err(|_| Unreadable)
    }

    pub(super) fn page<'b>(&self, pgno: u32, data: &'b [u8]) -> Read<BtreePage<'b>> {
        let header_offset = if pgno == 1 { 100 } else { 0 };
        BtreePage::parse(data, header_offset, self.usable).map_err(|_| Unreadable)
    }

    /// `out.len()` bytes of page `pgno` from `offset`.
    pub(super) fn read_at(&self, pgno: u32, offset: usize, out: &mut [u8]) -> Read<()> {
        if pgno == 0 || pgno > self.page_count || offset + out.len() > self.page_size {
            return Err(Unreadable);
        }
        let at = u64::from(pgno - 1) * self.page_size as u64 + offset as u64;
        self.file.read_exact_at(out, at).map_err(|_| Unreadable)
    }

    /// The first four bytes of page `pgno`, as a big-endian number (an overflow page's next).
    pub(super) fn head(&self, pgno: u32) -> Read<u32> {
        if pgno == 0 || pgno > self.page_count {
            return Err(Unreadable);
        }
        let mut four = [0u8; 4];
        let at = u64::from(pgno - 1) * self.page_size as u64;
        self.file
            .read_exact_at(&mut four, at)
            .map_err(|_| Unreadable)?;
        Ok(u32::from_be_bytes(four))
    }

    /// The whole payload of a cell: its local bytes, then its overflow chain.
    pub(super) fn whole<'p>(&self, payload: &Payload<'p>, out: &'p mut Vec<u8>) -> Read<&'p [u8]> {
        let Some(mut next) = payload.overflow else {
            return Ok(payload.local);
        };
        let total = usize::try_from(payload.total).map_err(|_| Unreadable)?;
        if payload.total > u64::from(self.page_count) * self.page_size as u64 {
            return Err(Unreadable);
        }
        out.clear();
        out.extend_from_slice(payload.local);
        let mut page = Vec::new();
        for _ in 0..overflow::pages_needed(payload.total, payload.local.len(), self.usable) {
            self.read(next, 1, &mut page)?;
            let (after, content) = overflow::split(&page, self.usable).ok_or(Unreadable)?;
            let take = content.len().min(total - out.len());
            out.extend_from_slice(&content[..take]);
            next = after;
        }
        if out.len() == total {
            Ok(out)
        } else {
            Err(Unreadable)
        }
    }
}
