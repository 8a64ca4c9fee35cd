//! SQLite's variable-length integers: 1 to 9 bytes, big-endian, 7 bits per byte with the high
//! bit as "more follows", except the ninth byte which contributes all 8 bits.

/// Decodes a varint at the start of `bytes`. Returns the value and the number of bytes used,
/// or `None` if `bytes` ends before the varint does.
#[inline]
pub fn read(bytes: &[u8]) -> Option<(u64, usize)> {
    // Serial types and most lengths take one byte: decoded here, without the loop.
    match bytes.first() {
        Some(&byte) if byte < 0x80 => Some((u64::from(byte), 1)),
        Some(_) => read_long(bytes),
        None => None,
    }
}

fn read_long(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for i in 0..9 {
        let byte = *bytes.get(i)?;
        if i == 8 {
            return Some(((value << 8) | u64::from(byte), 9));
        }
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Decodes a varint at `offset`, returning the value and the offset just past it.
#[inline]
pub fn read_at(bytes: &[u8], offset: usize) -> Option<(u64, usize)> {
    let (value, len) = read(bytes.get(offset..)?)?;
    Some((value, offset + len))
}

/// The signed integer a varint stands for: rowids are stored as the 64 bits of an `i64` in
/// two's complement, so a value above `i64::MAX` is a negative rowid (not damage).
pub fn to_i64(value: u64) -> i64 {
    i64::from_be_bytes(value.to_be_bytes())
}

/// Encodes `value` as a varint (used by tests and fixtures that build pages by hand).
pub fn encode(value: u64) -> Vec<u8> {
    if value > 0x00ff_ffff_ffff_ffff {
        let mut out = Vec::with_capacity(9);
        let high = value >> 8;
        for shift in (0..8).rev() {
            out.push((((high >> (shift * 7)) & 0x7f) as u8) | 0x80);
        }
        out.push((value & 0xff) as u8);
        return out;
    }
    let mut groups = Vec::with_capacity(8);
    let mut v = value;
    loop {
        groups.push((v & 0x7f) as u8);
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    groups.reverse();
    let last = groups.len() - 1;
    for g in &mut groups[..last] {
        *g |= 0x80;
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        assert_eq!(read(&[0x00]), Some((0, 1)));
        assert_eq!(read(&[0x7f]), Some((127, 1)));
        assert_eq!(read(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(read(&[0xff; 9]), Some((u64::MAX, 9)));
        assert_eq!(read(&[0x81]), None);
        assert_eq!(read(&[]), None);
    }

    #[test]
    fn round_trip() {
        for v in [
            0u64,
            1,
            127,
            128,
            240,
            2287,
            67823,
            1 << 32,
            1 << 56,
            (1 << 56) - 1,
            u64::MAX,
        ] {
            let enc = encode(v);
            assert_eq!(read(&enc), Some((v, enc.len())), "value {v}");
        }
    }
}
