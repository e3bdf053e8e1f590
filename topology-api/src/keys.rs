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
/// Storm's checkpoint interval for stateful bolts (default 1000, at least 100).
pub const STATE_CHECKPOINT_INTERVAL_MS: &str = "topology.state.checkpoint.interval.ms";
/// Storm's state provider class (default: in memory; `gale local`: the embedded store).
pub const STATE_PROVIDER: &str = "topology.state.provider";
/// The provider's settings, a JSON string (Redis: `{"jedisPoolConfig": {"host": ..}}`).
pub const STATE_PROVIDER_CONFIG: &str = "topology.state.provider.config";
/// Gale's: where the embedded state store keeps its file (`gale local --state-dir`).
pub const STATE_DIR: &str = "gale.state.dir";

/// Keys whose value must be a whole number, and the smallest value allowed.
/// ... and the largest (docs/configuration.md, "Limits"): a value past it is refused where it
/// enters (a located error in the YAML, a 400 for a rebalance), never stored.
pub const INTEGER_KEYS: &[(&str, i64, i64)] = &[
    (WORKERS, 1, MAX_WORKERS as i64),
    (ACKER_EXECUTORS, 0, MAX_EXECUTORS as i64),
    (MESSAGE_TIMEOUT_SECS, 1, 86_400),
    (MAX_SPOUT_PENDING, 1, 10_000_000),
    (TICK_TUPLE_FREQ_SECS, 1, 86_400),
    (PRODUCER_BATCH_SIZE, 1, 1 << 20),
    (TRANSFER_BATCH_SIZE, 1, 1 << 20),
    (BATCH_FLUSH_INTERVAL_MILLIS, 0, 60_000),
    (EXECUTOR_RECEIVE_BUFFER_SIZE, 1, 1 << 26),
    (TRANSFER_BUFFER_SIZE, 1, 1 << 26),
    (STATE_CHECKPOINT_INTERVAL_MS, 1, 86_400_000),
];

/// Most workers a topology may ask for (`topology.workers`, a rebalance's `-n`).
pub const MAX_WORKERS: u32 = 10_000;
/// Most executors of one component (`parallelism`, a rebalance's `-e`, ackers).
pub const MAX_EXECUTORS: u32 = 10_000;
/// Most tasks of one component (`numTasks`), and of a whole topology.
pub const MAX_TASKS: u32 = 100_000;
/// Longest topology name or component id; both are letters, digits, `-` and `_` (ids may also
/// hold `.`), so they are safe in file names, URLs and ZooKeeper paths.
pub const MAX_NAME_LEN: usize = 128;

/// Why a topology name or component id is refused, or `None` when it is fine: 1 to
/// [`MAX_NAME_LEN`] characters, each an ASCII letter, digit, `-` or `_` (or `.` where
/// `dot_allowed`, for component ids).
pub fn name_problem(s: &str, dot_allowed: bool) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Some(format!(
            "is {} characters long; at most {MAX_NAME_LEN}",
            s.chars().count()
        ));
    }
    let bad = s.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || (dot_allowed && *c == '.'))
    })?;
    let allowed = if dot_allowed {
        "letters, digits, '-', '_' and '.'"
    } else {
        "letters, digits, '-' and '_'"
    };
    Some(format!("contains {bad:?}; use {allowed}"))
}
