//! Lost keys of WITHOUT ROWID tables, named by the divider keys around the lost page.

use super::LostRange;
use crate::engine::walk::Hole;
use crate::format::cell::{self, Cell};
use crate::format::page::BtreePage;
use crate::format::record::{self, Value};
use crate::format::TextEncoding;
use crate::source::pagefile::PageFile;

/// A hole in a WITHOUT ROWID table: the keys between the parent's divider keys.
pub(super) fn without_rowid_range(pf: &PageFile, h: &Hole, encoding: TextEncoding) -> LostRange {
    let (after, before) = h
        .parent
        .map_or((None, None), |p| dividers(pf, p, h.page, encoding));
    let exact = after.is_some() && before.is_some();
    let keys = match (after, before) {
        (Some(a), Some(b)) => format!("after {a} and before {b}"),
        (Some(a), None) => format!("after {a} (upper bound unknown)"),
        (None, Some(b)) => format!("before {b} (lower bound unknown)"),
        (None, None) => "unknown".to_string(),
    };
    LostRange {
        first_rowid: None,
        last_rowid: None,
        page: h.page,
        exact,
        rows: None,
        keys: Some(keys),
    }
}

/// The keys of the index-interior cells on either side of `child` in page `parent`.
fn dividers(
    pf: &PageFile,
    parent: u32,
    child: u32,
    encoding: TextEncoding,
) -> (Option<String>, Option<String>) {
    dividers_with(pf, parent, child, |local| key_text(local, encoding))
}

/// The index-interior cells on either side of `child` in page `parent`, each read by `read`
/// from its local payload: `(None, None)` when the parent cannot be read or does not point
/// at `child`; a side is `None` when no cell of this page bounds it.
pub(crate) fn dividers_with<T>(
    pf: &PageFile,
    parent: u32,
    child: u32,
    read: impl Fn(&[u8]) -> Option<T>,
) -> (Option<T>, Option<T>) {
    let mut buf = Vec::new();
    if pf.read(parent, &mut buf).is_none() {
        return (None, None);
    }
    let offset = if parent == 1 { 100 } else { 0 };
    let Ok(page) = BtreePage::parse(&buf, offset, pf.usable()) else {
        return (None, None);
    };
    let mut previous: Option<T> = None;
    for (_, c) in cell::cells(&page) {
        let Ok(Cell::IndexInterior {
            left_child,
            payload,
        }) = c
        else {
            continue;
        };
        let key = read(payload.local);
        if left_child == child {
            return (previous, key);
        }
        previous = key;
    }
    if page.right_child == Some(child) {
        return (previous, None);
    }
    (None, None)
}

/// A record as `('a', 3)`; fields cut short by an overflow page show as `…`.
pub(super) fn key_text(local: &[u8], encoding: TextEncoding) -> Option<String> {
    let mut fields = Vec::new();
    let decoded = record::decode_fields(local, &mut fields).ok()?;
    let mut parts: Vec<String> = fields
        .iter()
        .map(|f| match f.value(local) {
            Value::Null => "NULL".to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Real(r) => r.to_string(),
            Value::Text(t) => {
                let s = String::from_utf8_lossy(&encoding.to_utf8(t)).into_owned();
                let short: String = s.chars().take(40).collect();
                crate::util::quote::text(&short)
            }
            Value::Blob(b) => format!("x'{}'", hex::encode(&b[..b.len().min(16)])),
        })
        .collect();
    if !decoded.complete {
        parts.push("\u{2026}".to_string());
    }
    Some(format!("({})", parts.join(", ")))
}
