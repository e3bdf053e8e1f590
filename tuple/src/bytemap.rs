//! A hash map looked up by a key's bytes, for components that count or keep values per word.
//!
//! A tuple's string is read in place as bytes ([`crate::Tuple::get_str_bytes`]); looking it up
//! here costs no UTF-8 check and no call to `memcmp` for short keys, and a hit hands back the key
//! as the map stores it (already checked once, when it was inserted), so a bolt can emit it as a
//! `&str`. The hash is a folded multiply over the key's bytes, not the FIELDS grouping's
//! [`StableHasher`], so a map behind a FIELDS grouping still spreads its keys evenly.

use crate::value::SmolStr;
#[cfg(doc)]
use crate::value::StableHasher;

/// Keys of a [`ByteMap`]: anything that is a run of bytes.
pub trait ByteKey {
    fn key_bytes(&self) -> &[u8];
}

impl ByteKey for Box<str> {
    #[inline]
    fn key_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl ByteKey for SmolStr {
    /// Up to 23 bytes inline: a lookup compares them without following a pointer.
    #[inline]
    fn key_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl ByteKey for Box<[u8]> {
    #[inline]
    fn key_bytes(&self) -> &[u8] {
        self
    }
}

/// A map from byte keys to values: open addressing with linear probing, at most a third full (a
/// hit reads 1.25 slots on average; half full, 1.5, and the extra probe is a branch that the
/// predictor misses: 0.835 -> 0.815 s on 100 MB, 8 pairs).
///
/// Each slot holds its key and value, so a lookup reads one slot (one cache line, usually)
/// where a table with a separate control array reads two, one after the other: on word count's
/// tables, which other executors' batches keep pushing out of the first-level cache, that second
/// read was a quarter of the count and sink bolts' time (docs/performance.md).
///
/// A slot also holds its key's [`Head`]: a key of up to [`SHORT`] bytes is compared by its head
/// alone (two words), and hashed from it, so a lookup of a short key read 16 bytes at a time
/// from its batch ([`ByteMap::get_mut_in`]) never branches on the key's length.
pub struct ByteMap<K, V> {
    /// A power of two in length (or empty); `None` is a free slot.
    slots: Vec<Option<(Head, K, V)>>,
    len: usize,
}

/// Longest key compared by its head alone.
pub const SHORT: usize = 15;

/// A key's first [`SHORT`] bytes, zero-padded, little-endian, with its length in the top byte:
/// equal heads mean equal keys for keys of up to [`SHORT`] bytes. Longer keys share [`LONG`].
type Head = [u64; 2];

/// The head of every key longer than [`SHORT`] (a short key's top byte is at most 15).
const LONG: Head = [0, u64::MAX];

/// Masks of bytes `0..n` of a little-endian word, by `n`.
const LOW_BYTES: [u64; 9] = {
    let mut t = [0u64; 9];
    let mut n = 1;
    while n <= 8 {
        t[n] = u64::MAX >> (64 - 8 * n);
        n += 1;
    }
    t
};

/// The head of a key of `len` bytes (at most [`SHORT`]) from 16 bytes starting where it does:
/// two loads and two masks, whatever the length.
#[inline(always)]
fn head_in(w: &[u8; 16], len: usize) -> Head {
    let (lo, hi) = (le8(&w[..8]), le8(&w[8..]));
    let len = len & 15;
    [
        lo & LOW_BYTES[len.min(8)],
        (hi & LOW_BYTES[len.saturating_sub(8)]) | ((len as u64) << 56),
    ]
}

/// The head of `key`.
#[inline]
fn head_of(key: &[u8]) -> Head {
    if key.len() > SHORT {
        return LONG;
    }
    let mut w = [0u8; 16];
    w[..key.len()].copy_from_slice(key);
    head_in(&w, key.len())
}

impl<K, V> Default for ByteMap<K, V> {
    fn default() -> Self {
        ByteMap {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<K: ByteKey, V> std::fmt::Debug for ByteMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteMap").field("len", &self.len).finish()
    }
}

/// The table's hash: a short key's head folded with one multiply; a longer key's bytes through
/// [`crate::value::fold_bytes`] (in-process only, so free to differ from the routing hash,
/// [`StableHasher`], which must stay fixed).
#[inline(always)]
fn hash(head: Head, b: &[u8]) -> u64 {
    if head == LONG {
        crate::value::fold_bytes(
            0xa409_3822_299f_31d0,
            b,
            0x243f_6a88_85a3_08d3,
            0x1319_8a2e_0370_7344,
        )
    } else {
        hash_short(head)
    }
}

#[inline(always)]
fn hash_short(head: Head) -> u64 {
    crate::value::fold(
        head[0] ^ 0x243f_6a88_85a3_08d3,
        head[1] ^ 0x1319_8a2e_0370_7344,
    )
}

#[inline(always)]
fn le8(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[inline(always)]
fn le4(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Byte equality with fixed-size, overlapping loads for keys up to 16 bytes (most words): the
/// same answer as `a == b`, without a library call per comparison.
#[inline(always)]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n > 16 {
        a == b
    } else if n >= 8 {
        le8(a) == le8(b) && le8(&a[n - 8..]) == le8(&b[n - 8..])
    } else if n >= 4 {
        le4(a) == le4(b) && le4(&a[n - 4..]) == le4(&b[n - 4..])
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

/// Slots of a table that `len` keys fill at most a third.
fn slots_for(len: usize) -> usize {
    (len.max(8) * 3).next_power_of_two()
}

impl<K: ByteKey, V> ByteMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot holding the key with head `head` and bytes `key` (`Ok`), or the free slot where
    /// it would go (`Err`). The table is not empty and at most a third full, so the probe ends.
    #[inline(always)]
    fn find(&self, h: u64, head: Head, key: &[u8]) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            match self.slots.get(i) {
                Some(Some((hd, k, _)))
                    if *hd == head && (head != LONG || bytes_eq(k.key_bytes(), key)) =>
                {
                    return Ok(i);
                }
                Some(Some(_)) => i = (i + 1) & mask,
                _ => return Err(i),
            }
        }
    }

    /// The slot holding the short key whose head is `head`, if it is there.
    #[inline(always)]
    fn find_short(&self, head: Head) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut i = hash_short(head) as usize & mask;
        loop {
            match self.slots.get(i) {
                Some(Some((hd, _, _))) if *hd == head => return Some(i),
                Some(Some(_)) => i = (i + 1) & mask,
                _ => return None,
            }
        }
    }

    #[inline(always)]
    fn entry(&mut self, i: usize) -> Option<(&K, &mut V)> {
        match self.slots.get_mut(i) {
            Some(Some((_, k, v))) => Some((&*k, v)),
            _ => None,
        }
    }

    /// The stored key and its value, if `key` is there. Inlined into its callers: a call's frame
    /// was a fifth of a lookup's instructions.
    #[inline(always)]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<(&K, &mut V)> {
        if self.len == 0 {
            return None;
        }
        let head = head_of(key);
        let i = self.find(hash(head, key), head, key).ok()?;
        self.entry(i)
    }

    /// [`ByteMap::get_mut`] for a key read from a batch, with `window`, the 16 bytes starting
    /// where `key` does ([`crate::Tuple::window`]): a short key is hashed and compared from
    /// them, with no branch on its length.
    #[inline(always)]
    pub fn get_mut_in(&mut self, key: &[u8], window: Option<&[u8; 16]>) -> Option<(&K, &mut V)> {
        if self.len == 0 {
            return None;
        }
        let head = match window {
            Some(w) if key.len() <= SHORT => head_in(w, key.len()),
            _ => return self.get_mut(key),
        };
        let i = self.find_short(head)?;
        self.entry(i)
    }

    /// Sets `key`'s value, replacing any earlier one; returns the stored key and value.
    pub fn insert(&mut self, key: K, value: V) -> (&K, &mut V) {
        if (self.len + 1) * 3 > self.slots.len() {
            self.grow();
        }
        let head = head_of(key.key_bytes());
        let i = match self.find(hash(head, key.key_bytes()), head, key.key_bytes()) {
            Ok(i) => {
                if let Some((_, _, v)) = &mut self.slots[i] {
                    *v = value;
                }
                i
            }
            Err(i) => {
                self.slots[i] = Some((head, key, value));
                self.len += 1;
                i
            }
        };
        match &mut self.slots[i] {
            Some((_, k, v)) => (&*k, v),
            None => unreachable!("slot {i} was just filled"),
        }
    }

    /// Doubles the slots (or makes the first ones) and puts every entry back.
    #[cold]
    fn grow(&mut self) {
        let n = slots_for(self.len + 1);
        let old = std::mem::replace(&mut self.slots, (0..n).map(|_| None).collect());
        for (head, k, v) in old.into_iter().flatten() {
            if let Err(i) = self.find(hash(head, k.key_bytes()), head, k.key_bytes()) {
                self.slots[i] = Some((head, k, v));
            }
        }
    }

    /// Removes `key`, returning its value. The entries after it in its probe run move back, so
    /// no lookup stops early at the hole.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        if self.len == 0 {
            return None;
        }
        let head = head_of(key);
        let mut hole = self.find(hash(head, key), head, key).ok()?;
        let (_, _, value) = self.slots[hole].take()?;
        self.len -= 1;
        let mask = self.slots.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let home = match &self.slots[j] {
                None => break,
                Some((hd, k, _)) => hash(*hd, k.key_bytes()) as usize & mask,
            };
            // The entry at `j` may fill the hole unless its home lies after the hole (cyclically,
            // up to `j`): then it is already as close to home as it can be.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j].take();
                hole = j;
            }
        }
        Some(value)
    }

    /// Every key and value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots.iter().flatten().map(|(_, k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bytes_eq_is_slice_equality(a in proptest::collection::vec(0u8..4, 0..40),
                                      b in proptest::collection::vec(0u8..4, 0..40)) {
            prop_assert_eq!(bytes_eq(&a, &b), a == b);
            prop_assert!(bytes_eq(&a, &a.clone()));
        }

        #[test]
        fn behaves_as_a_hash_map(ops in proptest::collection::vec(
            (proptest::collection::vec(0u8..3, 0..20), any::<i64>()), 0..200)) {
            let mut ours: ByteMap<Box<[u8]>, i64> = ByteMap::new();
            let mut std_map = std::collections::HashMap::new();
            for (k, v) in ops {
                if v % 7 == 0 {
                    // Now and then a removal instead.
                    prop_assert_eq!(ours.remove(&k), std_map.remove(&k));
                    continue;
                }
                if let Some((_, slot)) = ours.get_mut(&k) {
                    *slot = slot.wrapping_add(v);
                } else {
                    ours.insert(k.clone().into(), v);
                }
                match std_map.get_mut(&k) {
                    Some(x) => *x = i64::wrapping_add(*x, v),
                    None => {
                        std_map.insert(k, v);
                    }
                }
            }
            prop_assert_eq!(ours.len(), std_map.len());
            for (k, v) in ours.iter() {
                prop_assert_eq!(std_map.get(&k[..]), Some(v));
            }
        }
    }

    proptest! {
        /// A lookup from a batch's 16 bytes (the key, then anything) finds what a lookup by the
        /// key's bytes finds: short keys by their head, long ones by their bytes.
        #[test]
        fn window_lookups_agree_with_byte_lookups(
            keys in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..20), 1..40),
            probe in proptest::collection::vec(0u8..3, 0..20),
            after in proptest::collection::vec(any::<u8>(), 16),
        ) {
            let mut m: ByteMap<Box<[u8]>, usize> = ByteMap::new();
            for (i, k) in keys.iter().enumerate() {
                m.insert(k.clone().into(), i);
            }
            for k in keys.iter().chain([&probe]) {
                let mut batch = k.clone();
                batch.extend_from_slice(&after);
                let window: &[u8; 16] = batch[..16].try_into().unwrap();
                let by_bytes = m.get_mut(k).map(|(k, v)| (k.clone(), *v));
                let by_window = m.get_mut_in(k, Some(window)).map(|(k, v)| (k.clone(), *v));
                prop_assert_eq!(by_window, by_bytes);
            }
        }
    }

    #[test]
    fn insert_replaces_and_hands_back_the_stored_key() {
        let mut m: ByteMap<Box<str>, i64> = ByteMap::new();
        m.insert("storm".into(), 1);
        let (k, v) = m.insert("storm".into(), 5);
        assert_eq!((&**k, *v), ("storm", 5));
        assert_eq!(m.len(), 1);
        let (k, v) = m.get_mut(b"storm").unwrap();
        assert_eq!((&**k, *v), ("storm", 5));
        assert!(m.get_mut(b"storms").is_none());
    }
}
