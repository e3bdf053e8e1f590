//! The crate Gale users write components against.
//!
//! - [`Tuple`], [`Value`], [`Values`], [`Fields`]: the data that flows; [`Batch`] and [`wire`]:
//!   tuples as bytes, read in place as [`ValueRef`]s.
//! - [`Spout`], [`Bolt`] and their collectors: Storm's component model.
//! - [`grouping`]: stream groupings as pure routing functions.
//! - [`Registry`]: `className` -> constructor (Gale's built-ins are added by the `components`
//!   crate's `Builtins::with_builtins`).
//! - [`keys`]: Storm's config keys that Gale reads.
//! - [`state`] and [`checkpoint`]: stateful bolts, their key-value state, and Storm's checkpoint
//!   protocol (stores are reached through the [`StateProvider`] trait; the durable ones live in
//!   crates of their own).
//!
//! Architecture invariant: nothing here does I/O, parses YAML or speaks msgpack; no tokio, no
//! ZooKeeper. Loading Flux YAML is the `flux` crate's, the built-ins are `components`', the
//! multi-lang protocol is `multilang`'s.

pub mod checkpoint;
pub mod component;
pub mod keys;
pub mod registry;
pub mod state;
pub mod window;
pub mod windowed;

// The tuple path's types live beneath this crate, in `gale-tuple`; users reach them from here.
pub use gale_tuple::{batch, bytemap, emit, grouping, lane, rng, tuple, value, values, wire};

pub use batch::Batch;
pub use component::{
    Bolt, BoltCollector, ComponentArgs, ComponentError, Emission, Inputs, OutputDeclarer,
    OutputSink, Spout, SpoutCollector, StreamDecl, TopologyContext,
};
pub use grouping::Grouping;
pub use registry::Registry;
pub use state::{KeyValueState, StateError, StateProvider, StateStore, StatefulBolt, TextKey};
pub use tuple::{
    ACK_ACK_STREAM, ACK_FAIL_STREAM, ACK_INIT_STREAM, AckIds, DEFAULT_STREAM, MessageId,
    SYSTEM_COMPONENT, StreamSource, Tuple, now_us, system_source,
};
pub use value::{Fields, SmolStr, Value, Values};
pub use wire::ValueRef;
