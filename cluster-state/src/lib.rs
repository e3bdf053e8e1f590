//! Cluster state: the raw coordination store (ZooKeeper and in-memory) and the typed records on
//! top.
//!
//! Architecture invariant: this is the only crate that knows znode paths ([`state::paths`]) and
//! how records are encoded (rmp-serde with named fields, [`records`]).

pub mod mirror;
pub mod records;
pub mod state;
pub mod store;
mod zk;

pub use mirror::Mirrored;
pub use records::*;
pub use state::{ClusterState, Lead, MAX_NODE_BYTES, StateError, paths};
pub use store::{Counted, MemStore, Node, NodeKind, Requests, Store, StoreError, TreeEvent, Watch};
pub use zk::{ZkAuth, ZkStore};

/// Seconds since the Unix epoch (Gale's one clock, `gale_tuple::now_secs`).
pub use topology_api::tuple::now_secs;
