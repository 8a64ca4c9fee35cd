//! The recovery report as the on-call engineer reads it: the table of counts, what each table
//! lost and why, the likely cause, and what to run next.

use super::*;

impl IncidentReport {
    /// The per-table table: what the source held, what came back, and what is missing.
    fn table_text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .diff
            .tables
            .iter()
            .map(|d| {
                let t = self.tables.iter().find(|t| t.table == d.table);
                vec![
                    d.table.clone(),
                    diff::source_cell(d),
                    d.recovered_rows.map_or("-".into(), |n| n.to_string()),
                    t.map_or(0, |t| t.attributed_rows).to_string(),
                    d.lost_and_found_rows.to_string(),
                    diff::missing_cell(d),
                ]
            })
            .collect();
        crate::output::report::text_table(
            &[
                "table",
                "in source",
                "recovered",
                "put back",
                "lost_and_found",
                "missing",
            ],
            &rows,
        )
    }

    /// The lines after the summary: what to run next, and where the incident is. The very
    /// last line is the incident folder's path alone, for scripts (`tail -n 1`).
    fn next_text(&self) -> String {
        let mut out = String::new();
        let tool = tool_command();
        if self.dry_run {
            out.push_str("Dry run: nothing was written; the temporary folder is gone.\n");
            out.push_str(&format!(
                "The recovery itself should take {} in the folder you run it from \
                 (or --incident-dir DIR).\n",
                self.estimate.summary()
            ));
            let fill: String = self
                .fill
                .iter()
                .flat_map(|f| &f.backups)
                .map(|b| format!(" --fill-from {}", shell(&b.path)))
                .collect();
            out.push_str(&format!(
                "Next: stop the application, then run: {tool} recover {}{fill}\n",
                shell(&self.source)
            ));
            return out;
        }
        if let Some(r) = &self.recovered {
            out.push_str(&format!("recovered database: {}\n", r.display()));
        }
        if let Some(f) = &self.report_file {
            out.push_str(&format!("report: {}\n", f.display()));
        }
        if let Some(r) = &self.recovered {
            let restore = format!("{tool} restore {} --from {}", shell(&self.source), shell(r));
            if self.outcome == RecoveryOutcome::Complete {
                out.push_str(&format!("Next: {restore}\n"));
            } else {
                out.push_str(&format!(
                    "Next: read what was lost above; to put the recovered copy in place \
                     knowing those rows are gone: {restore} --accept-loss\n"
                ));
            }
        }
        if let Some(dir) = &self.incident_dir {
            out.push_str(&format!("incident folder:\n{}\n", dir.display()));
        }
        out
    }

    /// The altered rows of table `t`: how many, how many now hold their indexes' values, and
    /// the first few.
    fn altered_notes(&self, t: &crate::engine::TableReport, out: &mut String) {
        if t.altered_rows > 0 {
            out.push_str(&format!(
                "{}: {} rows disagree with what an index holds for their {}, or have a \
                 record header that does not fit their payload: back, but altered \
                 (report.json lists them under altered)\n",
                t.name,
                t.altered_rows,
                if t.without_rowid {
                    "primary key"
                } else {
                    "rowid"
                }
            ));
            if t.repaired_rows > 0 {
                out.push_str(&format!(
                    "  {} of them now hold the values their indexes hold; their records as \
                     read are in {}\n",
                    t.repaired_rows, self.engine.side_tables.altered_rows
                ));
            }
            for a in t.altered.iter().take(5) {
                for c in a.columns.iter().filter(|_| a.moved_to.is_none()) {
                    out.push_str(&format!(
                        "  {}: {} is {} in the row, {} in index {}{}\n",
                        a.named(),
                        c.column,
                        c.row_value,
                        c.index_value,
                        a.index,
                        if a.repaired { " (now the index's)" } else { "" }
                    ));
                }
                if a.header_inconsistent {
                    out.push_str(&format!(
                        "  {}: its record's header does not fit its payload (its \
                         serial types were altered, or it was cut)\n",
                        a.named()
                    ));
                }
                if let Some(home) = &a.moved_to {
                    out.push_str(&format!(
                        "  {}: a row of {home} (its index lists it), read from one of \
                         its pages: put back there\n",
                        a.named()
                    ));
                }
                if let Some(why) = &a.not_repaired {
                    out.push_str(&format!("  {}: left as read: {why}\n", a.named()));
                }
            }
        }
    }

    /// What each table lost or got back, and what its indexes still hold.
    fn table_notes(&self) -> String {
        let mut out = String::new();
        if self.engine.schema_damaged && self.lost_and_found_rows > 0 {
            out.push_str(
                "The schema itself is damaged: rows of tables whose schema rows were lost are in \
                 lost_and_found, grouped by page.\nWith a healthy copy of the schema (a fresh \
                 database your application migrated, or a backup), run again with \
                 --schema-from FILE to put them back in their tables.\n",
            );
        }
        for r in &self.engine.schema_rebuilt {
            out.push_str(&format!(
                "{}: {}; rebuilt as\n  {}\n  \
                 columns no index names are named by their place (c2, ...): rename them as your \
                 schema has them, or run again with --schema-from FILE\n",
                r.name, r.evidence, r.sql
            ));
        }
        for t in &self.engine.tables {
            if let Some(why) = &t.refused {
                out.push_str(&format!("{}: {why}\n", t.name));
            }
            if t.attributed_rows > 0 {
                out.push_str(&format!(
                    "{}: {} rows were on pages its tree no longer reached and were put back in place\n",
                    t.name, t.attributed_rows
                ));
            }
            if t.damaged_rows > 0 {
                out.push_str(&format!(
                    "{}: {} rows had a value that could not be read whole (NULL now; see rescue_damaged_values)\n",
                    t.name, t.damaged_rows
                ));
            }
            let nothing_missing = self
                .tables
                .iter()
                .find(|s| s.table == t.name)
                .is_some_and(|s| s.missing_rows == 0 && s.missing_rows_max == Some(0));
            if t.rows_may_be_missing && !t.holes.is_empty() && !nothing_missing {
                let mut pages: Vec<u32> = t.holes.iter().map(|h| h.page).collect();
                pages.sort_unstable();
                pages.dedup();
                let pages: Vec<String> = pages.iter().map(ToString::to_string).collect();
                out.push_str(&format!(
                    "{}: part of its tree was unreadable (page {})\n",
                    t.name,
                    pages.join(", ")
                ));
            }
            self.altered_notes(t, &mut out);
            // What the indexes hold of lost rows: one line here, the rows in `lost`.
            let lost_command = format!("{} lost {}", tool_command(), shell(&self.source));
            for line in crate::engine::losses::table_lines(t, 0, &lost_command) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        for line in crate::engine::losses::index_lines(&self.engine) {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Rows kept apart: lost_and_found, conflicts, stray copies.
    fn row_notes(&self) -> String {
        let mut out = String::new();
        for g in self
            .engine
            .orphans
            .iter()
            .filter(|g| g.outcome == crate::engine::GroupOutcome::LostAndFound)
        {
            out.push_str(&format!(
                "lost_and_found: {} rows from page {} ({})\n",
                g.rows, g.top_page, g.reason
            ));
        }
        if self.conflict_rows > 0 {
            out.push_str(&format!(
                "{} rows were refused by a constraint and kept in rescue_conflicts\n",
                self.conflict_rows
            ));
        }
        if self.duplicate_rows > 0 {
            out.push_str(&format!(
                "{} rows found twice (stray copies of pages) were recovered once\n",
                self.duplicate_rows
            ));
        }
        out
    }

    /// The WAL and the journal, and what the application must do again.
    fn file_notes(&self) -> String {
        let mut out = String::new();
        let note = crate::source::pagefile::missing_wal_note(
            &self.engine.geometry,
            self.engine.wal.as_ref(),
        );
        // The -shm's own record of lost commits says more than the note would.
        if let Some(note) = note.filter(|_| self.engine.wal_index_gap.is_none()) {
            out.push_str(&format!("note: {note}\n"));
        }
        if let Some(w) = self.engine.wal.as_ref() {
            if let Some(damage) = crate::engine::causes::wal_damage(w) {
                out.push_str(&format!(
                    "-wal damaged ({damage}): {} committed transaction(s) lie past it; SQLite \
                     no longer applies them, and their rows are not in the recovered database \
                     (only a backup taken after them still holds them)\n",
                    w.commits_ignored
                ));
            }
        }
        if self
            .engine
            .wal
            .as_ref()
            .is_some_and(|w| w.older_than_main_file)
        {
            out.push_str(
                "-wal not read: the -shm records a checkpoint that copied more into the main \
                 file than the -wal still holds (it was cut short since), so its frames are \
                 older than the main file's pages; the main file was read alone\n",
            );
        }
        if let Some(gap) = &self.engine.wal_index_gap {
            let note = if gap.is_loss() { "" } else { "note: " };
            out.push_str(&format!("{note}{}\n", gap.describe()));
        }
        match &self.engine.journal {
            Some(j) if j.unusable.is_none() => out.push_str(&format!(
                "hot journal: a transaction that never committed was rolled back \
                 ({} pages read as they were before it)\n",
                j.pages
            )),
            Some(j) => out.push_str(&format!(
                "hot journal ignored: {}\n",
                j.unusable.as_deref().unwrap_or_default()
            )),
            None => {}
        }
        if !self.engine.app_collations.is_empty() {
            out.push_str(&format!(
                "collations only the application registers: {} (kept in the source's order here; \
                 the application must register them again before it uses the recovered file)\n",
                self.engine.app_collations.join(", ")
            ));
        }
        if !self.engine.app_functions.is_empty() {
            out.push_str(&format!(
                "SQL functions only the application registers: {} (the application must \
                 register them again before it writes to the recovered file)\n",
                self.engine.app_functions.join(", ")
            ));
        }
        for i in &self.engine.geometry.inferred {
            out.push_str(&format!("header not trusted, taken from the pages: {i}\n"));
        }
        for s in &self.engine.settings_not_kept {
            out.push_str(&format!("setting not kept: {s}\n"));
        }
        out
    }

    /// Where the run's time went (nothing for a report written before it was measured).
    fn time_note(&self) -> String {
        let t = &self.timings;
        if t.total <= 0.0 {
            return String::new();
        }
        let proof = self.engine.timings.get("verify").copied().unwrap_or(0.0);
        let fill = match self.fill {
            Some(_) => format!(", fill {}", seconds(t.fill)),
            None => String::new(),
        };
        format!(
            "time: {} (snapshot {}, recovery {} of which the proof {}, counts {}{fill})\n",
            seconds(t.total),
            seconds(t.snapshot),
            seconds(t.recovery),
            seconds(proof),
            seconds(t.counts),
        )
    }

    /// Indexes, views and triggers, and the checks of the result.
    fn object_notes(&self) -> String {
        let mut out = String::new();
        let failed: Vec<&engine::ObjectReport> =
            self.engine.objects.iter().filter(|o| !o.created).collect();
        let built = self.engine.objects.len() - failed.len();
        out.push_str(&format!(
            "indexes, views and triggers: {built} recreated, {} failed\n",
            failed.len()
        ));
        for o in failed {
            out.push_str(&format!(
                "  {} {}: {}\n",
                o.kind,
                o.name,
                o.error.as_deref().unwrap_or("failed")
            ));
        }
        // Recreated, with something the application must provide again.
        for o in self.engine.objects.iter().filter(|o| o.created) {
            if let Some(note) = &o.error {
                out.push_str(&format!("  {} {}: {note}\n", o.kind, o.name));
            }
        }
        out.push_str(&format!(
            "proof of the result (b-trees whole, every index matching its table): {}\n",
            if self.integrity_ok {
                "ok".to_string()
            } else {
                self.integrity.join("; ")
            }
        ));
        if self.foreign_key_violations.is_none() {
            out.push_str(
                "foreign_key_check: not counted (SQLite's check fails on this schema, as when a \
                 foreign key names a parent key without a UNIQUE index)\n",
            );
        }
        if let Some(n) = self.foreign_key_violations.filter(|&n| n > 0) {
            let (rows, name) = if n == 1 {
                ("row", "names")
            } else {
                ("rows", "name")
            };
            out.push_str(&format!(
                "foreign_key_check: {n} {rows} {name} a parent row that is not there (kept in \
                 place; `PRAGMA foreign_key_check` lists them)\n"
            ));
        }
        out
    }
}

impl Outcome for IncidentReport {
    fn render_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.table_text());
        out.push('\n');
        out.push_str(&self.table_notes());
        if let Some(fill) = &self.fill {
            out.push('\n');
            out.push_str(&fill_text(fill, self.dry_run));
            out.push('\n');
        }
        out.push_str(&self.row_notes());
        out.push_str(&self.file_notes());
        out.push_str(&self.object_notes());
        out.push_str(&self.time_note());
        out.push('\n');
        let verdict = if self.outcome == RecoveryOutcome::Complete {
            "Every row the source holds came back in place.".to_string()
        } else if self.outcome == RecoveryOutcome::ObjectsNotRecreated {
            "Every row the source holds came back in place, but not every index, view, \
             trigger or virtual table (see above): restore refuses this copy without \
             --accept-loss."
                .to_string()
        } else if self.missing_rows > 0 {
            format!(
                "Some rows did not come back in place: at least {} missing (see above).",
                rows_count(self.missing_rows)
            )
        } else {
            not_whole(&self.engine, self.lost_and_found_rows, self.conflict_rows)
        };
        out.push_str(&verdict);
        out.push('\n');
        if let Some(fill) = self.fill.as_ref().filter(|f| f.filled_rows > 0) {
            out.push_str(&format!(
                "{} rows {} from backups, as they were when the backup was taken (see above).\n",
                fill.filled_rows,
                if self.dry_run {
                    "would be filled"
                } else {
                    "were filled"
                }
            ));
        }
        if !self.causes.is_empty() {
            out.push('\n');
            out.push_str(&crate::output::report::causes_text(&self.causes));
        }
        out.push_str(&self.next_text());
        out
    }

    fn exit_code(&self) -> i32 {
        self.exit_code
    }
}

/// Seconds to two significant places or so: "0.042 s", "3.1 s", "48 s".
fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{s:.3} s")
    } else if s < 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// "1 row is" / "n rows are".
fn rows_count(n: u64) -> String {
    if n == 1 {
        "1 row is".to_string()
    } else {
        format!("{n} rows are")
    }
}

/// The verdict when no row is known missing, yet the recovery is not complete: what kept it
/// from being so, in words.
fn not_whole(engine: &engine::Report, lost_and_found: u64, conflicts: u64) -> String {
    let altered: u64 = engine.tables.iter().map(|t| t.altered_rows).sum();
    let repaired: u64 = engine.tables.iter().map(|t| t.repaired_rows).sum();
    let mut why = Vec::new();
    if lost_and_found > 0 {
        why.push(format!("{} in lost_and_found", rows_count(lost_and_found)));
    }
    if conflicts > 0 {
        why.push(format!(
            "{} refused, kept in rescue_conflicts",
            rows_count(conflicts)
        ));
    }
    if altered > 0 {
        why.push(format!(
            "{} altered in the file ({repaired} given the values their indexes hold)",
            rows_count(altered)
        ));
    }
    if !engine.schema_rebuilt.is_empty() {
        why.push(format!(
            "{} rebuilt from an index because its schema row was destroyed",
            match engine.schema_rebuilt.len() {
                1 => "a table".to_string(),
                n => format!("{n} tables"),
            }
        ));
    }
    if engine.schema_damaged && lost_and_found == 0 {
        why.push(
            "part of the schema could not be read, so a table it named may be missing here \
             without a trace (a healthy copy of the schema: run again with --schema-from FILE)"
                .to_string(),
        );
    }
    if why.is_empty() {
        return "Some rows did not come back in place: see above.".to_string();
    }
    format!(
        "No row is known missing, but not every row came back as the source held it: {} \
         (see above).",
        why.join("; ")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn seconds_keep_two_places_or_so() {
        assert_eq!(super::seconds(0.0423), "0.042 s");
        assert_eq!(super::seconds(3.06), "3.1 s");
        assert_eq!(super::seconds(48.49), "48 s");
    }
}
