//! Any bytes as a topology file: located errors or a topology, never a panic, hang or huge allocation.
#![no_main]

use components::Builtins;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use topology_api::Registry;
use flux::{Substitutions, load_bytes};

fuzz_target!(|data: &[u8]| {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(Registry::with_builtins);
    let mut subs = Substitutions::default();
    subs.vars.insert("name".into(), "fuzzed".into());
    subs.env_filter = true;
    let _ = load_bytes("fuzz.yaml", data, registry, &subs, &|k| {
        (k == "GALE_FUZZ").then(|| "1".to_owned())
    });
});
