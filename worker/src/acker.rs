//! The acker's bookkeeping (Storm's XOR scheme) as a pure structure.
//!
//! Every tuple of a tree is an edge with a random 64-bit id. The spout's init carries the XOR of
//! the edges it emitted; each bolt's ack carries the acked tuple's edge XORed with the edges it
//! anchored to that tuple. Each edge therefore enters the XOR exactly twice (once when created,
//! once when acked), so the tree's value returns to 0 exactly when every edge was acked. Messages
//! may arrive in any order; a tree completes only once its init (which names the spout task) is in.

use rustc_hash::FxHashMap;

/// What the acker tells a spout task about a tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Acked { root: u64, spout_task: u32 },
    Failed { root: u64, spout_task: u32 },
}

#[derive(Debug)]
struct Tree {
    val: u64,
    spout_task: Option<u32>,
    failed: bool,
    born_ms: u64,
}

/// Pending trees of one acker task.
#[derive(Debug, Default)]
pub struct AckerBook {
    trees: FxHashMap<u64, Tree>,
}

impl AckerBook {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.trees.len()
    }

    pub fn is_empty(&self) -> bool {
        self.trees.is_empty()
    }

    /// Applies one message to `root`'s tree and settles it if that completed or failed it:
    /// one hash lookup per message (a tree that settles on the spot is never stored).
    #[inline]
    fn apply(&mut self, root: u64, now_ms: u64, f: impl FnOnce(&mut Tree)) -> Option<Outcome> {
        use std::collections::hash_map::Entry;
        fn outcome(root: u64, t: &Tree) -> Option<Outcome> {
            let spout_task = t.spout_task?;
            if t.failed {
                Some(Outcome::Failed { root, spout_task })
            } else if t.val == 0 {
                Some(Outcome::Acked { root, spout_task })
            } else {
                None
            }
        }
        match self.trees.entry(root) {
            Entry::Occupied(mut o) => {
                f(o.get_mut());
                let out = outcome(root, o.get());
                if out.is_some() {
                    o.remove();
                }
                out
            }
            Entry::Vacant(v) => {
                let mut t = Tree {
                    val: 0,
                    spout_task: None,
                    failed: false,
                    born_ms: now_ms,
                };
                f(&mut t);
                let out = outcome(root, &t);
                if out.is_none() {
                    v.insert(t);
                }
                out
            }
        }
    }

    /// The spout started `root` with edges XORing to `xor`.
    pub fn init(&mut self, root: u64, xor: u64, spout_task: u32, now_ms: u64) -> Option<Outcome> {
        self.apply(root, now_ms, |t| {
            t.val ^= xor;
            t.spout_task = Some(spout_task);
        })
    }

    /// A bolt acked a tuple of `root`: its edge XOR the edges anchored to it.
    pub fn ack(&mut self, root: u64, xor: u64, now_ms: u64) -> Option<Outcome> {
        self.apply(root, now_ms, |t| t.val ^= xor)
    }

    /// A bolt failed a tuple of `root`: the whole tree fails.
    pub fn fail(&mut self, root: u64, now_ms: u64) -> Option<Outcome> {
        self.apply(root, now_ms, |t| t.failed = true)
    }

    /// Forgets trees older than `timeout_ms` (their spout fails them on its own timer) and returns
    /// their roots.
    pub fn expire(&mut self, now_ms: u64, timeout_ms: u64) -> Vec<u64> {
        let old: Vec<u64> = self
            .trees
            .iter()
            .filter(|(_, t)| now_ms.saturating_sub(t.born_ms) >= timeout_ms)
            .map(|(r, _)| *r)
            .collect();
        for r in &old {
            self.trees.remove(r);
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A random tree: node 0 is the spout tuple set; each node has children. Returns the messages
    /// the acking protocol sends for it (init from the spout, one ack per tuple), and the index of
    /// the last message the tree cannot complete without.
    fn messages(shape: &[usize], seed: u64) -> Vec<(u8, u64)> {
        let mut rng = seed | 1;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng | 1
        };
        // Spout emits shape[0] tuples; every tuple at depth d has shape[d+1] children.
        let mut msgs = Vec::new();
        let mut level: Vec<u64> = (0..shape[0].max(1)).map(|_| next()).collect();
        msgs.push((0u8, level.iter().fold(0, |a, e| a ^ e)));
        for depth in 1..=shape.len() {
            let fan = shape.get(depth).copied().unwrap_or(0);
            let mut next_level = Vec::new();
            for &edge in &level {
                let children: Vec<u64> = (0..fan).map(|_| next()).collect();
                let x = children.iter().fold(0, |a, e| a ^ e);
                msgs.push((1u8, edge ^ x));
                next_level.extend(children);
            }
            level = next_level;
        }
        msgs
    }

    proptest! {
        #[test]
        fn completes_exactly_when_every_edge_is_acked(
            shape in proptest::collection::vec(1usize..4, 1..4),
            seed in any::<u64>(),
            order in any::<u64>(),
        ) {
            let mut msgs = messages(&shape, seed);
            // Any arrival order.
            let n = msgs.len();
            let mut o = order | 1;
            for i in (1..n).rev() {
                o ^= o << 13; o ^= o >> 7; o ^= o << 17;
                msgs.swap(i, (o % (i as u64 + 1)) as usize);
            }
            let mut book = AckerBook::new();
            for (i, (kind, x)) in msgs.iter().enumerate() {
                let out = if *kind == 0 { book.init(42, *x, 7, 0) } else { book.ack(42, *x, 0) };
                if i + 1 < n {
                    prop_assert_eq!(out, None, "completed early at message {} of {}", i + 1, n);
                } else {
                    prop_assert_eq!(out, Some(Outcome::Acked { root: 42, spout_task: 7 }));
                }
            }
            prop_assert!(book.is_empty());
        }

        #[test]
        fn any_fail_fails_the_root(shape in proptest::collection::vec(1usize..4, 1..3), seed in any::<u64>(), at in any::<prop::sample::Index>()) {
            let msgs = messages(&shape, seed);
            let k = at.index(msgs.len());
            let mut book = AckerBook::new();
            let mut outcome = None;
            for (i, (kind, x)) in msgs.iter().enumerate() {
                if i == k && let Some(out) = book.fail(9, 0) {
                    outcome = Some(out);
                    break;
                }
                let out = if *kind == 0 { book.init(9, *x, 3, 0) } else { book.ack(9, *x, 0) };
                // A fail wins even when the last ack would have completed the tree.
                if out.is_some() { outcome = out; break; }
            }
            prop_assert_eq!(outcome, Some(Outcome::Failed { root: 9, spout_task: 3 }));
        }
    }

    #[test]
    fn a_tree_that_never_completes_times_out() {
        let mut book = AckerBook::new();
        assert_eq!(book.init(1, 0xabc, 5, 1_000), None);
        assert_eq!(book.expire(20_000, 30_000), Vec::<u64>::new());
        assert_eq!(book.expire(31_000, 30_000), vec![1]);
        assert!(book.is_empty());
    }

    #[test]
    fn ack_before_init_waits_for_the_init() {
        let mut book = AckerBook::new();
        assert_eq!(book.ack(1, 0x55, 0), None);
        assert_eq!(
            book.init(1, 0x55, 2, 0),
            Some(Outcome::Acked {
                root: 1,
                spout_task: 2
            })
        );
    }
}
