//! One index entry (or table row) as the fast proof sees it: its values in a canonical byte
//! encoding, hashed into an order-independent digest and compared with the entry before it
//! the way SQLite orders keys.
//!
//! The encoding keeps each value's storage class and its exact bytes (an integer's 64 bits, a
//! real's IEEE bits, text and blobs byte for byte), so two entries encode the same only when
//! SQLite holds the same values. Values come from SQLite itself, which applies the column's
//! affinity on both sides (a REAL column's integral value stored as an integer reads as a
//! real from the table and from the index alike).

use rusqlite::types::ValueRef;
use std::cmp::Ordering;
use std::hash::BuildHasher;

/// How SQLite compares text in one column of a key: the built-in collations. An index with
/// any other collation is not proved by streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Collation {
    Binary,
    NoCase,
    Rtrim,
}

impl Collation {
    pub(crate) fn named(name: &str) -> Option<Collation> {
        match name.to_ascii_uppercase().as_str() {
            "BINARY" => Some(Collation::Binary),
            "NOCASE" => Some(Collation::NoCase),
            "RTRIM" => Some(Collation::Rtrim),
            _ => None,
        }
    }

    fn compare(self, a: &[u8], b: &[u8]) -> Ordering {
        match self {
            Collation::Binary => a.cmp(b),
            Collation::NoCase => {
                let n = a.len().min(b.len());
                a[..n]
                    .iter()
                    .zip(&b[..n])
                    .map(|(x, y)| x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()))
                    .find(|o| *o != Ordering::Equal)
                    .unwrap_or_else(|| a.len().cmp(&b.len()))
            }
            Collation::Rtrim => {
                let trim = |s: &'_ [u8]| -> usize {
                    s.iter().rposition(|&c| c != b' ').map_or(0, |p| p + 1)
                };
                a[..trim(a)].cmp(&b[..trim(b)])
            }
        }
    }
}

/// How one column of a key is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyColumn {
    pub(crate) collation: Collation,
    pub(crate) descending: bool,
}

/// A value decoded back from the canonical encoding.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

const NULL: u8 = 0;
const INTEGER: u8 = 1;
const REAL: u8 = 2;
const TEXT: u8 = 3;
const BLOB: u8 = 4;

/// Appends `value` to `buf` in the canonical encoding.
pub(crate) fn encode(buf: &mut Vec<u8>, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => buf.push(NULL),
        ValueRef::Integer(i) => {
            buf.push(INTEGER);
            buf.extend_from_slice(&i.to_le_bytes());
        }
        ValueRef::Real(r) => {
            buf.push(REAL);
            buf.extend_from_slice(&r.to_bits().to_le_bytes());
        }
        ValueRef::Text(t) => {
            buf.push(TEXT);
            buf.extend_from_slice(&(t.len() as u64).to_le_bytes());
            buf.extend_from_slice(t);
        }
        ValueRef::Blob(b) => {
            buf.push(BLOB);
            buf.extend_from_slice(&(b.len() as u64).to_le_bytes());
            buf.extend_from_slice(b);
        }
    }
}

/// The first value of an encoded entry when it is NULL (`Some(None)`) or an integer; `None`
/// when it is anything else.
pub(crate) fn first_integer(buf: &[u8]) -> Option<Option<i64>> {
    match decode(buf).next()? {
        Value::Null => Some(None),
        Value::Integer(i) => Some(Some(i)),
        _ => None,
    }
}

/// The values of an encoded entry, in order. Stops at the first byte that is not a value
/// this module wrote.
fn decode(mut buf: &[u8]) -> impl Iterator<Item = Value<'_>> {
    std::iter::from_fn(move || {
        let (&tag, rest) = buf.split_first()?;
        let word = |rest: &[u8]| -> Option<u64> {
            Some(u64::from_le_bytes(rest.get(..8)?.try_into().ok()?))
        };
        let (value, used) = match tag {
            NULL => (Value::Null, 0),
            INTEGER => (
                Value::Integer(i64::from_le_bytes(word(rest)?.to_le_bytes())),
                8,
            ),
            REAL => (Value::Real(f64::from_bits(word(rest)?)), 8),
            TEXT | BLOB => {
                let len = usize::try_from(word(rest)?).ok()?;
                let bytes = rest.get(8..8usize.checked_add(len)?)?;
                let v = if tag == TEXT {
                    Value::Text(bytes)
                } else {
                    Value::Blob(bytes)
                };
                (v, 8 + len)
            }
            _ => return None,
        };
        buf = rest.get(used..)?;
        Some(value)
    })
}

/// Compares two encoded entries over their first `columns.len()` values, as SQLite orders
/// index keys. `Equal` with `has_null` true means some of those values are NULL (which a
/// UNIQUE index allows to repeat).
pub(crate) fn compare(mut a: &[u8], mut b: &[u8], columns: &[KeyColumn]) -> (Ordering, bool) {
    let mut has_null = false;
    for col in columns {
        let (Some((x, rest_a)), Some((y, rest_b))) = (split_value(a), split_value(b)) else {
            break;
        };
        (a, b) = (rest_a, rest_b);
        // Neighbouring keys mostly share their first values: the same bytes are the same
        // value, under every collation, without decoding them.
        if same_bytes(x, y) {
            has_null |= x.first() == Some(&NULL);
            continue;
        }
        let (Some(x), Some(y)) = (decode(x).next(), decode(y).next()) else {
            break;
        };
        has_null |= matches!(x, Value::Null) || matches!(y, Value::Null);
        let order = compare_values(x, y, col.collation);
        let order = if col.descending {
            order.reverse()
        } else {
            order
        };
        if order != Ordering::Equal {
            return (order, has_null);
        }
    }
    (Ordering::Equal, has_null)
}

/// Whether two encoded values are the same bytes: a number's nine compared as two words,
/// without a call to `memcmp` for so few.
fn same_bytes(x: &[u8], y: &[u8]) -> bool {
    match (x.split_first(), y.split_first()) {
        (Some((tx, wx)), Some((ty, wy))) if wx.len() == 8 && wy.len() == 8 => {
            tx == ty && wx.iter().zip(wy).all(|(a, b)| a == b)
        }
        _ => x == y,
    }
}

/// The first encoded value of `buf`, whole, and what follows it; `None` at the end or at a
/// byte this module did not write.
fn split_value(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = match *buf.first()? {
        NULL => 1,
        INTEGER | REAL => 9,
        TEXT | BLOB => {
            let n = u64::from_le_bytes(buf.get(1..9)?.try_into().ok()?);
            usize::try_from(n).ok()?.checked_add(9)?
        }
        _ => return None,
    };
    (len <= buf.len()).then(|| buf.split_at(len))
}

/// SQLite's order of values: NULL, then numbers (integers and reals compared by value), then
/// text (by the collation), then blobs (byte by byte).
fn compare_values(a: Value<'_>, b: Value<'_>, collation: Collation) -> Ordering {
    fn class(v: &Value<'_>) -> u8 {
        match v {
            Value::Null => 0,
            Value::Integer(_) | Value::Real(_) => 1,
            Value::Text(_) => 2,
            Value::Blob(_) => 3,
        }
    }
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(&y),
        (Value::Real(x), Value::Real(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (Value::Integer(i), Value::Real(r)) => int_real(i, r),
        (Value::Real(r), Value::Integer(i)) => int_real(i, r).reverse(),
        (Value::Text(x), Value::Text(y)) => collation.compare(x, y),
        (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
        (x, y) => class(&x).cmp(&class(&y)),
    }
}

/// An integer against a real, exactly (no rounding of large integers to a double).
fn int_real(i: i64, r: f64) -> Ordering {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if r.is_nan() {
        return Ordering::Greater;
    }
    if r >= TWO_63 {
        return Ordering::Less;
    }
    if r < -TWO_63 {
        return Ordering::Greater;
    }
    let whole = r.trunc();
    // In range and integral, so exactly representable as an i64.
    #[allow(clippy::cast_possible_truncation)]
    let y = whole as i64;
    i.cmp(&y).then_with(|| {
        let frac = r - whole;
        if frac > 0.0 {
            Ordering::Less
        } else if frac < 0.0 {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    })
}

/// A keyed 128-bit hash of encoded entries (XXH3-128 under a secret drawn at random for each
/// verification), summed with wrapping: the digest of a multiset, independent of order.
#[derive(Clone)]
pub(crate) struct Keys {
    secret: [u8; SECRET_LEN],
}

/// XXH3's default secret length: every input length reads distinct secret bytes.
const SECRET_LEN: usize = 192;

impl Keys {
    pub(crate) fn new() -> Keys {
        // A secret no file can know in advance: drawn from the process's own random hashing
        // keys, one 64-bit word at a time.
        let random = std::collections::hash_map::RandomState::new();
        let mut secret = [0u8; SECRET_LEN];
        for (i, word) in secret.chunks_exact_mut(8).enumerate() {
            word.copy_from_slice(&random.hash_one(i).to_le_bytes());
        }
        Keys { secret }
    }

    /// One keyed 128-bit hash of the entry.
    pub(crate) fn hash(&self, entry: &[u8]) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_secret(entry, &self.secret)
    }
}

/// The digest of a multiset of entries, and how many there are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Digest {
    pub(crate) sum: u128,
    pub(crate) count: u64,
}

impl Digest {
    pub(crate) fn add(&mut self, hash: u128) {
        self.sum = self.sum.wrapping_add(hash);
        self.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(values: &[ValueRef<'_>]) -> Vec<u8> {
        let mut buf = Vec::new();
        for v in values {
            encode(&mut buf, *v);
        }
        buf
    }

    const ASC: KeyColumn = KeyColumn {
        collation: Collation::Binary,
        descending: false,
    };

    #[test]
    fn values_order_as_sqlite_orders_them() {
        use ValueRef::*;
        let ordered = [
            Null,
            Integer(i64::MIN),
            Real(-1.5),
            Integer(-1),
            Real(0.5),
            Integer(1),
            Real(1.25),
            Integer(i64::MAX),
            Real(1e19),
            Text(b"A"),
            Text(b"a"),
            Text(b"ab"),
            Blob(b""),
            Blob(b"\x00"),
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                let (order, _) = compare(&enc(&[*a]), &enc(&[*b]), &[ASC]);
                assert_eq!(order, i.cmp(&j), "{a:?} against {b:?}");
            }
        }
        let (order, _) = compare(&enc(&[Integer(3)]), &enc(&[Real(3.0)]), &[ASC]);
        assert_eq!(order, Ordering::Equal, "3 and 3.0 are the same key");
    }

    #[test]
    fn collations_and_descending_columns() {
        let text = |s: &'static str| enc(&[ValueRef::Text(s.as_bytes())]);
        let col = |collation, descending| KeyColumn {
            collation,
            descending,
        };
        let c = |a, b, k| compare(&text(a), &text(b), &[k]).0;
        assert_eq!(
            c("ABC", "abd", col(Collation::NoCase, false)),
            Ordering::Less
        );
        assert_eq!(
            c("ABC", "abc", col(Collation::NoCase, false)),
            Ordering::Equal
        );
        assert_eq!(
            c("ABC", "abc", col(Collation::Binary, false)),
            Ordering::Less
        );
        assert_eq!(
            c("ab  ", "ab", col(Collation::Rtrim, false)),
            Ordering::Equal
        );
        assert_eq!(
            c("ab ", "ab", col(Collation::Binary, false)),
            Ordering::Greater
        );
        assert_eq!(c("a", "b", col(Collation::Binary, true)), Ordering::Greater);
        assert_eq!(Collation::named("nocase"), Some(Collation::NoCase));
        assert_eq!(Collation::named("my_own"), None);
    }

    #[test]
    fn nulls_are_reported_for_unique_keys() {
        let a = enc(&[ValueRef::Null, ValueRef::Integer(1)]);
        let b = enc(&[ValueRef::Null, ValueRef::Integer(2)]);
        assert_eq!(compare(&a, &b, &[ASC]), (Ordering::Equal, true));
        assert_eq!(compare(&a, &b, &[ASC, ASC]), (Ordering::Less, true));
    }

    #[test]
    fn the_digest_is_the_multiset() {
        let keys = Keys::new();
        let entries = [
            enc(&[ValueRef::Integer(1)]),
            enc(&[ValueRef::Real(1.0)]),
            enc(&[ValueRef::Text(b"1")]),
            enc(&[ValueRef::Blob(b"1")]),
        ];
        let mut forward = Digest::default();
        let mut backward = Digest::default();
        for e in &entries {
            forward.add(keys.hash(e));
        }
        for e in entries.iter().rev() {
            backward.add(keys.hash(e));
        }
        assert_eq!(forward, backward);
        let hashes: std::collections::HashSet<u128> =
            entries.iter().map(|e| keys.hash(e)).collect();
        assert_eq!(
            hashes.len(),
            entries.len(),
            "storage classes are kept apart"
        );
        let mut one_less = Digest::default();
        for e in &entries[1..] {
            one_less.add(keys.hash(e));
        }
        one_less.add(keys.hash(&entries[1]));
        assert_eq!(one_less.count, forward.count);
        assert_ne!(one_less.sum, forward.sum, "a value swapped for another");
    }
}
