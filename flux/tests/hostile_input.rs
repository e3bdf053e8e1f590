//! The YAML loader on hostile input: random bytes and random mutations of a valid topology must
//! give a clean error or a topology, never a panic, hang or runaway memory. (Property tests; the
//! coverage-guided fuzz target is fuzz/fuzz_targets/yaml_loader.rs.)

use components::Builtins;
use flux::{Substitutions, load_bytes};
use proptest::prelude::*;
use topology_api::Registry;

const VALID: &str = include_str!("../../topologies/word-count.yaml");

fn load(bytes: &[u8]) {
    let _ = load_bytes(
        "f.yaml",
        bytes,
        &Registry::with_builtins(),
        &Substitutions::default(),
        &|_| None,
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        load(&bytes);
    }

    #[test]
    fn mutated_topologies_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..12)
    ) {
        let mut b = VALID.as_bytes().to_vec();
        for (at, byte, op) in edits {
            if b.is_empty() { break; }
            let i = at.index(b.len());
            match op {
                0 => b[i] = byte,
                1 => { b.remove(i); }
                _ => b.insert(i, byte),
            }
        }
        load(&b);
    }

    #[test]
    fn random_yaml_like_text_never_panics(s in "[a-zA-Z0-9_:{}\\[\\],'\"&*!|>#\\- \n\t.$]{0,400}") {
        load(s.as_bytes());
    }
}
