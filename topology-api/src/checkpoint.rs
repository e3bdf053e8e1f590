//! Storm's checkpoint protocol for stateful bolts (docs/state.md).
//!
//! A topology with a stateful bolt gets a system spout, `$checkpointspout` (one task), whose
//! [`Coordinator`] keeps (txid, COMMITTED | PREPARING | COMMITTING) in the state store and emits
//! PREPARE, COMMIT, ROLLBACK and INITSTATE on the `$checkpoint` stream, one action at a time,
//! each as a reliable tuple (message id = txid): its ack means every bolt task handled it, a
//! fail starts recovery. Every bolt subscribes to `$checkpoint` (ALL grouping) from
//! `$checkpointspout` when it reads a spout, else from each bolt it reads; a bolt acts on an
//! action once the same (action, txid) came from every upstream task ([`Aligner`]), forwards it
//! anchored, then acks it. A stateful bolt ([`StatefulBoltAdapter`]) holds the inputs that
//! arrive before INITSTATE, prepares its state's changes on PREPARE, commits them on COMMIT,
//! drops them on ROLLBACK, and acks its inputs only once the checkpoint holding their effect
//! committed (a ROLLBACK fails them, so their spouts replay them). Other bolts only forward
//! ([`CheckpointForwarder`]).
//!
//! The coordinator and the aligner are pure state machines; the spout and bolt wrappers do
//! their I/O through the [`StateStore`] their context's provider opens.

use crate::component::{
    Bolt, BoltCollector, ComponentError, Emission, Inputs, OutputDeclarer, OutputSink, Spout,
    SpoutCollector, TopologyContext,
};
use crate::state::{StateError, StateProvider, StateStore, StatefulTask, Stored};
use crate::tuple::{AckIds, MessageId, StreamSource, Tuple};
use crate::value::{Fields, Value, Values};
use gale_tuple::emit::EmitValues;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The checkpoint spout's component id, as Storm's.
pub const CHECKPOINT_COMPONENT: &str = "$checkpointspout";
/// The checkpoint spout's class name (every registry knows it).
pub const CHECKPOINT_SPOUT_CLASS: &str = "org.apache.storm.spout.CheckpointSpout";
/// The stream checkpoint actions travel on, as Storm's.
pub const CHECKPOINT_STREAM: &str = "$checkpoint";
/// Its fields, as Storm's.
pub const CHECKPOINT_FIELDS: [&str; 2] = ["txid", "action"];
/// Storm's default checkpoint interval, and the least it takes.
pub const DEFAULT_INTERVAL_MS: u64 = 1000;
pub const MIN_INTERVAL_MS: u64 = 100;

/// The checkpoint interval of a topology config (`topology.state.checkpoint.interval.ms`,
/// at least 100 ms).
pub fn interval(config: &serde_json::Map<String, serde_json::Value>) -> Duration {
    let ms = config
        .get(crate::keys::STATE_CHECKPOINT_INTERVAL_MS)
        .and_then(|v| v.as_u64())
        .unwrap_or(DEFAULT_INTERVAL_MS);
    Duration::from_millis(ms.max(MIN_INTERVAL_MS))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    Prepare,
    Commit,
    Rollback,
    InitState,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Prepare => "PREPARE",
            Action::Commit => "COMMIT",
            Action::Rollback => "ROLLBACK",
            Action::InitState => "INITSTATE",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "PREPARE" => Action::Prepare,
            "COMMIT" => Action::Commit,
            "ROLLBACK" => Action::Rollback,
            "INITSTATE" => Action::InitState,
            _ => return None,
        })
    }
}

/// Where the last checkpoint got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Committed,
    Preparing,
    Committing,
}

/// What the checkpoint spout stores (key `__state` of namespace `$checkpointspout-<task>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub txid: u64,
    pub phase: Phase,
}

impl Default for Progress {
    /// Nothing checkpointed yet: transaction 0, committed (the first PREPARE is 1).
    fn default() -> Self {
        Progress {
            txid: 0,
            phase: Phase::Committed,
        }
    }
}

/// The checkpoint spout's state machine (Storm's CheckpointSpout). It starts recovering: from
/// PREPARING it rolls back, from COMMITTING it commits again, then INITSTATE; once INITSTATE is
/// acked it prepares a checkpoint each time one is due. One action is in flight at a time; a
/// failed one starts recovery again.
#[derive(Debug, Clone)]
pub struct Coordinator {
    pub progress: Progress,
    recovering: bool,
    in_flight: Option<(Action, u64)>,
}

impl Coordinator {
    pub fn new(progress: Progress) -> Self {
        Coordinator {
            progress,
            recovering: true,
            in_flight: None,
        }
    }

    pub fn in_flight(&self) -> Option<(Action, u64)> {
        self.in_flight
    }

    /// Nothing in flight, recovery done, the last checkpoint committed.
    pub fn idle(&self) -> bool {
        self.in_flight.is_none() && !self.recovering && self.progress.phase == Phase::Committed
    }

    /// The action to emit now, if any (`due`: a checkpoint interval passed since the last
    /// PREPARE). A PREPARE moves the progress to PREPARING first: store it before emitting.
    pub fn next(&mut self, due: bool) -> Option<(Action, u64)> {
        if self.in_flight.is_some() {
            return None;
        }
        let Progress { txid, phase } = self.progress;
        let a = match phase {
            Phase::Committing => (Action::Commit, txid),
            Phase::Preparing if self.recovering => (Action::Rollback, txid),
            Phase::Committed if self.recovering => (Action::InitState, txid),
            Phase::Committed if due => {
                self.progress = Progress {
                    txid: txid + 1,
                    phase: Phase::Preparing,
                };
                (Action::Prepare, txid + 1)
            }
            _ => return None,
        };
        self.in_flight = Some(a);
        Some(a)
    }

    /// Every bolt task handled the action of `txid`. Returns whether the progress changed (to
    /// be stored). An ack of anything not in flight is ignored.
    pub fn acked(&mut self, txid: u64) -> bool {
        let Some((action, t)) = self.in_flight.take_if(|(_, t)| *t == txid) else {
            return false;
        };
        match action {
            Action::Prepare => self.progress.phase = Phase::Committing,
            Action::Commit => self.progress.phase = Phase::Committed,
            Action::Rollback => {
                self.progress = Progress {
                    txid: t.saturating_sub(1),
                    phase: Phase::Committed,
                }
            }
            Action::InitState => {
                self.recovering = false;
                return false;
            }
        }
        true
    }

    /// The action of `txid` failed somewhere: recover.
    pub fn failed(&mut self, txid: u64) {
        if self.in_flight.is_some_and(|(_, t)| t == txid) {
            self.in_flight = None;
            self.recovering = true;
        }
    }
}

/// A bolt task's view of checkpoint tuples: a round, one emission of an (action, txid) by the
/// checkpoint spout, is complete once it came from every upstream task. Rounds are told apart by
/// their tree (the root every copy of one emission carries), so the copies of a failed emission
/// never pair up with those of the next one of the same action and txid. Partial rounds of
/// emissions that failed are forgotten, oldest first, past [`Aligner::MAX_PARTIAL`].
#[derive(Debug)]
pub struct Aligner<T> {
    expected: usize,
    /// Partial rounds in arrival order: ((tree, txid, action), (source task, tuple)...).
    rounds: Vec<((u64, u64, Action), Vec<(u32, T)>)>,
}

impl<T> Aligner<T> {
    /// Partial rounds kept at most (each is a failed emission whose copies did not all arrive).
    pub const MAX_PARTIAL: usize = 32;

    pub fn new(expected: usize) -> Self {
        Aligner {
            expected: expected.max(1),
            rounds: Vec::new(),
        }
    }

    /// Takes a copy of (action, txid) of emission `tree` from `source_task`; returns the
    /// round's tuples when it is complete. A repeat from the same task within a round is kept
    /// apart (it does not count twice) and settled with the round.
    pub fn receive(
        &mut self,
        (action, txid, tree): (Action, u64, u64),
        source_task: u32,
        tuple: T,
    ) -> Option<Vec<T>> {
        let key = (tree, txid, action);
        let i = match self.rounds.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                if self.rounds.len() >= Self::MAX_PARTIAL {
                    self.rounds.remove(0);
                }
                self.rounds.push((key, Vec::new()));
                self.rounds.len() - 1
            }
        };
        let round = &mut self.rounds[i].1;
        if round.iter().any(|(t, _)| *t == source_task) {
            round.push((u32::MAX, tuple));
            return None;
        }
        round.push((source_task, tuple));
        let distinct = round.iter().filter(|(t, _)| *t != u32::MAX).count();
        if distinct < self.expected {
            return None;
        }
        let (_, done) = self.rounds.remove(i);
        Some(done.into_iter().map(|(_, t)| t).collect())
    }
}

/// The tree a checkpoint tuple belongs to (its root), which tells emissions apart.
pub fn tree_of(t: &Tuple<'_>) -> u64 {
    t.first_ack_id().map_or(0, |(root, _)| root)
}

/// Reads a checkpoint tuple: (txid, action).
pub fn read_checkpoint(t: &Tuple<'_>) -> Option<(u64, Action)> {
    let txid = u64::try_from(t.get_int(0)?).ok()?;
    let action = Action::parse(t.get_str(1)?)?;
    Some((txid, action))
}

/// A checkpoint tuple's values: (txid, action).
pub fn checkpoint_values(txid: u64, action: Action) -> Values {
    let mut v = Values::new();
    v.push(Value::Int(txid as i64));
    v.push(Value::Str(action.as_str().into()));
    v
}

/// How many tasks send `$checkpoint` to a component: every task of every component it reads
/// `$checkpoint` from.
fn checkpoint_senders(ctx: &TopologyContext) -> usize {
    ctx.inputs
        .iter()
        .filter(|(_, stream)| stream == CHECKPOINT_STREAM)
        .map(|(c, _)| ctx.tasks_of(c).len())
        .sum()
}

fn provider(ctx: &TopologyContext) -> Result<&Arc<dyn StateProvider>, ComponentError> {
    ctx.state.as_ref().ok_or_else(|| {
        ComponentError::Other("a stateful topology runs with a state provider".into())
    })
}

fn state_err(e: StateError) -> ComponentError {
    ComponentError::Other(e.to_string())
}

/// Storm's CheckpointSpout: drives checkpoints with a [`Coordinator`] whose progress it keeps in
/// the state store. Ends (in local mode) once every data spout has ended and no checkpoint is
/// in flight: by then every input's tree completed, so its effect is committed.
#[derive(Default)]
pub struct CheckpointSpout {
    coordinator: Option<Coordinator>,
    store: Option<Box<dyn StateStore>>,
    interval: Duration,
    last: Option<Instant>,
    seq: u64,
    inputs_ended: Option<Arc<AtomicBool>>,
    done: Option<Arc<AtomicBool>>,
    finished: bool,
    /// The last PREPARE started after the input had ended.
    last_after_end: bool,
    /// A store error to report at the next `next_tuple`.
    error: Option<String>,
}

impl std::fmt::Debug for CheckpointSpout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointSpout({:?})", self.coordinator)
    }
}

impl CheckpointSpout {
    fn save(&mut self) {
        let (Some(store), Some(c)) = (self.store.as_mut(), self.coordinator.as_ref()) else {
            return;
        };
        self.seq += 1;
        let value = serde_json::to_vec(&c.progress).unwrap_or_default();
        let r = store
            .prepare(self.seq, &[(b"__state".to_vec(), Some(value))])
            .and_then(|()| store.commit(self.seq));
        if let Err(e) = r {
            self.error = Some(format!("cannot store the checkpoint progress: {e}"));
        }
    }
}

impl Spout for CheckpointSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare_stream(CHECKPOINT_STREAM, Fields::new(CHECKPOINT_FIELDS));
    }

    fn open(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        let mut store = provider(ctx)?
            .open(&format!("{CHECKPOINT_COMPONENT}-{}", ctx.task_id))
            .map_err(state_err)?;
        let stored = store.load().map_err(state_err)?;
        let progress = stored
            .committed
            .iter()
            .find(|(k, _)| k == b"__state")
            .and_then(|(_, v)| serde_json::from_slice(v).ok())
            .unwrap_or_default();
        self.seq = stored.commit_txid.unwrap_or(0);
        self.coordinator = Some(Coordinator::new(progress));
        self.store = Some(store);
        self.interval = interval(&ctx.config);
        self.inputs_ended = ctx.inputs_ended.clone();
        self.done = ctx.checkpoints_done.clone();
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) {
        if let Some(e) = self.error.take() {
            out.report_error(&e);
        }
        let Some(c) = self.coordinator.as_mut() else {
            return;
        };
        let ended = self
            .inputs_ended
            .as_ref()
            .is_some_and(|e| e.load(Ordering::SeqCst));
        // Once the input has ended, one last checkpoint commits what is still in flight (tuples
        // of spouts that rewind are not acked, so their ends are known only by it).
        if ended && c.idle() && self.last_after_end {
            self.finished = true;
            if let Some(d) = &self.done {
                d.store(true, Ordering::SeqCst);
            }
            return;
        }
        if !ended {
            self.last_after_end = false;
        }
        let final_one = ended && c.idle() && !self.last_after_end;
        let due = final_one || (!ended && self.last.is_none_or(|t| t.elapsed() >= self.interval));
        let Some((action, txid)) = c.next(due) else {
            return;
        };
        match action {
            Action::Prepare => {
                self.last = Some(Instant::now());
                self.last_after_end = final_one;
                self.save();
            }
            // The first checkpoint is an interval after the state is initialized (as Flink's
            // first is an interval after the job starts), not at once: there is nothing to
            // commit yet, and a round at start-up stalls the tuples queued behind its barrier.
            Action::InitState => self.last = Some(Instant::now()),
            _ => {}
        }
        out.emit_stream(
            CHECKPOINT_STREAM,
            checkpoint_values(txid, action),
            Some(MessageId::Int(txid)),
        );
    }

    fn ack(&mut self, id: &MessageId) {
        if let (MessageId::Int(txid), Some(c)) = (id, self.coordinator.as_mut())
            && c.acked(*txid)
        {
            self.save();
        }
    }

    fn fail(&mut self, id: &MessageId) {
        if let (MessageId::Int(txid), Some(c)) = (id, self.coordinator.as_mut()) {
            c.failed(*txid);
        }
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

/// An input whose ack waits for a commit: what acking it needs.
#[derive(Debug, Clone)]
struct Deferred {
    source: &'static StreamSource,
    task: u32,
    ids: AckIds,
    born: u64,
}

impl Deferred {
    fn of(t: &Tuple<'_>) -> Self {
        Deferred {
            source: t.source(),
            task: t.source_task(),
            ids: t.ack_ids(),
            born: t.born_us(),
        }
    }

    fn tuple(&self) -> Tuple<'static> {
        Tuple::from_parts(self.source, self.task, &[], &self.ids, self.born)
    }
}

/// Forwards a completed round's action downstream, anchored to the round's tuples, then acks
/// them (`ok`) or fails them.
fn finish_round(
    sink: &mut dyn OutputSink,
    round: &[Tuple<'static>],
    action: Action,
    txid: u64,
    ok: bool,
) {
    if ok {
        let anchors: Vec<&Tuple<'_>> = round.iter().collect();
        let values = checkpoint_values(txid, action);
        sink.emit(
            Emission {
                stream: CHECKPOINT_STREAM,
                values: EmitValues::Owned(&values),
                anchors: &anchors,
                message_id: None,
                direct_task: None,
            },
            None,
        );
    }
    for t in round {
        if ok {
            sink.ack(t);
        } else {
            sink.fail(t);
        }
    }
}

/// One source task's barriers (PREPARE and ROLLBACK copies) whose rounds are not complete here.
#[derive(Debug, Default)]
struct Barriers {
    /// Barriers received from the source so far.
    seen: u64,
    /// Of those, how many are done (their round completed, or a later one of this source did).
    done: u64,
    /// The barriers not done, in order: (round, is a ROLLBACK).
    open: std::collections::VecDeque<((u64, u64, Action), bool)>,
}

/// A held tuple: its source, how many of the source's barriers came before it, and the index of
/// the first ROLLBACK barrier of its source that came after it (it belongs to a rolled-back
/// epoch: failed, not run).
#[derive(Debug)]
struct Held<T> {
    source: u32,
    after: u64,
    doomed_by: Option<u64>,
    tuple: T,
}

/// A bolt task's barrier alignment, Flink's aligned checkpoint on Storm's protocol: a source's
/// tuples that come after one of its PREPARE or ROLLBACK barriers wait until that round completes
/// (from every source), so a checkpoint holds exactly the effect of what came before the barrier
/// on every input. Tuples also wait until the state is initialized (INITSTATE). A tuple that a
/// ROLLBACK barrier of its own source followed belongs to the rolled-back epoch: once that
/// rollback is done it is failed (its spout emits it again), not run. Completing a round also
/// ends every earlier open barrier of the same source (the coordinator has moved on from them).
#[derive(Debug)]
pub struct Gate<T> {
    aligner: Aligner<T>,
    sources: BTreeMap<u32, Barriers>,
    held: Vec<Held<T>>,
    /// The round the last [`Gate::checkpoint`] completed.
    completed: Option<(u64, u64, Action)>,
    pub initialized: bool,
}

/// What to do after a round: the tuples to run now, in order, and those to fail.
#[derive(Debug, Default, PartialEq)]
pub struct Released<T> {
    pub run: Vec<T>,
    pub fail: Vec<T>,
}

impl<T> Gate<T> {
    /// `expected`: the tasks that send this task checkpoints; `initialized`: false for a
    /// stateful bolt (its tuples wait for INITSTATE).
    pub fn new(expected: usize, initialized: bool) -> Self {
        Gate {
            aligner: Aligner::new(expected),
            sources: BTreeMap::new(),
            held: Vec::new(),
            completed: None,
            initialized,
        }
    }

    /// Whether a user tuple from `source` runs now (else [`Gate::hold`] it). Only the order
    /// of one source's tuples matters: another source's barrier holds nothing of this one.
    #[inline]
    pub fn admits(&self, source: u32) -> bool {
        self.initialized && self.sources.get(&source).is_none_or(|b| b.open.is_empty())
    }

    /// Nothing held and no barrier open: every user tuple runs as it comes.
    pub fn is_quiet(&self) -> bool {
        self.initialized && self.held.is_empty() && self.sources.values().all(|b| b.open.is_empty())
    }

    /// Whether a batch runs without the gate: nothing held, no barrier open, no checkpoint in it
    /// (most batches: the bolt then runs them as it would outside a stateful topology). If so,
    /// `Some(tracked)`: whether any of its tuples belongs to a tuple tree (tuples of a spout that
    /// rewinds belong to none, so a batch of them runs as with acking off).
    pub fn passes(&self, inputs: &Inputs<'_>) -> Option<bool> {
        if !self.is_quiet() {
            return None;
        }
        let mut tracked = false;
        for t in inputs.clone() {
            if t.source_stream() == CHECKPOINT_STREAM {
                return None;
            }
            tracked |= t.ack_count() > 0;
        }
        Some(tracked)
    }

    /// Keeps a user tuple from `source` until the rounds of its source's earlier barriers
    /// complete (or the state is initialized).
    pub fn hold(&mut self, source: u32, tuple: T) {
        let after = self.sources.get(&source).map_or(0, |b| b.seen);
        self.held.push(Held {
            source,
            after,
            doomed_by: None,
            tuple,
        });
    }

    /// A checkpoint tuple of emission `tree`: the round's tuples when it is complete.
    pub fn checkpoint(
        &mut self,
        (action, txid, tree): (Action, u64, u64),
        source: u32,
        tuple: T,
    ) -> Option<Vec<T>> {
        let key = (tree, txid, action);
        if matches!(action, Action::Prepare | Action::Rollback) {
            let b = self.sources.entry(source).or_default();
            let index = b.seen;
            b.seen += 1;
            b.open.push_back((key, action == Action::Rollback));
            if action == Action::Rollback {
                for h in self.held.iter_mut() {
                    if h.source == source && h.after <= index && h.doomed_by.is_none() {
                        h.doomed_by = Some(index);
                    }
                }
            }
        }
        let round = self.aligner.receive((action, txid, tree), source, tuple)?;
        self.completed = Some(key);
        Some(round)
    }

    /// After the round [`Gate::checkpoint`] completed was acted on: what runs and what fails.
    pub fn release(&mut self, action: Action) -> Released<T> {
        if let Some(key) = self.completed.take() {
            for b in self.sources.values_mut() {
                if let Some(j) = b.open.iter().position(|(k, _)| *k == key) {
                    b.open.drain(..=j);
                    b.done = b.seen - b.open.len() as u64;
                }
            }
        }
        if action == Action::InitState {
            self.initialized = true;
        }
        let mut out = Released {
            run: Vec::new(),
            fail: Vec::new(),
        };
        let held = std::mem::take(&mut self.held);
        for h in held {
            let done = self.sources.get(&h.source).map_or(0, |b| b.done);
            if h.doomed_by.is_some_and(|r| r < done) {
                out.fail.push(h.tuple);
            } else if self.initialized && h.after <= done && h.doomed_by.is_none() {
                out.run.push(h.tuple);
            } else {
                self.held.push(h);
            }
        }
        out
    }
}

impl Gate<Tuple<'static>> {
    /// A `$checkpoint` tuple: (action, txid, the round's tuples) once its round is complete. A
    /// malformed one is reported and failed.
    fn round_of(
        &mut self,
        t: &Tuple<'_>,
        sink: &mut dyn OutputSink,
    ) -> Option<(Action, u64, Vec<Tuple<'static>>)> {
        let Some((txid, action)) = read_checkpoint(t) else {
            sink.report_error("a malformed $checkpoint tuple was dropped");
            sink.fail(t);
            return None;
        };
        let round = self.checkpoint((action, txid, tree_of(t)), t.source_task(), t.to_owned())?;
        Some((action, txid, round))
    }
}

/// The data spout side of checkpoints (Gale's exactly-once): a spout task relays each action to
/// the bolts it feeds, in line with its tuples, and records its [`Spout::position`] with each
/// checkpoint (namespace `<component>-<task>`, key `__position`). On ROLLBACK, and on INITSTATE
/// after a start, a spout with a position rewinds to the committed one: what the committed
/// state does not hold is emitted again, and nothing it holds is. Such a spout emits nothing
/// before INITSTATE, and its failed tuples are not replayed one by one: a failure fails the next
/// PREPARE, and the rollback rewinds the spout. A spout with no position (`None`) only relays;
/// its tuples are replayed by message id as usual (at least once).
pub struct SpoutCheckpoint {
    store: Box<dyn StateStore>,
    replayable: bool,
    initialized: bool,
    rewind: bool,
}

impl std::fmt::Debug for SpoutCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SpoutCheckpoint(replayable {}, initialized {})",
            self.replayable, self.initialized
        )
    }
}

const POSITION_KEY: &[u8] = b"__position";

impl SpoutCheckpoint {
    /// For a data spout task of a topology with stateful bolts (`None` otherwise).
    pub fn open(ctx: &TopologyContext, spout: &dyn Spout) -> Result<Option<Self>, ComponentError> {
        let Some(provider) = ctx.state.as_ref() else {
            return Ok(None);
        };
        if ctx.component_id == CHECKPOINT_COMPONENT {
            return Ok(None);
        }
        let store = provider
            .open(&format!("{}-{}", ctx.component_id, ctx.task_id))
            .map_err(state_err)?;
        Ok(Some(SpoutCheckpoint {
            store,
            replayable: spout.position().is_some(),
            initialized: false,
            rewind: false,
        }))
    }

    /// Whether recovery rewinds this spout to its checkpointed position (it has one): then its
    /// tuples need no acks, and are sent without trees.
    pub fn rewinds_on_recovery(&self) -> bool {
        self.replayable
    }

    /// Whether the spout may emit (a spout that rewinds waits for INITSTATE).
    pub fn may_emit(&self) -> bool {
        self.initialized || !self.replayable
    }

    /// A tuple of this spout failed: `true` when the spout should replay it as usual; `false`
    /// when the next PREPARE fails instead (and the rollback rewinds the spout).
    pub fn failed(&mut self) -> bool {
        if self.replayable {
            self.rewind = true;
        }
        !self.replayable
    }

    /// Whether a ROLLBACK or an INITSTATE rewinds the spout (its trees in flight are then void).
    pub fn rewinds(&self, action: Action) -> bool {
        self.replayable
            && (action == Action::Rollback || (action == Action::InitState && !self.initialized))
    }

    fn committed_position(&mut self) -> Result<Option<serde_json::Value>, StateError> {
        let stored = self.store.load()?;
        Ok(stored
            .committed
            .iter()
            .find(|(k, _)| k == POSITION_KEY)
            .and_then(|(_, v)| serde_json::from_slice(v).ok()))
    }

    fn seek(&mut self, spout: &mut dyn Spout) -> Result<(), StateError> {
        let pos = self.committed_position()?;
        spout
            .seek(pos.as_ref())
            .map_err(|e| StateError::Store(format!("the spout cannot rewind: {e}")))
    }

    /// Does `action` for this task; `Ok(false)`: the checkpoint fails here.
    pub fn act(
        &mut self,
        action: Action,
        txid: u64,
        spout: &mut dyn Spout,
    ) -> Result<bool, StateError> {
        match action {
            Action::Prepare => {
                if !self.initialized || self.rewind {
                    return Ok(false);
                }
                let pos = spout
                    .position()
                    .map(|p| serde_json::to_vec(&p).unwrap_or_default());
                let changes: Vec<crate::state::Change> = pos
                    .map(|p| (POSITION_KEY.to_vec(), Some(p)))
                    .into_iter()
                    .collect();
                self.store.prepare(txid, &changes)?;
            }
            Action::Commit => self.store.commit(txid)?,
            Action::Rollback => {
                self.store.rollback()?;
                if self.replayable {
                    self.seek(spout)?;
                    self.rewind = false;
                }
            }
            Action::InitState => {
                if !self.initialized {
                    if self.replayable {
                        self.seek(spout)?;
                        self.rewind = false;
                    }
                    self.initialized = true;
                }
            }
        }
        Ok(true)
    }
}

/// Forwards a completed round (see [`finish_round`]), then runs or fails what the gate released.
fn after_round(
    sink: &mut dyn OutputSink,
    round: &[Tuple<'static>],
    (action, txid, ok): (Action, u64, bool),
    released: Released<Tuple<'static>>,
    mut run: impl FnMut(&Tuple<'static>, &mut dyn OutputSink),
) {
    finish_round(sink, round, action, txid, ok);
    for t in &released.fail {
        sink.fail(t);
    }
    for t in &released.run {
        sink.begin_input(t);
        run(t, sink);
    }
}

/// A bolt of a stateful topology that keeps no state: it forwards checkpoints (Storm's
/// CheckpointTupleForwarder), aligned ([`Gate`]), and runs the bolt on everything else.
pub struct CheckpointForwarder {
    inner: Box<dyn Bolt>,
    gate: Gate<Tuple<'static>>,
    auto_ack: bool,
}

impl CheckpointForwarder {
    pub fn new(inner: Box<dyn Bolt>) -> Self {
        CheckpointForwarder {
            auto_ack: inner.auto_ack(),
            inner,
            gate: Gate::new(1, true),
        }
    }

    /// Runs the bolt on one input (begun), acking it when the bolt did not settle it; returns
    /// whether it was acked only by being counted (acking off).
    fn run(
        inner: &mut dyn Bolt,
        auto_ack: bool,
        acking: bool,
        t: &Tuple<'_>,
        sink: &mut dyn OutputSink,
    ) -> bool {
        let mut c = BoltCollector::new(sink);
        inner.execute(t, &mut c);
        let settled = c.settled() > 0;
        if auto_ack && !settled {
            if acking {
                sink.ack(t);
            } else {
                return true;
            }
        }
        false
    }

    /// One input (begun); returns how many were acked only by being counted.
    fn handle(&mut self, t: &Tuple<'_>, sink: &mut dyn OutputSink, acking: bool) -> u64 {
        if t.source_stream() != CHECKPOINT_STREAM {
            if self.gate.admits(t.source_task()) {
                return u64::from(Self::run(
                    self.inner.as_mut(),
                    self.auto_ack,
                    acking,
                    t,
                    sink,
                ));
            }
            self.gate.hold(t.source_task(), t.to_owned());
            return 0;
        }
        let mut counted = 0;
        if let Some((action, txid, round)) = self.gate.round_of(t, sink) {
            let released = self.gate.release(action);
            let (inner, auto) = (&mut self.inner, self.auto_ack);
            after_round(sink, &round, (action, txid, true), released, |t, s| {
                counted += u64::from(Self::run(inner.as_mut(), auto, acking, t, s));
            });
        }
        counted
    }
}

impl Bolt for CheckpointForwarder {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        self.inner.declare_output_fields(d);
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.gate = Gate::new(checkpoint_senders(ctx), true);
        self.inner.prepare(ctx)
    }

    fn execute(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) {
        // Acking is on in a stateful topology.
        self.handle(t, out.sink_mut(), true);
    }

    fn execute_batch(
        &mut self,
        inputs: Inputs<'_>,
        sink: &mut dyn OutputSink,
        _auto_ack: bool,
        acking: bool,
    ) -> u64 {
        // The bolt's own compiled batch loop, when the gate has nothing to do.
        // Without acking when no input belongs to a tree: acking one costs nothing but its count.
        if let Some(tracked) = self.gate.passes(&inputs) {
            return self
                .inner
                .execute_batch(inputs, sink, self.auto_ack, acking && tracked);
        }
        let mut counted = 0;
        for t in inputs {
            sink.begin_input(&t);
            counted += self.handle(&t, sink, acking);
        }
        counted
    }

    fn cleanup(&mut self) {
        self.inner.cleanup();
    }

    fn end(&mut self) -> Result<(), ComponentError> {
        self.inner.end()
    }

    /// Acks are the wrapper's (a held input is acked when it runs).
    fn auto_ack(&self) -> bool {
        false
    }

    fn wants_poll(&self) -> bool {
        self.inner.wants_poll()
    }

    fn poll(&mut self, out: &mut BoltCollector<'_>, end: bool) {
        self.inner.poll(out, end);
    }
}

/// A stateful bolt at work (Storm's StatefulBoltExecutor): checkpoints its state through its
/// task's store, aligned ([`Gate`]), and defers its inputs' acks to the commit that holds their
/// effect.
pub struct StatefulBoltAdapter {
    task: Box<dyn StatefulTask>,
    namespace: String,
    store: Option<Box<dyn StateStore>>,
    gate: Gate<Tuple<'static>>,
    /// Executed since the last PREPARE; acked at the COMMIT after the next PREPARE.
    pending: Vec<Deferred>,
    /// Prepared; acked at the next COMMIT.
    prepared: Vec<Deferred>,
    /// An input was failed since the last PREPARE: the next one fails (exactly-once spouts
    /// rewind rather than replay one tuple).
    tainted: bool,
}

impl StatefulBoltAdapter {
    pub fn new(task: Box<dyn StatefulTask>) -> Self {
        StatefulBoltAdapter {
            task,
            namespace: String::new(),
            store: None,
            gate: Gate::new(1, false),
            pending: Vec::new(),
            prepared: Vec::new(),
            tainted: false,
        }
    }

    fn handle(&mut self, t: &Tuple<'_>, sink: &mut dyn OutputSink) {
        if t.source_stream() != CHECKPOINT_STREAM {
            if self.gate.admits(t.source_task()) {
                self.execute_user(t, sink);
            } else {
                self.gate.hold(t.source_task(), t.to_owned());
            }
            return;
        }
        let Some((action, txid, round)) = self.gate.round_of(t, sink) else {
            return;
        };
        let ok = match self.act(action, txid, sink) {
            Ok(ok) => ok,
            Err(e) => {
                sink.report_error(&format!(
                    "checkpoint {} of transaction {txid} failed: {e}",
                    action.as_str()
                ));
                false
            }
        };
        let released = self.gate.release(action);
        after_round(sink, &round, (action, txid, ok), released, |r, s| {
            self.execute_user(r, s)
        });
    }

    fn execute_user(&mut self, t: &Tuple<'_>, sink: &mut dyn OutputSink) {
        let mut d = DeferSink::new(sink, &mut self.pending);
        d.start(t);
        self.task.execute(t, &mut BoltCollector::new(&mut d));
        self.tainted |= d.finish();
    }

    /// [`Self::execute_user`] for a batch of inputs the gate passes whole: one call into the
    /// bolt's own loop, which tells the sink of each input ([`DeferSink::begin_input`]).
    /// `tracked`: some input belongs to a tuple tree (else no input has an ack to wait for,
    /// and the sink need not be told of each).
    fn execute_user_batch(&mut self, inputs: Inputs<'_>, sink: &mut dyn OutputSink, tracked: bool) {
        let mut d = DeferSink::new(sink, &mut self.pending);
        self.task
            .execute_batch(inputs, &mut BoltCollector::new(&mut d), tracked);
        self.tainted |= d.finish();
    }

    /// Does `action`; `Ok(false)`: refused (a PREPARE before INITSTATE, or after a failed input).
    fn act(
        &mut self,
        action: Action,
        txid: u64,
        sink: &mut dyn OutputSink,
    ) -> Result<bool, StateError> {
        let store = self
            .store
            .as_mut()
            .ok_or_else(|| StateError::Store("the state store is not open".into()))?;
        match action {
            // Already initialized (a recovery that found the last checkpoint committed): the
            // state and the inputs waiting for their commit stay as they are.
            Action::InitState if self.gate.initialized => {}
            Action::InitState => {
                let stored = store.load()?;
                self.task.init_state(&self.namespace, &stored)?;
            }
            Action::Prepare => {
                if !self.gate.initialized || self.tainted {
                    return Ok(false);
                }
                let changes = self.task.prepare_commit(&self.namespace, txid)?;
                store.prepare(txid, &changes)?;
                self.prepared.append(&mut self.pending);
            }
            Action::Commit => {
                self.task.pre_commit(txid);
                store.commit(txid)?;
                for d in std::mem::take(&mut self.prepared) {
                    sink.ack(&d.tuple());
                }
            }
            Action::Rollback => {
                self.task.pre_rollback();
                store.rollback()?;
                if self.gate.initialized {
                    let stored: Stored = store.load()?;
                    self.task.init_state(&self.namespace, &stored)?;
                }
                self.tainted = false;
                for d in std::mem::take(&mut self.prepared)
                    .into_iter()
                    .chain(std::mem::take(&mut self.pending))
                {
                    sink.fail(&d.tuple());
                }
            }
        }
        Ok(true)
    }
}

impl Bolt for StatefulBoltAdapter {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        self.task.declare_output_fields(d);
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.namespace = format!("{}-{}", ctx.component_id, ctx.task_id);
        self.store = Some(provider(ctx)?.open(&self.namespace).map_err(state_err)?);
        self.gate = Gate::new(checkpoint_senders(ctx), false);
        self.task.prepare(ctx)
    }

    fn execute(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) {
        self.handle(t, out.sink_mut());
    }

    fn execute_batch(
        &mut self,
        inputs: Inputs<'_>,
        sink: &mut dyn OutputSink,
        _auto_ack: bool,
        _acking: bool,
    ) -> u64 {
        if let Some(tracked) = self.gate.passes(&inputs) {
            self.execute_user_batch(inputs, sink, tracked);
            return 0;
        }
        for t in inputs {
            sink.begin_input(&t);
            self.handle(&t, sink);
        }
        0
    }

    /// Acks are the adapter's: it defers them to commits.
    fn auto_ack(&self) -> bool {
        false
    }

    fn wants_poll(&self) -> bool {
        self.task.wants_poll()
    }

    /// The task's own work between inputs (a windowed task's clock), once its state is loaded;
    /// its acks wait for a commit as its inputs' do.
    fn poll(&mut self, out: &mut BoltCollector<'_>, end: bool) {
        if !self.gate.initialized {
            return;
        }
        let mut d = DeferSink::new(out.sink_mut(), &mut self.pending);
        self.task.poll(&mut BoltCollector::new(&mut d), end);
        self.tainted |= d.finish();
    }
}

/// The sink a stateful bolt's `execute` writes through: emits go on (unanchored ones are
/// refused, as Storm refuses them in a stateful topology); acks are kept for the commit, and so
/// is the ack of each input the bolt neither acked nor failed.
struct DeferSink<'s> {
    inner: &'s mut dyn OutputSink,
    /// Acks waiting for the commit.
    pending: &'s mut Vec<Deferred>,
    /// The input being executed: (source task, first ack id).
    current: (u32, Option<(u64, u64)>),
    /// The input being executed, while the bolt has not settled it (an input of no tree, from a
    /// spout that rewinds, has no ack to wait for: `None`).
    waiting: Option<Deferred>,
    /// The bolt failed an input.
    failed: bool,
}

impl<'s> DeferSink<'s> {
    fn new(inner: &'s mut dyn OutputSink, pending: &'s mut Vec<Deferred>) -> Self {
        DeferSink {
            inner,
            pending,
            current: (0, None),
            waiting: None,
            failed: false,
        }
    }

    fn is_current(&self, t: &Tuple<'_>) -> bool {
        (t.source_task(), t.first_ack_id()) == self.current
    }

    /// `t` is executed next: the input before it, if unsettled, waits for the commit.
    #[inline]
    fn start(&mut self, t: &Tuple<'_>) {
        if let Some(d) = self.waiting.take() {
            self.pending.push(d);
        }
        self.current = (t.source_task(), t.first_ack_id());
        if t.ack_count() > 0 {
            self.waiting = Some(Deferred::of(t));
        }
    }

    /// The last input settled as [`Self::start`] settles one; whether the bolt failed an input.
    fn finish(mut self) -> bool {
        if let Some(d) = self.waiting.take() {
            self.pending.push(d);
        }
        self.failed
    }
}

impl OutputSink for DeferSink<'_> {
    fn emit(&mut self, e: Emission<'_>, task_ids: Option<&mut Vec<u32>>) {
        if e.anchors.is_empty() {
            self.inner.report_error(
                "Bolts in a stateful topology must emit anchored tuples: an unanchored emit was dropped",
            );
            return;
        }
        self.inner.emit(e, task_ids);
    }

    fn emit_refs_anchored(&mut self, anchor: &Tuple<'_>, values: &[crate::ValueRef<'_>]) {
        self.inner.emit_refs_anchored(anchor, values);
    }

    fn set_input_born(&mut self, born_us: u64) {
        self.inner.set_input_born(born_us);
    }

    /// The runtime's lane: anchored emits on the default stream are written straight into it
    /// (unanchored ones never are: they come here, to be refused).
    #[inline]
    fn lane(&mut self) -> Option<&mut crate::lane::Lane> {
        self.inner.lane()
    }

    #[inline]
    fn begin_input(&mut self, input: &Tuple<'_>) {
        self.start(input);
        self.inner.begin_input(input);
    }

    fn lane_full(&mut self, dest: usize) {
        self.inner.lane_full(dest);
    }

    fn ack(&mut self, input: &Tuple<'_>) {
        if self.is_current(input) && self.waiting.is_some() {
            // Settled: its ack waits for the commit once, here.
            self.waiting = None;
        }
        if input.ack_count() > 0 {
            self.pending.push(Deferred::of(input));
        }
    }

    fn fail(&mut self, input: &Tuple<'_>) {
        if self.is_current(input) {
            self.waiting = None;
        }
        self.failed = true;
        self.inner.fail(input);
    }

    fn report_error(&mut self, message: &str) {
        self.inner.report_error(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{KeyValueState, MemoryProvider, StatefulBolt, Typed};
    use proptest::prelude::*;

    #[test]
    fn the_coordinator_recovers_then_checkpoints_one_action_at_a_time() {
        use Action::*;
        // A fresh start: INITSTATE 0, then PREPARE 1 / COMMIT 1 when due.
        let mut c = Coordinator::new(Progress::default());
        assert_eq!(c.next(false), Some((InitState, 0)));
        assert_eq!(c.next(true), None, "one in flight");
        assert!(!c.acked(0));
        assert_eq!(c.next(false), None, "not due");
        assert_eq!(c.next(true), Some((Prepare, 1)));
        assert_eq!(c.progress.phase, Phase::Preparing);
        assert!(c.acked(1));
        assert_eq!(c.next(false), Some((Commit, 1)), "a commit does not wait");
        assert!(c.acked(1));
        assert!(c.idle());
        // A failed PREPARE rolls back, then INITSTATE at the last committed transaction.
        assert_eq!(c.next(true), Some((Prepare, 2)));
        c.failed(2);
        assert_eq!(c.next(true), Some((Rollback, 2)));
        assert!(c.acked(2));
        assert_eq!(
            c.progress,
            Progress {
                txid: 1,
                phase: Phase::Committed
            }
        );
        assert_eq!(c.next(true), Some((InitState, 1)));
        c.acked(1);
        assert_eq!(c.next(true), Some((Prepare, 2)));
        // Restarted while committing: the commit is done again first.
        let mut r = Coordinator::new(Progress {
            txid: 2,
            phase: Phase::Committing,
        });
        assert_eq!(r.next(true), Some((Commit, 2)));
        r.acked(2);
        assert_eq!(r.next(true), Some((InitState, 2)));
        // Stale acks and fails change nothing.
        assert!(!r.acked(7));
        r.failed(7);
        assert_eq!(r.in_flight(), Some((InitState, 2)));
    }

    /// The gate's rules as a table with 2 sources, for a stateful bolt (not initialized at
    /// first).
    #[test]
    fn the_gate_holds_what_follows_a_barrier_until_its_round_completes() {
        use Action::*;
        let mut g: Gate<&str> = Gate::new(2, false);
        // Before INITSTATE everything waits.
        assert!(!g.admits(1));
        g.hold(1, "a1");
        assert_eq!(g.checkpoint((InitState, 0, 0), 1, "i1"), None);
        assert_eq!(
            g.checkpoint((InitState, 0, 0), 2, "i2"),
            Some(vec!["i1", "i2"])
        );
        assert_eq!(
            g.release(InitState),
            Released {
                run: vec!["a1"],
                fail: vec![]
            }
        );
        assert!(g.admits(1) && g.admits(2));
        // Source 1's barrier holds source 1 only.
        assert_eq!(g.checkpoint((Prepare, 1, 0), 1, "p1"), None);
        assert!(
            !g.admits(1) && g.admits(2),
            "another source's barrier holds nothing of source 2"
        );
        g.hold(1, "b1");
        assert_eq!(
            g.checkpoint((Prepare, 1, 0), 2, "p2"),
            Some(vec!["p1", "p2"])
        );
        assert_eq!(
            g.release(Prepare),
            Released {
                run: vec!["b1"],
                fail: vec![]
            }
        );
        assert!(g.admits(1));
        // A PREPARE that ends in ROLLBACK: what waited behind PREPARE fails (its epoch is rolled
        // back), what came after the ROLLBACK barrier runs after the rollback.
        g.checkpoint((Prepare, 2, 0), 1, "p1");
        g.hold(1, "c1");
        g.checkpoint((Rollback, 2, 0), 1, "r1");
        g.hold(1, "d1");
        assert!(g.admits(2));
        g.checkpoint((Rollback, 2, 0), 2, "r2").expect("complete");
        assert_eq!(
            g.release(Rollback),
            Released {
                run: vec!["d1"],
                fail: vec!["c1"]
            }
        );
        assert!(g.admits(1) && g.admits(2));
    }

    #[test]
    fn a_round_completes_once_every_upstream_task_sent_it() {
        use Action::*;
        let mut a = Aligner::new(3);
        assert_eq!(a.receive((Prepare, 4, 70), 10, 'a'), None);
        assert_eq!(
            a.receive((Prepare, 4, 70), 10, 'b'),
            None,
            "a repeat does not count"
        );
        assert_eq!(a.receive((Commit, 3, 60), 12, 'x'), None);
        // A copy of an earlier emission of the same action and txid does not pair up.
        assert_eq!(a.receive((Prepare, 4, 50), 11, 'o'), None);
        assert_eq!(a.receive((Prepare, 4, 70), 11, 'c'), None);
        let round = a.receive((Prepare, 4, 70), 12, 'd').expect("complete");
        assert_eq!(round, vec!['a', 'b', 'c', 'd']);
        // The other partial rounds stay until they complete.
        assert_eq!(a.receive((Commit, 3, 60), 10, 'y'), None);
        assert_eq!(
            a.receive((Commit, 3, 60), 11, 'z'),
            Some(vec!['x', 'y', 'z'])
        );
        // Past MAX_PARTIAL partial rounds, the oldest is forgotten.
        let mut b = Aligner::new(2);
        for tree in 0..=Aligner::<char>::MAX_PARTIAL as u64 {
            assert_eq!(b.receive((Commit, 1, tree), 1, 'p'), None);
        }
        assert_eq!(
            b.receive((Commit, 1, 0), 2, 'q'),
            None,
            "forgotten: starts over"
        );
        assert_eq!(b.receive((Commit, 1, 5), 2, 'r'), Some(vec!['p', 'r']));
    }

    /// One simulated stateful bolt task: a counter per key, checkpointed through a store that
    /// outlives it.
    #[derive(Default)]
    struct SimBolt {
        state: KeyValueState<String, i64>,
        initialized: bool,
        waiting: Vec<String>,
        pending: Vec<String>,
        prepared: Vec<String>,
        /// The state it prepared, by transaction.
        snapshots: BTreeMap<u64, BTreeMap<String, i64>>,
    }

    fn map_of(s: &KeyValueState<String, i64>) -> BTreeMap<String, i64> {
        s.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    #[derive(Clone, Debug)]
    enum Event {
        Input(u8),
        Tick,
        Ack,
        Fail,
        Restart,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            6 => (0u8..6).prop_map(Event::Input),
            3 => Just(Event::Tick),
            3 => Just(Event::Ack),
            1 => Just(Event::Fail),
            1 => Just(Event::Restart),
        ]
    }

    proptest! {
        /// Any interleaving of inputs, checkpoints, acks, fails and restarts of everything: a
        /// commit stores exactly the state each task prepared, a rollback or restart brings
        /// every task back to its committed state, and every input whose ack was released is in
        /// the committed state (Storm's at-least-once state).
        #[test]
        fn committed_state_is_what_was_prepared_and_acked_inputs_are_in_it(events in proptest::collection::vec(event(), 1..300)) {
            let provider = MemoryProvider::default();
            let tasks = 2usize;
            let mut stores: Vec<_> = (0..tasks).map(|i| provider.open(&format!("count-{i}")).unwrap()).collect();
            let mut progress = Progress::default();
            let mut coord = Coordinator::new(progress);
            let mut bolts: Vec<SimBolt> = (0..tasks).map(|_| SimBolt::default()).collect();
            let mut released: BTreeMap<String, i64> = BTreeMap::new();
            for e in events {
                match e {
                    Event::Input(k) => {
                        let key = format!("k{k}");
                        let b = &mut bolts[usize::from(k) % tasks];
                        if b.initialized {
                            b.state.update(key.as_str(), |n| n.copied().unwrap_or(0) + 1);
                            b.pending.push(key);
                        } else {
                            b.waiting.push(key);
                        }
                    }
                    Event::Tick => {
                        let Some((action, txid)) = coord.next(true) else { continue };
                        progress = coord.progress;
                        for (i, b) in bolts.iter_mut().enumerate() {
                            let store = &mut stores[i];
                            let ns = format!("count-{i}");
                            match action {
                                Action::InitState if b.initialized => {}
                                Action::InitState => {
                                    b.state = KeyValueState::from_stored(&ns, &store.load().unwrap()).unwrap();
                                    b.initialized = true;
                                    for key in std::mem::take(&mut b.waiting) {
                                        b.state.update(key.as_str(), |n| n.copied().unwrap_or(0) + 1);
                                        b.pending.push(key);
                                    }
                                }
                                Action::Prepare if b.initialized => {
                                    store.prepare(txid, &b.state.take_changes(&ns).unwrap()).unwrap();
                                    b.snapshots.insert(txid, map_of(&b.state));
                                    b.prepared.append(&mut b.pending);
                                }
                                Action::Prepare => {}
                                Action::Commit => {
                                    let had_prepared = store.load().unwrap().prepared.is_some_and(|(t, _)| t == txid);
                                    store.commit(txid).unwrap();
                                    let committed = map_of(&KeyValueState::from_stored(&ns, &store.load().unwrap()).unwrap());
                                    if had_prepared && let Some(snap) = b.snapshots.get(&txid) {
                                        prop_assert_eq!(&committed, snap, "commit stores what was prepared");
                                    }
                                    for key in std::mem::take(&mut b.prepared) {
                                        *released.entry(key).or_insert(0) += 1;
                                    }
                                }
                                Action::Rollback => {
                                    store.rollback().unwrap();
                                    b.state = KeyValueState::from_stored(&ns, &store.load().unwrap()).unwrap();
                                    b.prepared.clear();
                                    b.pending.clear();
                                }
                            }
                        }
                    }
                    Event::Ack => {
                        if let Some((_, txid)) = coord.in_flight() && coord.acked(txid) {
                            progress = coord.progress;
                        }
                    }
                    Event::Fail => {
                        if let Some((_, txid)) = coord.in_flight() {
                            coord.failed(txid);
                        }
                    }
                    Event::Restart => {
                        coord = Coordinator::new(progress);
                        bolts = (0..tasks).map(|_| SimBolt::default()).collect();
                    }
                }
                // Every released ack's input is in the committed state.
                let mut committed: BTreeMap<String, i64> = BTreeMap::new();
                for (i, store) in stores.iter_mut().enumerate() {
                    let s: KeyValueState<String, i64> = KeyValueState::from_stored(&format!("count-{i}"), &store.load().unwrap()).unwrap();
                    committed.extend(map_of(&s));
                }
                for (k, n) in &released {
                    prop_assert!(committed.get(k).copied().unwrap_or(0) >= *n, "{k}: {n} acked, {:?} committed", committed.get(k));
                }
            }
        }
    }

    /// A sink that records what a bolt did.
    #[derive(Default)]
    struct Rec {
        emitted: Vec<(String, usize)>,
        acked: Vec<u32>,
        failed: Vec<u32>,
        errors: Vec<String>,
    }

    impl OutputSink for Rec {
        fn emit(&mut self, e: Emission<'_>, _t: Option<&mut Vec<u32>>) {
            self.emitted.push((e.stream.to_owned(), e.anchors.len()));
        }
        fn ack(&mut self, t: &Tuple<'_>) {
            self.acked.push(t.source_task());
        }
        fn fail(&mut self, t: &Tuple<'_>) {
            self.failed.push(t.source_task());
        }
        fn report_error(&mut self, m: &str) {
            self.errors.push(m.to_owned());
        }
    }

    pub(super) struct Count;
    impl StatefulBolt for Count {
        type Key = String;
        type Value = i64;
        fn declare_output_fields(&self, d: &mut OutputDeclarer) {
            d.declare(Fields::new(["word", "count"]));
        }
        fn execute(
            &mut self,
            t: &Tuple,
            state: &mut KeyValueState<String, i64>,
            out: &mut BoltCollector<'_>,
        ) {
            let word = t.get_str(0).unwrap_or_default();
            let n = *state.update(word, |n| n.copied().unwrap_or(0) + 1);
            out.emit_anchored(t, crate::values![word, n]);
            if word == "loose" {
                out.emit(crate::values![word]);
            }
        }
    }

    fn ctx(provider: &MemoryProvider) -> TopologyContext {
        TopologyContext {
            topology_name: "t".into(),
            component_id: "count".into(),
            task_id: 3,
            component_tasks: Arc::new(BTreeMap::from([
                (CHECKPOINT_COMPONENT.to_owned(), vec![9]),
                ("count".to_owned(), vec![3]),
            ])),
            config: Arc::default(),
            resources_dir: ".".into(),
            inputs: vec![
                ("split".into(), "default".into()),
                (CHECKPOINT_COMPONENT.into(), CHECKPOINT_STREAM.into()),
            ],
            state: Some(Arc::new(provider.clone())),
            inputs_ended: None,
            checkpoints_done: None,
        }
    }

    #[test]
    fn a_stateful_bolt_waits_for_initstate_and_acks_at_commit() {
        let words = StreamSource::intern("split", "default", &Fields::new(["word"]));
        let cp = StreamSource::intern(
            CHECKPOINT_COMPONENT,
            CHECKPOINT_STREAM,
            &Fields::new(CHECKPOINT_FIELDS),
        );
        let word = |task: u32, w: &str| {
            Tuple::from_parts(
                words,
                task,
                &[Value::Str(w.into())],
                &[(u64::from(task), 1)],
                0,
            )
        };
        let action = |a: Action, txid: u64| {
            Tuple::from_parts(cp, 9, &checkpoint_values(txid, a), &[(99, txid)], 0)
        };
        let provider = MemoryProvider::default();
        let mut b = StatefulBoltAdapter::new(Box::new(Typed {
            bolt: Count,
            state: KeyValueState::default(),
        }));
        b.prepare(&ctx(&provider)).unwrap();
        let mut sink = Rec::default();
        b.handle(&word(1, "storm"), &mut sink);
        assert!(sink.emitted.is_empty(), "executed before INITSTATE");
        b.handle(&action(Action::InitState, 0), &mut sink);
        assert_eq!(
            sink.emitted[0],
            (CHECKPOINT_STREAM.to_owned(), 1),
            "INITSTATE forwarded"
        );
        assert_eq!(
            sink.emitted[1],
            ("default".to_owned(), 1),
            "then the held input ran, anchored"
        );
        assert_eq!(sink.acked, vec![9], "only the checkpoint tuple is acked");
        b.handle(&word(2, "loose"), &mut sink);
        assert_eq!(
            sink.errors.len(),
            1,
            "the unanchored emit is refused: {:?}",
            sink.errors
        );
        b.handle(&action(Action::Prepare, 1), &mut sink);
        assert_eq!(sink.acked, vec![9, 9]);
        b.handle(&word(4, "gale"), &mut sink);
        b.handle(&action(Action::Commit, 1), &mut sink);
        assert_eq!(
            sink.acked,
            vec![9, 9, 1, 2, 9],
            "inputs acked at the commit of their checkpoint"
        );
        let mut store = provider.open("count-3").unwrap();
        let committed = store.load().unwrap().committed;
        assert_eq!(
            committed,
            vec![
                (b"loose".to_vec(), b"1".to_vec()),
                (b"storm".to_vec(), b"1".to_vec())
            ]
        );
        // A rollback fails what was not committed (gale, executed after PREPARE 1).
        b.handle(&action(Action::Prepare, 2), &mut sink);
        b.handle(&action(Action::Rollback, 2), &mut sink);
        assert_eq!(sink.failed, vec![4]);
        assert_eq!(store.load().unwrap().committed.len(), 2);
    }
}

/// The exactly-once cut, both sides together: two spout tasks that rewind
/// ([`SpoutCheckpoint`]) feed one stateful bolt task ([`StatefulBoltAdapter`]) over two FIFO
/// channels, driven by the [`Coordinator`], under any interleaving of emits, deliveries, acks,
/// fails and crashes of everything.
#[cfg(test)]
mod cut {
    use super::tests::Count;
    use super::*;
    use crate::state::{KeyValueState, MemoryProvider, Typed};
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// Emits 0, 1, 2, ... as keys `k<n % 4>`; its position is the next number.
    struct Counter {
        next: u64,
        end: u64,
        key: Option<String>,
    }

    impl Spout for Counter {
        fn declare_output_fields(&self, d: &mut OutputDeclarer) {
            d.declare(Fields::new(["word"]));
        }
        fn next_tuple(&mut self, _out: &mut SpoutCollector<'_>) {}
        fn position(&self) -> Option<serde_json::Value> {
            Some(serde_json::json!(self.next))
        }
        fn seek(&mut self, p: Option<&serde_json::Value>) -> Result<(), ComponentError> {
            self.next = p.and_then(|v| v.as_u64()).unwrap_or(0);
            Ok(())
        }
    }

    impl Counter {
        /// What `next_tuple` would emit, without a collector.
        fn take(&mut self) -> Option<String> {
            (self.next < self.end).then(|| {
                let k = format!("k{}", self.next % 4);
                self.next += 1;
                self.key = Some(k.clone());
                k
            })
        }
    }

    #[derive(Default)]
    struct Sink {
        /// (source task, txid) of checkpoint tuples acked / failed.
        acked: Vec<(u32, u64)>,
        failed: Vec<(u32, u64)>,
    }

    impl OutputSink for Sink {
        fn emit(&mut self, _e: Emission<'_>, _t: Option<&mut Vec<u32>>) {}
        fn ack(&mut self, t: &Tuple<'_>) {
            if let Some((_, edge)) = t.first_ack_id() {
                self.acked.push((t.source_task(), edge));
            }
        }
        fn fail(&mut self, t: &Tuple<'_>) {
            if let Some((_, edge)) = t.first_ack_id() {
                self.failed.push((t.source_task(), edge));
            }
        }
        fn report_error(&mut self, _m: &str) {}
    }

    enum Msg {
        Word(String),
        /// An action, and the tree of the coordinator's emission it belongs to.
        Checkpoint(Action, u64, u64),
    }

    struct World {
        provider: MemoryProvider,
        spouts: Vec<(Counter, SpoutCheckpoint)>,
        channels: Vec<VecDeque<Msg>>,
        bolt: StatefulBoltAdapter,
        coordinator: Coordinator,
        /// What the checkpoint spout last stored.
        progress: Progress,
        /// The tree of the emission in flight, the spout tasks whose copy the bolt acked, and
        /// whether any part of it failed.
        tree: u64,
        acked_from: std::collections::BTreeSet<u32>,
        failed: bool,
        end: u64,
    }

    fn ctx(provider: &MemoryProvider, component: &str, task: u32) -> TopologyContext {
        TopologyContext {
            topology_name: "t".into(),
            component_id: component.into(),
            task_id: task,
            component_tasks: Arc::new(BTreeMap::from([
                ("spout".to_owned(), vec![1, 2]),
                ("count".to_owned(), vec![3]),
            ])),
            config: Arc::default(),
            resources_dir: ".".into(),
            inputs: vec![
                ("spout".into(), "default".into()),
                ("spout".into(), CHECKPOINT_STREAM.into()),
            ],
            state: Some(Arc::new(provider.clone())),
            inputs_ended: None,
            checkpoints_done: None,
        }
    }

    impl World {
        fn new(provider: MemoryProvider, progress: Progress, end: u64) -> World {
            let spouts = (1..=2)
                .map(|task| {
                    let c = Counter {
                        next: 0,
                        end,
                        key: None,
                    };
                    let cp = SpoutCheckpoint::open(&ctx(&provider, "spout", task), &c)
                        .expect("open")
                        .expect("checkpointed");
                    (c, cp)
                })
                .collect();
            let mut bolt = StatefulBoltAdapter::new(Box::new(Typed {
                bolt: Count,
                state: KeyValueState::default(),
            }));
            bolt.prepare(&ctx(&provider, "count", 3)).expect("prepare");
            World {
                provider,
                spouts,
                channels: vec![VecDeque::new(), VecDeque::new()],
                bolt,
                coordinator: Coordinator::new(progress),
                progress,
                tree: 0,
                acked_from: Default::default(),
                failed: false,
                end,
            }
        }

        fn emit(&mut self, i: usize) {
            let (c, cp) = &mut self.spouts[i];
            if cp.may_emit()
                && let Some(k) = c.take()
            {
                self.channels[i].push_back(Msg::Word(k));
            }
        }

        fn tick(&mut self) {
            let Some((action, txid)) = self.coordinator.next(true) else {
                return;
            };
            if action == Action::Prepare {
                self.progress = self.coordinator.progress;
            }
            // A new tree: the acker tells emissions apart, whatever their action and txid.
            self.tree += 1;
            self.acked_from.clear();
            self.failed = false;
            for i in 0..2 {
                let (c, cp) = &mut self.spouts[i];
                match cp.act(action, txid, c) {
                    Ok(true) => {
                        self.channels[i].push_back(Msg::Checkpoint(action, txid, self.tree))
                    }
                    _ => self.failed = true,
                }
            }
        }

        fn deliver(&mut self, i: usize) {
            let Some(m) = self.channels[i].pop_front() else {
                return;
            };
            let task = i as u32 + 1;
            let words = StreamSource::intern("spout", "default", &Fields::new(["word"]));
            let cps =
                StreamSource::intern("spout", CHECKPOINT_STREAM, &Fields::new(CHECKPOINT_FIELDS));
            let mut sink = Sink::default();
            match m {
                Msg::Word(k) => {
                    let t = Tuple::from_parts(words, task, &[Value::Str(k.into())], &[], 0);
                    self.bolt.handle(&t, &mut sink);
                }
                Msg::Checkpoint(a, txid, tree) => {
                    let t = Tuple::from_parts(
                        cps,
                        task,
                        &checkpoint_values(txid, a),
                        &[(tree, tree)],
                        0,
                    );
                    self.bolt.handle(&t, &mut sink);
                }
            }
            for (task, tree) in sink.acked {
                if tree == self.tree {
                    self.acked_from.insert(task);
                }
            }
            if sink.failed.iter().any(|(_, t)| *t == self.tree) {
                self.failed = true;
            }
        }

        /// The acker's word on the tree in flight: failed if any part failed (or `timeout`),
        /// acked once the bolt acked both spout tasks' copies, else still open.
        fn settle(&mut self, timeout: bool) {
            let Some((_, txid)) = self.coordinator.in_flight() else {
                return;
            };
            if self.failed || timeout {
                self.coordinator.failed(txid);
            } else if self.acked_from.len() == 2 && self.coordinator.acked(txid) {
                self.progress = self.coordinator.progress;
            }
        }

        /// What the stores would hold once recovery is done, and the words before the
        /// committed positions.
        fn check(&self) -> Result<(), TestCaseError> {
            let load = |ns: &str| self.provider.open(ns).expect("open").load().expect("load");
            let committing =
                (self.progress.phase == Phase::Committing).then_some(self.progress.txid);
            let recovered = |s: Stored| -> BTreeMap<Vec<u8>, Vec<u8>> {
                let mut m: BTreeMap<_, _> = s.committed.into_iter().collect();
                if let (Some(t), Some((pt, ch))) = (committing, s.prepared)
                    && t == pt
                {
                    for (k, v) in ch {
                        match v {
                            Some(v) => m.insert(k, v),
                            None => m.remove(&k),
                        };
                    }
                }
                m
            };
            let mut want: BTreeMap<String, i64> = BTreeMap::new();
            for task in 1..=2 {
                let m = recovered(load(&format!("spout-{task}")));
                let pos = m
                    .get(POSITION_KEY)
                    .and_then(|v| serde_json::from_slice::<u64>(v).ok())
                    .unwrap_or(0);
                for n in 0..pos {
                    *want.entry(format!("k{}", n % 4)).or_insert(0) += 1;
                }
            }
            let m = recovered(load("count-3"));
            let got: BTreeMap<String, i64> = m
                .iter()
                .map(|(k, v)| {
                    (
                        crate::state::decode(k).unwrap(),
                        crate::state::decode(v).unwrap(),
                    )
                })
                .collect();
            prop_assert_eq!(
                got,
                want,
                "the state is not the effect of the words before the positions"
            );
            let _ = self.end;
            Ok(())
        }
    }

    #[derive(Clone, Debug)]
    enum Event {
        Emit(usize),
        Deliver(usize),
        Tick,
        Settle,
        Fail,
        Crash,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            8 => (0usize..2).prop_map(Event::Emit),
            10 => (0usize..2).prop_map(Event::Deliver),
            3 => Just(Event::Tick),
            3 => Just(Event::Settle),
            1 => Just(Event::Fail),
            1 => Just(Event::Crash),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// After every step, what recovery would restore (committed data, plus a batch being
        /// committed) is exactly the effect of the words each spout emitted before its recorded
        /// position: never a word twice, never one lost.
        #[test]
        fn the_state_is_always_the_effect_of_exactly_the_input_before_the_positions(events in proptest::collection::vec(event(), 1..400)) {
            let provider = MemoryProvider::default();
            let mut w = World::new(provider.clone(), Progress::default(), 40);
            for e in events {
                match e {
                    Event::Emit(i) => w.emit(i),
                    Event::Deliver(i) => w.deliver(i),
                    Event::Tick => w.tick(),
                    Event::Settle => w.settle(false),
                    Event::Fail => w.settle(true),
                    Event::Crash => {
                        let progress = w.progress;
                        w = World::new(provider.clone(), progress, 40);
                    }
                }
                w.check()?;
            }
            // Then no more faults: everything gets through, and the committed state is the
            // whole input, each word once.
            for _ in 0..500 {
                for i in 0..2 {
                    w.emit(i);
                    while !w.channels[i].is_empty() {
                        w.deliver(i);
                    }
                }
                w.tick();
                for i in 0..2 {
                    while !w.channels[i].is_empty() {
                        w.deliver(i);
                    }
                }
                w.settle(false);
                w.check()?;
            }
            let count = provider.open("count-3").expect("open").load().expect("load");
            let got: i64 = count.committed.iter().map(|(_, v)| crate::state::decode::<i64>(v).unwrap()).sum();
            prop_assert_eq!(got, 80, "the whole input, once");
        }
    }
}
