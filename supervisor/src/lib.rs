//! The Supervisor side of Gale: the worker runtime (executors, routing by grouping, batched
//! bounded queues) and local mode, which runs a whole topology in one worker.
//!
//! Registration with ZooKeeper, slot management and TCP transport come with cluster mode (issue 4)
//! and reuse this runtime unchanged.

pub mod acker;
pub mod daemon;
pub mod local;
pub mod runtime;
pub mod transport;

pub use local::{LocalOptions, Progress, ProgressFn, RunSummary, run_local};
