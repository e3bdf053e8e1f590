//! Output routing: turns a component's emissions into batches on the receiving executors' queues.
//!
//! One `Router` per executor, owned by its thread: no locks. For each declared stream it holds the
//! subscribers with their grouping state; for each receiving executor an output buffer that is sent
//! as one batch when it holds `batch_size` tuples, when the executor runs out of input, or when the
//! flush interval passes. A full queue blocks the send: that is the backpressure.

use super::queue::{Batch, Delivery};
use super::stats::Counters;
use crossbeam_channel::Sender;
use std::time::Instant;
use topology_api::grouping::{self, Grouping, Shuffle};
use topology_api::{Emission, MessageId, OutputSink, StreamSource, Tuple, Values};

/// A subscriber of one stream.
pub(crate) struct Subscriber {
    pub grouping: Grouping,
    /// Receiving task ids, ascending.
    pub targets: Vec<u32>,
    /// For LOCAL_OR_SHUFFLE: the targets in this worker (all of `targets` if none is).
    pub local_targets: Vec<u32>,
    /// Positions of the grouping's key fields in the stream's fields.
    pub key_idx: Vec<usize>,
    pub shuffle: Shuffle,
    /// PARTIAL_KEY: tuples sent to each target so far.
    pub load: Vec<u64>,
}

/// A stream this executor's component declared.
pub(crate) struct OutStream {
    pub source: &'static StreamSource,
    pub direct: bool,
    pub subscribers: Vec<Subscriber>,
}

/// An outgoing buffer for one receiving executor.
pub(crate) struct OutBuf {
    pub buf: Batch,
    pub tx: Sender<Batch>,
    pub closed: bool,
}

/// What the executor does with errors its component reports or its routing finds.
pub(crate) trait ErrorReporter {
    fn report(&self, component: &str, task: u32, message: &str);
}

pub(crate) struct Router {
    pub component: String,
    pub streams: Vec<OutStream>,
    /// Task id -> index into `outs`, or `u32::MAX` for tasks this worker does not reach.
    pub task_dest: Vec<u32>,
    pub outs: Vec<OutBuf>,
    pub batch_size: usize,
    pub current_task: u32,
    pub counters: Counters,
    /// Spout message ids emitted with acking off: acked right after `next_tuple` returns, as Storm.
    pub immediate_acks: Vec<MessageId>,
    pub last_flush: Instant,
    pub reporter: std::sync::Arc<dyn ErrorReporter + Send + Sync>,
    /// Set when a receiving executor has gone away (it failed); the executor stops emitting to it.
    pub downstream_lost: bool,
}

impl Router {
    fn stream_index(&self, name: &str) -> Option<usize> {
        // Streams are few; the default stream is usually first.
        self.streams.iter().position(|s| s.source.stream == name)
    }

    #[inline]
    fn push(
        outs: &mut [OutBuf],
        task_dest: &[u32],
        batch_size: usize,
        lost: &mut bool,
        task: u32,
        tuple: Tuple,
    ) {
        let Some(&d) = task_dest.get(task as usize) else {
            return;
        };
        let Some(ob) = outs.get_mut(d as usize) else {
            return;
        };
        ob.buf.push(Delivery { task, tuple });
        if ob.buf.len() >= batch_size {
            Self::send(ob, batch_size, lost);
        }
    }

    #[inline]
    fn send(ob: &mut OutBuf, batch_size: usize, lost: &mut bool) {
        let batch = std::mem::replace(&mut ob.buf, Vec::with_capacity(batch_size));
        if ob.closed {
            return;
        }
        if ob.tx.send(batch).is_err() {
            ob.closed = true;
            *lost = true;
        }
    }

    /// Sends every non-empty buffer.
    pub fn flush(&mut self) {
        for ob in &mut self.outs {
            if !ob.buf.is_empty() {
                Self::send(ob, self.batch_size, &mut self.downstream_lost);
            }
        }
        self.last_flush = Instant::now();
    }

    /// The common case, kept apart so the tuple is built once, straight into the batch: one
    /// subscriber, one receiving task, nobody asking which task it was.
    #[inline]
    fn route_single(&mut self, si: usize, values: Values) -> Result<(), Values> {
        let Router {
            streams,
            task_dest,
            outs,
            batch_size,
            current_task,
            downstream_lost,
            ..
        } = self;
        let stream = &mut streams[si];
        let [sub] = stream.subscribers.as_mut_slice() else {
            return Err(values);
        };
        let task = match &sub.grouping {
            Grouping::Shuffle | Grouping::None => sub.shuffle.next(&sub.targets),
            Grouping::LocalOrShuffle => sub.shuffle.next(&sub.local_targets),
            Grouping::Fields(_) => grouping::fields_target(&values, &sub.key_idx, &sub.targets),
            Grouping::PartialKey(_) => {
                grouping::partial_key_target(&values, &sub.key_idx, &sub.targets, &mut sub.load)
            }
            // Targets are sorted: the lowest task is the first.
            Grouping::Global => sub.targets[0],
            Grouping::All | Grouping::Direct => return Err(values),
        };
        let Some(&d) = task_dest.get(task as usize) else {
            return Ok(());
        };
        let Some(ob) = outs.get_mut(d as usize) else {
            return Ok(());
        };
        ob.buf.push(Delivery {
            task,
            tuple: Tuple::new(stream.source, *current_task, values),
        });
        if ob.buf.len() >= *batch_size {
            Self::send(ob, *batch_size, downstream_lost);
        }
        Ok(())
    }

    fn route(
        &mut self,
        si: usize,
        values: Values,
        direct_task: Option<u32>,
        mut task_ids: Option<&mut Vec<u32>>,
    ) {
        let values = if direct_task.is_none() && task_ids.is_none() {
            match self.route_single(si, values) {
                Ok(()) => return,
                Err(v) => v,
            }
        } else {
            values
        };
        let Router {
            streams,
            task_dest,
            outs,
            batch_size,
            current_task,
            downstream_lost,
            ..
        } = self;
        let stream = &mut streams[si];
        let tuple = Tuple::new(stream.source, *current_task, values);
        if let Some(task) = direct_task {
            let ok = stream
                .subscribers
                .iter()
                .any(|s| s.grouping == Grouping::Direct && s.targets.binary_search(&task).is_ok());
            if !ok {
                let msg = format!(
                    "emit_direct to task {task} on stream \"{}\": that task does not subscribe to it with a DIRECT grouping",
                    stream.source.stream
                );
                self.reporter
                    .report(&self.component, self.current_task, &msg);
                return;
            }
            if let Some(ids) = task_ids.as_deref_mut() {
                ids.push(task);
            }
            Self::push(outs, task_dest, *batch_size, downstream_lost, task, tuple);
            return;
        }
        let n = stream.subscribers.len();
        let mut tuple = Some(tuple);
        for (i, sub) in stream.subscribers.iter_mut().enumerate() {
            let last = i + 1 == n;
            let mut deliver = |task: u32, tuple_slot: &mut Option<Tuple>, final_copy: bool| {
                if let Some(ids) = task_ids.as_deref_mut() {
                    ids.push(task);
                }
                let t = if final_copy {
                    tuple_slot.take()
                } else {
                    tuple_slot.clone()
                };
                if let Some(t) = t {
                    Self::push(outs, task_dest, *batch_size, downstream_lost, task, t);
                }
            };
            match &sub.grouping {
                Grouping::Shuffle | Grouping::None => {
                    let t = sub.shuffle.next(&sub.targets);
                    deliver(t, &mut tuple, last);
                }
                Grouping::LocalOrShuffle => {
                    let t = sub.shuffle.next(&sub.local_targets);
                    deliver(t, &mut tuple, last);
                }
                Grouping::Fields(_) => {
                    let vals = tuple.as_ref().map(|t| t.values()).unwrap_or(&[]);
                    let t = grouping::fields_target(vals, &sub.key_idx, &sub.targets);
                    deliver(t, &mut tuple, last);
                }
                Grouping::PartialKey(_) => {
                    let vals = tuple.as_ref().map(|t| t.values()).unwrap_or(&[]);
                    let t = grouping::partial_key_target(
                        vals,
                        &sub.key_idx,
                        &sub.targets,
                        &mut sub.load,
                    );
                    deliver(t, &mut tuple, last);
                }
                Grouping::Global => {
                    let t = grouping::global_target(&sub.targets);
                    deliver(t, &mut tuple, last);
                }
                Grouping::All => {
                    let m = sub.targets.len();
                    for (j, &t) in sub.targets.iter().enumerate() {
                        deliver(t, &mut tuple, last && j + 1 == m);
                    }
                }
                // Direct subscribers only receive `emit_direct`.
                Grouping::Direct => {}
            }
        }
    }
}

impl OutputSink for Router {
    fn emit(&mut self, e: Emission<'_>, task_ids: Option<&mut Vec<u32>>) {
        let si = if e.stream == topology_api::DEFAULT_STREAM
            && self
                .streams
                .first()
                .is_some_and(|s| s.source.stream == e.stream)
        {
            Some(0)
        } else {
            self.stream_index(e.stream)
        };
        let Some(si) = si else {
            let declared: Vec<&str> = self
                .streams
                .iter()
                .map(|s| s.source.stream.as_str())
                .collect();
            let msg = format!(
                "emit on undeclared stream \"{}\" (declared: {}); declare it in declare_output_fields",
                e.stream,
                declared.join(", ")
            );
            self.reporter
                .report(&self.component, self.current_task, &msg);
            return;
        };
        if self.streams[si].direct && e.direct_task.is_none() {
            let msg = format!("stream \"{}\" is direct: use emit_direct", e.stream);
            self.reporter
                .report(&self.component, self.current_task, &msg);
            return;
        }
        self.counters.emitted += 1;
        if let Some(id) = e.message_id {
            self.immediate_acks.push(id);
        }
        self.route(si, e.values, e.direct_task, task_ids);
    }

    fn ack(&mut self, _input: &Tuple) {
        self.counters.acked += 1;
    }

    fn fail(&mut self, _input: &Tuple) {
        self.counters.failed += 1;
    }

    fn report_error(&mut self, message: &str) {
        self.reporter
            .report(&self.component, self.current_task, message);
    }
}
