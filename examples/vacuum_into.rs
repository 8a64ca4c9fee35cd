//! `VACUUM INTO` with the bundled SQLite, the yardstick of docs/performance.md:
//! `vacuum_into SOURCE OUT`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: vacuum_into SOURCE OUT");
        std::process::exit(2);
    }
    let run = || -> rusqlite::Result<()> {
        let conn = rusqlite::Connection::open_with_flags(
            &args[1],
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        conn.execute("VACUUM INTO ?1", [&args[2]])?;
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("vacuum_into: {e}");
        std::process::exit(4);
    }
}
