//! Executor threads: the loops that drive spouts and bolts.

use super::router::{ErrorReporter, Router};
use super::stats::ExecutorStats;
use super::{Batch, GoSignal};
use crate::acker::{AckerBook, Outcome};
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use flux::layout::ExecutorId;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use topology_api::checkpoint::{
    CHECKPOINT_STREAM, SpoutCheckpoint, checkpoint_values, read_checkpoint,
};
use topology_api::component::{Emission, EmitValues};
use topology_api::{
    ACK_ACK_STREAM, ACK_FAIL_STREAM, ACK_INIT_STREAM, Bolt, BoltCollector, Inputs, MessageId,
    SYSTEM_COMPONENT, Spout, SpoutCollector, TopologyContext, Value, now_us, system_source,
};

/// A spout executor's acking settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reliability {
    /// `topology.message.timeout.secs`: a tree not complete by then fails.
    pub timeout: Duration,
    /// `topology.max.spout.pending`: in-flight trees per spout task.
    pub max_pending: Option<u64>,
    /// `gale.message.timeout.rule` is `queue-aware` (the default): a tree does not time out
    /// while an executor of this worker is still on tuples born before it.
    pub queue_aware: bool,
}

/// The trees a spout executor has in flight, in the order they started.
///
/// Root ids carry the executor's sequence number in their low 32 bits (the high 32 bits are
/// random, so roots still spread evenly over the ackers), which makes this a ring indexed by
/// sequence: no hashing per tuple, and the oldest trees (the only ones that can time out) are at
/// the front.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    base: u32,
    slots: std::collections::VecDeque<Option<PendingTree>>,
    live: usize,
}

/// A tree in flight.
#[derive(Debug)]
pub(crate) struct PendingTree {
    /// Index of the spout task (in this executor) that emitted it.
    task: usize,
    id: MessageId,
    started: Instant,
    /// Spout emit time, as its tuples carry it (`born_us`).
    born: u64,
    root: u64,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Registers a tree; `root`'s low 32 bits must be the next sequence number.
    fn insert(&mut self, root: u64, entry: PendingTree) {
        let seq = root as u32;
        if self.slots.is_empty() {
            self.base = seq;
        }
        let idx = seq.wrapping_sub(self.base) as usize;
        while self.slots.len() <= idx {
            self.slots.push_back(None);
        }
        if self.slots[idx].replace(entry).is_none() {
            self.live += 1;
        }
    }

    fn remove(&mut self, root: u64) -> Option<PendingTree> {
        let idx = (root as u32).wrapping_sub(self.base) as usize;
        let e = self.slots.get_mut(idx)?.take()?;
        self.live -= 1;
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base = self.base.wrapping_add(1);
        }
        Some(e)
    }

    /// Forgets every tree of one spout task (it rewound: they are emitted again); returns
    /// their roots.
    fn forget_task(&mut self, task: usize) -> Vec<u64> {
        let mut roots = Vec::new();
        for slot in self.slots.iter_mut() {
            if slot.as_ref().is_some_and(|t| t.task == task)
                && let Some(t) = slot.take()
            {
                roots.push(t.root);
                self.live -= 1;
            }
        }
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base = self.base.wrapping_add(1);
        }
        roots
    }

    /// Removes and returns the trees older than `timeout` that were born before `oldest_queued`
    /// (the oldest work an executor is still on; `u64::MAX`: none, or Storm's rule).
    /// Trees start in birth order, so only the front needs looking at.
    fn expired(
        &mut self,
        now: Instant,
        timeout: Duration,
        oldest_queued: u64,
    ) -> Vec<(usize, MessageId, u64)> {
        let mut out = Vec::new();
        while let Some(front) = self.slots.front_mut() {
            match front {
                Some(t)
                    if now.duration_since(t.started) >= timeout
                        && (oldest_queued == u64::MAX || t.born < oldest_queued) =>
                {
                    if let Some(t) = front.take() {
                        out.push((t.task, t.id, t.root));
                        self.live -= 1;
                    }
                }
                Some(_) => break,
                None => {}
            }
            self.slots.pop_front();
            self.base = self.base.wrapping_add(1);
        }
        out
    }
}

/// A task whose `open` or `prepare` failed, as its executor reports it before any tuple runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {task}: {message}")]
pub(crate) struct OpenFailure {
    pub task: u32,
    pub message: String,
}

/// Everything an executor thread owns besides its components.
pub(crate) struct ExecutorEnv {
    pub component: String,
    pub executor: ExecutorId,
    pub router: Router,
    pub stats: Arc<ExecutorStats>,
    /// Spouts stop emitting when set (Ctrl-C, --duration, a failed executor, kill).
    pub stop: Arc<AtomicBool>,
    /// Spouts emit only while active (Storm's deactivate pauses them).
    pub active: Arc<AtomicBool>,
    /// Nothing runs while it is out (fencing: the supervisor lost touch with the cluster).
    pub lease: super::Lease,
    /// A data spout executor of a local run: counts itself finished (and unfinished again when
    /// a checkpoint rewinds it), so the checkpoint spout knows when the input has ended.
    pub inputs_left: Option<InputsLeft>,
    pub go: Arc<GoSignal>,
    pub ready: crossbeam_channel::Sender<Result<(), OpenFailure>>,
    pub flush_interval: Duration,
    pub contexts: Vec<TopologyContext>,
    pub reporter: Arc<dyn ErrorReporter + Send + Sync>,
    /// This worker's queue positions, and this executor's slot in them.
    pub heads: Arc<super::QueueHeads>,
    pub head_slot: usize,
}

/// How many data spout executors of a local run have not finished, and the flag set when none
/// has (`TopologyContext::inputs_ended`).
#[derive(Clone, Debug)]
pub(crate) struct InputsLeft {
    pub left: Arc<std::sync::atomic::AtomicUsize>,
    pub ended: Arc<AtomicBool>,
}

impl InputsLeft {
    fn finished(&self) {
        if self.left.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.ended.store(true, Ordering::SeqCst);
        }
    }

    fn resumed(&self) {
        self.left.fetch_add(1, Ordering::SeqCst);
        self.ended.store(false, Ordering::SeqCst);
    }
}

/// The sink of a spout that rewinds (exactly-once): its emits lose their message ids, so no
/// tree is started; each id is acked at once instead.
struct Untracked<'r>(&'r mut Router);

impl topology_api::OutputSink for Untracked<'_> {
    fn emit(&mut self, mut e: Emission<'_>, task_ids: Option<&mut Vec<u32>>) {
        let id = e.message_id.take();
        self.0.emit(e, task_ids);
        if let Some(id) = id {
            self.0.immediate_acks.push(id);
        }
    }

    fn set_input_born(&mut self, born_us: u64) {
        self.0.set_input_born(born_us);
    }

    fn ack(&mut self, input: &topology_api::Tuple<'_>) {
        self.0.ack(input);
    }

    fn fail(&mut self, input: &topology_api::Tuple<'_>) {
        self.0.fail(input);
    }

    fn report_error(&mut self, message: &str) {
        self.0.report_error(message);
    }
}

/// Progressive wait for an idle spout (Storm 2's idea): spin briefly, then yield, then sleep with
/// growing naps up to 1 ms, so an idle spout neither burns a core nor adds more than ~1 ms.
#[derive(Debug, Default)]
struct Backoff {
    idle: u32,
}

impl Backoff {
    fn reset(&mut self) {
        self.idle = 0;
    }

    fn wait(&mut self) {
        self.idle = self.idle.saturating_add(1);
        match self.idle {
            0..=63 => std::hint::spin_loop(),
            64..=127 => std::thread::yield_now(),
            n => {
                let micros = (50u64 << ((n - 128).min(5))).min(1000);
                std::thread::sleep(Duration::from_micros(micros));
            }
        }
    }
}

/// A spout executor's loop and what it keeps between rounds: the trees in flight, per-task
/// pending counts, the completion histogram, and the state of its idle wait and timeout scans.
struct SpoutExecutor {
    env: ExecutorEnv,
    spouts: Vec<Box<dyn Spout>>,
    /// Acks and fails from the ackers (acking on).
    rx: Option<Receiver<Batch>>,
    rel: Reliability,
    first: u32,
    finished: Vec<bool>,
    pending: Pending,
    per_task: Vec<u64>,
    complete: Option<hdrhistogram::Histogram<u64>>,
    backoff: Backoff,
    iter: u32,
    active: bool,
    last_timeout_scan: Instant,
    /// Where the executors were at the last few scans (oldest first), for the queue-aware rule.
    seen_oldest: [u64; 5],
    stamp_every_call: bool,
    was_idle: bool,
    /// When the spouts' gauges were last read.
    gauges_at: Instant,
    /// When the trees started now began (read with the birth stamp, as often).
    clock: Instant,
    acked_src: Option<&'static topology_api::StreamSource>,
    /// Per task: its part in checkpoints (a data spout of a topology with stateful bolts).
    checkpoints: Vec<Option<SpoutCheckpoint>>,
    /// This executor counted itself finished (`ExecutorEnv::inputs_left`).
    counted_finished: bool,
}

pub(crate) fn run_spout(
    env: ExecutorEnv,
    spouts: Vec<Box<dyn Spout>>,
    rx: Option<Receiver<Batch>>,
    rel: Reliability,
) {
    let mut ex = SpoutExecutor::new(env, spouts, rx, rel);
    if !ex.open() {
        return;
    }
    while !ex.env.stop.load(Ordering::Relaxed) && !ex.env.router.downstream_lost {
        if !ex.env.lease.valid() {
            // Fenced: another copy of these tasks may run soon; this one neither emits nor
            // settles acks (a spout that commits offsets on ack must not commit them twice).
            ex.env.router.flush();
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        ex.take_acks();
        ex.fail_timed_out();
        if !ex.follow_activation() {
            ex.env.router.flush();
            ex.env.stats.publish(&ex.env.router.counters);
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let before = ex.env.router.counters.emitted;
        if ex.emit_round() {
            if !ex.counted_finished {
                ex.counted_finished = true;
                if let Some(i) = &ex.env.inputs_left {
                    i.finished();
                }
            }
            // A data spout of a checkpointed run passes checkpoints on until they are done.
            if !ex.checkpointing() || ex.checkpoints_done() {
                break;
            }
            ex.env.router.flush();
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        ex.iter = ex.iter.wrapping_add(1);
        ex.was_idle = ex.env.router.counters.emitted == before;
        if ex.was_idle {
            ex.idle();
        } else {
            ex.busy();
        }
    }
    ex.close();
    // Dropping the router drops its senders: downstream executors see the end of input.
}

impl SpoutExecutor {
    fn new(
        env: ExecutorEnv,
        spouts: Vec<Box<dyn Spout>>,
        rx: Option<Receiver<Batch>>,
        rel: Reliability,
    ) -> Self {
        let n = spouts.len();
        SpoutExecutor {
            first: env.executor.start,
            stamp_every_call: env.router.lane.limits.iter().any(|b| *b <= 1),
            complete: rx.as_ref().and_then(|_| {
                hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok()
            }),
            env,
            spouts,
            rx,
            rel,
            finished: vec![false; n],
            pending: Pending::default(),
            per_task: vec![0; n],
            backoff: Backoff::default(),
            iter: 0,
            active: true,
            last_timeout_scan: Instant::now(),
            seen_oldest: [0; 5],
            was_idle: true,
            gauges_at: Instant::now(),
            clock: Instant::now(),
            acked_src: system_source(SYSTEM_COMPONENT, ACK_ACK_STREAM),
            checkpoints: Vec::new(),
            counted_finished: false,
        }
    }

    /// A tree of task `i` failed: the spout replays it, unless it rewinds (then the next
    /// checkpoint fails, and the rollback rewinds it).
    fn fail_tuple(&mut self, i: usize, id: &MessageId) {
        let replay = self
            .checkpoints
            .get_mut(i)
            .and_then(Option::as_mut)
            .is_none_or(|c| c.failed());
        if replay {
            self.spouts[i].fail(id);
        }
        self.env.router.counters.failed += 1;
    }

    fn checkpointing(&self) -> bool {
        self.checkpoints.iter().any(Option::is_some)
    }

    /// Set by the checkpoint spout of a local run when it ends; never on a cluster, where a
    /// finished data spout passes checkpoints on until the topology is killed.
    fn checkpoints_done(&self) -> bool {
        self.env
            .contexts
            .first()
            .and_then(|c| c.checkpoints_done.as_ref())
            .is_some_and(|d| d.load(Ordering::SeqCst))
    }

    /// A checkpoint action for task `task`: the spout's part ([`SpoutCheckpoint`]), then the
    /// action passed on to the bolts it feeds, in line with its tuples, and acked (or failed).
    fn checkpoint(&mut self, task: u32, t: &topology_api::Tuple<'_>) {
        use topology_api::OutputSink;
        let i = task.wrapping_sub(self.first) as usize;
        let parsed = read_checkpoint(t);
        let (Some((txid, action)), Some(Some(cp)), Some(spout)) =
            (parsed, self.checkpoints.get_mut(i), self.spouts.get_mut(i))
        else {
            self.env.router.fail(t);
            return;
        };
        let rewinds = cp.rewinds(action);
        let ok = match cp.act(action, txid, spout.as_mut()) {
            Ok(ok) => ok,
            Err(e) => {
                self.env.reporter.report(
                    &self.env.component,
                    task,
                    &format!(
                        "checkpoint {} of transaction {txid} failed: {e}",
                        action.as_str()
                    ),
                );
                false
            }
        };
        if rewinds && ok {
            // The trees in flight are void: their tuples are emitted again from the position.
            for root in self.pending.forget_task(i) {
                self.env.router.fail_tree(root);
            }
            self.per_task[i] = 0;
            self.finished[i] = false;
            if std::mem::take(&mut self.counted_finished)
                && let Some(l) = &self.env.inputs_left
            {
                l.resumed();
            }
        }
        let router = &mut self.env.router;
        router.lane.task = task;
        router.begin_input(t);
        if ok {
            let values = checkpoint_values(txid, action);
            router.emit(
                Emission {
                    stream: CHECKPOINT_STREAM,
                    values: EmitValues::Owned(&values),
                    anchors: &[t],
                    message_id: None,
                    direct_task: None,
                },
                None,
            );
            router.ack(t);
            // A relayed checkpoint is not one of this spout's trees.
            router.counters.acked -= 1;
        } else {
            router.fail(t);
            router.counters.failed -= 1;
        }
        router.flush();
    }

    /// Opens every spout task and reports to the worker; runs on only once the whole worker
    /// opened (`false`: a task failed or another executor did).
    fn open(&mut self) -> bool {
        let mut opened = Ok(());
        for (i, s) in self.spouts.iter_mut().enumerate() {
            let ctx = &self.env.contexts[i];
            let r = s
                .open(ctx)
                .and_then(|()| SpoutCheckpoint::open(ctx, s.as_ref()));
            match r {
                Ok(cp) => self.checkpoints.push(cp),
                Err(e) => {
                    opened = Err(OpenFailure {
                        task: self.first + i as u32,
                        message: format!("open failed: {e}"),
                    });
                    break;
                }
            }
        }
        let ok = opened.is_ok();
        let _ = self.env.ready.send(opened);
        if !ok || !self.env.go.wait() {
            return false;
        }
        for s in self.spouts.iter_mut() {
            s.activate();
        }
        true
    }

    /// Settles the acks and fails that arrived.
    fn take_acks(&mut self) {
        while let Some(batch) = self.rx.as_ref().and_then(|rx| rx.try_recv().ok()) {
            self.settle(batch);
        }
    }

    /// Every 100 ms: fails the trees past `topology.message.timeout.secs`. A tree is failed only
    /// once every executor had moved past it at each of the last five scans (about half a
    /// second), which gives its last acks time to reach this spout even on a loaded machine.
    fn fail_timed_out(&mut self) {
        if self.pending.is_empty() || self.last_timeout_scan.elapsed() < Duration::from_millis(100)
        {
            return;
        }
        self.last_timeout_scan = Instant::now();
        let oldest = if self.rel.queue_aware {
            self.seen_oldest.rotate_left(1);
            self.seen_oldest[4] = self.env.heads.oldest();
            self.seen_oldest.iter().copied().min().unwrap_or(0)
        } else {
            u64::MAX
        };
        let expired = self
            .pending
            .expired(self.last_timeout_scan, self.rel.timeout, oldest);
        for (i, id, root) in expired {
            self.per_task[i] = self.per_task[i].saturating_sub(1);
            self.fail_tuple(i, &id);
            // The acker keeps trees longer than the timeout (it cannot see queues): tell it.
            self.env.router.fail_tree(root);
        }
    }

    /// Follows Storm's activate/deactivate; returns whether the spouts are active.
    fn follow_activation(&mut self) -> bool {
        let want = self.env.active.load(Ordering::Relaxed);
        if want != self.active {
            self.active = want;
            for s in self.spouts.iter_mut() {
                if want {
                    s.activate();
                } else {
                    s.deactivate();
                }
            }
        }
        self.active
    }

    /// One `next_tuple` per task that may emit; returns whether every task is finished (its
    /// spout says so and none of its trees is in flight).
    fn emit_round(&mut self) -> bool {
        let mut all_finished = true;
        for i in 0..self.spouts.len() {
            if self.finished[i] {
                continue;
            }
            if self
                .checkpoints
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|c| !c.may_emit())
            {
                // A spout that rewinds emits nothing before INITSTATE tells it where from.
                all_finished = false;
                continue;
            }
            if self.rel.max_pending.is_some_and(|m| self.per_task[i] >= m) {
                // topology.max.spout.pending: wait for acks before emitting more.
                all_finished = false;
                continue;
            }
            self.env.router.lane.task = self.first + i as u32;
            // The birth stamp: a clock read per call when tuples go out one at a time (latency
            // mode); with batching, every 16th call (a few microseconds stale at most, against
            // batches that wait up to the flush interval), which saves a clock read per line.
            // After an idle round (the spout may have slept) always.
            if self.stamp_every_call || self.was_idle || self.iter.is_multiple_of(16) {
                self.env.router.lane.born = now_us();
                self.clock = Instant::now();
            }
            let s = &mut self.spouts[i];
            let rewinds = self
                .checkpoints
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(SpoutCheckpoint::rewinds_on_recovery);
            if rewinds {
                // A spout that rewinds to its checkpointed position needs no acks: its tuples go
                // out without trees (as Flink's do) and count as acked at once.
                s.next_tuple(&mut SpoutCollector::new(&mut Untracked(
                    &mut self.env.router,
                )));
            } else {
                s.next_tuple(&mut SpoutCollector::new(&mut self.env.router));
            }
            if !self.env.router.immediate_acks.is_empty() {
                // Acking is off (or nobody subscribes): Storm acks a spout tuple at once.
                for id in self.env.router.immediate_acks.drain(..) {
                    s.ack(&id);
                    self.env.router.counters.acked += 1;
                }
            }
            self.track_started_trees();
            if self.spouts[i].is_finished() && self.per_task[i] == 0 {
                self.finished[i] = true;
            } else {
                all_finished = false;
            }
        }
        all_finished
    }

    /// Records the trees the last `next_tuple` started (acking on).
    #[inline]
    fn track_started_trees(&mut self) {
        let Some(acking) = self.env.router.acking.as_mut() else {
            return;
        };
        if acking.started.is_empty() {
            return;
        }
        let born = self.env.router.lane.born;
        for (root, task, id) in acking.started.drain(..) {
            let idx = (task - self.first) as usize;
            self.per_task[idx] += 1;
            self.pending.insert(
                root,
                PendingTree {
                    task: idx,
                    id,
                    started: self.clock,
                    born,
                    root,
                },
            );
        }
    }

    /// Reads the spouts' gauges into the stats, at most once a second.
    fn publish_gauges(&mut self) {
        if self.gauges_at.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.gauges_at = Instant::now();
        let mut all = Vec::new();
        for s in &self.spouts {
            all.extend(s.gauges());
        }
        if !all.is_empty() {
            *self
                .env
                .stats
                .gauges
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = all;
        }
    }

    /// After a round that emitted: publish counters and flush on their intervals.
    fn busy(&mut self) {
        self.backoff.reset();
        if self.iter.is_multiple_of(64) {
            self.publish_gauges();
            self.env.stats.publish(&self.env.router.counters);
            if self.env.router.last_flush.elapsed() >= self.env.flush_interval {
                self.env.router.flush();
            }
        }
    }

    /// After a round that emitted nothing: flush, publish, and wait (on the ack queue when
    /// trees are in flight, else with a growing backoff).
    fn idle(&mut self) {
        self.env.router.flush();
        self.publish_gauges();
        self.env.stats.publish(&self.env.router.counters);
        let waiting_for_acks = !self.pending.is_empty();
        match self.rx.as_ref().filter(|_| waiting_for_acks) {
            Some(rx) => match rx.recv_timeout(Duration::from_millis(1)) {
                Ok(batch) => self.settle(batch),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.backoff.wait(),
            },
            None => self.backoff.wait(),
        }
    }

    fn close(mut self) {
        // A fenced spout has no side effects left to have: another copy may own its tasks now
        // (a spout that commits its position on close would overwrite the new copy's). Storm
        // does not promise `close` either.
        if self.env.lease.valid() {
            for s in self.spouts.iter_mut() {
                s.deactivate();
                s.close();
            }
        }
        self.env.router.flush();
        self.env.stats.publish(&self.env.router.counters);
        if self.env.router.downstream_lost {
            self.env.reporter.report(
                &self.env.component,
                self.first,
                "a downstream executor stopped; this spout stopped too",
            );
        }
        if let Some(h) = self.complete.take() {
            *self
                .env
                .stats
                .complete
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(h);
        }
    }

    /// Handles acks and fails that ackers sent back.
    fn settle(&mut self, batch: Batch) {
        let now = Instant::now();
        let checkpointing = self.checkpointing();
        for (task, t) in batch.iter() {
            if checkpointing && t.source_stream() == CHECKPOINT_STREAM {
                self.checkpoint(task, &t);
                continue;
            }
            // A random 64-bit id: read without a branch on its marker.
            let Some(root) = t.reader().and_then(|(_, mut r)| r.wide_int_value()) else {
                continue;
            };
            let Some(PendingTree {
                task: i,
                id,
                started: start,
                ..
            }) = self.pending.remove(root as u64)
            else {
                continue;
            };
            self.per_task[i] = self.per_task[i].saturating_sub(1);
            // Acker replies name their stream by the interned system source: a pointer compare.
            let acked = match self.acked_src {
                Some(a) if std::ptr::eq(t.source(), a) => true,
                _ => t.source_stream() == ACK_ACK_STREAM,
            };
            if acked {
                self.spouts[i].ack(&id);
                self.env.router.counters.acked += 1;
                let us = now.duration_since(start).as_micros() as u64;
                self.env.router.counters.complete_us += us;
                if let Some(h) = self.complete.as_mut() {
                    h.saturating_record(us.max(1));
                }
                self.env.router.counters.completed += 1;
            } else {
                self.fail_tuple(i, &id);
            }
        }
    }
}

/// A bolt executor's loop and what it keeps between batches: its bolts, which of them auto-ack
/// and poll, tick tuples, and (terminal executors) the end-to-end latency histogram.
struct BoltExecutor {
    env: ExecutorEnv,
    rx: Receiver<Batch>,
    bolts: Vec<Box<dyn Bolt>>,
    auto_ack: Vec<bool>,
    /// Some bolt has asynchronous work (`Bolt::wants_poll`): poll about every millisecond.
    polls: bool,
    /// Terminal executors (they feed nobody) measure end-to-end latency.
    latency: Option<hdrhistogram::Histogram<u64>>,
    latency_dirty: bool,
    last_latency_publish: Instant,
    /// Storm's tick tuples: every `every`, each task gets a tuple from `__system` on `__tick`.
    ticks: Option<Ticks>,
    first_batch: bool,
}

struct Ticks {
    every: Duration,
    next: Instant,
    source: &'static topology_api::StreamSource,
}

/// What the input queue gave.
enum Input {
    Batch(Batch),
    /// Nothing yet (a wait ended, a tick may be due).
    Again,
    /// Every sender is gone: the end of input.
    End,
}

pub(crate) fn run_bolt(
    env: ExecutorEnv,
    rx: Receiver<Batch>,
    bolts: Vec<Box<dyn Bolt>>,
    cleanup: bool,
    tick: Option<Duration>,
) {
    let mut ex = BoltExecutor::new(env, rx, bolts, tick);
    if !ex.prepare() {
        return;
    }
    loop {
        if let Some(ticks) = ex.due_ticks() {
            ex.run(ticks);
            continue;
        }
        match ex.next_input() {
            Input::Batch(batch) => {
                if !ex.env.lease.valid() && !wait_for_lease(&ex.env) {
                    // Fenced and stopping: the batch is dropped unexecuted (its trees are
                    // replayed from their spouts by whichever copy runs them next).
                    continue;
                }
                if let Some(born) = batch.first_born() {
                    ex.env.heads.took(ex.env.head_slot, born);
                }
                ex.env
                    .stats
                    .queue_depth
                    .store(ex.rx.len() as u64, Ordering::Relaxed);
                ex.run(batch);
                if ex.polls {
                    poll_bolts(&mut ex.env, &mut ex.bolts, false);
                }
                ex.after_batch();
            }
            Input::Again => {}
            Input::End => break,
        }
    }
    ex.finish(cleanup);
}

/// Waits while the lease is out; `false` when the worker stops before it is renewed.
fn wait_for_lease(env: &ExecutorEnv) -> bool {
    while !env.lease.valid() {
        if env.stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

impl BoltExecutor {
    fn new(
        env: ExecutorEnv,
        rx: Receiver<Batch>,
        bolts: Vec<Box<dyn Bolt>>,
        tick: Option<Duration>,
    ) -> Self {
        let terminal = env.router.streams.iter().all(|s| s.subscribers.is_empty());
        BoltExecutor {
            env,
            rx,
            auto_ack: bolts.iter().map(|b| b.auto_ack()).collect(),
            polls: bolts.iter().any(|b| b.wants_poll()),
            bolts,
            latency: terminal
                .then(|| hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok())
                .flatten(),
            latency_dirty: false,
            last_latency_publish: Instant::now(),
            ticks: tick.and_then(|every| {
                system_source(SYSTEM_COMPONENT, "__tick").map(|source| Ticks {
                    every,
                    next: Instant::now() + every,
                    source,
                })
            }),
            first_batch: true,
        }
    }

    /// Prepares every bolt task and reports to the worker; runs on only once the whole worker
    /// opened (`false`: a task failed or another executor did).
    fn prepare(&mut self) -> bool {
        let first = self.env.executor.start;
        let mut prepared = Ok(());
        for (i, b) in self.bolts.iter_mut().enumerate() {
            if let Err(e) = b.prepare(&self.env.contexts[i]) {
                prepared = Err(OpenFailure {
                    task: first + i as u32,
                    message: format!("prepare failed: {e}"),
                });
                break;
            }
        }
        let ok = prepared.is_ok();
        let _ = self.env.ready.send(prepared);
        ok && self.env.go.wait()
    }

    fn run(&mut self, batch: Batch) {
        run_batch(
            &mut self.env,
            &mut self.bolts,
            &self.auto_ack,
            batch,
            &mut self.latency,
        );
    }

    /// A batch of tick tuples, one per task, when they are due.
    fn due_ticks(&mut self) -> Option<Batch> {
        let t = self.ticks.as_mut()?;
        if Instant::now() < t.next {
            return None;
        }
        t.next += t.every;
        let first = self.env.executor.start;
        let mut batch = Batch::with_capacity(self.bolts.len());
        let secs = [Value::Int(t.every.as_secs() as i64)];
        for task in first..first + self.bolts.len() as u32 {
            // One small tuple per task: it always fits.
            let _ = batch.push(task, t.source, 0, 0, &[], &secs);
        }
        Some(batch)
    }

    /// The next input batch. Out of input, it first sends what is buffered (rather than wait for
    /// a full batch) and publishes counters, then waits: until the next tick, about a
    /// millisecond when bolts poll, else until input comes.
    fn next_input(&mut self) -> Input {
        match self.rx.try_recv() {
            Ok(b) => return Input::Batch(b),
            Err(TryRecvError::Disconnected) => return Input::End,
            Err(TryRecvError::Empty) => {}
        }
        self.env.heads.idle(self.env.head_slot);
        self.env.router.flush();
        self.env.stats.publish(&self.env.router.counters);
        // (At most every 100 ms: a histogram copy is tens of kilobytes, and a fast terminal bolt
        // runs out of input thousands of times a second.)
        if self.latency_dirty {
            self.publish_latency(Duration::from_millis(100));
        }
        let until_tick = self
            .ticks
            .as_ref()
            .map(|t| t.next.saturating_duration_since(Instant::now()));
        let wait = match (until_tick, self.polls) {
            (Some(t), true) => Some(t.min(Duration::from_millis(1))),
            (Some(t), false) => Some(t),
            (None, true) => Some(Duration::from_millis(1)),
            (None, false) => None,
        };
        let got = match wait {
            Some(w) => match self.rx.recv_timeout(w) {
                Ok(b) => Input::Batch(b),
                Err(RecvTimeoutError::Timeout) => Input::Again,
                Err(RecvTimeoutError::Disconnected) => Input::End,
            },
            None => match self.rx.recv() {
                Ok(b) => Input::Batch(b),
                Err(_) => Input::End,
            },
        };
        if matches!(got, Input::Again) && self.polls {
            poll_bolts(&mut self.env, &mut self.bolts, false);
        }
        got
    }

    fn after_batch(&mut self) {
        if self.first_batch {
            self.first_batch = false;
            self.env
                .stats
                .first_executed_us
                .store(now_us(), Ordering::Relaxed);
        }
        self.latency_dirty = self.latency.is_some();
        // Cluster heartbeats read the histogram: publish a copy about once a second.
        self.publish_latency(Duration::from_secs(1));
    }

    /// Publishes a copy of the latency histogram if the last one is older than `every`.
    fn publish_latency(&mut self, every: Duration) {
        if let Some(h) = self.latency.as_ref()
            && self.last_latency_publish.elapsed() >= every
        {
            self.last_latency_publish = Instant::now();
            self.latency_dirty = false;
            *self
                .env
                .stats
                .latency
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(h.clone());
        }
    }

    /// End of input: what the bolts handed off comes back, cleanup (local mode and kill), the
    /// last flush and counters.
    fn finish(mut self, cleanup: bool) {
        if self.polls {
            poll_bolts(&mut self.env, &mut self.bolts, true);
        }
        // Fenced: no side effects (another copy may own these tasks now).
        if cleanup && self.env.lease.valid() {
            let first = self.env.executor.start;
            for (i, b) in self.bolts.iter_mut().enumerate() {
                if let Err(e) = b.end() {
                    // Its results are lost: the run has failed, whatever else went well.
                    let task = first + i as u32;
                    self.env
                        .reporter
                        .report_failure(&self.env.component, task, &e.to_string());
                }
            }
        }
        self.env.router.flush();
        self.env.stats.publish(&self.env.router.counters);
        if let Some(h) = self.latency.take() {
            *self
                .env
                .stats
                .latency
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(h);
        }
    }
}

/// Lets each bolt that wants it handle its asynchronous work.
fn poll_bolts(env: &mut ExecutorEnv, bolts: &mut [Box<dyn Bolt>], end: bool) {
    let first = env.executor.start;
    for (i, b) in bolts.iter_mut().enumerate() {
        if b.wants_poll() {
            env.router.lane.task = first + i as u32;
            b.poll(&mut BoltCollector::new(&mut env.router), end);
        }
    }
    if end {
        env.router.flush();
    }
}

/// Executes one batch of input on a bolt executor's tasks.
#[inline]
fn run_batch(
    env: &mut ExecutorEnv,
    bolts: &mut [Box<dyn Bolt>],
    auto_ack: &[bool],
    batch: Batch,
    latency: &mut Option<hdrhistogram::Histogram<u64>>,
) {
    let n = batch.len() as u64;
    let latency_is_recorded = latency.is_some();
    let started = Instant::now();
    let mut runs = LatencyRuns::new(latency.as_mut());
    if let [bolt] = bolts {
        let auto = auto_ack.first().copied().unwrap_or(true);
        let me = env.executor.start;
        // A terminal bolt's birth stamps, read in a pass of their own (headers only, ~10
        // instructions a tuple): recording them in `Inputs` would put a check in every bolt's
        // loop.
        if latency_is_recorded {
            for (task, t) in batch.iter() {
                if task == me {
                    runs.see(t.born_us());
                }
            }
        }
        run_simple(env, bolt.as_mut(), auto, &batch);
    } else {
        run_general(env, bolts, auto_ack, &batch, &mut runs);
    }
    runs.flush();
    env.router.counters.busy_ns += started.elapsed().as_nanos() as u64;
    // What bolts' collectors did in the lane themselves, counted once per batch.
    let lane = &mut env.router.lane;
    let (emitted, acked) = (
        std::mem::take(&mut lane.emitted),
        std::mem::take(&mut lane.acked),
    );
    env.router.counters.emitted += emitted;
    env.router.counters.acked += acked;
    env.router.flush_acks();
    env.router.counters.executed += n;
    if env.router.last_flush.elapsed() >= env.flush_interval {
        env.router.flush();
        env.stats.publish(&env.router.counters);
    }
}

/// End-to-end latency of a batch's tuples against one clock read (exact to within the batch's
/// own processing time). Consecutive tuples of one spout tuple (the words of a line) share a
/// birth stamp: recorded as one run.
struct LatencyRuns<'h> {
    histogram: Option<&'h mut hdrhistogram::Histogram<u64>>,
    now: u64,
    /// Birth stamp and length of the current run.
    run: (u64, u64),
}

impl<'h> LatencyRuns<'h> {
    fn new(histogram: Option<&'h mut hdrhistogram::Histogram<u64>>) -> Self {
        let now = if histogram.is_some() { now_us() } else { 0 };
        LatencyRuns {
            histogram,
            now,
            run: (0, 0),
        }
    }

    #[inline(always)]
    fn see(&mut self, born: u64) {
        if born == self.run.0 {
            self.run.1 += 1;
        } else {
            self.flush();
            self.run = (born, 1);
        }
    }

    /// Records the current run.
    fn flush(&mut self) {
        if let Some(h) = self.histogram.as_deref_mut()
            && self.run.0 > 0
        {
            h.saturating_record_n(self.now.saturating_sub(self.run.0), self.run.1);
        }
        self.run = (0, 0);
    }
}

/// [`run_batch`] for the usual executor: one task. The bolt runs the batch in one call
/// ([`Bolt::execute_batch`]), its `execute` called directly, not through the vtable; its
/// collector begins and acks each input (with acking on, in the router's lane).
fn run_simple(env: &mut ExecutorEnv, bolt: &mut dyn Bolt, auto_ack: bool, batch: &Batch) {
    let me = env.executor.start;
    env.router.lane.task = me;
    let acking = env.router.lane.acks.is_some();
    let unsettled = bolt.execute_batch(Inputs::new(batch, me), &mut env.router, auto_ack, acking);
    env.router.counters.acked += unsettled;
}

/// [`run_batch`] for an executor of several tasks.
fn run_general(
    env: &mut ExecutorEnv,
    bolts: &mut [Box<dyn Bolt>],
    auto_ack: &[bool],
    batch: &Batch,
    runs: &mut LatencyRuns<'_>,
) {
    let first = env.executor.start;
    // By reference: the bolt reads each tuple where it lies in the batch instead of a copy of it
    // moved onto the stack; the batch is dropped whole afterwards.
    for (task, t) in batch.iter() {
        let born = t.born_us();
        runs.see(born);
        let idx = task.wrapping_sub(first) as usize;
        let Some(bolt) = bolts.get_mut(idx) else {
            continue;
        };
        env.router.lane.task = task;
        env.router.lane.born = born;
        let settled = env.router.counters.acked + env.router.counters.failed;
        topology_api::OutputSink::begin_input(&mut env.router, &t);
        bolt.execute(&t, &mut BoltCollector::new(&mut env.router));
        if auto_ack[idx] && env.router.counters.acked + env.router.counters.failed == settled {
            if env.router.acking.is_none() {
                // All an ack does without ackers: counted here instead of in a call per tuple.
                env.router.counters.acked += 1;
            } else {
                topology_api::OutputSink::ack(&mut env.router, &t);
            }
        }
    }
}

/// An acker executor (Storm's `__acker`) around [`crate::acker::AckerBook`]: a completed or
/// failed tree's spout task is told at once; trees older than the message timeout are dropped
/// (their spout has failed them by then).
pub(crate) fn run_acker(mut env: ExecutorEnv, rx: Receiver<Batch>, timeout: Duration) {
    let _ = env.ready.send(Ok(()));
    if !env.go.wait() {
        return;
    }
    let source = |stream: &str| {
        system_source(SYSTEM_COMPONENT, stream).expect("acking streams are system streams")
    };
    let (ack_src, fail_src) = (source(ACK_ACK_STREAM), source(ACK_FAIL_STREAM));
    let init_src = source(ACK_INIT_STREAM);
    let me = env.executor.start;
    let mut book = AckerBook::new();
    let epoch = Instant::now();
    let mut last_sweep = Instant::now();
    loop {
        let batch = match rx.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) => {
                env.router.flush();
                env.stats.publish(&env.router.counters);
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(b) => b,
                    Err(RecvTimeoutError::Timeout) => Batch::default(),
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        let n = batch.len() as u64;
        // One clock read per batch for the trees' ages, the sweep and the flush.
        let now = Instant::now();
        let now_ms = now.duration_since(epoch).as_millis() as u64;
        for (_, t) in batch.iter() {
            // (root, val), or (root) for a fail: read in one pass.
            let Some((n, mut r)) = t.reader() else {
                continue;
            };
            // Random 64-bit ids: read without a branch on their marker.
            let Some(root) = r.wide_int_value().map(|r| r as u64) else {
                continue;
            };
            let val = if n > 1 {
                r.wide_int_value().unwrap_or(0) as u64
            } else {
                0
            };
            // Interned sources compare by pointer; a stream name is the fallback.
            let src = t.source();
            let stream = if std::ptr::eq(src, init_src) {
                ACK_INIT_STREAM
            } else if std::ptr::eq(src, ack_src) {
                ACK_ACK_STREAM
            } else if std::ptr::eq(src, fail_src) {
                ACK_FAIL_STREAM
            } else {
                t.source_stream()
            };
            let outcome = match stream {
                ACK_INIT_STREAM => book.init(root, val, t.source_task(), now_ms),
                ACK_FAIL_STREAM => book.fail(root, now_ms),
                _ => book.ack(root, val, now_ms),
            };
            let (reply, spout) = match outcome {
                Some(Outcome::Acked { spout_task, .. }) => (ack_src, spout_task),
                Some(Outcome::Failed { spout_task, .. }) => (fail_src, spout_task),
                None => continue,
            };
            env.router.lane.task = me;
            env.router
                .send_to(spout, reply, EmitValues::Owned(&[Value::Int(root as i64)]));
            env.router.counters.emitted += 1;
        }
        env.router.counters.executed += n;
        if now.duration_since(last_sweep) >= Duration::from_secs(1) {
            last_sweep = now;
            // Spouts tell their acker about the trees they time out; this only bounds the memory
            // of trees whose spout is gone. Ten timeouts: a tree may outlive one timeout while it
            // waits in queues (the queue-aware rule).
            book.expire(now_ms, timeout.as_millis() as u64 * 10);
        }
        if now.saturating_duration_since(env.router.last_flush) >= env.flush_interval {
            env.router.flush();
            env.stats.publish(&env.router.counters);
        }
    }
    env.router.flush();
    env.stats.publish(&env.router.counters);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(seq: u32, born: u64, started: Instant) -> (u64, PendingTree) {
        let root = 0xabcd_0000_0000_0000 | u64::from(seq);
        (
            root,
            PendingTree {
                task: 0,
                id: MessageId::Int(u64::from(seq)),
                started,
                born,
                root,
            },
        )
    }

    #[test]
    fn queue_aware_expiry_waits_for_the_executors_to_pass_a_tree() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(1);
        let later = t0 + Duration::from_secs(5);
        let mut p = Pending::default();
        for (seq, born) in [(0, 100), (1, 200), (2, 300)] {
            let (root, e) = tree(seq, born, t0);
            p.insert(root, e);
        }
        // Not old enough: nothing, whatever the queues.
        assert!(p.expired(t0, timeout, u64::MAX).is_empty());
        // Old enough, but an executor is still on work born at 100: tree 0 may be queued.
        assert!(p.expired(later, timeout, 100).is_empty());
        // Executors are on work born at 250: trees 0 and 1 are behind them, tree 2 is not.
        let ids: Vec<u64> = p
            .expired(later, timeout, 250)
            .iter()
            .map(|e| e.2 as u32 as u64)
            .collect();
        assert_eq!(ids, vec![0, 1]);
        // All idle (u64::MAX), or Storm's rule: the rest times out.
        assert_eq!(p.expired(later, timeout, u64::MAX).len(), 1);
        assert!(p.is_empty());
    }

    #[test]
    fn removed_trees_never_expire() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        let (r0, e0) = tree(0, 1, t0);
        let (r1, e1) = tree(1, 2, t0);
        p.insert(r0, e0);
        p.insert(r1, e1);
        assert!(p.remove(r0).is_some());
        let out = p.expired(
            t0 + Duration::from_secs(9),
            Duration::from_secs(1),
            u64::MAX,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].2, r1);
    }
}
