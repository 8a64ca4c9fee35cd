//! The proof of a recovered database alone, for benchmarks: `verify_only DB [fast|full]`.
//! Prints the seconds it took and its first messages.

use sqlite_rescue::engine::{verify, VerifyMode};
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = match args.get(2).map(|m| m.parse::<VerifyMode>()) {
        None => Ok(VerifyMode::Fast),
        Some(m) => m,
    };
    let (Some(db), Ok(mode)) = (args.get(1), mode) else {
        eprintln!("usage: verify_only DB [fast|full]");
        std::process::exit(2);
    };
    let start = std::time::Instant::now();
    match verify(Path::new(db), mode) {
        Ok(messages) => println!(
            "{mode}: {:.2} s: {}",
            start.elapsed().as_secs_f64(),
            messages
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Err(e) => {
            eprintln!("verify_only: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
