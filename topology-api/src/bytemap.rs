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
use hashbrown::HashTable;

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

/// A map from byte keys to values.
pub struct ByteMap<K, V> {
    table: HashTable<(K, V)>,
}

impl<K, V> Default for ByteMap<K, V> {
    fn default() -> Self {
        ByteMap {
            table: HashTable::new(),
        }
    }
}

impl<K: ByteKey, V> std::fmt::Debug for ByteMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteMap")
            .field("len", &self.table.len())
            .finish()
    }
}

/// The table's hash: [`crate::value::fold_bytes`] with constants of its own (in-process only,
/// so free to differ from the routing hash, [`StableHasher`], which must stay fixed).
#[inline]
fn hash(b: &[u8]) -> u64 {
    crate::value::fold_bytes(
        0xa409_3822_299f_31d0,
        b,
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
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
#[inline]
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

impl<K: ByteKey, V> ByteMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The stored key and its value, if `key` is there. Inlined into its callers: a call's frame
    /// was a fifth of a lookup's instructions.
    #[inline(always)]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<(&K, &mut V)> {
        self.table
            .find_mut(hash(key), |(k, _)| bytes_eq(k.key_bytes(), key))
            .map(|(k, v)| (&*k, v))
    }

    /// Sets `key`'s value, replacing any earlier one; returns the stored key and value.
    pub fn insert(&mut self, key: K, value: V) -> (&K, &mut V) {
        let h = hash(key.key_bytes());
        let entry = self.table.entry(
            h,
            |(k, _)| bytes_eq(k.key_bytes(), key.key_bytes()),
            |(k, _)| hash(k.key_bytes()),
        );
        let slot = match entry {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                o.get_mut().1 = value;
                o.into_mut()
            }
            hashbrown::hash_table::Entry::Vacant(v) => v.insert((key, value)).into_mut(),
        };
        (&slot.0, &mut slot.1)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.table
            .find_entry(hash(key), |(k, _)| bytes_eq(k.key_bytes(), key))
            .ok()
            .map(|e| e.remove().0.1)
    }

    /// Every key and value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.table.iter().map(|(k, v)| (k, v))
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
