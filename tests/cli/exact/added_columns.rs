//! Rows written before `ALTER TABLE ADD COLUMN` hold fewer fields than their table has
//! columns: SQLite reads each missing one as its default, worked out as it reads the row.

use super::{assert_round_trip, made_by};

/// Defaults an INSERT would work out otherwise than a read does (a TEXT column's numeric
/// literal keeps its spelling when read; a negated blob; a REAL column's integer), in both
/// encodings, on a table that is decoded row by row (no INTEGER PRIMARY KEY, no index).
#[test]
fn rows_older_than_their_columns_read_the_defaults_sqlite_reads() {
    for encoding in ["UTF-8", "UTF-16le", "UTF-16be"] {
        let (dir, src) = made_by(&format!(
            "PRAGMA encoding = '{encoding}';
             CREATE TABLE t(a); INSERT INTO t VALUES (1), (2);
             ALTER TABLE t ADD COLUMN d1 TEXT DEFAULT -0.0;
             ALTER TABLE t ADD COLUMN d2 TEXT DEFAULT 1e999;
             ALTER TABLE t ADD COLUMN d3 TEXT DEFAULT 9223372036854775808;
             ALTER TABLE t ADD COLUMN d4 TEXT DEFAULT 0e5;
             ALTER TABLE t ADD COLUMN d5 VARCHAR(3) DEFAULT -.0;
             ALTER TABLE t ADD COLUMN d6 DEFAULT -x'35';
             ALTER TABLE t ADD COLUMN d7 REAL DEFAULT -x'3132';
             ALTER TABLE t ADD COLUMN d8 INTEGER NOT NULL DEFAULT 7;
             ALTER TABLE t ADD COLUMN d9 TEXT DEFAULT 'é';
             INSERT INTO t(a) VALUES (3);"
        ));
        assert_round_trip(&src, dir.path());
    }
}
