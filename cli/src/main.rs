//! `gale`: the command line of the Gale stream processing engine, with the built-in components.
//! A binary with components of its own calls [`gale_cli::main_with`] with its own registry
//! (examples/custom-cluster).

// mimalloc: lines are allocated by the spout thread and freed by bolt threads, and batches move
// between threads; glibc malloc serialises such cross-thread frees (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    use components::Builtins;
    gale_cli::main_with(topology_api::Registry::with_builtins())
}
