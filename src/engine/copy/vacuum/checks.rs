//! Whether a whole copy can be kept: the walks beside it read every tree as the skim did,
//! and the copy holds the rows the walks found.

#[allow(clippy::wildcard_imports)] // the copy's own types, shared with its parent module
use super::*;

/// What the walks beside the copy found.
pub(super) enum Verdict {
    Copied(Vec<Outcome>),
    SkimmedDamage,
}

/// Checks what the copy takes of each table: a table to be copied whole must read whole with
/// every index; a rebuilt one must read as its skim did, its subtrees whole, and every index
/// must hold one entry per row. When every table is to be whole, a skim of every tree comes
/// first ([`Walker::skim`]): it finds the common damage, a zeroed or overwritten page, in a
/// fraction of the walk's time, so a damaged database loses little to a copy it cannot keep.
pub(super) fn verify_all(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    tables: &[Planned<'_>],
    treatments: &[Treatment<'_>],
    rebuilt: &HashSet<String>,
) -> crate::Result<Option<Verdict>> {
    // Every index the copy takes as it is must have an entry for every row.
    let proven = |indexes: &[(&SchemaEntry, u32)], whole: &HashSet<String>| {
        indexes
            .iter()
            .all(|(e, _)| rebuilt.contains(&e.name) || whole.contains(&e.name))
    };
    let all_whole = treatments.iter().all(|t| matches!(t, Treatment::Whole));
    if all_whole && !skims_whole(walker, map, tables, rebuilt)? {
        return Ok(Some(Verdict::SkimmedDamage));
    }
    let mut outcomes = Vec::with_capacity(tables.len());
    for ((table, owner, indexes), treatment) in tables.iter().zip(treatments) {
        let outcome = match treatment {
            Treatment::Whole => {
                match transfer::verify_table(walker, map, *owner, table, indexes)? {
                    Some(v) if proven(indexes, &v.whole_indexes) => Outcome::Whole(v.rows),
                    _ => return Ok(None),
                }
            }
            Treatment::Rebuild(plan, skimmed) => {
                let Some(stats) = walk_as_skimmed(walker, map, *owner, table, skimmed)? else {
                    return Ok(None);
                };
                let rows = stats.rows;
                match repair::check_rebuilt(walker, map, *owner, table, indexes, rows, plan)? {
                    Some(r) if !r.whole_indexes.is_empty() && proven(indexes, &r.whole_indexes) => {
                        Outcome::Rebuilt(repair::repaired(table, &stats, plan, r), rows)
                    }
                    _ => return Ok(None),
                }
            }
            Treatment::Prune(_, skimmed) => {
                let Some(stats) = walk_as_skimmed(walker, map, *owner, table, skimmed)? else {
                    return Ok(None);
                };
                Outcome::Pruned(stats.rows, stats.holes)
            }
            Treatment::Leave => Outcome::Left,
        };
        outcomes.push(outcome);
    }
    Ok(Some(Verdict::Copied(outcomes)))
}

/// Walks a damaged table from its root: its statistics when every row read whole and the walk
/// met the same holes as its skim and nothing else, the damage the copy was planned around.
pub(super) fn walk_as_skimmed(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    owner: u32,
    table: &Table,
    skimmed: &WalkStats,
) -> crate::Result<Option<WalkStats>> {
    let (walked, readable) = walker.walk_whole(map, owner, table.root, table, PageStatus::Tree)?;
    Ok((readable && same_damage(&walked, skimmed)).then_some(walked))
}

pub(super) fn same_damage(walked: &WalkStats, skimmed: &WalkStats) -> bool {
    walked.bad_cells == 0
        && walked.suspect_rows == 0
        && walked.incomplete_rows == 0
        && walked.holes.len() == skimmed.holes.len()
        && walked
            .holes
            .iter()
            .zip(&skimmed.holes)
            .all(|(a, b)| a.page == b.page && a.parent == b.parent)
}

/// Whether every tree of `tables` skims whole; the pages it claims are given back.
pub(super) fn skims_whole(
    walker: &mut Walker<'_>,
    map: &mut Claims,
    tables: &[Planned<'_>],
    partial: &HashSet<String>,
) -> crate::Result<bool> {
    let position = walker.progress().position();
    let cp = map.checkpoint();
    walker.skim(true);
    walker.stop_when_damaged(true);
    let skimmed = skim_each(walker, map, tables, partial, true);
    walker.skim(false);
    walker.stop_when_damaged(false);
    map.rollback(cp);
    walker.progress().set_position(position);
    let skimmed = skimmed?;
    Ok(skimmed.len() == tables.len()
        && skimmed
            .iter()
            .all(|(stats, damaged)| damaged.is_empty() && !stats.is_damaged()))
}

/// Whether every table in the copy has the rows its walk found (none, for a table left to
/// the engine).
pub(super) fn counts_agree(out: &Path, tables: &[Planned<'_>], outcomes: &[Outcome]) -> bool {
    let Ok(conn) = Connection::open(out) else {
        return false;
    };
    tables.iter().zip(outcomes).all(|((table, _, _), outcome)| {
        let (expected, indexes_empty) = match outcome {
            Outcome::Whole(rows) => (*rows, false),
            Outcome::Rebuilt(r, rows) => (rows + r.attributed_rows, false),
            Outcome::Pruned(rows, _) => (*rows, true),
            Outcome::Left => (0, true),
        };
        // SQLite counts by the smallest index where it can; a pruned table's indexes are
        // empty until built again, so its rows are counted from the table itself.
        let from = if indexes_empty { " NOT INDEXED" } else { "" };
        conn.query_row(
            &format!("SELECT count(*) FROM main.{}{from}", ident(&table.name)),
            [],
            |r| r.get::<_, i64>(0),
        )
        .is_ok_and(|c| u64::try_from(c) == Ok(expected))
    })
}
