//! Cluster state: the raw coordination store (ZooKeeper and in-memory) and the typed records on top.
//!
//! Empty until cluster mode lands (issue 4). Architecture invariant: this is the only crate that
//! will know znode paths (DESIGN §6).
