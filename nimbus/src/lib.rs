//! Nimbus: Gale's master.
//!
//! - [`scheduler`]: the pure even scheduler and the class check (`check_runnable`).
//! - [`view`]: the JSON shapes shared by `gale plan` and `gale status`.
//! - [`storm_ui`]: Storm UI's REST read paths and Prometheus text, pure functions of the view.
//! - [`daemon`]: the HTTP API (submission, actions), leader election and the assignment loop
//!   that writes to ZooKeeper.

pub mod daemon;
pub mod scheduler;
pub mod storm_ui;
pub mod view;

pub use scheduler::{Assignment, ClusterSnapshot, Slot, SupervisorInfo, TopologyRequest, schedule};
