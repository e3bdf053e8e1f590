//! TCP between workers: batches as length-prefixed rmp-serde frames.
//!
//! A frame is a big-endian `u32` length and an rmp-serde [`WireBatch`]. One sender thread per
//! remote worker drains a bounded queue (so a slow link blocks the executors feeding it:
//! backpressure, not memory) and reconnects with backoff while the peer is not up. The listener
//! runs a reader thread per connection; a malformed or oversized frame closes that connection
//! with a logged reason and nothing else.

use crate::runtime::{Batch, Delivery, Inbound};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use topology_api::{AckIds, StreamSource, Topology, Tuple, Value, Values};

/// Largest frame accepted; a bigger length prefix closes the connection.
pub const MAX_FRAME: usize = 64 << 20;

/// One batch on the wire. Each tuple names its source by index into `sources`.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct WireBatch {
    pub sources: Vec<(String, String)>,
    pub tuples: Vec<WireTuple>,
}

impl WireBatch {
    /// A frame consumer's start (see [`decode_with`]): the frame's sources, room for its tuples.
    fn collect(sources: Vec<(String, String)>, tuples: usize) -> Self {
        WireBatch {
            sources,
            tuples: Vec::with_capacity(tuples.min(4096)),
        }
    }

    fn push(&mut self, t: WireTuple) {
        self.tuples.push(t);
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct WireTuple {
    pub task: u32,
    pub source_task: u32,
    pub source: u16,
    #[serde(with = "wire_values")]
    pub values: Values,
    #[serde(deserialize_with = "cautious")]
    pub ack_ids: AckIds,
    #[serde(default)]
    pub born_us: u64,
}

/// Values as plain msgpack (nil, bool, int, float, str, bin, array), not serde's enum form with a
/// variant name per value: a third of the bytes for a word, and the decoder does not match
/// variant names (measured: decoding was the largest cost of a cluster word count).
mod wire_values {
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeSeq, Serializer};
    use serde::{Deserialize, Serialize};
    use std::fmt;
    use topology_api::{Value, Values, value::small_str};

    struct Wire<'a>(&'a Value);

    impl Serialize for Wire<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Value::Null => s.serialize_unit(),
                Value::Bool(b) => s.serialize_bool(*b),
                Value::Int(i) => s.serialize_i64(*i),
                Value::Float(f) => s.serialize_f64(*f),
                Value::Str(t) => s.serialize_str(t),
                Value::Bytes(b) => s.serialize_bytes(b),
                Value::List(l) => {
                    let mut seq = s.serialize_seq(Some(l.len()))?;
                    for v in l.iter() {
                        seq.serialize_element(&Wire(v))?;
                    }
                    seq.end()
                }
            }
        }
    }

    pub fn serialize<S: Serializer>(values: &Values, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(values.len()))?;
        for v in values {
            seq.serialize_element(&Wire(v))?;
        }
        seq.end()
    }

    /// One value read back.
    struct Owned(Value);

    impl<'de> Deserialize<'de> for Owned {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ValueVisitor).map(Owned)
        }
    }

    struct ValueVisitor;

    impl<'de> Visitor<'de> for ValueVisitor {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a tuple value")
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
            Ok(Value::Bool(b))
        }
        fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
            Ok(Value::Int(i))
        }
        fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
            i64::try_from(u)
                .map(Value::Int)
                .map_err(|_| E::custom(format!("integer {u} does not fit in an i64")))
        }
        fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
            Ok(Value::Float(f))
        }
        fn visit_str<E>(self, s: &str) -> Result<Value, E> {
            Ok(Value::Str(small_str(s)))
        }
        fn visit_bytes<E>(self, b: &[u8]) -> Result<Value, E> {
            Ok(Value::Bytes(b.into()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            while let Some(Owned(v)) = seq.next_element()? {
                out.push(v);
            }
            Ok(Value::List(out.into()))
        }
    }

    struct ValuesVisitor;

    impl<'de> Visitor<'de> for ValuesVisitor {
        type Value = Values;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of tuple values")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Values, A::Error> {
            // Not the length the peer claims: it could claim billions.
            let mut out = Values::new();
            while let Some(Owned(v)) = seq.next_element()? {
                out.push(v);
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Values, D::Error> {
        d.deserialize_seq(ValuesVisitor)
    }
}

/// A SmallVec without trusting the element count a peer claims: smallvec's own `Deserialize`
/// reserves the claimed count up front, so five bytes could ask for gigabytes.
fn cautious<'de, D, A>(d: D) -> Result<smallvec::SmallVec<A>, D::Error>
where
    D: Deserializer<'de>,
    A: smallvec::Array,
    A::Item: Deserialize<'de>,
{
    struct V<A>(std::marker::PhantomData<A>);
    impl<'de, A: smallvec::Array> serde::de::Visitor<'de> for V<A>
    where
        A::Item: Deserialize<'de>,
    {
        type Value = smallvec::SmallVec<A>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<S: serde::de::SeqAccess<'de>>(
            self,
            mut seq: S,
        ) -> Result<Self::Value, S::Error> {
            let mut out = smallvec::SmallVec::new();
            while let Some(v) = seq.next_element()? {
                out.push(v);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V(std::marker::PhantomData))
}

/// Encodes a batch into a frame (length prefix included) in `out`.
///
/// Written by hand with rmp's primitives, the same calls rmp-serde makes for [`WireBatch`], so the
/// bytes are what rmp-serde writes (a test holds them equal to `encode_with_serde`); without the
/// intermediate `WireBatch` and serde's generic path.
pub fn encode(batch: Batch, out: &mut Vec<u8>) -> Result<(), String> {
    use rmp::encode as w;
    out.clear();
    out.extend_from_slice(&[0; 4]);
    let mut seen: Vec<&'static StreamSource> = Vec::new();
    let mut idx: Vec<u16> = Vec::with_capacity(batch.len());
    for d in &batch {
        let src = d.tuple.source();
        let i = match seen.iter().position(|s| std::ptr::eq(*s, src)) {
            Some(i) => i,
            None => {
                seen.push(src);
                seen.len() - 1
            }
        };
        idx.push(i as u16);
    }
    w::write_array_len(out, 2).map_err(err)?;
    w::write_array_len(out, seen.len() as u32).map_err(err)?;
    for s in &seen {
        w::write_array_len(out, 2).map_err(err)?;
        w::write_str(out, &s.component).map_err(err)?;
        w::write_str(out, &s.stream).map_err(err)?;
    }
    w::write_array_len(out, batch.len() as u32).map_err(err)?;
    for (d, i) in batch.iter().zip(idx) {
        let values = d.tuple.values();
        let ids = d.tuple.ack_ids();
        // The fixed parts are written byte by byte into room reserved once per tuple; rmp's
        // writers check capacity per piece. The bytes are the same as rmp-serde's
        // (`hand_reader_agrees_on_random_batches` compares them).
        out.reserve(48 + 19 * ids.len());
        out.push(0x96);
        put_uint(out, u64::from(d.task));
        put_uint(out, u64::from(d.tuple.source_task()));
        put_uint(out, u64::from(i));
        w::write_array_len(out, values.len() as u32).map_err(err)?;
        for v in values {
            write_value(out, v)?;
        }
        w::write_array_len(out, ids.len() as u32).map_err(err)?;
        for (root, edge) in ids {
            out.push(0x92);
            put_uint(out, *root);
            put_uint(out, *edge);
        }
        put_uint(out, d.tuple.born_us());
    }
    finish_frame(out)
}

/// msgpack's smallest form of an unsigned integer, as `rmp::encode::write_uint` writes it.
#[inline]
fn put_uint(out: &mut Vec<u8>, n: u64) {
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xcc, n as u8]);
    } else if n <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn write_value(out: &mut Vec<u8>, v: &Value) -> Result<(), String> {
    use rmp::encode as w;
    match v {
        Value::Null => w::write_nil(out).map_err(err)?,
        Value::Bool(b) => w::write_bool(out, *b).map_err(err)?,
        Value::Int(i) if *i >= 0 => put_uint(out, *i as u64),
        Value::Int(i) => {
            w::write_sint(out, *i).map_err(err)?;
        }
        Value::Float(f) => w::write_f64(out, *f).map_err(err)?,
        Value::Str(s) if s.len() < 32 => {
            out.push(0xa0 | s.len() as u8);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Str(s) => w::write_str(out, s).map_err(err)?,
        Value::Bytes(b) => w::write_bin(out, b).map_err(err)?,
        Value::List(l) => {
            w::write_array_len(out, l.len() as u32).map_err(err)?;
            for x in l.iter() {
                write_value(out, x)?;
            }
        }
    }
    Ok(())
}

/// Writing to a `Vec` does not fail; rmp's error types are turned into text all the same.
fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Checks the size and writes the length prefix of a frame built after 4 placeholder bytes.
fn finish_frame(out: &mut [u8]) -> Result<(), String> {
    let len = out.len() - 4;
    if len > MAX_FRAME {
        return Err(format!(
            "batch of {len} bytes exceeds the {MAX_FRAME}-byte frame limit"
        ));
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// [`encode`] through rmp-serde and an intermediate [`WireBatch`]: the reference the hand-written
/// encoder is tested against.
#[cfg(test)]
pub fn encode_with_serde(batch: Batch, out: &mut Vec<u8>) -> Result<(), String> {
    let mut wire = WireBatch::default();
    let mut seen: Vec<&'static StreamSource> = Vec::new();
    for d in batch {
        let src = d.tuple.source();
        let idx = match seen.iter().position(|s| std::ptr::eq(*s, src)) {
            Some(i) => i,
            None => {
                seen.push(src);
                wire.sources
                    .push((src.component.clone(), src.stream.clone()));
                seen.len() - 1
            }
        };
        let source_task = d.tuple.source_task();
        let ack_ids = d.tuple.ack_ids().clone();
        let born_us = d.tuple.born_us();
        wire.tuples.push(WireTuple {
            task: d.task,
            source_task,
            source: idx as u16,
            values: d.tuple.into_values(),
            ack_ids,
            born_us,
        });
    }
    out.clear();
    out.extend_from_slice(&[0; 4]);
    rmp_serde::encode::write(out, &wire).map_err(|e| e.to_string())?;
    finish_frame(out)
}

/// Decodes a frame body.
///
/// The frame is what rmp-serde writes for [`WireBatch`] (structs as arrays); it is read by hand
/// here, straight off the slice, because serde's generic path was most of a cluster worker's CPU.
/// `decode_with_serde` (tests only) reads the same bytes the generic way; tests hold the two equal.
pub fn decode(body: &[u8]) -> Result<WireBatch, String> {
    decode_with(body, WireBatch::collect, WireBatch::push)
}

/// Decodes a frame body, handing each tuple to `each` as it is read (no vector of tuples in
/// between): `begin` gets the frame's sources and tuple count first and makes the state.
pub fn decode_with<S>(
    body: &[u8],
    begin: impl FnOnce(Vec<(String, String)>, usize) -> S,
    each: impl FnMut(&mut S, WireTuple),
) -> Result<S, String> {
    let mut r = Reader { b: body };
    r.frame(begin, each)
        .map_err(|e| format!("malformed frame: {e}"))
}

/// [`decode`] through rmp-serde: the reference the hand-written reader is tested against.
#[cfg(test)]
pub fn decode_with_serde(body: &[u8]) -> Result<WireBatch, String> {
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    // Values nest (lists of lists); a peer must not make the decoder recurse without bound.
    de.set_max_depth(MAX_DEPTH);
    WireBatch::deserialize(&mut de).map_err(|e| format!("malformed frame: {e}"))
}

/// A msgpack reader over a frame body. Every length is checked against the bytes left before
/// anything is allocated for it.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.b.len() < n {
            return Err("frame ends inside a value");
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    fn byte(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian unsigned integer of `n` bytes (1, 2, 4 or 8: msgpack's widths), read with one
    /// fixed-size load per width rather than byte by byte.
    #[inline]
    fn be(&mut self, n: usize) -> Result<u64, &'static str> {
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
    fn array(&mut self) -> Result<usize, &'static str> {
        let m = self.byte()?;
        self.array_after(m)
    }

    fn array_after(&mut self, m: u8) -> Result<usize, &'static str> {
        let n = match m {
            m @ 0x90..=0x9f => usize::from(m & 0x0f),
            0xdc => self.be(2)? as usize,
            0xdd => self.be(4)? as usize,
            _ => return Err("expected an array"),
        };
        if n > self.b.len() {
            return Err("array longer than the frame");
        }
        Ok(n)
    }

    fn int_after(&mut self, m: u8) -> Result<i128, &'static str> {
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

    fn uint<T: TryFrom<u64>>(&mut self) -> Result<T, &'static str> {
        let m = self.byte()?;
        // Task ids, indexes, ack ids and stamps are positive fixints or unsigned (rmp writes
        // the smallest form); signed forms are accepted as long as the value is not negative.
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

    fn str_after(&mut self, m: u8) -> Result<&'a str, &'static str> {
        let n = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return Err("expected a string"),
        };
        std::str::from_utf8(self.take(n)?).map_err(|_| "string is not UTF-8")
    }

    fn str(&mut self) -> Result<&'a str, &'static str> {
        let m = self.byte()?;
        self.str_after(m)
    }

    /// Reads one top-level value into `values`. Strings and integers, nearly every value a
    /// topology sends, are built where they are pushed instead of coming back through
    /// `Result<Value, _>`: that return went through memory and was reloaded at other widths,
    /// which stalled the receiving thread (docs/performance.md, "Encoding and decoding, per
    /// tuple").
    #[inline]
    fn push_value(&mut self, values: &mut Values) -> Result<(), &'static str> {
        let m = self.byte()?;
        match m {
            0xa0..=0xbf | 0xd9..=0xdb => {
                let s = self.str_after(m)?;
                values.push(Value::Str(topology_api::value::small_str(s)));
            }
            0x00..=0x7f => values.push(Value::Int(i64::from(m))),
            0xcc..=0xce => {
                let n = self.be(1 << (m - 0xcc))?;
                values.push(Value::Int(n as i64));
            }
            _ => values.push(self.value_after(m, 1)?),
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value, &'static str> {
        let m = self.byte()?;
        self.value_after(m, depth)
    }

    fn value_after(&mut self, m: u8, depth: usize) -> Result<Value, &'static str> {
        Ok(match m {
            0xc0 => Value::Null,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xca => Value::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.be(8)?)),
            0xa0..=0xbf | 0xd9..=0xdb => {
                Value::Str(topology_api::value::small_str(self.str_after(m)?))
            }
            0xc4..=0xc6 => {
                let n = match m {
                    0xc4 => self.be(1)?,
                    0xc5 => self.be(2)?,
                    _ => self.be(4)?,
                } as usize;
                Value::Bytes(self.take(n)?.into())
            }
            0x90..=0x9f | 0xdc | 0xdd => {
                if depth >= MAX_DEPTH {
                    return Err("values nested too deep (depth limit exceeded)");
                }
                let n = self.array_after(m)?;
                // Reserve by what was read, not by what was claimed.
                let mut out = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    out.push(self.value(depth + 1)?);
                }
                Value::List(out.into())
            }
            _ => {
                let i = self.int_after(m)?;
                Value::Int(i64::try_from(i).map_err(|_| "integer does not fit in an i64")?)
            }
        })
    }

    /// Reads a frame (see [`decode_with`]).
    fn frame<S>(
        &mut self,
        begin: impl FnOnce(Vec<(String, String)>, usize) -> S,
        mut each: impl FnMut(&mut S, WireTuple),
    ) -> Result<S, &'static str> {
        if self.array()? != 2 {
            return Err("a batch is [sources, tuples]");
        }
        let n = self.array()?;
        let mut sources = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            if self.array()? != 2 {
                return Err("a source is [component, stream]");
            }
            let c = self.str()?.to_owned();
            sources.push((c, self.str()?.to_owned()));
        }
        let n = self.array()?;
        let mut state = begin(sources, n);
        for _ in 0..n {
            if self.array()? != 6 {
                return Err("a tuple is [task, source_task, source, values, ack_ids, born_us]");
            }
            let task = self.uint()?;
            let source_task = self.uint()?;
            let source = self.uint()?;
            let mut values = Values::new();
            for _ in 0..self.array()? {
                self.push_value(&mut values)?;
            }
            let mut ack_ids = AckIds::new();
            for _ in 0..self.array()? {
                if self.array()? != 2 {
                    return Err("an ack id is [root, edge]");
                }
                let root = self.uint()?;
                ack_ids.push((root, self.uint()?));
            }
            let born_us = self.uint()?;
            each(
                &mut state,
                WireTuple {
                    task,
                    source_task,
                    source,
                    values,
                    ack_ids,
                    born_us,
                },
            );
        }
        Ok(state)
    }
}

/// Deepest nesting of lists accepted in a frame.
pub const MAX_DEPTH: usize = 64;

/// Splits the bytes of one connection into frames and decodes them. Pure: the reader thread
/// feeds it what the socket gives; the fuzz target feeds it anything.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
}

impl FrameReader {
    /// Appends bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed. An error means the
    /// connection is not speaking Gale's protocol and must be closed.
    pub fn next_frame(&mut self) -> Result<Option<WireBatch>, String> {
        self.next_frame_with(WireBatch::collect, WireBatch::push)
    }

    /// As [`FrameReader::next_frame`], handing the tuples to `each` as they are decoded.
    pub fn next_frame_with<S>(
        &mut self,
        begin: impl FnOnce(Vec<(String, String)>, usize) -> S,
        each: impl FnMut(&mut S, WireTuple),
    ) -> Result<Option<S>, String> {
        let avail = &self.buf[self.start..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if len > MAX_FRAME {
            return Err(format!(
                "frame of {len} bytes is larger than the {MAX_FRAME}-byte limit"
            ));
        }
        if avail.len() < 4 + len {
            return Ok(None);
        }
        let state = decode_with(&avail[4..4 + len], begin, each)?;
        self.start += 4 + len;
        if self.start > (1 << 20) {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        Ok(Some(state))
    }
}

/// Starts a sender thread per remote worker; returns their queues, in `addrs` order.
pub fn start_senders(
    addrs: &[SocketAddr],
    capacity: usize,
    stop: Arc<AtomicBool>,
) -> (Vec<Sender<Batch>>, Vec<JoinHandle<()>>) {
    let mut queues = Vec::new();
    let mut handles = Vec::new();
    for addr in addrs {
        let (tx, rx) = bounded(capacity.max(2));
        queues.push(tx);
        let addr = *addr;
        let stop = stop.clone();
        if let Ok(h) = std::thread::Builder::new()
            .name(format!("gale-send-{addr}"))
            .spawn(move || send_loop(addr, rx, stop))
        {
            handles.push(h);
        }
    }
    (queues, handles)
}

fn send_loop(addr: SocketAddr, rx: Receiver<Batch>, stop: Arc<AtomicBool>) {
    let mut conn: Option<TcpStream> = None;
    let mut frame = Vec::with_capacity(64 << 10);
    let mut backoff = Duration::from_millis(20);
    loop {
        let batch = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => continue,
            // Every executor feeding this peer has ended.
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Err(e) = encode(batch, &mut frame) {
            tracing::error!(peer = %addr, error = %e, "Dropping a batch that cannot be encoded");
            continue;
        }
        loop {
            if conn.is_none() {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        tracing::debug!(peer = %addr, "Connected to worker");
                        conn = Some(s);
                        backoff = Duration::from_millis(20);
                    }
                    Err(e) => {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        tracing::debug!(peer = %addr, error = %e, "Worker not reachable yet; retrying");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                }
            }
            let Some(s) = conn.as_mut() else { continue };
            match s.write_all(&frame) {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(peer = %addr, error = %e, "Connection to worker lost; reconnecting");
                    conn = None;
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
            }
        }
    }
}

/// Accepts connections from other workers and feeds their batches to the local executors.
pub fn start_listener(
    listener: TcpListener,
    topology: Arc<Topology>,
    inbound: Arc<Inbound>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("gale-listen".into())
        .spawn(move || {
            let mut readers: Vec<JoinHandle<()>> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, peer)) => {
                        let (t, i, st) = (topology.clone(), inbound.clone(), stop.clone());
                        if let Ok(h) = std::thread::Builder::new()
                            .name(format!("gale-recv-{peer}"))
                            .spawn(move || read_loop(s, peer, &t, &i, &st))
                        {
                            readers.push(h);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                readers.retain(|h| !h.is_finished());
            }
            drop(listener);
            for h in readers {
                let _ = h.join();
            }
        })
}

fn read_loop(
    mut s: TcpStream,
    peer: SocketAddr,
    topology: &Topology,
    inbound: &Inbound,
    stop: &AtomicBool,
) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut frames = FrameReader::default();
    let mut chunk = vec![0u8; 64 << 10];
    let mut sources: HashMap<(String, String), Option<&'static StreamSource>> = HashMap::new();
    loop {
        // Complete frames first.
        loop {
            let next = frames.next_frame_with(
                |names, n| Dispatch::new(names, n, topology, inbound, &mut sources),
                Dispatch::push,
            );
            match next {
                Ok(Some(d)) => {
                    if !d.send() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "Closing connection");
                    return;
                }
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => frames.feed(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "Connection closed");
                return;
            }
        }
    }
}

/// One frame's tuples on their way to the local queues: decoded tuples go straight into the
/// batch of the queue of their task.
struct Dispatch<'a> {
    resolved: Vec<Option<&'static StreamSource>>,
    per_queue: Vec<Batch>,
    inbound: &'a Inbound,
    /// Tuples in the frame: a queue's batch is given room for all of them when its first tuple
    /// arrives (a frame comes from one sending executor and mostly feeds one queue), so it never
    /// grows by copying.
    tuples: usize,
}

impl<'a> Dispatch<'a> {
    fn new(
        names: Vec<(String, String)>,
        tuples: usize,
        topology: &Topology,
        inbound: &'a Inbound,
        cache: &mut HashMap<(String, String), Option<&'static StreamSource>>,
    ) -> Self {
        let resolved = names
            .into_iter()
            .map(|key| {
                *cache.entry(key).or_insert_with_key(|(c, st)| {
                    topology
                        .stream_fields(c, st)
                        .map(|f| StreamSource::intern(c, st, f))
                        .or_else(|| topology_api::system_source(c, st))
                })
            })
            .collect();
        Dispatch {
            resolved,
            per_queue: (0..inbound.queue_count()).map(|_| Batch::new()).collect(),
            inbound,
            tuples: tuples.min(1 << 16),
        }
    }

    #[inline]
    fn push(&mut self, t: WireTuple) {
        let (Some(Some(src)), Some(q)) = (
            self.resolved.get(t.source as usize),
            self.inbound.queue_index(t.task),
        ) else {
            tracing::warn!(
                task = t.task,
                "Dropping a tuple for a task or stream this worker does not have"
            );
            return;
        };
        let batch = &mut self.per_queue[q];
        if batch.capacity() == 0 {
            batch.reserve(self.tuples);
        }
        batch.push(Delivery {
            task: t.task,
            tuple: Tuple::from_parts(src, t.source_task, t.values, t.ack_ids, t.born_us),
        });
    }

    /// Hands the batches to the local queues; false when the worker is shutting down.
    fn send(self) -> bool {
        for (q, items) in self.per_queue.into_iter().enumerate() {
            if items.is_empty() {
                continue;
            }
            let Some(tx) = self.inbound.queue(q) else {
                continue;
            };
            // Frames carry at most one sender-side batch, so this stays within the batch size.
            if tx.send(items).is_err() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use topology_api::{Fields, Value, values};

    #[test]
    fn frames_round_trip() {
        let src = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let batch = vec![
            Delivery {
                task: 3,
                tuple: Tuple::new(src, 1, values!["storm"]),
            },
            Delivery {
                task: 4,
                tuple: Tuple::new(src, 2, values!["gale", 7]),
            },
        ];
        let mut f = Vec::new();
        encode(batch, &mut f).expect("encodes");
        let len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(len, f.len() - 4);
        let w = decode(&f[4..]).expect("decodes");
        assert_eq!(w.sources, vec![("split".to_owned(), "default".to_owned())]);
        assert_eq!(w.tuples[1].values[1], Value::Int(7));
        assert_eq!(w.tuples[0].task, 3);
    }

    #[test]
    fn every_kind_of_value_round_trips() {
        let src = StreamSource::intern("split", "default", &Fields::new(["a"]));
        let long = "a string longer than twenty-three bytes, kept behind an Arc";
        let vals = values![
            Value::Null,
            true,
            -7,
            i64::MAX,
            2.5,
            "word",
            long,
            Value::Bytes(vec![0u8, 255, 7].into()),
            Value::List(vec![Value::Int(1), Value::List(vec![Value::from("x")].into())].into())
        ];
        let batch = vec![Delivery {
            task: 9,
            tuple: Tuple::new(src, 2, vals.clone()),
        }];
        let mut f = Vec::new();
        encode(batch, &mut f).expect("encodes");
        let w = decode(&f[4..]).expect("decodes");
        assert_eq!(w.tuples[0].values, vals);
    }

    /// The hand-written reader agrees with rmp-serde on what rmp-serde wrote.
    #[test]
    fn hand_reader_matches_serde() {
        let src = StreamSource::intern("count", "default", &Fields::new(["word", "count"]));
        let other = StreamSource::intern("split", "words", &Fields::new(["w"]));
        let mut batch = Vec::new();
        for i in 0..300u32 {
            let mut t = Tuple::new(
                if i % 3 == 0 { other } else { src },
                i,
                values![format!("w{i}").as_str(), i64::from(i) * -1_000_003],
            )
            .with_born(u64::from(i) << 33);
            if i % 2 == 0 {
                t = t.with_ack_ids(
                    [(u64::MAX - u64::from(i), u64::from(i))]
                        .into_iter()
                        .collect(),
                );
            }
            batch.push(Delivery {
                task: i * 7,
                tuple: t,
            });
        }
        let mut f = Vec::new();
        encode(batch, &mut f).expect("encodes");
        assert_eq!(decode(&f[4..]), decode_with_serde(&f[4..]));
        assert_eq!(decode(&f[4..]).expect("ok").tuples.len(), 300);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\xff\xff\xff", b"\x92\x90", &[0x93; 64]] {
            assert!(decode(bytes).is_err() || decode(bytes).is_ok());
        }
        assert!(decode(b"\xc1").is_err());
    }

    /// A tuple claiming 2^32-1 values (or ack ids) in a 30-byte frame must be refused
    /// without reserving room for them: smallvec's own Deserialize would reserve ~100 GB.
    #[test]
    fn claimed_counts_do_not_allocate() {
        // [sources: [], tuples: [[task, source_task, source, values: array32(0xffffffff)]]]
        let body = b"\x92\x90\x91\x96\x01\x01\x00\xdd\xff\xff\xff\xff\x01";
        assert!(decode(body).is_err());
        let body = b"\x92\x90\x91\x96\x01\x01\x00\x90\xdd\xff\xff\xff\xff\x00";
        assert!(decode(body).is_err());
    }

    #[test]
    fn frame_reader_splits_any_chunking_and_refuses_oversized() {
        let src = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let mut bytes = Vec::new();
        for i in 0..3 {
            let mut f = Vec::new();
            let batch = vec![Delivery {
                task: i,
                tuple: Tuple::new(src, 1, values!["w"]),
            }];
            encode(batch, &mut f).expect("encodes");
            bytes.extend_from_slice(&f);
        }
        for chunk in [1, 3, 7, 1000] {
            let mut r = FrameReader::default();
            let mut tasks = Vec::new();
            for c in bytes.chunks(chunk) {
                r.feed(c);
                while let Some(w) = r.next_frame().expect("valid") {
                    tasks.extend(w.tuples.iter().map(|t| t.task));
                }
            }
            assert_eq!(tasks, vec![0, 1, 2]);
        }
        let mut r = FrameReader::default();
        r.feed(&u32::MAX.to_be_bytes());
        assert!(r.next_frame().is_err());
    }

    #[test]
    fn deep_lists_are_refused() {
        let src = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let nested = |depth: usize| {
            let mut v = Value::Int(1);
            for _ in 0..depth {
                v = Value::List(vec![v].into());
            }
            let mut f = Vec::new();
            let batch = vec![Delivery {
                task: 1,
                tuple: Tuple::new(src, 1, values![v]),
            }];
            encode(batch, &mut f).expect("encodes");
            f
        };
        assert!(decode(&nested(10)[4..]).is_ok());
        let e = decode(&nested(200)[4..]).expect_err("too deep");
        assert!(e.contains("depth"), "{e}");
    }
}

#[cfg(test)]
mod hostile {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = topology_api::Value> {
        use topology_api::Value as V;
        let leaf = prop_oneof![
            Just(V::Null),
            any::<bool>().prop_map(V::Bool),
            any::<i64>().prop_map(V::Int),
            // Every msgpack integer width: fixints, 8/16/32-bit, negative forms.
            (-70_000i64..5_000_000_000).prop_map(V::Int),
            (-1e12f64..1e12).prop_map(V::Float),
            ".{0,40}".prop_map(|s: String| V::from(s.as_str())),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(|b| V::Bytes(b.into())),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            proptest::collection::vec(inner, 0..4).prop_map(|l| V::List(l.into()))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Random batches: the hand-written reader reads what rmp-serde wrote as rmp-serde does.
        #[test]
        fn hand_reader_agrees_on_random_batches(
            tuples in proptest::collection::vec(
                (prop_oneof![0..300u32, any::<u32>()], any::<u32>(), proptest::collection::vec(value(), 0..4), any::<u64>(),
                 proptest::collection::vec((any::<u64>(), any::<u64>()), 0..3)),
                0..40,
            )
        ) {
            let src = StreamSource::intern("p", "default", &topology_api::Fields::new(["a"]));
            let batch: Vec<Delivery> = tuples
                .into_iter()
                .map(|(task, st, vals, born, acks)| Delivery {
                    task,
                    tuple: Tuple::new(src, st, vals.into_iter().collect())
                        .with_born(born)
                        .with_ack_ids(acks.into_iter().collect()),
                })
                .collect();
            let mut f = Vec::new();
            encode(batch.clone(), &mut f).expect("encodes");
            let mut g = Vec::new();
            encode_with_serde(batch, &mut g).expect("encodes");
            prop_assert_eq!(&f, &g, "the hand-written encoder writes rmp-serde's bytes");
            let hand = decode(&f[4..]);
            prop_assert!(hand.is_ok(), "{:?}", hand);
            prop_assert_eq!(hand, decode_with_serde(&f[4..]));
        }

        /// A frame body is peer input: any bytes give a decoded batch or an error, never a panic;
        /// and whatever rmp-serde accepts, the hand-written reader reads the same way.
        #[test]
        fn any_frame_body_decodes_or_errors(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let hand = decode(&bytes);
            if let Ok(reference) = decode_with_serde(&bytes) {
                prop_assert_eq!(hand, Ok(reference));
            }
        }
    }
}
