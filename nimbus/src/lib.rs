//! Nimbus: Gale's master.
//!
//! Today it holds the pure [`scheduler`] and the [`view`] shapes shared by `gale plan` and
//! `gale status`; the submission API and the assignment loop that writes to ZooKeeper come with
//! cluster mode (issue 4).

pub mod daemon;
pub mod scheduler;
pub mod storm_ui;
pub mod view;

pub use scheduler::{Assignment, ClusterSnapshot, Slot, SupervisorInfo, TopologyRequest, schedule};
