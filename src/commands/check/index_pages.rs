//! Index pages `check` reads itself: every index tree named by the schema is walked with the
//! engine's own walker (structure only, no record decoded), so a zeroed or unreadable index
//! page is named whatever `integrity_check` says of it: SQLite stops at the first page it
//! cannot read, and names a damaged table before the index beside it.

use super::{Finding, FindingKind};
use crate::engine::catalog::read_schema;
use crate::engine::pages::{Claims, PageStatus};
use crate::engine::schema::SchemaKind;
use crate::engine::walk::{TreeKind, Walker};
use crate::source::pagefile::PageFile;
use crate::util::interrupt::interrupted;
use std::collections::BTreeSet;

/// Damaged pages listed by number in the finding, at most.
const MAX_LISTED: usize = 20;

/// One finding naming every index page that could not be read, with what it holds (zeros,
/// or why it is not an index page); `None` when every index reads whole.
pub(super) fn finding(pf: &PageFile) -> Option<Finding> {
    let mut claims = Claims::new(pf.page_count());
    let (entries, _, _) = read_schema(pf, &mut claims, indicatif::ProgressBar::hidden()).ok()?;
    let mut walker = Walker::new(pf, indicatif::ProgressBar::hidden(), &interrupted);
    walker.skim(true);
    let mut damaged: Vec<String> = Vec::new();
    let mut indexes = BTreeSet::new();
    let mut tables = BTreeSet::new();
    let mut buf = Vec::new();
    for e in entries.iter().filter(|e| e.kind == SchemaKind::Index) {
        let Some(root) = u32::try_from(e.rootpage).ok().filter(|r| *r > 0) else {
            continue;
        };
        let Ok(stats) = walker.walk(
            &mut claims,
            None,
            root,
            TreeKind::Index,
            PageStatus::Tree,
            &|_, _| true,
            &mut |_| Ok(()),
        ) else {
            continue;
        };
        for hole in &stats.holes {
            indexes.insert(e.name.clone());
            tables.insert(e.tbl_name.clone());
            let zeroed = pf.read(hole.page, &mut buf).is_some() && buf.iter().all(|b| *b == 0);
            let what = if zeroed {
                "zeroed".to_string()
            } else {
                hole.reason.clone()
            };
            damaged.push(format!("{} page {} ({what})", e.name, hole.page));
        }
    }
    if damaged.is_empty() {
        return None;
    }
    let more = damaged.len().saturating_sub(MAX_LISTED);
    damaged.truncate(MAX_LISTED);
    let summary = format!(
        "index pages that cannot be read: {}{}; their entries are lost (recover rebuilds \
         every index from the rows; the index's other pages still name values of lost rows)",
        damaged.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    Some(Finding {
        kind: FindingKind::IndexPages,
        summary,
        tables: tables.into_iter().collect(),
        indexes: indexes.into_iter().collect(),
        damage: true,
    })
}
