//! Storm's config keys that Gale reads, with Gale's defaults (documented in
//! docs/configuration.md).

pub const WORKERS: &str = "topology.workers";
pub const ACKER_EXECUTORS: &str = "topology.acker.executors";
pub const MESSAGE_TIMEOUT_SECS: &str = "topology.message.timeout.secs";
pub const MAX_SPOUT_PENDING: &str = "topology.max.spout.pending";
pub const TICK_TUPLE_FREQ_SECS: &str = "topology.tick.tuple.freq.secs";
pub const DEBUG: &str = "topology.debug";
pub const PRODUCER_BATCH_SIZE: &str = "topology.producer.batch.size";
pub const TRANSFER_BATCH_SIZE: &str = "topology.transfer.batch.size";
pub const BATCH_FLUSH_INTERVAL_MILLIS: &str = "topology.batch.flush.interval.millis";
pub const EXECUTOR_RECEIVE_BUFFER_SIZE: &str = "topology.executor.receive.buffer.size";
pub const TRANSFER_BUFFER_SIZE: &str = "topology.transfer.buffer.size";
/// Gale's preset: `latency` (batch 1) or `throughput` (batches of 500, the default).
pub const GALE_MODE: &str = "gale.mode";
/// How `topology.message.timeout.secs` is counted: `queue-aware` (Gale's default: a tree
/// does not time out while executors of the spout's worker are still working through tuples
/// older than it, STORM-2359) or `storm` (from emit, whatever it waits behind).
pub const MESSAGE_TIMEOUT_RULE: &str = "gale.message.timeout.rule";

/// Keys whose value must be a whole number, and the smallest value allowed.
pub const INTEGER_KEYS: &[(&str, i64)] = &[
    (WORKERS, 1),
    (ACKER_EXECUTORS, 0),
    (MESSAGE_TIMEOUT_SECS, 1),
    (MAX_SPOUT_PENDING, 1),
    (TICK_TUPLE_FREQ_SECS, 1),
    (PRODUCER_BATCH_SIZE, 1),
    (TRANSFER_BATCH_SIZE, 1),
    (BATCH_FLUSH_INTERVAL_MILLIS, 0),
    (EXECUTOR_RECEIVE_BUFFER_SIZE, 1),
    (TRANSFER_BUFFER_SIZE, 1),
];
