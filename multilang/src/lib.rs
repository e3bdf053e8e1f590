//! Storm's multi-lang protocol: components written in any language run as subprocesses.
//!
//! - [`protocol`]: the wire format (JSON with `end` lines, or msgpack) as pure functions over
//!   bytes, fed untrusted subprocess output.
//! - [`ShellBolt`], [`ShellSpout`]: the components that start the subprocess, speak the protocol
//!   to it and watch it with heartbeats (Flux's `FluxShellBolt`/`FluxShellSpout`).

pub mod protocol;
mod shell;

pub use shell::{ShellBolt, ShellSpout};
