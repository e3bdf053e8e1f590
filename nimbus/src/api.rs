//! Nimbus's HTTP API: submission (`/api/v1/gale/`), the topology actions (applied through
//! [`lifecycle`]), Storm UI's REST read paths and Prometheus text.

use crate::daemon::Shared;
use crate::lifecycle::{self, Action, Outcome};
use crate::reconcile::{cluster_view, snapshot};
use crate::scheduler::{SupervisorInfo, check_runnable};
use crate::view::ClusterView;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cluster_state::{
    ClusterState, StateError, Store, StoredTopology, StormRecord, TopologyStatus, now_secs,
};
use flux::Topology;
use flux::{Foreign, keys, load_submitted};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Every route: Gale's own (`/api/v1/gale/`), the actions, Storm UI's read paths and `/metrics`.
/// Every change (any method but GET and HEAD) passes [`authorize`] first.
pub(crate) fn router<S: Store>(shared: Arc<Shared<S>>) -> Router {
    let guard = axum::middleware::from_fn_with_state(shared.clone(), guard_changes::<S>);
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
        // The web UI (GET only: its actions go through the guarded routes above).
        .merge(crate::ui::routes())
        .route_layer(guard)
        .with_state(shared)
}

async fn guard_changes<S: Store>(
    State(s): State<Arc<Shared<S>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let reads = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if reads {
        return next.run(req).await;
    }
    match authorize(s.auth_token.as_deref(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::warn!(path = %req.uri().path(), "Refused a change: {}", e.1);
            e.into_response()
        }
    }
}

/// Whether a change (submission or action) may go ahead. With a token configured it needs
/// `Authorization: Bearer TOKEN` (401 otherwise). A request from a browser page (it carries an
/// `Origin` header, which browsers add and Gale's CLI never sends) is refused (403) unless it
/// carries the token: no page on another site can kill a topology through a user's browser.
pub fn authorize(token: Option<&str>, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = match (token, presented) {
        (Some(t), Some(p)) => same_secret(t.as_bytes(), p.trim().as_bytes()),
        _ => false,
    };
    if valid {
        return Ok(());
    }
    if token.is_some() {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "this Nimbus needs its token for changes: send `Authorization: Bearer TOKEN` (the CLI sends the token of --auth-token-file or GALE_AUTH_TOKEN)".into(),
        ));
    }
    if headers.contains_key(axum::http::header::ORIGIN) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "changes are not accepted from a browser page without the token; use the gale CLI, or configure a token and send it".into(),
        ));
    }
    Ok(())
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

/// `?window=` of Storm UI's pages.
#[derive(Debug, Deserialize)]
struct WindowQuery {
    window: Option<String>,
}

/// The view over every stats window, the all-time one last (as Storm lists them).
fn windowed_views<S: Store>(
    s: &Shared<S>,
    all_time: &ClusterView,
) -> Vec<(crate::storm_ui::WindowName, ClusterView)> {
    let now = now_secs();
    let history = s.history.lock().unwrap_or_else(|p| p.into_inner());
    crate::history::WINDOWS
        .iter()
        .map(|(key, secs, pretty)| {
            let mut v = all_time.clone();
            if let Some(secs) = secs {
                history.apply(&mut v, now, *secs);
            }
            ((*key, *pretty), v)
        })
        .collect()
}

fn bad_window(e: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e)
}

async fn ui_topology<S: Store>(
    State(s): State<Arc<Shared<S>>>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<WindowQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (key, _, pretty) = crate::history::parse_window(q.window.as_deref()).map_err(bad_window)?;
    let v = cluster_view(&s.state).await?;
    let views = windowed_views(&s, &v);
    let chosen = &views
        .iter()
        .find(|((k, _), _)| *k == key)
        .expect("a window")
        .1;
    let all: Vec<(crate::storm_ui::WindowName, &ClusterView)> =
        views.iter().map(|(w, v)| (*w, v)).collect();
    crate::storm_ui::topology_page_in(chosen, &id, (key, pretty), &all)
        .map(Json)
        .ok_or_else(|| no_topology(&id))
}

async fn ui_component<S: Store>(
    State(s): State<Arc<Shared<S>>>,
    Path((id, component)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<WindowQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (key, secs, pretty) =
        crate::history::parse_window(q.window.as_deref()).map_err(bad_window)?;
    let mut v = cluster_view(&s.state).await?;
    if crate::storm_ui::topology_page(&v, &id).is_none() {
        return Err(no_topology(&id));
    }
    if let Some(secs) = secs {
        s.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(&mut v, now_secs(), secs);
    }
    crate::storm_ui::component_page_in(&v, &id, &component, (key, pretty))
        .map(Json)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("topology \"{id}\" has no component \"{component}\""),
            )
        })
}

async fn metrics<S: Store>(State(s): State<Arc<Shared<S>>>) -> Result<Response, ApiError> {
    let mut text = crate::storm_ui::prometheus(&cluster_view(&s.state).await?);
    let passes = s
        .passes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .prometheus();
    text.push_str(&passes);
    if let Some(r) = s.state.store().requests() {
        text.push_str(&crate::storm_ui::store_requests(&r));
    }
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
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        let code = match &e {
            _ if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            StateError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
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
    /// (relative name, content), the content as base64 text: a third over the bytes, where JSON
    /// number arrays were four times them.
    #[serde(default, with = "base64_files")]
    pub resources: Vec<(String, Vec<u8>)>,
    #[serde(default)]
    pub validated: Option<Topology>,
}

mod base64_files {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(files: &[(String, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<(&str, String)> = files
            .iter()
            .map(|(name, data)| (name.as_str(), STANDARD.encode(data)))
            .collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, Vec<u8>)>, D::Error> {
        let text: Vec<(String, String)> = Vec::deserialize(d)?;
        text.into_iter()
            .map(|(name, b64)| match STANDARD.decode(b64.as_bytes()) {
                Ok(data) => Ok((name, data)),
                Err(e) => Err(D::Error::custom(format!(
                    "resource {name:?} is not base64: {e}"
                ))),
            })
            .collect()
    }
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
        stateful: req.validated.as_ref().is_some_and(|t| {
            t.component(topology_api::checkpoint::CHECKPOINT_COMPONENT)
                .is_some()
        }),
    };
    let loaded = load_submitted(&req.file, req.yaml.as_bytes(), &s.registry, &foreign)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let topo = loaded.topology;
    let needed = topo.components().map(|c| c.class_name.clone()).collect();
    check_runnable(&needed, &supervisors, |c| s.registry.resolve(c).is_some())
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    // One submission at a time from the name check to the write: of many racing submissions
    // of one name, one is stored and the others get 409.
    let _one_at_a_time = s.submissions.lock().await;
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
    let name = topo.name.clone();
    let stored = StoredTopology {
        topology: topo,
        resources: req.resources,
    };
    match s.state.set_topology(&id, &stored).await {
        Err(StateError::TooLarge { size, limit, .. }) => {
            return Err(ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "topology \"{name}\" with its resources is {size} bytes stored; ZooKeeper takes at most {limit} bytes per node: ship fewer or smaller resources (or read big inputs from shared storage)"
                ),
            ));
        }
        r => r?,
    }
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

/// Applies a user's action to a topology (by id or name) through the lifecycle table; a refusal
/// is a 409 that says what to do.
async fn act<S: Store>(
    s: &Shared<S>,
    key: &str,
    action: Action,
) -> Result<Json<ActionResponse>, ApiError> {
    require_leader(s)?;
    let (id, storm) = resolve(&s.state, key).await?;
    let status = match lifecycle::apply(&storm, &action, now_secs()) {
        Err(refused) => return Err(ApiError(StatusCode::CONFLICT, refused.to_string())),
        Ok(Outcome::Store(next)) => {
            s.state.set_storm(&id, &next).await?;
            s.wake.notify_one();
            next.status
        }
        Ok(_) => storm.status,
    };
    tracing::info!(topology = %id, ?action, status = status.as_str(), "Topology action");
    Ok(Json(ActionResponse {
        id,
        status: status.as_str().into(),
    }))
}

async fn set_status<S: Store>(
    s: &Shared<S>,
    key: &str,
    status: TopologyStatus,
) -> Result<Json<ActionResponse>, ApiError> {
    let action = if status == TopologyStatus::Active {
        Action::Activate
    } else {
        Action::Deactivate
    };
    act(s, key, action).await
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
    let (id, _) = resolve(&s.state, &key).await?;
    let default_wait = match s.state.topology(&id).await? {
        Some(t) => t.topology.config_u64(keys::MESSAGE_TIMEOUT_SECS, 30),
        None => 30,
    };
    // Storm: deactivate (spouts stop), wait, then remove.
    let wait_secs = parse_wait(&wait, default_wait)?;
    act(&s, &id, Action::Kill { wait_secs }).await
}

/// The longest wait an action takes (a year), so a wait added to a time cannot overflow.
const MAX_WAIT_SECS: u64 = 365 * 24 * 3600;

/// A kill's or rebalance's `:wait`: whole seconds, or `default` (the topology's message
/// timeout, as Storm); anything else is a 400 that changes nothing.
fn parse_wait(wait: &str, default: u64) -> Result<u64, ApiError> {
    if wait == "default" {
        return Ok(default);
    }
    match wait.parse::<u64>() {
        Ok(n) if n <= MAX_WAIT_SECS => Ok(n),
        _ => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "wait \"{wait}\": expected whole seconds from 0 to {MAX_WAIT_SECS}, or \"default\" (the topology's message timeout)"
            ),
        )),
    }
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
    let (id, _) = resolve(&s.state, &key).await?;
    let stored = s.state.topology(&id).await?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("topology {id} has no stored definition"),
        )
    })?;
    check_rebalance(&stored.topology, &req).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let wait_secs = parse_wait(
        &wait,
        stored.topology.config_u64(keys::MESSAGE_TIMEOUT_SECS, 30),
    )?;
    let action = Action::Rebalance {
        wait_secs,
        workers: req.workers,
        executors: req.executors,
    };
    act(&s, &id, action).await
}

/// A rebalance names known components, each with 1..=its tasks executors, and at least 1 worker.
fn check_rebalance(topology: &Topology, req: &RebalanceRequest) -> Result<(), String> {
    for (c, n) in &req.executors {
        let Some(def) = topology.component(c) else {
            let known: Vec<&str> = topology.components().map(|c| c.id.as_str()).collect();
            return Err(format!(
                "unknown component \"{c}\" (known: {})",
                known.join(", ")
            ));
        };
        if *n < 1 || *n > def.num_tasks {
            return Err(format!(
                "component \"{c}\" has {} tasks, so its executors must be between 1 and {}",
                def.num_tasks, def.num_tasks
            ));
        }
    }
    match req.workers {
        Some(0) => return Err("workers must be at least 1".into()),
        Some(w) if w > keys::MAX_WORKERS => {
            return Err(format!(
                "{w} workers is more than Gale's limit of {} (docs/configuration.md)",
                keys::MAX_WORKERS
            ));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn waits_are_whole_seconds_or_default() {
        let table: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("45", Some(45)),
            ("default", Some(30)),
            ("31536000", Some(31_536_000)),
            ("31536001", None),
            ("-1", None),
            ("soon", None),
            ("", None),
            ("1.5", None),
            ("18446744073709551616", None),
        ];
        for (w, want) in table {
            let got = parse_wait(w, 30);
            match want {
                Some(n) => assert_eq!(got.ok(), Some(*n), "{w}"),
                None => assert_eq!(got.err().map(|e| e.0), Some(StatusCode::BAD_REQUEST), "{w}"),
            }
        }
    }

    #[test]
    fn who_may_change_what() {
        let t = Some("tok");
        // (configured token, headers, allowed / status)
        let cases: &[(Option<&str>, &[(&str, &str)], u16)] = &[
            (None, &[], 200),
            (None, &[("authorization", "Bearer anything")], 200),
            (None, &[("origin", "http://page.example")], 403),
            (t, &[], 401),
            (t, &[("authorization", "Bearer tok")], 200),
            (t, &[("authorization", "Bearer  tok ")], 200),
            (t, &[("authorization", "Bearer tok2")], 401),
            (t, &[("authorization", "bearer tok")], 401),
            (t, &[("authorization", "Bearer to")], 401),
            (t, &[("origin", "http://page.example")], 401),
            (
                t,
                &[
                    ("origin", "http://gale.ui"),
                    ("authorization", "Bearer tok"),
                ],
                200,
            ),
        ];
        for (token, h, want) in cases {
            let got = match authorize(*token, &headers(h)) {
                Ok(()) => 200,
                Err(e) => e.0.as_u16(),
            };
            assert_eq!(got, *want, "token {token:?}, headers {h:?}");
        }
    }

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
    }
}
