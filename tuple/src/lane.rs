//! The write side of an executor's output: one batch per destination, and the first stream's
//! prepared route.
//!
//! The runtime's router owns a `Lane` and does all its routing through it. A bolt's collector
//! asks the router for it (`topology_api::OutputSink::lane`, one small call) and writes the common
//! emit, borrowed values on the default stream with acking off, itself: the write is compiled
//! into the bolt's loop (`topology_api::Bolt::execute_batch`), where the values' shape is known, instead
//! of going through the vtable into code that must look at every shape (docs/performance.md).
//! The router sends a batch when the lane reports it full, so tuples to one task stay in order
//! whichever path wrote them.

use crate::batch::{Batch, BatchError};
use crate::emit::EmitValues;
use crate::grouping::{self, Shuffle};
use crate::tuple::{StreamSource, Tuple};

/// How the prepared stream's tuples find their task.
#[derive(Debug)]
pub enum RouteKind {
    /// FIELDS on one field: its position in the values.
    Fields(usize),
    /// GLOBAL: the lowest task.
    Global,
    /// SHUFFLE, NONE and LOCAL_OR_SHUFFLE (over the local tasks): round robin.
    Shuffle(Shuffle),
}

/// A stream's route prepared once: the grouping, the receiving tasks and, for each, the index of
/// its destination's batch.
#[derive(Debug)]
pub struct Route {
    pub kind: RouteKind,
    pub source: &'static StreamSource,
    /// Receiving tasks, ascending (GLOBAL's first is its task).
    pub targets: Vec<u32>,
    /// For each target, the index of its destination in [`Lane::batches`].
    pub dests: Vec<u32>,
}

/// What [`Lane::push_routed`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Written; its batch is not full yet.
    Written,
    /// Written; the batch of this destination reached its size and is to be sent.
    Full(usize),
    /// Not written: the lane has no route, or the tuple does not fit a batch.
    Refused(Option<BatchError>),
}

pub use crate::rng::Rng;

/// With acking on, the acking state of the input being executed (Storm's XOR scheme; see
/// docs/guaranteed-processing.md), which a bolt's collector updates itself in the common case:
/// the input is acked while it executes, and what it emits is anchored to it alone. The router
/// keeps the rest (edges of inputs kept past their `execute`, acks waiting to be sent).
#[derive(Debug, Default)]
pub struct InputAcks {
    pub rng: Rng,
    /// The input being executed (its first (root, edge)) and the XOR of the edges anchored to
    /// it so far.
    pub current: Option<(u64, u64)>,
    pub current_xor: u64,
    /// The tree acked last and its XOR so far: consecutive inputs usually share a tree (the
    /// words of one line), so most acks touch no map.
    pub last_ack: Option<(u64, u64)>,
    /// Earlier trees' XORs, for the router to send with its next acks.
    pub done: Vec<(u64, u64)>,
}

impl InputAcks {
    /// `input` is about to execute. False, changing nothing, if the input before it was not
    /// acked and has edges anchored to it: the router keeps those first.
    #[inline(always)]
    pub fn begin(&mut self, input: &Tuple<'_>) -> bool {
        if self.current.is_some() && self.current_xor != 0 {
            return false;
        }
        self.current = input.first_ack_id();
        self.current_xor = 0;
        true
    }

    /// Acks `input` if it is the input being executed (or belongs to no tree); false if it is
    /// another (the router finds its anchored edges).
    #[inline(always)]
    pub fn ack_current(&mut self, input: &Tuple<'_>) -> bool {
        let Some(key) = input.first_ack_id() else {
            return true;
        };
        if self.current != Some(key) {
            return false;
        }
        self.current = None;
        let children = std::mem::take(&mut self.current_xor);
        self.record_ack(input, children);
        true
    }

    /// Gathers the ack of `input`: its edges XORed with `children`, the edges anchored to it.
    #[inline(always)]
    pub fn record_ack(&mut self, input: &Tuple<'_>, children: u64) {
        for (root, edge) in input.ack_pairs() {
            let x = edge ^ children;
            match &mut self.last_ack {
                Some((r, acc)) if *r == root => *acc ^= x,
                last => {
                    if let Some(prev) = last.replace((root, x)) {
                        self.done.push(prev);
                    }
                }
            }
        }
    }
}

/// One executor's outgoing batches and the route of its first stream.
#[derive(Debug, Default)]
pub struct Lane {
    /// One batch per destination: an executor of this worker, or another worker's transport.
    pub batches: Vec<Batch>,
    /// Tuples per batch for each destination.
    pub limits: Vec<usize>,
    /// The first stream's route, if its grouping has one ([`RouteKind`]).
    pub route: Option<Route>,
    /// Whether a bolt's collector may write emits on the default stream itself: there is a
    /// route on the default stream, acking is off and nothing is logged per tuple.
    pub open: bool,
    /// The task emitting now.
    pub task: u32,
    /// Birth stamp for what is emitted now: the spout's emit time, or the current input's.
    pub born: u64,
    /// Tuples the collector wrote through the lane, not yet counted by the runtime.
    pub emitted: u64,
    /// With acking on: the input's acking state.
    pub acks: Option<InputAcks>,
    /// Inputs the collector acked through `acks`, not yet counted by the runtime.
    pub acked: u64,
}

impl Lane {
    /// Writes `values` to the task the route picks, stamped with the lane's task and birth.
    #[inline(always)]
    pub fn push_routed(&mut self, values: EmitValues<'_>, ack_ids: &[(u64, u64)]) -> Pushed {
        let Some(route) = self.route.as_mut() else {
            return Pushed::Refused(None);
        };
        let n = route.targets.len();
        let i = match &mut route.kind {
            RouteKind::Fields(k) => grouping::reduce(grouping::key_hash(&values, &[*k]), n),
            RouteKind::Global => 0,
            RouteKind::Shuffle(s) => s.next_index(n),
        };
        let (Some(&task), Some(&d)) = (route.targets.get(i), route.dests.get(i)) else {
            return Pushed::Refused(None);
        };
        let (source, from, born) = (route.source, self.task, self.born);
        self.push_to(d as usize, task, source, from, born, ack_ids, values)
    }

    /// Writes a tuple for `task` into destination `d`'s batch (what every write, routed or
    /// not, comes down to).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn push_to(
        &mut self,
        d: usize,
        task: u32,
        source: &'static StreamSource,
        source_task: u32,
        born_us: u64,
        ack_ids: &[(u64, u64)],
        values: EmitValues<'_>,
    ) -> Pushed {
        let (Some(batch), Some(&limit)) = (self.batches.get_mut(d), self.limits.get(d)) else {
            return Pushed::Refused(None);
        };
        let pushed = match values {
            EmitValues::Owned(v) => batch.push(task, source, source_task, born_us, ack_ids, v),
            EmitValues::Refs(v) => batch.push_refs(task, source, source_task, born_us, ack_ids, v),
        };
        match pushed {
            Err(e) => Pushed::Refused(Some(e)),
            Ok(()) if batch.len() >= limit => Pushed::Full(d),
            Ok(()) => Pushed::Written,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Fields;
    use crate::wire::ValueRef;

    fn lane(kind: RouteKind, targets: Vec<u32>, dests: Vec<u32>, limit: usize) -> Lane {
        let source = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let n = dests.iter().max().map_or(0, |d| *d as usize + 1);
        Lane {
            batches: (0..n).map(|_| Batch::with_capacity(4)).collect(),
            limits: vec![limit; n],
            route: Some(Route {
                kind,
                source,
                targets,
                dests,
            }),
            open: true,
            task: 3,
            born: 77,
            ..Lane::default()
        }
    }

    fn tasks(l: &Lane, d: usize) -> Vec<(u32, String, u64)> {
        l.batches[d]
            .iter()
            .map(|(task, t)| (task, t.get_str(0).unwrap_or("").to_owned(), t.born_us()))
            .collect()
    }

    #[test]
    fn fields_sends_a_word_where_the_grouping_does() {
        let targets = vec![4, 5, 6];
        let mut l = lane(RouteKind::Fields(0), targets.clone(), vec![0, 1, 1], 100);
        for w in ["storm", "gale", "storm", "flux", "gale"] {
            assert_eq!(
                l.push_routed(EmitValues::Refs(&[ValueRef::Str(w)]), &[]),
                Pushed::Written
            );
        }
        let all: Vec<_> = tasks(&l, 0).into_iter().chain(tasks(&l, 1)).collect();
        assert_eq!(all.len(), 5);
        for (task, w, born) in all {
            let key = [crate::Value::Str(w.as_str().into())];
            assert_eq!(task, grouping::fields_target(&key[..], &[0], &targets));
            assert_eq!(born, 77);
        }
    }

    #[test]
    fn a_batch_reaching_its_size_is_reported_full() {
        let mut l = lane(RouteKind::Global, vec![9], vec![0], 2);
        let v = [ValueRef::Str("a"), ValueRef::Int(1)];
        assert_eq!(l.push_routed(EmitValues::Refs(&v), &[]), Pushed::Written);
        assert_eq!(l.push_routed(EmitValues::Refs(&v), &[]), Pushed::Full(0));
        assert_eq!(tasks(&l, 0)[1].0, 9);
    }

    #[test]
    fn input_acks_xor_edges_per_tree_and_leave_others_to_the_router() {
        let src = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let t = |root: u64, edge: u64| {
            crate::Tuple::from_parts(src, 1, &[crate::Value::Int(0)], &[(root, edge)], 0)
        };
        let mut a = InputAcks::default();
        // Two inputs of tree 7, one of tree 9; the first has two edges anchored to it.
        let (x, y, z) = (t(7, 0b0001), t(7, 0b0010), t(9, 0b0100));
        assert!(a.begin(&x));
        a.current_xor ^= 0b1000_0000 ^ 0b0100_0000;
        assert!(!a.ack_current(&y), "not the input being executed");
        assert!(a.ack_current(&x));
        assert!(a.begin(&y) && a.ack_current(&y));
        assert_eq!(a.last_ack, Some((7, 0b1100_0011)));
        assert!(a.begin(&z) && a.ack_current(&z));
        assert_eq!(a.done, vec![(7, 0b1100_0011)]);
        assert_eq!(a.last_ack, Some((9, 0b0100)));
        // An input left unacked with edges anchored to it: the router must keep them first.
        assert!(a.begin(&x));
        a.current_xor = 1;
        assert!(!a.begin(&y));
        assert_eq!(a.current, x.first_ack_id());
    }

    #[test]
    fn shuffle_takes_turns_and_no_route_refuses() {
        let mut l = lane(
            RouteKind::Shuffle(Shuffle::new(0)),
            vec![1, 2],
            vec![0, 1],
            10,
        );
        for _ in 0..4 {
            l.push_routed(EmitValues::Refs(&[ValueRef::Str("x")]), &[]);
        }
        assert_eq!((l.batches[0].len(), l.batches[1].len()), (2, 2));
        l.route = None;
        assert_eq!(
            l.push_routed(EmitValues::Refs(&[ValueRef::Str("x")]), &[]),
            Pushed::Refused(None)
        );
    }
}
