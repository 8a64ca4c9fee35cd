//! Recovers every committed corrupt sample and prints, per sample, what sqlite-rescue returns
//! today against the truth: the "sqlite-rescue today" column of corrupt-samples/README.md.
//!
//!     cargo run --release --example score_samples

use sqlite_rescue::engine::{recover, Options};
use std::path::Path;

fn main() -> corrupt_samples::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir()?;
    for sample in corrupt_samples::committed_samples(root)? {
        let db = sample.copy_to(&work.path().join(&sample.name))?;
        let out = work.path().join(format!("{}.out", sample.name));
        let cell = match recover(&db, &out, &Options::default()) {
            Err(e) => format!("refused, exit {}: {}", e.exit_code(), short(&e.to_string())),
            Ok(report) => {
                let truth = sample.truth.as_ref().ok_or("usable sample without truth")?;
                let score = corrupt_samples::score(truth, &out)?;
                let mut cell = format!(
                    "{}/{} in place",
                    score.total_in_place(),
                    score.total_truth_rows()
                );
                let attributed: u64 = report.tables.iter().map(|t| t.attributed_rows).sum();
                if attributed > 0 {
                    cell.push_str(&format!(" ({attributed} put back from orphan pages)"));
                }
                if report.lost_and_found_rows > 0 {
                    cell.push_str(&format!(
                        "; {} in lost_and_found",
                        report.lost_and_found_rows
                    ));
                }
                if report.stale_rows > 0 {
                    cell.push_str(&format!(
                        "; {} stale rows (not live) kept in lost_and_found",
                        report.stale_rows
                    ));
                }
                if report.duplicate_rows > 0 {
                    cell.push_str(&format!(
                        "; {} stray duplicates dropped",
                        report.duplicate_rows
                    ));
                }
                let damaged: u64 = report.tables.iter().map(|t| t.damaged_rows).sum();
                if damaged > 0 {
                    cell.push_str(&format!("; {damaged} with a value flagged unreadable"));
                }
                if score.total_spurious() > damaged {
                    let suspect: u64 = report.tables.iter().map(|t| t.suspect_rows).sum();
                    cell.push_str(&format!(
                        "; {} altered rows ({suspect} flagged suspect)",
                        score.total_spurious() - damaged
                    ));
                }
                cell
            }
        };
        println!("{}\t{}", sample.name, cell);
    }
    Ok(())
}

fn short(message: &str) -> &str {
    message.rsplit(": ").next().unwrap_or(message)
}
