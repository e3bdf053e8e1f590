//! The Supervisor daemon: registers its slots (and the class names its registry can construct) in
//! ZooKeeper, runs the workers Nimbus assigns to them, and reports heartbeats and errors.
//!
//! Each slot (port) is a state machine ([`Slot`]), driven by one `sync` pass every second or
//! whenever assignments change. Starting and stopping happen within one pass:
//!
//! ```text
//! Empty --assigned, started--> Running --assignment changed/removed, or a component panicked--> Empty
//!   \--assigned, failed to start--> Failed --RETRY_AFTER passed--> Empty (tried again)
//! ```
//!
//! A worker is the `worker` runtime (executor threads) plus a TCP listener on the slot's port and a
//! sender thread per remote executor. ZooKeeper being unreachable never stops running workers.

use cluster_state::{
    AssignmentRecord, ClusterState, ErrorEntry, ExecutorBeat, ExecutorSlot, Store,
    SupervisorRecord, TopologyStatus, WorkerBeat, now_secs, paths,
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
use worker::runtime::{Placement, Worker, WorkerSpec, start_worker};
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
    pub sync_interval: Duration,
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
}

impl RunningWorker {
    /// Stopping: spouts stop, the listener closes (so bolts see the end of remote input), bolts
    /// drain their queues and run cleanup, senders finish.
    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.worker.join();
        for t in self.threads.drain(..) {
            let _ = t.join();
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
    tokio::pin!(shutdown);
    tracing::info!(id = %cfg.id, host = %cfg.host, ports = ?cfg.ports, "Supervisor started");
    loop {
        if let Err(e) = sync(&cfg, &state, &mut slots, started).await {
            tracing::warn!(error = %e, "Cannot sync with ZooKeeper; running workers keep running");
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = state.changed(paths::ASSIGNMENTS) => {}
            _ = tokio::time::sleep(cfg.sync_interval) => {}
        }
    }
    tracing::info!(id = %cfg.id, "Supervisor stopping its workers");
    for (_, s) in std::mem::take(&mut slots) {
        if let Slot::Running(w) = s {
            tokio::task::block_in_place(|| w.stop());
        }
    }
}

async fn sync<S: Store>(
    cfg: &SupervisorConfig,
    state: &ClusterState<S>,
    slots: &mut BTreeMap<u16, Slot>,
    started: u64,
) -> Result<(), cluster_state::StateError> {
    let used: Vec<u16> = slots
        .iter()
        .filter(|(_, s)| matches!(s, Slot::Running(_)))
        .map(|(p, _)| *p)
        .collect();
    // Re-creating the ephemeral node every pass also restores it after a new ZooKeeper session.
    state
        .register_supervisor(&SupervisorRecord {
            id: cfg.id.clone(),
            host: cfg.host.clone(),
            ports: cfg.ports.clone(),
            used_ports: used,
            start_time_secs: started,
            version: env!("CARGO_PKG_VERSION").into(),
            classes: Some(cfg.registry.runnable_names()),
        })
        .await?;
    let assignments = state.assignments().await?;
    let storms: BTreeMap<String, _> = state.storms().await?.into_iter().collect();

    // What each of my ports should run.
    let mut desired: BTreeMap<u16, (&str, &AssignmentRecord)> = BTreeMap::new();
    for (id, a) in &assignments {
        for e in a.executors.iter().filter(|e| e.supervisor == cfg.id) {
            desired.insert(e.port, (id.as_str(), a));
        }
    }

    for (&port, slot) in slots.iter_mut() {
        let want = desired.get(&port);
        // Running -> Stopping when the assignment changed, went away, or an executor panicked.
        if let Slot::Running(w) = slot {
            let same =
                want.is_some_and(|(id, a)| *id == w.topology_id && a.executors == w.executors);
            let panicked = w.worker.has_panicked();
            if (!same || panicked)
                && let Slot::Running(mut w) = std::mem::replace(slot, Slot::Empty)
            {
                report_errors(state, cfg, port, &mut w).await;
                let id = w.topology_id.clone();
                tracing::info!(topology = %id, port, panicked, "Stopping worker");
                tokio::task::block_in_place(|| w.stop());
                let _ = state.remove_workerbeat(&id, &cfg.id, port).await;
            }
        }
        if matches!(slot, Slot::Failed(at) if at.elapsed() >= RETRY_AFTER || want.is_none()) {
            *slot = Slot::Empty;
        }
        // Empty -> Starting -> Running.
        if let (Slot::Empty, Some((id, a))) = (&*slot, want) {
            let Some(stored) = state.topology(id).await? else {
                continue;
            };
            let status = storms.get(*id).map(|s| s.status);
            match tokio::task::block_in_place(|| start(cfg, id, &stored, a, port)) {
                Ok(w) => {
                    w.active
                        .store(status == Some(TopologyStatus::Active), Ordering::SeqCst);
                    tracing::info!(topology = %id, port, "Worker started");
                    *slot = Slot::Running(Box::new(w));
                }
                Err(e) => {
                    tracing::error!(topology = %id, port, error = %e, "Worker failed to start; retrying in 5 s");
                    *slot = Slot::Failed(Instant::now());
                    // Filed under the component that failed when the error names one.
                    let component = stored
                        .topology
                        .components()
                        .map(|c| c.id.as_str())
                        .find(|c| e.starts_with(&format!("component \"{c}\"")))
                        .unwrap_or("__worker")
                        .to_owned();
                    let _ = state
                        .report_error(
                            id,
                            &component,
                            ErrorEntry {
                                time_secs: now_secs(),
                                task: 0,
                                host: cfg.host.clone(),
                                port,
                                message: e,
                            },
                        )
                        .await;
                }
            }
        }
        // Running: follow activate/deactivate, report errors and heartbeats.
        if let Slot::Running(w) = slot {
            let status = storms.get(&w.topology_id).map(|s| s.status);
            w.active
                .store(status == Some(TopologyStatus::Active), Ordering::SeqCst);
            report_errors(state, cfg, port, w).await;
            let beat = WorkerBeat {
                time_secs: now_secs(),
                supervisor: cfg.id.clone(),
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
                            last_executed_us: Some(
                                h.stats.last_executed_us.load(Ordering::Relaxed),
                            )
                            .filter(|t| *t > 0),
                        }
                    })
                    .collect(),
            };
            state.set_workerbeat(&w.topology_id, &beat).await?;
        }
    }
    Ok(())
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

/// Starting: unpack resources, bind the slot's port, start senders, executors and the listener.
fn start(
    cfg: &SupervisorConfig,
    id: &str,
    stored: &cluster_state::StoredTopology,
    a: &AssignmentRecord,
    port: u16,
) -> Result<RunningWorker, String> {
    let topology: Arc<Topology> = Arc::new(stored.topology.clone());
    let resources_dir = unpack_resources(cfg, id, &stored.resources)?;
    let bind = (cfg.host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}:{port}: {e}", cfg.host))?
        .next()
        .ok_or_else(|| format!("no address for {}:{port}", cfg.host))?;
    let listener = TcpListener::bind(bind).map_err(|e| format!("cannot listen on {bind}: {e}"))?;

    let mine: BTreeSet<ExecutorId> = a
        .executors
        .iter()
        .filter(|e| e.supervisor == cfg.id && e.port == port)
        .map(|e| ExecutorId {
            start: e.start,
            end: e.end,
        })
        .collect();
    // Executors of other workers. Each gets its own connection (and sender thread): with one
    // connection per worker pair, a full queue at the receiver stalls every tuple behind it in the
    // stream, and two workers feeding each other (A's bolt -> B, B's bolt -> A) deadlock.
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut remote_task_queue = BTreeMap::new();
    for e in a
        .executors
        .iter()
        .filter(|e| !(e.supervisor == cfg.id && e.port == port))
    {
        let host = a
            .hosts
            .get(&e.supervisor)
            .cloned()
            .unwrap_or_else(|| e.supervisor.clone());
        let Some(addr) = (host.as_str(), e.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut i| i.next())
        else {
            return Err(format!("cannot resolve worker address {host}:{}", e.port));
        };
        addrs.push(addr);
        let q = addrs.len() - 1;
        for t in e.start..=e.end {
            remote_task_queue.insert(t, q);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let active = Arc::new(AtomicBool::new(false));
    let rcfg = worker::runtime::RuntimeConfig::from_topology(&topology);
    let transfer = topology
        .config_u64(flux::keys::TRANSFER_BUFFER_SIZE, 16_384)
        .div_ceil(rcfg.transfer_batch_size as u64)
        .max(2) as usize;
    let (remote_queues, mut threads) = transport::start_senders(&addrs, transfer, stop.clone());
    let (worker, inbound) = match start_worker(WorkerSpec {
        topology: topology.clone(),
        registry: &cfg.registry,
        resources_dir,
        cleanup: true,
        stop: stop.clone(),
        placement: Some(Placement {
            local: mine,
            remote_task_queue,
            remote_queues,
        }),
        active: active.clone(),
    }) {
        Ok(x) => x,
        Err(e) => {
            stop.store(true, Ordering::SeqCst);
            for t in threads {
                let _ = t.join();
            }
            return Err(e.to_string());
        }
    };
    match transport::start_listener(listener, topology, Arc::new(inbound), stop.clone()) {
        Ok(h) => threads.push(h),
        Err(e) => return Err(format!("cannot start the listener on port {port}: {e}")),
    }
    Ok(RunningWorker {
        topology_id: id.to_owned(),
        executors: a.executors.clone(),
        worker,
        stop,
        active,
        threads,
        started: Instant::now(),
        errors_reported: 0,
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
