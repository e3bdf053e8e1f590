//! The records stored under each path (docs/contract.md §6), encoded with rmp-serde with named fields so
//! that fields can be added without breaking older readers.

use flux::Topology;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `/supervisors/<id>` (ephemeral).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorRecord {
    pub id: String,
    pub host: String,
    pub ports: Vec<u16>,
    pub used_ports: Vec<u16>,
    pub start_time_secs: u64,
    pub version: String,
    /// The component class names (and aliases) this supervisor's binary can run: Nimbus accepts
    /// a topology only if some live supervisor can run all of its classes, and places it only
    /// there. `None` (a record from before this field): it is not known, so anything is assumed.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
}

/// A topology's lifecycle state, as Storm's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TopologyStatus {
    Active,
    Inactive,
    Rebalancing,
    Killed,
}

impl TopologyStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            TopologyStatus::Active => "ACTIVE",
            TopologyStatus::Inactive => "INACTIVE",
            TopologyStatus::Rebalancing => "REBALANCING",
            TopologyStatus::Killed => "KILLED",
        }
    }
}

/// `/storms/<topology-id>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StormRecord {
    pub name: String,
    pub status: TopologyStatus,
    pub launch_time_secs: u64,
    pub workers: u32,
    /// Executors per component (after rebalances).
    pub component_executors: BTreeMap<String, u32>,
    /// For KILLED and REBALANCING: when the wait ends (epoch secs).
    #[serde(default)]
    pub action_at_secs: Option<u64>,
    /// Status to return to after a rebalance.
    #[serde(default)]
    pub prev_status: Option<TopologyStatus>,
}

/// `/topologies/<topology-id>`: the normalized topology and the resources shipped with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredTopology {
    pub topology: Topology,
    /// Files shipped with `gale submit --resources DIR` (relative path, content).
    #[serde(default)]
    pub resources: Vec<(String, Vec<u8>)>,
}

/// Why a shipped resource's name is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResourceNameError {
    #[error("resource name {0:?} is empty or has an empty part")]
    Empty(String),
    #[error("resource name {0:?} must be a relative path without `.`, `..` or a leading `/`")]
    NotRelative(String),
    #[error("resource name {0:?} holds a NUL or control character")]
    Control(String),
    #[error("resource name {0:?} is too long (a part over 255 bytes or the whole over 1024)")]
    TooLong(String),
}

/// Checks a shipped file's name before anything is written under it: a relative path of plain
/// parts joined by `/` (no `.`, `..`, empty or absolute parts, no control characters), each part
/// at most 255 bytes and the whole at most 1024. Nimbus refuses a submission with such a name and
/// a Supervisor refuses it again before writing.
pub fn check_resource_name(name: &str) -> Result<(), ResourceNameError> {
    let owned = || name.to_string();
    if name.len() > 1024 {
        return Err(ResourceNameError::TooLong(owned()));
    }
    if name.chars().any(char::is_control) {
        return Err(ResourceNameError::Control(owned()));
    }
    if name.starts_with('/') {
        return Err(ResourceNameError::NotRelative(owned()));
    }
    for part in name.split('/') {
        match part {
            "" => return Err(ResourceNameError::Empty(owned())),
            "." | ".." => return Err(ResourceNameError::NotRelative(owned())),
            p if p.len() > 255 => return Err(ResourceNameError::TooLong(owned())),
            _ => {}
        }
    }
    Ok(())
}

/// One executor's slot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExecutorSlot {
    pub start: u32,
    pub end: u32,
    pub supervisor: String,
    pub port: u16,
}

/// `/assignments/<topology-id>`. Stored in a compact form ([`AssignmentWire`]): about 6 bytes
/// per executor instead of 48, so that a topology of 50,000 executors on 4,000 slots fits in
/// one ZooKeeper node (docs/scale.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "AssignmentWire", from = "AssignmentWire")]
pub struct AssignmentRecord {
    pub executors: Vec<ExecutorSlot>,
    /// Host of each supervisor used.
    pub hosts: BTreeMap<String, String>,
    /// When each executor was (re)assigned, keyed "start-end".
    pub start_times: BTreeMap<String, u64>,
    /// Workers of the previous assignment may still run some of these executors on live
    /// supervisors: supervisors stop what changed but start nothing until Nimbus clears this,
    /// once those workers are gone (never two copies of one task).
    #[serde(default)]
    pub held: bool,
    /// Fencing: a supervisor that has not read this record for this long stops running its
    /// executors, before Nimbus could move them (`worker::runtime::Lease`). 0: no lease (a
    /// record from a Nimbus that did not write one).
    #[serde(default)]
    pub lease_ms: u64,
    /// How often supervisors write the heartbeats of this topology's workers (0: a record from
    /// a Nimbus that did not say; once a second). Nimbus keeps it well inside its worker
    /// timeout.
    #[serde(default)]
    pub beat_ms: u64,
}

impl AssignmentRecord {
    /// A fingerprint of the record: what a supervisor's index ([`SupervisorAssignments`])
    /// names, so that a supervisor reads an assignment again only when it changed.
    pub fn generation(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        self.hash(&mut h);
        h.finish()
    }
}

/// `/assigned/<supervisor-id>`: what one supervisor runs, written by Nimbus whenever it
/// changes. A supervisor watches only this node, and reads a topology's assignment only when
/// its generation here changed (docs/scale.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorAssignments {
    pub topologies: BTreeMap<String, AssignedTopology>,
}

/// One topology in a [`SupervisorAssignments`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedTopology {
    /// [`AssignmentRecord::generation`] of its assignment.
    pub generation: u64,
    /// Whether its spouts run (activate/deactivate reach supervisors this way).
    pub status: TopologyStatus,
}

/// How an [`AssignmentRecord`] is stored. Supervisor names are listed once, slots once (as
/// indices into the names), start times once; each executor is four small integers that
/// MessagePack writes in one byte each in the common case: its start's distance from the
/// previous executor's end (0 when task ranges follow each other), its length - 1, its slot's
/// index and its start time's index (-1: none). Records written in the first, per-executor form
/// (`executors`, `start_times`) are still read.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct AssignmentWire {
    #[serde(default)]
    supervisors: Vec<String>,
    /// (supervisor index, port) pairs, flattened.
    #[serde(default)]
    slots: Vec<u32>,
    #[serde(default)]
    times: Vec<u64>,
    /// (start gap, length - 1, slot index, time index) per executor, flattened.
    #[serde(default)]
    table: Vec<i64>,
    #[serde(default)]
    hosts: BTreeMap<String, String>,
    #[serde(default)]
    held: bool,
    #[serde(default)]
    lease_ms: u64,
    #[serde(default)]
    beat_ms: u64,
    /// The first form's fields (read only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    executors: Vec<ExecutorSlot>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    start_times: BTreeMap<String, u64>,
}

impl From<AssignmentRecord> for AssignmentWire {
    fn from(r: AssignmentRecord) -> Self {
        let mut w = AssignmentWire {
            hosts: r.hosts,
            held: r.held,
            lease_ms: r.lease_ms,
            beat_ms: r.beat_ms,
            ..AssignmentWire::default()
        };
        let mut sup_index: BTreeMap<&str, u32> = BTreeMap::new();
        let mut slot_index: BTreeMap<(u32, u16), i64> = BTreeMap::new();
        let mut time_index: BTreeMap<u64, i64> = BTreeMap::new();
        let mut prev_end: i64 = 0;
        for e in &r.executors {
            let next = sup_index.len() as u32;
            let s = *sup_index.entry(e.supervisor.as_str()).or_insert_with(|| {
                w.supervisors.push(e.supervisor.clone());
                next
            });
            let next = slot_index.len() as i64;
            let slot = *slot_index.entry((s, e.port)).or_insert_with(|| {
                w.slots.extend([s, u32::from(e.port)]);
                next
            });
            let time = match r.start_times.get(&format!("{}-{}", e.start, e.end)) {
                Some(t) => {
                    let next = time_index.len() as i64;
                    *time_index.entry(*t).or_insert_with(|| {
                        w.times.push(*t);
                        next
                    })
                }
                None => -1,
            };
            let (start, end) = (i64::from(e.start), i64::from(e.end));
            w.table
                .extend([start - prev_end - 1, end - start, slot, time]);
            prev_end = end;
        }
        w
    }
}

impl From<AssignmentWire> for AssignmentRecord {
    fn from(w: AssignmentWire) -> Self {
        let mut r = AssignmentRecord {
            executors: w.executors,
            hosts: w.hosts,
            start_times: w.start_times,
            held: w.held,
            lease_ms: w.lease_ms,
            beat_ms: w.beat_ms,
        };
        let slot = |i: i64| -> Option<(String, u16)> {
            let i = usize::try_from(i).ok()?;
            let (s, port) = (*w.slots.get(2 * i)?, *w.slots.get(2 * i + 1)?);
            Some((
                w.supervisors.get(s as usize)?.clone(),
                u16::try_from(port).ok()?,
            ))
        };
        let mut prev_end: i64 = 0;
        for row in w.table.chunks_exact(4) {
            let start = prev_end + 1 + row[0];
            let end = start + row[1];
            prev_end = end;
            // A row that names no slot or holds an impossible range is dropped: the scheduler
            // places that executor again.
            let (Some((supervisor, port)), Ok(s), Ok(e)) =
                (slot(row[2]), u32::try_from(start), u32::try_from(end))
            else {
                continue;
            };
            if let Some(t) = usize::try_from(row[3]).ok().and_then(|i| w.times.get(i)) {
                r.start_times.insert(format!("{s}-{e}"), *t);
            }
            r.executors.push(ExecutorSlot {
                start: s,
                end: e,
                supervisor,
                port,
            });
        }
        r
    }
}

/// The upper bounds of the end-to-end latency histogram in heartbeats and `/metrics`, in
/// microseconds (0.1 ms to 10 s).
pub const LATENCY_BUCKETS_US: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 500_000, 1_000_000, 10_000_000,
];

/// Counters of one executor in a worker heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorBeat {
    pub start: u32,
    pub end: u32,
    pub component: String,
    pub emitted: u64,
    pub executed: u64,
    pub acked: u64,
    pub failed: u64,
    /// Terminal executors: end-to-end latency percentiles in microseconds (spout emit -> here).
    #[serde(default)]
    pub latency_p50_us: Option<u64>,
    #[serde(default)]
    pub latency_p99_us: Option<u64>,
    /// When the executor last executed a tuple, in microseconds since the Unix epoch.
    #[serde(default)]
    pub last_executed_us: Option<u64>,
    /// Bolts: time spent executing, in microseconds (capacity, execute latency).
    #[serde(default)]
    pub busy_us: u64,
    /// Bolts: batches waiting in the input queue.
    #[serde(default)]
    pub queue_depth: u64,
    /// Spouts with acking: the sum of complete latencies (emit -> tree acked) in microseconds,
    /// and how many trees it covers.
    #[serde(default)]
    pub complete_us: u64,
    #[serde(default)]
    pub completed: u64,
    /// Terminal executors: how many tuples' end-to-end latency was at most each of
    /// [`LATENCY_BUCKETS_US`] (cumulative), their count and sum in microseconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_buckets: Vec<u64>,
    #[serde(default)]
    pub latency_count: u64,
    #[serde(default)]
    pub latency_sum_us: u64,
    /// Spouts: the gauges their tasks report (a Kafka spout's lag), as (name, value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gauges: Vec<(String, i64)>,
}

/// `/workerbeats/<topology-id>/<supervisor>-<port>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerBeat {
    pub time_secs: u64,
    pub supervisor: String,
    pub port: u16,
    pub uptime_secs: u64,
    pub executors: Vec<ExecutorBeat>,
    /// Set on a worker's last beat, written when it stopped (when, in microseconds since the
    /// epoch), under a path of its own so a new worker on the slot cannot overwrite it: Nimbus
    /// adds its counters to the topology's totals ([`TotalsRecord`]) and removes it.
    #[serde(default)]
    pub stopped: Option<u64>,
}

/// `/totals/<topology-id>`: the counters of a topology's stopped workers, per component, so
/// status totals count across worker restarts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalsRecord {
    pub components: BTreeMap<String, Totals>,
}

/// Counters of one component.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub emitted: u64,
    pub executed: u64,
    pub acked: u64,
    pub failed: u64,
}

impl TotalsRecord {
    /// Adds a stopped worker's counters.
    pub fn add(&mut self, beat: &WorkerBeat) {
        for e in &beat.executors {
            let t = self.components.entry(e.component.clone()).or_default();
            t.emitted += e.emitted;
            t.executed += e.executed;
            t.acked += e.acked;
            t.failed += e.failed;
        }
    }
}

/// One reported error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEntry {
    pub time_secs: u64,
    pub task: u32,
    pub host: String,
    pub port: u16,
    pub message: String,
}

/// `/errors/<topology-id>/<component>`: the latest errors, newest last (at most 10 kept).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorsRecord {
    pub errors: Vec<ErrorEntry>,
}

/// `/nimbuses/<host:port>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NimbusRecord {
    pub address: String,
    pub start_time_secs: u64,
    pub version: String,
}
