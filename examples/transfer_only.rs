//! SQLite's transfer path alone, a floor for docs/performance.md: `transfer_only SOURCE OUT`.
//!
//! Creates OUT with SOURCE's tables and indexes (journaling off, one transaction, synced once)
//! and fills each table with `INSERT INTO main.t SELECT * FROM source.t`, the statement the
//! engine uses to copy a table that reads whole. Outside `VACUUM`, SQLite checks every row's
//! key against the new table and seeks for every index entry; this measures what that costs
//! with no walk, no page view and no checks of our own.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: transfer_only SOURCE OUT");
        std::process::exit(2);
    }
    if let Err(e) = transfer(&args[1], &args[2]) {
        eprintln!("transfer_only: {e}");
        std::process::exit(4);
    }
}

fn transfer(source: &str, out: &str) -> Result<(), Box<dyn std::error::Error>> {
    let conn = rusqlite::Connection::open(out)?;
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -32768;
         PRAGMA locking_mode = EXCLUSIVE;",
    )?;
    conn.execute("ATTACH ?1 AS source", [source])?;
    let objects: Vec<(String, String, String)> = conn
        .prepare(
            "SELECT type, name, sql FROM source.sqlite_schema
             WHERE type IN ('table', 'index') AND sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
             ORDER BY type = 'index'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    conn.execute_batch("BEGIN")?;
    for (_, _, sql) in &objects {
        conn.execute_batch(sql)?;
    }
    for (kind, name, _) in &objects {
        if kind == "table" {
            let name = format!("\"{}\"", name.replace('"', "\"\""));
            conn.execute_batch(&format!(
                "INSERT INTO main.{name} SELECT * FROM source.{name}"
            ))?;
        }
    }
    conn.execute_batch("COMMIT")?;
    drop(conn);
    std::fs::File::open(out)?.sync_all()?;
    Ok(())
}
