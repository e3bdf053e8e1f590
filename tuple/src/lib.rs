//! The tuple path's bytes, beneath the component API: values and tuple views, batches, the wire
//! format, the lane an executor writes its output through, the byte-keyed map, the grouping
//! functions and Gale's one random generator.
//!
//! Architecture invariant: no I/O, no threads, no clock beyond [`now_us`]; every function here is
//! pure or works on buffers it is given, so the runtime (`worker`) and the API (`topology-api`)
//! share one definition of a tuple's bytes.

pub mod batch;
pub mod bytemap;
pub mod emit;
pub mod grouping;
pub mod lane;
pub mod rng;
pub mod tuple;
pub mod value;
pub mod wire;

pub use batch::Batch;
pub use emit::EmitValues;
pub use grouping::Grouping;
pub use rng::Rng;
pub use tuple::{
    ACK_ACK_STREAM, ACK_FAIL_STREAM, ACK_INIT_STREAM, AckIds, DEFAULT_STREAM, MessageId,
    SYSTEM_COMPONENT, StreamSource, Tuple, now_secs, now_us, system_source,
};
pub use value::{Fields, SmolStr, Value, Values};
pub use wire::ValueRef;
