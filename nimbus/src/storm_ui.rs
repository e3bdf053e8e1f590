//! Storm UI's REST read paths (docs/contract.md §10), as pure functions of a [`ClusterView`]: tools
//! written against Storm's UI API (`/api/v1/cluster/summary`, `topology/summary`, ...) read Gale.
//!
//! Field names are Storm's where Storm has them. A page is a pure function of a view: the
//! all-time view, or one whose counters are a stats window's growth (`crate::history`).
//! Prometheus text for `/metrics` is built here too.

use crate::view::{ClusterView, ComponentView, TopologyView};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// Gale's version, where Storm reports `stormVersion`.
pub const VERSION: &str = concat!("gale-", env!("CARGO_PKG_VERSION"));

fn slots(v: &ClusterView) -> (usize, usize) {
    let total = v.supervisors.iter().map(|s| s.ports.len()).sum();
    let used = v.supervisors.iter().map(|s| s.used_ports.len()).sum();
    (total, used)
}

/// `/api/v1/cluster/summary`.
pub fn cluster_summary(v: &ClusterView) -> Value {
    let (total, used) = slots(v);
    json!({
        "stormVersion": VERSION,
        "supervisors": v.supervisors.len(),
        "topologies": v.topologies.len(),
        "slotsTotal": total,
        "slotsUsed": used,
        "slotsFree": total - used.min(total),
        "executorsTotal": v.topologies.iter().map(|t| u64::from(t.executors)).sum::<u64>(),
        "tasksTotal": v.topologies.iter().map(|t| u64::from(t.tasks)).sum::<u64>(),
    })
}

/// `/api/v1/supervisor/summary`.
pub fn supervisor_summary(v: &ClusterView) -> Value {
    let sups: Vec<Value> = v
        .supervisors
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "host": s.host,
                "slotsTotal": s.ports.len(),
                "slotsUsed": s.used_ports.len(),
                "version": VERSION,
            })
        })
        .collect();
    json!({ "supervisors": sups })
}

/// `/api/v1/nimbus/summary`: this Nimbus, leader or not.
pub fn nimbus_summary(address: &str, leader: bool) -> Value {
    let (host, port) = address.rsplit_once(':').unwrap_or((address, ""));
    json!({
        "nimbuses": [{
            "host": host,
            "port": port.parse::<u16>().ok(),
            "nimbusLogLink": Value::Null,
            "status": if leader { "Leader" } else { "Not a Leader" },
            "version": VERSION,
        }]
    })
}

fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

fn topology_head(t: &TopologyView) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(t.id));
    m.insert("name".into(), json!(t.name));
    m.insert("status".into(), json!(t.status));
    m.insert("uptime".into(), json!(uptime(t.uptime_secs)));
    m.insert("uptimeSeconds".into(), json!(t.uptime_secs));
    m.insert("tasksTotal".into(), json!(t.tasks));
    m.insert("workersTotal".into(), json!(t.workers));
    m.insert("executorsTotal".into(), json!(t.executors));
    m
}

/// `/api/v1/topology/summary`.
pub fn topology_summary(v: &ClusterView) -> Value {
    let tops: Vec<Value> = v
        .topologies
        .iter()
        .map(|t| Value::Object(topology_head(t)))
        .collect();
    json!({ "topologies": tops })
}

fn stats(c: &ComponentView) -> (u64, u64, u64, u64) {
    c.stats
        .as_ref()
        .map(|s| (s.emitted, s.executed, s.acked, s.failed))
        .unwrap_or_default()
}

fn component_json(c: &ComponentView) -> Value {
    let (emitted, executed, acked, failed) = stats(c);
    let id_key = if c.kind == "spout" {
        "spoutId"
    } else {
        "boltId"
    };
    let mut m = serde_json::Map::new();
    m.insert(id_key.into(), json!(c.id));
    m.insert("executors".into(), json!(c.executors));
    m.insert("tasks".into(), json!(c.tasks));
    m.insert("emitted".into(), json!(emitted));
    // Gale sends each emitted tuple once per receiving task; it counts emits, as Storm's
    // `transferred` would equal them with one subscriber.
    m.insert("transferred".into(), json!(emitted));
    m.insert("acked".into(), json!(acked));
    m.insert("failed".into(), json!(failed));
    if c.kind != "spout" {
        m.insert("executed".into(), json!(executed));
        // Storm's strings with three decimals, since the running workers started.
        let s = c.stats.clone().unwrap_or_default();
        m.insert(
            "capacity".into(),
            json!(format!("{:.3}", s.capacity.unwrap_or(0.0))),
        );
        m.insert(
            "executeLatency".into(),
            json!(format!("{:.3}", s.execute_latency_ms.unwrap_or(0.0))),
        );
    }
    m.insert(
        "lastError".into(),
        json!(c.last_error.clone().unwrap_or_default()),
    );
    if let Some(s) = &c.stats {
        if let Some(t) = s.last_error_time_secs {
            m.insert("errorTime".into(), json!(t));
        }
        if c.kind == "spout" {
            m.insert(
                "completeLatency".into(),
                json!(format!("{:.3}", s.complete_latency_ms.unwrap_or(0.0))),
            );
        }
    }
    if let Some(s) = &c.stats
        && let Some(p99) = s.latency_p99_ms
    {
        m.insert("endToEndLatencyP99Ms".into(), json!(p99));
        m.insert("endToEndLatencyP50Ms".into(), json!(s.latency_p50_ms));
    }
    Value::Object(m)
}

/// The emitted, acked and failed totals of a topology's user components (acked and failed:
/// its spouts', as Storm counts them).
fn topology_totals(t: &TopologyView) -> (u64, u64, u64) {
    t.components
        .iter()
        .filter(|c| c.kind != "system")
        .fold((0, 0, 0), |(e, a, f), c| {
            let (ce, _, ca, cf) = stats(c);
            (
                e + ce,
                a + if c.kind == "spout" { ca } else { 0 },
                f + if c.kind == "spout" { cf } else { 0 },
            )
        })
}

/// A stats window as Storm's pages name it: (`window`, `windowPretty`).
pub type WindowName = (&'static str, &'static str);

const ALL_TIME: WindowName = (":all-time", "All time");

/// `/api/v1/topology/:id` over all time, or `None` when there is no such topology.
pub fn topology_page(v: &ClusterView, id: &str) -> Option<Value> {
    topology_page_in(v, id, ALL_TIME, &[(ALL_TIME, v)])
}

/// `/api/v1/topology/:id?window=`: the components' stats from `v` (the view over the chosen
/// window), and `topologyStats` with a row per window of `windows`.
pub fn topology_page_in(
    v: &ClusterView,
    id: &str,
    window: WindowName,
    windows: &[(WindowName, &ClusterView)],
) -> Option<Value> {
    let t = v.topologies.iter().find(|t| t.id == id || t.name == id)?;
    let mut m = topology_head(t);
    let user = |kind: &str| -> Vec<Value> {
        t.components
            .iter()
            .filter(|c| c.kind == kind)
            .map(component_json)
            .collect()
    };
    m.insert("spouts".into(), json!(user("spout")));
    m.insert("bolts".into(), json!(user("bolt")));
    let rows: Vec<Value> = windows
        .iter()
        .filter_map(|((key, pretty), wv)| {
            let wt = wv.topologies.iter().find(|x| x.id == t.id)?;
            let (emitted, acked, failed) = topology_totals(wt);
            Some(json!({
                "windowPretty": pretty,
                "window": key,
                "emitted": emitted,
                "transferred": emitted,
                "acked": acked,
                "failed": failed,
            }))
        })
        .collect();
    m.insert("topologyStats".into(), json!(rows));
    m.insert("window".into(), json!(window.0));
    m.insert("windowHint".into(), json!(window.1));
    Some(Value::Object(m))
}

/// `/api/v1/topology/:id/component/:component` over all time.
pub fn component_page(v: &ClusterView, id: &str, component: &str) -> Option<Value> {
    component_page_in(v, id, component, ALL_TIME)
}

/// `/api/v1/topology/:id/component/:component?window=`: the stats of `v`, the view over the
/// chosen window.
pub fn component_page_in(
    v: &ClusterView,
    id: &str,
    component: &str,
    window: WindowName,
) -> Option<Value> {
    let t = v.topologies.iter().find(|t| t.id == id || t.name == id)?;
    let c = t.components.iter().find(|c| c.id == component)?;
    let Value::Object(mut m) = component_json(c) else {
        return None;
    };
    m.insert("id".into(), json!(c.id));
    m.insert("name".into(), json!(t.name));
    m.insert("topologyId".into(), json!(t.id));
    m.insert("componentType".into(), json!(c.kind));
    m.insert("window".into(), json!(window.0));
    m.insert("windowHint".into(), json!(window.1));
    // Storm's executorStats: placement from the assignment, counters from the running
    // executors' heartbeats (absent until the first one).
    let executors: Vec<Value> = t
        .assignment
        .iter()
        .filter(|a| a.component == c.id)
        .map(|a| {
            let id = format!("[{}-{}]", a.task_start, a.task_end);
            let mut row = json!({
                "id": id,
                "host": a.host,
                "port": a.port,
                "supervisorId": a.supervisor,
            });
            if let Some(e) = c.executor_stats.iter().find(|e| e.id == id) {
                row["uptime"] = json!(e.uptime_secs);
                row["emitted"] = json!(e.emitted);
                row["transferred"] = json!(e.emitted);
                row["acked"] = json!(e.acked);
                row["failed"] = json!(e.failed);
                if c.kind == "bolt" {
                    row["executed"] = json!(e.executed);
                    row["capacity"] = json!(format!("{:.3}", e.capacity.unwrap_or(0.0)));
                    row["executeLatency"] =
                        json!(format!("{:.3}", e.execute_latency_ms.unwrap_or(0.0)));
                    row["queueDepth"] = json!(e.queue_depth);
                }
            }
            row
        })
        .collect();
    m.insert("executorStats".into(), json!(executors));
    Some(Value::Object(m))
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text exposition of the cluster: gauges for slots, and per component counters.
pub fn prometheus(v: &ClusterView) -> String {
    let (total, used) = slots(v);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP gale_supervisors Live supervisors.\n# TYPE gale_supervisors gauge\ngale_supervisors {}",
        v.supervisors.len()
    );
    let _ = writeln!(
        out,
        "# HELP gale_slots Worker slots.\n# TYPE gale_slots gauge\ngale_slots{{state=\"total\"}} {total}\ngale_slots{{state=\"used\"}} {used}"
    );
    let _ = writeln!(
        out,
        "# HELP gale_topologies Topologies by status.\n# TYPE gale_topologies gauge"
    );
    for status in ["ACTIVE", "INACTIVE", "KILLED", "REBALANCING"] {
        let n = v.topologies.iter().filter(|t| t.status == status).count();
        let _ = writeln!(out, "gale_topologies{{status=\"{status}\"}} {n}");
    }
    component_lines(&mut out, v);
    executor_lines(&mut out, v);
    out
}

/// Per component: counters, end-to-end latency, capacity, spout gauges.
fn component_lines(out: &mut String, v: &ClusterView) {
    for (name, help, pick) in [
        ("emitted", "Tuples emitted", 0usize),
        ("executed", "Tuples executed", 1),
        ("acked", "Tuples acked", 2),
        ("failed", "Tuples failed", 3),
    ] {
        let _ = writeln!(
            out,
            "# HELP gale_component_{name}_total {help} since the workers started.\n# TYPE gale_component_{name}_total counter"
        );
        for t in &v.topologies {
            for c in &t.components {
                let s = stats(c);
                let n = [s.0, s.1, s.2, s.3][pick];
                let _ = writeln!(
                    out,
                    "gale_component_{name}_total{{topology=\"{}\",component=\"{}\",type=\"{}\"}} {n}",
                    esc(&t.name),
                    esc(&c.id),
                    esc(&c.kind)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP gale_component_latency_ms End-to-end latency (spout emit to this terminal component).\n# TYPE gale_component_latency_ms gauge"
    );
    for t in &v.topologies {
        for c in &t.components {
            let Some(s) = &c.stats else { continue };
            for (q, val) in [("0.5", s.latency_p50_ms), ("0.99", s.latency_p99_ms)] {
                if let Some(ms) = val {
                    let _ = writeln!(
                        out,
                        "gale_component_latency_ms{{topology=\"{}\",component=\"{}\",quantile=\"{q}\"}} {ms}",
                        esc(&t.name),
                        esc(&c.id)
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP gale_component_capacity Mean share of their workers' uptime a bolt's executors spent executing.\n# TYPE gale_component_capacity gauge"
    );
    for t in &v.topologies {
        for c in &t.components {
            if let Some(cap) = c.stats.as_ref().and_then(|s| s.capacity) {
                let _ = writeln!(
                    out,
                    "gale_component_capacity{{topology=\"{}\",component=\"{}\"}} {cap}",
                    esc(&t.name),
                    esc(&c.id)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP gale_component_gauge Gauges a component's spout tasks report, summed over its tasks (a Kafka spout's lag: kafkaOffset/<topic>/totalSpoutLag).\n# TYPE gale_component_gauge gauge"
    );
    for t in &v.topologies {
        for c in &t.components {
            let Some(s) = &c.stats else { continue };
            for (name, val) in &s.gauges {
                let _ = writeln!(
                    out,
                    "gale_component_gauge{{topology=\"{}\",component=\"{}\",name=\"{}\"}} {val}",
                    esc(&t.name),
                    esc(&c.id),
                    esc(name)
                );
            }
        }
    }
}

/// Per executor, from the running executors' heartbeats: counters, capacity, queue depth and
/// the end-to-end latency histogram.
fn executor_lines(out: &mut String, v: &ClusterView) {
    // Per executor, from the running executors' heartbeats.
    let executors = || {
        v.topologies.iter().flat_map(move |t| {
            t.components
                .iter()
                .flat_map(move |c| c.executor_stats.iter().map(move |e| (t, c, e)))
        })
    };
    let labels = |t: &TopologyView, c: &ComponentView, e: &crate::view::ExecutorView| {
        format!(
            "topology=\"{}\",component=\"{}\",executor=\"{}\",host=\"{}\",port=\"{}\"",
            esc(&t.name),
            esc(&c.id),
            esc(&e.id),
            esc(&e.host),
            e.port
        )
    };
    for (name, help, pick) in [
        (
            "emitted",
            "Tuples emitted by the executor since its worker started",
            0usize,
        ),
        ("executed", "Tuples executed", 1),
        ("acked", "Tuples acked", 2),
        ("failed", "Tuples failed", 3),
    ] {
        let _ = writeln!(
            out,
            "# HELP gale_executor_{name}_total {help}.\n# TYPE gale_executor_{name}_total counter"
        );
        for (t, c, e) in executors() {
            let n = [e.emitted, e.executed, e.acked, e.failed][pick];
            let _ = writeln!(out, "gale_executor_{name}_total{{{}}} {n}", labels(t, c, e));
        }
    }
    let _ = writeln!(
        out,
        "# HELP gale_executor_capacity Share of its worker's uptime the executor spent executing (Storm's capacity).\n# TYPE gale_executor_capacity gauge"
    );
    for (t, c, e) in executors() {
        if let Some(cap) = e.capacity {
            let _ = writeln!(out, "gale_executor_capacity{{{}}} {cap}", labels(t, c, e));
        }
    }
    let _ = writeln!(
        out,
        "# HELP gale_executor_queue_depth Batches waiting in the executor's input queue.\n# TYPE gale_executor_queue_depth gauge"
    );
    for (t, c, e) in executors() {
        if c.kind == "bolt" {
            let _ = writeln!(
                out,
                "gale_executor_queue_depth{{{}}} {}",
                labels(t, c, e),
                e.queue_depth
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP gale_executor_latency_seconds End-to-end latency (spout emit to this terminal executor).\n# TYPE gale_executor_latency_seconds histogram"
    );
    for (t, c, e) in executors() {
        if e.latency_buckets.len() != cluster_state::LATENCY_BUCKETS_US.len() {
            continue;
        }
        let l = labels(t, c, e);
        for (bound, n) in cluster_state::LATENCY_BUCKETS_US
            .iter()
            .zip(&e.latency_buckets)
        {
            let _ = writeln!(
                out,
                "gale_executor_latency_seconds_bucket{{{l},le=\"{}\"}} {n}",
                *bound as f64 / 1e6
            );
        }
        let _ = writeln!(
            out,
            "gale_executor_latency_seconds_bucket{{{l},le=\"+Inf\"}} {}",
            e.latency_count
        );
        let _ = writeln!(
            out,
            "gale_executor_latency_seconds_sum{{{l}}} {}",
            e.latency_sum_us as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "gale_executor_latency_seconds_count{{{l}}} {}",
            e.latency_count
        );
    }
}

/// Prometheus text: the coordination-store requests this Nimbus sent, by kind.
pub fn store_requests(r: &cluster_state::Requests) -> String {
    let mut out = String::from(
        "# HELP gale_nimbus_zookeeper_requests_total ZooKeeper requests this Nimbus sent.\n\
         # TYPE gale_nimbus_zookeeper_requests_total counter\n",
    );
    for (kind, n) in [
        ("create", r.creates),
        ("get", r.gets),
        ("set", r.sets),
        ("children", r.children),
        ("delete", r.deletes),
        ("watch", r.watches),
    ] {
        let _ = writeln!(
            out,
            "gale_nimbus_zookeeper_requests_total{{kind=\"{kind}\"}} {n}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{AssignmentView, ComponentStats, SupervisorView};

    fn view() -> ClusterView {
        let comp = |id: &str, kind: &str, e: u64| ComponentView {
            id: id.into(),
            kind: kind.into(),
            executors: 2,
            tasks: 2,
            stats: Some(ComponentStats {
                emitted: e,
                executed: e / 2,
                acked: e / 4,
                failed: 1,
                latency_p50_ms: None,
                latency_p99_ms: None,
                last_executed_us: None,
                ..ComponentStats::default()
            }),
            last_error: None,
            executor_stats: Vec::new(),
        };
        ClusterView {
            supervisors: vec![SupervisorView {
                id: "sup-1".into(),
                host: "h1".into(),
                ports: vec![6700, 6701],
                used_ports: vec![6700],
            }],
            topologies: vec![TopologyView {
                id: "wc-1-17".into(),
                name: "wc".into(),
                status: "ACTIVE".into(),
                uptime_secs: 3725,
                workers: 1,
                executors: 4,
                tasks: 4,
                components: vec![comp("lines", "spout", 100), comp("count", "bolt", 40)],
                streams: Vec::new(),
                last_error: None,
                assignment: vec![AssignmentView {
                    component: "count".into(),
                    task_start: 1,
                    task_end: 1,
                    supervisor: "sup-1".into(),
                    host: "h1".into(),
                    port: 6700,
                }],
            }],
        }
    }

    #[test]
    fn storm_ui_shapes() {
        let v = view();
        let c = cluster_summary(&v);
        assert_eq!(
            (
                c["slotsTotal"].as_u64(),
                c["slotsUsed"].as_u64(),
                c["slotsFree"].as_u64()
            ),
            (Some(2), Some(1), Some(1))
        );
        assert_eq!(c["executorsTotal"], 4);
        let t = topology_summary(&v);
        assert_eq!(t["topologies"][0]["uptime"], "1h 2m 5s");
        assert_eq!(t["topologies"][0]["workersTotal"], 1);
        let p = topology_page(&v, "wc-1-17").expect("by id");
        assert_eq!(p["spouts"][0]["spoutId"], "lines");
        assert_eq!(p["bolts"][0]["boltId"], "count");
        assert_eq!(p["bolts"][0]["executed"], 20);
        assert_eq!(
            p["topologyStats"][0]["acked"], 25,
            "acked counts spouts only"
        );
        assert!(topology_page(&v, "wc").is_some(), "by name too");
        assert!(topology_page(&v, "nope").is_none());
        let comp = component_page(&v, "wc", "count").expect("component");
        assert_eq!(comp["componentType"], "bolt");
        assert_eq!(comp["executorStats"][0]["port"], 6700);
        assert!(component_page(&v, "wc", "nope").is_none());
        let n = nimbus_summary("127.0.0.1:6627", true);
        assert_eq!(n["nimbuses"][0]["port"], 6627);
        assert_eq!(n["nimbuses"][0]["status"], "Leader");
    }

    #[test]
    fn prometheus_text() {
        let mut v = view();
        v.topologies[0].components[1].executor_stats = vec![crate::view::ExecutorView {
            id: "[1-1]".into(),
            host: "h1".into(),
            port: 6700,
            executed: 20,
            capacity: Some(0.25),
            queue_depth: 3,
            latency_buckets: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10],
            latency_count: 10,
            latency_sum_us: 20_000,
            ..Default::default()
        }];
        if let Some(s) = v.topologies[0].components[1].stats.as_mut() {
            s.latency_p99_ms = Some(1.5);
            s.gauges
                .insert("kafkaOffset/lines/totalSpoutLag".into(), 42);
        }
        let text = prometheus(&v);
        let ex = r#"topology="wc",component="count",executor="[1-1]",host="h1",port="6700""#;
        for line in [
            format!("gale_executor_executed_total{{{ex}}} 20"),
            format!("gale_executor_capacity{{{ex}}} 0.25"),
            format!("gale_executor_queue_depth{{{ex}}} 3"),
            format!("gale_executor_latency_seconds_bucket{{{ex},le=\"0.001\"}} 4"),
            format!("gale_executor_latency_seconds_bucket{{{ex},le=\"+Inf\"}} 10"),
            format!("gale_executor_latency_seconds_sum{{{ex}}} 0.02"),
            format!("gale_executor_latency_seconds_count{{{ex}}} 10"),
        ] {
            assert!(text.contains(&line), "{line} in\n{text}");
        }
        assert!(
            text.contains("gale_component_gauge{topology=\"wc\",component=\"count\",name=\"kafkaOffset/lines/totalSpoutLag\"} 42"),
            "{text}"
        );
        assert!(
            text.contains("gale_component_latency_ms{topology=\"wc\",component=\"count\",quantile=\"0.99\"} 1.5"),
            "{text}"
        );
        assert!(text.contains("gale_slots{state=\"used\"} 1"), "{text}");
        assert!(
            text.contains("gale_topologies{status=\"ACTIVE\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gale_component_executed_total{topology=\"wc\",component=\"count\",type=\"bolt\"} 20"),
            "{text}"
        );
        // Every sample line is `name{labels} number`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, n) = l.rsplit_once(' ').expect("value");
            assert!(n.parse::<f64>().is_ok(), "{l}");
        }
    }
}
