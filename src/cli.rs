//! Command-line arguments and dispatch to the library.

use clap::{Args, Parser, Subcommand};
use sqlite_rescue::commands::{check, diff, incidents, lost, recover, report, restore, undo};
use sqlite_rescue::output::map;
use sqlite_rescue::output::report::Outcome;
use sqlite_rescue::source::snapshot;
use sqlite_rescue::util::progress::Progress;
use sqlite_rescue::Result;
use std::path::PathBuf;

/// Get the rows back out of a damaged SQLite database, safely, with proof of what was lost.
///
/// Start with `sqlite-rescue check DB`, rehearse with `sqlite-rescue recover DB --dry-run`.
/// Shown at the end of `--help`: the codes every command shares (docs/exit-codes.md).
const EXIT_CODES: &str = "Exit codes:
  0    ok: done, or the database is healthy
  1    damage: damage found, or some rows not recovered, or the two sides differ
  2    usage: the command line is wrong
  3    unusable input: missing, unreadable, empty, not a SQLite database, or a --fill-from
       backup of another database (no table in common)
  4    failed or refused for safety: I/O error, disk full, still being written, open elsewhere,
       interrupted (Ctrl-C or SIGTERM: partial files removed), an incident altered since
  5    no room: not enough free disk where `recover` would write (checked before it writes)
  6    too new: an incident's report.json was written by a newer sqlite-rescue
  130  a second Ctrl-C before the first was honoured: stopped at once, without cleaning up

Set NO_COLOR to turn colour off.";

#[derive(Debug, Parser)]
#[command(name = "sqlite-rescue", about, long_about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print one JSON document on stdout and nothing else there.
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress bars and no text beyond the result.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Say what is wrong with a database, working on a private snapshot (never the file itself).
    Check {
        /// The database file (its -wal/-shm/-journal beside it are taken too).
        db: PathBuf,
        /// At most this many integrity_check messages.
        #[arg(long, default_value_t = 100)]
        max_errors: u32,
        /// Also draw the damage map (SVG: every page, by owning table and status) to this file.
        #[arg(long, value_name = "FILE.svg")]
        map: Option<PathBuf>,
    },
    /// Copy a database and its sidecars byte for byte into an incident folder, with SHA-256s.
    Snapshot {
        /// The database to copy (with its -wal, -shm and -journal).
        db: PathBuf,
        /// Folder to create (must not exist, or be empty).
        #[arg(long)]
        into: PathBuf,
        /// Take the snapshot even if the database keeps changing (a warning goes in the manifest).
        #[arg(long)]
        allow_changing: bool,
    },
    /// Snapshot, recover every readable row into a fresh database, verify it and report.
    ///
    /// Before anything is written it works out the time and free disk the run needs (a
    /// --dry-run says them, and so does `estimate` in JSON) and refuses with exit 5 when the
    /// disk lacks room.
    Recover {
        /// The damaged database (its -wal, -shm and -journal beside it are taken too).
        db: PathBuf,
        /// Where to write the recovered database (default: recovered.sqlite3 in the incident folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Incident folder (default: a new ./<db-name>.rescue-<UTC timestamp>/; its path is the
        /// last line printed, and `incident_dir` with --json).
        #[arg(long)]
        incident_dir: Option<PathBuf>,
        /// Do everything in a temporary folder that is removed afterwards; only print the report.
        #[arg(long)]
        dry_run: bool,
        /// Take the snapshot even if the database keeps changing (a rehearsal while the app
        /// still writes: the copy may mix pages from before and after a write).
        #[arg(long)]
        allow_changing: bool,
        /// Also export rows found on free pages (deleted rows), and on pages past the end
        /// the header states, into a table `freelist_rows`.
        #[arg(long)]
        include_freelist: bool,
        /// A healthy database with the same schema (a fresh database your application
        /// migrated, or an old backup): tables whose schema rows were destroyed are rebuilt
        /// from it and their rows put back where the evidence matches.
        #[arg(long, value_name = "DB")]
        schema_from: Option<PathBuf>,
        /// Also draw the damage map (SVG: every page, by owning table and status) to this file.
        #[arg(long, value_name = "FILE.svg")]
        map: Option<PathBuf>,
        /// How to prove the recovered database sound: `fast` (every b-tree's structure walked
        /// from its pages, SQLite's quick_check where the walk has a doubt, and every index
        /// matched against its table's rows in sequential scans) or `full` (SQLite's
        /// integrity_check: every row looked up in every index; slower on large databases).
        #[arg(long, value_name = "fast|full", default_value = "fast")]
        verify: sqlite_rescue::engine::VerifyMode,
        /// An older copy of the database (a nightly backup, a restored replica): the rows
        /// recovery lost are filled from it, recorded in rescue_filled, never over a row that
        /// survived. Repeatable; a row comes from the newest backup that has it.
        #[arg(long, value_name = "BACKUP")]
        fill_from: Vec<PathBuf>,
    },
    /// List the rows that cannot be recovered (rowid ranges per table, with the page they were
    /// on, and the values a surviving index still holds of them), ready to paste into a ticket.
    ///
    /// On a database, works on a private snapshot; on an incident folder, reads its report
    /// (nothing is recovered again). Exit 1 when rows are lost.
    Lost(LostArgs),
    /// Compare row counts per table between a (possibly damaged) source and a recovered copy.
    ///
    /// `diff INCIDENT` prints the comparison the incident's report holds instead.
    Diff {
        /// The original (possibly damaged) database, read from a private copy; or an incident
        /// folder recover wrote (then without RECOVERED).
        #[arg(value_name = "SOURCE|INCIDENT")]
        source: PathBuf,
        /// The recovered database.
        recovered: Option<PathBuf>,
    },
    /// Print an incident's recovery report again, as recover printed it.
    ///
    /// With --json, its report.json. The snapshot is checked against its manifest first.
    Report {
        /// The incident folder recover wrote (the last line recover printed).
        incident: PathBuf,
    },
    /// List the incident folders of a database: date, verdict, whether restored.
    ///
    /// Folders named as recover names them, beside the database and in the current folder,
    /// newest first.
    Incidents {
        /// The database (it need not exist any more).
        db: PathBuf,
    },
    /// Put a recovered database in place of the damaged one, keeping the originals.
    ///
    /// When RECOVERED came from an incident, DB must be the database that incident snapshotted,
    /// unchanged since and not restored already, and RECOVERED must hold every row the
    /// report says the source held.
    Restore {
        /// The damaged database to replace (it and its sidecars are moved to the backup folder).
        db: PathBuf,
        /// The recovered database to put in place.
        #[arg(long)]
        from: PathBuf,
        /// Where the originals are moved (default: inside the incident folder RECOVERED is in).
        #[arg(long)]
        backup_dir: Option<PathBuf>,
        /// Make every check and print exactly what would be copied, moved and renamed, and
        /// where; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Put RECOVERED in place although it holds fewer rows than the incident's report
        /// says the source held (exit 1 without it).
        #[arg(long)]
        accept_loss: bool,
        /// Go ahead even if the database is open elsewhere, RECOVERED fails integrity_check,
        /// or DB changed since the incident's snapshot (or was restored from it already).
        #[arg(long)]
        force: bool,
    },
    /// Undo a restore: move the originals back byte for byte, keeping what was in place in
    /// the backup folder (nothing is deleted).
    Undo {
        /// The incident folder (its newest restore not yet undone), or the backup folder
        /// restore moved the originals into (`--backup-dir`).
        incident: PathBuf,
        /// Undo although the database changed since the restore (the application wrote to
        /// it: those files are kept in the backup folder too), or is open elsewhere.
        #[arg(long)]
        force: bool,
    },
    /// Print shell completions to stdout (e.g. `sqlite-rescue completions bash >
    /// /etc/bash_completion.d/sqlite-rescue`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout (e.g. `sqlite-rescue man > sqlite-rescue.1`).
    Man,
}

#[derive(Debug, Args)]
pub struct LostArgs {
    /// The damaged database (read from a private snapshot), or an incident folder recover
    /// wrote (its report.json is read, once its snapshot matches its manifest).
    #[arg(value_name = "DB|INCIDENT")]
    db: PathBuf,
    /// Only this table (default: every table).
    #[arg(long)]
    table: Option<String>,
    /// Also draw the damage map (SVG) to this file (a database only).
    #[arg(long, value_name = "FILE.svg")]
    map: Option<PathBuf>,
    /// Write what the indexes still hold of the lost rows into DIR, one CSV per table
    /// (TABLE.csv: a header, the rowid first), for `sqlite3 DB ".import --csv FILE T"`.
    #[arg(long, value_name = "DIR")]
    csv: Option<PathBuf>,
    /// Also say which lost rows this older copy of the database can fill (as
    /// `recover --fill-from` would). Repeatable; the newest backup wins.
    #[arg(long, value_name = "BACKUP")]
    fill_from: Vec<PathBuf>,
}

impl LostArgs {
    fn run(self, progress: Progress, output: &OutputArgs) -> Result<i32> {
        let opts = lost::LostOptions {
            table: self.table,
            map: self.map,
            csv: self.csv,
            progress,
        };
        if self.fill_from.is_empty() {
            emit(&lost::lost(&self.db, &opts)?, output)
        } else {
            emit(&lost::lost_fill(&self.db, &opts, &self.fill_from)?, output)
        }
    }
}

/// Runs the command and prints its outcome; returns the exit code. `command` is the clap
/// definition as the binary built it (with its version), for completions and the man page.
pub fn run(cli: Cli, command: clap::Command) -> Result<i32> {
    let progress = Progress::for_terminal(cli.output.quiet, cli.output.json);
    match cli.command {
        Command::Check {
            db,
            max_errors,
            map: map_file,
        } => {
            let opts = check::CheckOptions {
                max_errors,
                progress,
            };
            let report = check::check(&db, &opts)?;
            if let Some(file) = map_file {
                // check itself does not run the engine: the map comes from a run on its own
                // private snapshot.
                let analysis = lost::analyze(&db, progress)?;
                map::write(&analysis.report, &analysis.snapshot_db, &file)?;
            }
            emit(&report, &cli.output)
        }
        Command::Snapshot {
            db,
            into,
            allow_changing,
        } => {
            let opts = snapshot::SnapshotOptions {
                allow_changing,
                progress,
                durable: true,
            };
            emit(&snapshot::take(&db, &into, &opts)?, &cli.output)
        }
        Command::Recover {
            db,
            out,
            incident_dir,
            dry_run,
            allow_changing,
            include_freelist,
            schema_from,
            map,
            verify,
            fill_from,
        } => {
            let opts = recover::RecoverCommand {
                map,
                verify,
                fill_from,
                db,
                out,
                incident_dir,
                dry_run,
                allow_changing,
                include_freelist,
                schema_from,
                progress,
            };
            emit(&recover::run(&opts)?, &cli.output)
        }
        Command::Lost(args) => args.run(progress, &cli.output),
        Command::Diff { source, recovered } => emit(
            &diff::run(&source, recovered.as_deref(), progress)?,
            &cli.output,
        ),
        Command::Report { incident } => emit(&report::report(&incident, progress)?, &cli.output),
        Command::Incidents { db } => emit(&incidents::incidents(&db)?, &cli.output),
        Command::Restore {
            db,
            from,
            backup_dir,
            dry_run,
            accept_loss,
            force,
        } => {
            let opts = restore::RestoreOptions {
                backup_dir,
                force,
                accept_loss,
                progress,
            };
            if dry_run {
                emit(&restore::plan(&db, &from, &opts)?, &cli.output)
            } else {
                emit(&restore::restore(&db, &from, &opts)?, &cli.output)
            }
        }
        Command::Undo { incident, force } => {
            let opts = undo::UndoOptions { force, progress };
            emit(&undo::undo(&incident, &opts)?, &cli.output)
        }
        Command::Completions { shell } => {
            let mut command = command;
            clap_complete::generate(shell, &mut command, "sqlite-rescue", &mut std::io::stdout());
            Ok(sqlite_rescue::error::exit::OK)
        }
        Command::Man => {
            clap_mangen::Man::new(command)
                .render(&mut std::io::stdout())
                .map_err(|e| sqlite_rescue::Error::io("stdout", e))?;
            Ok(sqlite_rescue::error::exit::OK)
        }
    }
}

fn emit<T: Outcome>(outcome: &T, output: &OutputArgs) -> Result<i32> {
    if output.json {
        // Streamed: a recovery's report can run to tens of megabytes.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        serde_json::to_writer_pretty(&mut out, outcome)
            .map_err(|e| sqlite_rescue::Error::Usage(format!("cannot write JSON: {e}")))?;
        std::io::Write::write_all(&mut out, b"\n")
            .and_then(|()| std::io::Write::flush(&mut out))
            .map_err(|e| sqlite_rescue::Error::io("stdout", e))?;
    } else {
        print!("{}", outcome.render_text());
    }
    Ok(outcome.exit_code())
}
