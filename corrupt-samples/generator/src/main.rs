//! `make-corrupt-samples [--scale small|large] [--seed N] [--only NAME]... OUT_DIR`
//!
//! Writes every damaged sample (or only the named ones) and their truth files.
//! `make-corrupt-samples --table CORPUS_DIR` prints the README table of a corpus.

use std::path::PathBuf;
use std::process::ExitCode;

use corrupt_samples::{generate_all_with_seed, generate_with_seed, Scale, DEFAULT_SEED};

fn usage() -> ExitCode {
    eprintln!(
        "usage: make-corrupt-samples [--scale small|large] [--seed N] [--only NAME]... OUT_DIR\n       make-corrupt-samples --table CORPUS_DIR   (print the README table)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut scale = Scale::Small;
    let mut seed = DEFAULT_SEED;
    let mut only: Vec<String> = Vec::new();
    let mut out: Option<PathBuf> = None;
    let mut table = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--scale" => match args.next().map(|s| s.parse()) {
                Some(Ok(s)) => scale = s,
                _ => return usage(),
            },
            "--seed" => match args.next().map(|s| s.parse()) {
                Some(Ok(s)) => seed = s,
                _ => return usage(),
            },
            "--only" => match args.next() {
                Some(n) => only.push(n),
                None => return usage(),
            },
            "--table" => table = true,
            "-h" | "--help" => return usage(),
            _ if out.is_none() && !a.starts_with('-') => out = Some(PathBuf::from(a)),
            _ => return usage(),
        }
    }
    let Some(out) = out else { return usage() };
    if table {
        // Print the README table of an existing corpus instead of generating.
        return match corrupt_samples::committed_samples_in(&out) {
            Ok(samples) => {
                print!("{}", corrupt_samples::markdown_table(&samples));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("make-corrupt-samples: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = if only.is_empty() {
        generate_all_with_seed(&out, scale, seed)
    } else {
        only.iter()
            .map(|n| generate_with_seed(n, &out, scale, seed))
            .collect()
    };
    match result {
        Ok(samples) => {
            for s in samples {
                let e = &s.expected;
                println!(
                    "{:<24} page_size={:<6} damaged={:?}",
                    s.name,
                    e.page_size
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "-".into()),
                    e.damaged_pages
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make-corrupt-samples: {e}");
            ExitCode::FAILURE
        }
    }
}
