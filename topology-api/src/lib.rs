//! The crate Gale users write components against.
//!
//! - [`Tuple`], [`Value`], [`Values`], [`Fields`]: the data that flows; [`Batch`] and [`wire`]:
//!   tuples as bytes, read in place as [`ValueRef`]s.
//! - [`Spout`], [`Bolt`] and their collectors: Storm's component model.
//! - [`grouping`]: stream groupings as pure routing functions.
//! - [`Registry`]: `className` -> constructor, with Gale's [`builtins`].
//! - [`spec`]: Flux YAML -> validated [`Topology`], every problem located.
//! - [`layout`]: Storm's task ids and executor ranges.
//! - [`multilang`]: Storm's multi-lang wire format (JSON and msgpack), as pure functions.
//!
//! Architecture invariant: nothing here does network I/O or knows about ZooKeeper.

pub mod batch;
pub mod builtins;
pub mod bytemap;
pub mod component;
pub mod grouping;
pub mod lane;
pub mod layout;
pub mod multilang;
pub mod registry;
pub mod spec;
pub mod tuple;
pub mod value;
pub mod wire;

pub use batch::Batch;
pub use component::{
    Bolt, BoltCollector, ComponentArgs, ComponentError, Emission, Inputs, OutputDeclarer,
    OutputSink, Spout, SpoutCollector, StreamDecl, TopologyContext,
};
pub use grouping::Grouping;
pub use registry::Registry;
pub use spec::Topology;
pub use tuple::{
    ACK_ACK_STREAM, ACK_FAIL_STREAM, ACK_INIT_STREAM, AckIds, DEFAULT_STREAM, MessageId,
    SYSTEM_COMPONENT, StreamSource, Tuple, now_us, system_source,
};
pub use value::{Fields, SmolStr, Value, Values};
pub use wire::ValueRef;
