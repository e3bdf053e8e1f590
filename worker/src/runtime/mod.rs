//! The worker runtime: executor threads connected by bounded, batched queues.
//!
//! A worker runs a set of executors (all of them in local mode). Each executor is an OS thread
//! that owns its components (one instance per task), its input queue and a [`Router`] for its
//! output. Tuples move between executors in batches over bounded crossbeam channels, so a slow
//! bolt blocks its upstream (backpressure) and memory stays flat.

mod executor;
mod queue;
mod router;
pub mod stats;

pub use queue::Batch;
pub use stats::{Counters, ExecutorStats, QueueHeads};

use crossbeam_channel::{Receiver, Sender, bounded};
use flux::Topology;
use flux::keys;
use flux::layout::{ACKER_ID, ComponentKind, ComponentTasks, ExecutorId, task_layout};
use router::{Acking, ErrorReporter, InputAcks, OutBuf, OutStream, Rng, Router, Subscriber};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use topology_api::grouping::{Grouping, Shuffle};
use topology_api::lane::Lane;
use topology_api::registry::Factory;
use topology_api::{
    ACK_ACK_STREAM, ACK_FAIL_STREAM, ACK_INIT_STREAM, Bolt, Fields, Registry, SYSTEM_COMPONENT,
    Spout, StreamSource, TopologyContext, system_source,
};

/// Gale's defaults for Storm's batching and queue keys (docs/configuration.md).
pub const DEFAULT_PRODUCER_BATCH_SIZE: u64 = 500;
pub const DEFAULT_RECEIVE_BUFFER_SIZE: u64 = 16_384;
pub const DEFAULT_FLUSH_INTERVAL_MILLIS: u64 = 1;

/// Queue and batching settings of one topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Tuples per batch (`topology.producer.batch.size`).
    pub batch_size: usize,
    /// Tuples per batch to other workers (`topology.transfer.batch.size`; default: `batch_size`).
    pub transfer_batch_size: usize,
    /// Batches an executor's input queue holds (`topology.executor.receive.buffer.size` / batch).
    pub queue_batches: usize,
    /// Longest a partial batch waits (`topology.batch.flush.interval.millis`).
    pub flush_interval: Duration,
}

impl RuntimeConfig {
    pub fn from_topology(t: &Topology) -> Self {
        // `gale.mode`: `latency` sends every tuple at once (batch 1, no flush wait);
        // `throughput` (the default) batches. Explicit Storm keys win over the preset.
        let latency_mode =
            t.config.get(keys::GALE_MODE).and_then(|v| v.as_str()) == Some("latency");
        let (default_batch, default_flush) = if latency_mode {
            (1, 0)
        } else {
            (DEFAULT_PRODUCER_BATCH_SIZE, DEFAULT_FLUSH_INTERVAL_MILLIS)
        };
        let batch = t
            .config_u64(keys::PRODUCER_BATCH_SIZE, default_batch)
            .clamp(1, 1 << 20) as usize;
        let buffer = t
            .config_u64(
                keys::EXECUTOR_RECEIVE_BUFFER_SIZE,
                DEFAULT_RECEIVE_BUFFER_SIZE,
            )
            .clamp(1, 1 << 26) as usize;
        let transfer = t
            .config_u64(keys::TRANSFER_BATCH_SIZE, batch as u64)
            .clamp(1, 1 << 20) as usize;
        RuntimeConfig {
            batch_size: batch,
            transfer_batch_size: transfer,
            queue_batches: buffer.div_ceil(batch).max(2),
            flush_interval: Duration::from_millis(
                t.config_u64(keys::BATCH_FLUSH_INTERVAL_MILLIS, default_flush),
            ),
        }
    }
}

/// Why a worker could not start or did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("component \"{component}\" ({class}): {message}")]
    Build {
        component: String,
        class: String,
        message: String,
    },
    #[error("component \"{component}\" executor {executor}: {message}")]
    Open {
        component: String,
        executor: ExecutorId,
        message: String,
    },
    #[error("cannot start an executor thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// An error a component reported or a panic, with where it happened.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReportedError {
    pub component: String,
    pub task: u32,
    pub message: String,
}

/// Errors reported by components, newest last; bounded so a component failing on every tuple cannot
/// grow memory.
#[derive(Debug, Default)]
pub struct ErrorLog {
    entries: Mutex<(u64, Vec<ReportedError>)>,
}

const MAX_ERRORS_KEPT: usize = 100;

impl ErrorLog {
    pub fn snapshot(&self) -> (u64, Vec<ReportedError>) {
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        (g.0, g.1.clone())
    }
}

impl ErrorReporter for ErrorLog {
    fn report(&self, component: &str, task: u32, message: &str) {
        let mut g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        // Log the first ones; after that, one line per thousand keeps logs readable.
        if g.0 <= 20 || g.0.is_multiple_of(1000) {
            tracing::warn!(component, task, total = g.0, "Component error: {message}");
        }
        if g.1.len() >= MAX_ERRORS_KEPT {
            g.1.remove(0);
        }
        g.1.push(ReportedError {
            component: component.to_owned(),
            task,
            message: message.to_owned(),
        });
    }
}

/// Releases executors once every one has opened, or tells them to give up.
#[derive(Debug, Default)]
pub(crate) struct GoSignal {
    state: Mutex<Option<bool>>,
    cv: Condvar,
}

impl GoSignal {
    fn set(&self, go: bool) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(go);
        self.cv.notify_all();
    }

    /// Blocks until released; true means run.
    pub(crate) fn wait(&self) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(go) = *g {
                return go;
            }
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// One running executor.
#[derive(Debug)]
pub struct ExecutorHandle {
    pub component: String,
    pub kind: ComponentKind,
    pub executor: ExecutorId,
    pub stats: Arc<ExecutorStats>,
    join: Option<JoinHandle<()>>,
}

impl ExecutorHandle {
    pub fn is_finished(&self) -> bool {
        self.join.as_ref().is_none_or(|j| j.is_finished())
    }
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    pub executors: Vec<ExecutorHandle>,
    pub errors: Arc<ErrorLog>,
    pub stop: Arc<AtomicBool>,
    pub layout: Vec<ComponentTasks>,
    pub started: Instant,
    pub config: RuntimeConfig,
}

impl Worker {
    /// True when every executor thread has ended.
    pub fn is_finished(&self) -> bool {
        self.executors.iter().all(ExecutorHandle::is_finished)
    }

    /// True when an executor panicked (the worker should be restarted).
    pub fn has_panicked(&self) -> bool {
        self.errors
            .snapshot()
            .1
            .iter()
            .any(|e| e.message.starts_with("executor panicked"))
    }

    /// Waits for every executor thread; a panic is recorded as an error of its component.
    pub fn join(&mut self) {
        for h in &mut self.executors {
            if let Some(j) = h.join.take()
                && let Err(p) = j.join()
            {
                let msg = panic_message(&p);
                self.errors.report(
                    &h.component,
                    h.executor.start,
                    &format!("executor panicked: {msg}"),
                );
            }
        }
    }
}

/// Runs an executor body; a panic is reported as an error of its component (and the thread ends,
/// dropping its queues, so the rest of the worker winds down instead of hanging).
fn guard(
    reporter: &(dyn ErrorReporter + Send + Sync),
    component: &str,
    task: u32,
    body: impl FnOnce(),
) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        reporter.report(
            component,
            task,
            &format!("executor panicked: {}", panic_message(&p)),
        );
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Which executors run in this worker and how to reach the others (cluster mode).
#[derive(Debug, Default)]
pub struct Placement {
    /// Executors this worker runs.
    pub local: std::collections::BTreeSet<ExecutorId>,
    /// For each task in another worker, the index of its worker's queue in `remote_queues`.
    pub remote_task_queue: BTreeMap<u32, usize>,
    /// One queue per other worker, drained by the transport.
    pub remote_queues: Vec<Sender<Batch>>,
}

/// Where batches that arrive from other workers go: the input queue of each local task.
#[derive(Debug, Default)]
pub struct Inbound {
    task_queue: Vec<Option<u32>>,
    queues: Vec<Sender<Batch>>,
}

impl Inbound {
    /// Index of the local queue that `task` reads from.
    pub fn queue_index(&self, task: u32) -> Option<usize> {
        self.task_queue
            .get(task as usize)
            .copied()
            .flatten()
            .map(|q| q as usize)
    }

    pub fn queue(&self, index: usize) -> Option<&Sender<Batch>> {
        self.queues.get(index)
    }

    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }
}

/// What to run.
pub struct WorkerSpec<'a> {
    pub topology: Arc<Topology>,
    pub registry: &'a Registry,
    pub resources_dir: PathBuf,
    /// Run cleanup on bolts when they end (local mode; Storm does it only there).
    pub cleanup: bool,
    pub stop: Arc<AtomicBool>,
    /// `None`: every executor here (local mode).
    pub placement: Option<Placement>,
    /// Spouts emit only while this is true (Storm's activate/deactivate).
    pub active: Arc<AtomicBool>,
}

/// Starts every executor of the topology in this process (local mode's worker) and returns once all
/// of them opened; the first open/prepare error stops the others and is returned.
pub fn start_local_worker(spec: WorkerSpec<'_>) -> Result<Worker, RuntimeError> {
    start_worker(spec).map(|(w, _)| w)
}

/// Starts the executors of `spec.placement` (all of them without one) and returns the worker and
/// the queues that batches from other workers go to.
pub fn start_worker(mut spec: WorkerSpec<'_>) -> Result<(Worker, Inbound), RuntimeError> {
    let topo = spec.topology.clone();
    let cfg = RuntimeConfig::from_topology(&topo);
    let (local_set, remote_task_queue, remote_queues) = match spec.placement.take() {
        Some(p) => (Some(p.local), p.remote_task_queue, p.remote_queues),
        None => (None, BTreeMap::new(), Vec::new()),
    };
    let is_local = |e: &ExecutorId| local_set.as_ref().is_none_or(|l| l.contains(e));
    let ackers = topo.acker_executors();
    let layout = task_layout(&topo, ackers);
    let acker_tasks: Vec<u32> = layout
        .iter()
        .filter(|c| c.id == ACKER_ID)
        .flat_map(|c| c.task_ids())
        .collect();
    let spout_tasks: Vec<u32> = layout
        .iter()
        .filter(|c| c.kind == ComponentKind::Spout)
        .flat_map(|c| c.task_ids())
        .collect();
    let message_timeout = Duration::from_secs(topo.config_u64(keys::MESSAGE_TIMEOUT_SECS, 30));
    let max_pending = topo
        .config
        .get(keys::MAX_SPOUT_PENDING)
        .and_then(|v| v.as_u64());
    let queue_aware = topo
        .config
        .get(keys::MESSAGE_TIMEOUT_RULE)
        .and_then(|v| v.as_str())
        != Some("storm");
    let component_tasks: Arc<BTreeMap<String, Vec<u32>>> = Arc::new(
        layout
            .iter()
            .map(|c| (c.id.clone(), c.task_ids().collect()))
            .collect(),
    );
    let config = Arc::new(topo.config.clone());
    let max_task = layout
        .iter()
        .map(|c| c.first_task + c.num_tasks)
        .max()
        .unwrap_or(1);

    // One input queue per user bolt executor.
    let mut receivers: BTreeMap<ExecutorId, Receiver<Batch>> = BTreeMap::new();
    let mut senders: Vec<(ExecutorId, Sender<Batch>)> = Vec::new();
    let mut task_exec: Vec<Option<usize>> = vec![None; max_task as usize + 1];
    let mut inbound = Inbound {
        task_queue: vec![None; max_task as usize + 1],
        queues: Vec::new(),
    };
    // Bolts always have an input queue; with acking, spouts (acks and fails) and ackers do too.
    for c in layout
        .iter()
        .filter(|c| c.kind == ComponentKind::Bolt || ackers > 0)
    {
        for e in c.executors.iter().filter(|e| is_local(e)) {
            // A spout's queue only carries acks and fails. It is unbounded: ackers must never
            // block on a spout that is itself blocked sending into a full downstream queue (that
            // cycle deadlocks). Its size is bounded by the trees in flight, which the bounded
            // queues downstream already bound.
            let (tx, rx) = if c.kind == ComponentKind::Spout {
                crossbeam_channel::unbounded()
            } else {
                bounded(cfg.queue_batches)
            };
            for t in e.tasks() {
                task_exec[t as usize] = Some(senders.len());
                inbound.task_queue[t as usize] = Some(inbound.queues.len() as u32);
            }
            inbound.queues.push(tx.clone());
            senders.push((*e, tx));
            receivers.insert(*e, rx);
        }
    }
    // Tasks of other workers route to their worker's transport queue, after the local queues.
    let local_queues = senders.len();
    for (&task, &q) in &remote_task_queue {
        if let Some(slot) = task_exec.get_mut(task as usize)
            && q < remote_queues.len()
        {
            *slot = Some(local_queues + q);
        }
    }
    for (i, tx) in remote_queues.into_iter().enumerate() {
        senders.push((
            ExecutorId {
                start: u32::MAX,
                end: i as u32,
            },
            tx,
        ));
    }

    let errors = Arc::new(ErrorLog::default());
    let reporter: Arc<dyn ErrorReporter + Send + Sync> = errors.clone();
    let go = Arc::new(GoSignal::default());
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
    let mut handles = Vec::new();
    let mut expected = 0usize;
    let mut build_error = None;

    let local_executors = layout
        .iter()
        .flat_map(|c| c.executors.iter())
        .filter(|e| is_local(e))
        .count();
    let heads = Arc::new(QueueHeads::new(local_executors));
    let mut head_slot = 0usize;
    // What every executor of this worker shares, around its own router and contexts.
    let new_env = |component: &str,
                   executor: ExecutorId,
                   router: Router,
                   contexts: Vec<TopologyContext>,
                   head_slot: usize| {
        let stats = Arc::new(ExecutorStats::default());
        let env = executor::ExecutorEnv {
            component: component.to_owned(),
            executor,
            router,
            stats: stats.clone(),
            stop: spec.stop.clone(),
            active: spec.active.clone(),
            go: go.clone(),
            ready: ready_tx.clone(),
            flush_interval: cfg.flush_interval,
            contexts,
            reporter: reporter.clone(),
            heads: heads.clone(),
            head_slot,
        };
        (env, stats)
    };
    'build: for c in layout.iter().filter(|c| c.kind != ComponentKind::System) {
        let Some(def) = topo.component(&c.id) else {
            continue;
        };
        let Some((_, factory)) = spec.registry.resolve(&def.class_name) else {
            build_error = Some(RuntimeError::Build {
                component: c.id.clone(),
                class: def.class_name.clone(),
                message: "className is not in this binary's registry".into(),
            });
            break;
        };
        for e in c.executors.iter().filter(|e| is_local(e)) {
            let acking = (ackers > 0).then(|| Acking {
                acker_tasks: acker_tasks.clone(),
                seq: 0,
                anchored: Default::default(),
                started: Vec::new(),
                init: system(ACK_INIT_STREAM),
                ack: system(ACK_ACK_STREAM),
                fail: system(ACK_FAIL_STREAM),
            });
            let router = build_router(
                &topo,
                &c.id,
                e.start,
                &component_tasks,
                &task_exec,
                &senders,
                local_queues,
                &cfg,
                reporter.clone(),
                &acker_tasks,
                acking,
            );
            let contexts: Vec<TopologyContext> = e
                .tasks()
                .map(|task| TopologyContext {
                    topology_name: topo.name.clone(),
                    component_id: c.id.clone(),
                    task_id: task,
                    component_tasks: component_tasks.clone(),
                    config: config.clone(),
                    resources_dir: spec.resources_dir.clone(),
                })
                .collect();
            let (env, stats) = new_env(&c.id, *e, router, contexts, head_slot);
            head_slot += 1;
            let name = format!("gale-{}-{}", c.id, e.start);
            let builder = std::thread::Builder::new().name(name);
            let spawned = match factory {
                Factory::Spout(f) => {
                    let mut spouts: Vec<Box<dyn Spout>> = Vec::new();
                    for _ in e.tasks() {
                        match f(&def.args) {
                            Ok(s) => spouts.push(s),
                            Err(err) => {
                                build_error = Some(RuntimeError::Build {
                                    component: c.id.clone(),
                                    class: def.class_name.clone(),
                                    message: err.to_string(),
                                });
                                break 'build;
                            }
                        }
                    }
                    let rep = reporter.clone();
                    let (comp, first) = (c.id.clone(), e.start);
                    let rx = receivers.remove(e);
                    let reliability = executor::Reliability {
                        timeout: message_timeout,
                        max_pending,
                        queue_aware,
                    };
                    builder.spawn(move || {
                        guard(&*rep, &comp, first, || {
                            executor::run_spout(env, spouts, rx, reliability)
                        })
                    })
                }
                Factory::Bolt(f) => {
                    let mut bolts: Vec<Box<dyn Bolt>> = Vec::new();
                    for _ in e.tasks() {
                        match f(&def.args) {
                            Ok(b) => bolts.push(b),
                            Err(err) => {
                                build_error = Some(RuntimeError::Build {
                                    component: c.id.clone(),
                                    class: def.class_name.clone(),
                                    message: err.to_string(),
                                });
                                break 'build;
                            }
                        }
                    }
                    let Some(rx) = receivers.remove(e) else {
                        continue;
                    };
                    let cleanup = spec.cleanup;
                    let tick = topo
                        .config
                        .get(keys::TICK_TUPLE_FREQ_SECS)
                        .and_then(|v| v.as_u64())
                        .map(Duration::from_secs);
                    let rep = reporter.clone();
                    let (comp, first) = (c.id.clone(), e.start);
                    builder.spawn(move || {
                        guard(&*rep, &comp, first, || {
                            executor::run_bolt(env, rx, bolts, cleanup, tick)
                        })
                    })
                }
            };
            match spawned {
                Ok(j) => {
                    expected += 1;
                    handles.push(ExecutorHandle {
                        component: c.id.clone(),
                        kind: c.kind,
                        executor: *e,
                        stats,
                        join: Some(j),
                    });
                }
                Err(err) => {
                    build_error = Some(RuntimeError::Spawn(err));
                    break 'build;
                }
            }
        }
    }
    // Acker executors: plain XOR bookkeeping, replies go straight to spout tasks.
    if build_error.is_none() {
        for c in layout.iter().filter(|c| c.id == ACKER_ID) {
            for e in c.executors.iter().filter(|e| is_local(e)) {
                let Some(rx) = receivers.remove(e) else {
                    continue;
                };
                let router = build_router(
                    &topo,
                    ACKER_ID,
                    e.start,
                    &component_tasks,
                    &task_exec,
                    &senders,
                    local_queues,
                    &cfg,
                    reporter.clone(),
                    &spout_tasks,
                    None,
                );
                // Ackers have no queue position of their own (they carry no user tuples).
                let (env, stats) = new_env(ACKER_ID, *e, router, Vec::new(), usize::MAX);
                let rep = reporter.clone();
                let first = e.start;
                let spawned = std::thread::Builder::new()
                    .name(format!("gale-acker-{}", e.start))
                    .spawn(move || {
                        guard(&*rep, ACKER_ID, first, || {
                            executor::run_acker(env, rx, message_timeout)
                        })
                    });
                match spawned {
                    Ok(j) => {
                        expected += 1;
                        handles.push(ExecutorHandle {
                            component: ACKER_ID.to_owned(),
                            kind: ComponentKind::System,
                            executor: *e,
                            stats,
                            join: Some(j),
                        });
                    }
                    Err(err) => build_error = Some(RuntimeError::Spawn(err)),
                }
            }
        }
    }
    // Only executors hold senders from here on, so the end of input propagates downstream.
    drop(senders);
    drop(receivers);
    drop(ready_tx);

    let mut worker = Worker {
        executors: handles,
        errors,
        stop: spec.stop.clone(),
        layout,
        started: Instant::now(),
        config: cfg,
    };
    if let Some(e) = build_error {
        go.set(false);
        drop(inbound);
        worker.join();
        return Err(e);
    }
    let mut failure = None;
    for _ in 0..expected {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                failure.get_or_insert(message);
            }
            Err(_) => break,
        }
    }
    if let Some(message) = failure {
        go.set(false);
        drop(inbound);
        worker.join();
        let (component, executor) = worker
            .executors
            .first()
            .map(|h| (h.component.clone(), h.executor))
            .unwrap_or_default();
        // Name the executor whose open failed: its message starts with "task N:".
        let who = worker.executors.iter().find(|h| {
            message
                .strip_prefix("task ")
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|t| h.executor.tasks().contains(&t))
        });
        let (component, executor) = who
            .map(|h| (h.component.clone(), h.executor))
            .unwrap_or((component, executor));
        return Err(RuntimeError::Open {
            component,
            executor,
            message,
        });
    }
    worker.started = Instant::now();
    go.set(true);
    Ok((worker, inbound))
}

#[allow(clippy::too_many_arguments)]
fn build_router(
    topo: &Topology,
    component: &str,
    first_task: u32,
    component_tasks: &BTreeMap<String, Vec<u32>>,
    task_exec: &[Option<usize>],
    senders: &[(ExecutorId, Sender<Batch>)],
    local_queues: usize,
    cfg: &RuntimeConfig,
    reporter: Arc<dyn ErrorReporter + Send + Sync>,
    system_targets: &[u32],
    acking: Option<Acking>,
) -> Router {
    let def = topo.component(component);
    let mut streams = Vec::new();
    for decl in def.map(|d| d.outputs.as_slice()).unwrap_or(&[]) {
        let source = StreamSource::intern(component, &decl.name, &decl.fields);
        let subscribers = topo
            .subscribers(component, &decl.name)
            .map(|s| {
                let targets = component_tasks.get(&s.to).cloned().unwrap_or_default();
                let key_idx = s
                    .grouping
                    .key_fields()
                    .iter()
                    .filter_map(|f| decl.fields.index_of(f))
                    .collect();
                let local: Vec<u32> = targets
                    .iter()
                    .copied()
                    .filter(|t| {
                        task_exec
                            .get(*t as usize)
                            .copied()
                            .flatten()
                            .is_some_and(|q| q < local_queues)
                    })
                    .collect();
                Subscriber {
                    load: vec![0; targets.len()],
                    // LOCAL_OR_SHUFFLE: this worker's tasks when it has any.
                    local_targets: if local.is_empty() {
                        targets.clone()
                    } else {
                        local
                    },
                    shuffle: Shuffle::new(first_task as u64),
                    grouping: match &s.grouping {
                        Grouping::None => Grouping::Shuffle,
                        g => g.clone(),
                    },
                    targets,
                    key_idx,
                }
            })
            .filter(|s| !s.targets.is_empty())
            .collect();
        streams.push(OutStream {
            source,
            is_default: source.stream == topology_api::DEFAULT_STREAM,
            direct: decl.direct,
            subscribers,
        });
    }
    // Put the default stream first: the emit fast path checks it first.
    if let Some(i) = streams
        .iter()
        .position(|s| s.source.stream == topology_api::DEFAULT_STREAM)
    {
        streams.swap(0, i);
    }
    // Hold senders only to executors this component feeds: an executor's input ends when every
    // sender to it is gone, and a stray sender would keep it waiting forever.
    let mut out_of_exec: BTreeMap<usize, u32> = BTreeMap::new();
    let mut outs: Vec<OutBuf> = Vec::new();
    let mut lane = Lane::default();
    let mut task_dest = vec![u32::MAX; task_exec.len()];
    let subscribed = streams
        .iter()
        .flat_map(|s| s.subscribers.iter())
        .flat_map(|sub| sub.targets.iter().copied());
    // Acking messages go to acker tasks (from spouts and bolts) or spout tasks (from ackers).
    let system = if acking.is_some() || component == ACKER_ID {
        system_targets
    } else {
        &[]
    };
    {
        for t in subscribed.chain(system.iter().copied()) {
            {
                let Some(Some(ei)) = task_exec.get(t as usize) else {
                    continue;
                };
                let idx = *out_of_exec.entry(*ei).or_insert_with(|| {
                    // Transport queues of other workers come after this worker's executors.
                    let batch = if *ei >= local_queues {
                        cfg.transfer_batch_size
                    } else {
                        cfg.batch_size
                    };
                    outs.push(OutBuf {
                        tx: senders[*ei].1.clone(),
                        closed: false,
                    });
                    lane.batches.push(Batch::with_capacity(batch));
                    lane.limits.push(batch);
                    (outs.len() - 1) as u32
                });
                task_dest[t as usize] = idx;
            }
        }
    }
    let mut router = Router {
        component: component.to_owned(),
        streams,
        task_dest,
        outs,
        lane: Lane {
            task: first_task,
            acks: acking.is_some().then(|| InputAcks {
                rng: Rng::from_clock(first_task as u64),
                ..InputAcks::default()
            }),
            ..lane
        },
        counters: Counters::default(),
        immediate_acks: Vec::new(),
        last_flush: Instant::now(),
        reporter,
        downstream_lost: false,
        acking,
        debug: topo.config_bool(keys::DEBUG),
    };
    router.prepare_lane();
    router
}

fn system(stream: &str) -> &'static StreamSource {
    system_source(SYSTEM_COMPONENT, stream)
        .unwrap_or_else(|| StreamSource::intern(SYSTEM_COMPONENT, stream, &Fields::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux::{Substitutions, load_bytes};

    fn config(extra: &str) -> RuntimeConfig {
        let yaml = format!(
            "name: t\nconfig: {{{extra}}}\nspouts: [{{id: s, className: TestWordSpout}}]\nbolts: [{{id: b, className: LogInfoBolt}}]\nstreams: [{{from: s, to: b, grouping: {{type: SHUFFLE}}}}]\n"
        );
        let l = load_bytes(
            "t.yaml",
            yaml.as_bytes(),
            &<topology_api::Registry as components::Builtins>::with_builtins(),
            &Substitutions::default(),
            &|_| None,
        )
        .expect("valid");
        RuntimeConfig::from_topology(&l.topology)
    }

    #[test]
    fn batching_knobs_and_presets() {
        let d = config("");
        assert_eq!((d.batch_size, d.transfer_batch_size), (500, 500));
        assert_eq!(d.flush_interval, Duration::from_millis(1));
        let c = config("topology.producer.batch.size: 100, topology.transfer.batch.size: 2000");
        assert_eq!((c.batch_size, c.transfer_batch_size), (100, 2000));
        assert_eq!(c.queue_batches, 16_384_usize.div_ceil(100));
        let l = config("gale.mode: latency");
        assert_eq!((l.batch_size, l.transfer_batch_size), (1, 1));
        assert_eq!(l.flush_interval, Duration::ZERO);
        // An explicit Storm key wins over the preset.
        let m = config("gale.mode: latency, topology.transfer.batch.size: 64");
        assert_eq!((m.batch_size, m.transfer_batch_size), (1, 64));
    }
}
