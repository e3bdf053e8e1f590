//! Batches: what moves between executors. One byte buffer of encoded tuples per batch.
//!
//! Each tuple is appended as a fixed 24-byte header and its data (ack pairs, then the values as
//! plain msgpack, [`crate::wire`]), and read back in place as a [`Tuple`] view: nothing is built,
//! moved or dropped per tuple, and a word tuple takes ~30 bytes instead of a 112-byte object
//! (docs/performance.md, "Tuples as views into their batch").
//!
//! Header, little-endian: receiving task (u32), source index into the batch's sources (u16),
//! ack pairs (u8), 0 (u8), source task (u32), birth stamp (u64), data length (u32).

use crate::tuple::{MAX_ACK_IDS, StreamSource, Tuple, put_ack_ids};
use crate::value::Value;
use crate::wire::{self, ValueRef};

const HEADER: usize = 24;

/// Bytes a batch reserves per tuple it is sized for.
const BYTES_PER_TUPLE: usize = 32;

/// Tuples addressed to tasks of one receiving executor.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    bytes: Vec<u8>,
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

impl Batch {
    /// An empty batch with room for about `tuples` small tuples.
    pub fn with_capacity(tuples: usize) -> Self {
        Batch {
            bytes: Vec::with_capacity(tuples.saturating_mul(BYTES_PER_TUPLE).min(1 << 20)),
            sources: Vec::new(),
            len: 0,
        }
    }

    /// An empty batch with room for `bytes` bytes of tuples (a sender that knows the size of
    /// the batches it sends, [`Batch::byte_len`], asks for that and never grows one by copying).
    pub fn with_byte_capacity(bytes: usize) -> Self {
        Batch {
            bytes: Vec::with_capacity(bytes.min(1 << 24)),
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
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
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
        let mut h = [0u8; HEADER];
        h[0..4].copy_from_slice(&task.to_le_bytes());
        h[4..6].copy_from_slice(&src.to_le_bytes());
        h[6] = acks;
        h[8..12].copy_from_slice(&source_task.to_le_bytes());
        h[12..20].copy_from_slice(&born_us.to_le_bytes());
        let at = self.bytes.len();
        self.bytes.extend_from_slice(&h);
        at
    }

    /// Writes the data length into the header at `at`, now that the data is written.
    #[inline(always)]
    fn finish(&mut self, at: usize) -> Result<(), BatchError> {
        let n = self.bytes.len() - at - HEADER;
        let Ok(n) = u32::try_from(n) else {
            self.bytes.truncate(at);
            return Err(BatchError::TooLarge);
        };
        self.bytes[at + 20..at + 24].copy_from_slice(&n.to_le_bytes());
        self.len += 1;
        Ok(())
    }

    /// Appends one tuple: its header, its ack pairs, then whatever `values` writes.
    #[inline(always)]
    fn push_with(
        &mut self,
        task: u32,
        source: &'static StreamSource,
        source_task: u32,
        born_us: u64,
        ack_ids: &[(u64, u64)],
        values: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), BatchError> {
        let src = self.source_index(source)?;
        let acks = ack_ids.len().min(usize::from(MAX_ACK_IDS)) as u8;
        let at = self.header(task, src, acks, source_task, born_us);
        if acks > 0 {
            put_ack_ids(&mut self.bytes, ack_ids);
        }
        values(&mut self.bytes);
        self.finish(at)
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
        self.push_with(task, source, source_task, born_us, ack_ids, |b| {
            wire::put_values(b, values)
        })
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
        self.push_with(task, source, source_task, born_us, ack_ids, |b| {
            wire::put_value_refs(b, values)
        })
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
        self.push_with(task, source, source_task, born_us, ack_ids, |b| {
            b.extend_from_slice(values)
        })
    }

    /// Appends a copy of a tuple, addressed to `task`.
    pub fn push_tuple(&mut self, task: u32, t: &Tuple<'_>) -> Result<(), BatchError> {
        let src = self.source_index(t.source())?;
        let at = self.header(task, src, t.ack_count(), t.source_task(), t.born_us());
        self.bytes.extend_from_slice(t.data());
        self.finish(at)
    }

    /// The tuples with their receiving tasks, read in place.
    #[inline]
    pub fn iter(&self) -> BatchIter<'_> {
        BatchIter {
            b: &self.bytes,
            sources: &self.sources,
        }
    }

    /// The birth stamp of the first tuple.
    pub fn first_born(&self) -> Option<u64> {
        self.iter().next().map(|(_, t)| t.born_us())
    }

    /// The streams its tuples come from.
    pub fn sources(&self) -> &[&'static StreamSource] {
        &self.sources
    }
}

/// Iterates a batch's tuples.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    b: &'a [u8],
    sources: &'a [&'static StreamSource],
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = (u32, Tuple<'a>);

    #[inline]
    fn next(&mut self) -> Option<(u32, Tuple<'a>)> {
        let (h, rest) = self.b.split_first_chunk::<HEADER>()?;
        let task = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let src = usize::from(u16::from_le_bytes([h[4], h[5]]));
        let acks = h[6];
        let source_task = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        let born = u64::from_le_bytes([h[12], h[13], h[14], h[15], h[16], h[17], h[18], h[19]]);
        let n = u32::from_le_bytes([h[20], h[21], h[22], h[23]]) as usize;
        // Only `push*` writes batches, so these checks never fail; a safe reader pays for them.
        let (Some(data), Some(source)) = (rest.get(..n), self.sources.get(src)) else {
            self.b = &[];
            return None;
        };
        self.b = &rest[n..];
        Some((task, Tuple::view(source, source_task, born, acks, data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Fields;
    use crate::values;

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
}
