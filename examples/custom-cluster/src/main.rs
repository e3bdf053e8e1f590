//! `custom-cluster`: the `gale` command line with `ReverseWordBolt` registered. Every command of
//! `gale` works: `custom-cluster nimbus`, `custom-cluster supervisor --id s1 --ports 6700`,
//! `custom-cluster submit examples/custom-cluster/topology.yaml --set input=... --set output=...`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    gale_cli::main_with(custom_cluster::registry())
}
