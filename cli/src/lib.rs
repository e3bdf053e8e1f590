//! The `gale` command line as a library, so that a binary with its own components runs every
//! `gale` command with them:
//!
//! ```no_run
//! use topology_api::Registry;
//! fn main() -> std::process::ExitCode {
//!     use components::Builtins;
//!     let mut registry = Registry::with_builtins();
//!     // registry.register_bolt("MyBolt", |args| Ok(Box::new(MyBolt::new(args)?)));
//!     gale_cli::main_with(registry)
//! }
//! ```
//!
//! Run as `my-binary nimbus`, `my-binary supervisor`, `my-binary submit t.yaml`: supervisors
//! advertise the classes of their registry in ZooKeeper, and Nimbus places a topology only on
//! supervisors that can run all of its classes. The shipped `gale` is
//! `main_with(Registry::with_builtins())`.
//!
//! Thin over the libraries: parsing arguments, printing, exit codes. Exit codes
//! (docs/contract.md §2): 0 on success, 1 for a user error (bad YAML, a component failing), 2 when
//! a daemon cannot be reached.

mod cluster;
mod commands;
mod local_ui;

use clap::Parser;
use std::process::ExitCode;
use topology_api::Registry;

/// When the process started running commands, in unix microseconds. (scripts/bench.sh measures
/// from before `exec` instead, with the first tuple's wall-clock time from `--metrics-json`.)
pub(crate) fn process_start_us() -> u64 {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *START.get_or_init(topology_api::now_us)
}

/// Parses the process's arguments and runs that `gale` command with the components of
/// `registry`; returns the exit code (0 success, 1 user error, 2 a daemon unreachable).
pub fn main_with(mut registry: Registry) -> ExitCode {
    let _ = process_start_us();
    add_state_providers(&mut registry);
    let cli = commands::Cli::parse();
    init_logging();
    match commands::run(cli, registry) {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<commands::UserError>().is_some() => {
            // Validation problems already read `FILE:LINE:COL: message`, one per line.
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::from(commands::exit_code_of(&e))
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("GALE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (a test, an embedding program) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Adds the state providers every gale binary has (docs/state.md): the embedded store
/// (`embedded`) and Redis (`redis`, Storm's `RedisKeyValueStateProvider`), beside the registry's
/// in-memory one; and the connectors (Kafka's spout and bolt, docs/kafka.md).
pub fn add_state_providers(registry: &mut Registry) {
    state_redb::register(registry);
    state_redis::register(registry);
    connector_kafka::register(registry);
}
