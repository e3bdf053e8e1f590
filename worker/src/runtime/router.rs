//! Output routing: turns a component's emissions into batches on the receiving executors' queues.
//!
//! One `Router` per executor, owned by its thread: no locks. For each declared stream it holds the
//! subscribers with their grouping state; for each receiving executor an output buffer that is sent
//! as one batch when it holds its batch size in tuples, when the executor runs out of input, or when the
//! flush interval passes. A full queue blocks the send: that is the backpressure.

use super::queue::Batch;
use super::stats::Counters;
use crossbeam_channel::Sender;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use std::time::Instant;
use topology_api::component::EmitValues;
use topology_api::grouping::{self, Grouping, Shuffle};
pub(crate) use topology_api::lane::{InputAcks, Rng};
use topology_api::lane::{Lane, Pushed, Route, RouteKind};
use topology_api::wire::ValueRef;
use topology_api::{AckIds, DEFAULT_STREAM, Emission, MessageId, OutputSink, StreamSource, Tuple};

/// How the copies of one emission get their acking ids.
enum AckTag {
    Off,
    /// An emit anchored to one input of one tree, sent to one task: its one new edge, drawn by
    /// the caller, who records it against the input (`key`, the input's (root, edge)).
    One {
        key: (u64, u64),
        edge: u64,
    },
    /// A reliable spout emit: each copy is an edge of the new tree `root`.
    Root {
        root: u64,
        xor: u64,
        copies: u32,
        rng: Rng,
    },
    /// An anchored bolt emit: each copy is a new edge of each anchor (as Storm draws an edge
    /// per anchor), so two anchors of one tree (a checkpoint forwarded once every upstream task
    /// sent it) each get their own edge and the tree still balances.
    Anchored {
        /// The roots of each anchor that has any.
        anchors: SmallVec<[SmallVec<[u64; 2]>; 2]>,
        /// Per anchor: the XOR of the edges drawn for it.
        xors: SmallVec<[u64; 2]>,
        rng: Rng,
    },
}

impl AckTag {
    #[inline]
    fn ids(&mut self) -> AckIds {
        match self {
            AckTag::Off => AckIds::new(),
            AckTag::One { key, edge } => {
                let mut ids = AckIds::new();
                ids.push((key.0, *edge));
                ids
            }
            AckTag::Root {
                root,
                xor,
                copies,
                rng,
            } => {
                let e = rng.next();
                *xor ^= e;
                *copies += 1;
                let mut ids = AckIds::new();
                ids.push((*root, e));
                ids
            }
            AckTag::Anchored { anchors, xors, rng } => {
                let mut ids = AckIds::new();
                for (roots, x) in anchors.iter().zip(xors.iter_mut()) {
                    let e = rng.next();
                    *x ^= e;
                    for &r in roots {
                        match ids.iter_mut().find(|(root, _)| *root == r) {
                            Some(pair) => pair.1 ^= e,
                            None => ids.push((r, e)),
                        }
                    }
                }
                ids
            }
        }
    }
}

/// The acking state of one executor (Storm's XOR scheme; see docs/guaranteed-processing.md).
/// The input being executed, the acks gathered and the id generator are in the lane
/// ([`InputAcks`]), where a bolt's collector updates them itself.
pub(crate) struct Acking {
    /// `__acker` task ids, ascending; a tree's acker is `acker_tasks[root % n]`.
    pub acker_tasks: Vec<u32>,
    /// Sequence number of the next tree this executor starts (the low 32 bits of its root).
    pub seq: u32,
    /// For each input tuple (keyed by its first (root, edge)) the XOR of the edges anchored to it.
    pub anchored: FxHashMap<(u64, u64), u64>,
    /// Trees started since the executor last looked: (root, spout task, message id).
    pub started: Vec<(u64, u32, MessageId)>,
    pub init: &'static StreamSource,
    pub ack: &'static StreamSource,
    pub fail: &'static StreamSource,
}

impl Acking {
    pub fn acker_for(&self, root: u64) -> u32 {
        self.acker_tasks[grouping::reduce(root, self.acker_tasks.len())]
    }
}

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
    /// `source.stream` is Storm's default stream.
    pub is_default: bool,
    pub direct: bool,
    pub subscribers: Vec<Subscriber>,
}

/// The prepared route of `stream`, if it has one: one subscriber with a SHUFFLE, NONE,
/// LOCAL_OR_SHUFFLE, GLOBAL or one-field FIELDS grouping, every receiving task reachable.
fn route_of(stream: &OutStream, task_dest: &[u32]) -> Option<Route> {
    let [sub] = stream.subscribers.as_slice() else {
        return None;
    };
    if stream.direct {
        return None;
    }
    let (kind, targets) = match &sub.grouping {
        Grouping::Shuffle | Grouping::None => {
            (RouteKind::Shuffle(sub.shuffle.clone()), &sub.targets)
        }
        Grouping::LocalOrShuffle => (RouteKind::Shuffle(sub.shuffle.clone()), &sub.local_targets),
        Grouping::Fields(_) if sub.key_idx.len() == 1 => {
            (RouteKind::Fields(sub.key_idx[0]), &sub.targets)
        }
        Grouping::Global => (RouteKind::Global, &sub.targets),
        _ => return None,
    };
    let dests = targets
        .iter()
        .map(|t| {
            task_dest
                .get(*t as usize)
                .copied()
                .filter(|d| *d != u32::MAX)
        })
        .collect::<Option<Vec<u32>>>()?;
    if dests.is_empty() {
        return None;
    }
    Some(Route {
        kind,
        source: stream.source,
        targets: targets.clone(),
        dests,
    })
}

/// The sending side of one destination (its batch is in the router's [`Lane`]).
pub(crate) struct OutBuf {
    pub tx: Sender<Batch>,
    pub closed: bool,
}

/// What the executor does with errors its component reports or its routing finds.
pub(crate) trait ErrorReporter {
    fn report(&self, component: &str, task: u32, message: &str);
    /// An executor panicked: its worker is done (and restarted on a cluster).
    fn report_panic(&self, component: &str, task: u32, message: &str);
    /// A component lost its results (a sink could not write its output): the run has failed.
    fn report_failure(&self, component: &str, task: u32, message: &str);
}

pub(crate) struct Router {
    pub component: String,
    pub streams: Vec<OutStream>,
    /// Task id -> index into `outs` (and the lane's batches), or `u32::MAX` for tasks this
    /// worker does not reach.
    pub task_dest: Vec<u32>,
    pub outs: Vec<OutBuf>,
    /// The batches being filled, one per destination (`limits`: `topology.producer.batch.size`
    /// for executors of this worker, `topology.transfer.batch.size` for another worker's
    /// transport queue), the first stream's route, and the emitting task and birth stamp.
    pub lane: Lane,
    pub counters: Counters,
    /// Spout message ids emitted with acking off: acked right after `next_tuple` returns, as Storm.
    pub immediate_acks: Vec<MessageId>,
    pub last_flush: Instant,
    pub reporter: std::sync::Arc<dyn ErrorReporter + Send + Sync>,
    /// Set when a receiving executor has gone away (it failed); the executor stops emitting to it.
    pub downstream_lost: bool,
    /// `Some` when the topology has ackers.
    pub acking: Option<Acking>,
    /// `topology.debug`: log every emitted tuple, as Storm does.
    pub debug: bool,
}

impl Router {
    /// Prepares the lane's route for the first stream, when emits on it can skip the general
    /// checks: no debug log, a grouping [`route_of`] takes (with acking, only emits anchored to
    /// one input of one tree take it). A bolt's collector writes into the lane itself when the
    /// route is the default stream's ([`Lane::open`]).
    pub fn prepare_lane(&mut self) {
        self.lane.route = match self.streams.first() {
            Some(s) if !self.debug => route_of(s, &self.task_dest),
            _ => None,
        };
        self.lane.open = self.route_is_default();
    }

    /// Whether the lane's route is the default stream's (emits on it may take the route).
    fn route_is_default(&self) -> bool {
        self.lane.route.is_some() && self.streams.first().is_some_and(|s| s.is_default)
    }

    fn stream_index(&self, name: &str) -> Option<usize> {
        // Streams are few; the default stream is usually first.
        self.streams.iter().position(|s| s.source.stream == name)
    }

    /// Appends one tuple for `task` to its executor's buffer, and sends the buffer when full.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn push(
        lane: &mut Lane,
        outs: &mut [OutBuf],
        task_dest: &[u32],
        lost: &mut bool,
        task: u32,
        source: &'static StreamSource,
        source_task: u32,
        born: u64,
        ack_ids: &[(u64, u64)],
        values: EmitValues<'_>,
    ) {
        let Some(&d) = task_dest.get(task as usize) else {
            return;
        };
        match lane.push_to(d as usize, task, source, source_task, born, ack_ids, values) {
            Pushed::Written | Pushed::Refused(None) => {}
            Pushed::Full(d) => Self::send_dest(lane, outs, d, lost),
            Pushed::Refused(Some(e)) => {
                tracing::error!(task, error = %e, "Dropping a tuple that does not fit a batch");
            }
        }
    }

    /// Sends destination `d`'s batch.
    fn send_dest(lane: &mut Lane, outs: &mut [OutBuf], d: usize, lost: &mut bool) {
        if let (Some(buf), Some(&limit), Some(ob)) =
            (lane.batches.get_mut(d), lane.limits.get(d), outs.get_mut(d))
        {
            Self::send(buf, limit, ob, lost);
        }
    }

    /// Once per batch: kept out of line so the per-tuple path stays small.
    #[inline(never)]
    fn send(buf: &mut Batch, limit: usize, ob: &mut OutBuf, lost: &mut bool) {
        // The next batch gets room for a full batch of tuples the size this one's were (and a
        // little more), sent full or not: tuples' sizes differ by stream (acker messages are
        // bigger than words), and a batch that outgrows its buffer copies it. Room is only
        // reserved; it is zeroed as it fills.
        let per = buf.byte_len().div_ceil(buf.len().max(1));
        let room = per.saturating_mul(limit);
        let next = Batch::with_byte_capacity(room.saturating_add(room / 8));
        let batch = std::mem::replace(buf, next);
        if ob.closed {
            return;
        }
        if ob.tx.send(batch).is_err() {
            ob.closed = true;
            *lost = true;
        }
    }

    /// Sends an acking message to the tree's acker: 0 = init (root, xor), 1 = ack (root, xor),
    /// 2 = fail (root).
    fn send_system(&mut self, kind: u8, root: u64, val: u64) {
        let Some(acking) = self.acking.as_ref() else {
            return;
        };
        let task = acking.acker_for(root);
        let pair = [ValueRef::Int(root as i64), ValueRef::Int(val as i64)];
        let (source, values) = match kind {
            0 => (acking.init, &pair[..]),
            1 => (acking.ack, &pair[..]),
            _ => (acking.fail, &pair[..1]),
        };
        self.send_to(task, source, EmitValues::Refs(values));
    }

    /// Records edges (XORed) anchored to the input whose first ack pair is `key`: in the lane
    /// for the input being executed, in the map for one kept from earlier.
    #[inline]
    fn anchor_edges(&mut self, key: (u64, u64), xor: u64) {
        let (Some(acking), Some(acks)) = (self.acking.as_mut(), self.lane.acks.as_mut()) else {
            return;
        };
        if acks.current == Some(key) {
            acks.current_xor ^= xor;
        } else {
            *acking.anchored.entry(key).or_insert(0) ^= xor;
        }
    }

    /// Tells a tree's acker that its spout failed it (a timeout), so the acker forgets it.
    pub fn fail_tree(&mut self, root: u64) {
        self.send_system(2, root, 0);
    }

    /// Sends the acks gathered since the last call, one message per tree.
    pub fn flush_acks(&mut self) {
        let Some(acks) = self.lane.acks.as_mut() else {
            return;
        };
        if let Some(last) = acks.last_ack.take() {
            acks.done.push(last);
        }
        if acks.done.is_empty() {
            return;
        }
        // Sent as gathered: consecutive acks of one tree are already XORed into one (the words
        // of a line arrive together), so merging the rest by tree in a map saved few messages
        // for a map operation per tree per batch (docs/performance.md).
        let mut done = std::mem::take(&mut acks.done);
        for &(root, x) in &done {
            if x != 0 {
                self.send_system(1, root, x);
            }
        }
        done.clear();
        if let Some(acks) = self.lane.acks.as_mut() {
            acks.done = done;
        }
    }

    /// Sends a tuple from this executor's current task to one task, outside any subscription
    /// (acking messages, acker replies to spouts).
    pub fn send_to(&mut self, task: u32, source: &'static StreamSource, values: EmitValues<'_>) {
        let from = self.lane.task;
        Self::push(
            &mut self.lane,
            &mut self.outs,
            &self.task_dest,
            &mut self.downstream_lost,
            task,
            source,
            from,
            0,
            &[],
            values,
        );
    }

    /// Sends every non-empty buffer (gathered acks first).
    pub fn flush(&mut self) {
        self.flush_acks();
        for d in 0..self.outs.len() {
            if self.lane.batches.get(d).is_some_and(|b| !b.is_empty()) {
                Self::send_dest(&mut self.lane, &mut self.outs, d, &mut self.downstream_lost);
            }
        }
        self.last_flush = Instant::now();
    }

    /// The common case, kept apart so the tuple is built once, straight into the batch: one
    /// subscriber, one receiving task, nobody asking which task it was.
    #[inline(always)]
    fn route_single(&mut self, si: usize, values: EmitValues<'_>, tag: &mut AckTag) -> bool {
        let Router {
            streams,
            task_dest,
            outs,
            lane,
            downstream_lost,
            ..
        } = self;
        let stream = &mut streams[si];
        let [sub] = stream.subscribers.as_mut_slice() else {
            return false;
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
            Grouping::All | Grouping::Direct => return false,
        };
        let ids;
        let ack_ids: &[(u64, u64)] = match tag {
            AckTag::Off => &[],
            tag => {
                ids = tag.ids();
                &ids
            }
        };
        let (from, born) = (lane.task, lane.born);
        Self::push(
            lane,
            outs,
            task_dest,
            downstream_lost,
            task,
            stream.source,
            from,
            born,
            ack_ids,
            values,
        );
        true
    }

    fn route(
        &mut self,
        si: usize,
        values: EmitValues<'_>,
        direct_task: Option<u32>,
        mut task_ids: Option<&mut Vec<u32>>,
        tag: &mut AckTag,
    ) {
        if direct_task.is_none() && task_ids.is_none() && self.route_single(si, values, tag) {
            return;
        }
        let (from, born) = (self.lane.task, self.lane.born);
        let Router {
            streams,
            task_dest,
            outs,
            lane,
            downstream_lost,
            reporter,
            component,
            ..
        } = self;
        let stream = &mut streams[si];
        let source = stream.source;
        // Each copy is written into its receiver's batch with its own acking ids.
        let mut deliver = |task: u32, tag: &mut AckTag| {
            if let Some(ids) = task_ids.as_deref_mut() {
                ids.push(task);
            }
            Self::push(
                lane,
                outs,
                task_dest,
                downstream_lost,
                task,
                source,
                from,
                born,
                &tag.ids(),
                values,
            );
        };
        if let Some(task) = direct_task {
            let ok = stream
                .subscribers
                .iter()
                .any(|s| s.grouping == Grouping::Direct && s.targets.binary_search(&task).is_ok());
            if !ok {
                let msg = format!(
                    "emit_direct to task {task} on stream \"{}\": that task does not subscribe to it with a DIRECT grouping",
                    source.stream
                );
                reporter.report(component, from, &msg);
                return;
            }
            deliver(task, tag);
            return;
        }
        for sub in stream.subscribers.iter_mut() {
            match &sub.grouping {
                Grouping::Shuffle | Grouping::None => {
                    let t = sub.shuffle.next(&sub.targets);
                    deliver(t, tag);
                }
                Grouping::LocalOrShuffle => {
                    let t = sub.shuffle.next(&sub.local_targets);
                    deliver(t, tag);
                }
                Grouping::Fields(_) => {
                    let t = grouping::fields_target(&values, &sub.key_idx, &sub.targets);
                    deliver(t, tag);
                }
                Grouping::PartialKey(_) => {
                    let t = grouping::partial_key_target(
                        &values,
                        &sub.key_idx,
                        &sub.targets,
                        &mut sub.load,
                    );
                    deliver(t, tag);
                }
                Grouping::Global => {
                    let t = grouping::global_target(&sub.targets);
                    deliver(t, tag);
                }
                Grouping::All => {
                    for &t in &sub.targets {
                        deliver(t, tag);
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
        // The fastest case: the first stream, no acking, a grouping looked up beforehand.
        if task_ids.is_none()
            && e.direct_task.is_none()
            && self.acking.is_none()
            && let Some(first) = self.streams.first()
            && self.lane.route.is_some()
            && ((e.stream == DEFAULT_STREAM && first.is_default) || first.source.stream == e.stream)
        {
            if let Some(b) = e.anchors.first().map(|a| a.born_us())
                && b > 0
            {
                self.lane.born = b;
            }
            self.emit_fast(e.values, &[]);
            if let Some(id) = e.message_id {
                self.immediate_acks.push(id);
            }
            return;
        }
        // The common case, kept short: the first declared stream (the default one, usually),
        // one subscriber, no acking, no debug log, nobody asking where the tuple went.
        // With acking on, the common bolt emit is anchored to one input of one tree: its one
        // new edge is drawn here, without the general path's lists.
        if task_ids.is_none()
            && e.direct_task.is_none()
            && !self.debug
            && let Some(first) = self.streams.first()
            && !first.direct
            // Against the constant first: a fixed-length compare the compiler inlines.
            && ((e.stream == DEFAULT_STREAM && first.is_default) || first.source.stream == e.stream)
        {
            if let Some(b) = e.anchors.first().map(|a| a.born_us())
                && b > 0
            {
                self.lane.born = b;
            }
            let mut tag = match (self.lane.acks.as_mut(), e.anchors) {
                (None, _) => AckTag::Off,
                (Some(_), []) if e.message_id.is_none() => AckTag::Off,
                // Anchored to a tuple of no tree (from a spout that rewinds): nothing to track.
                (Some(_), [anchor]) if e.message_id.is_none() && anchor.ack_count() == 0 => {
                    AckTag::Off
                }
                (Some(acks), [anchor]) if e.message_id.is_none() && anchor.ack_count() == 1 => {
                    match anchor.first_ack_id() {
                        Some(key) => AckTag::One {
                            key,
                            edge: acks.rng.next(),
                        },
                        None => AckTag::Off,
                    }
                }
                _ => return self.emit_general(e, task_ids),
            };
            if self.route_single(0, e.values, &mut tag) {
                self.counters.emitted += 1;
                match tag {
                    AckTag::One { key, edge } => self.anchor_edges(key, edge),
                    _ => {
                        if let Some(id) = e.message_id {
                            self.immediate_acks.push(id);
                        }
                    }
                }
                return;
            }
        }
        self.emit_general(e, task_ids);
    }

    fn emit_refs_anchored(&mut self, anchor: &Tuple<'_>, values: &[ValueRef<'_>]) {
        if self.route_is_default() {
            let b = anchor.born_us();
            if b > 0 {
                self.lane.born = b;
            }
            match self.lane.acks.as_mut() {
                None => {
                    self.emit_fast(EmitValues::Refs(values), &[]);
                    return;
                }
                // An input of no tree (from a spout that rewinds): nothing to track.
                Some(_) if anchor.ack_count() == 0 => {
                    self.emit_fast(EmitValues::Refs(values), &[]);
                    return;
                }
                // With acking, the common case: the input belongs to one tree, and the tuple is
                // its one new edge, recorded against the input once it is written.
                Some(acks) if anchor.ack_count() == 1 => {
                    if let Some(key) = anchor.first_ack_id() {
                        let edge = acks.rng.next();
                        if self.emit_fast(EmitValues::Refs(values), &[(key.0, edge)]) {
                            self.anchor_edges(key, edge);
                        }
                        return;
                    }
                }
                Some(_) => {}
            }
        }
        self.emit(Emission::refs_anchored(&[anchor], values), None);
    }

    fn set_input_born(&mut self, born_us: u64) {
        self.lane.born = born_us;
    }

    #[inline]
    fn lane(&mut self) -> Option<&mut Lane> {
        Some(&mut self.lane)
    }

    /// Marks `input` as the tuple about to be executed. An earlier input that was not acked yet
    /// keeps its anchored edges in the map.
    fn begin_input(&mut self, input: &Tuple<'_>) {
        let (Some(acking), Some(acks)) = (self.acking.as_mut(), self.lane.acks.as_mut()) else {
            return;
        };
        if let Some(prev) = acks.current.take()
            && acks.current_xor != 0
        {
            *acking.anchored.entry(prev).or_insert(0) ^= std::mem::take(&mut acks.current_xor);
        }
        acks.current_xor = 0;
        acks.current = input.first_ack_id();
    }

    fn lane_full(&mut self, dest: usize) {
        Self::send_dest(
            &mut self.lane,
            &mut self.outs,
            dest,
            &mut self.downstream_lost,
        );
    }

    fn ack(&mut self, input: &Tuple<'_>) {
        self.counters.acked += 1;
        if self.acking.is_some() {
            self.ack_tree(input);
        }
    }

    fn fail(&mut self, input: &Tuple<'_>) {
        self.counters.failed += 1;
        let (Some(acking), Some(acks)) = (self.acking.as_mut(), self.lane.acks.as_mut()) else {
            return;
        };
        let Some(key) = input.first_ack_id() else {
            return;
        };
        if acks.current == Some(key) {
            acks.current = None;
            acks.current_xor = 0;
        }
        acking.anchored.remove(&key);
        let ids: AckIds = input.ack_ids();
        for (root, _) in ids {
            self.send_system(2, root, 0);
        }
    }

    fn report_error(&mut self, message: &str) {
        self.reporter
            .report(&self.component, self.lane.task, message);
    }
}

impl Router {
    /// An emit on the first stream by the lane's route (the caller checked there is one), with
    /// `ack_ids` its acking ids; false if it was not written.
    #[inline(always)]
    fn emit_fast(&mut self, values: EmitValues<'_>, ack_ids: &[(u64, u64)]) -> bool {
        match self.lane.push_routed(values, ack_ids) {
            Pushed::Written => {}
            Pushed::Full(d) => self.lane_full(d),
            Pushed::Refused(e) => {
                if let Some(e) = e {
                    tracing::error!(error = %e, "Dropping a tuple that does not fit a batch");
                }
                return false;
            }
        }
        self.counters.emitted += 1;
        true
    }

    /// Every emission the fast path in `emit` does not take.
    #[inline(never)]
    fn emit_general(&mut self, e: Emission<'_>, task_ids: Option<&mut Vec<u32>>) {
        let Some(si) = self.checked_stream(&e) else {
            return;
        };
        self.counters.emitted += 1;
        // An anchored tuple descends from its anchor's spout tuple (a bolt may emit anchored to
        // an input it kept from an earlier batch).
        if let Some(b) = e.anchors.first().map(|a| a.born_us())
            && b > 0
        {
            self.lane.born = b;
        }
        if self.debug {
            let values = e.values.to_strings();
            tracing::info!(
                component = %self.component,
                task = self.lane.task,
                stream = e.stream,
                "Emitting: [{}]",
                values.join(", ")
            );
        }
        if self.acking.is_none() {
            if let Some(id) = e.message_id {
                self.immediate_acks.push(id);
            }
            self.route(si, e.values, e.direct_task, task_ids, &mut AckTag::Off);
        } else if e.message_id.is_some() {
            self.emit_tree_root(si, e, task_ids);
        } else {
            self.emit_anchored(si, &e, task_ids);
        }
    }

    /// The index of the emission's stream; an undeclared stream, or a direct one emitted to
    /// without a task, is reported as the component's error and the tuple is dropped.
    #[inline]
    fn checked_stream(&self, e: &Emission<'_>) -> Option<usize> {
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
            self.reporter.report(&self.component, self.lane.task, &msg);
            return None;
        };
        if self.streams[si].direct && e.direct_task.is_none() {
            let msg = format!("stream \"{}\" is direct: use emit_direct", e.stream);
            self.reporter.report(&self.component, self.lane.task, &msg);
            return None;
        }
        Some(si)
    }

    /// A reliable spout emit (acking on): starts a tree, tells its acker, and records it as
    /// started; with no subscriber the tree is complete at once (as Storm).
    #[inline]
    fn emit_tree_root(&mut self, si: usize, e: Emission<'_>, task_ids: Option<&mut Vec<u32>>) {
        let (Some(id), Some(acking), Some(acks)) =
            (e.message_id, self.acking.as_mut(), self.lane.acks.as_mut())
        else {
            return;
        };
        let mut rng = acks.rng;
        // Random high half (spreads roots over ackers), sequence low half (see `Pending`).
        let root = (rng.next() & 0xffff_ffff_0000_0000) | acking.seq as u64;
        acking.seq = acking.seq.wrapping_add(1);
        let mut tag = AckTag::Root {
            root,
            xor: 0,
            copies: 0,
            rng,
        };
        self.route(si, e.values, e.direct_task, task_ids, &mut tag);
        let AckTag::Root {
            xor, copies, rng, ..
        } = tag
        else {
            return;
        };
        if let Some(acks) = self.lane.acks.as_mut() {
            acks.rng = rng;
        }
        let Some(acking) = self.acking.as_mut() else {
            return;
        };
        if copies == 0 {
            // Nobody subscribes: the tree is complete at once (Storm does the same).
            self.immediate_acks.push(id);
            return;
        }
        let task = self.lane.task;
        acking.started.push((root, task, id));
        self.send_system(0, root, xor);
    }

    /// A bolt emit (acking on): the new edges are anchored to every tree of the anchors.
    #[inline]
    fn emit_anchored(&mut self, si: usize, e: &Emission<'_>, task_ids: Option<&mut Vec<u32>>) {
        // The anchors that belong to a tree, each with its roots.
        let mut keys: SmallVec<[(u64, u64); 2]> = SmallVec::new();
        let mut anchors: SmallVec<[SmallVec<[u64; 2]>; 2]> = SmallVec::new();
        for a in e.anchors {
            if let Some(key) = a.first_ack_id() {
                keys.push(key);
                anchors.push(a.ack_pairs().map(|(r, _)| r).collect());
            }
        }
        if anchors.is_empty() {
            self.route(si, e.values, e.direct_task, task_ids, &mut AckTag::Off);
            return;
        }
        let Some(acks) = self.lane.acks.as_mut() else {
            return;
        };
        let mut tag = AckTag::Anchored {
            xors: smallvec::smallvec![0; anchors.len()],
            anchors,
            rng: acks.rng,
        };
        self.route(si, e.values, e.direct_task, task_ids, &mut tag);
        let AckTag::Anchored { xors, rng, .. } = tag else {
            return;
        };
        if let Some(acks) = self.lane.acks.as_mut() {
            acks.rng = rng;
        }
        for (key, x) in keys.into_iter().zip(xors) {
            self.anchor_edges(key, x);
        }
    }

    /// Acking's part of `ack`: the input's edges and those anchored to it go to its acker.
    fn ack_tree(&mut self, input: &Tuple<'_>) {
        let (Some(acking), Some(acks)) = (self.acking.as_mut(), self.lane.acks.as_mut()) else {
            return;
        };
        if acks.ack_current(input) {
            return;
        }
        // An input kept from an earlier `execute`: its edges are in the map.
        let children = input
            .first_ack_id()
            .and_then(|key| acking.anchored.remove(&key))
            .unwrap_or(0);
        acks.record_ack(input, children);
    }
}
