//! The damage map: the database file as a grid of pages, one cell per page (or per bin of
//! pages in a large file, showing the bin's worst status), filled with the colour of the
//! table that owns the page and marked with what became of it.
//!
//! Every cell is one `<rect>` with `data-page` (or `data-first-page`/`data-last-page` for a
//! bin) and `data-status` (the engine's page status, kebab-case); a page whose image was
//! read from the WAL because the main file's copy is damaged also has `data-wal="healed"`.
//! Marks drawn over a cell carry neither attribute, so cells can be counted.

use crate::engine::pages::PageStatus;
use crate::engine::{PageMapSnapshot, Report};
use crate::error::{Error, Result};
use crate::source::pagefile::{looks_like_btree_page, Origin, PageFile};
use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::Path;
use svg::node::element::{Circle, Group, Line, Rectangle, Text, Title};
use svg::Document;

/// At most this many cells; larger files are binned.
pub const MAX_CELLS: usize = 10_000;

const CELL: u32 = 12;
const GAP: u32 = 2;
const MARGIN: u32 = 16;
const HEADER: u32 = 40;

/// How bad a status is, for choosing what a bin shows (higher is worse).
fn severity(status: PageStatus, healed: bool) -> u8 {
    match status {
        PageStatus::Lost => 11,
        PageStatus::Unreadable => 10,
        PageStatus::OrphanLostAndFound => 9,
        PageStatus::OrphanAttributed => 8,
        _ if healed => 7,
        PageStatus::OrphanDuplicate => 6,
        PageStatus::Unused => 5,
        PageStatus::Unseen => 4,
        PageStatus::Overflow => 3,
        PageStatus::Tree => 2,
        PageStatus::Ptrmap => 1,
        PageStatus::Free => 0,
    }
}

/// The kebab-case name the report uses for a status.
pub(crate) fn status_name(status: PageStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{status:?}").to_lowercase())
}

/// What the legend says about each mark.
fn status_label(status: PageStatus) -> &'static str {
    match status {
        PageStatus::Tree => "readable",
        PageStatus::Overflow => "overflow page",
        PageStatus::Free => "free page",
        PageStatus::Ptrmap => "pointer-map page",
        PageStatus::Lost => "lost (a tree pointed here, unreadable)",
        PageStatus::OrphanAttributed => "orphan, put back in its table",
        PageStatus::OrphanLostAndFound => "orphan, rows to lost_and_found",
        PageStatus::OrphanDuplicate => "orphan, stray copy of rows already recovered",
        PageStatus::Unused => "unused (reads, holds nothing to recover)",
        PageStatus::Unreadable => "unreadable (zeroed or garbage, nothing reached it)",
        PageStatus::Unseen => "not examined",
    }
}

const LEGEND_ORDER: [PageStatus; 11] = [
    PageStatus::Tree,
    PageStatus::Overflow,
    PageStatus::Free,
    PageStatus::Ptrmap,
    PageStatus::Lost,
    PageStatus::Unreadable,
    PageStatus::OrphanAttributed,
    PageStatus::OrphanLostAndFound,
    PageStatus::OrphanDuplicate,
    PageStatus::Unused,
    PageStatus::Unseen,
];

/// Fill colour of an owner: hues spread by the golden angle so neighbours differ.
fn owner_colour(owner: usize) -> String {
    let hue = (owner as f64 * 137.508) % 360.0;
    format!("hsl({hue:.0},55%,68%)")
}

fn fill_for(status: PageStatus, owner: Option<u32>) -> String {
    match (status, owner) {
        (PageStatus::Free, _) => "#ffffff".to_string(),
        (PageStatus::Ptrmap, _) => "#b0b0b0".to_string(),
        (PageStatus::Unreadable, _) => "#3a3a3a".to_string(),
        (_, Some(o)) => owner_colour(o as usize),
        (_, None) => "#e4e4e4".to_string(),
    }
}

/// Stroke colour and width for a status.
fn stroke_for(status: PageStatus, healed: bool) -> (&'static str, f64) {
    if healed {
        return ("#1a9641", 2.0);
    }
    match status {
        PageStatus::Lost => ("#d7191c", 2.0),
        PageStatus::Unreadable => ("#7f0000", 2.0),
        PageStatus::OrphanAttributed => ("#2c7bb6", 2.0),
        PageStatus::OrphanLostAndFound => ("#fd8d3c", 2.0),
        PageStatus::OrphanDuplicate => ("#7b3294", 2.0),
        PageStatus::Free => ("#999999", 1.0),
        _ => ("#808080", 0.5),
    }
}

/// The small glyph drawn over a cell, if its status has one.
fn glyph(status: PageStatus, healed: bool, x: u32, y: u32) -> Option<Group> {
    let cx = f64::from(x) + f64::from(CELL) / 2.0;
    let cy = f64::from(y) + f64::from(CELL) / 2.0;
    let dot = |colour: &str| {
        Group::new().add(
            Circle::new()
                .set("cx", cx)
                .set("cy", cy)
                .set("r", 2.2)
                .set("fill", colour.to_string()),
        )
    };
    let cross = |colour: &str| {
        let (x0, y0) = (f64::from(x) + 2.5, f64::from(y) + 2.5);
        let (x1, y1) = (f64::from(x + CELL) - 2.5, f64::from(y + CELL) - 2.5);
        Group::new()
            .set("stroke", colour.to_string())
            .set("stroke-width", 1.5)
            .add(
                Line::new()
                    .set("x1", x0)
                    .set("y1", y0)
                    .set("x2", x1)
                    .set("y2", y1),
            )
            .add(
                Line::new()
                    .set("x1", x0)
                    .set("y1", y1)
                    .set("x2", x1)
                    .set("y2", y0),
            )
    };
    if healed {
        return Some(dot("#1a9641"));
    }
    match status {
        PageStatus::Lost => Some(cross("#d7191c")),
        PageStatus::Unreadable => Some(cross("#ff6f6f")),
        PageStatus::OrphanAttributed => Some(dot("#2c7bb6")),
        PageStatus::OrphanLostAndFound => Some(dot("#fd8d3c")),
        PageStatus::OrphanDuplicate => Some(dot("#7b3294")),
        PageStatus::Overflow => Some(
            Group::new().add(
                Line::new()
                    .set("x1", f64::from(x) + 2.0)
                    .set("y1", cy)
                    .set("x2", f64::from(x + CELL) - 2.0)
                    .set("y2", cy)
                    .set("stroke", "#555555")
                    .set("stroke-width", 1.0),
            ),
        ),
        _ => None,
    }
}

/// Pages whose image was read from the WAL because the main file's copy of the page is
/// missing, zeroed or not a b-tree page where the WAL's is one.
pub(crate) fn healed_pages(pf: &PageFile, snapshot: &PageMapSnapshot) -> BTreeSet<u32> {
    let mut healed = BTreeSet::new();
    if pf.wal().is_none() {
        return healed;
    }
    let Ok(file) = std::fs::File::open(pf.path()) else {
        return healed;
    };
    let size = pf.page_size();
    let mut main = vec![0u8; size];
    let mut wal = Vec::new();
    for (i, (status, _)) in snapshot.pages.iter().enumerate() {
        let Ok(pgno) = u32::try_from(i + 1) else {
            break;
        };
        if pf.origin(pgno) != Some(Origin::Wal) {
            continue;
        }
        let readable = matches!(
            status,
            PageStatus::Tree | PageStatus::Overflow | PageStatus::OrphanAttributed
        );
        if !readable {
            continue;
        }
        let offset = u64::from(pgno - 1) * size as u64;
        let got = file.read_at(&mut main, offset).unwrap_or(0);
        let header = if pgno == 1 { 100 } else { 0 };
        let main_damaged = got < size
            || main.iter().all(|b| *b == 0)
            || (pf.read(pgno, &mut wal).is_some()
                && looks_like_btree_page(&wal[..pf.usable().min(wal.len())], header)
                && !looks_like_btree_page(&main[..pf.usable().min(size)], header));
        if main_damaged {
            healed.insert(pgno);
        }
    }
    healed
}

/// A page number, count or position on the grid as a u32. The list holds one entry per page
/// and page numbers are u32, so it fits; were it not to, the drawing saturates.
fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One cell of the grid: a page, or a bin of pages.
struct Cell {
    first: u32,
    last: u32,
    status: PageStatus,
    owner: Option<u32>,
    healed: bool,
}

fn cells(snapshot: &PageMapSnapshot, healed: &BTreeSet<u32>) -> (Vec<Cell>, usize) {
    let n = snapshot.pages.len();
    let bin = n.div_ceil(MAX_CELLS).max(1);
    let mut out = Vec::with_capacity(n.div_ceil(bin));
    for (b, chunk) in snapshot.pages.chunks(bin).enumerate() {
        let start = b * bin;
        let first = count_u32(start + 1);
        let mut worst: Option<(u8, usize)> = None;
        for (k, (status, _)) in chunk.iter().enumerate() {
            let sev = severity(*status, healed.contains(&count_u32(start + k + 1)));
            if worst.is_none_or(|(s, _)| sev > s) {
                worst = Some((sev, k));
            }
        }
        let k = worst.map_or(0, |(_, k)| k);
        let (status, owner) = chunk[k];
        out.push(Cell {
            first,
            last: count_u32(start + chunk.len()),
            status,
            owner,
            healed: healed.contains(&count_u32(start + k + 1)),
        });
    }
    (out, bin)
}

/// Where the grid sits and how it is laid out.
struct Layout {
    columns: u32,
    bin: usize,
    grid_h: u32,
}

/// Draws the map. `title` names the file.
pub fn render(snapshot: &PageMapSnapshot, healed: &BTreeSet<u32>, title: &str) -> Document {
    let (cells, bin) = cells(snapshot, healed);
    let columns: u32 = if cells.len() <= 1024 { 40 } else { 100 };
    let rows = count_u32(cells.len()).div_ceil(columns).max(1);
    let layout = Layout {
        columns,
        bin,
        grid_h: rows * (CELL + GAP),
    };
    let owners_used: BTreeSet<u32> = cells.iter().filter_map(|c| c.owner).collect();
    let legend_rows = count_u32(owners_used.len() + LEGEND_ORDER.len() + 3);
    let width = (columns * (CELL + GAP) + 2 * MARGIN).max(520);
    let height = HEADER + layout.grid_h + MARGIN * 2 + legend_rows * 18;
    let (grid, marks) = grid(snapshot, &cells, &layout);
    heading(snapshot, title, bin, width, height)
        .add(grid)
        .add(marks)
        .add(legend(snapshot, &cells, &owners_used, &layout))
}

/// The document with its background, title and subtitle.
fn heading(
    snapshot: &PageMapSnapshot,
    title: &str,
    bin: usize,
    width: u32,
    height: u32,
) -> Document {
    let subtitle = if bin == 1 {
        format!("{} pages, one cell per page", snapshot.pages.len())
    } else {
        format!(
            "{} pages, {} pages per cell (each cell shows its worst page)",
            snapshot.pages.len(),
            bin
        )
    };
    Document::new()
        .set("xmlns", "http://www.w3.org/2000/svg")
        .set("viewBox", (0, 0, width, height))
        .set("width", width)
        .set("height", height)
        .set("font-family", "sans-serif")
        .set("font-size", 12)
        .add(
            Rectangle::new()
                .set("x", 0)
                .set("y", 0)
                .set("width", width)
                .set("height", height)
                .set("fill", "#fcfcfc"),
        )
        .add(
            Text::new(format!("Damage map: {title}"))
                .set("x", MARGIN)
                .set("y", 18)
                .set("font-size", 14)
                .set("font-weight", "bold"),
        )
        .add(Text::new(subtitle).set("x", MARGIN).set("y", 34))
}

/// One cell per page (or per bin of pages), and the marks drawn over them.
fn grid(snapshot: &PageMapSnapshot, cells: &[Cell], layout: &Layout) -> (Group, Group) {
    let pitch = CELL + GAP;
    let mut grid = Group::new().set("id", "pages");
    let mut marks = Group::new().set("id", "marks");
    for (i, c) in cells.iter().enumerate() {
        let i = count_u32(i);
        let x = MARGIN + (i % layout.columns) * pitch;
        let y = HEADER + MARGIN / 2 + (i / layout.columns) * pitch;
        grid = grid.add(page_cell(snapshot, c, layout.bin, x, y));
        if let Some(g) = glyph(c.status, c.healed, x, y) {
            marks = marks.add(g);
        }
    }
    (grid, marks)
}

/// One cell: its fill, its outline, and what hovering over it says.
fn page_cell(snapshot: &PageMapSnapshot, c: &Cell, bin: usize, x: u32, y: u32) -> Rectangle {
    let (stroke, stroke_w) = stroke_for(c.status, c.healed);
    let owner_name = c
        .owner
        .and_then(|o| snapshot.owners.get(o as usize))
        .map_or("no owner", String::as_str);
    let what = if c.healed {
        format!("{} (healed from the WAL)", status_label(c.status))
    } else {
        status_label(c.status).to_string()
    };
    let hover = if bin == 1 {
        format!("page {}: {what}; {owner_name}", c.first)
    } else {
        format!("pages {}-{}: worst {what}; {owner_name}", c.first, c.last)
    };
    let mut rect = Rectangle::new()
        .set("x", x)
        .set("y", y)
        .set("width", CELL)
        .set("height", CELL)
        .set("fill", fill_for(c.status, c.owner))
        .set("stroke", stroke)
        .set("stroke-width", stroke_w)
        .set("data-status", status_name(c.status));
    if c.status == PageStatus::Free {
        rect = rect.set("stroke-dasharray", "2,1");
    }
    if c.healed {
        rect = rect.set("data-wal", "healed");
    }
    rect = if bin == 1 {
        rect.set("data-page", c.first)
    } else {
        rect.set("data-first-page", c.first)
            .set("data-last-page", c.last)
    };
    rect.add(Title::new(hover))
}

/// The legend: owners (fill), then marks (stroke and glyph).
fn legend(
    snapshot: &PageMapSnapshot,
    cells: &[Cell],
    owners_used: &BTreeSet<u32>,
    layout: &Layout,
) -> Group {
    let mut legend = Group::new().set("id", "legend");
    let mut y = HEADER + layout.grid_h + MARGIN + 8;
    legend = legend.add(bold("Fill: the tree that owns the page", y));
    y += 18;
    for o in owners_used {
        let name = snapshot.owners.get(*o as usize).map_or("?", String::as_str);
        legend = legend
            .add(
                Rectangle::new()
                    .set("x", MARGIN)
                    .set("y", y)
                    .set("width", CELL)
                    .set("height", CELL)
                    .set("fill", owner_colour(*o as usize))
                    .set("stroke", "#808080")
                    .set("stroke-width", 0.5),
            )
            .add(label(name.to_string(), y));
        y += 18;
    }
    legend = legend.add(bold("Marks: what became of the page", y));
    y += 18;
    let used: BTreeSet<PageStatus> = cells.iter().map(|c| c.status).collect();
    let mut entries: Vec<(PageStatus, bool)> = LEGEND_ORDER
        .iter()
        .filter(|s| used.contains(s))
        .map(|s| (*s, false))
        .collect();
    if cells.iter().any(|c| c.healed) {
        entries.push((PageStatus::Tree, true));
    }
    for (status, healed) in entries {
        legend = legend.add(swatch(status, healed, y));
        if let Some(g) = glyph(status, healed, MARGIN, y) {
            legend = legend.add(g);
        }
        let text = if healed {
            "healed from the WAL (the main file's copy is damaged)".to_string()
        } else {
            format!("{} ({})", status_label(status), status_name(status))
        };
        legend = legend.add(label(text, y));
        y += 18;
    }
    legend
}

/// A legend heading.
fn bold(text: &str, y: u32) -> Text {
    Text::new(text)
        .set("x", MARGIN)
        .set("y", y + 10)
        .set("font-weight", "bold")
}

/// A legend entry's words, beside its swatch.
fn label(text: String, y: u32) -> Text {
    Text::new(text).set("x", MARGIN + CELL + 6).set("y", y + 10)
}

/// A legend swatch for a status: its outline and, where the fill says it, the fill.
fn swatch(status: PageStatus, healed: bool, y: u32) -> Rectangle {
    let (stroke, stroke_w) = stroke_for(status, healed);
    let fill = match status {
        PageStatus::Free | PageStatus::Ptrmap | PageStatus::Unreadable => fill_for(status, None),
        _ => "#e4e4e4".to_string(),
    };
    let swatch = Rectangle::new()
        .set("x", MARGIN)
        .set("y", y)
        .set("width", CELL)
        .set("height", CELL)
        .set("fill", fill)
        .set("stroke", stroke)
        .set("stroke-width", stroke_w);
    if status == PageStatus::Free {
        swatch.set("stroke-dasharray", "2,1")
    } else {
        swatch
    }
}

/// Draws the map of a finished recovery (`snapshot_db` is the file the engine read) to `out`.
pub fn write(report: &Report, snapshot_db: &Path, out: &Path) -> Result<()> {
    let snapshot = report
        .page_map
        .as_ref()
        .ok_or_else(|| Error::Usage("the engine kept no page map: nothing to draw".to_string()))?;
    let healed = match PageFile::open(snapshot_db) {
        Ok(pf) => healed_pages(&pf, snapshot),
        Err(_) => BTreeSet::new(),
    };
    let title = report.source.file_name().map_or_else(
        || snapshot_db.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let doc = render(snapshot, &healed, &title);
    write_file(out, doc.to_string().as_bytes())
}

/// Writes through a temporary file beside `out`, so a reader never sees half a map.
fn write_file(out: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| Error::io(out, e))?;
    // A picture to share, not a secret: the usual permissions of a new file.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644));
    tmp.persist(out).map_err(|e| Error::io(out, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(n: usize) -> PageMapSnapshot {
        PageMapSnapshot {
            owners: vec!["t".into(), "u".into()],
            pages: (0..n)
                .map(|i| match i % 7 {
                    3 => (PageStatus::Lost, Some(0)),
                    5 => (PageStatus::Free, None),
                    _ => (PageStatus::Tree, Some(count_u32(i % 2))),
                })
                .collect(),
        }
    }

    #[test]
    fn one_cell_per_page_when_small() {
        let svg = render(&snapshot(300), &BTreeSet::new(), "x").to_string();
        assert_eq!(svg.matches("data-page=").count(), 300);
        assert_eq!(svg.matches("data-first-page=").count(), 0);
    }

    #[test]
    fn bins_keep_the_worst_status() {
        let snap = snapshot(25_000);
        let svg = render(&snap, &BTreeSet::new(), "x").to_string();
        let bins = svg.matches("data-first-page=").count();
        assert!(bins <= MAX_CELLS && bins > 0, "{bins}");
        assert_eq!(svg.matches("data-page=").count(), 0);
        // every bin of 3 pages in a 7-cycle with a lost page every 7 is not always lost,
        // but a bin that holds a lost page must show it
        assert!(svg.contains(r#"data-status="lost""#));
    }

    #[test]
    fn empty_map_still_draws() {
        let svg = render(&snapshot(0), &BTreeSet::new(), "empty").to_string();
        assert!(svg.contains("Damage map"));
    }
}
