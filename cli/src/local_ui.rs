//! `gale local --ui [ADDR]`: the web UI of a local run (docs/ui.md). The same pages as Nimbus's,
//! over a status built from the run's own counters once a second; a local run has no actions
//! (Ctrl-C ends it), so they answer 501.

use anyhow::{Context, Result};
use axum::Json;
use axum::http::StatusCode;
use axum::routing::{get, post};
use flux::Topology;
use nimbus::view::{AssignmentView, ClusterView, ComponentStats, SupervisorView};
use nimbus::{Assignment, ClusterSnapshot};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The status the pages read, updated by the run's progress callback.
pub type Shared = Arc<Mutex<ClusterView>>;

/// The view of a local run that has not counted anything yet.
pub fn initial_view(topology: &Topology) -> ClusterView {
    let layout = flux::layout::task_layout(topology, topology.acker_executors());
    let t = nimbus::view::topology_view(
        &topology.name,
        topology,
        &layout,
        &Assignment::new(),
        &ClusterSnapshot::planned(0, 0),
        "ACTIVE",
        0,
    );
    ClusterView {
        supervisors: vec![SupervisorView {
            id: "local".into(),
            host: "127.0.0.1".into(),
            ports: Vec::new(),
            used_ports: Vec::new(),
        }],
        topologies: vec![t],
    }
}

/// Puts a progress snapshot into the view: counters per component, executors per task range.
pub fn update(view: &Shared, p: &worker::Progress) {
    let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
    let Some(t) = v.topologies.first_mut() else {
        return;
    };
    t.uptime_secs = p.elapsed.as_secs();
    for c in &mut t.components {
        let mut st = ComponentStats::default();
        let mut busy_ns = 0u64;
        let mut n = 0u64;
        for e in p.executors.iter().filter(|e| e.component == c.id) {
            st.emitted += e.counters.emitted;
            st.executed += e.counters.executed;
            st.acked += e.counters.acked;
            st.failed += e.counters.failed;
            busy_ns += e.counters.busy_ns;
            n += 1;
            for (k, g) in &e.gauges {
                *st.gauges.entry(k.clone()).or_insert(0) += g;
            }
        }
        st.busy_us = busy_ns / 1000;
        if st.executed > 0 && st.busy_us > 0 {
            st.execute_latency_ms = Some(st.busy_us as f64 / st.executed as f64 / 1000.0);
        }
        let up_us = p.elapsed.as_micros() as f64 * n.max(1) as f64;
        if st.busy_us > 0 && up_us > 0.0 {
            st.capacity = Some((st.busy_us as f64 / up_us).min(1.0));
        }
        c.stats = Some(st);
    }
    t.assignment = p
        .executors
        .iter()
        .map(|e| AssignmentView {
            component: e.component.clone(),
            task_start: e.first_task,
            task_end: e.last_task,
            supervisor: "local".into(),
            host: "127.0.0.1".into(),
            port: 0,
        })
        .collect();
    t.workers = 1;
}

/// Binds `addr` and serves the pages from a thread of its own until the process ends.
pub fn serve(addr: &str, view: Shared) -> Result<SocketAddr> {
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("--ui {addr}: expected an address such as 127.0.0.1:8080"))?;
    let std_listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("--ui: cannot listen on {addr}"))?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    let status = {
        let view = view.clone();
        move || {
            let view = view.clone();
            async move { Json(view.lock().unwrap_or_else(|e| e.into_inner()).clone()) }
        }
    };
    let no_actions = || async {
        (
            StatusCode::NOT_IMPLEMENTED,
            Json(serde_json::json!({
                "error": "a local run has no actions: Ctrl-C ends it (the buttons act on a cluster's Nimbus)"
            })),
        )
    };
    let app = axum::Router::new()
        .route("/api/v1/gale/status", get(status))
        .route("/api/v1/topology/{id}/{action}", post(no_actions))
        .route("/api/v1/topology/{id}/{action}/{wait}", post(no_actions))
        .merge(nimbus::ui::routes());
    std::thread::Builder::new()
        .name("local-ui".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!("the web UI cannot start: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => {
                        if let Err(e) = axum::serve(l, app).await {
                            tracing::warn!("the web UI stopped: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("the web UI cannot start: {e}"),
                }
            });
        })?;
    Ok(local)
}
