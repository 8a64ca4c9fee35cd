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

impl Value<'_> {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// The header size varint is missing or larger than the payload.
    BadHeader,
    /// A serial type of 10 or 11 (reserved) appears.
    ReservedSerialType,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::BadHeader => write!(f, "record header is damaged"),
            RecordError::ReservedSerialType => write!(f, "record uses a reserved serial type"),
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
}

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

/// Decodes `payload` into `out` (cleared first). A payload shorter than its header promises
/// yields the fields that are wholly present and `complete: false`; the rest are `Null`.
pub fn decode<'a>(payload: &'a [u8], out: &mut Vec<Value<'a>>) -> Result<Decoded, RecordError> {
    out.clear();
    let (header_len, mut at) = varint::read(payload).ok_or(RecordError::BadHeader)?;
    let header_len = usize::try_from(header_len).map_err(|_| RecordError::BadHeader)?;
    if header_len < at || header_len > payload.len() {
        return Err(RecordError::BadHeader);
    }
    let mut body = header_len;
    let mut complete = true;
    while at < header_len {
        let (serial, next) = varint::read_at(payload, at).ok_or(RecordError::BadHeader)?;
        if next > header_len {
            return Err(RecordError::BadHeader);
        }
        at = next;
        let len = serial_type_len(serial).ok_or(RecordError::ReservedSerialType)?;
        let end = (body as u64).saturating_add(len);
        match payload.get(body..end.min(usize::MAX as u64) as usize) {
            Some(bytes) if complete => {
                out.push(value_of(serial, bytes));
                body = end as usize;
            }
            _ => {
                complete = false;
                out.push(Value::Null);
            }
        }
    }
    Ok(Decoded {
        fields: out.len(),
        complete,
        exact_length: complete && body == payload.len(),
    })
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
        if next > header_len || serial_type_len(serial).is_none() {
            return Err(RecordError::BadHeader);
        }
        out.push(serial);
        at = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(decode(&[2, 10], &mut out), Err(RecordError::ReservedSerialType));
    }

    #[test]
    fn wide_integers_sign_extend() {
        let p = [2, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe];
        let mut out = Vec::new();
        decode(&p, &mut out).unwrap();
        assert_eq!(out, vec![Value::Integer(-2)]);
    }
}
