use super::keys::key_text;
use super::*;

fn range(first: Option<i64>, last: Option<i64>, exact: bool, rows: Option<u64>) -> LostRange {
    LostRange {
        first_rowid: first,
        last_rowid: last,
        page: 311,
        exact,
        rows,
        keys: None,
    }
}

#[test]
fn describes_exact_and_estimated_ranges() {
    assert_eq!(
        range(Some(10412), Some(10477), true, Some(66)).describe("orders"),
        "orders: rowids 10412\u{2013}10477 lost (page 311, 66 rows)"
    );
    assert_eq!(
        range(Some(5), Some(9), false, None).describe("t"),
        "t: rowids 5\u{2013}9 lost (page 311, estimate)"
    );
    assert_eq!(
        range(Some(5), None, false, None).describe("t"),
        "t: rowids 5 and above lost (page 311, estimate)"
    );
}

fn remembered(rows: usize, not_listed: u64) -> IndexedValues {
    IndexedValues {
        indexes: vec!["users_email".into(), "users_joined".into()],
        columns: vec!["email".into(), "joined".into()],
        rows: (0..i64::try_from(rows).unwrap())
            .map(|r| IndexedRow {
                rowid: 10 + r,
                values: vec![
                    serde_json::json!(format!("o'neil{r}@example.com")),
                    serde_json::Value::Null,
                ],
            })
            .collect(),
        not_listed,
    }
}

#[test]
fn describes_what_the_indexes_hold() {
    assert_eq!(
        remembered(3, 0).describe("users", 2, "sqlite-rescue lost DB"),
        [
            "users: indexes users_email, users_joined still hold email, joined of its 3 lost rows:",
            "  rowid 10: email 'o''neil0@example.com', joined NULL",
            "  rowid 11: email 'o''neil1@example.com', joined NULL",
            "  \u{2026} and 1 more (--json lists them all)",
        ]
    );
    assert_eq!(
        remembered(2, 5)
            .describe("users", 20, "sqlite-rescue lost DB")
            .last()
            .unwrap(),
        "  \u{2026} and 5 more (--json lists 2 of the 7)"
    );
    assert_eq!(
        remembered(1, 0).describe("users", 0, "sqlite-rescue lost DB"),
        [
            "users: indexes users_email, users_joined still hold email, joined of its lost row: \
          sqlite-rescue lost DB --table users lists it"
        ]
    );
    assert_eq!(
        sql_literal(&serde_json::json!({ "blob": "00ff" })),
        "x'00ff'"
    );
}

#[test]
fn a_piece_whose_bounds_crossed_holds_nothing() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE t(x); INSERT INTO t(rowid) VALUES (1), (2), (3), (4), (5);")
        .unwrap();
    let q = Queries {
        conn: &conn,
        table: "t".into(),
    };
    let piece = |first, last| Piece {
        first,
        last,
        first_exact: false,
        last_exact: false,
        filled: true,
        page: 7,
    };
    let bounds = |pieces: Vec<Piece>| -> Vec<(Option<i64>, Option<i64>)> {
        pieces.iter().map(|p| (p.first, p.last)).collect()
    };
    // Bounds crossed (a hole's open side bounded by the recovered row that is its other
    // bound): nothing can be in it.
    assert_eq!(bounds(subtract_recovered(&q, piece(Some(6), Some(5)))), []);
    assert_eq!(
        bounds(subtract_recovered(&q, piece(Some(3), Some(8)))),
        [(Some(6), Some(8))]
    );
    assert_eq!(
        bounds(subtract_recovered(&q, piece(Some(2), None))),
        [(Some(6), None)]
    );
}

#[test]
fn serializes_with_the_documented_names() {
    let v = serde_json::to_value(range(Some(1), Some(2), true, None)).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["exact", "first_rowid", "last_rowid", "page", "rows"]);
}

#[test]
fn key_text_never_panics_on_garbage() {
    for len in 0..64u8 {
        let bytes: Vec<u8> = (0..len)
            .map(|i| i.wrapping_mul(37).wrapping_add(len))
            .collect();
        let _ = key_text(&bytes, TextEncoding::Utf8);
    }
}

#[test]
fn spans_at_the_ends_of_the_rowid_range_do_not_overflow() {
    assert_eq!(
        range(Some(i64::MIN), Some(i64::MIN), true, None).span(),
        Some(1)
    );
    assert_eq!(
        range(Some(i64::MAX), Some(i64::MAX), true, None).span(),
        Some(1)
    );
    assert_eq!(
        range(Some(i64::MIN + 1), Some(i64::MAX), true, None).span(),
        Some(u64::MAX)
    );
    // 2^64 rowids do not fit in a u64: unknown, not wrapped.
    assert_eq!(
        range(Some(i64::MIN), Some(i64::MAX), true, None).span(),
        None
    );
    assert_eq!(range(Some(5), Some(4), true, None).span(), None);
    assert_eq!(range(None, Some(4), true, None).span(), None);
    let halves = [
        range(Some(i64::MIN), Some(-1), true, None),
        range(Some(0), Some(i64::MAX - 1), true, None),
    ];
    assert_eq!(most_rows(&halves), Some(u64::MAX));
    let whole = [
        halves[0].clone(),
        range(Some(0), Some(i64::MAX), true, None),
    ];
    assert_eq!(most_rows(&whole), None, "the sum overflows");
    assert_eq!(most_rows(&[]), Some(0));
    assert!(range(Some(i64::MIN), Some(i64::MAX), true, None)
        .describe("t")
        .contains("at most 18446744073709551616 rows"));
}

#[test]
fn pieces_at_the_ends_of_the_rowid_range_split_without_overflow() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE t(x); INSERT INTO t(rowid) VALUES ({}), ({}), (0), ({}), ({});",
        i64::MIN,
        i64::MIN + 2,
        i64::MAX - 2,
        i64::MAX
    ))
    .unwrap();
    let q = Queries {
        conn: &conn,
        table: "t".into(),
    };
    let piece = |first, last| Piece {
        first,
        last,
        first_exact: true,
        last_exact: true,
        filled: false,
        page: 7,
    };
    let bounds = |pieces: Vec<Piece>| -> Vec<(Option<i64>, Option<i64>)> {
        pieces.iter().map(|p| (p.first, p.last)).collect()
    };
    // Recovered rows at both ends: what lies between them is left, nothing past them.
    assert_eq!(
        bounds(subtract_recovered(&q, piece(None, None))),
        [
            (Some(i64::MIN + 1), Some(i64::MIN + 1)),
            (Some(i64::MIN + 3), Some(-1)),
            (Some(1), Some(i64::MAX - 3)),
            (Some(i64::MAX - 1), Some(i64::MAX - 1)),
        ]
    );
    assert_eq!(
        bounds(subtract_recovered(
            &q,
            piece(Some(i64::MAX), Some(i64::MAX))
        )),
        []
    );
    assert_eq!(
        bounds(subtract_recovered(
            &q,
            piece(Some(i64::MIN), Some(i64::MIN))
        )),
        []
    );
}
