//! The check report as the on-call engineer reads it.

use super::{CheckReport, HeaderFacts, IntegrityFacts, WalFacts};
use crate::output::report::Outcome;
use crate::source::pagefile::JournalInfo;

impl Outcome for CheckReport {
    fn render_text(&self) -> String {
        let mut o = Lines::default();
        o.line(&format!("Check of {}", self.source.display()));
        o.line("");
        header_section(&mut o, &self.header);
        journal_section(&mut o, self.journal.as_ref());
        wal_section(&mut o, self.wal.as_ref());
        integrity_section(&mut o, &self.integrity);
        o.line(&format!("Verdict: {}", self.status));
        for c in &self.classification {
            o.line(&format!("  - {c}"));
        }
        for w in &self.warnings {
            o.line(&format!("warning: {w}"));
        }
        o.line("");
        o.0.push_str(&crate::output::report::causes_text(&self.causes));
        if let Some(e) = &self.recovery_estimate {
            let here = self.free_here.map_or_else(String::new, |f| {
                format!(
                    " ({} free in the current folder)",
                    crate::engine::estimate::bytes(f)
                )
            });
            o.line(&format!("A recovery should take {}{here}.", e.summary()));
        }
        o.line(&format!("Next: {}", self.next_step));
        o.0
    }

    fn exit_code(&self) -> i32 {
        self.exit_code
    }
}

/// Text built a line at a time.
#[derive(Default)]
struct Lines(String);

impl Lines {
    fn line(&mut self, s: &str) {
        self.0.push_str(s);
        self.0.push('\n');
    }
}

fn header_section(o: &mut Lines, h: &HeaderFacts) {
    let mut line = |s: String| o.line(&s);
    line("Header".into());
    line(format!(
        "  magic                {}",
        if h.magic_ok {
            "SQLite format 3"
        } else {
            "damaged"
        }
    ));
    line(format!(
        "  page size            {}{}",
        h.page_size,
        if h.page_size_inferred {
            " (inferred)"
        } else {
            ""
        }
    ));
    line(format!(
        "  pages                header {}, file {} ({} bytes{}), as SQLite sees it {}",
        opt(&h.header_page_count),
        h.file_pages,
        h.file_size,
        if h.whole_pages {
            ""
        } else {
            ", not a whole number of pages"
        },
        h.pages_with_wal
    ));
    line(format!("  encoding             {}", opt(&h.encoding)));
    line(format!(
        "  journal mode         {} (read/write versions {}/{})",
        opt(&h.journal_mode),
        opt(&h.read_version),
        opt(&h.write_version)
    ));
    line(format!("  freelist pages       {}", opt(&h.freelist_count)));
    line(format!("  schema format        {}", opt(&h.schema_format)));
    line(format!(
        "  last written by      SQLite {}",
        opt(&h.last_written_by)
    ));
    for p in &h.problems {
        line(format!("  problem: {p}"));
    }
    for i in &h.inferred {
        line(format!("  inferred: {i}"));
    }
    line(String::new());
}

fn journal_section(o: &mut Lines, journal: Option<&JournalInfo>) {
    let mut line = |s: String| o.line(&s);
    if let Some(j) = journal {
        line(format!("Hot journal ({} bytes)", j.bytes));
        match &j.unusable {
            Some(why) => line(format!("  ignored: {why}")),
            None => line(format!(
                "  a transaction that never committed: its {} original pages are read in place \
                     of the ones it changed, as SQLite's rollback does; keep the -journal with the \
                     database",
                j.pages
            )),
        }
        line(String::new());
    }
}

fn wal_section(o: &mut Lines, wal: Option<&WalFacts>) {
    let mut line = |s: String| o.line(&s);
    match wal {
        None => line("WAL: none".into()),
        Some(w) => {
            line(format!("WAL ({} bytes)", w.bytes));
            if let Some(why) = &w.unusable {
                line(format!("  unusable: {why}"));
            } else {
                line(format!(
                    "  frames               {} ({} valid, {} committed)",
                    w.frames, w.valid_frames, w.committed_frames
                ));
                line(format!(
                    "  commits              {} not yet in the main file ({} pages)",
                    w.commits, w.pages
                ));
                line(format!(
                    "  after last commit    {} frames{}",
                    w.frames_after_last_commit,
                    if w.tail_torn {
                        " (torn: an incomplete transaction)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    line(String::new());
}

fn integrity_section(o: &mut Lines, i: &IntegrityFacts) {
    let mut line = |s: String| o.line(&s);
    match i.checked_by {
        super::CheckedBy::IntegrityCheck => {
            line(format!("integrity_check (at most {} messages)", i.limit));
        }
        super::CheckedBy::Digests => line(
            "integrity (every b-tree walked from its pages, and every index matched with its \
             table, as recover proves its result)"
                .to_string(),
        ),
    }
    if let Some(e) = &i.error {
        line(format!("  SQLite: {e}"));
    }
    if let Some(e) = &i.aborted {
        line(format!("  stopped part way ({e}); checked table by table"));
    }
    if !i.unchecked_virtual_tables.is_empty() {
        line(format!(
            "  virtual tables this SQLite cannot check (they need what the application \
             registers): {}",
            i.unchecked_virtual_tables.join(", ")
        ));
    }
    if !i.unreadable_tables.is_empty() {
        line(format!(
            "  tables SQLite cannot read to the end: {}",
            i.unreadable_tables.join(", ")
        ));
    }
    if !i.unreadable_indexes.is_empty() {
        line(format!(
            "  indexes SQLite cannot scan: {}",
            i.unreadable_indexes.join(", ")
        ));
    }
    if i.ok {
        line("  ok".into());
    }
    for m in &i.messages {
        line(format!("  {m}"));
    }
    if i.limit_reached {
        line("  (limit reached: there may be more; raise --max-errors)".into());
    }
    if let Some(n) = i.foreign_key_violations {
        line(format!("  foreign key violations: {n}"));
    }
    line(String::new());
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "unknown".to_string(),
    }
}
