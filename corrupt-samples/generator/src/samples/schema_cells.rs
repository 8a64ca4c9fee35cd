//! `schema-cells-damaged`: sqlite_schema cells overwritten on page 1.

use super::*;

/// Overwrite the sqlite_schema cells (on page 1) of two tables with random bytes.
pub(super) fn schema_cells(base: &Base, mut db: Vec<u8>, rng: &mut ChaCha8Rng) -> Result<Damaged> {
    let hit = overwrite_schema_cells(base, &mut db, rng, &["monitor_check", "audit_note"])?;
    let mut d = Damaged::new(
        format!(
            "Overwrote the sqlite_schema cells (on page 1, which holds the whole schema) of \
             tables {} with random bytes: their names, root pages and CREATE statements are \
             lost, their data pages are intact.",
            hit.join(" and ")
        ),
        db,
    );
    d.damaged.insert(1);
    d.target = Some("sqlite_schema".into());
    Ok(d)
}

/// Overwrite the sqlite_schema cells (on page 1) of the tables `victims` with random bytes;
/// returns their names in the order of the cells.
pub(super) fn overwrite_schema_cells(
    base: &Base,
    db: &mut [u8],
    rng: &mut ChaCha8Rng,
    victims: &[&str],
) -> Result<Vec<String>> {
    let l = &base.layout;
    let schema = l.btree("sqlite_schema");
    if schema.pages.len() != 1 {
        return Err("sqlite_schema does not fit on page 1".into());
    }
    let ps = l.page_size as usize;
    let usable = ps - db[20] as usize;
    let page = db[..ps].to_vec();
    let mut hit = Vec::new();
    for off in layout::cell_pointers(&page, 1) {
        let (plen, a) = layout::read_varint(&page, off);
        let (_rowid, b) = layout::read_varint(&page, off + a);
        let start = off + a + b;
        if plen as usize > usable - 35 {
            continue;
        }
        let rec = &page[start..start + plen as usize];
        let fields = decode_record(rec);
        let text = |i: usize| fields.get(i).cloned().flatten().unwrap_or_default();
        if text(0) == b"table" && victims.iter().any(|v| v.as_bytes() == text(1).as_slice()) {
            rng.fill_bytes(&mut db[off..start + plen as usize]);
            hit.push(String::from_utf8_lossy(&text(1)).into_owned());
        }
    }
    if hit.len() != victims.len() {
        return Err(format!("found schema cells for {hit:?} only").into());
    }
    Ok(hit)
}

/// Decode a record's text/blob fields (other fields as `None`).
fn decode_record(rec: &[u8]) -> Vec<Option<Vec<u8>>> {
    let (hlen, mut at) = layout::read_varint(rec, 0);
    let mut types = Vec::new();
    while at < hlen as usize {
        let (t, n) = layout::read_varint(rec, at);
        types.push(t);
        at += n;
    }
    let mut body = hlen as usize;
    types
        .into_iter()
        .map(|t| {
            let size = match t {
                0 | 8 | 9 => 0,
                1..=4 => t as usize,
                5 => 6,
                6 | 7 => 8,
                t if t >= 12 => ((t - 12) / 2) as usize,
                _ => 0,
            };
            let v = (t >= 12).then(|| rec[body..body + size].to_vec());
            body += size;
            v
        })
        .collect()
}
