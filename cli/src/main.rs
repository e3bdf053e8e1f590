//! `gale`: the command line of the Gale stream processing engine.
//!
//! Thin over the libraries: parsing arguments, printing, exit codes. Exit codes (docs/contract.md §2): 0 on
//! success, 1 for a user error (bad YAML, a component failing), 2 when a daemon cannot be reached.

mod cluster;
mod commands;

// mimalloc: lines are allocated by the spout thread and freed by bolt threads, and batches move
// between threads; glibc malloc serialises such cross-thread frees (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use std::process::ExitCode;

/// When `main` started, in unix microseconds. (scripts/bench.sh measures from before `exec`
/// instead, with the first tuple's wall-clock time from `--metrics-json`.)
fn process_start_us() -> u64 {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *START.get_or_init(topology_api::now_us)
}

fn main() -> ExitCode {
    let _ = process_start_us();
    let cli = commands::Cli::parse();
    init_logging();
    match commands::run(cli) {
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
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
