//! The thin binary: parse arguments, run the library, print, map errors to exit codes.

mod cli;

use clap::{CommandFactory, FromArgMatches};
use sqlite_rescue::error::exit;

fn main() {
    let version = format!(
        "{} (SQLite {} bundled)",
        sqlite_rescue::VERSION,
        sqlite_rescue::sqlite_version()
    );
    // clap wants a 'static version string; this one lives for the whole run anyway.
    let version: &'static str = Box::leak(version.into_boxed_str());
    let command = cli::Cli::command().version(version);
    let matches = command.clone().get_matches();
    let args = match cli::Cli::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    // SIGINT/SIGTERM: ask the engine to stop at the next page, so temporary files are
    // removed and nothing that looks complete is left behind. A second signal exits at once.
    let _ = ctrlc::set_handler(|| {
        use std::sync::atomic::Ordering;
        if sqlite_rescue::INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    let code = match cli::run(args, command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sqlite-rescue: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(if code == exit::OK { 0 } else { code });
}
