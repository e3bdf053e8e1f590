//! The JSON shape of `gale status --format json` and `gale plan --format json` (docs/contract.md §7).

use crate::scheduler::{Assignment, ClusterSnapshot, TopologyRequest, schedule};
use flux::Topology;
use flux::layout::{ComponentTasks, task_layout};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub supervisors: Vec<SupervisorView>,
    pub topologies: Vec<TopologyView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SupervisorView {
    pub id: String,
    pub host: String,
    pub ports: Vec<u16>,
    pub used_ports: Vec<u16>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopologyView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub uptime_secs: u64,
    pub workers: u32,
    pub executors: u32,
    pub tasks: u32,
    pub components: Vec<ComponentView>,
    pub assignment: Vec<AssignmentView>,
    /// The topology's streams (the web UI draws its graph from them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StreamView>,
    /// The latest error of no one component: a worker that could not start (cluster status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A subscription: `to` reads stream `stream` of `from`, grouped by `grouping`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamView {
    pub from: String,
    pub to: String,
    pub stream: String,
    pub grouping: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentView {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub executors: u32,
    pub tasks: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<ComponentStats>,
    /// The latest error a task of this component reported (cluster status only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Each running executor's counters, as of its worker's last heartbeat (cluster status).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executor_stats: Vec<ExecutorView>,
}

/// One running executor of a component.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutorView {
    /// Its task range, as Storm writes it: `[3-4]`.
    pub id: String,
    pub supervisor: String,
    pub host: String,
    pub port: u16,
    pub uptime_secs: u64,
    pub emitted: u64,
    pub executed: u64,
    pub acked: u64,
    pub failed: u64,
    pub busy_us: u64,
    /// Batches waiting in its input queue (bolts).
    pub queue_depth: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execute_latency_ms: Option<f64>,
    /// Terminal executors: end-to-end latency, cumulative counts at
    /// `cluster_state::LATENCY_BUCKETS_US`, with their count and sum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_buckets: Vec<u64>,
    #[serde(default)]
    pub latency_count: u64,
    #[serde(default)]
    pub latency_sum_us: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentStats {
    pub emitted: u64,
    pub executed: u64,
    pub acked: u64,
    pub failed: u64,
    /// Terminal components: end-to-end latency (spout emit -> here), the highest of their
    /// executors' percentiles, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<f64>,
    /// When a task of this component last executed a tuple (microseconds since the Unix epoch,
    /// the latest over its executors; as of their last heartbeats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_executed_us: Option<u64>,
    /// Time its running executors spent executing, in microseconds (bolts).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub busy_us: u64,
    /// Spouts with acking: mean complete latency (emit -> tree acked) over the running
    /// executors, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_latency_ms: Option<f64>,
    /// When the component's latest error was reported (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_time_secs: Option<u64>,
    /// Mean time to execute a tuple over the running executors, in milliseconds (bolts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execute_latency_ms: Option<f64>,
    /// Storm's capacity since the running workers started: the share of their time the
    /// executors spent executing (mean over executors; near 1 means the bolt is the bottleneck).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
    /// Gauges its spout tasks report (`Spout::gauges`), summed over the running executors.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub gauges: std::collections::BTreeMap<String, i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssignmentView {
    pub component: String,
    pub task_start: u32,
    pub task_end: u32,
    pub supervisor: String,
    pub host: String,
    pub port: u16,
}

/// Builds the view of one topology from its layout and assignment.
pub fn topology_view(
    id: &str,
    topology: &Topology,
    layout: &[ComponentTasks],
    assignment: &Assignment,
    cluster: &ClusterSnapshot,
    status: &str,
    uptime_secs: u64,
) -> TopologyView {
    let hosts: std::collections::BTreeMap<&str, &str> = cluster
        .supervisors
        .iter()
        .map(|s| (s.id.as_str(), s.host.as_str()))
        .collect();
    let host_of = |sup: &str| hosts.get(sup).map(|h| (*h).to_owned()).unwrap_or_default();
    let mut rows: Vec<AssignmentView> = Vec::new();
    for c in layout {
        for e in &c.executors {
            if let Some(slot) = assignment.get(e) {
                rows.push(AssignmentView {
                    component: c.id.clone(),
                    task_start: e.start,
                    task_end: e.end,
                    supervisor: slot.supervisor.clone(),
                    host: host_of(&slot.supervisor),
                    port: slot.port,
                });
            }
        }
    }
    rows.sort_by_key(|r| r.task_start);
    let workers = assignment
        .values()
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u32;
    TopologyView {
        id: id.to_owned(),
        name: topology.name.clone(),
        status: status.to_owned(),
        uptime_secs,
        workers,
        executors: layout.iter().map(|c| c.executors.len() as u32).sum(),
        tasks: layout.iter().map(|c| c.num_tasks).sum(),
        components: layout
            .iter()
            .map(|c| ComponentView {
                id: c.id.clone(),
                kind: c.kind.as_str().to_owned(),
                executors: c.executors.len() as u32,
                tasks: c.num_tasks,
                stats: None,
                last_error: None,
                executor_stats: Vec::new(),
            })
            .collect(),
        assignment: rows,
        streams: topology
            .streams
            .iter()
            .map(|s| StreamView {
                from: s.from.clone(),
                to: s.to.clone(),
                stream: s.stream_id.clone(),
                grouping: s.grouping.to_string(),
            })
            .collect(),
        last_error: None,
    }
}

/// What `gale plan` prints: the assignment for `supervisors` empty supervisors.
pub fn plan(topology: &Topology, supervisors: usize, slots_per_supervisor: usize) -> ClusterView {
    let cluster = ClusterSnapshot::planned(supervisors, slots_per_supervisor);
    let layout = task_layout(topology, topology.acker_executors());
    let id = topology.name.clone();
    let req = TopologyRequest {
        id: id.clone(),
        workers: topology.workers(),
        executors: layout
            .iter()
            .flat_map(|c| c.executors.iter().copied())
            .collect(),
        current: Assignment::new(),
        classes: topology
            .components()
            .map(|c| c.class_name.clone())
            .collect(),
    };
    let out = schedule(&cluster, &[req]);
    let assignment = out.get(&id).cloned().unwrap_or_default();
    let used = |sup: &str| {
        let mut p: Vec<u16> = assignment
            .values()
            .filter(|s| s.supervisor == sup)
            .map(|s| s.port)
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    ClusterView {
        supervisors: cluster
            .supervisors
            .iter()
            .map(|s| SupervisorView {
                id: s.id.clone(),
                host: s.host.clone(),
                ports: s.ports.clone(),
                used_ports: used(&s.id),
            })
            .collect(),
        topologies: vec![topology_view(
            &id,
            topology,
            &layout,
            &assignment,
            &cluster,
            "PLANNED",
            0,
        )],
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
