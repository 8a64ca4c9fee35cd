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
    let matches = cli::Cli::command().version(version).get_matches();
    let args = match cli::Cli::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sqlite-rescue: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(if code == exit::OK { 0 } else { code });
}
