//! Records: a header of serial types followed by the values they describe.

use super::varint;

/// One decoded value, borrowing text and blob bytes from the payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// Text in the database's encoding (not yet converted).
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// The header size varint is missing or larger than the payload.
    BadHeader,
    /// A serial type of 10 or 11 (reserved) appears.
    ReservedSerialType,
    /// A field lies beyond 4 GiB into the payload (SQLite's own limit is 2 GiB).
    TooLarge,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::BadHeader => write!(f, "record header is damaged"),
            RecordError::ReservedSerialType => write!(f, "record uses a reserved serial type"),
            RecordError::TooLarge => write!(f, "record is larger than SQLite allows"),
        }
    }
}

/// How much of a record the payload held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Number of fields the header declares.
    pub fields: usize,
    /// Whether every field's value was inside the payload (false when the payload was cut short,
    /// e.g. by a lost overflow page: the missing fields are then pushed as `Null`).
    pub complete: bool,
    /// Whether the body is exactly as long as the header says (a check of plausibility).
    pub exact_length: bool,
    /// The first field not wholly inside the payload, and the byte offset where it starts.
    pub first_missing: Option<(usize, usize)>,
}

/// SQLite cannot make a record with more fields than this (its hard column limit, plus one
/// for an index's rowid): a header that says more is damage.
pub(crate) const MAX_FIELDS: usize = 32768;

/// Bytes a value of this serial type occupies in the body.
pub fn serial_type_len(serial: u64) -> Option<u64> {
    Some(match serial {
        0 | 8 | 9 => 0,
        1 => 1,
        2 => 2,
        3 => 3,
        4 => 4,
        5 => 6,
        6 | 7 => 8,
        10 | 11 => return None,
        n => (n - 12) / 2,
    })
}

fn int_be(bytes: &[u8]) -> i64 {
    let mut v: i64 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for b in bytes {
        v = (v << 8) | i64::from(*b);
    }
    v
}

fn value_of(serial: u64, body: &[u8]) -> Value<'_> {
    match serial {
        0 => Value::Null,
        1..=6 => Value::Integer(int_be(body)),
        7 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(body);
            Value::Real(f64::from_bits(u64::from_be_bytes(a)))
        }
        8 => Value::Integer(0),
        9 => Value::Integer(1),
        n if n % 2 == 0 => Value::Blob(body),
        _ => Value::Text(body),
    }
}

/// One field of a record as a position in the payload, so callers can keep a reusable
/// buffer of fields without tying it to the payload's lifetime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field {
    Null,
    Integer(i64),
    Real(f64),
    Text { start: u32, len: u32 },
    Blob { start: u32, len: u32 },
}

impl Field {
    /// The value this field has in `payload` (the payload it was decoded from).
    pub fn value<'a>(&self, payload: &'a [u8]) -> Value<'a> {
        let span = |start: u32, len: u32| {
            let start = start as usize;
            payload.get(start..start + len as usize).unwrap_or(&[])
        };
        match *self {
            Field::Null => Value::Null,
            Field::Integer(i) => Value::Integer(i),
            Field::Real(r) => Value::Real(r),
            Field::Text { start, len } => Value::Text(span(start, len)),
            Field::Blob { start, len } => Value::Blob(span(start, len)),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Field::Null)
    }
}

fn field_of(serial: u64, start: usize, body: &[u8]) -> Result<Field, RecordError> {
    let span = (
        u32::try_from(start).map_err(|_| RecordError::TooLarge)?,
        u32::try_from(body.len()).map_err(|_| RecordError::TooLarge)?,
    );
    Ok(match value_of(serial, body) {
        Value::Null => Field::Null,
        Value::Integer(i) => Field::Integer(i),
        Value::Real(r) => Field::Real(r),
        Value::Text(_) => Field::Text {
            start: span.0,
            len: span.1,
        },
        Value::Blob(_) => Field::Blob {
            start: span.0,
            len: span.1,
        },
    })
}

/// Decodes `payload` into `out` (cleared first). A payload shorter than its header promises
/// yields the fields that are wholly present and `complete: false`; the rest are `Null`.
pub fn decode_fields(payload: &[u8], out: &mut Vec<Field>) -> Result<Decoded, RecordError> {
    out.clear();
    scan(payload, |field| {
        out.push(match field {
            Some((serial, start, bytes)) => field_of(serial, start, bytes)?,
            None => Field::Null,
        });
        Ok(())
    })
}

/// What [`decode_fields`] says of `payload`, without decoding a value: for a walk that only
/// asks whether its records read whole.
pub fn shape(payload: &[u8]) -> Result<Decoded, RecordError> {
    scan(payload, |field| match field {
        Some((_, start, bytes)) if u32::try_from(start.max(bytes.len())).is_err() => {
            Err(RecordError::TooLarge)
        }
        _ => Ok(()),
    })
}

/// Reads the header of `payload` and hands each field to `each`: its serial type, where its
/// value starts and its bytes, or `None` from the first field not wholly in `payload` on.
fn scan<'a>(
    payload: &'a [u8],
    mut each: impl FnMut(Option<(u64, usize, &'a [u8])>) -> Result<(), RecordError>,
) -> Result<Decoded, RecordError> {
    let (header_len, mut at) = varint::read(payload).ok_or(RecordError::BadHeader)?;
    let header_len = usize::try_from(header_len).map_err(|_| RecordError::BadHeader)?;
    if header_len < at || header_len > payload.len() {
        return Err(RecordError::BadHeader);
    }
    let mut body = header_len;
    let (mut fields, mut first_missing) = (0usize, None);
    while at < header_len {
        let (serial, next) = varint::read_at(payload, at).ok_or(RecordError::BadHeader)?;
        if next > header_len {
            return Err(RecordError::BadHeader);
        }
        at = next;
        if fields >= MAX_FIELDS {
            return Err(RecordError::BadHeader);
        }
        let len = serial_type_len(serial).ok_or(RecordError::ReservedSerialType)?;
        let end = (body as u64).saturating_add(len);
        let end = usize::try_from(end).unwrap_or(usize::MAX);
        match payload.get(body..end) {
            Some(bytes) if first_missing.is_none() => {
                each(Some((serial, body, bytes)))?;
                body = end;
            }
            _ => {
                first_missing.get_or_insert((fields, body));
                each(None)?;
            }
        }
        fields += 1;
    }
    Ok(Decoded {
        fields,
        complete: first_missing.is_none(),
        exact_length: first_missing.is_none() && body == payload.len(),
        first_missing,
    })
}

/// Calls `each` with every value of a whole record, in order, and returns how many there
/// were; `None` unless the header is well formed and the values fill `payload` exactly (a
/// record cut short, or followed by bytes no field holds, is not whole).
pub fn each_value<'a>(payload: &'a [u8], mut each: impl FnMut(Value<'a>)) -> Option<usize> {
    let (header_len, mut at) = varint::read(payload)?;
    let header_len = usize::try_from(header_len).ok()?;
    if header_len < at || header_len > payload.len() {
        return None;
    }
    let (mut body, mut fields) = (header_len, 0usize);
    while at < header_len {
        let (serial, next) = varint::read_at(payload, at)?;
        fields += 1;
        if next > header_len || fields > MAX_FIELDS {
            return None;
        }
        at = next;
        let end = body.checked_add(usize::try_from(serial_type_len(serial)?).ok()?)?;
        each(value_of(serial, payload.get(body..end)?));
        body = end;
    }
    (body == payload.len()).then_some(fields)
}

/// Where each field of a record `total` bytes long lies, from its header alone (which must
/// be within `bytes`, the record's first bytes): `(serial type, offset of its value)` into
/// `out`, no value decoded. `None` unless the header is well formed and its values fill the
/// record exactly.
pub fn layout(bytes: &[u8], total: u64, out: &mut Vec<(u64, usize)>) -> Option<()> {
    out.clear();
    let (header_len, mut at) = varint::read(bytes)?;
    let header_len = usize::try_from(header_len).ok()?;
    if header_len < at || header_len > bytes.len() {
        return None;
    }
    let mut body = header_len as u64;
    while at < header_len {
        let (serial, next) = varint::read_at(bytes, at)?;
        if next > header_len || out.len() >= MAX_FIELDS {
            return None;
        }
        out.push((serial, usize::try_from(body).ok()?));
        body = body.checked_add(serial_type_len(serial)?)?;
        at = next;
    }
    (body == total).then_some(())
}

/// The first value of a record whose header and first value lie in `bytes`, decoding
/// nothing else; `None` when they do not, or the record has no field.
pub fn first_value(bytes: &[u8]) -> Option<Value<'_>> {
    let (header_len, at) = varint::read(bytes)?;
    let header_len = usize::try_from(header_len).ok()?;
    let (serial, next) = varint::read_at(bytes, at)?;
    if next > header_len || header_len > bytes.len() {
        return None;
    }
    value_at(bytes, serial, header_len)
}

/// The value of serial type `serial` at `offset` in `record`; `None` if it is not all there.
pub fn value_at(record: &[u8], serial: u64, offset: usize) -> Option<Value<'_>> {
    let len = usize::try_from(serial_type_len(serial)?).ok()?;
    Some(value_of(
        serial,
        record.get(offset..offset.checked_add(len)?)?,
    ))
}

/// Decodes `payload` into values borrowing from it (convenient where allocation is no concern).
pub fn decode<'a>(payload: &'a [u8], out: &mut Vec<Value<'a>>) -> Result<Decoded, RecordError> {
    let mut fields = Vec::new();
    let decoded = decode_fields(payload, &mut fields)?;
    out.clear();
    out.extend(fields.iter().map(|f| f.value(payload)));
    Ok(decoded)
}

/// Just the serial types of a record's header (for cheap shape checks), into `out`.
pub fn serial_types(payload: &[u8], out: &mut Vec<u64>) -> Result<(), RecordError> {
    out.clear();
    let (header_len, mut at) = varint::read(payload).ok_or(RecordError::BadHeader)?;
    let header_len = usize::try_from(header_len).map_err(|_| RecordError::BadHeader)?;
    if header_len < at || header_len > payload.len() {
        return Err(RecordError::BadHeader);
    }
    while at < header_len {
        let (serial, next) = varint::read_at(payload, at).ok_or(RecordError::BadHeader)?;
        if next > header_len || serial_type_len(serial).is_none() || out.len() >= MAX_FIELDS {
            return Err(RecordError::BadHeader);
        }
        out.push(serial);
        at = next;
    }
    Ok(())
}

/// Where the field holding byte `offset` of the record's body begins and ends, read from the
/// header at the start of `payload` (which may hold only a prefix of the record); `None` when
/// the header is not whole there or `offset` is in the header or past the record.
pub fn field_span(payload: &[u8], offset: usize) -> Option<std::ops::Range<usize>> {
    let mut types = Vec::new();
    serial_types(payload, &mut types).ok()?;
    let (header_len, _) = varint::read(payload)?;
    let mut start = usize::try_from(header_len).ok()?;
    if offset < start {
        return None;
    }
    for serial in types {
        let end = start.checked_add(usize::try_from(serial_type_len(serial)?).ok()?)?;
        if offset < end {
            return Some(start..end);
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole record's values, as `decode` gives them; anything not whole is refused.
    #[test]
    fn each_value_reads_whole_records_only() {
        // Header: 4 bytes (size, int8, text of 2, NULL); body: 7, "hi".
        let record = [4u8, 1, 17, 0, 7, b'h', b'i'];
        let mut seen = Vec::new();
        assert_eq!(each_value(&record, |v| seen.push(v)), Some(3));
        assert_eq!(seen, [Value::Integer(7), Value::Text(b"hi"), Value::Null]);
        assert_eq!(each_value(&record[..6], |_| ()), None, "cut short");
        assert_eq!(
            each_value(&[&record[..], &[0]].concat(), |_| ()),
            None,
            "a byte too many"
        );
        assert_eq!(each_value(&[2u8, 10], |_| ()), None, "reserved serial type");
        assert_eq!(
            each_value(&[9u8, 1], |_| ()),
            None,
            "header past the payload"
        );
    }

    /// A record's layout comes from its header alone, whatever part of the body is at hand;
    /// a value is read only where it is all there.
    #[test]
    fn layout_places_fields_from_the_header() {
        // Header: 4 bytes (size, int8, text of 2, NULL); body: 7, "hi".
        let record = [4u8, 1, 17, 0, 7, b'h', b'i'];
        let mut out = Vec::new();
        assert_eq!(layout(&record, 7, &mut out), Some(()));
        assert_eq!(out, [(1, 4), (17, 5), (0, 7)]);
        assert_eq!(value_at(&record, 17, 5), Some(Value::Text(b"hi")));
        assert_eq!(
            layout(&record[..5], 7, &mut out),
            Some(()),
            "the body cut short"
        );
        assert_eq!(value_at(&record[..5], 17, 5), None, "a value not all there");
        assert_eq!(layout(&record, 8, &mut out), None, "a byte too many");
        assert_eq!(layout(&record, 6, &mut out), None, "a byte too few");
        assert_eq!(layout(&record[..3], 7, &mut out), None, "header cut short");
        assert_eq!(
            layout(&[2u8, 10], 2, &mut out),
            None,
            "reserved serial type"
        );
    }

    proptest::proptest! {
        /// A walk of shapes only learns of a record what a decode does: well formed records
        /// cut anywhere, and bytes at random.
        #[test]
        fn shape_says_what_decode_says(
            values in proptest::collection::vec((0u64..40, proptest::collection::vec(0u8..=255, 0..20)), 0..8),
            cut in 0usize..200,
            noise in proptest::collection::vec(0u8..=255, 0..40),
        ) {
            let mut header = Vec::new();
            let mut body = Vec::new();
            for (serial, bytes) in &values {
                let len = usize::try_from(serial_type_len(*serial).unwrap_or(0)).unwrap();
                header.extend(varint::encode(*serial));
                body.extend((0..len).map(|i| bytes.get(i).copied().unwrap_or(7)));
            }
            let mut record = varint::encode(header.len() as u64 + 1);
            record.extend(header);
            record.extend(body);
            let cut = record[..cut.min(record.len())].to_vec();
            for payload in [&record, &cut, &noise] {
                let mut fields = Vec::new();
                proptest::prop_assert_eq!(shape(payload), decode_fields(payload, &mut fields));
            }
        }
    }

    #[test]
    fn the_field_holding_a_byte_is_found_with_its_span() {
        // header: len 4, types text(3), blob(2), int8; body "abc", [0, 0], 7
        let p = [4u8, 19, 16, 1, b'a', b'b', b'c', 0, 0, 7];
        assert_eq!(field_span(&p, 2), None, "in the header");
        assert_eq!(field_span(&p, 4), Some(4..7));
        assert_eq!(field_span(&p, 6), Some(4..7));
        assert_eq!(field_span(&p, 8), Some(7..9));
        assert_eq!(field_span(&p, 9), Some(9..10));
        assert_eq!(field_span(&p, 10), None, "past the record");
        // Only a prefix of the body present: the header still says where fields lie.
        assert_eq!(field_span(&p[..8], 7), Some(7..9));
    }

    #[test]
    fn decodes_every_storage_class() {
        // header: len 7, types NULL, int8, float, text(3), blob(2), int 1
        let mut p = vec![7, 0, 1, 7, 19, 16, 9];
        p.push(0xfe); // -2
        p.extend_from_slice(&1.5f64.to_bits().to_be_bytes());
        p.extend_from_slice(b"abc");
        p.extend_from_slice(&[1, 2]);
        let mut out = Vec::new();
        let d = decode(&p, &mut out).unwrap();
        assert!(d.complete && d.exact_length);
        assert_eq!(
            out,
            vec![
                Value::Null,
                Value::Integer(-2),
                Value::Real(1.5),
                Value::Text(b"abc"),
                Value::Blob(&[1, 2]),
                Value::Integer(1)
            ]
        );
    }

    #[test]
    fn truncated_payload_is_flagged_not_invented() {
        let p = [3, 1, 21, 5, b'x'];
        let mut out = Vec::new();
        let d = decode(&p, &mut out).unwrap();
        assert!(!d.complete);
        assert_eq!(out, vec![Value::Integer(5), Value::Null]);
    }

    #[test]
    fn bad_headers_are_errors() {
        let mut out = Vec::new();
        assert_eq!(decode(&[], &mut out), Err(RecordError::BadHeader));
        assert_eq!(decode(&[9, 1], &mut out), Err(RecordError::BadHeader));
        assert_eq!(
            decode(&[2, 10], &mut out),
            Err(RecordError::ReservedSerialType)
        );
    }

    #[test]
    fn wide_integers_sign_extend() {
        let p = [2, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe];
        let mut out = Vec::new();
        decode(&p, &mut out).unwrap();
        assert_eq!(out, vec![Value::Integer(-2)]);
    }
}
