//! Tuples: the unit of data that moves between tasks.
//!
//! A tuple carries its values, the task that emitted it, and a reference to an interned
//! [`StreamSource`] (component, stream and field names). The source is interned once per
//! (component, stream, fields) for the life of the process, so a tuple names its origin with one
//! pointer: no reference count is touched per tuple, which keeps cores from fighting over a shared
//! cache line on the hot path.

use crate::value::{Fields, Value, Values};
use crate::wire::{self, ValueIter, ValueRef};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// The name of the stream used when none is given, as in Storm.
pub const DEFAULT_STREAM: &str = "default";

/// Where a tuple came from: component, stream and the stream's declared fields.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StreamSource {
    pub component: String,
    pub stream: String,
    pub fields: Fields,
}

impl StreamSource {
    /// Returns the process-wide interned copy of this source.
    ///
    /// Interned sources are never freed; there is one per distinct (component, stream, fields), so
    /// memory is bounded by the topologies' shapes, not by how many times they run.
    pub fn intern(component: &str, stream: &str, fields: &Fields) -> &'static StreamSource {
        static TABLE: OnceLock<Mutex<HashSet<&'static StreamSource>>> = OnceLock::new();
        let probe = StreamSource {
            component: component.to_owned(),
            stream: stream.to_owned(),
            fields: fields.clone(),
        };
        let mut table = TABLE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(s) = table.get(&probe) {
            return s;
        }
        let leaked: &'static StreamSource = Box::leak(Box::new(probe));
        table.insert(leaked);
        leaked
    }
}

/// Component id of system tuples (ticks, acker messages).
pub const SYSTEM_COMPONENT: &str = "__system";
/// Streams of the acking protocol (Storm's names).
pub const ACK_INIT_STREAM: &str = "__ack_init";
pub const ACK_ACK_STREAM: &str = "__ack_ack";
pub const ACK_FAIL_STREAM: &str = "__ack_fail";

/// The interned source of a system stream, for tuples that arrive from another worker. `None` for
/// streams that are not system streams.
pub fn system_source(component: &str, stream: &str) -> Option<&'static StreamSource> {
    let fields = match stream {
        ACK_INIT_STREAM | ACK_ACK_STREAM => Fields::new(["id", "val"]),
        ACK_FAIL_STREAM => Fields::new(["id"]),
        "__tick" => Fields::new(["tick"]),
        _ => return None,
    };
    Some(StreamSource::intern(component, stream, &fields))
}

/// Acking identity of a tuple: for each spout tuple (root id) it belongs to, the random id of the
/// edge this tuple is. Empty when acking is off or the tuple is unanchored.
pub type AckIds = SmallVec<[(u64, u64); 1]>;

/// A message id a spout attaches to a tuple it wants acked or failed, as Storm's `msgId`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageId {
    Int(u64),
    Str(String),
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageId::Int(i) => write!(f, "{i}"),
            MessageId::Str(s) => f.write_str(s),
        }
    }
}

/// Microseconds since the Unix epoch: the clock tuples are stamped with, comparable across the
/// processes of one machine (and of machines whose clocks are synchronised).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, from the same clock as [`now_us`] (Gale's one clock helper).
pub fn now_secs() -> u64 {
    now_us() / 1_000_000
}

/// One tuple as a bolt receives it: a view of its bytes where they lie in their batch.
///
/// Values are read in place ([`Tuple::get`] returns a [`ValueRef`] borrowing from the batch); a
/// component that keeps a tuple past `execute` takes [`Tuple::to_owned`], a `Tuple<'static>`
/// with its own copy of the bytes. `Tuple::new` builds an owned one from [`Values`] (tests, ticks).
#[derive(Clone)]
pub struct Tuple<'a> {
    source: &'static StreamSource,
    source_task: u32,
    /// When the spout tuple this one descends from was emitted ([`now_us`]); 0 if unknown.
    born_us: u64,
    /// Number of (root, edge) pairs at the start of `data`, 16 bytes each.
    acks: u8,
    /// The ack pairs (little-endian) followed by the values ([`crate::wire::put_values`]).
    data: Cow<'a, [u8]>,
    /// For a view: its batch's bytes from `data`'s start to the end of the batch's room (the
    /// tuples after it, then slack), so that a short value can be read 16 bytes at a time
    /// ([`Tuple::window`]). Empty for an owned tuple.
    room: &'a [u8],
}

impl Tuple<'static> {
    /// Builds a tuple; the runtime does this, and tests of single components may too.
    pub fn new(source: &'static StreamSource, source_task: u32, values: Values) -> Self {
        Self::from_parts(source, source_task, &values, &[], 0)
    }

    /// Builds an owned tuple with every field.
    pub fn from_parts(
        source: &'static StreamSource,
        source_task: u32,
        values: &[Value],
        ack_ids: &[(u64, u64)],
        born_us: u64,
    ) -> Self {
        let mut data = Vec::with_capacity(16 * ack_ids.len() + 16);
        put_ack_ids(&mut data, ack_ids);
        wire::put_values(&mut data, values);
        Tuple {
            source,
            source_task,
            born_us,
            acks: ack_ids.len().min(usize::from(MAX_ACK_IDS)) as u8,
            data: Cow::Owned(data),
            room: &[],
        }
    }
}

/// Most (root, edge) pairs a tuple carries: one per spout tuple it descends from.
pub const MAX_ACK_IDS: u8 = u8::MAX;

/// Appends ack pairs as a tuple's bytes hold them (at most [`MAX_ACK_IDS`]).
#[inline]
pub(crate) fn put_ack_ids<O: wire::Out + ?Sized>(out: &mut O, ids: &[(u64, u64)]) {
    for (r, e) in ids.iter().take(usize::from(MAX_ACK_IDS)) {
        out.put(&r.to_le_bytes());
        out.put(&e.to_le_bytes());
    }
}

#[inline]
fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

impl<'a> Tuple<'a> {
    /// A view of a tuple's parts; `data` is its ack pairs then its values, `room` the batch's
    /// bytes from `data`'s start on (see the field docs).
    #[inline]
    pub(crate) fn view(
        source: &'static StreamSource,
        source_task: u32,
        born_us: u64,
        acks: u8,
        data: &'a [u8],
        room: &'a [u8],
    ) -> Self {
        Tuple {
            source,
            source_task,
            born_us,
            acks,
            data: Cow::Borrowed(data),
            room,
        }
    }

    /// The 16 bytes of the batch that start where `bytes` (a value read from this tuple, say
    /// [`Tuple::get_str_bytes`]) starts: the value, then whatever follows it. A short key can
    /// then be loaded and masked instead of read by its length class, a branch no predictor
    /// learns (docs/performance.md). `None` for an owned tuple, or at the very end of a batch.
    #[inline(always)]
    pub fn window(&self, bytes: &[u8]) -> Option<&'a [u8; 16]> {
        let off = (bytes.as_ptr() as usize).wrapping_sub(self.room.as_ptr() as usize);
        let w = self.room.get(off..off.checked_add(16)?)?;
        w.try_into().ok()
    }

    /// A copy that owns its bytes, to keep past `execute` (windows, joins, pending acks).
    pub fn to_owned(&self) -> Tuple<'static> {
        Tuple {
            source: self.source,
            source_task: self.source_task,
            born_us: self.born_us,
            acks: self.acks,
            data: Cow::Owned(self.data.to_vec()),
            room: &[],
        }
    }

    /// This tuple with new ack ids (the runtime's copies of one emission each get their own).
    pub fn with_ack_ids(&self, ids: &[(u64, u64)]) -> Tuple<'static> {
        let mut data = Vec::with_capacity(16 * ids.len() + self.values_bytes().len());
        put_ack_ids(&mut data, ids);
        data.extend_from_slice(self.values_bytes());
        Tuple {
            source: self.source,
            source_task: self.source_task,
            born_us: self.born_us,
            acks: ids.len().min(usize::from(MAX_ACK_IDS)) as u8,
            data: Cow::Owned(data),
            room: &[],
        }
    }

    /// Stamps the time its spout tuple was emitted (the runtime does this).
    #[inline]
    pub fn with_born(mut self, born_us: u64) -> Self {
        self.born_us = born_us;
        self
    }

    /// When the spout tuple behind this one was emitted, in microseconds since the Unix epoch
    /// (0 if unknown). End-to-end latency is measured from it.
    #[inline]
    pub fn born_us(&self) -> u64 {
        self.born_us
    }

    /// The values' bytes (plain msgpack, [`crate::wire`]).
    #[inline]
    pub fn values_bytes(&self) -> &[u8] {
        self.data
            .get(16 * usize::from(self.acks)..)
            .unwrap_or_default()
    }

    /// The values, read in place.
    #[inline]
    pub fn values(&self) -> ValueIter<'_> {
        ValueIter::of_values(self.values_bytes())
    }

    /// Owned copies of the values.
    pub fn to_values(&self) -> Values {
        wire::to_values(self.values_bytes())
    }

    /// How many values the tuple has.
    #[inline]
    pub fn len(&self) -> usize {
        let mut r = wire::Reader {
            b: self.values_bytes(),
        };
        r.array().unwrap_or(0)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value at a position, as Storm's `getValue(i)`, read in place.
    #[inline]
    pub fn get(&self, i: usize) -> Option<ValueRef<'_>> {
        self.values().nth(i)
    }

    /// Value of a named field, as Storm's `getValueByField`.
    pub fn get_by_field(&self, name: &str) -> Option<ValueRef<'_>> {
        self.source.fields.index_of(name).and_then(|i| self.get(i))
    }

    /// How many values the tuple has, and a reader at the first: for components that read
    /// several values in one pass ([`wire::Reader::str_bytes`], [`wire::Reader::int_value`]).
    #[inline]
    pub fn reader(&self) -> Option<(usize, wire::Reader<'_>)> {
        let mut r = wire::Reader {
            b: self.values_bytes(),
        };
        let n = r.array().ok()?;
        Some((n, r))
    }

    /// A reader at value `i`, if the tuple has one.
    #[inline]
    fn at(&self, i: usize) -> Option<wire::Reader<'_>> {
        let mut r = wire::Reader {
            b: self.values_bytes(),
        };
        if i >= r.array().ok()? {
            return None;
        }
        for _ in 0..i {
            r.skip().ok()?;
        }
        Some(r)
    }

    /// String at a position, if that value is a string (Storm's `getString`).
    #[inline]
    pub fn get_str(&self, i: usize) -> Option<&str> {
        self.at(i)?.str_value()
    }

    /// The UTF-8 bytes of the string at a position, if that value is a string, without checking
    /// them: for components that only compare or store them.
    #[inline]
    pub fn get_str_bytes(&self, i: usize) -> Option<&[u8]> {
        self.at(i)?.str_bytes()
    }

    /// Integer at a position, if that value is an integer (Storm's `getLong`).
    #[inline]
    pub fn get_int(&self, i: usize) -> Option<i64> {
        self.at(i)?.int_value()
    }

    #[inline]
    pub fn fields(&self) -> &Fields {
        &self.source.fields
    }

    #[inline]
    pub fn source_component(&self) -> &str {
        &self.source.component
    }

    #[inline]
    pub fn source_stream(&self) -> &str {
        &self.source.stream
    }

    #[inline]
    pub fn source(&self) -> &'static StreamSource {
        self.source
    }

    #[inline]
    pub fn source_task(&self) -> u32 {
        self.source_task
    }

    /// The acking identity: for each spout tuple it descends from, (root id, edge id).
    #[inline]
    pub fn ack_ids(&self) -> AckIds {
        self.ack_pairs().collect()
    }

    /// The first (root, edge) pair, the key acking keeps per input.
    #[inline]
    pub fn first_ack_id(&self) -> Option<(u64, u64)> {
        if self.acks == 0 || self.data.len() < 16 {
            return None;
        }
        Some((le64(&self.data[..8]), le64(&self.data[8..16])))
    }

    /// The (root, edge) pairs, read in place.
    #[inline]
    pub fn ack_pairs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let n = usize::from(self.acks).min(self.data.len() / 16);
        self.data[..16 * n]
            .chunks_exact(16)
            .map(|c| (le64(&c[..8]), le64(&c[8..])))
    }

    /// How many (root, edge) pairs it carries.
    #[inline]
    pub fn ack_count(&self) -> u8 {
        self.acks
    }

    /// The ack pairs' bytes followed by the values' bytes, as a batch holds them.
    #[inline]
    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }

    /// True for Storm's tick tuples (component `__system`, stream `__tick`).
    #[inline]
    pub fn is_tick(&self) -> bool {
        self.source.component == "__system" && self.source.stream == "__tick"
    }
}

impl std::fmt::Debug for Tuple<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tuple")
            .field("component", &self.source.component)
            .field("stream", &self.source.stream)
            .field("source_task", &self.source_task)
            .field("values", &self.values().collect::<Vec<_>>())
            .field("ack_ids", &self.ack_ids())
            .field("born_us", &self.born_us)
            .finish()
    }
}

impl PartialEq for Tuple<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.source, other.source)
            && self.source_task == other.source_task
            && self.acks == other.acks
            && self.data == other.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;

    #[test]
    fn interning_returns_the_same_source() {
        let f = Fields::new(["word"]);
        let a = StreamSource::intern("split", "default", &f);
        let b = StreamSource::intern("split", "default", &f);
        assert!(std::ptr::eq(a, b));
        let c = StreamSource::intern("split", "other", &f);
        assert!(!std::ptr::eq(a, c));
    }

    #[test]
    fn field_access_by_name() {
        let src = StreamSource::intern("count", "default", &Fields::new(["word", "count"]));
        let t = Tuple::new(src, 3, values!["storm", 2]);
        assert_eq!(t.get_by_field("count"), Some(ValueRef::Int(2)));
        assert_eq!(t.get_str(0), Some("storm"));
        assert_eq!(t.to_values(), values!["storm", 2]);
        assert_eq!(t.get_by_field("nope"), None);
        assert_eq!(t.source_component(), "count");
        assert_eq!(t.source_task(), 3);
    }
}
