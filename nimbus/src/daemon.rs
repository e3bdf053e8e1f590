//! The Nimbus daemon's wiring: the HTTP server ([`crate::api`]), leader election, and the loop
//! that runs an assignment pass ([`crate::reconcile`]) on every change.
//!
//! State lives only in ZooKeeper: a restarted Nimbus resumes from it, and running topologies keep
//! running while no Nimbus is up (supervisors keep their workers).

use cluster_state::{ClusterState, NimbusRecord, Store, now_secs, paths};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use topology_api::Registry;

pub use crate::api::{
    ActionResponse, ApiError, RebalanceRequest, SubmitRequest, SubmitResponse, TopologyRow,
};
pub use crate::reconcile::{cluster_view, effective_topology};

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
    /// With a token, every submission and action needs `Authorization: Bearer TOKEN`
    /// (docs/security.md); read paths stay open.
    pub auth_token: Option<String>,
    /// Most open API connections, and how long a silent one stays.
    pub http: crate::listener::Bounds,
    /// How long a supervisor that was alive may be missing from ZooKeeper before its executors
    /// move (Storm's `nimbus.supervisor.timeout.secs`; Gale's default 5 s): a session lost for a
    /// moment, or a ZooKeeper outage, moves nothing.
    pub supervisor_timeout: Duration,
    /// How often supervisors write their workers' heartbeats (told through the assignments;
    /// kept at most a third of the worker timeout). Storm's `supervisor.heartbeat.frequency.secs`;
    /// default 5 s. Status and the UI's counters are as fresh as this.
    pub heartbeat_interval: Duration,
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

pub(crate) struct Shared<S> {
    pub(crate) state: Arc<ClusterState<S>>,
    pub(crate) registry: Registry,
    pub(crate) address: String,
    pub(crate) worker_timeout: Duration,
    pub(crate) leader: AtomicBool,
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) auth_token: Option<String>,
    pub(crate) supervisor_timeout: Duration,
    pub(crate) heartbeat_interval: Duration,
    /// Which supervisors are alive or were until lately (see `reconcile::Liveness`).
    pub(crate) liveness: std::sync::Mutex<crate::reconcile::Liveness>,
    /// Held from a submission's name check to its write: two submissions of one name cannot
    /// both pass (only the leader takes submissions).
    pub(crate) submissions: tokio::sync::Mutex<()>,
    /// Counters sampled over time: Storm UI's stats windows (`crate::history`).
    pub(crate) history: std::sync::Mutex<crate::history::History>,
    /// How long the leader's assignment passes take (`/metrics`).
    pub(crate) passes: std::sync::Mutex<PassStats>,
    pub(crate) topologies: crate::reconcile::Topologies,
}

/// The assignment passes this Nimbus ran as leader: how many, their total and longest time,
/// and the longest of the last [`PassStats::RECENT`].
#[derive(Clone, Debug, Default)]
pub struct PassStats {
    pub count: u64,
    pub total: Duration,
    pub max: Duration,
    pub recent: std::collections::VecDeque<Duration>,
}

impl PassStats {
    pub const RECENT: usize = 100;

    pub fn record(&mut self, took: Duration) {
        self.count += 1;
        self.total += took;
        self.max = self.max.max(took);
        if self.recent.len() == Self::RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(took);
    }

    /// Prometheus text: a summary's count and sum, the longest pass, and the longest recent one.
    pub fn prometheus(&self) -> String {
        let recent = self.recent.iter().max().copied().unwrap_or_default();
        format!(
            "# HELP gale_nimbus_assignment_pass_seconds Time of the leader's assignment passes.\n\
             # TYPE gale_nimbus_assignment_pass_seconds summary\n\
             gale_nimbus_assignment_pass_seconds_count {}\n\
             gale_nimbus_assignment_pass_seconds_sum {:.6}\n\
             # HELP gale_nimbus_assignment_pass_max_seconds The longest assignment pass.\n\
             # TYPE gale_nimbus_assignment_pass_max_seconds gauge\n\
             gale_nimbus_assignment_pass_max_seconds {:.6}\n\
             # HELP gale_nimbus_assignment_pass_recent_max_seconds The longest of the last 100 passes.\n\
             # TYPE gale_nimbus_assignment_pass_recent_max_seconds gauge\n\
             gale_nimbus_assignment_pass_recent_max_seconds {:.6}\n",
            self.count,
            self.total.as_secs_f64(),
            self.max.as_secs_f64(),
            recent.as_secs_f64()
        )
    }
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
        auth_token: cfg.auth_token.clone(),
        supervisor_timeout: cfg.supervisor_timeout,
        heartbeat_interval: cfg.heartbeat_interval,
        liveness: Default::default(),
        submissions: tokio::sync::Mutex::new(()),
        history: Default::default(),
        passes: Default::default(),
        topologies: Default::default(),
    });
    if cfg.auth_token.is_none() && !local.ip().is_loopback() {
        tracing::warn!(listen = %local, "Nimbus listens beyond this machine without a token: anyone who reaches it can submit and kill topologies (set --auth-token-file or GALE_AUTH_TOKEN; docs/security.md)");
    }
    tracing::info!(listen = %local, "Nimbus started");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let loop_task = tokio::spawn(assignment_loop(
        shared.clone(),
        cfg.interval,
        stop_rx.clone(),
    ));
    let sampler = tokio::spawn(sample_counters(shared.clone(), stop_rx));
    let app = crate::api::router(shared.clone());
    let listener = crate::listener::BoundedListener::new(listener, cfg.http);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(NimbusError::Serve);
    let _ = stop_tx.send(true);
    let _ = loop_task.await;
    let _ = sampler.await;
    served
}

/// Samples every topology's counters for the stats windows, every `history::FINE_EVERY` s
/// (leader or not: any Nimbus answers the REST API).
async fn sample_counters<S: Store>(
    shared: Arc<Shared<S>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match crate::reconcile::cluster_view(&shared.state).await {
            Ok(v) => shared
                .history
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(now_secs(), &v),
            Err(e) => tracing::debug!(error = %e, "Cannot sample counters for the stats windows"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(crate::history::FINE_EVERY)) => {}
        }
    }
}

async fn assignment_loop<S: Store>(
    shared: Arc<Shared<S>>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let started = now_secs();
    // The session in which this Nimbus's record was written, and in which it took the lock:
    // both ephemeral, they last as long as that session, so neither is written again (or asked
    // about) until a new session starts.
    let mut registered_in: Option<u64> = None;
    let mut took_in: Option<u64> = None;
    loop {
        let leading = async {
            let session = shared.state.store().session();
            if registered_in != Some(session) {
                shared
                    .state
                    .register_nimbus(&NimbusRecord {
                        address: shared.address.clone(),
                        start_time_secs: started,
                        version: env!("CARGO_PKG_VERSION").into(),
                    })
                    .await?;
                registered_in = Some(shared.state.store().session());
            }
            if took_in == Some(shared.state.store().session()) {
                return Ok(true);
            }
            let lead = shared.state.lead(&shared.address).await?;
            if lead == cluster_state::Lead::Took {
                took_in = Some(shared.state.store().session());
            }
            Ok::<_, cluster_state::StateError>(lead != cluster_state::Lead::Other)
        }
        .await;
        match leading {
            Ok(true) => {
                if !shared.leader.swap(true, Ordering::SeqCst) {
                    tracing::info!(address = %shared.address, "This Nimbus is the leader");
                }
                let pass = crate::reconcile::reconcile(
                    &shared.state,
                    shared.worker_timeout,
                    &shared.liveness,
                    shared.supervisor_timeout,
                    crate::reconcile::beat_period(shared.heartbeat_interval, shared.worker_timeout),
                    &shared.topologies,
                );
                let started = std::time::Instant::now();
                if let Err(e) = pass.await {
                    tracing::warn!(error = %e, "Assignment pass failed; retrying");
                }
                shared
                    .passes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(started.elapsed());
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
