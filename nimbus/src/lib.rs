//! Nimbus: Gale's master.
//!
//! - [`scheduler`]: the pure even scheduler and the class check (`check_runnable`).
//! - [`view`]: the JSON shapes shared by `gale plan` and `gale status`.
//! - [`storm_ui`]: Storm UI's REST read paths and Prometheus text, pure functions of the view.
//! - [`lifecycle`]: Storm's topology status x action table, one pure function.
//! - [`reconcile`]: one pass of the assignment loop (timed actions, dead slots, the scheduler,
//!   changed assignments written) and the cluster view it shares with the API.
//! - `api`: the HTTP handlers; [`ui`]: the web UI's files; [`daemon`]: the wiring (server,
//!   leader election, the loop).

mod api;
pub mod daemon;
pub mod history;
pub mod lifecycle;
pub mod listener;
pub mod reconcile;
pub mod scheduler;
pub mod storm_ui;
pub mod ui;
pub mod view;

pub use scheduler::{Assignment, ClusterSnapshot, Slot, SupervisorInfo, TopologyRequest, schedule};
