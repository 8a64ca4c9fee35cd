//! The recovery step alone, for benchmarks: `recover_only SNAPSHOT_DB OUT [--verify]
//! [--decode-all] [--table-by-table]`. Prints the engine's phase timings as JSON.
//! `--decode-all` decodes every table row by row, also those that read whole (otherwise copied
//! by SQLite); `--table-by-table` copies whole tables one by one, as for a damaged database,
//! even when the whole database could be copied at once.
//!
//! Without `--verify` the result is not proved sound (`quick_check` and the index digests), so
//! an index copied from a source whose index disagrees with its rows is not caught and rebuilt
//! here as it is by `sqlite-rescue recover`: use this for timing only.

use sqlite_rescue::engine::{recover, Options};
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!(
            "usage: recover_only SNAPSHOT_DB OUT [--verify] [--decode-all] [--table-by-table]"
        );
        std::process::exit(2);
    }
    let options = Options {
        skip_verify: !args.iter().any(|a| a == "--verify"),
        decode_all: args.iter().any(|a| a == "--decode-all"),
        table_by_table: args.iter().any(|a| a == "--table-by-table"),
        ..Options::default()
    };
    match recover(Path::new(&args[1]), Path::new(&args[2]), &options) {
        Ok(report) => println!(
            "{}",
            serde_json::to_string(&report.timings).unwrap_or_default()
        ),
        Err(e) => {
            eprintln!("recover_only: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
