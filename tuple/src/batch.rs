//! Batches: what moves between executors. One byte buffer of encoded tuples per batch.
//!
//! Each tuple is appended as a header and its data (ack pairs, then the values as plain msgpack,
//! [`crate::wire`]), and read back in place as a [`Tuple`] view: nothing is built, moved or
//! dropped per tuple (docs/performance.md, "Tuples as views into their batch").
//!
//! Header, little-endian: receiving task (u32), source index into the batch's sources (u16),
//! ack pairs (u8), 0 (u8), source task (u32), birth stamp (u64), data length (u32).

use crate::tuple::{MAX_ACK_IDS, StreamSource, Tuple, put_ack_ids};
use crate::value::Value;
use crate::wire::{self, Out, ValueRef};

const HEADER: usize = 24;

/// Bytes a batch reserves per tuple it is sized for.
const BYTES_PER_TUPLE: usize = 32;

/// Tuples addressed to tasks of one receiving executor.
///
/// `bytes` is zero-filled room (filled a step at a time as the batch grows, up to the capacity
/// it was made with); `end` marks how much of it the tuples take. Writing into room
/// that is already there is a bounds check and plain stores (the header's 24 bytes are three
/// moves), where `Vec::extend_from_slice` was an out-of-line call per piece (10% of word count's
/// samples; docs/performance.md).
#[derive(Debug, Default, Clone)]
pub struct Batch {
    bytes: Vec<u8>,
    end: usize,
    /// The streams the tuples come from; a tuple names its own by index.
    sources: Vec<&'static StreamSource>,
    len: usize,
}

/// Why a tuple could not be added to a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("a batch holds tuples of at most 65535 streams")]
    TooManySources,
    #[error("a tuple's values take more than 4 GB")]
    TooLarge,
}

/// A batch's room, written at its end.
struct Room<'a> {
    bytes: &'a mut Vec<u8>,
    end: &'a mut usize,
}

impl Out for Room<'_> {
    #[inline(always)]
    fn put(&mut self, b: &[u8]) {
        let at = *self.end;
        let e = at + b.len();
        if e > self.bytes.len() {
            grow(self.bytes, e);
        }
        self.bytes[at..e].copy_from_slice(b);
        *self.end = e;
    }
}

/// A tuple's header (see the module documentation), built in a fixed-size array so that every
/// store has a constant offset.
#[inline(always)]
fn header_bytes(
    task: u32,
    src: u16,
    acks: u8,
    source_task: u32,
    born_us: u64,
    data_len: usize,
) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&task.to_le_bytes());
    h[4..6].copy_from_slice(&src.to_le_bytes());
    h[6] = acks;
    h[8..12].copy_from_slice(&source_task.to_le_bytes());
    h[12..20].copy_from_slice(&born_us.to_le_bytes());
    h[20..24].copy_from_slice(&(data_len as u32).to_le_bytes());
    h
}

/// `dst.copy_from_slice(src)` for fewer than 32 bytes, as two overlapping fixed-size copies
/// instead of a call to `memcpy`.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len().min(dst.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    if n >= 16 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..].copy_from_slice(&src[n - 16..]);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// Bytes of room zero-filled at a time, just ahead of the writes.
const ROOM_STEP: usize = 4096;

/// Makes room for at least `need` bytes: zero-fills the next step of the capacity the batch was
/// given (so a batch sent half empty never zeroed the rest), or grows it (doubling).
#[cold]
#[inline(never)]
fn grow(bytes: &mut Vec<u8>, need: usize) {
    let step = need.max(bytes.len() + ROOM_STEP);
    let n = if need <= bytes.capacity() {
        step.min(bytes.capacity())
    } else {
        step.max(bytes.capacity() * 2)
    };
    bytes.resize(n, 0);
}

impl Batch {
    /// An empty batch with room for about `tuples` small tuples.
    pub fn with_capacity(tuples: usize) -> Self {
        Self::with_byte_capacity(tuples.saturating_mul(BYTES_PER_TUPLE).min(1 << 20))
    }

    /// An empty batch with room for `bytes` bytes of tuples (a sender that knows the size of
    /// the batches it sends, [`Batch::byte_len`], asks for that and never grows one by copying).
    pub fn with_byte_capacity(bytes: usize) -> Self {
        Batch {
            bytes: Vec::with_capacity(bytes.min(1 << 24)),
            end: 0,
            sources: Vec::new(),
            len: 0,
        }
    }

    /// Tuples in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the tuples take.
    #[inline]
    pub fn byte_len(&self) -> usize {
        self.end
    }

    #[inline(always)]
    fn room(&mut self) -> Room<'_> {
        Room {
            bytes: &mut self.bytes,
            end: &mut self.end,
        }
    }

    #[inline(always)]
    fn source_index(&mut self, source: &'static StreamSource) -> Result<u16, BatchError> {
        // A batch nearly always carries one stream: its last source is checked first.
        if let Some(last) = self.sources.last()
            && std::ptr::eq(*last, source)
        {
            return Ok((self.sources.len() - 1) as u16);
        }
        if let Some(i) = self.sources.iter().position(|s| std::ptr::eq(*s, source)) {
            return Ok(i as u16);
        }
        if self.sources.len() > usize::from(u16::MAX) {
            return Err(BatchError::TooManySources);
        }
        self.sources.push(source);
        Ok((self.sources.len() - 1) as u16)
    }

    #[inline(always)]
    fn header(&mut self, task: u32, src: u16, acks: u8, source_task: u32, born_us: u64) -> usize {
        let at = self.end;
        // The data length (0 here) is filled in by `finish`.
        self.room()
            .put(&header_bytes(task, src, acks, source_task, born_us, 0));
        at
    }

    /// Writes the data length into the header at `at`, now that the data is written.
    #[inline(always)]
    fn finish(&mut self, at: usize) -> Result<(), BatchError> {
        let n = self.end - at - HEADER;
        let Ok(n) = u32::try_from(n) else {
            self.end = at;
            return Err(BatchError::TooLarge);
        };
        self.bytes[at + 20..at + 24].copy_from_slice(&n.to_le_bytes());
        self.len += 1;
        Ok(())
    }

    /// Starts a tuple: its header and ack pairs. The caller writes the values into
    /// [`Batch::room`] and calls [`Batch::finish`] with what this returns.
    #[inline(always)]
    fn begin(
        &mut self,
        task: u32,
        source: &'static StreamSource,
        source_task: u32,
        born_us: u64,
        ack_ids: &[(u64, u64)],
    ) -> Result<usize, BatchError> {
        let src = self.source_index(source)?;
        let acks = ack_ids.len().min(usize::from(MAX_ACK_IDS)) as u8;
        let at = self.header(task, src, acks, source_task, born_us);
        if acks > 0 {
            put_ack_ids(&mut self.room(), ack_ids);
        }
        Ok(at)
    }

    /// Appends a tuple built from its parts.
    #[inline(always)]
    pub fn push(
        &mut self,
        task: u32,
        source: &'static StreamSource,
        source_task: u32,
        born_us: u64,
        ack_ids: &[(u64, u64)],
        values: &[Value],
    ) -> Result<(), BatchError> {
        let at = self.begin(task, source, source_task, born_us, ack_ids)?;
        wire::put_values(&mut self.room(), values);
        self.finish(at)
    }

    /// Appends a tuple whose values are views (written as [`Batch::push`] writes owned ones).
    #[inline(always)]
    pub fn push_refs(
        &mut self,
        task: u32,
        source: &'static StreamSource,
        source_task: u32,
        born_us: u64,
        ack_ids: &[(u64, u64)],
        values: &[ValueRef<'_>],
    ) -> Result<(), BatchError> {
        // Word count's shapes, `[word]` and `[word, count]`, with no ack pair or one (an emit
        // anchored to one input of one tree), take the short way.
        let ack = match ack_ids {
            [] => None,
            [pair] => Some(*pair),
            _ => return self.push_general(task, source, source_task, born_us, ack_ids, values),
        };
        match values {
            [ValueRef::Str(s)] if s.len() < 32 => {
                self.push_short(task, source, source_task, born_us, ack, s, [0; 9], 0)
            }
            [ValueRef::Str(s), ValueRef::Int(i)] if s.len() < 32 && *i >= 0 => {
                let (tail, tail_len) = wire::uint_bytes(*i as u64);
                self.push_short(task, source, source_task, born_us, ack, s, tail, tail_len)
            }
            [ValueRef::Int(a), ValueRef::Int(b)] if ack.is_none() => {
                self.push_int_pair(task, source, source_task, born_us, *a, *b)
            }
            _ => self.push_general(task, source, source_task, born_us, ack_ids, values),
        }
    }

    /// Appends `[a, b]`, two integers and no ack pair (the acking messages), with one room
    /// check and fixed-size stores: the bytes [`Batch::push_refs`] would write. Out of line,
    /// like [`Batch::push_general`].
    #[inline(never)]
    fn push_int_pair(
        &mut self,
        task: u32,
        source: &'static StreamSource,
        source_task: u32,
        born_us: u64,
        a: i64,
        b: i64,
    ) -> Result<(), BatchError> {
        let src = self.source_index(source)?;
        let ((ab, al), (bb, bl)) = (wire::int_bytes(a), wire::int_bytes(b));
        let data = 1 + al + bl;
        let at = self.end;
        let need = at + HEADER + 1 + al + bb.len();
        if need > self.bytes.len() {
            grow(&mut self.bytes, need);
        }
        let dst = &mut self.bytes[at..need];
        dst[..HEADER].copy_from_slice(&header_bytes(task, src, 0, source_task, born_us, data));
        dst[HEADER] = 0x92;
        // Both stored whole; `b` overwrites what lies past `a`'s length.
        dst[HEADER + 1..HEADER + 10].copy_from_slice(&ab);
        dst[HEADER + 1 + al..HEADER + 10 + al].copy_from_slice(&bb);
        self.end = at + HEADER + data;
        self.len += 1;
        Ok(())
    }

    /// [`Batch::push_refs`] for any values. Out of line: the short shapes' callers (the
    /// per-tuple emit) keep a small frame.
    #[inline(never)]
    fn push_general(
        &mut self,
        task: u32,
        source: &'static StreamSource,
        source_task: u32,
        born_us: u64,
        ack_ids: &[(u64, u64)],
        values: &[ValueRef<'_>],
    ) -> Result<(), BatchError> {
        let at = self.begin(task, source, source_task, born_us, ack_ids)?;
        wire::put_value_refs(&mut self.room(), values);
        self.finish(at)
    }

    /// Appends `[s]` (`tail_len` 0) or `[s, x]` with `x` encoded in `tail[..tail_len]`, `s`
    /// under 32 bytes, at most one ack pair: the bytes [`Batch::push_refs`] would write, with one
    /// room check and fixed-size stores.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn push_short(
        &mut self,
        task: u32,
        source: &'static StreamSource,
        source_task: u32,
        born_us: u64,
        ack: Option<(u64, u64)>,
        s: &str,
        tail: [u8; 9],
        tail_len: usize,
    ) -> Result<(), BatchError> {
        let src = self.source_index(source)?;
        let n = s.len();
        let acks = if ack.is_some() { 16 } else { 0 };
        let data = acks + 2 + n + tail_len;
        let at = self.end;
        // The tail is stored whole (9 bytes); what lies past its length is overwritten later.
        // And the room holds at least 16 bytes from the string's start, so a reader can load a
        // short string 16 bytes at a time ([`Tuple::window`]).
        let need = at + HEADER + acks + 2 + (n + tail.len()).max(16);
        if need > self.bytes.len() {
            grow(&mut self.bytes, need);
        }
        let dst = &mut self.bytes[at..need];
        let h = header_bytes(
            task,
            src,
            u8::from(ack.is_some()),
            source_task,
            born_us,
            data,
        );
        dst[..HEADER].copy_from_slice(&h);
        let mut rest = &mut dst[HEADER..];
        if let Some((root, edge)) = ack {
            rest[..8].copy_from_slice(&root.to_le_bytes());
            rest[8..16].copy_from_slice(&edge.to_le_bytes());
            rest = &mut rest[16..];
        }
        rest[0] = if tail_len == 0 { 0x91 } else { 0x92 };
        rest[1] = 0xa0 | n as u8;
        copy_short(&mut rest[2..2 + n], s.as_bytes());
        rest[2 + n..2 + n + 9].copy_from_slice(&tail);
        self.end = at + HEADER + data;
        self.len += 1;
        Ok(())
    }

    /// Appends a tuple whose values are already encoded (the transport, after checking them
    /// with [`wire::check_values`]).
    pub fn push_encoded(
        &mut self,
        task: u32,
        source: &'static StreamSource,
        source_task: u32,
        born_us: u64,
        ack_ids: &[(u64, u64)],
        values: &[u8],
    ) -> Result<(), BatchError> {
        let at = self.begin(task, source, source_task, born_us, ack_ids)?;
        self.room().put(values);
        self.finish(at)
    }

    /// Appends a copy of a tuple, addressed to `task`.
    pub fn push_tuple(&mut self, task: u32, t: &Tuple<'_>) -> Result<(), BatchError> {
        let src = self.source_index(t.source())?;
        let at = self.header(task, src, t.ack_count(), t.source_task(), t.born_us());
        self.room().put(t.data());
        self.finish(at)
    }

    /// The tuples with their receiving tasks, read in place.
    #[inline]
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            b: &self.bytes,
            left: self.end,
            sources: &self.sources,
        }
    }

    /// The birth stamp of the first tuple.
    #[inline]
    pub fn first_born(&self) -> Option<u64> {
        self.iter().next().map(|(_, t)| t.born_us())
    }

    /// The streams its tuples come from.
    #[inline]
    pub fn sources(&self) -> &[&'static StreamSource] {
        &self.sources
    }
}

/// Iterates a batch's tuples.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    /// The batch's room from the next tuple on: its tuples, then slack ([`Tuple::window`]).
    b: &'a [u8],
    /// Bytes of tuples left in `b`.
    left: usize,
    sources: &'a [&'static StreamSource],
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = (u32, Tuple<'a>);

    #[inline]
    fn next(&mut self) -> Option<(u32, Tuple<'a>)> {
        if self.left < HEADER {
            return None;
        }
        let (h, rest) = self.b.split_first_chunk::<HEADER>()?;
        let task = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let src = usize::from(u16::from_le_bytes([h[4], h[5]]));
        let acks = h[6];
        let source_task = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        let born = u64::from_le_bytes([h[12], h[13], h[14], h[15], h[16], h[17], h[18], h[19]]);
        let n = u32::from_le_bytes([h[20], h[21], h[22], h[23]]) as usize;
        // Only `push*` writes batches, so these checks never fail; a safe reader pays for them.
        let (Some(data), Some(source), Some(left)) = (
            rest.get(..n),
            self.sources.get(src),
            self.left.checked_sub(HEADER + n),
        ) else {
            self.b = &[];
            self.left = 0;
            return None;
        };
        let room = rest;
        self.b = &rest[n..];
        self.left = left;
        Some((
            task,
            Tuple::view(source, source_task, born, acks, data, room),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Fields;
    use crate::values;

    #[test]
    fn short_strings_can_be_read_16_bytes_at_a_time_to_the_last_one() {
        use crate::wire::ValueRef;
        let a = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let words = ["a", "storm", "fifteen-bytes!!", "x"];
        for cap in [0, 1, 64, 4096] {
            let mut batch = Batch::with_byte_capacity(cap);
            for w in words {
                batch
                    .push_refs(1, a, 0, 0, &[], &[ValueRef::Str(w)])
                    .unwrap();
            }
            for ((_, t), w) in batch.iter().zip(words) {
                let key = t.get_str_bytes(0).unwrap();
                let window = t.window(key).expect("16 bytes of room from every word");
                assert_eq!(&window[..w.len()], w.as_bytes());
                assert!(
                    t.to_owned().window(key).is_none(),
                    "an owned tuple has no batch"
                );
            }
        }
    }

    #[test]
    fn tuples_come_back_in_order_with_their_parts() {
        let a = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let b = StreamSource::intern("__acker", "__ack_ack", &Fields::new(["id"]));
        let mut batch = Batch::with_capacity(4);
        batch.push(7, a, 3, 99, &[], &values!["storm"]).unwrap();
        batch
            .push(8, b, 4, 0, &[(1, 2), (3, 4)], &values![5, "x"])
            .unwrap();
        let owned = Tuple::from_parts(a, 9, &values!["kept", 1.5], &[(5, 6)], 12);
        batch.push_tuple(9, &owned).unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.sources().len(), 2);
        let got: Vec<(u32, Tuple<'_>)> = batch.iter().collect();
        assert_eq!(got[0].0, 7);
        assert_eq!(got[0].1.get_str(0), Some("storm"));
        assert_eq!(got[0].1.born_us(), 99);
        assert_eq!(got[0].1.source_component(), "split");
        assert!(got[0].1.first_ack_id().is_none());
        assert_eq!(got[1].1.ack_ids().as_slice(), &[(1, 2), (3, 4)]);
        assert_eq!(got[1].1.get(0), Some(ValueRef::Int(5)));
        assert_eq!(got[1].1.get(1), Some(ValueRef::Str("x")));
        assert_eq!(got[1].1.source_task(), 4);
        assert_eq!(got[2].1, owned);
        assert_eq!(got[2].1.to_owned(), owned);
        assert_eq!(batch.first_born(), Some(99));
    }

    proptest::proptest! {
        /// Whatever fields repeat or change from tuple to tuple, and however long the data
        /// (the room is zeroed a step at a time, or grows, as it fills), every tuple comes back
        /// as it was pushed.
        #[test]
        fn tuples_round_trip(
            tuples in proptest::collection::vec(
                (0u32..3, 0usize..2, 0u32..3, 0u64..3, 0usize..3, 0usize..600),
                0..60,
            ),
            start_room in proptest::prop_oneof![0usize..64, 4000usize..9000],
        ) {
            let srcs = [
                StreamSource::intern("a", "default", &Fields::new(["x"])),
                StreamSource::intern("b", "other", &Fields::new(["x", "y"])),
            ];
            let mut batch = Batch::with_byte_capacity(start_room);
            let mut want = Vec::new();
            for (task, src, source_task, born, acks, len) in tuples {
                let ids: Vec<(u64, u64)> = (0..acks as u64).map(|i| (i + 1, i + born)).collect();
                let text = "w".repeat(len);
                let values = values![text.as_str(), len as i64];
                batch.push(task * 7, srcs[src], source_task, born, &ids, &values).unwrap();
                want.push((task * 7, Tuple::from_parts(srcs[src], source_task, &values, &ids, born)));
            }
            proptest::prop_assert_eq!(batch.len(), want.len());
            let got: Vec<(u32, Tuple<'_>)> = batch.iter().collect();
            proptest::prop_assert_eq!(got.len(), want.len());
            for ((gt, g), (wt, w)) in got.iter().zip(&want) {
                proptest::prop_assert_eq!(gt, wt);
                proptest::prop_assert_eq!(g, w);
                proptest::prop_assert_eq!(g.born_us(), w.born_us());
                proptest::prop_assert_eq!(g.source_task(), w.source_task());
                let (ga, wa) = (g.ack_ids(), w.ack_ids());
                proptest::prop_assert_eq!(ga.as_slice(), wa.as_slice());
            }
        }

        /// Word count's shapes take `push_short`; their bytes are those of the general path.
        #[test]
        fn short_tuples_are_written_as_the_general_path_writes_them(
            word in proptest::string::string_regex("[a-z\u{e9}]{0,40}").unwrap(),
            count in proptest::prop_oneof![0i64..200, proptest::prelude::any::<i64>()],
            with_count: bool,
            with_ack: bool,
        ) {
            let src = StreamSource::intern("count", "default", &Fields::new(["word", "count"]));
            let refs = [ValueRef::Str(&word), ValueRef::Int(count)];
            let pair = [ValueRef::Int(count), ValueRef::Int(count.wrapping_mul(7919))];
            let values = match (with_count, word.len() % 3) {
                (true, 0) if !with_ack => &pair[..],
                (true, _) => &refs[..],
                (false, _) => &refs[..1],
            };
            let pair = [(u64::MAX - 3, 12_345)];
            let ids: &[(u64, u64)] = if with_ack { &pair } else { &[] };
            let mut short = Batch::with_byte_capacity(8);
            short.push_refs(3, src, 5, 77, ids, values).unwrap();
            short.push_refs(4, src, 5, 78, ids, values).unwrap();
            let mut general = Batch::with_byte_capacity(8);
            let owned: Vec<Value> = values.iter().map(ValueRef::to_value).collect();
            general.push(3, src, 5, 77, ids, &owned).unwrap();
            general.push(4, src, 5, 78, ids, &owned).unwrap();
            proptest::prop_assert_eq!(short.byte_len(), general.byte_len());
            proptest::prop_assert_eq!(
                &short.bytes[..short.end],
                &general.bytes[..general.end]
            );
        }
    }
}
