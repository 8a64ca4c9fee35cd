//! What only the application registers (its SQL functions, collations, virtual-table
//! modules) and what SQL cannot name (a rowid every name of which a column takes): the
//! tables and objects still come back exactly.

use super::{assert_round_trip, assert_same, check_exit, contents, made_by, recover_exit};
use crate::common;
use sqlite_rescue::engine::{recover, Options};

/// A virtual table whose module only the application registers keeps its schema row as the
/// source has it (its rows live in ordinary tables, which come back as any other), and the
/// report says the application must register the module again.
#[test]
fn a_virtual_table_of_the_applications_own_module_is_kept() {
    let (dir, src) = made_by(
        "CREATE TABLE things_data(k INTEGER PRIMARY KEY, v);
         INSERT INTO things_data VALUES (1, 'one'), (2, 'two');
         PRAGMA writable_schema = ON;
         INSERT INTO sqlite_schema VALUES ('table', 'things', 'things', 0,
           'CREATE VIRTUAL TABLE things USING appmod(a, b)');",
    );
    for r in assert_round_trip(&src, dir.path()) {
        let things = r.objects.iter().find(|o| o.name == "things").unwrap();
        assert!(things.created, "{things:?}");
        assert!(
            things
                .error
                .as_deref()
                .is_some_and(|e| e.contains("appmod")),
            "{things:?}"
        );
    }
}

/// SQL functions only the application registers, where no stored value depends on them (a
/// CHECK, a DEFAULT, a virtual generated column): a stand-in lets SQLite create the table,
/// the rows come back in place, and the report names the function.
#[test]
fn a_function_only_the_application_registers_in_a_check_keeps_its_table() {
    let (dir, src) = made_by(
        "CREATE TABLE t(x TEXT CHECK (appfn(x) < 100), d DEFAULT (appfn('abc')),
                        g AS (appfn(x) + 1) VIRTUAL);
         CREATE TABLE w(k TEXT PRIMARY KEY CHECK (appfn(k) > 0), v) WITHOUT ROWID;
         INSERT INTO t(x) VALUES ('a'), ('bb'), (NULL);
         INSERT INTO t(rowid, x, d) VALUES (-7, 'c', 'given');
         INSERT INTO w VALUES ('k1', 1), ('k2', x'00');",
    );
    for r in assert_round_trip(&src, dir.path()) {
        assert_eq!(r.app_functions, vec!["appfn".to_string()]);
    }
    assert_eq!(recover_exit(&src, dir.path()), Some(0));
}

/// A stored generated column computed by a function only the application registers: no
/// stand-in may compute its values, so the rows are loaded as the source stores them and the
/// table gets its own definition back. The report names the function.
#[test]
fn a_stored_column_of_an_application_function_comes_back_as_stored() {
    let (dir, src) = made_by(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT UNIQUE, g INT AS (appcalc(x)) STORED,
                        v AS (x || '!') VIRTUAL, n DEFAULT 'n');
         CREATE TABLE w(k TEXT COLLATE NOCASE, j INTEGER, s AS (appcalc(k) * 2) STORED,
                        PRIMARY KEY(j DESC, k)) WITHOUT ROWID;
         CREATE INDEX t_g ON t(g);
         INSERT INTO t(id, x) VALUES (5, 'a'), (-2, 'bbb'), (40, NULL), (7, x'00ff');
         ALTER TABLE t ADD COLUMN late TEXT DEFAULT 'later';
         INSERT INTO t(x, late) VALUES ('new', NULL);
         INSERT INTO w(k, j) VALUES ('K', 1), ('k2', 1), ('z', -9);",
    );
    for r in assert_round_trip(&src, dir.path()) {
        assert_eq!(r.app_functions, vec!["appcalc".to_string()]);
        assert!(r.objects.iter().all(|o| o.created), "{:?}", r.objects);
    }
    assert_eq!(check_exit(&src), Some(0), "check agrees: healthy");
    assert_eq!(recover_exit(&src, dir.path()), Some(0));
}

/// Columns named `rowid`, `_rowid_` and `oid`: SQL has no name left for the rowid, yet the
/// rows keep theirs on both copy paths (seen by renaming a column afterwards).
#[test]
fn a_table_whose_columns_take_every_rowid_name_keeps_its_rowids() {
    let (dir, src) = made_by(
        "CREATE TABLE t(rowid TEXT, _rowid_ INT, oid REAL, v CHECK (v IS NOT 'never'));
         CREATE TABLE keep(r INTEGER PRIMARY KEY);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
         INSERT INTO t SELECT 'r' || i, i, i / 2.0, i FROM n;
         DELETE FROM t WHERE _rowid_ % 3 = 0;",
    );
    let rowids = |path: &std::path::Path| -> Vec<(i64, i64)> {
        // SQLite will not rename a column called rowid: the definition is edited instead.
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = replace(sql, '(rowid TEXT', '(r TEXT')
              WHERE name = 't';
             PRAGMA writable_schema = RESET;",
        )
        .unwrap();
        let mut stmt = conn.prepare("SELECT rowid, _rowid_ FROM t").unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    };
    let truth = dir.path().join("rowids.db");
    std::fs::copy(&src, &truth).unwrap();
    let want = rowids(&truth);
    assert_eq!(want.len(), 40);
    assert!(
        want.iter().all(|(rowid, v)| rowid == v),
        "the source's rowids"
    );
    assert_round_trip(&src, dir.path());
    for out in ["whole.db", "tables.db"] {
        assert_eq!(rowids(&dir.path().join(out)), want, "{out}");
    }
    assert_eq!(recover_exit(&src, dir.path()), Some(0));
}

/// Indexes whose expression or WHERE calls a function only the application registers: SQLite
/// cannot build them, so their entries come from the source's own trees, and SQLite (with the
/// application's function) finds them matching their tables.
#[test]
fn an_index_computed_by_an_application_function_keeps_the_sources_entries() {
    let (dir, src) = made_by(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT, y);
         CREATE INDEX t_len ON t(appcalc(x) DESC, y COLLATE NOCASE);
         CREATE UNIQUE INDEX t_part ON t(x, id) WHERE appcalc(x) > 'Text:2';
         CREATE TABLE plain(k);
         CREATE INDEX plain_k ON plain(k, appcalc(k));
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO t SELECT i * 3, substr('abcdefghij', 1, i % 10), i % 7 FROM n;
         INSERT INTO t VALUES (-1, NULL, NULL), (2, x'0102', 'Y');
         INSERT INTO plain VALUES (1), ('two'), (NULL), (3.5);",
    );
    for r in assert_round_trip(&src, dir.path()) {
        assert_eq!(r.app_functions, vec!["appcalc".to_string()]);
        for name in ["t_len", "t_part", "plain_k"] {
            let o = r.objects.iter().find(|o| o.name == name).unwrap();
            assert!(o.created, "{o:?}");
            assert!(
                o.error.as_deref().is_some_and(|e| e.contains("appcalc")),
                "{o:?}"
            );
        }
    }
    assert_eq!(check_exit(&src), Some(0), "check agrees: healthy");
    assert_eq!(recover_exit(&src, dir.path()), Some(0));
}

/// An FTS5 table whose tokenizer only the application registers: this SQLite cannot check
/// it, in the source as in the result, so its schema row is kept as the source has it (its
/// rows are in its shadow tables, which come back as any other) and the report says why.
/// (This test's application has no such tokenizer either, so it compares contents without
/// SQLite's check of the file.)
#[test]
fn a_full_text_table_with_the_applications_tokenizer_is_kept() {
    let (dir, src) = made_by(
        "CREATE VIRTUAL TABLE docs USING fts5(title, body);
         INSERT INTO docs VALUES ('one', 'the first body'), ('two', 'a second one');
         PRAGMA writable_schema = ON;
         UPDATE sqlite_schema
            SET sql = 'CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize=apptok)'
          WHERE name = 'docs';",
    );
    let truth = dir.path().join("truth.db");
    std::fs::copy(&src, &truth).unwrap();
    let want = contents(&truth);
    for table_by_table in [false, true] {
        let out = dir.path().join(format!("out-{table_by_table}.db"));
        let options = Options {
            table_by_table,
            ..Options::default()
        };
        let r = recover(&src, &out, &options).expect("recover");
        assert!(r.integrity_ok(), "{:?}", r.integrity);
        let docs = r.objects.iter().find(|o| o.name == "docs").unwrap();
        assert!(docs.created, "{docs:?}");
        assert!(
            docs.error
                .as_deref()
                .is_some_and(|e| e.contains("tokenizer")),
            "{docs:?}"
        );
        let t = r.tables.iter().find(|t| t.name == "docs_content").unwrap();
        assert_eq!(t.recovered_rows, 2);
        assert_same(&want, &contents(&out), "fts5");
    }
    assert_eq!(check_exit(&src), Some(0), "check agrees: healthy");
    assert_eq!(recover_exit(&src, dir.path()), Some(0));
}

/// An index SQLite cannot build and that cannot be copied from the source (a WITHOUT ROWID
/// table's, calling the application's function): every row comes back, but the copy lacks
/// the index, so recover says so and exits 1, and restore refuses the copy until the loss is
/// accepted.
#[test]
fn an_index_that_could_not_be_recreated_is_a_loss_restore_refuses() {
    let (dir, src) = made_by(
        "CREATE TABLE w(k INTEGER PRIMARY KEY, v TEXT) WITHOUT ROWID;
         CREATE INDEX w_calc ON w(appcalc(v));
         INSERT INTO w VALUES (1, 'a'), (2, 'b');",
    );
    assert_eq!(check_exit(&src), Some(0), "the source is healthy");
    let run = common::cmd()
        .args(["recover", "-q", "--json", "--incident-dir"])
        .arg(dir.path().join("incident"))
        .arg(&src)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let out = std::path::PathBuf::from(report["recovered"].as_str().unwrap());
    assert_eq!(report["outcome"], "objects not recreated");
    assert_eq!(report["missing_rows"], 0);
    let w_calc = &report["engine"]["objects"][0];
    assert_eq!(w_calc["name"], "w_calc");
    assert_eq!(w_calc["created"], false);
    let before = common::sha256_file(&src);
    let restore = |extra: &[&str]| {
        common::cmd()
            .arg("restore")
            .arg(&src)
            .arg("--from")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = restore(&[]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("index w_calc"), "{err}");
    assert_eq!(common::sha256_file(&src), before, "nothing changed");
    assert_eq!(restore(&["--accept-loss"]).status.code(), Some(0));
}
