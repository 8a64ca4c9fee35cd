//! How each source count was obtained, and what the engine's walk knows that a count does
//! not: the rows its lost ranges hold. A table's comparison is built here so that no count
//! can hide a loss (a property test below holds it to that).

use super::TableDiff;
use crate::engine::losses::LostRange;
use std::collections::{BTreeMap, BTreeSet};

/// How a source table's row count was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CountedBy {
    /// SQLite counted the table on the snapshot: the count is what SQLite sees.
    Sqlite,
    /// SQLite could not read the table; the engine's page walk reached every row of it.
    Walk,
    /// The page walk could not reach every row: the count is the rows it found plus the
    /// fewest its lost ranges can hold (`source_rows`), and at most `source_rows_max`.
    Bounds,
}

/// What the engine's page walk knows of one table's rows in the source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WalkEvidence {
    /// Rows the walk found: in the table's tree, or put back from orphan pages.
    pub found: u64,
    /// The fewest rows the table's lost ranges hold (0 when it has none).
    pub lost_min: u64,
    /// The most they hold; None when a range has no upper bound.
    pub lost_max: Option<u64>,
    /// Rows may be missing, whether or not a lost range names them.
    pub may_be_missing: bool,
    /// A transaction the `-wal` lost wrote to the table.
    pub lost_in_wal: bool,
}

/// What the engine's walk knows of every table of `report`.
pub(crate) fn walk_evidence(report: &crate::engine::Report) -> BTreeMap<String, WalkEvidence> {
    report
        .tables
        .iter()
        .map(|t| {
            let (lost_min, lost_max) = lost_bounds(&t.lost);
            // A cell that did not parse is a row the walk saw and could not read.
            let evidence = WalkEvidence {
                found: t.walked_rows.saturating_add(t.attributed_rows),
                lost_min: lost_min.saturating_add(t.bad_cells),
                lost_max: lost_max.and_then(|m| m.checked_add(t.bad_cells)),
                may_be_missing: t.rows_may_be_missing || t.bad_cells > 0,
                lost_in_wal: t.rows_lost_in_wal,
            };
            (t.name.clone(), evidence)
        })
        .collect()
}

/// (fewest, most) rows a table's lost ranges hold. A range whose rows a surviving index
/// counted holds that many. Any other is a lost page's rowids, which held at least one row
/// (the engine lists no range that is known to be empty); ranges split around recovered
/// rows count once per page. The most is the sum of the spans (None when a range has no
/// bound, or for WITHOUT ROWID keys).
pub(crate) fn lost_bounds(lost: &[LostRange]) -> (u64, Option<u64>) {
    let counted: u64 = lost
        .iter()
        .filter_map(|r| r.rows)
        .fold(0, u64::saturating_add);
    let uncounted_pages = lost
        .iter()
        .filter(|r| r.rows.is_none())
        .map(|r| r.page)
        .collect::<BTreeSet<u32>>()
        .len() as u64;
    let min = counted
        .saturating_add(uncounted_pages)
        .max(u64::from(!lost.is_empty()));
    let max = lost.iter().try_fold(0u64, |sum, r| {
        let most = match (r.rows, &r.keys, r.first_rowid, r.last_rowid) {
            (Some(n), _, _, _) => n,
            (None, None, Some(a), Some(b)) if b >= a => {
                u64::try_from(i128::from(b) - i128::from(a) + 1).ok()?
            }
            _ => return None,
        };
        sum.checked_add(most)
    });
    (min, max.map(|m| m.max(min)))
}

/// Where a table's source count came from, and the bounds it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SourceCount {
    rows: Option<u64>,
    max: Option<u64>,
    by: Option<CountedBy>,
    error: Option<String>,
}

/// The source side of one table: SQLite's count where it could count (raised to what came
/// back plus what the lost ranges hold, when that is more), else the walk's, raised by its
/// lost ranges. `sqlite` is None when the source has no such table.
pub(super) fn source_count(
    sqlite: Option<std::result::Result<u64, String>>,
    walk: Option<&WalkEvidence>,
    recovered: Option<u64>,
) -> SourceCount {
    let (lost_min, lost_max) = walk.map_or((0, Some(0)), |w| (w.lost_min, w.lost_max));
    match sqlite {
        None => SourceCount {
            rows: None,
            max: None,
            by: None,
            error: None,
        },
        Some(Ok(n)) => {
            let back = recovered.unwrap_or(0);
            if lost_min > 0 && back.saturating_add(lost_min) > n {
                // SQLite's count does not hold the rows the lost ranges name (it saw a
                // damaged page as a valid one, say): the evidence of the loss wins.
                SourceCount {
                    rows: Some(back.saturating_add(lost_min)),
                    max: lost_max.and_then(|m| back.checked_add(m)),
                    by: Some(CountedBy::Bounds),
                    error: None,
                }
            } else {
                // What the lost ranges may hold bounds the loss too, whatever SQLite counted
                // (a page of another table read in this one's place counts as its rows).
                let most = lost_max
                    .and_then(|m| back.checked_add(m))
                    .map_or(n, |m| m.max(n));
                // A transaction the -wal lost is in no count, and a lost range with no
                // bound was counted as whatever SQLite read in its place: nothing bounds the
                // loss above.
                let unbounded =
                    walk.is_some_and(|w| w.lost_in_wal) || (lost_min > 0 && lost_max.is_none());
                SourceCount {
                    rows: Some(n),
                    max: (!unbounded).then_some(most),
                    by: Some(CountedBy::Sqlite),
                    error: None,
                }
            }
        }
        Some(Err(e)) => match walk {
            Some(w) if w.lost_min > 0 || w.may_be_missing => SourceCount {
                rows: Some(w.found.saturating_add(w.lost_min)),
                max: if w.lost_min == 0 {
                    None
                } else {
                    w.lost_max.and_then(|m| w.found.checked_add(m))
                },
                by: Some(CountedBy::Bounds),
                error: Some(e),
            },
            Some(w) => SourceCount {
                rows: Some(w.found),
                max: Some(w.found),
                by: Some(CountedBy::Walk),
                error: Some(e),
            },
            None => SourceCount {
                rows: None,
                max: None,
                by: None,
                error: Some(e),
            },
        },
    }
}

/// One table's comparison from its source count, what came back and the walk's evidence.
pub(super) fn table_diff(
    table: String,
    source: SourceCount,
    recovered_rows: Option<u64>,
    walk: Option<&WalkEvidence>,
    lost_and_found_rows: u64,
) -> TableDiff {
    let lost_min = walk.map_or(0, |w| w.lost_min);
    let back = recovered_rows.unwrap_or(0);
    let missing_rows = source
        .rows
        .map_or(0, |s| s.saturating_sub(back))
        .max(lost_min);
    let missing_rows_max = source.max.map(|m| m.saturating_sub(back).max(missing_rows));
    let clamp = |d: i128| i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX });
    let difference = if missing_rows > 0 {
        Some(clamp(-i128::from(missing_rows)))
    } else {
        match (source.rows, recovered_rows) {
            (Some(s), Some(r)) => Some(clamp(i128::from(r) - i128::from(s))),
            (Some(s), None) => Some(clamp(-i128::from(s))),
            // The source has no such table: every recovered row is new.
            (None, Some(r)) if source.error.is_none() => Some(clamp(i128::from(r))),
            _ => None,
        }
    };
    TableDiff {
        table,
        source_rows: source.rows,
        source_counted_by: source.by,
        source_rows_max: source.max,
        source_error: source.error,
        recovered_rows,
        lost_and_found_rows,
        difference,
        missing_rows,
        missing_rows_max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::diff::{missing_cell, source_cell, DiffReport};
    use crate::error::exit;
    use crate::output::report::Outcome;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn range(first: Option<i64>, last: Option<i64>, page: u32, rows: Option<u64>) -> LostRange {
        LostRange {
            first_rowid: first,
            last_rowid: last,
            page,
            exact: rows.is_some(),
            rows,
            keys: None,
        }
    }

    fn report_of(t: TableDiff) -> DiffReport {
        DiffReport {
            source: PathBuf::from("s"),
            recovered: PathBuf::from("r"),
            missing_rows: t.missing_rows,
            tables: vec![t],
            lost_and_found_rows: 0,
            conflict_rows: 0,
        }
    }

    #[test]
    fn lost_bounds_count_index_rows_and_one_row_per_uncounted_page() {
        assert_eq!(lost_bounds(&[]), (0, Some(0)));
        // The leaf-zeroed sample: rowids 296-314 on page 58, no index.
        assert_eq!(
            lost_bounds(&[range(Some(296), Some(314), 58, None)]),
            (1, Some(19))
        );
        // Split around recovered rows: one page, two pieces.
        assert_eq!(
            lost_bounds(&[
                range(Some(1), Some(4), 7, None),
                range(Some(9), Some(10), 7, None),
                range(Some(20), Some(22), 8, Some(2)),
            ]),
            (3, Some(8))
        );
        assert_eq!(lost_bounds(&[range(Some(5), None, 3, None)]), (1, None));
        assert_eq!(
            lost_bounds(&[range(Some(i64::MIN), Some(i64::MAX), 3, None)]),
            (1, None)
        );
    }

    /// The walk found 581 rows, all of which came back, and a leaf of 1 to 19 rows is lost:
    /// the count is a bound, the difference is not 0, and the diff says they differ.
    #[test]
    fn a_walk_count_with_a_lost_range_is_a_bound_and_not_equal() {
        let walk = WalkEvidence {
            found: 581,
            lost_min: 1,
            lost_max: Some(19),
            may_be_missing: true,
            lost_in_wal: false,
        };
        let source = source_count(Some(Err("malformed".into())), Some(&walk), Some(581));
        assert_eq!(source.by, Some(CountedBy::Bounds));
        assert_eq!((source.rows, source.max), (Some(582), Some(600)));
        let t = table_diff("t".into(), source, Some(581), Some(&walk), 0);
        assert_eq!(t.difference, Some(-1));
        assert_eq!((t.missing_rows, t.missing_rows_max), (1, Some(19)));
        assert_eq!(missing_cell(&t), "1\u{2013}19");
        assert_eq!(source_cell(&t), "582\u{2013}600 (bounds)");
        assert_eq!(report_of(t).exit_code(), exit::DAMAGE);
    }

    /// SQLite counted a stray page of another table as this one's rows (948 for 947 back),
    /// while the walk's lost range holds up to 53: the most that is missing is 53, not 1.
    #[test]
    fn a_lost_range_bounds_the_loss_above_what_sqlite_counted() {
        let mut walk = WalkEvidence {
            found: 947,
            lost_min: 1,
            lost_max: Some(53),
            may_be_missing: false,
            lost_in_wal: false,
        };
        let source = source_count(Some(Ok(948)), Some(&walk), Some(947));
        assert_eq!(source.by, Some(CountedBy::Sqlite));
        let t = table_diff("t".into(), source, Some(947), Some(&walk), 0);
        assert_eq!((t.missing_rows, t.missing_rows_max), (1, Some(53)));
        // A transaction the -wal lost wrote to it: nothing bounds the loss above.
        walk.lost_in_wal = true;
        let source = source_count(Some(Ok(948)), Some(&walk), Some(947));
        let t = table_diff("t".into(), source, Some(947), Some(&walk), 0);
        assert_eq!((t.missing_rows, t.missing_rows_max), (1, None));
        // A lost range with no lower rowid: what SQLite counted in its place bounds nothing.
        walk.lost_in_wal = false;
        walk.lost_max = None;
        let source = source_count(Some(Ok(948)), Some(&walk), Some(947));
        let t = table_diff("t".into(), source, Some(947), Some(&walk), 0);
        assert_eq!((t.missing_rows, t.missing_rows_max), (1, None));
    }

    #[test]
    fn counted_by_serializes_as_its_name() {
        for (c, s) in [
            (CountedBy::Sqlite, "sqlite"),
            (CountedBy::Walk, "walk"),
            (CountedBy::Bounds, "bounds"),
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), s);
        }
    }

    fn arb_range() -> impl Strategy<Value = LostRange> {
        (
            proptest::option::of(any::<i64>()),
            proptest::option::of(any::<i64>()),
            0u32..6,
            proptest::option::of(1u64..1_000),
        )
            .prop_map(|(a, b, page, rows)| range(a, b, page, rows))
    }

    proptest! {
        /// Lost ranges non-empty ⇒ the difference is not 0 and diff exits non-zero, however
        /// the source was counted and whatever came back.
        #[test]
        fn lost_ranges_never_hide_behind_a_zero_difference(
            lost in proptest::collection::vec(arb_range(), 1..6),
            sqlite in proptest::option::of(proptest::option::of(0u64..10_000)),
            found in 0u64..10_000,
            recovered in proptest::option::of(0u64..20_000),
            may_be_missing in any::<bool>(),
        ) {
            let (lost_min, lost_max) = lost_bounds(&lost);
            prop_assert!(lost_min >= 1);
            prop_assert!(lost_max.is_none_or(|m| m >= lost_min));
            let walk = WalkEvidence { found, lost_min, lost_max, may_be_missing, lost_in_wal: false };
            // None: absent from the source; Some(None): SQLite could not count it.
            let sqlite = sqlite.map(|c| c.ok_or_else(|| "malformed".to_string()));
            let source = source_count(sqlite, Some(&walk), recovered);
            let t = table_diff("t".into(), source, recovered, Some(&walk), 0);
            prop_assert!(t.missing_rows >= lost_min);
            prop_assert_ne!(t.difference, Some(0));
            prop_assert!(t.difference.is_none_or(|d| d < 0));
            let report = report_of(t);
            prop_assert_ne!(report.exit_code(), exit::OK);
        }

        /// Without lost ranges, SQLite's count or the walk's is taken as it is.
        #[test]
        fn without_lost_ranges_the_count_is_the_count(
            n in 0u64..10_000,
            recovered in 0u64..10_000,
        ) {
            let source = source_count(Some(Ok(n)), None, Some(recovered));
            prop_assert_eq!(source.by, Some(CountedBy::Sqlite));
            let t = table_diff("t".into(), source, Some(recovered), None, 0);
            let signed = |v: u64| i64::try_from(v).unwrap();
            prop_assert_eq!(t.difference, Some(signed(recovered) - signed(n)));
            prop_assert_eq!(t.missing_rows, n.saturating_sub(recovered));
            prop_assert_eq!(t.is_equal(), n == recovered);
        }
    }
}
