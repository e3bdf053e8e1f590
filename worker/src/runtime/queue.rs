//! What moves between executors: batches of encoded tuples on bounded channels.
//!
//! A [`Batch`] is one byte buffer of tuples, each addressed to one task of the receiving executor
//! and read back in place ([`topology_api::batch`]): one channel operation (and at most one
//! wake-up) per batch instead of per tuple, and no per-tuple object.

pub use topology_api::Batch;
