//! Gale's worker runtime: executor threads, routing by grouping, batched bounded queues, the
//! acker, the TCP transport between workers, and local mode (a whole topology in one worker).
//!
//! A Supervisor (the `supervisor` crate) runs one [`runtime::Worker`] per assigned slot with the
//! executors of its [`runtime::Placement`]; `gale local` runs one with every executor. The runtime
//! knows nothing of ZooKeeper or tokio.

pub mod acker;
pub mod handshake;
pub mod local;
pub mod runtime;
pub mod transport;

pub use local::{ExecutorProgress, LocalOptions, Progress, ProgressFn, RunSummary, run_local};
