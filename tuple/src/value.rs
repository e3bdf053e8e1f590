//! Tuple values: the small, cheap-to-clone dynamic values that flow between components.
//!
//! Design for the hot path: a word is a [`SmolStr`], stored inline up to 23 bytes (no allocation,
//! no reference count) and behind an `Arc` beyond that, so cloning a value never allocates and
//! never copies a long string. [`Values`] keeps up to two values inline, which covers the typical
//! `word` and `word, count` tuples without a heap allocation per tuple.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
pub use smol_str::SmolStr;
use std::fmt;
use std::sync::Arc;

/// One value of a tuple.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(SmolStr),
    Bytes(Arc<[u8]>),
    List(Arc<[Value]>),
}

impl Value {
    /// The string inside, if this is a `Str`.
    #[inline]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The integer inside, if this is an `Int`.
    #[inline]
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Feeds this value into a [`StableHasher`]. Every variant writes a type tag first, so `"1"` and
    /// `1` hash differently; the encoding is fixed and independent of the platform, so every
    /// process of a cluster computes the same hash for the same value.
    pub fn stable_hash(&self, h: &mut StableHasher) {
        match self {
            Value::Null => h.write_u64(0),
            Value::Bool(b) => h.write_u64(1 + *b as u64),
            Value::Int(i) => {
                h.write_u64(3);
                h.write_u64(*i as u64)
            }
            Value::Float(f) => {
                h.write_u64(4);
                h.write_u64(f.to_bits())
            }
            Value::Str(s) => {
                h.write_u64(5);
                h.write_bytes(s.as_bytes())
            }
            Value::Bytes(b) => {
                h.write_u64(6);
                h.write_bytes(b)
            }
            Value::List(l) => {
                h.write_u64(7);
                h.write_u64(l.len() as u64);
                for v in l.iter() {
                    v.stable_hash(h);
                }
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::List(l) => {
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

/// A `SmolStr` without `SmolStr::new`'s scan for whitespace-only strings: words are copied
/// inline (up to 23 bytes) directly, longer strings go behind an `Arc`. On the word-count hot path
/// this is measurably cheaper than `SmolStr::new`.
#[inline]
pub fn small_str(s: &str) -> SmolStr {
    if s.len() <= 23 {
        SmolStr::new_inline(s)
    } else {
        SmolStr::from(s)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(small_str(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(SmolStr::from(s))
    }
}
impl From<SmolStr> for Value {
    fn from(s: SmolStr) -> Self {
        Value::Str(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<u64> for Value {
    fn from(i: u64) -> Self {
        Value::Int(i as i64)
    }
}
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i as i64)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// The values of one tuple; two are kept inline.
pub type Values = SmallVec<[Value; 2]>;

/// Builds [`Values`] like Storm's `new Values(a, b)`: `values!["word", 3]`.
#[macro_export]
macro_rules! values {
    ($($v:expr),* $(,)?) => {{
        let mut v = $crate::Values::new();
        $( v.push($crate::Value::from($v)); )*
        v
    }};
}

/// A fixed, platform-independent 64-bit hash used by FIELDS and PARTIAL_KEY groupings.
///
/// It must never change between releases: two workers of different builds route the same key to the
/// same task only if they hash alike (it changed once before Gale's first release, 2026-12-01, for
/// speed: docs/performance.md). Integers and type tags go in with FxHash's multiply-rotate step;
/// bytes with one folded 64x64-bit multiply per 16 bytes (a short word: its first and last 8
/// bytes, overlapping, and its length). Tasks are picked from the high bits (multiply-shift),
/// which every input bit reaches; `finish` folds the high half into the low one for users of the
/// low bits (PARTIAL_KEY's second choice).
#[derive(Clone, Debug, Default)]
pub struct StableHasher {
    h: u64,
}

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl StableHasher {
    pub fn new() -> Self {
        Self { h: 0 }
    }

    #[inline]
    pub fn write_u64(&mut self, x: u64) {
        self.h = (self.h.rotate_left(5) ^ x).wrapping_mul(K);
    }

    #[inline(always)]
    pub fn write_bytes(&mut self, b: &[u8]) {
        self.h = fold_bytes(self.h, b, 0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f);
    }

    #[inline]
    pub fn finish(&self) -> u64 {
        self.h ^ (self.h >> 32)
    }
}

/// The high and low halves of a 128-bit product, XORed: every bit of both inputs reaches the
/// high half of the result.
#[inline(always)]
pub(crate) fn fold(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

#[inline(always)]
fn le8(s: &[u8]) -> u64 {
    u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
}

/// Mixes `b` into `acc` with one folded multiply per 16 bytes: a key of up to 16 bytes goes in
/// as its first and last 8 bytes (overlapping; up to 7 bytes zero-padded) and its length, so
/// "a" and "a\0" differ. `p0`/`p1` set the function: the routing hash ([`StableHasher`]) and
/// in-process tables ([`crate::bytemap::ByteMap`]) use different ones, so a table behind a
/// FIELDS grouping still spreads its keys.
#[inline(always)]
pub(crate) fn fold_bytes(mut acc: u64, b: &[u8], p0: u64, p1: u64) -> u64 {
    let n = b.len();
    let (x, y) = match n {
        0..=7 => (load_tail(b), 0),
        8..=16 => (le8(b), le8(&b[n - 8..])),
        _ => {
            for c in b.chunks_exact(16) {
                acc = fold(acc ^ le8(c) ^ p0, le8(&c[8..]) ^ p1);
            }
            (le8(&b[n - 16..]), le8(&b[n - 8..]))
        }
    };
    fold(acc ^ x ^ p0, y ^ p1 ^ (n as u64).rotate_left(32))
}

/// The up to 7 bytes of `rest` as a little-endian `u64`, zero-padded: the same value as copying
/// them into a zeroed `[u8; 8]`, without the variable-length copy (which was most of the cost of
/// hashing a short word; see docs/performance.md). Overlapping fixed-size loads cover every length.
#[inline(always)]
fn load_tail(rest: &[u8]) -> u64 {
    let n = rest.len();
    if n >= 4 {
        let lo = u64::from(u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]));
        let hi = u64::from(u32::from_le_bytes([
            rest[n - 4],
            rest[n - 3],
            rest[n - 2],
            rest[n - 1],
        ]));
        lo | (hi << ((n - 4) * 8))
    } else if n > 0 {
        u64::from(rest[0])
            | (u64::from(rest[n / 2]) << (8 * (n / 2)))
            | (u64::from(rest[n - 1]) << (8 * (n - 1)))
    } else {
        0
    }
}

/// Ordered field names of a stream, like Storm's `Fields`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Fields(Vec<String>);

impl Fields {
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Fields(names.into_iter().map(Into::into).collect())
    }

    /// Position of a field, as Storm's `fieldIndex`.
    #[inline]
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|f| f == name)
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index_of(name).is_some()
    }
}

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_inline_and_clone_without_allocating() {
        let v = Value::from("hello");
        let Value::Str(s) = &v else {
            panic!("not a string")
        };
        assert!(!s.is_heap_allocated());
        assert_eq!(v.clone(), v);
    }

    #[test]
    fn stable_hash_is_fixed() {
        // Golden values: changing them breaks routing between workers of different versions.
        let h = |v: Value| {
            let mut s = StableHasher::new();
            v.stable_hash(&mut s);
            s.finish()
        };
        assert_eq!(h(Value::from("word")), h(Value::from("word")));
        assert_ne!(h(Value::from("1")), h(Value::Int(1)));
        assert_ne!(h(Value::from("a")), h(Value::from("a\0")));
        assert_eq!(
            h(Value::from("word")),
            0xe890_5a42_059a_a4fc_u64,
            "got {:#x}",
            h(Value::from("word"))
        );
    }

    #[test]
    fn tail_loads_equal_a_zero_padded_copy() {
        let bytes: Vec<u8> = (0u8..16)
            .map(|i| i.wrapping_mul(37).wrapping_add(0x81))
            .collect();
        for start in 0..8 {
            for n in 0..8 {
                let rest = &bytes[start..start + n];
                let mut a = [0u8; 8];
                a[..n].copy_from_slice(rest);
                assert_eq!(load_tail(rest), u64::from_le_bytes(a), "{rest:?}");
            }
        }
    }

    #[test]
    fn values_macro_builds_inline() {
        let v = values!["a", 2];
        assert_eq!(v.len(), 2);
        assert!(!v.spilled());
        assert_eq!(v[1], Value::Int(2));
    }
}
