//! Assembling a worker: its queues, each executor's router, and the executor threads, from a
//! topology and (on a cluster) the placement of its executors.
//!
//! [`start_worker`] reads as the steps: plan the queues ([`Destinations::plan`]), spawn the user
//! executors and the ackers ([`Assembly`]), then wait until every executor opened
//! ([`await_open`]). Nothing runs a tuple until all of them have.

use super::executor::{self, ExecutorEnv, InputsLeft, OpenFailure, Reliability};
use super::router::{Acking, ErrorReporter, InputAcks, OutBuf, OutStream, Router, Subscriber};
use super::{
    Batch, Counters, ErrorLog, ExecutorHandle, ExecutorStats, GoSignal, Inbound, Placement,
    QueueHeads, RuntimeConfig, RuntimeError, Worker, WorkerSpec, guard,
};
use crossbeam_channel::{Receiver, Sender, bounded};
use flux::Topology;
use flux::keys;
use flux::layout::{ACKER_ID, ComponentKind, ComponentTasks, ExecutorId, task_layout};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use topology_api::checkpoint::{CHECKPOINT_COMPONENT, CheckpointForwarder};
use topology_api::grouping::{Grouping, Shuffle};
use topology_api::lane::Lane;
use topology_api::registry::Factory;
use topology_api::rng::Rng;
use topology_api::state::{MEMORY_PROVIDER, ProviderConfig, StateProvider};
use topology_api::{
    ACK_ACK_STREAM, ACK_FAIL_STREAM, ACK_INIT_STREAM, Bolt, ComponentError, DEFAULT_STREAM, Fields,
    SYSTEM_COMPONENT, Spout, StreamSource, TopologyContext, system_source,
};

/// Starts every executor of the topology in this process (local mode's worker) and returns once all
/// of them opened; the first open/prepare error stops the others and is returned.
pub fn start_local_worker(spec: WorkerSpec<'_>) -> Result<Worker, RuntimeError> {
    start_worker(spec).map(|(w, _)| w)
}

/// Starts the executors of `spec.placement` (all of them without one) and returns the worker and
/// the queues that batches from other workers go to.
pub fn start_worker(mut spec: WorkerSpec<'_>) -> Result<(Worker, Inbound), RuntimeError> {
    let placement = spec.placement.take();
    let topo = spec.topology.clone();
    let layout = task_layout(&topo, topo.acker_executors());
    let (mut asm, inbound, ready) = Assembly::new(&spec, &layout, placement);
    let spawned = asm
        .spawn_users(&layout)
        .and_then(|()| asm.spawn_ackers(&layout));
    let go = asm.go.clone();
    let errors = asm.errors.clone();
    let cfg = asm.cfg;
    // Only executors hold senders from here on, so the end of input propagates downstream.
    let handles = asm.into_handles();
    let mut worker = Worker {
        executors: handles,
        errors,
        stop: spec.stop.clone(),
        layout,
        started: Instant::now(),
        config: cfg,
    };
    let opened = spawned.and_then(|()| await_open(&ready, &worker.executors));
    if let Err(e) = opened {
        go.set(false);
        drop(inbound);
        worker.join();
        return Err(e);
    }
    worker.started = Instant::now();
    go.set(true);
    Ok((worker, inbound))
}

/// Waits for one report from each executor; the first open or prepare failure is returned with
/// the component and executor of its task.
fn await_open(
    ready: &Receiver<Result<(), OpenFailure>>,
    executors: &[ExecutorHandle],
) -> Result<(), RuntimeError> {
    let mut failure = None;
    for _ in 0..executors.len() {
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(f)) => {
                failure.get_or_insert(f);
            }
            Err(_) => break,
        }
    }
    let Some(f) = failure else { return Ok(()) };
    let who = executors
        .iter()
        .find(|h| h.executor.tasks().contains(&f.task))
        .or(executors.first());
    Err(RuntimeError::Open {
        component: who.map(|h| h.component.clone()).unwrap_or_default(),
        executor: who.map(|h| h.executor).unwrap_or_default(),
        message: f.to_string(),
    })
}

/// Every queue this worker's executors send to: the input queues of this worker's executors
/// first, then one transport queue per other worker. No sentinel ids: a queue index below
/// `local` is an executor of this worker, the rest are other workers'.
pub(super) struct Destinations {
    senders: Vec<Sender<Batch>>,
    /// How many of `senders` are input queues of this worker's executors.
    local: usize,
    /// Task id -> index into `senders`, for every task this worker reaches.
    task_queue: Vec<Option<usize>>,
}

/// The queues of a worker being assembled, before its executors take their ends.
struct Queues {
    dest: Destinations,
    receivers: BTreeMap<ExecutorId, Receiver<Batch>>,
    inbound: Inbound,
}

impl Destinations {
    /// Makes an input queue for each executor `runs_here` that needs one (bolts always; with
    /// acking, spouts for acks and fails, and ackers), and routes the tasks of other workers to
    /// `placement`'s transport queues.
    fn plan(
        layout: &[ComponentTasks],
        acking: bool,
        runs_here: impl Fn(&ExecutorId) -> bool,
        cfg: &RuntimeConfig,
        remote: (BTreeMap<u32, usize>, Vec<Sender<Batch>>),
    ) -> Queues {
        let max_task = layout
            .iter()
            .map(|c| c.first_task + c.num_tasks)
            .max()
            .unwrap_or(1) as usize;
        let mut q = Queues {
            dest: Destinations {
                senders: Vec::new(),
                local: 0,
                task_queue: vec![None; max_task + 1],
            },
            receivers: BTreeMap::new(),
            inbound: Inbound {
                task_queue: vec![None; max_task + 1],
                queues: Vec::new(),
            },
        };
        for c in layout
            .iter()
            .filter(|c| c.kind == ComponentKind::Bolt || acking)
        {
            for e in c.executors.iter().filter(|e| runs_here(e)) {
                // A spout's queue only carries acks and fails. It is unbounded: ackers must never
                // block on a spout that is itself blocked sending into a full downstream queue
                // (that cycle deadlocks). Its size is bounded by the trees in flight, which the
                // bounded queues downstream already bound.
                let (tx, rx) = if c.kind == ComponentKind::Spout {
                    crossbeam_channel::unbounded()
                } else {
                    bounded(cfg.queue_batches)
                };
                for t in e.tasks() {
                    q.dest.task_queue[t as usize] = Some(q.dest.senders.len());
                    q.inbound.task_queue[t as usize] = Some(q.inbound.queues.len() as u32);
                }
                q.inbound.queues.push(tx.clone());
                q.dest.senders.push(tx);
                q.receivers.insert(*e, rx);
            }
        }
        // Tasks of other workers route to their worker's transport queue, after the local queues.
        let (remote_task_queue, remote_queues) = remote;
        q.dest.local = q.dest.senders.len();
        for (&task, &r) in &remote_task_queue {
            if let Some(slot) = q.dest.task_queue.get_mut(task as usize)
                && r < remote_queues.len()
            {
                *slot = Some(q.dest.local + r);
            }
        }
        q.dest.senders.extend(remote_queues);
        q
    }

    fn queue_of(&self, task: u32) -> Option<usize> {
        self.task_queue.get(task as usize).copied().flatten()
    }

    fn is_local(&self, queue: usize) -> bool {
        queue < self.local
    }
}

/// A worker being assembled: what every executor of it shares, and the executors spawned so far.
struct Assembly<'a> {
    spec: &'a WorkerSpec<'a>,
    topo: Arc<Topology>,
    cfg: RuntimeConfig,
    /// `None`: every executor runs here (local mode).
    local_set: Option<BTreeSet<ExecutorId>>,
    acker_tasks: Vec<u32>,
    spout_tasks: Vec<u32>,
    component_tasks: Arc<BTreeMap<String, Vec<u32>>>,
    config: Arc<serde_json::Map<String, serde_json::Value>>,
    reliability: Reliability,
    tick: Option<Duration>,
    dest: Destinations,
    receivers: BTreeMap<ExecutorId, Receiver<Batch>>,
    errors: Arc<ErrorLog>,
    reporter: Arc<dyn ErrorReporter + Send + Sync>,
    go: Arc<GoSignal>,
    ready: Sender<Result<(), OpenFailure>>,
    heads: Arc<QueueHeads>,
    next_head: usize,
    handles: Vec<ExecutorHandle>,
    /// A topology with stateful bolts: where they keep their state.
    state: Option<Arc<dyn StateProvider>>,
    /// Data spout executors of this worker still running, and the flag set when none is.
    spouts_left: Arc<std::sync::atomic::AtomicUsize>,
    inputs_ended: Arc<std::sync::atomic::AtomicBool>,
    checkpoints_done: Arc<std::sync::atomic::AtomicBool>,
}

/// The state provider of a topology with stateful bolts (`topology.state.provider`, Storm's
/// in-memory one by default), built once per worker.
fn state_provider(
    topo: &Topology,
    registry: &topology_api::Registry,
) -> Result<Option<Arc<dyn StateProvider>>, RuntimeError> {
    if topo.component(CHECKPOINT_COMPONENT).is_none() {
        return Ok(None);
    }
    let name = topo
        .config
        .get(keys::STATE_PROVIDER)
        .and_then(|v| v.as_str())
        .unwrap_or(MEMORY_PROVIDER);
    let err = |message: String| RuntimeError::Build {
        component: CHECKPOINT_COMPONENT.to_owned(),
        class: name.to_owned(),
        message,
    };
    let factory = registry.state_provider(name).ok_or_else(|| {
        let known: Vec<&str> = registry.state_provider_names().collect();
        err(format!(
            "this binary has no state provider {name:?}; it has: {}",
            known.join(", ")
        ))
    })?;
    let provider_config = match topo.config.get(keys::STATE_PROVIDER_CONFIG) {
        Some(serde_json::Value::String(s)) => serde_json::from_str(s)
            .map_err(|e| err(format!("{}: {e}", keys::STATE_PROVIDER_CONFIG)))?,
        Some(v) => v.clone(),
        None => serde_json::Value::Null,
    };
    factory(&ProviderConfig {
        topology: &topo.name,
        provider_config,
        config: &topo.config,
    })
    .map(Some)
    .map_err(|e| err(e.to_string()))
}

impl<'a> Assembly<'a> {
    fn new(
        spec: &'a WorkerSpec<'a>,
        layout: &[ComponentTasks],
        placement: Option<Placement>,
    ) -> (Self, Inbound, Receiver<Result<(), OpenFailure>>) {
        let topo = spec.topology.clone();
        let cfg = RuntimeConfig::from_topology(&topo);
        let (local_set, remote) = match placement {
            Some(p) => (Some(p.local), (p.remote_task_queue, p.remote_queues)),
            None => (None, (BTreeMap::new(), Vec::new())),
        };
        let runs_here = |e: &ExecutorId| local_set.as_ref().is_none_or(|l| l.contains(e));
        let queues =
            Destinations::plan(layout, topo.acker_executors() > 0, runs_here, &cfg, remote);
        let tasks_of = |pick: &dyn Fn(&ComponentTasks) -> bool| -> Vec<u32> {
            layout
                .iter()
                .filter(|c| pick(c))
                .flat_map(|c| c.task_ids())
                .collect()
        };
        let local_executors = layout
            .iter()
            .flat_map(|c| c.executors.iter())
            .filter(|e| runs_here(e))
            .count();
        let errors = Arc::new(ErrorLog::default());
        let (ready, ready_rx) = crossbeam_channel::unbounded();
        let data_spouts = layout
            .iter()
            .filter(|c| c.kind == ComponentKind::Spout && c.id != CHECKPOINT_COMPONENT)
            .flat_map(|c| c.executors.iter())
            .filter(|e| runs_here(e))
            .count();
        let asm = Assembly {
            state: None,
            spouts_left: Arc::new(std::sync::atomic::AtomicUsize::new(data_spouts)),
            inputs_ended: Arc::new(std::sync::atomic::AtomicBool::new(data_spouts == 0)),
            checkpoints_done: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            spec,
            cfg,
            acker_tasks: tasks_of(&|c| c.id == ACKER_ID),
            spout_tasks: tasks_of(&|c| c.kind == ComponentKind::Spout),
            component_tasks: Arc::new(
                layout
                    .iter()
                    .map(|c| (c.id.clone(), c.task_ids().collect()))
                    .collect(),
            ),
            config: Arc::new(topo.config.clone()),
            reliability: Reliability {
                timeout: Duration::from_secs(topo.config_u64(keys::MESSAGE_TIMEOUT_SECS, 30)),
                max_pending: topo
                    .config
                    .get(keys::MAX_SPOUT_PENDING)
                    .and_then(|v| v.as_u64()),
                queue_aware: topo
                    .config
                    .get(keys::MESSAGE_TIMEOUT_RULE)
                    .and_then(|v| v.as_str())
                    != Some("storm"),
            },
            tick: topo
                .config
                .get(keys::TICK_TUPLE_FREQ_SECS)
                .and_then(|v| v.as_u64())
                .map(Duration::from_secs),
            local_set,
            dest: queues.dest,
            receivers: queues.receivers,
            reporter: errors.clone(),
            errors,
            go: Arc::new(GoSignal::default()),
            ready,
            heads: Arc::new(QueueHeads::new(local_executors)),
            next_head: 0,
            handles: Vec::new(),
            topo,
        };
        (asm, queues.inbound, ready_rx)
    }

    fn runs_here(&self, e: &ExecutorId) -> bool {
        self.local_set.as_ref().is_none_or(|l| l.contains(e))
    }

    /// The executors spawned; the queues' other ends and the ready channel's sender are dropped.
    fn into_handles(self) -> Vec<ExecutorHandle> {
        self.handles
    }

    /// Spawns the executors of every user component that run here.
    fn spawn_users(&mut self, layout: &[ComponentTasks]) -> Result<(), RuntimeError> {
        self.state = state_provider(&self.topo, self.spec.registry)?;
        for c in layout.iter().filter(|c| c.kind != ComponentKind::System) {
            self.spawn_component(c)?;
        }
        Ok(())
    }

    fn spawn_component(&mut self, c: &ComponentTasks) -> Result<(), RuntimeError> {
        let topo = self.topo.clone();
        let Some(def) = topo.component(&c.id) else {
            return Ok(());
        };
        let build_error = |message: String| RuntimeError::Build {
            component: c.id.clone(),
            class: def.class_name.clone(),
            message,
        };
        let Some((_, factory)) = self.spec.registry.resolve(&def.class_name) else {
            return Err(build_error(
                "className is not in this binary's registry".into(),
            ));
        };
        let executors: Vec<ExecutorId> = c
            .executors
            .iter()
            .copied()
            .filter(|e| self.runs_here(e))
            .collect();
        for e in executors {
            let (body, stats): (Box<dyn FnOnce() + Send>, _) = match factory {
                Factory::Spout(f) => {
                    let spouts = e
                        .tasks()
                        .map(|_| f(&def.args))
                        .collect::<Result<Vec<Box<dyn Spout>>, ComponentError>>()
                        .map_err(|err| build_error(err.to_string()))?;
                    let rx = self.receivers.remove(&e);
                    let env = self.user_env(c, e);
                    let (stats, rel) = (env.stats.clone(), self.reliability);
                    let body = move || executor::run_spout(env, spouts, rx, rel);
                    (Box::new(body), stats)
                }
                Factory::Bolt(f) => {
                    let stateful_topology = self.state.is_some();
                    let forwards =
                        stateful_topology && !self.spec.registry.is_stateful(&def.class_name);
                    let bolts = e
                        .tasks()
                        .map(|_| {
                            f(&def.args).map(|b| {
                                if forwards {
                                    Box::new(CheckpointForwarder::new(b)) as Box<dyn Bolt>
                                } else {
                                    b
                                }
                            })
                        })
                        .collect::<Result<Vec<Box<dyn Bolt>>, ComponentError>>()
                        .map_err(|err| build_error(err.to_string()))?;
                    let Some(rx) = self.receivers.remove(&e) else {
                        continue;
                    };
                    let env = self.user_env(c, e);
                    let (stats, cleanup, tick) = (env.stats.clone(), self.spec.cleanup, self.tick);
                    let body = move || executor::run_bolt(env, rx, bolts, cleanup, tick);
                    (Box::new(body), stats)
                }
            };
            let name = format!("gale-{}-{}", c.id, e.start);
            self.spawn(&c.id, c.kind, e, stats, name, body)?;
        }
        Ok(())
    }

    /// Acker executors: plain XOR bookkeeping, replies go straight to spout tasks.
    fn spawn_ackers(&mut self, layout: &[ComponentTasks]) -> Result<(), RuntimeError> {
        let ackers = layout.iter().filter(|c| c.id == ACKER_ID);
        for e in ackers.flat_map(|c| c.executors.iter().copied()) {
            if !self.runs_here(&e) {
                continue;
            }
            let Some(rx) = self.receivers.remove(&e) else {
                continue;
            };
            let spout_tasks = self.spout_tasks.clone();
            let router = self.router(ACKER_ID, e.start, &spout_tasks, None);
            // Ackers have no queue position of their own (they carry no user tuples).
            let env = self.env(ACKER_ID, e, router, Vec::new(), usize::MAX);
            let (stats, timeout) = (env.stats.clone(), self.reliability.timeout);
            let name = format!("gale-acker-{}", e.start);
            let body = Box::new(move || executor::run_acker(env, rx, timeout));
            self.spawn(ACKER_ID, ComponentKind::System, e, stats, name, body)?;
        }
        Ok(())
    }

    /// Starts an executor thread; a panic in it is reported as an error of its component.
    fn spawn(
        &mut self,
        component: &str,
        kind: ComponentKind,
        executor: ExecutorId,
        stats: Arc<ExecutorStats>,
        name: String,
        body: Box<dyn FnOnce() + Send>,
    ) -> Result<(), RuntimeError> {
        let rep = self.reporter.clone();
        let comp = component.to_owned();
        let join = std::thread::Builder::new()
            .name(name)
            .spawn(move || guard(&*rep, &comp, executor.start, body))
            .map_err(RuntimeError::Spawn)?;
        self.handles.push(ExecutorHandle {
            component: component.to_owned(),
            kind,
            executor,
            stats,
            join: Some(join),
        });
        Ok(())
    }

    /// The environment of a user executor: its router (with acking state when acking is on),
    /// one context per task and its own slot in the worker's queue heads.
    fn user_env(&mut self, c: &ComponentTasks, e: ExecutorId) -> ExecutorEnv {
        let acking = (!self.acker_tasks.is_empty()).then(|| Acking {
            acker_tasks: self.acker_tasks.clone(),
            seq: 0,
            anchored: Default::default(),
            started: Vec::new(),
            init: system(ACK_INIT_STREAM),
            ack: system(ACK_ACK_STREAM),
            fail: system(ACK_FAIL_STREAM),
        });
        let acker_tasks = self.acker_tasks.clone();
        let router = self.router(&c.id, e.start, &acker_tasks, acking);
        let inputs: Vec<(String, String)> = self
            .topo
            .streams
            .iter()
            .filter(|s| s.to == c.id)
            .map(|s| (s.from.clone(), s.stream_id.clone()))
            .collect();
        let local = self.local_set.is_none();
        let contexts = e
            .tasks()
            .map(|task| TopologyContext {
                topology_name: self.topo.name.clone(),
                component_id: c.id.clone(),
                task_id: task,
                component_tasks: self.component_tasks.clone(),
                config: self.config.clone(),
                resources_dir: self.spec.resources_dir.clone(),
                inputs: inputs.clone(),
                state: self.state.clone(),
                // Local mode only: a cluster's topologies run until killed.
                inputs_ended: local.then(|| self.inputs_ended.clone()),
                checkpoints_done: local.then(|| self.checkpoints_done.clone()),
            })
            .collect();
        let head = self.next_head;
        self.next_head += 1;
        let mut env = self.env(&c.id, e, router, contexts, head);
        // A data spout of a local run counts itself finished for the checkpoint spout.
        if c.kind == ComponentKind::Spout
            && c.id != CHECKPOINT_COMPONENT
            && self.local_set.is_none()
        {
            env.inputs_left = Some(InputsLeft {
                left: self.spouts_left.clone(),
                ended: self.inputs_ended.clone(),
            });
        }
        env
    }

    /// What every executor of this worker shares, around its own router and contexts.
    fn env(
        &self,
        component: &str,
        executor: ExecutorId,
        router: Router,
        contexts: Vec<TopologyContext>,
        head_slot: usize,
    ) -> ExecutorEnv {
        ExecutorEnv {
            component: component.to_owned(),
            executor,
            router,
            stats: Arc::new(ExecutorStats::default()),
            stop: self.spec.stop.clone(),
            active: self.spec.active.clone(),
            lease: self.spec.lease.clone(),
            inputs_left: None,
            go: self.go.clone(),
            ready: self.ready.clone(),
            flush_interval: self.cfg.flush_interval,
            contexts,
            reporter: self.reporter.clone(),
            heads: self.heads.clone(),
            head_slot,
        }
    }

    /// The router of one executor: its declared streams with their subscribers, and a batch per
    /// destination it feeds (subscribers' queues, and acker or spout tasks for acking messages).
    fn router(
        &self,
        component: &str,
        first_task: u32,
        system_targets: &[u32],
        acking: Option<Acking>,
    ) -> Router {
        let streams = self.out_streams(component, first_task);
        // Acking messages go to acker tasks (from spouts and bolts) or spout tasks (from ackers).
        let system = if acking.is_some() || component == ACKER_ID {
            system_targets
        } else {
            &[]
        };
        let targets = streams
            .iter()
            .flat_map(|s| s.subscribers.iter())
            .flat_map(|sub| sub.targets.iter().copied())
            .chain(system.iter().copied());
        let (outs, lane, task_dest) = self.batches_for(targets);
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
            reporter: self.reporter.clone(),
            downstream_lost: false,
            acking,
            debug: self.topo.config_bool(keys::DEBUG),
        };
        router.prepare_lane();
        router
    }

    /// `component`'s declared streams with their subscribers; the default stream first (the emit
    /// fast path checks it first).
    fn out_streams(&self, component: &str, first_task: u32) -> Vec<OutStream> {
        let def = self.topo.component(component);
        let mut streams: Vec<OutStream> = def
            .map(|d| d.outputs.as_slice())
            .unwrap_or(&[])
            .iter()
            .map(|decl| {
                let source = StreamSource::intern(component, &decl.name, &decl.fields);
                let subscribers = self
                    .topo
                    .subscribers(component, &decl.name)
                    .map(|s| self.subscriber(s, &decl.fields, first_task))
                    .filter(|s| !s.targets.is_empty())
                    .collect();
                OutStream {
                    source,
                    is_default: source.stream == DEFAULT_STREAM,
                    direct: decl.direct,
                    subscribers,
                }
            })
            .collect();
        if let Some(i) = streams
            .iter()
            .position(|s| s.source.stream == DEFAULT_STREAM)
        {
            streams.swap(0, i);
        }
        streams
    }

    fn subscriber(&self, s: &flux::StreamDef, fields: &Fields, first_task: u32) -> Subscriber {
        let targets = self.component_tasks.get(&s.to).cloned().unwrap_or_default();
        let key_idx = s
            .grouping
            .key_fields()
            .iter()
            .filter_map(|f| fields.index_of(f))
            .collect();
        let local: Vec<u32> = targets
            .iter()
            .copied()
            .filter(|t| {
                self.dest
                    .queue_of(*t)
                    .is_some_and(|q| self.dest.is_local(q))
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
    }

    /// A batch and a sender for each queue that `targets` reach, and each task's index into them
    /// (`u32::MAX` for tasks this executor does not send to). Senders are held only to queues
    /// this executor feeds: a queue's input ends when every sender to it is gone, and a stray
    /// sender would keep its executor waiting forever.
    fn batches_for(&self, targets: impl Iterator<Item = u32>) -> (Vec<OutBuf>, Lane, Vec<u32>) {
        let mut out_of_queue: BTreeMap<usize, u32> = BTreeMap::new();
        let mut outs: Vec<OutBuf> = Vec::new();
        let mut lane = Lane::default();
        let mut task_dest = vec![u32::MAX; self.dest.task_queue.len()];
        for t in targets {
            let Some(q) = self.dest.queue_of(t) else {
                continue;
            };
            let idx = *out_of_queue.entry(q).or_insert_with(|| {
                // Transport queues of other workers take `topology.transfer.batch.size`.
                let batch = if self.dest.is_local(q) {
                    self.cfg.batch_size
                } else {
                    self.cfg.transfer_batch_size
                };
                outs.push(OutBuf {
                    tx: self.dest.senders[q].clone(),
                    closed: false,
                });
                lane.batches.push(Batch::with_capacity(batch));
                lane.limits.push(batch);
                (outs.len() - 1) as u32
            });
            task_dest[t as usize] = idx;
        }
        (outs, lane, task_dest)
    }
}

fn system(stream: &str) -> &'static StreamSource {
    system_source(SYSTEM_COMPONENT, stream)
        .unwrap_or_else(|| StreamSource::intern(SYSTEM_COMPONENT, stream, &Fields::default()))
}
