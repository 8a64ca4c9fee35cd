//! The damage map: the database file as a grid of pages, one cell per page (or per bin of
//! pages in a large file, showing the bin's worst status), filled with the colour and texture
//! of the table that owns the page and marked with what became of it.
//!
//! It draws the report's page map (`Report::page_map`, built once by the engine from its
//! claims ledger) and nothing else: every cell is one `<rect>` with `data-page` (or
//! `data-first-page`/`data-last-page` for a bin) and `data-status`, the status the report
//! gives that page (kebab-case, as in report.json). Marks drawn over a cell carry neither
//! attribute, so cells can be counted.

use crate::engine::pages::MapStatus;
use crate::engine::{PageMapSnapshot, Report};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;
use style::{fill_for, glyph, status_label, stroke_for, swatch, CELL, LEGEND_ORDER};
use svg::node::element::{Group, Rectangle, Text, Title};
use svg::Document;

mod style;

pub(crate) use style::status_name;

/// At most this many cells; larger files are binned.
pub const MAX_CELLS: usize = 10_000;

const GAP: u32 = 2;
const MARGIN: u32 = 16;
const HEADER: u32 = 40;
const LINE: u32 = 18;
/// Owner names longer than this are cut in the legend (the hover text has them whole).
const NAME_CHARS: usize = 38;

/// A page number, count or position on the grid as a u32 (they come from u32 page numbers,
/// or from at most `MAX_CELLS` cells); saturates rather than wraps.
fn count_u32(n: impl TryInto<u32>) -> u32 {
    n.try_into().unwrap_or(u32::MAX)
}

/// One cell of the grid: a page, or a bin of pages, showing its worst page.
struct Cell {
    first: u32,
    last: u32,
    status: MapStatus,
    owner: Option<u32>,
}

/// The cells, and how many pages each holds. Worked out from the runs (a bin's worst status
/// is the worst of the runs it overlaps), so a long run costs nothing per page.
fn cells(map: &PageMapSnapshot) -> (Vec<Cell>, u64) {
    let pages = map.page_count();
    let bin = pages.div_ceil(MAX_CELLS as u64).max(1);
    let mut out = Vec::with_capacity(usize::try_from(pages.div_ceil(bin)).unwrap_or(MAX_CELLS));
    let mut runs = map.runs.iter().peekable();
    let mut first = 1u64;
    while first <= pages {
        let last = (first + bin - 1).min(pages);
        let mut worst: Option<(u8, MapStatus, Option<u32>)> = None;
        while let Some(run) = runs.peek() {
            if u64::from(run.first) > last {
                break;
            }
            let sev = style::severity(run.status);
            if worst.is_none_or(|(s, _, _)| sev > s) {
                worst = Some((sev, run.status, run.owner));
            }
            if u64::from(run.last) > last {
                break;
            }
            runs.next();
        }
        let (_, status, owner) = worst.unwrap_or((0, MapStatus::Unseen, None));
        out.push(Cell {
            first: count_u32(first),
            last: count_u32(last),
            status,
            owner,
        });
        first = last + 1;
    }
    (out, bin)
}

/// Whether a cell's fill shows its owner (free pages, say, are white whoever owns them).
fn shows_owner(status: MapStatus) -> bool {
    !matches!(
        status,
        MapStatus::Free | MapStatus::MissingPastEnd | MapStatus::Ptrmap | MapStatus::Unreadable
    )
}

/// Where the grid sits and how it is laid out, and each owner's place in the legend (which
/// picks its fill).
struct Layout {
    columns: u32,
    bin: u64,
    grid_h: u32,
    ranks: BTreeMap<u32, usize>,
}

/// Draws the map. `title` names the file.
pub fn render(map: &PageMapSnapshot, title: &str) -> Document {
    let (cells, bin) = cells(map);
    let columns: u32 = if cells.len() <= 1024 { 40 } else { 100 };
    let rows = count_u32(cells.len()).div_ceil(columns).max(1);
    // Owners are ranked in the order of their owner numbers (the order the engine met them).
    let mut owners: Vec<u32> = cells
        .iter()
        .filter(|c| shows_owner(c.status))
        .filter_map(|c| c.owner)
        .collect();
    owners.sort_unstable();
    owners.dedup();
    let layout = Layout {
        columns,
        bin,
        grid_h: rows * (CELL + GAP),
        ranks: owners
            .into_iter()
            .enumerate()
            .map(|(r, o)| (o, r))
            .collect(),
    };
    let used: Vec<MapStatus> = LEGEND_ORDER
        .iter()
        .copied()
        .filter(|s| cells.iter().any(|c| c.status == *s))
        .collect();
    let owner_rows = count_u32(layout.ranks.len().div_ceil(owner_columns(&layout)));
    let legend_rows = owner_rows + count_u32(used.len()) + 3;
    let width = (columns * (CELL + GAP) + 2 * MARGIN).max(600);
    let height = HEADER + layout.grid_h + MARGIN * 2 + legend_rows * LINE;
    let (grid, marks) = grid(map, &cells, &layout);
    heading(map, title, bin, width, height)
        .add(style::patterns(layout.ranks.len()))
        .add(grid)
        .add(marks)
        .add(legend(map, &used, &layout, width))
}

/// Owners are listed in two columns when there are many.
fn owner_columns(layout: &Layout) -> usize {
    if layout.ranks.len() > 12 {
        2
    } else {
        1
    }
}

/// The document with its background, title and subtitle.
fn heading(map: &PageMapSnapshot, title: &str, bin: u64, width: u32, height: u32) -> Document {
    let pages = map.page_count();
    let subtitle = if bin == 1 {
        format!("{pages} pages, one cell per page")
    } else {
        format!("{pages} pages, {bin} pages per cell (each cell shows its worst page)")
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
fn grid(map: &PageMapSnapshot, cells: &[Cell], layout: &Layout) -> (Group, Group) {
    let pitch = CELL + GAP;
    let mut grid = Group::new().set("id", "pages");
    let mut marks = Group::new().set("id", "marks");
    for (i, c) in cells.iter().enumerate() {
        let i = count_u32(i);
        let x = MARGIN + (i % layout.columns) * pitch;
        let y = HEADER + MARGIN / 2 + (i / layout.columns) * pitch;
        grid = grid.add(page_cell(map, c, layout, x, y));
        if let Some(g) = glyph(c.status, x, y) {
            marks = marks.add(g);
        }
    }
    (grid, marks)
}

/// One cell: its fill, its outline, and what hovering over it says.
fn page_cell(map: &PageMapSnapshot, c: &Cell, layout: &Layout, x: u32, y: u32) -> Rectangle {
    let (stroke, stroke_w, dash) = stroke_for(c.status);
    let owner_name = map.owner_name(c.owner).unwrap_or("no owner");
    let what = status_label(c.status);
    let hover = if layout.bin == 1 {
        format!("page {}: {what}; {owner_name}", c.first)
    } else {
        format!("pages {}-{}: worst {what}; {owner_name}", c.first, c.last)
    };
    let rank = c.owner.and_then(|o| layout.ranks.get(&o).copied());
    let mut rect = Rectangle::new()
        .set("x", x)
        .set("y", y)
        .set("width", CELL)
        .set("height", CELL)
        .set("fill", fill_for(c.status, rank))
        .set("stroke", stroke)
        .set("stroke-width", stroke_w)
        .set("data-status", status_name(c.status));
    if let Some(d) = dash {
        rect = rect.set("stroke-dasharray", d);
    }
    rect = if layout.bin == 1 {
        rect.set("data-page", c.first)
    } else {
        rect.set("data-first-page", c.first)
            .set("data-last-page", c.last)
    };
    rect.add(Title::new(hover))
}

/// The legend: owners by name (fill), then what became of the pages (outline and glyph).
fn legend(map: &PageMapSnapshot, used: &[MapStatus], layout: &Layout, width: u32) -> Group {
    let mut legend = Group::new().set("id", "legend");
    let mut y = HEADER + layout.grid_h + MARGIN + 8;
    legend = legend.add(bold("Fill: the table or index that owns the page", y));
    y += LINE;
    let per_column = layout.ranks.len().div_ceil(owner_columns(layout)).max(1);
    let column_w = (width - 2 * MARGIN) / count_u32(owner_columns(layout));
    for (o, rank) in &layout.ranks {
        let name = map.owner_name(Some(*o)).unwrap_or("?");
        let short: String = if name.chars().count() > NAME_CHARS {
            name.chars().take(NAME_CHARS - 1).chain(['…']).collect()
        } else {
            name.to_string()
        };
        let x = MARGIN + count_u32(rank / per_column) * column_w;
        let row_y = y + count_u32(rank % per_column) * LINE;
        legend = legend
            .add(
                Rectangle::new()
                    .set("x", x)
                    .set("y", row_y)
                    .set("width", CELL)
                    .set("height", CELL)
                    .set("fill", style::owner_fill(*rank))
                    .set("stroke", "#808080")
                    .set("stroke-width", 0.5),
            )
            .add(label(short, x, row_y).add(Title::new(name)));
    }
    y += count_u32(per_column.min(layout.ranks.len())) * LINE;
    legend = legend.add(bold("Marks: what became of the page", y));
    y += LINE;
    for status in used {
        legend = legend.add(swatch(*status, MARGIN, y));
        if let Some(g) = glyph(*status, MARGIN, y) {
            legend = legend.add(g);
        }
        let text = format!("{} ({})", status_label(*status), status_name(*status));
        legend = legend.add(label(text, MARGIN, y));
        y += LINE;
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

/// A legend entry's words, beside its swatch at `x`.
fn label(text: String, x: u32, y: u32) -> Text {
    Text::new(text).set("x", x + CELL + 6).set("y", y + 10)
}

/// Draws the map of a finished recovery (`snapshot_db` names it when the report has no source) to `out`.
pub fn write(report: &Report, snapshot_db: &Path, out: &Path) -> Result<()> {
    let snapshot = report
        .page_map
        .as_ref()
        .ok_or_else(|| Error::Usage("the engine kept no page map: nothing to draw".to_string()))?;
    let title = report.source.file_name().map_or_else(
        || snapshot_db.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let doc = render(snapshot, &title);
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

    fn map(n: u32, owners: u32) -> PageMapSnapshot {
        let mut m = PageMapSnapshot {
            owners: (0..owners).map(|o| format!("table_{o}")).collect(),
            runs: Vec::new(),
        };
        for p in 1..=n {
            let (s, o) = match p % 7 {
                3 => (MapStatus::Lost, Some(0)),
                5 => (MapStatus::Free, None),
                _ => (MapStatus::Tree, Some(p % owners)),
            };
            m.push(p, s, o);
        }
        m
    }

    #[test]
    fn one_cell_per_page_when_small() {
        let svg = render(&map(300, 2), "x").to_string();
        assert_eq!(svg.matches("data-page=").count(), 300);
        assert_eq!(svg.matches("data-first-page=").count(), 0);
    }

    #[test]
    fn bins_keep_the_worst_status() {
        let svg = render(&map(25_000, 2), "x").to_string();
        let bins = svg.matches("data-first-page=").count();
        assert!(bins <= MAX_CELLS && bins > 0, "{bins}");
        assert_eq!(svg.matches("data-page=").count(), 0);
        assert!(svg.contains(r#"data-status="lost""#));
        assert!(
            !svg.contains(r#"data-status="free""#),
            "free is never a bin's worst"
        );
    }

    #[test]
    fn forty_tables_get_forty_fills() {
        let svg = render(&map(400, 40), "x").to_string();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let fills: std::collections::BTreeSet<&str> = doc
            .descendants()
            .filter(|n| n.attribute("data-status") == Some("tree"))
            .filter_map(|n| n.attribute("fill"))
            .collect();
        assert_eq!(fills.len(), 40, "{fills:?}");
        for f in fills.iter().filter_map(|f| f.strip_prefix("url(#")) {
            let id = f.trim_end_matches(')');
            assert!(
                doc.descendants().any(|n| n.attribute("id") == Some(id)),
                "{id}"
            );
        }
    }

    #[test]
    fn a_long_missing_tail_costs_one_run() {
        let mut m = map(100, 1);
        m.push_run(101, 4_000_000_000, MapStatus::MissingPastEnd, None);
        let tail = m
            .runs
            .iter()
            .filter(|r| r.status == MapStatus::MissingPastEnd);
        assert_eq!(tail.count(), 1);
        let svg = render(&m, "x").to_string();
        assert!(svg.matches("data-first-page=").count() <= MAX_CELLS);
        assert!(svg.contains(r#"data-status="missing-past-end""#));
    }

    #[test]
    fn empty_map_still_draws() {
        let svg = render(&map(0, 1), "empty").to_string();
        assert!(svg.contains("Damage map"));
    }
}
