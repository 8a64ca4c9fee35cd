//! What only the application registers (its SQL functions, collations, virtual-table
//! modules) and what SQL cannot name (a rowid every name of which a column takes): the
//! tables and objects still come back exactly.

use super::{assert_round_trip, made_by, recover_exit};

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
