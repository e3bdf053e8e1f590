//! What moves between executors: batches of deliveries on bounded channels.

use topology_api::Tuple;

/// One tuple addressed to one task of the receiving executor.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub task: u32,
    pub tuple: Tuple,
}

/// Tuples move between executors in batches: one channel operation (and at most one wake-up) per
/// batch instead of per tuple.
pub type Batch = Vec<Delivery>;
