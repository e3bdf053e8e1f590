//! The write side of an executor's output: one batch per destination, and the first stream's
//! prepared route.
//!
//! The runtime's router owns a `Lane` and does all its routing through it. A bolt's collector
//! asks the router for it ([`crate::OutputSink::lane`], one small call) and writes the common
//! emit, borrowed values on the default stream with acking off, itself: the write is compiled
//! into the bolt's loop ([`crate::Bolt::execute_batch`]), where the values' shape is known, instead
//! of going through the vtable into code that must look at every shape (docs/performance.md).
//! The router sends a batch when the lane reports it full, so tuples to one task stay in order
//! whichever path wrote them.

use crate::batch::{Batch, BatchError};
use crate::component::EmitValues;
use crate::grouping::{self, Shuffle};
use crate::tuple::StreamSource;

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
        let d = d as usize;
        let (Some(batch), Some(&limit)) = (self.batches.get_mut(d), self.limits.get(d)) else {
            return Pushed::Refused(None);
        };
        let source = route.source;
        let pushed = match values {
            EmitValues::Owned(v) => batch.push(task, source, self.task, self.born, ack_ids, v),
            EmitValues::Refs(v) => batch.push_refs(task, source, self.task, self.born, ack_ids, v),
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
            emitted: 0,
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
