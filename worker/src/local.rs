//! Local mode: the whole topology in this process, no ZooKeeper.
//!
//! It uses the same worker runtime as a cluster worker, with every executor in one worker. The run
//! ends on the stop flag (Ctrl-C), after `duration`, or when every spout is finished and every
//! tuple in flight is processed (the end of input cascades down the graph as each executor's
//! senders are dropped); then bolts' `cleanup` runs and a summary is returned.

use crate::runtime::{
    Counters, ReportedError, RuntimeError, Worker, WorkerSpec, start_local_worker,
};
use flux::Topology;
use flux::layout::ComponentKind;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use topology_api::Registry;

/// Called about once a second with a progress snapshot.
pub type ProgressFn = Box<dyn FnMut(&Progress)>;

/// How a local run is driven.
pub struct LocalOptions {
    pub duration: Option<Duration>,
    /// Set it (e.g. from a Ctrl-C handler) to stop the spouts and drain.
    pub stop: Arc<AtomicBool>,
    /// Called about once a second while running.
    pub progress: Option<ProgressFn>,
    pub resources_dir: PathBuf,
    /// When the process started ([`topology_api::now_us`]), for `start_to_first_tuple_ms`.
    pub process_start_us: Option<u64>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            duration: None,
            stop: Arc::new(AtomicBool::new(false)),
            progress: None,
            resources_dir: PathBuf::from("."),
            process_start_us: None,
        }
    }
}

/// A progress snapshot.
#[derive(Clone, Debug)]
pub struct Progress {
    pub elapsed: Duration,
    pub emitted: u64,
    pub executed: u64,
    /// Each executor's counters and gauges (what `gale local --ui` shows).
    pub executors: Vec<ExecutorProgress>,
}

/// One executor in a [`Progress`].
#[derive(Clone, Debug)]
pub struct ExecutorProgress {
    pub component: String,
    pub first_task: u32,
    pub last_task: u32,
    pub counters: Counters,
    pub gauges: Vec<(String, i64)>,
}

/// Totals of one component over its executors.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ComponentSummary {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub executors: u32,
    pub tasks: u32,
    pub emitted: u64,
    pub executed: u64,
    pub acked: u64,
    pub failed: u64,
    /// Tuples per second: executed for bolts, emitted for spouts.
    pub throughput: f64,
    /// Spouts with acking: mean time from emit to the tree's ack, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_latency_ms: Option<f64>,
    /// Spouts with acking: percentiles of the complete latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complete_latency: Option<Latency>,
}

/// End-to-end latency, spout emit to the last bolt, over every tuple the terminal bolts executed.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// What a local run did (the shape of `--metrics-json`).
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub topology: String,
    pub elapsed_secs: f64,
    /// `None` when no tuple reached a terminal bolt.
    pub latency: Option<Latency>,
    /// How the run ended: "drained", "duration", "stopped" or "failed".
    pub ended: &'static str,
    pub components: Vec<ComponentSummary>,
    pub errors: Vec<ReportedError>,
    pub error_count: u64,
    /// When a bolt first executed a tuple (unix microseconds); `None` if none did.
    pub first_tuple_unix_us: Option<u64>,
    /// From the process start (`LocalOptions::process_start_us`) to the first tuple a bolt
    /// executed.
    pub start_to_first_tuple_ms: Option<f64>,
}

/// Runs `topology` to its end.
pub fn run_local(
    topology: Topology,
    registry: &Registry,
    mut opts: LocalOptions,
) -> Result<RunSummary, RuntimeError> {
    let name = topology.name.clone();
    let mut worker = start_local_worker(WorkerSpec {
        topology: Arc::new(topology),
        registry,
        resources_dir: opts.resources_dir.clone(),
        cleanup: true,
        stop: opts.stop.clone(),
        placement: None,
        active: Arc::new(AtomicBool::new(true)),
        lease: crate::runtime::Lease::unlimited(),
    })?;
    let started = worker.started;
    let mut ended = "drained";
    let mut next_progress = Instant::now() + Duration::from_secs(1);
    while !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(5));
        if let Some(d) = opts.duration
            && started.elapsed() >= d
            && !opts.stop.load(Ordering::Relaxed)
        {
            ended = "duration";
            opts.stop.store(true, Ordering::Relaxed);
        }
        if ended == "drained" && opts.stop.load(Ordering::Relaxed) {
            ended = "stopped";
        }
        if let Some(p) = opts.progress.as_mut()
            && Instant::now() >= next_progress
        {
            next_progress += Duration::from_secs(1);
            let (emitted, executed) = totals(&worker);
            let executors = worker
                .executors
                .iter()
                .map(|h| ExecutorProgress {
                    component: h.component.clone(),
                    first_task: h.executor.start,
                    last_task: h.executor.end,
                    counters: h.stats.read(),
                    gauges: h
                        .stats
                        .gauges
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone(),
                })
                .collect();
            p(&Progress {
                elapsed: started.elapsed(),
                emitted,
                executed,
                executors,
            });
        }
    }
    worker.join();
    let elapsed = started.elapsed();
    let (error_count, errors) = worker.errors.snapshot();
    if errors.iter().any(|e| e.fatal) {
        ended = "failed";
    }
    let first_tuple_unix_us = worker
        .executors
        .iter()
        .map(|h| h.stats.first_executed_us.load(Ordering::Relaxed))
        .filter(|t| *t > 0)
        .min();
    let start_to_first_tuple_ms = match (opts.process_start_us, first_tuple_unix_us) {
        (Some(s), Some(f)) => Some(f.saturating_sub(s) as f64 / 1000.0),
        _ => None,
    };
    Ok(RunSummary {
        first_tuple_unix_us,
        start_to_first_tuple_ms,
        topology: name,
        elapsed_secs: elapsed.as_secs_f64(),
        latency: latency(&worker),
        ended,
        components: summarize(&worker, elapsed),
        errors,
        error_count,
    })
}

fn totals(w: &Worker) -> (u64, u64) {
    w.executors.iter().fold((0, 0), |(e, x), h| {
        let c = h.stats.read();
        (e + c.emitted, x + c.executed)
    })
}

fn summarize(w: &Worker, elapsed: Duration) -> Vec<ComponentSummary> {
    let secs = elapsed.as_secs_f64().max(1e-9);
    w.layout
        .iter()
        .map(|c| {
            let mut sum = Counters::default();
            for h in w.executors.iter().filter(|h| h.component == c.id) {
                let s = h.stats.read();
                sum.emitted += s.emitted;
                sum.executed += s.executed;
                sum.acked += s.acked;
                sum.failed += s.failed;
                sum.complete_us += s.complete_us;
                sum.completed += s.completed;
            }
            let basis = if c.kind == ComponentKind::Spout {
                sum.emitted
            } else {
                sum.executed
            };
            ComponentSummary {
                id: c.id.clone(),
                kind: c.kind.as_str(),
                executors: c.executors.len() as u32,
                tasks: c.num_tasks,
                emitted: sum.emitted,
                executed: sum.executed,
                acked: sum.acked,
                failed: sum.failed,
                throughput: basis as f64 / secs,
                complete_latency_ms: (sum.completed > 0)
                    .then(|| sum.complete_us as f64 / sum.completed as f64 / 1000.0),
                complete_latency: merged(
                    w.executors
                        .iter()
                        .filter(|h| h.component == c.id)
                        .map(|h| &h.stats.complete),
                ),
            }
        })
        .collect()
}

/// Merges the terminal executors' latency histograms.
fn latency(w: &Worker) -> Option<Latency> {
    merged(w.executors.iter().map(|h| &h.stats.latency))
}

/// Merges histograms and reads their percentiles.
fn merged<'a>(
    hists: impl Iterator<Item = &'a std::sync::Mutex<Option<hdrhistogram::Histogram<u64>>>>,
) -> Option<Latency> {
    let mut all: Option<hdrhistogram::Histogram<u64>> = None;
    for m in hists {
        let g = m.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(x) = g.as_ref() {
            match all.as_mut() {
                Some(a) => {
                    let _ = a.add(x);
                }
                None => all = Some(x.clone()),
            }
        }
    }
    let h = all?;
    if h.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Some(Latency {
        count: h.len(),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    })
}
