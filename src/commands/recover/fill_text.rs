//! The text of what `--fill-from` did, for `recover` and `lost`.

use super::*;

/// Still-lost rows listed per table under a fill (`--json` lists up to 1 000).
const MAX_STILL_LOST: usize = 10;

/// What `--fill-from` did, in the three kinds of row: back in place, filled from a backup as
/// of its date (may be stale), still lost with what the indexes hold of them.
pub(crate) fn fill_text(fill: &engine::FillReport, dry_run: bool) -> String {
    let mut out = String::new();
    let verb = if dry_run { "would be filled" } else { "filled" };
    out.push_str(&if dry_run {
        "Rows a recovery with --fill-from would fill from backups (as they were then: they may \
         be stale):\n"
            .to_string()
    } else {
        format!(
            "Rows filled from backups (as they were then: they may be stale; each one recorded \
             in {}):\n",
            fill.filled_table
        )
    });
    for b in &fill.backups {
        let from = match b.date_from {
            engine::DateSource::NewestTimestamp => {
                format!("newest timestamp in it; mtime {}", b.mtime)
            }
            engine::DateSource::Mtime => "its mtime".to_string(),
        };
        out.push_str(&format!(
            "  {} as of {} ({from}), sha256 {}: {} rows\n",
            b.path.display(),
            b.date,
            b.sha256,
            b.filled_rows
        ));
    }
    let as_of = match fill.backups.as_slice() {
        [one] => format!("from the backup as of {}", one.date),
        _ => "from the newest backup holding them".to_string(),
    };
    for t in &fill.tables {
        let mut parts = vec![format!("{} back in place", t.back_in_place)];
        let by_values = t.matched_by.get(engine::MatchedBy::IndexedValues.as_str());
        parts.push(match by_values {
            Some(n) => format!(
                "{} {verb} {as_of} ({n} matched by the values an index holds)",
                t.filled
            ),
            None => format!("{} {verb} {as_of}", t.filled),
        });
        if t.matched_by
            .contains_key(engine::MatchedBy::EstimatedRange.as_str())
        {
            parts.push("some by an estimated range: check them".to_string());
        }
        if !t.still_lost.is_empty() {
            parts.push(format!(
                "{} still lost (not in any backup: newer?)",
                t.still_lost.len()
            ));
        }
        if t.collided > 0 {
            parts.push(format!(
                "{} backup rows collide with surviving rows (kept in {}, nothing overwritten)",
                t.collided, fill.collisions_table
            ));
        }
        if t.deleted_since > 0 {
            parts.push(format!(
                "{} deleted since the backup (not brought back)",
                t.deleted_since
            ));
        }
        out.push_str(&format!("  {}: {}\n", t.table, parts.join("; ")));
        if let Some(note) = &t.note {
            out.push_str(&format!("  {}: {note}\n", t.table));
        }
        for row in t.still_lost.iter().take(MAX_STILL_LOST) {
            let values: Vec<String> = t
                .still_lost_columns
                .iter()
                .zip(&row.values)
                .map(|(c, v)| format!("{c} {}", crate::engine::losses::sql_literal(v)))
                .collect();
            out.push_str(&format!(
                "    still lost: rowid {}: {}\n",
                row.rowid,
                values.join(", ")
            ));
        }
        if t.still_lost.len() > MAX_STILL_LOST {
            out.push_str(&format!(
                "    … and {} more still lost (--json lists them)\n",
                t.still_lost.len() - MAX_STILL_LOST
            ));
        }
    }
    for d in &fill.schema_differences {
        out.push_str(&format!("  schema: {}\n", d.describe()));
    }
    out
}
