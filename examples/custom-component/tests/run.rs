//! The example's own component runs inside a real topology and gives exact counts.

use flux::{Substitutions, load_file};
use std::collections::BTreeMap;
use std::path::Path;

#[test]
fn uppercase_word_count_is_exact() {
    let dir = std::env::temp_dir().join(format!("gale-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let input = dir.join("in.txt");
    let output = dir.join("out.tsv");
    std::fs::write(&input, "Storm storm STORM gale\nGale wind\n").expect("input");
    let mut subs = Substitutions::default();
    subs.set("input", input.to_str().expect("utf-8"));
    subs.set("output", output.to_str().expect("utf-8"));
    let registry = custom_component::registry();
    let yaml = Path::new(env!("CARGO_MANIFEST_DIR")).join("topology.yaml");
    let loaded = load_file(&yaml, &registry, &subs).expect("valid topology");
    assert_eq!(
        loaded
            .topology
            .component("upper")
            .map(|c| c.class_name.as_str()),
        Some("UppercaseBolt")
    );
    let summary = worker::run_local(loaded.topology, &registry, worker::LocalOptions::default())
        .expect("runs");
    assert_eq!(summary.ended, "drained");
    let got: BTreeMap<String, String> = std::fs::read_to_string(&output)
        .expect("sink file")
        .lines()
        .filter_map(|l| {
            l.split_once('\t')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let want: BTreeMap<String, String> = [("STORM", "3"), ("GALE", "2"), ("WIND", "1")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn the_binary_runs_the_example() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_custom-component"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("topology.yaml"))
        .arg(format!(
            "output={}",
            std::env::temp_dir()
                .join(format!("gale-ex-bin-{}.tsv", std::process::id()))
                .display()
        ))
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("upper: emitted"));
}
