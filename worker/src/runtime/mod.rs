//! The worker runtime: executor threads connected by bounded, batched queues.
//!
//! A worker runs a set of executors (all of them in local mode). Each executor is an OS thread
//! that owns its components (one instance per task), its input queue and a [`Router`] for its
//! output. Tuples move between executors in batches over bounded crossbeam channels, so a slow
//! bolt blocks its upstream (backpressure) and memory stays flat.

mod assemble;
mod executor;
mod lease;
mod queue;
mod router;
pub mod stats;

pub use assemble::{start_local_worker, start_worker};
pub use lease::Lease;
pub use queue::Batch;
pub use stats::{Counters, ExecutorStats, QueueHeads};

use crossbeam_channel::Sender;
use flux::Topology;
use flux::keys;
use flux::layout::{ComponentKind, ComponentTasks, ExecutorId};
use router::ErrorReporter;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use topology_api::Registry;

/// Gale's defaults for Storm's batching and queue keys (docs/configuration.md).
pub const DEFAULT_PRODUCER_BATCH_SIZE: u64 = 500;
pub const DEFAULT_RECEIVE_BUFFER_SIZE: u64 = 16_384;
pub const DEFAULT_FLUSH_INTERVAL_MILLIS: u64 = 1;

/// Queue and batching settings of one topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Tuples per batch (`topology.producer.batch.size`).
    pub batch_size: usize,
    /// Tuples per batch to other workers (`topology.transfer.batch.size`; default: `batch_size`).
    pub transfer_batch_size: usize,
    /// Batches an executor's input queue holds (`topology.executor.receive.buffer.size` / batch).
    pub queue_batches: usize,
    /// Longest a partial batch waits (`topology.batch.flush.interval.millis`).
    pub flush_interval: Duration,
}

impl RuntimeConfig {
    pub fn from_topology(t: &Topology) -> Self {
        // `gale.mode`: `latency` sends every tuple at once (batch 1, no flush wait);
        // `throughput` (the default) batches. Explicit Storm keys win over the preset.
        let latency_mode =
            t.config.get(keys::GALE_MODE).and_then(|v| v.as_str()) == Some("latency");
        let (default_batch, default_flush) = if latency_mode {
            (1, 0)
        } else {
            (DEFAULT_PRODUCER_BATCH_SIZE, DEFAULT_FLUSH_INTERVAL_MILLIS)
        };
        let batch = t
            .config_u64(keys::PRODUCER_BATCH_SIZE, default_batch)
            .clamp(1, 1 << 20) as usize;
        let buffer = t
            .config_u64(
                keys::EXECUTOR_RECEIVE_BUFFER_SIZE,
                DEFAULT_RECEIVE_BUFFER_SIZE,
            )
            .clamp(1, 1 << 26) as usize;
        let transfer = t
            .config_u64(keys::TRANSFER_BATCH_SIZE, batch as u64)
            .clamp(1, 1 << 20) as usize;
        RuntimeConfig {
            batch_size: batch,
            transfer_batch_size: transfer,
            queue_batches: buffer.div_ceil(batch).max(2),
            flush_interval: Duration::from_millis(
                t.config_u64(keys::BATCH_FLUSH_INTERVAL_MILLIS, default_flush),
            ),
        }
    }
}

/// Why a worker could not start or did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("component \"{component}\" ({class}): {message}")]
    Build {
        component: String,
        class: String,
        message: String,
    },
    #[error("component \"{component}\" executor {executor}: {message}")]
    Open {
        component: String,
        executor: ExecutorId,
        message: String,
    },
    #[error("cannot start an executor thread: {0}")]
    Spawn(#[source] std::io::Error),
}

impl RuntimeError {
    /// The component that failed, when one did.
    pub fn component(&self) -> Option<&str> {
        match self {
            RuntimeError::Build { component, .. } | RuntimeError::Open { component, .. } => {
                Some(component)
            }
            RuntimeError::Spawn(_) => None,
        }
    }
}

/// An error a component reported or a panic, with where it happened.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReportedError {
    pub component: String,
    pub task: u32,
    pub message: String,
    /// The executor panicked (its worker must be restarted), rather than the component
    /// reporting an error and going on.
    pub panicked: bool,
    /// The run has failed because of it (a panic, or results a component could not write):
    /// `gale local` ends "failed" and exits non-zero.
    pub fatal: bool,
}

/// Errors reported by components, newest last; bounded so a component failing on every tuple cannot
/// grow memory.
#[derive(Debug, Default)]
pub struct ErrorLog {
    entries: Mutex<(u64, Vec<ReportedError>)>,
}

const MAX_ERRORS_KEPT: usize = 100;

impl ErrorLog {
    pub fn snapshot(&self) -> (u64, Vec<ReportedError>) {
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        (g.0, g.1.clone())
    }
}

impl ErrorLog {
    fn record(&self, component: &str, task: u32, message: &str, panicked: bool, fatal: bool) {
        let mut g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        // Log the first ones; after that, one line per thousand keeps logs readable.
        if g.0 <= 20 || g.0.is_multiple_of(1000) {
            tracing::warn!(component, task, total = g.0, "Component error: {message}");
        }
        if g.1.len() >= MAX_ERRORS_KEPT {
            g.1.remove(0);
        }
        g.1.push(ReportedError {
            component: component.to_owned(),
            task,
            message: message.to_owned(),
            panicked,
            fatal,
        });
    }

    /// Whether an executor of this worker panicked.
    pub fn has_panic(&self) -> bool {
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        g.1.iter().any(|e| e.panicked)
    }
}

impl ErrorReporter for ErrorLog {
    fn report(&self, component: &str, task: u32, message: &str) {
        self.record(component, task, message, false, false);
    }

    fn report_panic(&self, component: &str, task: u32, message: &str) {
        self.record(
            component,
            task,
            &format!("executor panicked: {message}"),
            true,
            true,
        );
    }

    fn report_failure(&self, component: &str, task: u32, message: &str) {
        self.record(component, task, message, false, true);
    }
}

/// Releases executors once every one has opened, or tells them to give up.
#[derive(Debug, Default)]
pub(crate) struct GoSignal {
    state: Mutex<Option<bool>>,
    cv: Condvar,
}

impl GoSignal {
    fn set(&self, go: bool) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(go);
        self.cv.notify_all();
    }

    /// Blocks until released; true means run.
    pub(crate) fn wait(&self) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(go) = *g {
                return go;
            }
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// One running executor.
#[derive(Debug)]
pub struct ExecutorHandle {
    pub component: String,
    pub kind: ComponentKind,
    pub executor: ExecutorId,
    pub stats: Arc<ExecutorStats>,
    join: Option<JoinHandle<()>>,
}

impl ExecutorHandle {
    pub fn is_finished(&self) -> bool {
        self.join.as_ref().is_none_or(|j| j.is_finished())
    }
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    pub executors: Vec<ExecutorHandle>,
    pub errors: Arc<ErrorLog>,
    pub stop: Arc<AtomicBool>,
    pub layout: Vec<ComponentTasks>,
    pub started: Instant,
    pub config: RuntimeConfig,
}

impl Worker {
    /// True when every executor thread has ended.
    pub fn is_finished(&self) -> bool {
        self.executors.iter().all(ExecutorHandle::is_finished)
    }

    /// True when an executor panicked (the worker should be restarted).
    pub fn has_panicked(&self) -> bool {
        self.errors.has_panic()
    }

    /// Waits for every executor thread; a panic is recorded as an error of its component.
    pub fn join(&mut self) {
        for h in &mut self.executors {
            if let Some(j) = h.join.take()
                && let Err(p) = j.join()
            {
                let msg = panic_message(&p);
                self.errors
                    .report_panic(&h.component, h.executor.start, &msg);
            }
        }
    }
}

/// Runs an executor body; a panic is reported as an error of its component (and the thread ends,
/// dropping its queues, so the rest of the worker winds down instead of hanging).
fn guard(
    reporter: &(dyn ErrorReporter + Send + Sync),
    component: &str,
    task: u32,
    body: impl FnOnce(),
) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        reporter.report_panic(component, task, &panic_message(&p));
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Which executors run in this worker and how to reach the others (cluster mode).
#[derive(Debug, Default)]
pub struct Placement {
    /// Executors this worker runs.
    pub local: std::collections::BTreeSet<ExecutorId>,
    /// For each task in another worker, the index of its worker's queue in `remote_queues`.
    pub remote_task_queue: BTreeMap<u32, usize>,
    /// One queue per other worker, drained by the transport.
    pub remote_queues: Vec<Sender<Batch>>,
}

/// Where batches that arrive from other workers go: the input queue of each local task.
#[derive(Debug, Default)]
pub struct Inbound {
    task_queue: Vec<Option<u32>>,
    queues: Vec<Sender<Batch>>,
}

impl Inbound {
    /// Index of the local queue that `task` reads from.
    pub fn queue_index(&self, task: u32) -> Option<usize> {
        self.task_queue
            .get(task as usize)
            .copied()
            .flatten()
            .map(|q| q as usize)
    }

    pub fn queue(&self, index: usize) -> Option<&Sender<Batch>> {
        self.queues.get(index)
    }

    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }
}

/// What to run.
pub struct WorkerSpec<'a> {
    pub topology: Arc<Topology>,
    pub registry: &'a Registry,
    pub resources_dir: PathBuf,
    /// Run cleanup on bolts when they end (local mode; Storm does it only there).
    pub cleanup: bool,
    pub stop: Arc<AtomicBool>,
    /// `None`: every executor here (local mode).
    pub placement: Option<Placement>,
    /// Spouts emit only while this is true (Storm's activate/deactivate).
    pub active: Arc<AtomicBool>,
    /// How long the tasks may run: the supervisor renews it while it hears from the cluster
    /// (fencing, see [`Lease`]); local mode's never ends.
    pub lease: Lease,
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux::{Substitutions, load_bytes};

    fn config(extra: &str) -> RuntimeConfig {
        let yaml = format!(
            "name: t\nconfig: {{{extra}}}\nspouts: [{{id: s, className: TestWordSpout}}]\nbolts: [{{id: b, className: LogInfoBolt}}]\nstreams: [{{from: s, to: b, grouping: {{type: SHUFFLE}}}}]\n"
        );
        let l = load_bytes(
            "t.yaml",
            yaml.as_bytes(),
            &<topology_api::Registry as components::Builtins>::with_builtins(),
            &Substitutions::default(),
            &|_| None,
        )
        .expect("valid");
        RuntimeConfig::from_topology(&l.topology)
    }

    #[test]
    fn batching_knobs_and_presets() {
        let d = config("");
        assert_eq!((d.batch_size, d.transfer_batch_size), (500, 500));
        assert_eq!(d.flush_interval, Duration::from_millis(1));
        let c = config("topology.producer.batch.size: 100, topology.transfer.batch.size: 2000");
        assert_eq!((c.batch_size, c.transfer_batch_size), (100, 2000));
        assert_eq!(c.queue_batches, 16_384_usize.div_ceil(100));
        let l = config("gale.mode: latency");
        assert_eq!((l.batch_size, l.transfer_batch_size), (1, 1));
        assert_eq!(l.flush_interval, Duration::ZERO);
        // An explicit Storm key wins over the preset.
        let m = config("gale.mode: latency, topology.transfer.batch.size: 64");
        assert_eq!((m.batch_size, m.transfer_batch_size), (1, 64));
    }
}
