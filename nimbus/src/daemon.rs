//! The Nimbus daemon: the submission API (HTTP + JSON, axum), leader election, and the assignment
//! loop that runs the scheduler on every change and writes assignments to ZooKeeper.
//!
//! State lives only in ZooKeeper: a restarted Nimbus resumes from it, and running topologies keep
//! running while no Nimbus is up (supervisors keep their workers).

use crate::scheduler::{
    Assignment, ClusterSnapshot, Slot, SupervisorInfo, TopologyRequest, check_runnable, schedule,
};
use crate::view::{ClusterView, ComponentStats, SupervisorView, topology_view};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cluster_state::{
    AssignmentRecord, ClusterState, ExecutorSlot, NimbusRecord, StateError, Store, StoredTopology,
    StormRecord, TopologyStatus, now_secs, paths,
};
use flux::Topology;
use flux::layout::{ExecutorId, task_layout};
use flux::{Foreign, keys, load_submitted};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use topology_api::Registry;

/// How Nimbus runs.
#[derive(Clone, Debug)]
pub struct NimbusConfig {
    /// Where the API listens (default 127.0.0.1:6627).
    pub listen: SocketAddr,
    /// How often the assignment loop runs when nothing wakes it earlier.
    pub interval: Duration,
    pub registry: Registry,
    /// A worker whose heartbeat is older than this is dead: its slot is not used and its
    /// executors move (Storm's `nimbus.task.timeout.secs`, default 30).
    pub worker_timeout: Duration,
}

/// Why Nimbus could not run.
#[derive(Debug, thiserror::Error)]
pub enum NimbusError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the API server failed: {0}")]
    Serve(#[source] std::io::Error),
}

struct Shared<S> {
    state: Arc<ClusterState<S>>,
    registry: Registry,
    address: String,
    worker_timeout: Duration,
    leader: AtomicBool,
    wake: tokio::sync::Notify,
}

/// Runs Nimbus until `shutdown` resolves. The listener is bound before this returns an error, so
/// a port clash is reported at once.
pub async fn run<S: Store>(
    cfg: NimbusConfig,
    state: Arc<ClusterState<S>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), NimbusError> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| NimbusError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(NimbusError::Serve)?;
    let shared = Arc::new(Shared {
        state,
        registry: cfg.registry.clone(),
        address: local.to_string(),
        worker_timeout: cfg.worker_timeout,
        leader: AtomicBool::new(false),
        wake: tokio::sync::Notify::new(),
    });
    tracing::info!(listen = %local, "Nimbus started");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let loop_task = tokio::spawn(assignment_loop(shared.clone(), cfg.interval, stop_rx));
    let app = api(shared.clone());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(NimbusError::Serve);
    let _ = stop_tx.send(true);
    let _ = loop_task.await;
    served
}

async fn assignment_loop<S: Store>(
    shared: Arc<Shared<S>>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let started = now_secs();
    loop {
        let leading = async {
            shared
                .state
                .register_nimbus(&NimbusRecord {
                    address: shared.address.clone(),
                    start_time_secs: started,
                    version: env!("CARGO_PKG_VERSION").into(),
                })
                .await?;
            shared.state.try_lead(&shared.address).await
        }
        .await;
        match leading {
            Ok(true) => {
                if !shared.leader.swap(true, Ordering::SeqCst) {
                    tracing::info!(address = %shared.address, "This Nimbus is the leader");
                }
                if let Err(e) = reconcile(&shared.state, shared.worker_timeout).await {
                    tracing::warn!(error = %e, "Assignment pass failed; retrying");
                }
            }
            Ok(false) => {
                if shared.leader.swap(false, Ordering::SeqCst) {
                    tracing::warn!("Lost leadership");
                }
            }
            Err(e) => {
                shared.leader.store(false, Ordering::SeqCst);
                tracing::warn!(error = %e, "Cannot reach ZooKeeper");
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = shared.wake.notified() => {}
            _ = shared.state.changed(paths::SUPERVISORS) => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// The scheduler's view of the registered supervisors, without the `dead` slots.
fn snapshot(
    supervisors: &[cluster_state::SupervisorRecord],
    dead: &[(String, u16)],
) -> ClusterSnapshot {
    ClusterSnapshot {
        supervisors: supervisors
            .iter()
            .map(|s| SupervisorInfo {
                id: s.id.clone(),
                host: s.host.clone(),
                ports: s
                    .ports
                    .iter()
                    .copied()
                    .filter(|p| !dead.iter().any(|(sup, port)| *sup == s.id && port == p))
                    .collect(),
                classes: s.classes.as_ref().map(|c| c.iter().cloned().collect()),
            })
            .collect(),
    }
}

/// The topology as it runs now: rebalanced worker and executor counts applied.
pub fn effective_topology(stored: &Topology, storm: &StormRecord) -> Topology {
    let mut t = stored.clone();
    let acker_default = !t.config.contains_key(keys::ACKER_EXECUTORS);
    t.config.insert(keys::WORKERS.into(), storm.workers.into());
    if acker_default {
        // Storm's default is one acker per worker; keep following the worker count.
        t.config
            .insert(keys::ACKER_EXECUTORS.into(), storm.workers.into());
    }
    for (c, n) in &storm.component_executors {
        if let Some(def) = t.component_mut(c) {
            def.parallelism = (*n).clamp(1, def.num_tasks);
        }
    }
    t
}

fn to_assignment(r: &AssignmentRecord) -> Assignment {
    r.executors
        .iter()
        .map(|e| {
            (
                ExecutorId {
                    start: e.start,
                    end: e.end,
                },
                Slot {
                    supervisor: e.supervisor.clone(),
                    port: e.port,
                },
            )
        })
        .collect()
}

/// One pass of the assignment loop: timed actions (kill, rebalance), then the scheduler.
async fn reconcile<S: Store>(
    state: &ClusterState<S>,
    worker_timeout: Duration,
) -> Result<(), StateError> {
    let now = now_secs();
    let supervisors = state.supervisors().await?;
    let mut storms = state.storms().await?;
    // Slots whose worker heartbeat stopped are dead even if their supervisor is still registered
    // (e.g. its sync loop hangs): leave them out, so their executors move.
    let mut dead: Vec<(String, u16)> = Vec::new();
    for (id, _) in &storms {
        let assigned = state.assignment(id).await?.unwrap_or_default();
        for b in state.workerbeats(id).await? {
            // Only beats of workers that should be running count; a dead supervisor's leftovers
            // would otherwise keep its slots out after it comes back.
            let live = supervisors.iter().any(|s| s.id == b.supervisor)
                && assigned
                    .executors
                    .iter()
                    .any(|e| e.supervisor == b.supervisor && e.port == b.port);
            if live && now.saturating_sub(b.time_secs) > worker_timeout.as_secs() {
                tracing::warn!(topology = %id, supervisor = %b.supervisor, port = b.port, "Worker heartbeat stopped; moving its executors");
                dead.push((b.supervisor, b.port));
            }
        }
    }
    let cluster = snapshot(&supervisors, &dead);
    storms.sort_by_key(|(id, s)| (s.launch_time_secs, id.clone()));
    let mut requests = Vec::new();
    let mut topologies = BTreeMap::new();
    for (id, mut storm) in storms {
        let due = storm.action_at_secs.is_some_and(|t| t <= now);
        let mut current = state
            .assignment(&id)
            .await?
            .map(|a| to_assignment(&a))
            .unwrap_or_default();
        match storm.status {
            TopologyStatus::Killed if due => {
                tracing::info!(topology = %id, "Removing killed topology");
                state.remove_topology(&id).await?;
                continue;
            }
            TopologyStatus::Rebalancing if due => {
                storm.status = storm.prev_status.take().unwrap_or(TopologyStatus::Active);
                storm.action_at_secs = None;
                state.set_storm(&id, &storm).await?;
                // A rebalance re-spreads everything.
                current.clear();
                tracing::info!(topology = %id, workers = storm.workers, "Rebalancing");
            }
            _ => {}
        }
        let Some(stored) = state.topology(&id).await? else {
            continue;
        };
        let topo = effective_topology(&stored.topology, &storm);
        let layout = task_layout(&topo, topo.acker_executors());
        requests.push(TopologyRequest {
            id: id.clone(),
            workers: storm.workers,
            executors: layout
                .iter()
                .flat_map(|c| c.executors.iter().copied())
                .collect(),
            current,
            classes: topo.components().map(|c| c.class_name.clone()).collect(),
        });
        topologies.insert(id, ());
    }
    let out = schedule(&cluster, &requests);
    for r in &requests {
        let Some(new) = out.get(&r.id) else { continue };
        if *new == r.current && !r.current.is_empty() {
            continue;
        }
        let old = state.assignment(&r.id).await?.unwrap_or_default();
        let mut rec = AssignmentRecord {
            executors: new
                .iter()
                .map(|(e, s)| ExecutorSlot {
                    start: e.start,
                    end: e.end,
                    supervisor: s.supervisor.clone(),
                    port: s.port,
                })
                .collect(),
            hosts: BTreeMap::new(),
            start_times: BTreeMap::new(),
        };
        if rec.executors == old.executors {
            continue;
        }
        for e in &rec.executors {
            if let Some(s) = supervisors.iter().find(|s| s.id == e.supervisor) {
                rec.hosts.insert(s.id.clone(), s.host.clone());
            }
            let key = format!("{}-{}", e.start, e.end);
            let kept = old.executors.iter().any(|o| o == e);
            let t = if kept {
                old.start_times.get(&key).copied().unwrap_or(now)
            } else {
                now
            };
            rec.start_times.insert(key, t);
        }
        tracing::info!(topology = %r.id, executors = rec.executors.len(), "Writing assignment");
        state.set_assignment(&r.id, &rec).await?;
    }
    Ok(())
}

// ---- The API ----

fn api<S: Store>(shared: Arc<Shared<S>>) -> Router {
    Router::new()
        .route("/api/v1/gale/topologies", post(submit::<S>).get(list::<S>))
        .route("/api/v1/gale/status", get(status::<S>))
        .route("/api/v1/topology/{id}/activate", post(activate::<S>))
        .route("/api/v1/topology/{id}/deactivate", post(deactivate::<S>))
        .route("/api/v1/topology/{id}/kill/{wait}", post(kill::<S>))
        .route(
            "/api/v1/topology/{id}/rebalance/{wait}",
            post(rebalance::<S>),
        )
        // Storm UI's read paths (docs/contract.md §10), for tools written against Storm.
        .route("/api/v1/cluster/summary", get(ui_cluster::<S>))
        .route("/api/v1/cluster/configuration", get(ui_configuration::<S>))
        .route("/api/v1/supervisor/summary", get(ui_supervisors::<S>))
        .route("/api/v1/nimbus/summary", get(ui_nimbus::<S>))
        .route("/api/v1/topology/summary", get(ui_topologies::<S>))
        .route("/api/v1/topology/{id}", get(ui_topology::<S>))
        .route(
            "/api/v1/topology/{id}/component/{component}",
            get(ui_component::<S>),
        )
        .route("/metrics", get(metrics::<S>))
        .with_state(shared)
}

async fn ui_cluster<S: Store>(
    State(s): State<Arc<Shared<S>>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(crate::storm_ui::cluster_summary(
        &cluster_view(&s.state).await?,
    )))
}

async fn ui_configuration<S: Store>(State(s): State<Arc<Shared<S>>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "storm.version": crate::storm_ui::VERSION,
        "nimbus.seeds": [s.address],
        "supervisor.worker.timeout.secs": s.worker_timeout.as_secs(),
    }))
}

async fn ui_supervisors<S: Store>(
    State(s): State<Arc<Shared<S>>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(crate::storm_ui::supervisor_summary(
        &cluster_view(&s.state).await?,
    )))
}

async fn ui_nimbus<S: Store>(State(s): State<Arc<Shared<S>>>) -> Json<serde_json::Value> {
    Json(crate::storm_ui::nimbus_summary(
        &s.address,
        s.leader.load(Ordering::SeqCst),
    ))
}

async fn ui_topologies<S: Store>(
    State(s): State<Arc<Shared<S>>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(crate::storm_ui::topology_summary(
        &cluster_view(&s.state).await?,
    )))
}

fn no_topology(id: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no topology \"{id}\" is running; GET /api/v1/topology/summary lists them"),
    )
}

async fn ui_topology<S: Store>(
    State(s): State<Arc<Shared<S>>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let v = cluster_view(&s.state).await?;
    crate::storm_ui::topology_page(&v, &id)
        .map(Json)
        .ok_or_else(|| no_topology(&id))
}

async fn ui_component<S: Store>(
    State(s): State<Arc<Shared<S>>>,
    Path((id, component)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let v = cluster_view(&s.state).await?;
    if crate::storm_ui::topology_page(&v, &id).is_none() {
        return Err(no_topology(&id));
    }
    crate::storm_ui::component_page(&v, &id, &component)
        .map(Json)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("topology \"{id}\" has no component \"{component}\""),
            )
        })
}

async fn metrics<S: Store>(State(s): State<Arc<Shared<S>>>) -> Result<Response, ApiError> {
    let text = crate::storm_ui::prometheus(&cluster_view(&s.state).await?);
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response())
}

/// An API error: a status code and `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        let code = if e.is_unavailable() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError(code, e.to_string())
    }
}

fn require_leader<S: Store>(s: &Shared<S>) -> Result<(), ApiError> {
    if s.leader.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "this Nimbus ({}) is not the leader (or cannot reach ZooKeeper); send changes to the leader",
                s.address
            ),
        ))
    }
}

/// A submission: the YAML as the CLI substituted it, shipped resources, and the topology as the
/// submitting binary validated it (Nimbus takes from it only the declared streams of classes its
/// own registry lacks and some live supervisor advertises).
#[derive(Debug, Serialize, Deserialize)]
pub struct SubmitRequest {
    pub file: String,
    pub yaml: String,
    #[serde(default)]
    pub resources: Vec<(String, Vec<u8>)>,
    #[serde(default)]
    pub validated: Option<Topology>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SubmitResponse {
    pub id: String,
}

async fn submit<S: Store>(
    State(s): State<Arc<Shared<S>>>,
    Json(req): Json<SubmitRequest>,
) -> Result<Json<SubmitResponse>, ApiError> {
    require_leader(&s)?;
    for (name, _) in &req.resources {
        cluster_state::check_resource_name(name)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    }
    // Validated again here: Nimbus does not trust its clients. Classes only the supervisors'
    // binaries have are taken as the client declared them; the supervisor that constructs them
    // is the judge of those.
    let supervisors: Vec<SupervisorInfo> = snapshot(&s.state.supervisors().await?, &[]).supervisors;
    let foreign = Foreign {
        classes: supervisors
            .iter()
            .filter_map(|s| s.classes.as_ref())
            .flatten()
            .filter(|c| s.registry.resolve(c).is_none())
            .cloned()
            .collect(),
        components: req
            .validated
            .iter()
            .flat_map(|t| t.components())
            .map(|c| (c.id.clone(), c.clone()))
            .collect(),
    };
    let loaded = load_submitted(&req.file, req.yaml.as_bytes(), &s.registry, &foreign)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let topo = loaded.topology;
    let needed = topo.components().map(|c| c.class_name.clone()).collect();
    check_runnable(&needed, &supervisors, |c| s.registry.resolve(c).is_some())
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let storms = s.state.storms().await?;
    if let Some((id, _)) = storms.iter().find(|(_, r)| r.name == topo.name) {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "topology \"{}\" is already running as {id}; kill it first or choose another name",
                topo.name
            ),
        ));
    }
    let now = now_secs();
    let counter = storms.len() + 1;
    let id = format!("{}-{counter}-{now}", topo.name);
    let storm = StormRecord {
        name: topo.name.clone(),
        status: TopologyStatus::Active,
        launch_time_secs: now,
        workers: topo.workers(),
        component_executors: topo
            .components()
            .map(|c| (c.id.clone(), c.parallelism))
            .collect(),
        action_at_secs: None,
        prev_status: None,
    };
    s.state
        .set_topology(
            &id,
            &StoredTopology {
                topology: topo,
                resources: req.resources,
            },
        )
        .await?;
    s.state.set_storm(&id, &storm).await?;
    tracing::info!(topology = %id, "Topology submitted");
    s.wake.notify_one();
    Ok(Json(SubmitResponse { id }))
}

/// A row of `gale list`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TopologyRow {
    pub name: String,
    pub status: String,
    pub num_tasks: u32,
    pub num_workers: u32,
    pub uptime_secs: u64,
    pub id: String,
}

async fn list<S: Store>(
    State(s): State<Arc<Shared<S>>>,
) -> Result<Json<Vec<TopologyRow>>, ApiError> {
    let view = cluster_view(&s.state).await?;
    Ok(Json(
        view.topologies
            .into_iter()
            .map(|t| TopologyRow {
                name: t.name,
                status: t.status,
                num_tasks: t.tasks,
                num_workers: t.workers,
                uptime_secs: t.uptime_secs,
                id: t.id,
            })
            .collect(),
    ))
}

async fn status<S: Store>(State(s): State<Arc<Shared<S>>>) -> Result<Json<ClusterView>, ApiError> {
    Ok(Json(cluster_view(&s.state).await?))
}

/// The whole cluster as docs/contract.md §7 shows it, with per-component stats from worker heartbeats.
pub async fn cluster_view<S: Store>(state: &ClusterState<S>) -> Result<ClusterView, StateError> {
    let supervisors = state.supervisors().await?;
    let cluster = snapshot(&supervisors, &[]);
    let mut storms = state.storms().await?;
    storms.sort_by_key(|(id, s)| (s.launch_time_secs, id.clone()));
    let now = now_secs();
    let mut topologies = Vec::new();
    for (id, storm) in &storms {
        let Some(stored) = state.topology(id).await? else {
            continue;
        };
        let topo = effective_topology(&stored.topology, storm);
        let layout = task_layout(&topo, topo.acker_executors());
        let assignment = state
            .assignment(id)
            .await?
            .map(|a| to_assignment(&a))
            .unwrap_or_default();
        let mut v = topology_view(
            id,
            &topo,
            &layout,
            &assignment,
            &cluster,
            storm.status.as_str(),
            now.saturating_sub(storm.launch_time_secs),
        );
        // Only workers of the current assignment count: a dead supervisor's last beat stays in
        // ZooKeeper until the topology goes.
        let beats: Vec<_> = state
            .workerbeats(id)
            .await?
            .into_iter()
            .filter(|b| {
                assignment
                    .values()
                    .any(|s| s.supervisor == b.supervisor && s.port == b.port)
            })
            .collect();
        for c in &mut v.components {
            let mut st = ComponentStats::default();
            for b in &beats {
                for e in b.executors.iter().filter(|e| e.component == c.id) {
                    st.emitted += e.emitted;
                    st.executed += e.executed;
                    st.acked += e.acked;
                    st.failed += e.failed;
                    let worst = |cur: Option<f64>, us: Option<u64>| match (cur, us) {
                        (c, None) => c,
                        (None, Some(u)) => Some(u as f64 / 1000.0),
                        (Some(c), Some(u)) => Some(c.max(u as f64 / 1000.0)),
                    };
                    st.latency_p50_ms = worst(st.latency_p50_ms, e.latency_p50_us);
                    st.latency_p99_ms = worst(st.latency_p99_ms, e.latency_p99_us);
                    st.last_executed_us = st.last_executed_us.max(e.last_executed_us);
                }
            }
            c.stats = Some(st);
        }
        for (component, rec) in state.errors(id).await? {
            let Some(e) = rec.errors.last() else { continue };
            let msg = format!("task {} on {}:{}: {}", e.task, e.host, e.port, e.message);
            match v.components.iter_mut().find(|c| c.id == component) {
                Some(c) => c.last_error = Some(msg),
                None => {
                    tracing::debug!(component, "Error for a component not in the layout: {msg}")
                }
            }
        }
        topologies.push(v);
    }
    Ok(ClusterView {
        supervisors: supervisors
            .into_iter()
            .map(|s| SupervisorView {
                id: s.id,
                host: s.host,
                ports: s.ports,
                used_ports: s.used_ports,
            })
            .collect(),
        topologies,
    })
}

/// Finds a topology by id or by name.
async fn resolve<S: Store>(
    state: &ClusterState<S>,
    key: &str,
) -> Result<(String, StormRecord), ApiError> {
    let storms = state.storms().await?;
    let names: Vec<String> = storms.iter().map(|(_, s)| s.name.clone()).collect();
    storms
        .into_iter()
        .find(|(id, s)| id == key || s.name == key)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "no topology named \"{key}\" (running: {})",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ActionResponse {
    pub id: String,
    pub status: String,
}

async fn set_status<S: Store>(
    s: &Shared<S>,
    key: &str,
    status: TopologyStatus,
) -> Result<Json<ActionResponse>, ApiError> {
    require_leader(s)?;
    let (id, mut storm) = resolve(&s.state, key).await?;
    if matches!(storm.status, TopologyStatus::Killed) {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("topology {id} is being killed"),
        ));
    }
    storm.status = status;
    s.state.set_storm(&id, &storm).await?;
    s.wake.notify_one();
    Ok(Json(ActionResponse {
        id,
        status: status.as_str().into(),
    }))
}

async fn activate<S: Store>(
    State(s): State<Arc<Shared<S>>>,
    Path(id): Path<String>,
) -> Result<Json<ActionResponse>, ApiError> {
    set_status(&s, &id, TopologyStatus::Active).await
}

async fn deactivate<S: Store>(
    State(s): State<Arc<Shared<S>>>,
    Path(id): Path<String>,
) -> Result<Json<ActionResponse>, ApiError> {
    set_status(&s, &id, TopologyStatus::Inactive).await
}

async fn kill<S: Store>(
    State(s): State<Arc<Shared<S>>>,
    Path((key, wait)): Path<(String, String)>,
) -> Result<Json<ActionResponse>, ApiError> {
    require_leader(&s)?;
    let (id, mut storm) = resolve(&s.state, &key).await?;
    let default_wait = match s.state.topology(&id).await? {
        Some(t) => t.topology.config_u64(keys::MESSAGE_TIMEOUT_SECS, 30),
        None => 30,
    };
    let wait: u64 = wait.parse().unwrap_or(default_wait);
    // Storm: deactivate (spouts stop), wait, then remove.
    storm.status = TopologyStatus::Killed;
    storm.action_at_secs = Some(now_secs() + wait);
    s.state.set_storm(&id, &storm).await?;
    s.wake.notify_one();
    tracing::info!(topology = %id, wait, "Killing topology");
    Ok(Json(ActionResponse {
        id,
        status: "KILLED".into(),
    }))
}

/// Body of a rebalance: new worker count and executor counts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RebalanceRequest {
    #[serde(default)]
    pub workers: Option<u32>,
    #[serde(default)]
    pub executors: BTreeMap<String, u32>,
}

async fn rebalance<S: Store>(
    State(s): State<Arc<Shared<S>>>,
    Path((key, wait)): Path<(String, String)>,
    body: Option<Json<RebalanceRequest>>,
) -> Result<Json<ActionResponse>, ApiError> {
    require_leader(&s)?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let (id, mut storm) = resolve(&s.state, &key).await?;
    let stored = s.state.topology(&id).await?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("topology {id} has no stored definition"),
        )
    })?;
    for (c, n) in &req.executors {
        let Some(def) = stored.topology.component(c) else {
            let known: Vec<&str> = stored
                .topology
                .components()
                .map(|c| c.id.as_str())
                .collect();
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("unknown component \"{c}\" (known: {})", known.join(", ")),
            ));
        };
        if *n < 1 || *n > def.num_tasks {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!(
                    "component \"{c}\" has {} tasks, so its executors must be between 1 and {}",
                    def.num_tasks, def.num_tasks
                ),
            ));
        }
        storm.component_executors.insert(c.clone(), *n);
    }
    if let Some(w) = req.workers {
        if w < 1 {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "workers must be at least 1".into(),
            ));
        }
        storm.workers = w;
    }
    let wait: u64 = wait
        .parse()
        .unwrap_or(stored.topology.config_u64(keys::MESSAGE_TIMEOUT_SECS, 30));
    if storm.status != TopologyStatus::Rebalancing {
        storm.prev_status = Some(storm.status);
    }
    storm.status = TopologyStatus::Rebalancing;
    storm.action_at_secs = Some(now_secs() + wait);
    s.state.set_storm(&id, &storm).await?;
    s.wake.notify_one();
    Ok(Json(ActionResponse {
        id,
        status: "REBALANCING".into(),
    }))
}
