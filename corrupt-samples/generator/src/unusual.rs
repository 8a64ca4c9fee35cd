//! `healthy-unusual`: a database with nothing wrong in it, whose schema and data use valid
//! SQLite features a recovery tool easily gets wrong. Every row must come back exactly: same
//! rowid or key, same storage class, same bytes.
//!
//! - `id INTEGER PRIMARY KEY DESC`, which is not a rowid alias (an ordinary column with a
//!   unique index: rowids and ids differ);
//! - WITHOUT ROWID tables keyed on a column named twice (`PRIMARY KEY(a, a)`,
//!   `PRIMARY KEY(a ASC, a DESC)`), on a descending key with `COLLATE NOCASE`, and on
//!   `RTRIM` text;
//! - a table with a CHECK constraint and no INTEGER PRIMARY KEY (SQLite will not move its
//!   records as they are, so a copy must keep its rowids some other way), with extreme and
//!   negative rowids;
//! - columns named `rowid`, `_rowid_` and `oid`; user tables named `lost_and_found` and
//!   `rescue_conflicts`, like the tool's own;
//! - text that is not valid UTF-8, text with a NUL inside, every storage class in an untyped
//!   column, generated columns, partial and expression indexes, a view and a trigger.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::{params, Connection};

use crate::Result;

/// The page size of the sample.
pub const PAGE_SIZE: u32 = 1024;

const SCHEMA: &str = "
    CREATE TABLE ticket(id INTEGER PRIMARY KEY DESC, title TEXT NOT NULL, opened REAL);
    CREATE TABLE pair(a INT, b TEXT, PRIMARY KEY(a, a)) WITHOUT ROWID;
    CREATE TABLE twice(a TEXT, b, PRIMARY KEY(a ASC, a DESC)) WITHOUT ROWID;
    CREATE TABLE tag(name TEXT COLLATE NOCASE, rank INT, note TEXT COLLATE RTRIM,
                     PRIMARY KEY(name DESC, rank)) WITHOUT ROWID;
    CREATE TABLE reading(sensor TEXT, value ANY, unit TEXT, PRIMARY KEY(sensor),
                         CHECK (unit IS NOT 'forbidden'));
    CREATE TABLE shadow(rowid TEXT, oid INT, payload BLOB);
    CREATE TABLE lost_and_found(item TEXT, found_at TEXT);
    CREATE TABLE rescue_conflicts(x, y);
    CREATE TABLE line(id INTEGER PRIMARY KEY, qty INT, price REAL,
                      total REAL AS (qty * price) STORED, label TEXT AS (upper(note)) VIRTUAL,
                      note TEXT);
    CREATE INDEX reading_unit ON reading(unit) WHERE unit IS NOT NULL;
    CREATE INDEX line_expr ON line(qty * 2, lower(note));
    CREATE INDEX ticket_title ON ticket(title COLLATE NOCASE DESC);
    CREATE VIEW open_tickets AS SELECT id, title FROM ticket WHERE opened > 0;
";

/// Builds the sample at `path` (rollback journal, so the file is the same on every run).
pub fn build(path: &Path, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0dd_5a3e);
    let conn = Connection::open(path)?;
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA user_version = -3;
         PRAGMA application_id = 1095782989;"
    ))?;
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch("BEGIN")?;
    for i in 0..60i64 {
        conn.execute(
            "INSERT INTO ticket(rowid, id, title, opened) VALUES (?1, ?2, ?3, ?4)",
            params![
                1000 - i * 7,
                i * 13 - 200,
                format!("Ticket {i}"),
                rng.random_range(-1.0..1.0f64)
            ],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO pair VALUES (?1, ?2)",
            params![i * 3 - 40, format!("p{i}")],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO twice VALUES (?1, ?2)",
            params![format!("k{:03}", rng.random_range(0..500)), i],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO tag VALUES (?1, ?2, ?3)",
            params![
                if i % 2 == 0 {
                    format!("Name{}", i % 9)
                } else {
                    format!("nAME{}", i % 11)
                },
                i % 4,
                format!("note {i}{}", " ".repeat((i % 3) as usize))
            ],
        )?;
        conn.execute(
            "INSERT INTO shadow(_rowid_, rowid, oid, payload) VALUES (?1, ?2, ?3, ?4)",
            params![
                i * 11 + 5,
                format!("r{i}"),
                -i,
                vec![i as u8; (i % 5) as usize]
            ],
        )?;
        conn.execute(
            "INSERT INTO line(qty, price, note) VALUES (?1, ?2, ?3)",
            params![i % 7, f64::from(i as i32) * 0.25, format!("Line {i}")],
        )?;
    }
    let values: [&str; 8] = [
        "NULL",
        "-9223372036854775808",
        "9223372036854775807",
        "1e308",
        "-0.0",
        "x'00ff'",
        "CAST(x'ff61c3' AS TEXT)",
        "'a' || char(0) || 'b'",
    ];
    for (i, v) in values.iter().enumerate() {
        let rowid = [i64::MIN, -1, 0, 1, 2, 1 << 40, i64::MAX - 1, i64::MAX][i];
        conn.execute(
            &format!("INSERT INTO reading(rowid, sensor, value, unit) VALUES (?1, ?2, {v}, ?3)"),
            params![
                rowid,
                format!("s{i}"),
                if i % 3 == 0 { None } else { Some("C") }
            ],
        )?;
    }
    conn.execute_batch(
        "INSERT INTO lost_and_found VALUES ('umbrella', 'lobby'), ('keys', 'desk');
         INSERT INTO rescue_conflicts VALUES (1, 2);
         DELETE FROM ticket WHERE id % 5 = 0;
         COMMIT;
         CREATE TRIGGER ticket_touch AFTER UPDATE ON ticket BEGIN SELECT 1; END;",
    )?;
    Ok(())
}
