//! Stream groupings as pure routing functions.
//!
//! Each function takes the subscriber's task ids (sorted ascending, never empty) and returns where
//! a tuple goes. They hold no locks and allocate nothing; the runtime calls them once per tuple.

use crate::emit::EmitValues;
use crate::value::{StableHasher, Value};
use crate::wire::ValueRef;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a stream's tuples are split over the subscribing component's tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grouping {
    /// Even spread over all tasks.
    Shuffle,
    /// Same values of these fields -> same task.
    Fields(Vec<String>),
    /// Every task gets a copy.
    All,
    /// The lowest task id gets everything.
    Global,
    /// Storm: "don't care"; Gale routes it as SHUFFLE, as Storm does.
    None,
    /// The emitter names the task with `emit_direct`.
    Direct,
    /// Tasks in the emitter's worker when there are any, else SHUFFLE.
    LocalOrShuffle,
    /// Key split between two candidate tasks, the less loaded one chosen (Storm's PartialKeyGrouping).
    PartialKey(Vec<String>),
}

impl Grouping {
    /// The YAML names of every grouping type, for error messages.
    pub const TYPE_NAMES: &'static [&'static str] = &[
        "SHUFFLE",
        "FIELDS",
        "ALL",
        "GLOBAL",
        "NONE",
        "DIRECT",
        "LOCAL_OR_SHUFFLE",
        "PARTIAL_KEY",
    ];

    pub fn type_name(&self) -> &'static str {
        match self {
            Grouping::Shuffle => "SHUFFLE",
            Grouping::Fields(_) => "FIELDS",
            Grouping::All => "ALL",
            Grouping::Global => "GLOBAL",
            Grouping::None => "NONE",
            Grouping::Direct => "DIRECT",
            Grouping::LocalOrShuffle => "LOCAL_OR_SHUFFLE",
            Grouping::PartialKey(_) => "PARTIAL_KEY",
        }
    }

    /// The field names this grouping hashes, if any.
    pub fn key_fields(&self) -> &[String] {
        match self {
            Grouping::Fields(f) | Grouping::PartialKey(f) => f,
            _ => &[],
        }
    }
}

impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grouping::Fields(k) | Grouping::PartialKey(k) => {
                write!(f, "{}({})", self.type_name(), k.join(", "))
            }
            _ => f.write_str(self.type_name()),
        }
    }
}

/// Values a grouping can hash keys of: owned [`Value`]s, views ([`ValueRef`]) or either
/// ([`EmitValues`]). The same values hash alike in every form.
pub trait KeyValues {
    /// Feeds the value at `i` (null if there is none) into `h`.
    fn hash_at(&self, i: usize, h: &mut StableHasher);
}

impl KeyValues for [Value] {
    #[inline]
    fn hash_at(&self, i: usize, h: &mut StableHasher) {
        match self.get(i) {
            Some(v) => v.stable_hash(h),
            None => Value::Null.stable_hash(h),
        }
    }
}

impl<const N: usize> KeyValues for [Value; N] {
    #[inline]
    fn hash_at(&self, i: usize, h: &mut StableHasher) {
        self[..].hash_at(i, h)
    }
}

impl KeyValues for Vec<Value> {
    #[inline]
    fn hash_at(&self, i: usize, h: &mut StableHasher) {
        self[..].hash_at(i, h)
    }
}

impl KeyValues for crate::value::Values {
    #[inline]
    fn hash_at(&self, i: usize, h: &mut StableHasher) {
        self[..].hash_at(i, h)
    }
}

impl KeyValues for [ValueRef<'_>] {
    #[inline(always)]
    fn hash_at(&self, i: usize, h: &mut StableHasher) {
        match self.get(i) {
            Some(v) => v.stable_hash(h),
            None => Value::Null.stable_hash(h),
        }
    }
}

impl KeyValues for EmitValues<'_> {
    #[inline(always)]
    fn hash_at(&self, i: usize, h: &mut StableHasher) {
        match self {
            EmitValues::Owned(v) => v.hash_at(i, h),
            EmitValues::Refs(v) => v.hash_at(i, h),
        }
    }
}

/// Hash of the key fields at positions `key_idx` of `values`.
#[inline(always)]
pub fn key_hash<V: KeyValues + ?Sized>(values: &V, key_idx: &[usize]) -> u64 {
    let mut h = StableHasher::new();
    for &i in key_idx {
        values.hash_at(i, &mut h);
    }
    h.finish()
}

/// FIELDS: the task for a key.
///
/// Contract: a pure function of the key values and the task list, so equal keys go to the same
/// task in every worker of every process.
///
/// ```
/// use gale_tuple::{grouping::fields_target, Value};
/// let tasks = [5, 6, 7];
/// let a = fields_target(&[Value::from("storm")], &[0], &tasks);
/// assert_eq!(a, fields_target(&[Value::from("storm")], &[0], &tasks));
/// assert!(tasks.contains(&a));
/// ```
#[inline(always)]
pub fn fields_target<V: KeyValues + ?Sized>(values: &V, key_idx: &[usize], tasks: &[u32]) -> u32 {
    tasks[reduce(key_hash(values, key_idx), tasks.len())]
}

/// Maps a well-mixed 64-bit hash onto `0..n` with a multiply and a shift instead of a division
/// (Lemire's "fastrange"); a 64-bit `%` costs tens of cycles per tuple.
#[inline]
pub fn reduce(hash: u64, n: usize) -> usize {
    ((hash as u128 * n as u128) >> 64) as usize
}

/// GLOBAL: the lowest task id.
///
/// ```
/// assert_eq!(gale_tuple::grouping::global_target(&[9, 4, 7]), 4);
/// ```
#[inline]
pub fn global_target(tasks: &[u32]) -> u32 {
    tasks.iter().copied().min().unwrap_or(0)
}

/// SHUFFLE (and NONE): round robin from a per-emitter starting offset.
///
/// Contract: over any run of `k` consecutive calls, every task receives either `floor(k/n)` or
/// `ceil(k/n)` tuples, so the spread is even within one tuple per task.
///
/// ```
/// use gale_tuple::grouping::Shuffle;
/// let tasks = [1, 2, 3];
/// let mut s = Shuffle::new(7);
/// let mut n = [0; 4];
/// for _ in 0..30 { n[s.next(&tasks) as usize] += 1; }
/// assert_eq!(&n[1..], &[10, 10, 10]);
/// ```
#[derive(Clone, Debug)]
pub struct Shuffle {
    next: usize,
}

impl Shuffle {
    /// `seed` spreads different emitters' starting points (the runtime passes the emitting task id),
    /// so that many emitters do not all start on the same task.
    pub fn new(seed: u64) -> Self {
        Shuffle {
            next: seed as usize,
        }
    }

    #[inline]
    pub fn next(&mut self, tasks: &[u32]) -> u32 {
        tasks[self.next_index(tasks.len())]
    }

    /// The position among `n` tasks of the next one (`n` > 0).
    #[inline]
    pub fn next_index(&mut self, n: usize) -> usize {
        if self.next >= n {
            self.next %= n;
        }
        let i = self.next;
        self.next += 1;
        i
    }
}

/// PARTIAL_KEY: of the two candidate tasks for a key, the one this emitter has sent fewer tuples.
///
/// Contract: a key only ever goes to one of its two candidates (so a downstream merge step needs
/// only two partial results per key); `load` counts per position of `tasks`.
pub fn partial_key_target<V: KeyValues + ?Sized>(
    values: &V,
    key_idx: &[usize],
    tasks: &[u32],
    load: &mut [u64],
) -> u32 {
    let h = key_hash(values, key_idx);
    let a = reduce(h, tasks.len());
    let b = reduce(h.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15, tasks.len());
    let pick = if load[b] < load[a] { b } else { a };
    load[pick] += 1;
    tasks[pick]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fields_same_key_same_task(key in ".{0,40}", n in 1usize..64, other in 0i64..1000) {
            let tasks: Vec<u32> = (1..=n as u32).collect();
            let v1 = [Value::from(key.as_str()), Value::Int(other)];
            let v2 = [Value::from(key.as_str()), Value::Int(other + 1)];
            // Only the key field counts; the task is in range.
            let t1 = fields_target(&v1, &[0], &tasks);
            prop_assert_eq!(t1, fields_target(&v2, &[0], &tasks));
            prop_assert!(tasks.contains(&t1));
        }

        #[test]
        fn shuffle_is_even_within_one(n in 1usize..32, k in 0usize..2000, seed in any::<u64>()) {
            let tasks: Vec<u32> = (10..10 + n as u32).collect();
            let mut s = Shuffle::new(seed);
            let mut counts = vec![0usize; n];
            for _ in 0..k {
                counts[(s.next(&tasks) - 10) as usize] += 1;
            }
            let min = counts.iter().min().copied().unwrap_or(0);
            let max = counts.iter().max().copied().unwrap_or(0);
            prop_assert!(max - min <= 1, "counts {:?}", counts);
        }

        #[test]
        fn global_is_lowest(mut tasks in proptest::collection::vec(1u32..10_000, 1..50)) {
            let g = global_target(&tasks);
            tasks.sort();
            prop_assert_eq!(g, tasks[0]);
        }

        #[test]
        fn partial_key_uses_two_candidates(key in "[a-z]{1,8}", n in 2usize..16, reps in 1usize..50) {
            let tasks: Vec<u32> = (1..=n as u32).collect();
            let mut load = vec![0u64; n];
            let v = [Value::from(key.as_str())];
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..reps { seen.insert(partial_key_target(&v, &[0], &tasks, &mut load)); }
            prop_assert!(seen.len() <= 2);
        }
    }

    #[test]
    fn fields_spreads_keys() {
        let tasks = [1, 2, 3, 4];
        let mut counts = [0usize; 5];
        for i in 0..4000 {
            counts[fields_target(&[Value::from(format!("w{i}"))], &[0], &tasks) as usize] += 1;
        }
        for c in &counts[1..] {
            assert!((800..1200).contains(c), "uneven: {counts:?}");
        }
    }
}
