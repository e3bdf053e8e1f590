//! The assignment loop's pass ([`reconcile`]) and the reads of cluster state it shares with the
//! API ([`cluster_view`]): timed kills and rebalances (by [`lifecycle`]), dead slots, the
//! scheduler, and the assignments that changed written to ZooKeeper.

use crate::lifecycle::{self, Action, Outcome};
use crate::scheduler::{
    Assignment, ClusterSnapshot, Slot, SupervisorInfo, TopologyRequest, schedule,
};
use crate::view::{ClusterView, ComponentStats, SupervisorView, topology_view};
use cluster_state::{
    AssignedTopology, AssignmentRecord, ClusterState, ExecutorSlot, StateError, Store, StormRecord,
    SupervisorAssignments, SupervisorRecord, WorkerBeat, now_secs,
};
use flux::Topology;
use flux::keys;
use flux::layout::{ExecutorId, task_layout};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The scheduler's view of the registered supervisors, without the `dead` slots.
pub(crate) fn snapshot(
    supervisors: &[SupervisorRecord],
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

pub(crate) fn to_assignment(r: &AssignmentRecord) -> Assignment {
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

/// Topology definitions by id, read once (an id's definition never changes).
pub type Topologies = std::sync::Mutex<BTreeMap<String, std::sync::Arc<Topology>>>;

/// One pass of the assignment loop: timed actions (kill, rebalance), then the scheduler, then
/// the assignments that changed written. Every record is read once per pass.
pub(crate) async fn reconcile<S: Store>(
    state: &ClusterState<S>,
    worker_timeout: Duration,
    liveness: &std::sync::Mutex<Liveness>,
    grace: Duration,
    beat: Duration,
    topologies: &Topologies,
) -> Result<(), StateError> {
    let now = now_secs();
    let lease_ms = lease(grace, worker_timeout).as_millis() as u64;
    let beat_ms = beat.as_millis() as u64;
    let registered = state.supervisors().await?;
    let assignments = state.assignments().await?;
    let supervisors = liveness.lock().unwrap_or_else(|p| p.into_inner()).observe(
        std::time::Instant::now(),
        registered,
        &assignments,
        grace,
    );
    let assignments: BTreeMap<String, AssignmentRecord> = assignments.into_iter().collect();
    let mut storms = state.storms().await?;
    let mut beats: BTreeMap<String, Vec<WorkerBeat>> = BTreeMap::new();
    for (id, _) in &storms {
        let all = state.workerbeats(id).await?;
        beats.insert(id.clone(), fold_stopped_workers(state, id, all).await?);
    }
    let dead = dead_slots(&supervisors, &assignments, &beats, now, worker_timeout);
    let cluster = snapshot(&supervisors, &dead);
    storms.sort_by_key(|(id, s)| (s.launch_time_secs, id.clone()));
    topologies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|id, _| storms.iter().any(|(s, _)| s == id));
    let mut requests = Vec::new();
    for (id, storm) in storms {
        let current = assignments.get(&id);
        if let Some(r) =
            request_after_due_action(state, id, storm, now, current, topologies).await?
        {
            requests.push(r);
        }
    }
    let out = schedule(&cluster, &requests);
    let live: BTreeSet<&str> = supervisors.iter().map(|s| s.id.as_str()).collect();
    let none = Vec::new();
    for r in &requests {
        let old = assignments.get(&r.id).cloned().unwrap_or_default();
        let changed = out
            .get(&r.id)
            .filter(|new| **new != r.current || r.current.is_empty())
            .and_then(|new| assignment_record(new, &old, &supervisors, now));
        let stale = old.held
            || (!old.executors.is_empty() && (old.lease_ms, old.beat_ms) != (lease_ms, beat_ms));
        let Some(mut rec) = changed.or_else(|| stale.then(|| old.clone())) else {
            continue;
        };
        let beats = beats.get(&r.id).unwrap_or(&none);
        rec.held = !old_workers_gone(&rec, beats, &live);
        rec.lease_ms = lease_ms;
        rec.beat_ms = beat_ms;
        if rec == old {
            continue;
        }
        tracing::info!(topology = %r.id, executors = rec.executors.len(), held = rec.held, "Writing assignment");
        state.set_assignment(&r.id, &rec).await?;
    }
    publish_supervisor_assignments(state, &supervisors).await
}

/// How often supervisors write their workers' heartbeats: as asked, but at most a third of the
/// worker timeout, so that two beats can be late before a worker counts as dead (and at least
/// 100 ms).
pub fn beat_period(asked: Duration, worker_timeout: Duration) -> Duration {
    asked
        .min(worker_timeout / 3)
        .max(Duration::from_millis(100))
}

/// What each supervisor runs, from the assignments and the topologies' status: one record per
/// supervisor, the node its supervisor watches.
pub fn supervisor_assignments(
    assignments: &[(String, AssignmentRecord)],
    storms: &[(String, StormRecord)],
) -> BTreeMap<String, SupervisorAssignments> {
    let mut out: BTreeMap<String, SupervisorAssignments> = BTreeMap::new();
    for (id, a) in assignments {
        let Some((_, storm)) = storms.iter().find(|(s, _)| s == id) else {
            continue;
        };
        let entry = AssignedTopology {
            generation: a.generation(),
            status: storm.status,
        };
        let used: BTreeSet<&str> = a.executors.iter().map(|e| e.supervisor.as_str()).collect();
        for sup in used {
            out.entry(sup.to_owned())
                .or_default()
                .topologies
                .insert(id.clone(), entry);
        }
    }
    out
}

/// Writes the per-supervisor records that changed and removes those of supervisors gone (Nimbus
/// reads them from its mirror: comparing costs no request).
///
/// A live supervisor that runs nothing gets an empty record, so that the node it watches exists
/// (reading a missing node and watching for its creation would be two requests a pass).
async fn publish_supervisor_assignments<S: Store>(
    state: &ClusterState<S>,
    live: &[SupervisorRecord],
) -> Result<(), StateError> {
    let mut want = supervisor_assignments(&state.assignments().await?, &state.storms().await?);
    for s in live {
        want.entry(s.id.clone()).or_default();
    }
    let have: BTreeMap<String, SupervisorAssignments> = state
        .all_supervisor_assignments()
        .await?
        .into_iter()
        .collect();
    for (sup, rec) in &want {
        if have.get(sup) != Some(rec) {
            tracing::debug!(supervisor = %sup, topologies = rec.topologies.len(), "Writing a supervisor's assignments");
            state.set_supervisor_assignments(sup, rec).await?;
        }
    }
    for sup in have.keys().filter(|s| !want.contains_key(*s)) {
        state.remove_supervisor_assignments(sup).await?;
    }
    Ok(())
}

/// How long a supervisor may run its executors without reading its assignment (fencing): Nimbus
/// moves them no sooner than the supervisor timeout after the supervisor's session ended (and
/// that ends a session timeout after it was last heard), or the worker timeout after its last
/// heartbeat. Three quarters of the shorter leaves the rest for stopping the workers.
pub fn lease(supervisor_timeout: Duration, worker_timeout: Duration) -> Duration {
    supervisor_timeout.min(worker_timeout) * 3 / 4
}

/// Which supervisors the scheduler may place on: the registered ones, and those that were
/// alive and have been missing for less than the supervisor timeout. Missing time counts only
/// over passes that read the store: after a ZooKeeper outage, or a Nimbus that lost its session,
/// supervisors get the whole timeout to register again from the first pass that sees them gone,
/// so an outage moves nothing. A Nimbus that starts knows the supervisors of the assignments in
/// force as alive before it.
#[derive(Debug, Default)]
pub struct Liveness {
    /// Supervisor id -> its last record, and since when it is missing (`None`: registered).
    known: BTreeMap<String, (SupervisorRecord, Option<std::time::Instant>)>,
}

impl Liveness {
    pub fn observe(
        &mut self,
        now: std::time::Instant,
        registered: Vec<SupervisorRecord>,
        assignments: &[(String, AssignmentRecord)],
        grace: Duration,
    ) -> Vec<SupervisorRecord> {
        // Supervisors the assignments in force use, as far as they tell (a restarted Nimbus).
        for (_, a) in assignments {
            for e in &a.executors {
                let rec = match self.known.get_mut(&e.supervisor) {
                    Some((rec, _)) => rec,
                    None => {
                        let host = a.hosts.get(&e.supervisor).cloned().unwrap_or_default();
                        let entry = (placeholder(&e.supervisor, host), Some(now));
                        &mut self.known.entry(e.supervisor.clone()).or_insert(entry).0
                    }
                };
                if rec.classes.is_none() && !rec.ports.contains(&e.port) {
                    rec.ports.push(e.port);
                }
            }
        }
        for (_, missing) in self.known.values_mut() {
            missing.get_or_insert(now);
        }
        for r in registered {
            self.known.insert(r.id.clone(), (r, None));
        }
        self.known.retain(|_, (_, missing)| {
            missing.is_none_or(|since| now.duration_since(since) < grace)
        });
        // A missing supervisor keeps what it runs, and takes nothing new.
        let in_use = |id: &str, port: u16| {
            assignments.iter().any(|(_, a)| {
                a.executors
                    .iter()
                    .any(|e| e.supervisor == id && e.port == port)
            })
        };
        self.known
            .values()
            .map(|(r, missing)| {
                let mut r = r.clone();
                if missing.is_some() {
                    let id = r.id.clone();
                    r.ports.retain(|p| in_use(&id, *p));
                }
                r
            })
            .collect()
    }
}

/// What an assignment tells of a supervisor Nimbus has not seen register: its id, host and the
/// ports it runs workers on. (`classes: None`: it ran them, so it can.)
fn placeholder(id: &str, host: String) -> SupervisorRecord {
    SupervisorRecord {
        id: id.to_owned(),
        host,
        ports: Vec::new(),
        used_ports: Vec::new(),
        start_time_secs: 0,
        version: String::new(),
        classes: None,
    }
}

/// Adds the last counters of the topology's stopped workers (their final beats) to its totals,
/// then removes those beats: status totals count across worker restarts. Returns the live
/// workers' beats.
async fn fold_stopped_workers<S: Store>(
    state: &ClusterState<S>,
    id: &str,
    beats: Vec<WorkerBeat>,
) -> Result<Vec<WorkerBeat>, StateError> {
    let (stopped, live): (Vec<WorkerBeat>, Vec<WorkerBeat>) =
        beats.into_iter().partition(|b| b.stopped.is_some());
    if stopped.is_empty() {
        return Ok(live);
    }
    let mut totals = state.totals(id).await?.unwrap_or_default();
    for b in &stopped {
        totals.add(b);
    }
    state.set_totals(id, &totals).await?;
    for b in &stopped {
        state.remove_stopped_workerbeat(id, b).await?;
    }
    Ok(live)
}

/// Slots whose worker heartbeat stopped are dead even if their supervisor is still registered
/// (e.g. its sync loop hangs): the scheduler leaves them out, so their executors move. Only
/// beats of workers that should be running count; a dead supervisor's leftovers would otherwise
/// keep its slots out after it comes back.
pub fn dead_slots(
    supervisors: &[SupervisorRecord],
    assignments: &BTreeMap<String, AssignmentRecord>,
    beats: &BTreeMap<String, Vec<WorkerBeat>>,
    now: u64,
    worker_timeout: Duration,
) -> Vec<(String, u16)> {
    let live: BTreeSet<&str> = supervisors.iter().map(|s| s.id.as_str()).collect();
    let mut dead = Vec::new();
    for (id, beats) in beats {
        let Some(assigned) = assignments.get(id) else {
            continue;
        };
        let slots: BTreeSet<(&str, u16)> = assigned
            .executors
            .iter()
            .map(|e| (e.supervisor.as_str(), e.port))
            .collect();
        for b in beats.iter().filter(|b| b.stopped.is_none()) {
            let running = live.contains(b.supervisor.as_str())
                && slots.contains(&(b.supervisor.as_str(), b.port));
            if running && now.saturating_sub(b.time_secs) > worker_timeout.as_secs() {
                tracing::warn!(topology = %id, supervisor = %b.supervisor, port = b.port, "Worker heartbeat stopped; moving its executors");
                dead.push((b.supervisor.clone(), b.port));
            }
        }
    }
    dead
}

/// Applies a kill's or a rebalance's wait that ended ([`lifecycle`]), then says what the
/// scheduler must place for the topology (`None` once it is removed).
async fn request_after_due_action<S: Store>(
    state: &ClusterState<S>,
    id: String,
    storm: StormRecord,
    now: u64,
    current: Option<&AssignmentRecord>,
    topologies: &Topologies,
) -> Result<Option<TopologyRequest>, StateError> {
    let mut current = current.map(to_assignment).unwrap_or_default();
    let storm = match lifecycle::apply(&storm, &Action::WaitEnded, now) {
        Ok(Outcome::Remove) => {
            tracing::info!(topology = %id, "Removing killed topology");
            state.remove_topology(&id).await?;
            return Ok(None);
        }
        Ok(Outcome::Respread(next)) => {
            state.set_storm(&id, &next).await?;
            // A rebalance re-spreads everything.
            current.clear();
            tracing::info!(topology = %id, workers = next.workers, "Rebalancing");
            next
        }
        _ => storm,
    };
    let cached = topologies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .cloned();
    let stored = match cached {
        Some(t) => t,
        None => {
            let Some(stored) = state.topology(&id).await? else {
                return Ok(None);
            };
            let t = std::sync::Arc::new(stored.topology);
            topologies
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), t.clone());
            t
        }
    };
    let topo = effective_topology(&stored, &storm);
    let layout = task_layout(&topo, topo.acker_executors());
    Ok(Some(TopologyRequest {
        id,
        workers: storm.workers,
        executors: layout
            .iter()
            .flat_map(|c| c.executors.iter().copied())
            .collect(),
        current,
        classes: topo.components().map(|c| c.class_name.clone()).collect(),
    }))
}

/// Whether every worker that runs executors of the topology elsewhere than `rec` places them has
/// stopped: no live supervisor's heartbeat shows a worker whose executors differ from what `rec`
/// gives its slot. (A supervisor gone for the supervisor timeout is not live; its beats are
/// leftovers.)
pub fn old_workers_gone(
    rec: &AssignmentRecord,
    beats: &[WorkerBeat],
    live: &BTreeSet<&str>,
) -> bool {
    beats.iter().all(|b| {
        if b.stopped.is_some() || !live.contains(b.supervisor.as_str()) {
            return true;
        }
        let running: BTreeSet<(u32, u32)> = b.executors.iter().map(|e| (e.start, e.end)).collect();
        let assigned: BTreeSet<(u32, u32)> = rec
            .executors
            .iter()
            .filter(|e| e.supervisor == b.supervisor && e.port == b.port)
            .map(|e| (e.start, e.end))
            .collect();
        running == assigned
    })
}

/// The record to write for the scheduler's `new` assignment, or `None` when it places every
/// executor where `old` does. Executors that stay keep their start time; the host of every
/// supervisor used is recorded.
pub fn assignment_record(
    new: &Assignment,
    old: &AssignmentRecord,
    supervisors: &[SupervisorRecord],
    now: u64,
) -> Option<AssignmentRecord> {
    let executors: Vec<ExecutorSlot> = new
        .iter()
        .map(|(e, s)| ExecutorSlot {
            start: e.start,
            end: e.end,
            supervisor: s.supervisor.clone(),
            port: s.port,
        })
        .collect();
    if executors == old.executors {
        return None;
    }
    let mut rec = AssignmentRecord {
        executors,
        hosts: BTreeMap::new(),
        start_times: BTreeMap::new(),
        held: false,
        lease_ms: 0,
        beat_ms: 0,
    };
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
    Some(rec)
}

/// One running executor, from its worker's beat.
fn executor_view(
    b: &cluster_state::WorkerBeat,
    e: &cluster_state::ExecutorBeat,
    hosts: &BTreeMap<&str, &str>,
) -> crate::view::ExecutorView {
    let up_secs = b.uptime_secs.max(1);
    crate::view::ExecutorView {
        id: format!("[{}-{}]", e.start, e.end),
        supervisor: b.supervisor.clone(),
        host: hosts
            .get(b.supervisor.as_str())
            .map(|h| (*h).to_owned())
            .unwrap_or_default(),
        port: b.port,
        uptime_secs: b.uptime_secs,
        emitted: e.emitted,
        executed: e.executed,
        acked: e.acked,
        failed: e.failed,
        busy_us: e.busy_us,
        queue_depth: e.queue_depth,
        capacity: (e.busy_us > 0).then(|| (e.busy_us as f64 / (up_secs as f64 * 1e6)).min(1.0)),
        execute_latency_ms: (e.busy_us > 0 && e.executed > 0)
            .then(|| e.busy_us as f64 / e.executed as f64 / 1000.0),
        latency_buckets: e.latency_buckets.clone(),
        latency_count: e.latency_count,
        latency_sum_us: e.latency_sum_us,
    }
}

/// A component's stats: its stopped workers' counters (`done`) plus its running executors'
/// (from `beats`), with latencies, capacity and gauges; and each running executor's own.
fn component_stats(
    component: &str,
    done: cluster_state::Totals,
    beats: &[cluster_state::WorkerBeat],
    hosts: &BTreeMap<&str, &str>,
) -> (ComponentStats, Vec<crate::view::ExecutorView>) {
    let mut st = ComponentStats {
        emitted: done.emitted,
        executed: done.executed,
        acked: done.acked,
        failed: done.failed,
        ..ComponentStats::default()
    };
    let mut executors = Vec::new();
    // Executor time the running workers have been up, for capacity.
    let (mut up_us, mut running) = (0u64, 0u64);
    let (mut complete_us, mut completed) = (0u64, 0u64);
    let worst = |cur: Option<f64>, us: Option<u64>| match (cur, us) {
        (c, None) => c,
        (None, Some(u)) => Some(u as f64 / 1000.0),
        (Some(c), Some(u)) => Some(c.max(u as f64 / 1000.0)),
    };
    for b in beats {
        for e in b.executors.iter().filter(|e| e.component == component) {
            executors.push(executor_view(b, e, hosts));
            st.busy_us += e.busy_us;
            complete_us += e.complete_us;
            completed += e.completed;
            up_us += b.uptime_secs.max(1) * 1_000_000;
            running += e.executed;
            st.emitted += e.emitted;
            st.executed += e.executed;
            st.acked += e.acked;
            st.failed += e.failed;
            st.latency_p50_ms = worst(st.latency_p50_ms, e.latency_p50_us);
            st.latency_p99_ms = worst(st.latency_p99_ms, e.latency_p99_us);
            st.last_executed_us = st.last_executed_us.max(e.last_executed_us);
            for (name, v) in &e.gauges {
                *st.gauges.entry(name.clone()).or_insert(0) += v;
            }
        }
    }
    if completed > 0 {
        st.complete_latency_ms = Some(complete_us as f64 / completed as f64 / 1000.0);
    }
    if st.busy_us > 0 && running > 0 {
        st.execute_latency_ms = Some(st.busy_us as f64 / running as f64 / 1000.0);
    }
    if st.busy_us > 0 && up_us > 0 {
        st.capacity = Some((st.busy_us as f64 / up_us as f64).min(1.0));
    }
    (st, executors)
}

/// The whole cluster as docs/contract.md §7 shows it, with per-component stats from worker heartbeats.
pub async fn cluster_view<S: Store>(state: &ClusterState<S>) -> Result<ClusterView, StateError> {
    let supervisors = state.supervisors().await?;
    let hosts: BTreeMap<&str, &str> = supervisors
        .iter()
        .map(|s| (s.id.as_str(), s.host.as_str()))
        .collect();
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
                b.stopped.is_none()
                    && assignment
                        .values()
                        .any(|s| s.supervisor == b.supervisor && s.port == b.port)
            })
            .collect();
        let retired = state.totals(id).await?.unwrap_or_default();
        for c in &mut v.components {
            let done = retired.components.get(&c.id).copied().unwrap_or_default();
            let (st, executors) = component_stats(&c.id, done, &beats, &hosts);
            c.stats = Some(st);
            c.executor_stats = executors;
        }
        for (component, rec) in state.errors(id).await? {
            let Some(e) = rec.errors.last() else { continue };
            let msg = format!("task {} on {}:{}: {}", e.task, e.host, e.port, e.message);
            match v.components.iter_mut().find(|c| c.id == component) {
                Some(c) => {
                    c.last_error = Some(msg);
                    if let Some(st) = c.stats.as_mut() {
                        st.last_error_time_secs = Some(e.time_secs);
                    }
                }
                // A worker that could not start (`__worker`): the topology's own error.
                None => v.last_error = Some(msg),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(sup: &str, port: u16) -> Slot {
        Slot {
            supervisor: sup.into(),
            port,
        }
    }

    fn sup(id: &str) -> SupervisorRecord {
        SupervisorRecord {
            id: id.into(),
            host: format!("{id}.example"),
            ports: vec![6700, 6701],
            used_ports: vec![],
            start_time_secs: 0,
            version: "t".into(),
            classes: None,
        }
    }

    #[test]
    fn kept_executors_keep_their_start_time_and_moved_ones_restart() {
        let e = |s, t| ExecutorId { start: s, end: t };
        let first: Assignment =
            BTreeMap::from([(e(1, 1), slot("a", 6700)), (e(2, 3), slot("b", 6700))]);
        let sups = [sup("a"), sup("b")];
        let rec = assignment_record(&first, &AssignmentRecord::default(), &sups, 10).expect("new");
        assert_eq!(rec.start_times["1-1"], 10);
        assert_eq!(rec.hosts["b"], "b.example");
        // The same placement again: nothing to write.
        assert_eq!(assignment_record(&first, &rec, &sups, 20), None);
        // Executor 2-3 moves to a: it restarts; 1-1 stays and keeps its time.
        let moved: Assignment =
            BTreeMap::from([(e(1, 1), slot("a", 6700)), (e(2, 3), slot("a", 6701))]);
        let rec2 = assignment_record(&moved, &rec, &sups, 30).expect("changed");
        assert_eq!(rec2.start_times["1-1"], 10);
        assert_eq!(rec2.start_times["2-3"], 30);
        assert_eq!(rec2.hosts.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn each_supervisor_is_told_the_topologies_it_runs_and_their_status() {
        let slot = |sup: &str, start: u32| ExecutorSlot {
            start,
            end: start,
            supervisor: sup.into(),
            port: 6700,
        };
        let a1 = AssignmentRecord {
            executors: vec![slot("a", 1), slot("b", 2)],
            ..Default::default()
        };
        let a2 = AssignmentRecord {
            executors: vec![slot("b", 1)],
            ..Default::default()
        };
        let storm = |status| StormRecord {
            name: "t".into(),
            status,
            launch_time_secs: 0,
            workers: 1,
            component_executors: BTreeMap::new(),
            action_at_secs: None,
            prev_status: None,
        };
        let storms = vec![
            (
                "t1".to_string(),
                storm(cluster_state::TopologyStatus::Active),
            ),
            (
                "t2".to_string(),
                storm(cluster_state::TopologyStatus::Inactive),
            ),
        ];
        let out = supervisor_assignments(
            &[("t1".into(), a1.clone()), ("t2".into(), a2.clone())],
            &storms,
        );
        assert_eq!(out.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(out["a"].topologies.keys().collect::<Vec<_>>(), ["t1"]);
        assert_eq!(
            out["b"].topologies["t2"],
            AssignedTopology {
                generation: a2.generation(),
                status: cluster_state::TopologyStatus::Inactive
            }
        );
        // Any change to an assignment changes its generation: its supervisors read it again.
        let mut moved = a1.clone();
        moved.executors[1].port = 6701;
        assert_ne!(moved.generation(), a1.generation());
        let mut held = a1.clone();
        held.held = true;
        assert_ne!(held.generation(), a1.generation());
        // An assignment without its storm record (being removed) is nobody's.
        assert!(supervisor_assignments(&[("t3".into(), a1)], &storms).is_empty());
    }

    #[test]
    fn heartbeats_come_as_asked_or_every_third_of_a_shorter_worker_timeout() {
        let s = Duration::from_secs;
        // (asked, worker timeout, period)
        for (asked, timeout, want) in [
            (s(5), s(30), s(5)),
            (s(5), s(9), s(3)),
            (s(1), s(30), s(1)),
            (s(5), Duration::ZERO, Duration::from_millis(100)),
            (Duration::ZERO, s(30), Duration::from_millis(100)),
        ] {
            assert_eq!(beat_period(asked, timeout), want, "{asked:?} {timeout:?}");
        }
    }

    /// The lease ends before either way Nimbus could move a supervisor's executors.
    #[test]
    fn the_lease_is_three_quarters_of_the_shorter_timeout() {
        let s = Duration::from_secs;
        for (supervisor, worker, want) in [
            (s(30), s(30), Duration::from_millis(22_500)),
            (s(10), s(30), Duration::from_millis(7_500)),
            (s(60), s(30), Duration::from_millis(22_500)),
            (s(0), s(30), Duration::ZERO),
        ] {
            assert_eq!(lease(supervisor, worker), want, "{supervisor:?} {worker:?}");
            assert!(want < supervisor.min(worker) || want.is_zero());
        }
    }

    #[test]
    fn a_missing_supervisor_is_kept_for_the_timeout_counted_over_passes_that_saw_it_gone() {
        let t0 = std::time::Instant::now();
        let grace = Duration::from_secs(5);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut l = Liveness::default();
        let ids = |v: Vec<SupervisorRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        // (time, registered, supervisors scheduled on)
        assert_eq!(
            ids(l.observe(at(0), vec![sup("a"), sup("b")], &[], grace)),
            ["a", "b"]
        );
        // b vanishes (a ZooKeeper session lost): kept while within the timeout.
        assert_eq!(
            ids(l.observe(at(1), vec![sup("a")], &[], grace)),
            ["a", "b"]
        );
        assert_eq!(
            ids(l.observe(at(5), vec![sup("a")], &[], grace)),
            ["a", "b"]
        );
        // ... and gone once missing for the whole timeout.
        assert_eq!(ids(l.observe(at(6), vec![sup("a")], &[], grace)), ["a"]);
        // An outage: no pass reads the store from 10 s to 40 s; both re-register by 41 s. The
        // first pass after it sees neither yet: both kept, nothing moves.
        assert_eq!(
            ids(l.observe(at(10), vec![sup("a"), sup("b")], &[], grace)),
            ["a", "b"]
        );
        assert_eq!(ids(l.observe(at(40), vec![], &[], grace)), ["a", "b"]);
        assert_eq!(
            ids(l.observe(at(41), vec![sup("a"), sup("b")], &[], grace)),
            ["a", "b"]
        );
    }

    #[test]
    fn a_restarted_nimbus_knows_the_supervisors_of_the_assignments_in_force() {
        let t0 = std::time::Instant::now();
        let grace = Duration::from_secs(5);
        let a = AssignmentRecord {
            executors: vec![ExecutorSlot {
                start: 1,
                end: 1,
                supervisor: "old".into(),
                port: 6701,
            }],
            hosts: BTreeMap::from([("old".to_string(), "h".to_string())]),
            start_times: BTreeMap::new(),
            held: false,
            lease_ms: 0,
            beat_ms: 0,
        };
        let mut l = Liveness::default();
        let seen = l.observe(t0, vec![sup("new")], &[("t".into(), a.clone())], grace);
        let old = seen.iter().find(|r| r.id == "old").expect("kept");
        assert_eq!(
            (old.host.as_str(), old.ports.as_slice()),
            ("h", &[6701][..])
        );
        let later = l.observe(
            t0 + Duration::from_secs(6),
            vec![sup("new")],
            &[("t".into(), a)],
            grace,
        );
        assert_eq!(later.len(), 1, "missing for the whole timeout: gone");
    }

    #[test]
    fn an_assignment_is_held_until_old_workers_on_live_supervisors_are_gone() {
        let slot = |sup: &str, port: u16, start: u32| ExecutorSlot {
            start,
            end: start,
            supervisor: sup.into(),
            port,
        };
        let rec = AssignmentRecord {
            executors: vec![slot("a", 1, 1), slot("a", 1, 2)],
            ..AssignmentRecord::default()
        };
        let beat = |sup: &str, port: u16, execs: &[u32]| WorkerBeat {
            time_secs: 0,
            supervisor: sup.into(),
            port,
            uptime_secs: 0,
            executors: execs
                .iter()
                .map(|s| cluster_state::ExecutorBeat {
                    start: *s,
                    end: *s,
                    ..Default::default()
                })
                .collect(),
            stopped: None,
        };
        let live: BTreeSet<&str> = ["a", "b"].into();
        // (beats, gone?)
        let cases: Vec<(Vec<WorkerBeat>, bool)> = vec![
            (vec![], true),
            // The worker already runs exactly what it is given: nothing to wait for.
            (vec![beat("a", 1, &[1, 2])], true),
            // It still runs the old set (1 only): wait for it to restart.
            (vec![beat("a", 1, &[1])], false),
            // Executor 2 still runs on b: wait.
            (vec![beat("a", 1, &[1, 2]), beat("b", 1, &[2])], false),
            // c is not live (gone for the timeout): its beat is a leftover.
            (vec![beat("a", 1, &[1, 2]), beat("c", 1, &[2])], true),
        ];
        for (beats, want) in cases {
            assert_eq!(old_workers_gone(&rec, &beats, &live), want, "{beats:?}");
        }
    }
}
