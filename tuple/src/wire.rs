//! The byte form of tuple values: plain msgpack (nil, bool, int, float, str, bin, array), each in
//! its smallest form, exactly as rmp-serde writes the same values.
//!
//! Batches between executors hold tuples in this form ([`crate::batch::Batch`]) and bolts read
//! them in place through [`ValueRef`]s, so no per-tuple object is built, moved or dropped; the TCP
//! transport's frames carry the same value bytes, so it copies them instead of re-encoding.

use crate::value::{StableHasher, Value, Values};
use std::fmt;

/// Deepest nesting of lists accepted when bytes are checked ([`check_value`]).
pub const MAX_DEPTH: usize = 64;

/// Where encoded bytes go: a `Vec<u8>`, or the room of a [`crate::batch::Batch`] (which writes
/// fixed-size pieces with plain stores instead of a call per piece).
pub trait Out {
    fn put(&mut self, b: &[u8]);
    #[inline(always)]
    fn put_u8(&mut self, b: u8) {
        self.put(&[b]);
    }
}

impl Out for Vec<u8> {
    #[inline(always)]
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    #[inline(always)]
    fn put_u8(&mut self, b: u8) {
        self.push(b);
    }
}

/// msgpack's smallest form of an unsigned integer, as `rmp::encode::write_uint` writes it.
#[inline(always)]
pub fn put_uint<O: Out + ?Sized>(out: &mut O, n: u64) {
    if n < 0x80 {
        out.put_u8(n as u8);
    } else if n <= 0xff {
        out.put(&[0xcc, n as u8]);
    } else if n <= 0xffff {
        out.put_u8(0xcd);
        out.put(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.put_u8(0xce);
        out.put(&(n as u32).to_be_bytes());
    } else {
        out.put_u8(0xcf);
        out.put(&n.to_be_bytes());
    }
}

/// msgpack's marker and length for an integer of each bit length (0-64): the integer itself (one
/// byte) below `fixint_below` bits, else the four markers with 1, 2, 4 and 8 bytes, the first
/// three up to `limits` bits.
const fn class_table(fixint_below: usize, limits: [usize; 3], markers: [u8; 4]) -> [(u8, u8); 65] {
    let mut t = [(0u8, 1u8); 65];
    let mut bits = fixint_below;
    while bits <= 64 {
        t[bits] = if bits <= limits[0] {
            (markers[0], 2)
        } else if bits <= limits[1] {
            (markers[1], 3)
        } else if bits <= limits[2] {
            (markers[2], 5)
        } else {
            (markers[3], 9)
        };
        bits += 1;
    }
    t
}

/// An unsigned integer by its significant bits: a fixint below 8, else 0xcc-0xcf.
const UINT_CLASS: [(u8, u8); 65] = class_table(8, [8, 16, 32], [0xcc, 0xcd, 0xce, 0xcf]);

/// A negative integer by the bits of its magnitude (`!i`): a fixint down to -32, else
/// 0xd0-0xd3.
const NEG_CLASS: [(u8, u8); 65] = class_table(6, [7, 15, 31], [0xd0, 0xd1, 0xd2, 0xd3]);

/// The bytes of an integer `x` (its bits) of class `(marker, len)` as a fixed-size array and how
/// many count: the marker, then the value big-endian (one byte: `x` itself, a fixint).
#[inline(always)]
fn class_bytes(x: u64, (marker, len): (u8, u8)) -> ([u8; 9], usize) {
    let len = usize::from(len);
    let mut b = [0u8; 9];
    let v = x.wrapping_shl(8 * (9 - len as u32));
    b[1..9].copy_from_slice(&v.to_be_bytes());
    b[0] = if len == 1 { x as u8 } else { marker };
    (b, len)
}

/// [`put_uint`]'s bytes as a fixed-size array and how many of them count, for writers that
/// store all nine and keep the length. Without a branch on the size: a running count's size
/// changes from tuple to tuple, which a branch predicts badly.
#[inline(always)]
pub fn uint_bytes(n: u64) -> ([u8; 9], usize) {
    class_bytes(n, UINT_CLASS[(64 - n.leading_zeros()) as usize])
}

/// [`put_value`]'s bytes for an integer as a fixed-size array and how many of them count.
/// Without a branch on the sign or the size: acking's random ids are negative half the time,
/// which a branch mispredicts half the time (docs/performance.md).
#[inline(always)]
pub fn int_bytes(i: i64) -> ([u8; 9], usize) {
    let pos = uint_bytes(i as u64);
    let neg = class_bytes(i as u64, NEG_CLASS[(64 - (!i).leading_zeros()) as usize]);
    if i < 0 { neg } else { pos }
}

/// msgpack's smallest form of a negative integer, as `rmp::encode::write_sint` writes it.
#[inline]
fn put_negative<O: Out + ?Sized>(out: &mut O, i: i64) {
    if i >= -32 {
        out.put_u8(i as i8 as u8);
    } else if i >= i64::from(i8::MIN) {
        out.put(&[0xd0, i as i8 as u8]);
    } else if i >= i64::from(i16::MIN) {
        out.put_u8(0xd1);
        out.put(&(i as i16).to_be_bytes());
    } else if i >= i64::from(i32::MIN) {
        out.put_u8(0xd2);
        out.put(&(i as i32).to_be_bytes());
    } else {
        out.put_u8(0xd3);
        out.put(&i.to_be_bytes());
    }
}

/// An array header (`len` elements follow).
#[inline(always)]
pub fn put_array_len<O: Out + ?Sized>(out: &mut O, len: usize) {
    if len < 16 {
        out.put_u8(0x90 | len as u8);
    } else if len <= 0xffff {
        out.put_u8(0xdc);
        out.put(&(len as u16).to_be_bytes());
    } else {
        out.put_u8(0xdd);
        out.put(&(len as u32).to_be_bytes());
    }
}

/// A string (header and UTF-8 bytes).
#[inline(always)]
pub fn put_str<O: Out + ?Sized>(out: &mut O, s: &str) {
    let n = s.len();
    if n < 32 {
        out.put_u8(0xa0 | n as u8);
    } else if n <= 0xff {
        out.put(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.put_u8(0xda);
        out.put(&(n as u16).to_be_bytes());
    } else {
        out.put_u8(0xdb);
        out.put(&(n as u32).to_be_bytes());
    }
    out.put(s.as_bytes());
}

#[inline]
fn put_bin<O: Out + ?Sized>(out: &mut O, b: &[u8]) {
    let n = b.len();
    if n <= 0xff {
        out.put(&[0xc4, n as u8]);
    } else if n <= 0xffff {
        out.put_u8(0xc5);
        out.put(&(n as u16).to_be_bytes());
    } else {
        out.put_u8(0xc6);
        out.put(&(n as u32).to_be_bytes());
    }
    out.put(b);
}

/// Writes one value.
#[inline]
pub fn put_value<O: Out + ?Sized>(out: &mut O, v: &Value) {
    match v {
        Value::Str(s) => put_str(out, s),
        Value::Int(i) if *i >= 0 => put_uint(out, *i as u64),
        Value::Int(i) => put_negative(out, *i),
        Value::Null => out.put_u8(0xc0),
        Value::Bool(b) => out.put_u8(if *b { 0xc3 } else { 0xc2 }),
        Value::Float(f) => {
            out.put_u8(0xcb);
            out.put(&f.to_bits().to_be_bytes());
        }
        Value::Bytes(b) => put_bin(out, b),
        Value::List(l) => {
            put_array_len(out, l.len());
            for x in l.iter() {
                put_value(out, x);
            }
        }
    }
}

/// Writes the values of a tuple: an array of them.
#[inline]
pub fn put_values<O: Out + ?Sized>(out: &mut O, values: &[Value]) {
    put_array_len(out, values.len());
    for v in values {
        put_value(out, v);
    }
}

/// Writes borrowed values as [`put_values`] writes the owned ones (same bytes).
#[inline(always)]
pub fn put_value_refs<O: Out + ?Sized>(out: &mut O, values: &[ValueRef<'_>]) {
    put_array_len(out, values.len());
    for v in values {
        put_value_ref(out, v);
    }
}

#[inline(always)]
fn put_value_ref<O: Out + ?Sized>(out: &mut O, v: &ValueRef<'_>) {
    match v {
        ValueRef::Str(s) => put_str(out, s),
        ValueRef::Int(i) if *i >= 0 => put_uint(out, *i as u64),
        ValueRef::Int(i) => put_negative(out, *i),
        ValueRef::Null => out.put_u8(0xc0),
        ValueRef::Bool(b) => out.put_u8(if *b { 0xc3 } else { 0xc2 }),
        ValueRef::Float(f) => {
            out.put_u8(0xcb);
            out.put(&f.to_bits().to_be_bytes());
        }
        ValueRef::Bytes(b) => put_bin(out, b),
        ValueRef::List(l) => {
            // The elements are already encoded: copy them after a fresh header.
            put_array_len(out, l.len);
            out.put(l.bytes);
        }
    }
}

/// Why bytes are not a value.
pub type WireError = &'static str;

/// A reader over value bytes. Every length is checked against the bytes left.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    pub b: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.b.len() < n {
            return Err("bytes end inside a value");
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    #[inline]
    pub fn byte(&mut self) -> Result<u8, WireError> {
        let (&m, rest) = self.b.split_first().ok_or("bytes end inside a value")?;
        self.b = rest;
        Ok(m)
    }

    /// A big-endian unsigned integer of `n` bytes (1, 2, 4 or 8: msgpack's widths).
    #[inline]
    pub fn be(&mut self, n: usize) -> Result<u64, WireError> {
        let b = self.take(n)?;
        Ok(match *b {
            [a] => u64::from(a),
            [a, b] => u64::from(u16::from_be_bytes([a, b])),
            [a, b, c, d] => u64::from(u32::from_be_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => u64::from_be_bytes([a, b, c, d, e, f, g, h]),
            _ => b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x)),
        })
    }

    /// An array header; its length is at most the bytes left (each element takes one or more).
    #[inline]
    pub fn array(&mut self) -> Result<usize, WireError> {
        let m = self.byte()?;
        self.array_after(m)
    }

    #[inline]
    pub fn array_after(&mut self, m: u8) -> Result<usize, WireError> {
        let n = match m {
            m @ 0x90..=0x9f => usize::from(m & 0x0f),
            0xdc => self.be(2)? as usize,
            0xdd => self.be(4)? as usize,
            _ => return Err("expected an array"),
        };
        if n > self.b.len() {
            return Err("array longer than its bytes");
        }
        Ok(n)
    }

    #[inline]
    pub fn int_after(&mut self, m: u8) -> Result<i128, WireError> {
        Ok(match m {
            0x00..=0x7f => i128::from(m),
            0xe0..=0xff => i128::from(m as i8),
            0xcc => i128::from(self.be(1)?),
            0xcd => i128::from(self.be(2)?),
            0xce => i128::from(self.be(4)?),
            0xcf => i128::from(self.be(8)?),
            0xd0 => i128::from(self.be(1)? as u8 as i8),
            0xd1 => i128::from(self.be(2)? as u16 as i16),
            0xd2 => i128::from(self.be(4)? as u32 as i32),
            0xd3 => i128::from(self.be(8)? as i64),
            _ => return Err("expected an integer"),
        })
    }

    /// A non-negative integer in any msgpack form.
    #[inline]
    pub fn uint<T: TryFrom<u64>>(&mut self) -> Result<T, WireError> {
        let m = self.byte()?;
        let v = match m {
            0x00..=0x7f => u64::from(m),
            0xcc => self.be(1)?,
            0xcd => self.be(2)?,
            0xce => self.be(4)?,
            0xcf => self.be(8)?,
            _ => u64::try_from(self.int_after(m)?).map_err(|_| "integer out of range")?,
        };
        T::try_from(v).map_err(|_| "integer out of range")
    }

    #[inline]
    pub fn str_after(&mut self, m: u8) -> Result<&'a str, WireError> {
        let n = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return Err("expected a string"),
        };
        std::str::from_utf8(self.take(n)?).map_err(|_| "string is not UTF-8")
    }

    #[inline]
    pub fn str(&mut self) -> Result<&'a str, WireError> {
        let m = self.byte()?;
        self.str_after(m)
    }

    /// Reads one value as a view of these bytes. Lists are checked to `MAX_DEPTH`.
    #[inline]
    pub fn value(&mut self) -> Result<ValueRef<'a>, WireError> {
        let m = self.byte()?;
        // The common cases, inline: short strings and small non-negative integers.
        match m {
            0xa0..=0xbf => {
                let b = self.take(usize::from(m & 0x1f))?;
                std::str::from_utf8(b)
                    .map(ValueRef::Str)
                    .map_err(|_| "string is not UTF-8")
            }
            0x00..=0x7f => Ok(ValueRef::Int(i64::from(m))),
            _ => self.value_after(m, 0),
        }
    }

    /// Skips one value without checking its contents (only its extent): for reaching a later
    /// value of a tuple.
    #[inline]
    pub fn skip(&mut self) -> Result<(), WireError> {
        let m = self.byte()?;
        let n = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xcc | 0xd0 => 1,
            0xcd | 0xd1 => 2,
            0xca | 0xce | 0xd2 => 4,
            0xcb | 0xcf | 0xd3 => 8,
            0xd9 | 0xc4 => self.be(1)? as usize,
            0xda | 0xc5 => self.be(2)? as usize,
            0xdb | 0xc6 => self.be(4)? as usize,
            _ => return self.value_after(m, 0).map(|_| ()),
        };
        self.take(n).map(|_| ())
    }

    /// The string at the reader, if the next value is one (read in place).
    #[inline]
    pub fn str_value(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.str_bytes()?).ok()
    }

    /// The bytes of the string at the reader, unchecked, if the next value is a string.
    #[inline(always)]
    pub fn str_bytes(&mut self) -> Option<&'a [u8]> {
        let m = self.byte().ok()?;
        let n = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.be(1).ok()? as usize,
            0xda => self.be(2).ok()? as usize,
            0xdb => self.be(4).ok()? as usize,
            _ => return None,
        };
        self.take(n).ok()
    }

    /// [`Reader::int_value`] for random 64-bit integers (acking's tree and edge ids): written as
    /// `0xd3` (negative) or `0xcf` (positive), about half each, which a branch on the marker
    /// mispredicts half the time. Both are eight big-endian bytes of the same bits, read here
    /// without telling them apart; any other value goes through `int_value`.
    #[inline(always)]
    pub fn wide_int_value(&mut self) -> Option<i64> {
        if let Some((&[m, b0, b1, b2, b3, b4, b5, b6, b7], rest)) = self.b.split_first_chunk::<9>()
            && (m == 0xd3 || m == 0xcf)
        {
            let v = i64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
            // A u64 above i64::MAX is not an i64: `int_value` answers (and reads) as usual.
            if m == 0xcf && v < 0 {
                return self.int_value();
            }
            self.b = rest;
            return Some(v);
        }
        self.int_value()
    }

    /// The integer at the reader, if the next value is one that fits an `i64`.
    #[inline(always)]
    pub fn int_value(&mut self) -> Option<i64> {
        let m = self.byte().ok()?;
        match m {
            0x00..=0x7f => Some(i64::from(m)),
            0xe0..=0xff => Some(i64::from(m as i8)),
            // Acking ids are random 64-bit numbers: their widths, inline.
            0xd3 => Some(self.be(8).ok()? as i64),
            // Counts: unsigned 8, 16 and 32 bits.
            0xcc => Some(i64::from(*self.take(1).ok()?.first()?)),
            0xcd => {
                let b = self.take(2).ok()?;
                Some(i64::from(u16::from_be_bytes([b[0], b[1]])))
            }
            0xce => {
                let b = self.take(4).ok()?;
                Some(i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
            }
            0xcf => i64::try_from(self.be(8).ok()?).ok(),
            0xd0..=0xd2 => i64::try_from(self.int_after(m).ok()?).ok(),
            _ => None,
        }
    }

    #[inline]
    fn value_after(&mut self, m: u8, depth: usize) -> Result<ValueRef<'a>, WireError> {
        Ok(match m {
            0xa0..=0xbf | 0xd9..=0xdb => ValueRef::Str(self.str_after(m)?),
            0x00..=0x7f => ValueRef::Int(i64::from(m)),
            0xc0 => ValueRef::Null,
            0xc2 => ValueRef::Bool(false),
            0xc3 => ValueRef::Bool(true),
            0xca => ValueRef::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => ValueRef::Float(f64::from_bits(self.be(8)?)),
            0xc4..=0xc6 => {
                let n = match m {
                    0xc4 => self.be(1)?,
                    0xc5 => self.be(2)?,
                    _ => self.be(4)?,
                } as usize;
                ValueRef::Bytes(self.take(n)?)
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                if depth >= MAX_DEPTH {
                    return Err("values nested too deep (depth limit exceeded)");
                }
                let n = self.array_after(m)?;
                let start = self.b;
                for _ in 0..n {
                    let m = self.byte()?;
                    self.value_after(m, depth + 1)?;
                }
                let used = start.len() - self.b.len();
                ValueRef::List(ListRef {
                    len: n,
                    bytes: &start[..used],
                })
            }
            _ => {
                let i = self.int_after(m)?;
                ValueRef::Int(i64::try_from(i).map_err(|_| "integer does not fit in an i64")?)
            }
        })
    }

    /// Skips one value, checking it as [`Reader::value`] does (UTF-8, depth, integer range).
    #[inline]
    pub fn skip_value(&mut self) -> Result<(), WireError> {
        let m = self.byte()?;
        match m {
            0xa0..=0xbf => {
                let b = self.take(usize::from(m & 0x1f))?;
                if is_utf8(b) {
                    Ok(())
                } else {
                    Err("string is not UTF-8")
                }
            }
            0x00..=0x7f => Ok(()),
            _ => self.value_after(m, 0).map(|_| ()),
        }
    }
}

/// Whether `b` is UTF-8. Short ASCII strings (most words) are recognised with two fixed-size
/// loads; anything else gets the full check.
#[inline]
pub fn is_utf8(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = b.len();
    let le8 = |s: &[u8]| u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
    let le4 = |s: &[u8]| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
    let high = match n {
        0..=3 => b.iter().fold(0u64, |a, x| a | u64::from(*x)) & 0x80,
        4..=7 => (le4(b) | le4(&b[n - 4..])) & HIGH,
        8..=16 => (le8(b) | le8(&b[n - 8..])) & HIGH,
        _ => 1,
    };
    high == 0 || std::str::from_utf8(b).is_ok()
}

/// Checks that `bytes` are exactly a tuple's values (an array of values), as [`put_values`]
/// writes them; returns how many values there are. The transport checks what a peer sent this
/// way before keeping its bytes.
pub fn check_values(bytes: &[u8]) -> Result<usize, WireError> {
    let mut r = Reader { b: bytes };
    let n = r.array()?;
    for _ in 0..n {
        r.skip_value()?;
    }
    if !r.b.is_empty() {
        return Err("bytes after the values");
    }
    Ok(n)
}

/// One value read in place: strings and bytes borrow from the batch they lie in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bytes(&'a [u8]),
    List(ListRef<'a>),
}

/// A list value read in place: its elements' bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ListRef<'a> {
    len: usize,
    bytes: &'a [u8],
}

impl<'a> ListRef<'a> {
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements, in order.
    #[inline]
    pub fn iter(&self) -> ValueIter<'a> {
        ValueIter {
            r: Reader { b: self.bytes },
            left: self.len,
        }
    }
}

impl<'a> ValueRef<'a> {
    /// The string, if this is one.
    #[inline]
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    #[inline]
    pub fn as_int(&self) -> Option<i64> {
        match self {
            ValueRef::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// An owned copy.
    pub fn to_value(&self) -> Value {
        match *self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Str(s) => Value::from(s),
            ValueRef::Bytes(b) => Value::Bytes(b.into()),
            ValueRef::List(l) => Value::List(l.iter().map(|v| v.to_value()).collect()),
        }
    }

    /// The same hash as [`Value::stable_hash`] of the owned value.
    #[inline(always)]
    pub fn stable_hash(&self, h: &mut StableHasher) {
        // Strings, the usual key, inline; the other kinds out of line.
        match *self {
            ValueRef::Str(s) => {
                h.write_u64(5);
                h.write_bytes(s.as_bytes())
            }
            _ => self.stable_hash_other(h),
        }
    }

    #[inline(never)]
    fn stable_hash_other(&self, h: &mut StableHasher) {
        match *self {
            ValueRef::List(l) => {
                h.write_u64(7);
                h.write_u64(l.len() as u64);
                for v in l.iter() {
                    v.stable_hash(h);
                }
            }
            ValueRef::Bytes(b) => {
                h.write_u64(6);
                h.write_bytes(b)
            }
            _ => self.to_value().stable_hash(h),
        }
    }
}

impl PartialEq<Value> for ValueRef<'_> {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (ValueRef::Null, Value::Null) => true,
            (ValueRef::Bool(a), Value::Bool(b)) => a == b,
            (ValueRef::Int(a), Value::Int(b)) => a == b,
            (ValueRef::Float(a), Value::Float(b)) => a == b,
            (ValueRef::Str(a), Value::Str(b)) => *a == b.as_str(),
            (ValueRef::Bytes(a), Value::Bytes(b)) => *a == &b[..],
            (ValueRef::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x == *y)
            }
            _ => false,
        }
    }
}

impl fmt::Display for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueRef::Null => f.write_str("null"),
            ValueRef::Bool(b) => write!(f, "{b}"),
            ValueRef::Int(i) => write!(f, "{i}"),
            ValueRef::Float(x) => write!(f, "{x}"),
            ValueRef::Str(s) => f.write_str(s),
            ValueRef::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            ValueRef::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// The values of a tuple or list, read in place one after the other.
#[derive(Clone, Debug)]
pub struct ValueIter<'a> {
    r: Reader<'a>,
    left: usize,
}

impl<'a> ValueIter<'a> {
    /// Values written by [`put_values`]; bytes that are not stop the iteration.
    #[inline]
    pub fn of_values(bytes: &'a [u8]) -> Self {
        let mut r = Reader { b: bytes };
        let left = r.array().unwrap_or(0);
        ValueIter { r, left }
    }
}

impl<'a> Iterator for ValueIter<'a> {
    type Item = ValueRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<ValueRef<'a>> {
        if self.left == 0 {
            return None;
        }
        match self.r.value() {
            Ok(v) => {
                self.left -= 1;
                Some(v)
            }
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// Owned values from their bytes.
pub fn to_values(bytes: &[u8]) -> Values {
    ValueIter::of_values(bytes).map(|v| v.to_value()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (-1000i64..1000).prop_map(Value::Int),
            any::<f64>()
                .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
                .prop_map(Value::Float),
            ".{0,40}".prop_map(|s: String| Value::from(s)),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| Value::Bytes(b.into())),
        ];
        leaf.prop_recursive(3, 20, 4, |inner| {
            proptest::collection::vec(inner, 0..20).prop_map(|v| Value::List(v.into()))
        })
    }

    proptest! {
        #[test]
        fn int_bytes_are_put_values(i in prop_oneof![-300i64..300, -70_000i64..70_000, any::<i64>()]) {
            let (b, len) = int_bytes(i);
            let mut out = Vec::new();
            put_value(&mut out, &Value::Int(i));
            prop_assert_eq!(&b[..len], out.as_slice());
        }

        #[test]
        fn wide_int_values_are_int_values(i in prop_oneof![any::<i64>(), -300i64..300], u in any::<u64>()) {
            let mut out = Vec::new();
            put_value(&mut out, &Value::Int(i));
            put_uint(&mut out, u);
            out.push(0xc0);
            let (mut a, mut b) = (Reader { b: &out }, Reader { b: &out });
            prop_assert_eq!(a.wide_int_value(), b.int_value());
            prop_assert_eq!(a.b, b.b);
            prop_assert_eq!(a.wide_int_value(), b.int_value());
            prop_assert_eq!(a.b.len(), b.b.len());
        }

        #[test]
        fn uint_bytes_are_put_uints(n in prop_oneof![0u64..300, 0u64..70_000, any::<u64>()]) {
            let (b, len) = uint_bytes(n);
            let mut out = Vec::new();
            put_uint(&mut out, n);
            prop_assert_eq!(&b[..len], out.as_slice());
        }

        #[test]
        fn values_come_back_as_written(vals in proptest::collection::vec(value(), 0..20)) {
            let vals: Values = vals.into_iter().collect();
            let mut out = Vec::new();
            put_values(&mut out, &vals);
            prop_assert_eq!(check_values(&out), Ok(vals.len()));
            prop_assert_eq!(to_values(&out), vals.clone());
            for (r, v) in ValueIter::of_values(&out).zip(vals.iter()) {
                prop_assert!(r == *v);
                let (mut a, mut b) = (StableHasher::new(), StableHasher::new());
                r.stable_hash(&mut a);
                v.stable_hash(&mut b);
                prop_assert_eq!(a.finish(), b.finish());
            }
            // Re-encoding the views gives the same bytes.
            let refs: Vec<ValueRef<'_>> = ValueIter::of_values(&out).collect();
            let mut again = Vec::new();
            put_value_refs(&mut again, &refs);
            prop_assert_eq!(again, out);
        }

        #[test]
        fn bytes_are_what_rmp_serde_writes_for_plain_values(
            ints in proptest::collection::vec(any::<i64>(), 0..10),
            strs in proptest::collection::vec(".{0,300}", 0..5),
        ) {
            let mut vals = Values::new();
            for i in &ints { vals.push(Value::Int(*i)); }
            for s in &strs { vals.push(Value::from(s.as_str())); }
            let mut out = Vec::new();
            put_values(&mut out, &vals);
            // rmp-serde of an untagged mix: ints and strings in their smallest forms.
            #[derive(serde::Serialize)]
            #[serde(untagged)]
            enum Plain<'a> { I(i64), S(&'a str) }
            let plain: Vec<Plain<'_>> = ints.iter().map(|i| Plain::I(*i))
                .chain(strs.iter().map(|s| Plain::S(s))).collect();
            prop_assert_eq!(out, rmp_serde::to_vec(&plain).unwrap());
        }

        #[test]
        fn any_bytes_are_checked_without_panicking(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = check_values(&b);
            let _ = ValueIter::of_values(&b).count();
        }

        #[test]
        fn is_utf8_agrees_with_std(b in proptest::collection::vec(
            prop_oneof![0u8..0x80, 0x80u8..=0xff], 0..40)) {
            prop_assert_eq!(is_utf8(&b), std::str::from_utf8(&b).is_ok());
        }

        #[test]
        fn text_is_utf8(s in "\\PC{0,20}", cut in 0usize..40) {
            prop_assert!(is_utf8(s.as_bytes()));
            let b = &s.as_bytes()[..cut.min(s.len())];
            prop_assert_eq!(is_utf8(b), std::str::from_utf8(b).is_ok());
        }

        #[test]
        fn checking_agrees_with_reading(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            // The fast checking skip and the reader that builds values accept the same bytes.
            let mut r = Reader { b: &b };
            let mut v = Reader { b: &b };
            prop_assert_eq!(r.skip_value().is_ok(), v.value().is_ok());
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut out = vec![0x91];
        out.extend(std::iter::repeat_n(0x91, 100));
        out.push(0xc0);
        assert!(check_values(&out).is_err());
    }

    #[test]
    fn word_count_values_are_short() {
        let mut out = Vec::new();
        put_values(&mut out, &values!["storm", 3]);
        assert_eq!(out, [0x92, 0xa5, b's', b't', b'o', b'r', b'm', 3]);
    }
}
