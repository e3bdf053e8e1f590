//! Per-executor counters, written by the executor thread and read by whoever reports progress.
//!
//! The executor counts in plain integers and publishes them with relaxed stores once per batch,
//! so the hot path never touches a shared cache line per tuple.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ExecutorStats {
    /// End-to-end latency (spout emit -> this executor) of the tuples a terminal executor (one
    /// that emits to nobody) executed, in microseconds; filled when the executor ends.
    pub latency: std::sync::Mutex<Option<hdrhistogram::Histogram<u64>>>,
    /// Spouts with acking: complete latency (emit -> tree acked) in microseconds; filled when the
    /// executor ends.
    pub complete: std::sync::Mutex<Option<hdrhistogram::Histogram<u64>>>,
    pub emitted: AtomicU64,
    pub executed: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub complete_us: AtomicU64,
    pub completed: AtomicU64,
    pub busy_ns: AtomicU64,
    /// When this bolt executor executed its first tuple ([`topology_api::now_us`]); 0 before.
    pub first_executed_us: AtomicU64,
    /// When a publish last saw more tuples executed than the one before ([`topology_api::now_us`];
    /// within a flush interval of the last execution); 0 before.
    pub last_executed_us: AtomicU64,
    /// Bolts: batches waiting in the executor's input queue, as of its last batch.
    pub queue_depth: AtomicU64,
    /// Spouts: their tasks' gauges ([`topology_api::Spout::gauges`]), about once a second.
    pub gauges: std::sync::Mutex<Vec<(String, i64)>>,
}

/// The executor thread's private copy; `publish` makes it visible.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub emitted: u64,
    pub executed: u64,
    pub acked: u64,
    pub failed: u64,
    /// Spouts with acking: sum of complete latencies (emit -> tree acked) in microseconds, and
    /// how many trees that sum covers.
    pub complete_us: u64,
    pub completed: u64,
    /// Bolts: time spent executing batches, in nanoseconds (Storm's capacity and execute
    /// latency; two clock reads per batch).
    pub busy_ns: u64,
}

impl ExecutorStats {
    pub fn publish(&self, c: &Counters) {
        if c.executed != self.executed.load(Ordering::Relaxed) {
            self.last_executed_us
                .store(topology_api::now_us(), Ordering::Relaxed);
        }
        self.emitted.store(c.emitted, Ordering::Relaxed);
        self.executed.store(c.executed, Ordering::Relaxed);
        self.acked.store(c.acked, Ordering::Relaxed);
        self.failed.store(c.failed, Ordering::Relaxed);
        self.complete_us.store(c.complete_us, Ordering::Relaxed);
        self.completed.store(c.completed, Ordering::Relaxed);
        self.busy_ns.store(c.busy_ns, Ordering::Relaxed);
    }

    pub fn read(&self) -> Counters {
        Counters {
            emitted: self.emitted.load(Ordering::Relaxed),
            executed: self.executed.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            complete_us: self.complete_us.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
        }
    }
}

/// Where each bolt executor of a worker is in its input queue: the spout emit time (`born_us`) of
/// the batch it took last, or `u64::MAX` while its queue is empty. Queues are FIFO, so a spout
/// tree born after the smallest of these may still be waiting in some queue: Gale's queue-aware
/// message timeout (STORM-2359) does not fail it yet.
#[derive(Debug)]
pub struct QueueHeads {
    slots: Vec<AtomicU64>,
}

impl QueueHeads {
    pub fn new(executors: usize) -> Self {
        QueueHeads {
            slots: (0..executors).map(|_| AtomicU64::new(u64::MAX)).collect(),
        }
    }

    /// Executor `i` took a batch whose first tuple was born at `born_us` (0: unknown, ignored).
    #[inline]
    pub fn took(&self, i: usize, born_us: u64) {
        if born_us > 0
            && let Some(s) = self.slots.get(i)
        {
            s.store(born_us, Ordering::Relaxed);
        }
    }

    /// Executor `i` has nothing queued.
    #[inline]
    pub fn idle(&self, i: usize) {
        if let Some(s) = self.slots.get(i) {
            s.store(u64::MAX, Ordering::Relaxed);
        }
    }

    /// The oldest work any executor is on (`u64::MAX`: all idle).
    pub fn oldest(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX)
    }
}
