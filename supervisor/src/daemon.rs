//! The Supervisor daemon: registers its slots (and the class names its registry can construct) in
//! ZooKeeper, runs the workers Nimbus assigns to them, and reports heartbeats and errors.
//!
//! Each slot (port) is a state machine ([`Slot`]), driven by one `sync` pass whenever this
//! supervisor's assignments change (a watch on its own node, `/assigned/<id>`, that Nimbus
//! writes), and on a timer: a third of the lease while workers run (a pass renews it), else
//! `sync_interval`. A pass sends ZooKeeper one request when nothing changed (reading that node,
//! which sets the watch again); it writes the registration only when it changed or a new
//! session started, and each worker's heartbeat once per the period the assignment gives
//! (docs/scale.md). Starting and stopping happen within one pass:
//!
//! ```text
//! Empty --assigned, started--> Running --assignment changed/removed, or a component panicked--> Empty
//!   \--assigned, failed to start--> Failed --RETRY_AFTER passed--> Empty (tried again)
//! ```
//!
//! A worker is the `worker` runtime (executor threads) plus a TCP listener on the slot's port and a
//! sender thread per remote executor. ZooKeeper being unreachable never stops running workers.

use cluster_state::{
    AssignmentRecord, ClusterState, ErrorEntry, ExecutorBeat, ExecutorSlot, Store, StoredTopology,
    SupervisorAssignments, SupervisorRecord, TopologyStatus, Watch, WorkerBeat, now_secs,
};
use flux::Topology;
use flux::layout::ExecutorId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use topology_api::Registry;
use worker::handshake::ClusterSecret;
use worker::runtime::{Lease, Placement, RuntimeError, Worker, WorkerSpec, start_worker};
use worker::transport;

/// How a Supervisor runs.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    pub id: String,
    /// The address other workers reach this one at; workers listen on it.
    pub host: String,
    pub ports: Vec<u16>,
    pub registry: Registry,
    /// Where shipped resources are unpacked.
    pub work_dir: PathBuf,
    /// The longest wait between two passes while no running worker holds a lease (passes also
    /// run on every change of this supervisor's assignments).
    pub sync_interval: Duration,
    /// With a secret, this supervisor's workers accept frames only from workers that prove it
    /// (`worker::handshake`), and prove it to the workers they send to.
    pub cluster_secret: Option<ClusterSecret>,
}

/// The state of one slot. (Starting and Stopping happen within one sync pass.)
enum Slot {
    Empty,
    Running(Box<RunningWorker>),
    /// The worker failed to start; it is retried after a pause, not on every pass.
    Failed(Instant),
}

/// How long a slot whose worker failed to start waits before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(5);

struct RunningWorker {
    topology_id: String,
    /// The assignment the worker was started with: any change restarts it.
    executors: Vec<ExecutorSlot>,
    worker: Worker,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
    errors_reported: u64,
    /// When its heartbeat was last written (`None`: not yet).
    last_beat: Option<Instant>,
}

impl RunningWorker {
    /// Stopping: spouts stop, the listener closes (so bolts see the end of remote input), bolts
    /// drain their queues and run cleanup, senders finish.
    fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.worker.join();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Stops the worker and returns its last heartbeat, marked stopped, with its final counters.
    fn stop_and_beat(mut self, me: &str, port: u16) -> WorkerBeat {
        self.halt();
        let mut beat = heartbeat(me, port, &self);
        beat.stopped = Some(topology_api::now_us().max(1));
        beat
    }
}

/// What this supervisor knows of its assignments: its node (`/assigned/<id>`), the assignment
/// of each topology it names as of the generation named, and the topologies' definitions (read
/// once: a topology id's definition never changes).
#[derive(Default)]
pub struct Follower {
    index: SupervisorAssignments,
    assignments: BTreeMap<String, (u64, AssignmentRecord)>,
    topologies: BTreeMap<String, Arc<StoredTopology>>,
    watch: Option<Watch>,
    /// The session and record of the last registration written.
    registered: Option<(u64, SupervisorRecord)>,
}

impl Follower {
    /// Reads this supervisor's node (setting its watch again), then the assignments whose
    /// generation changed. True when anything changed.
    pub async fn poll<S: Store>(
        &mut self,
        me: &str,
        state: &ClusterState<S>,
    ) -> Result<bool, cluster_state::StateError> {
        let (index, watch) = state.watch_supervisor_assignments(me).await?;
        self.watch = Some(watch);
        let mut changed = index != self.index;
        for (id, t) in &index.topologies {
            if self.assignments.get(id).map(|(g, _)| *g) == Some(t.generation) {
                continue;
            }
            if let Some(a) = state.assignment(id).await? {
                self.assignments.insert(id.clone(), (t.generation, a));
                changed = true;
            }
        }
        let before = self.assignments.len();
        self.assignments
            .retain(|id, _| index.topologies.contains_key(id));
        self.topologies
            .retain(|id, _| index.topologies.contains_key(id));
        changed |= self.assignments.len() != before;
        self.index = index;
        Ok(changed)
    }

    /// The assignments of the topologies this supervisor runs.
    pub fn assignments(&self) -> Vec<(String, AssignmentRecord)> {
        self.assignments
            .iter()
            .map(|(id, (_, a))| (id.clone(), a.clone()))
            .collect()
    }

    /// The lease the assignments of executors on `me` ask for (as [`lease_for`], without
    /// copying the assignments).
    pub fn lease(&self, me: &str) -> Option<Duration> {
        self.assignments
            .values()
            .filter(|(_, a)| a.lease_ms > 0 && a.executors.iter().any(|e| e.supervisor == me))
            .map(|(_, a)| Duration::from_millis(a.lease_ms))
            .min()
    }

    pub fn status(&self, id: &str) -> Option<TopologyStatus> {
        self.index.topologies.get(id).map(|t| t.status)
    }

    /// The topology's definition, read from the store the first time only.
    pub async fn topology<S: Store>(
        &mut self,
        state: &ClusterState<S>,
        id: &str,
    ) -> Result<Option<Arc<StoredTopology>>, cluster_state::StateError> {
        if let Some(t) = self.topologies.get(id) {
            return Ok(Some(t.clone()));
        }
        let Some(t) = state.topology(id).await? else {
            return Ok(None);
        };
        let t = Arc::new(t);
        self.topologies.insert(id.to_owned(), t.clone());
        Ok(Some(t))
    }

    /// Writes the registration when it changed or a new session started (the ephemeral node of
    /// an earlier session is gone, or will be: it is replaced by one of this session's).
    pub async fn register<S: Store>(
        &mut self,
        state: &ClusterState<S>,
        rec: SupervisorRecord,
    ) -> Result<(), cluster_state::StateError> {
        let session = state.store().session();
        match &self.registered {
            Some((s, r)) if *s == session && *r == rec => return Ok(()),
            Some((s, _)) if *s == session => state.register_supervisor(&rec).await?,
            _ => state.register_supervisor_anew(&rec).await?,
        }
        self.registered = Some((session, rec));
        Ok(())
    }

    /// Resolves when this supervisor's node changes (never, before the first poll).
    pub async fn changed(&mut self) {
        match self.watch.as_mut() {
            Some(w) => {
                w.await;
                self.watch = None;
            }
            None => std::future::pending().await,
        }
    }
}

/// Runs the Supervisor until `shutdown` resolves.
pub async fn run<S: Store>(
    cfg: SupervisorConfig,
    state: Arc<ClusterState<S>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let started = now_secs();
    let mut slots: BTreeMap<u16, Slot> = cfg.ports.iter().map(|p| (*p, Slot::Empty)).collect();
    let lease = Lease::expired();
    let mut follower = Follower::default();
    tokio::pin!(shutdown);
    tracing::info!(id = %cfg.id, host = %cfg.host, ports = ?cfg.ports, "Supervisor started");
    loop {
        let pass_start = Instant::now();
        let pass = sync(
            &cfg,
            &state,
            &mut slots,
            &mut follower,
            started,
            &lease,
            pass_start,
        );
        // A pass that hangs on ZooKeeper must not keep this loop from fencing in time.
        let outcome = match lease.remaining() {
            Some(left) => tokio::time::timeout(left.max(Duration::from_millis(100)), pass).await,
            None => Ok(pass.await),
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Cannot sync with ZooKeeper; running workers keep running while the lease lasts")
            }
            Err(_) => {
                tracing::warn!("A pass with ZooKeeper did not finish before the lease ran out")
            }
        }
        fence_if_out(&lease, &mut slots, pass_start);
        let next = next_pass(&cfg, &lease, &slots, &follower);
        tokio::select! {
            _ = &mut shutdown => break,
            _ = follower.changed() => {}
            _ = tokio::time::sleep(next) => {}
        }
    }
    tracing::info!(id = %cfg.id, "Supervisor stopping its workers");
    for (_, s) in std::mem::take(&mut slots) {
        if let Slot::Running(w) = s {
            tokio::task::block_in_place(|| w.stop());
        }
    }
}

/// How long until the next pass: a third of the lease while workers run under one (so that
/// one pass can fail without the lease running out), the next heartbeat or retry due, and at
/// most `sync_interval`.
fn next_pass(
    cfg: &SupervisorConfig,
    lease: &Lease,
    slots: &BTreeMap<u16, Slot>,
    follower: &Follower,
) -> Duration {
    let floor = Duration::from_millis(100);
    let mut next = cfg.sync_interval;
    if any_running(slots)
        && let Some(d) = follower.lease(&cfg.id)
    {
        next = next.min(d / 3);
        if let Some(left) = lease.remaining() {
            next = next.min(left);
        }
    }
    for slot in slots.values() {
        match slot {
            Slot::Running(w) => {
                next = next.min(beat_due_in(
                    w.last_beat,
                    beat_period(follower, &w.topology_id),
                ))
            }
            Slot::Failed(at) => next = next.min(RETRY_AFTER.saturating_sub(at.elapsed())),
            Slot::Empty => {}
        }
    }
    next.max(floor)
}

/// How often a topology's workers' heartbeats are written (the assignment says; once a second
/// if it does not).
pub fn beat_period(follower: &Follower, id: &str) -> Duration {
    follower
        .assignments
        .get(id)
        .map(|(_, a)| a.beat_ms)
        .filter(|ms| *ms > 0)
        .map_or(Duration::from_secs(1), Duration::from_millis)
}

/// How long until a worker's next heartbeat is due (zero: now).
pub fn beat_due_in(last: Option<Instant>, period: Duration) -> Duration {
    last.map_or(Duration::ZERO, |t| period.saturating_sub(t.elapsed()))
}

/// Whether a worker beats in this pass: its beat is due, or another worker's is (`any_due`) and
/// half its period has passed, so that a supervisor's workers come to beat in the same pass
/// rather than each waking the supervisor for a pass of its own.
pub fn beats_now(last: Option<Instant>, period: Duration, any_due: bool) -> bool {
    last.is_none_or(|t| {
        let e = t.elapsed();
        e >= period || (any_due && e >= period / 2)
    })
}

fn any_running(slots: &BTreeMap<u16, Slot>) -> bool {
    slots.values().any(|s| matches!(s, Slot::Running(_)))
}

/// Fencing: once the lease ran out (no pass read the assignments for the lease the assignments
/// give), every worker stops, before Nimbus could start their executors elsewhere. Their tasks
/// already stopped running when the lease ran out (`worker::runtime::Lease`); they start again
/// from the assignments once ZooKeeper answers.
fn fence_if_out(lease: &Lease, slots: &mut BTreeMap<u16, Slot>, pass_start: Instant) {
    if lease.valid() || !any_running(slots) {
        return;
    }
    tracing::warn!(
        silent_for = ?pass_start.elapsed(),
        "Fenced: no word from ZooKeeper for the lease; stopping every worker so that its executors can run elsewhere"
    );
    for (port, slot) in slots.iter_mut() {
        if let Slot::Running(w) = std::mem::replace(slot, Slot::Empty) {
            tracing::info!(topology = %w.topology_id, port, "Stopping worker (fenced)");
            tokio::task::block_in_place(|| w.stop());
        }
    }
    tracing::warn!("Fenced: every worker stopped");
}

/// The lease the assignments of executors here ask for: the shortest (`None`: none asks).
pub fn lease_for(me: &str, assignments: &[(String, AssignmentRecord)]) -> Option<Duration> {
    assignments
        .iter()
        .filter(|(_, a)| a.lease_ms > 0 && a.executors.iter().any(|e| e.supervisor == me))
        .map(|(_, a)| Duration::from_millis(a.lease_ms))
        .min()
}

/// One pass: read this supervisor's assignments (what changed), then bring every slot to what
/// they want of it, then register (slots, used ports, classes) if that changed. Once the
/// workers whose assignment changed are stopped, the lease is renewed from `pass_start`
/// (before the assignments were read).
async fn sync<S: Store>(
    cfg: &SupervisorConfig,
    state: &ClusterState<S>,
    slots: &mut BTreeMap<u16, Slot>,
    follower: &mut Follower,
    started: u64,
    lease: &Lease,
    pass_start: Instant,
) -> Result<(), cluster_state::StateError> {
    follower.poll(&cfg.id, state).await?;
    // Registered before anything starts: Nimbus may place only on a registered supervisor.
    register(cfg, state, follower, slots, started).await?;
    let assignments = follower.assignments();
    let desired = desired_ports(&cfg.id, &assignments);
    remove_gone_topologies(cfg, follower, slots);
    // Every worker whose assignment changed stops before any starts: when executors move
    // between this supervisor's ports, the old copy of a task is gone before the new one runs.
    for (&port, slot) in slots.iter_mut() {
        let want = desired.get(&port).copied();
        stop_if_changed(cfg, state, port, slot, want).await;
    }
    match lease_for(&cfg.id, &assignments) {
        Some(d) => lease.renew_until(pass_start + d),
        None => lease.lift(),
    }
    let any_due = slots.values().any(|s| {
        matches!(s, Slot::Running(w)
            if beat_due_in(w.last_beat, beat_period(follower, &w.topology_id)).is_zero())
    });
    for (&port, slot) in slots.iter_mut() {
        let want = desired.get(&port).copied();
        if matches!(slot, Slot::Failed(at) if at.elapsed() >= RETRY_AFTER || want.is_none()) {
            *slot = Slot::Empty;
        }
        // A held assignment: old workers elsewhere may still run these executors; wait.
        if let (Slot::Empty, Some((id, a))) = (&*slot, want.filter(|(_, a)| !a.held)) {
            let active = follower.status(id) == Some(TopologyStatus::Active);
            start_slot(cfg, state, follower, port, slot, (id, a), active, lease).await?;
        }
        // Running: follow activate/deactivate, report errors, heartbeat when due.
        if let Slot::Running(w) = slot {
            let status = follower.status(&w.topology_id);
            w.active
                .store(status == Some(TopologyStatus::Active), Ordering::SeqCst);
            report_errors(state, cfg, port, w).await;
            let period = beat_period(follower, &w.topology_id);
            if beats_now(w.last_beat, period, any_due) {
                state
                    .set_workerbeat(&w.topology_id, &heartbeat(&cfg.id, port, w))
                    .await?;
                w.last_beat = Some(Instant::now());
            }
        }
    }
    register(cfg, state, follower, slots, started).await
}

/// Writes the registration if it changed (used ports) or a new session started.
async fn register<S: Store>(
    cfg: &SupervisorConfig,
    state: &ClusterState<S>,
    follower: &mut Follower,
    slots: &BTreeMap<u16, Slot>,
    started: u64,
) -> Result<(), cluster_state::StateError> {
    let used: Vec<u16> = slots
        .iter()
        .filter(|(_, s)| matches!(s, Slot::Running(_)))
        .map(|(p, _)| *p)
        .collect();
    let rec = SupervisorRecord {
        id: cfg.id.clone(),
        host: cfg.host.clone(),
        ports: cfg.ports.clone(),
        used_ports: used,
        start_time_secs: started,
        version: env!("CARGO_PKG_VERSION").into(),
        classes: Some(cfg.registry.runnable_names()),
    };
    follower.register(state, rec).await
}

/// Removes the work folders (unpacked resources) of topologies that are gone from the cluster
/// and that no slot here still runs: a killed topology leaves nothing behind on the supervisor.
fn remove_gone_topologies(
    cfg: &SupervisorConfig,
    follower: &Follower,
    slots: &BTreeMap<u16, Slot>,
) {
    let Ok(entries) = std::fs::read_dir(&cfg.work_dir) else {
        return;
    };
    for e in entries.flatten() {
        let Some(id) = e.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let running = slots
            .values()
            .any(|s| matches!(s, Slot::Running(w) if w.topology_id == id));
        let assigned = follower.index.topologies.contains_key(&id);
        if assigned || running || !e.path().join("resources").is_dir() {
            continue;
        }
        match std::fs::remove_dir_all(e.path()) {
            Ok(()) => tracing::info!(topology = %id, "Removed a gone topology's work folder"),
            Err(err) => {
                tracing::warn!(topology = %id, error = %err, "Cannot remove a gone topology's work folder")
            }
        }
    }
}

/// What each of this supervisor's ports should run: (topology id, its assignment).
pub fn desired_ports<'a>(
    me: &str,
    assignments: &'a [(String, AssignmentRecord)],
) -> BTreeMap<u16, (&'a str, &'a AssignmentRecord)> {
    let mut desired = BTreeMap::new();
    for (id, a) in assignments {
        for e in a.executors.iter().filter(|e| e.supervisor == me) {
            desired.insert(e.port, (id.as_str(), a));
        }
    }
    desired
}

/// Running -> Empty when the assignment changed, went away, or an executor panicked.
async fn stop_if_changed<S: Store>(
    cfg: &SupervisorConfig,
    state: &ClusterState<S>,
    port: u16,
    slot: &mut Slot,
    want: Option<(&str, &AssignmentRecord)>,
) {
    let Slot::Running(w) = slot else { return };
    let same = want.is_some_and(|(id, a)| id == w.topology_id && a.executors == w.executors);
    let panicked = w.worker.has_panicked();
    if same && !panicked {
        return;
    }
    let Slot::Running(mut w) = std::mem::replace(slot, Slot::Empty) else {
        return;
    };
    report_errors(state, cfg, port, &mut w).await;
    let id = w.topology_id.clone();
    tracing::info!(topology = %id, port, panicked, "Stopping worker");
    let beat = tokio::task::block_in_place(|| w.stop_and_beat(&cfg.id, port));
    // Its last counters (Nimbus adds them to the topology's totals), and no live beat.
    let _ = state.set_workerbeat(&id, &beat).await;
    let _ = state.remove_workerbeat(&id, &cfg.id, port).await;
}

/// Empty -> Running, or Failed (retried after [`RETRY_AFTER`]) with the error filed under the
/// component that failed, or `__worker` when none did.
#[allow(clippy::too_many_arguments)]
async fn start_slot<S: Store>(
    cfg: &SupervisorConfig,
    state: &ClusterState<S>,
    follower: &mut Follower,
    port: u16,
    slot: &mut Slot,
    (id, a): (&str, &AssignmentRecord),
    active: bool,
    lease: &Lease,
) -> Result<(), cluster_state::StateError> {
    let Some(stored) = follower.topology(state, id).await? else {
        return Ok(());
    };
    match tokio::task::block_in_place(|| start(cfg, id, &stored, (a, port), lease)) {
        Ok(w) => {
            w.active.store(active, Ordering::SeqCst);
            tracing::info!(topology = %id, port, "Worker started");
            *slot = Slot::Running(Box::new(w));
        }
        Err(e) => {
            tracing::error!(topology = %id, port, error = %e, "Worker failed to start; retrying in 5 s");
            *slot = Slot::Failed(Instant::now());
            let entry = ErrorEntry {
                time_secs: now_secs(),
                task: 0,
                host: cfg.host.clone(),
                port,
                message: e.to_string(),
            };
            let component = e.component().unwrap_or("__worker");
            let _ = state.report_error(id, component, entry).await;
        }
    }
    Ok(())
}

/// A running worker's heartbeat: its executors' counters and terminal latencies.
fn heartbeat(me: &str, port: u16, w: &RunningWorker) -> WorkerBeat {
    WorkerBeat {
        time_secs: now_secs(),
        supervisor: me.to_owned(),
        port,
        uptime_secs: w.started.elapsed().as_secs(),
        executors: w
            .worker
            .executors
            .iter()
            .map(|h| {
                let c = h.stats.read();
                let lat = h.stats.latency.lock().unwrap_or_else(|p| p.into_inner());
                let q = |p: f64| {
                    lat.as_ref()
                        .filter(|x| !x.is_empty())
                        .map(|x| x.value_at_quantile(p))
                };
                ExecutorBeat {
                    start: h.executor.start,
                    end: h.executor.end,
                    component: h.component.clone(),
                    emitted: c.emitted,
                    executed: c.executed,
                    acked: c.acked,
                    failed: c.failed,
                    latency_p50_us: q(0.5),
                    latency_p99_us: q(0.99),
                    last_executed_us: Some(h.stats.last_executed_us.load(Ordering::Relaxed))
                        .filter(|t| *t > 0),
                    busy_us: c.busy_ns / 1000,
                    queue_depth: h.stats.queue_depth.load(Ordering::Relaxed),
                    complete_us: c.complete_us,
                    completed: c.completed,
                    latency_buckets: lat
                        .as_ref()
                        .filter(|x| !x.is_empty())
                        .map(|x| {
                            cluster_state::LATENCY_BUCKETS_US
                                .iter()
                                .map(|b| x.count_between(0, *b))
                                .collect()
                        })
                        .unwrap_or_default(),
                    latency_count: lat.as_ref().map_or(0, |x| x.len()),
                    latency_sum_us: lat
                        .as_ref()
                        .map_or(0, |x| (x.mean() * x.len() as f64) as u64),
                    gauges: h
                        .stats
                        .gauges
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone(),
                }
            })
            .collect(),
        stopped: None,
    }
}

async fn report_errors<S: Store>(
    state: &ClusterState<S>,
    cfg: &SupervisorConfig,
    port: u16,
    w: &mut RunningWorker,
) {
    let (count, errors) = w.worker.errors.snapshot();
    let new = count.saturating_sub(w.errors_reported) as usize;
    for e in errors.iter().rev().take(new.min(10)).rev() {
        let _ = state
            .report_error(
                &w.topology_id,
                &e.component,
                ErrorEntry {
                    time_secs: now_secs(),
                    task: e.task,
                    host: cfg.host.clone(),
                    port,
                    message: e.message.clone(),
                },
            )
            .await;
    }
    w.errors_reported = count;
}

/// Why a worker did not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// The runtime refused it; names the component when one failed.
    #[error(transparent)]
    Worker(#[from] RuntimeError),
    #[error("{0}")]
    Resources(String),
    #[error("{0}")]
    Network(String),
}

impl StartError {
    fn component(&self) -> Option<&str> {
        match self {
            StartError::Worker(e) => e.component(),
            _ => None,
        }
    }
}

/// Where this worker's executors are and how to reach the others'.
struct Routes {
    mine: BTreeSet<ExecutorId>,
    /// One address per executor of another worker: each gets its own connection (and sender
    /// thread). With one connection per worker pair, a full queue at the receiver stalls every
    /// tuple behind it in the stream, and two workers feeding each other (A's bolt -> B, B's
    /// bolt -> A) deadlock.
    addrs: Vec<SocketAddr>,
    /// Task of another worker -> index into `addrs`.
    remote_task_queue: BTreeMap<u32, usize>,
}

fn routes(me: &str, port: u16, a: &AssignmentRecord) -> Result<Routes, StartError> {
    let here = |e: &ExecutorSlot| e.supervisor == me && e.port == port;
    let mut r = Routes {
        mine: a
            .executors
            .iter()
            .filter(|e| here(e))
            .map(|e| ExecutorId {
                start: e.start,
                end: e.end,
            })
            .collect(),
        addrs: Vec::new(),
        remote_task_queue: BTreeMap::new(),
    };
    for e in a.executors.iter().filter(|e| !here(e)) {
        let host = a.hosts.get(&e.supervisor).unwrap_or(&e.supervisor);
        let addr = (host.as_str(), e.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut i| i.next())
            .ok_or_else(|| {
                StartError::Network(format!("cannot resolve worker address {host}:{}", e.port))
            })?;
        r.addrs.push(addr);
        for t in e.start..=e.end {
            r.remote_task_queue.insert(t, r.addrs.len() - 1);
        }
    }
    Ok(r)
}

/// Starting: unpack resources, bind the slot's port, start senders, executors and the listener.
fn start(
    cfg: &SupervisorConfig,
    id: &str,
    stored: &cluster_state::StoredTopology,
    (a, port): (&AssignmentRecord, u16),
    lease: &Lease,
) -> Result<RunningWorker, StartError> {
    let topology: Arc<Topology> = Arc::new(stored.topology.clone());
    let resources_dir =
        unpack_resources(cfg, id, &stored.resources).map_err(StartError::Resources)?;
    let net = |m: String| StartError::Network(m);
    let bind = (cfg.host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| net(format!("cannot resolve {}:{port}: {e}", cfg.host)))?
        .next()
        .ok_or_else(|| net(format!("no address for {}:{port}", cfg.host)))?;
    let listener =
        TcpListener::bind(bind).map_err(|e| net(format!("cannot listen on {bind}: {e}")))?;
    let routes = routes(&cfg.id, port, a)?;
    let stop = Arc::new(AtomicBool::new(false));
    let active = Arc::new(AtomicBool::new(false));
    let rcfg = worker::runtime::RuntimeConfig::from_topology(&topology);
    let transfer = topology
        .config_u64(flux::keys::TRANSFER_BUFFER_SIZE, 16_384)
        .div_ceil(rcfg.transfer_batch_size as u64)
        .max(2) as usize;
    let (remote_queues, mut threads) = transport::start_senders(
        &routes.addrs,
        transfer,
        stop.clone(),
        cfg.cluster_secret.clone(),
    );
    let started = start_worker(WorkerSpec {
        topology: topology.clone(),
        registry: &cfg.registry,
        resources_dir,
        cleanup: true,
        stop: stop.clone(),
        placement: Some(Placement {
            local: routes.mine,
            remote_task_queue: routes.remote_task_queue,
            remote_queues,
        }),
        active: active.clone(),
        lease: lease.clone(),
    });
    let (worker, inbound) = match started {
        Ok(x) => x,
        Err(e) => {
            stop.store(true, Ordering::SeqCst);
            for t in threads {
                let _ = t.join();
            }
            return Err(e.into());
        }
    };
    let secret = cfg.cluster_secret.clone();
    let listening =
        transport::start_listener(listener, topology, Arc::new(inbound), stop.clone(), secret)
            .map_err(|e| net(format!("cannot start the listener on port {port}: {e}")))?;
    threads.push(listening);
    Ok(RunningWorker {
        topology_id: id.to_owned(),
        executors: a.executors.clone(),
        worker,
        stop,
        active,
        threads,
        started: Instant::now(),
        errors_reported: 0,
        last_beat: None,
    })
}

fn unpack_resources(
    cfg: &SupervisorConfig,
    id: &str,
    files: &[(String, Vec<u8>)],
) -> Result<PathBuf, String> {
    let dir = cfg.work_dir.join(id).join("resources");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Every name is checked before anything is written: a name Nimbus should have refused never
    // reaches outside this topology's folder.
    for (rel, _) in files {
        cluster_state::check_resource_name(rel).map_err(|e| format!("refusing resources: {e}"))?;
    }
    for (rel, data) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&p, data).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    Ok(dir)
}
