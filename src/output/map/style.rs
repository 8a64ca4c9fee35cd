//! How the damage map looks: what each status is called and how it is marked, and the fills
//! that tell tables apart.

use crate::engine::pages::MapStatus;
use svg::node::element::{Circle, Definitions, Group, Line, Path as SvgPath, Pattern, Rectangle};

pub(super) const CELL: u32 = 12;

/// Twelve light colours (ColorBrewer's Set3, its grey swapped for a tan so that no table looks
/// like a page nobody owns), light enough for the marks drawn over them.
const COLOURS: [&str; 12] = [
    "#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5",
    "#c7a17a", "#bc80bd", "#ccebc5", "#ffed6f",
];

/// Textures laid over the colours: twelve colours by four textures keep 48 tables apart,
/// where hues alone run into each other past a dozen.
const TEXTURES: usize = 4;

/// How many tables the fills tell apart; past that, the legend and each cell's hover text
/// still name the table.
pub(super) const DISTINCT_FILLS: usize = COLOURS.len() * TEXTURES;

/// The fill of the `rank`-th owner drawn (in the legend's order).
pub(super) fn owner_fill(rank: usize) -> String {
    let k = rank % DISTINCT_FILLS;
    if k < COLOURS.len() {
        COLOURS[k].to_string()
    } else {
        format!("url(#owner-{k})")
    }
}

/// The patterns the textured fills refer to, for the first `owners` ranks.
pub(super) fn patterns(owners: usize) -> Definitions {
    let mut defs = Definitions::new();
    for k in COLOURS.len()..owners.min(DISTINCT_FILLS) {
        let colour = COLOURS[k % COLOURS.len()];
        let ink = "#00000066";
        let base = Rectangle::new()
            .set("width", 4)
            .set("height", 4)
            .set("fill", colour);
        let texture: Box<dyn svg::Node> = match k / COLOURS.len() {
            // diagonal stripes
            1 => Box::new(
                SvgPath::new()
                    .set("d", "M0,4 L4,0 M-1,1 L1,-1 M3,5 L5,3")
                    .set("stroke", ink)
                    .set("stroke-width", 1),
            ),
            // dots
            2 => Box::new(
                Circle::new()
                    .set("cx", 2)
                    .set("cy", 2)
                    .set("r", 0.9)
                    .set("fill", ink),
            ),
            // horizontal bars
            _ => Box::new(
                Line::new()
                    .set("x1", 0)
                    .set("y1", 2)
                    .set("x2", 4)
                    .set("y2", 2)
                    .set("stroke", ink)
                    .set("stroke-width", 1),
            ),
        };
        defs = defs.add(
            Pattern::new()
                .set("id", format!("owner-{k}"))
                .set("width", 4)
                .set("height", 4)
                .set("patternUnits", "userSpaceOnUse")
                .add(base)
                .add(texture),
        );
    }
    defs
}

/// How bad a status is, for choosing what a bin of pages shows (higher is worse).
pub(super) fn severity(status: MapStatus) -> u8 {
    match status {
        MapStatus::Lost => 13,
        MapStatus::MissingPastEnd => 12,
        MapStatus::Unreadable => 11,
        MapStatus::OrphanLostAndFound => 10,
        MapStatus::OrphanAttributed => 9,
        MapStatus::HealedFromWal => 8,
        MapStatus::OrphanDuplicate => 7,
        MapStatus::Unused => 6,
        MapStatus::Unseen => 5,
        MapStatus::NewerInWal => 4,
        MapStatus::Overflow => 3,
        MapStatus::Tree => 2,
        MapStatus::Ptrmap => 1,
        MapStatus::Free => 0,
    }
}

/// The kebab-case name the report uses for a status.
pub(crate) fn status_name(status: MapStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{status:?}").to_lowercase())
}

/// What the legend and the hover text say of a status.
pub(super) fn status_label(status: MapStatus) -> &'static str {
    match status {
        MapStatus::Tree => "readable",
        MapStatus::Overflow => "overflow page",
        MapStatus::Free => "free page",
        MapStatus::Ptrmap => "pointer-map page",
        MapStatus::NewerInWal => "newer in the WAL (a commit not yet checkpointed)",
        MapStatus::HealedFromWal => "healed from the WAL (the main file's copy is damaged)",
        MapStatus::Lost => "lost (a tree pointed here, unusable)",
        MapStatus::OrphanAttributed => "orphan, put back in its table",
        MapStatus::OrphanLostAndFound => "orphan, rows to lost_and_found",
        MapStatus::OrphanDuplicate => "orphan, stray copy of rows already recovered",
        MapStatus::Unused => "unused (reads, holds nothing to recover)",
        MapStatus::Unreadable => "unreadable (zeroed or garbage, nothing reached it)",
        MapStatus::Unseen => "not examined",
        MapStatus::MissingPastEnd => "missing: past the end of the file (cut short)",
    }
}

pub(super) const LEGEND_ORDER: [MapStatus; 14] = [
    MapStatus::Tree,
    MapStatus::Overflow,
    MapStatus::NewerInWal,
    MapStatus::HealedFromWal,
    MapStatus::Free,
    MapStatus::Ptrmap,
    MapStatus::Lost,
    MapStatus::Unreadable,
    MapStatus::MissingPastEnd,
    MapStatus::OrphanAttributed,
    MapStatus::OrphanLostAndFound,
    MapStatus::OrphanDuplicate,
    MapStatus::Unused,
    MapStatus::Unseen,
];

/// The fill of a cell: its owner's, except where the status says there is nothing of a table
/// to show.
pub(super) fn fill_for(status: MapStatus, owner_rank: Option<usize>) -> String {
    match (status, owner_rank) {
        (MapStatus::Free | MapStatus::MissingPastEnd, _) => "#ffffff".to_string(),
        (MapStatus::Ptrmap, _) => "#b0b0b0".to_string(),
        (MapStatus::Unreadable, _) => "#3a3a3a".to_string(),
        (_, Some(rank)) => owner_fill(rank),
        (_, None) => "#ececec".to_string(),
    }
}

/// Stroke colour, width and dash pattern of a status.
pub(super) fn stroke_for(status: MapStatus) -> (&'static str, f64, Option<&'static str>) {
    match status {
        MapStatus::Lost => ("#d7191c", 2.0, None),
        MapStatus::Unreadable => ("#7f0000", 2.0, None),
        MapStatus::MissingPastEnd => ("#b2182b", 1.0, Some("2,2")),
        MapStatus::HealedFromWal => ("#1a9641", 2.0, None),
        MapStatus::NewerInWal => ("#01665e", 1.0, None),
        MapStatus::OrphanAttributed => ("#2c7bb6", 2.0, None),
        MapStatus::OrphanLostAndFound => ("#fd8d3c", 2.0, None),
        MapStatus::OrphanDuplicate => ("#7b3294", 2.0, None),
        MapStatus::Free => ("#999999", 1.0, Some("2,1")),
        _ => ("#808080", 0.5, None),
    }
}

/// The small glyph drawn over a cell at (x, y), if its status has one.
pub(super) fn glyph(status: MapStatus, x: u32, y: u32) -> Option<Group> {
    let (x, y, cell) = (f64::from(x), f64::from(y), f64::from(CELL));
    let (cx, cy) = (x + cell / 2.0, y + cell / 2.0);
    let dot = |colour: &str| {
        Group::new().add(
            Circle::new()
                .set("cx", cx)
                .set("cy", cy)
                .set("r", 2.2)
                .set("fill", colour.to_string()),
        )
    };
    let line = |x1: f64, y1: f64, x2: f64, y2: f64| {
        Line::new()
            .set("x1", x1)
            .set("y1", y1)
            .set("x2", x2)
            .set("y2", y2)
    };
    let cross = |colour: &str| {
        let (x0, y0, x1, y1) = (x + 2.5, y + 2.5, x + cell - 2.5, y + cell - 2.5);
        Group::new()
            .set("stroke", colour.to_string())
            .set("stroke-width", 1.5)
            .add(line(x0, y0, x1, y1))
            .add(line(x0, y1, x1, y0))
    };
    match status {
        MapStatus::Lost => Some(cross("#d7191c")),
        MapStatus::Unreadable => Some(cross("#ff6f6f")),
        MapStatus::HealedFromWal => Some(dot("#1a9641")),
        // A corner cut off: the page has a newer image elsewhere.
        MapStatus::NewerInWal => Some(
            Group::new().add(
                SvgPath::new()
                    .set(
                        "d",
                        format!(
                            "M{},{} L{},{} L{},{} Z",
                            x + cell - 6.0,
                            y,
                            x + cell,
                            y,
                            x + cell,
                            y + 6.0
                        ),
                    )
                    .set("fill", "#01665e"),
            ),
        ),
        MapStatus::OrphanAttributed => Some(dot("#2c7bb6")),
        MapStatus::OrphanLostAndFound => Some(dot("#fd8d3c")),
        MapStatus::OrphanDuplicate => Some(dot("#7b3294")),
        MapStatus::Overflow => Some(
            Group::new().add(
                line(x + 2.0, cy, x + cell - 2.0, cy)
                    .set("stroke", "#555555")
                    .set("stroke-width", 1.0),
            ),
        ),
        _ => None,
    }
}

/// A legend swatch for a status: its outline and, where the fill says it, the fill.
pub(super) fn swatch(status: MapStatus, x: u32, y: u32) -> Rectangle {
    let (stroke, width, dash) = stroke_for(status);
    let swatch = Rectangle::new()
        .set("x", x)
        .set("y", y)
        .set("width", CELL)
        .set("height", CELL)
        .set("fill", fill_for(status, None))
        .set("stroke", stroke)
        .set("stroke-width", width);
    match dash {
        Some(d) => swatch.set("stroke-dasharray", d),
        None => swatch,
    }
}
