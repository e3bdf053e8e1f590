//! Your own bolt on a real cluster: this example's binary as Nimbus, two Supervisors and the
//! client (real ZooKeeper, real processes), exact counts from a bolt only it has; and the stock
//! `gale` cluster refusing the same topology, naming the class.

#[path = "../../../cli/tests/support/cluster.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::*;

fn topology_yaml() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topology.yaml")
        .display()
        .to_string()
}

fn reversed(counts: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    counts
        .iter()
        .map(|(w, n)| (w.chars().rev().collect(), *n))
        .collect()
}

#[test]
fn own_bolt_runs_on_a_cluster_of_this_binary_with_exact_counts() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let bin = Path::new(env!("CARGO_BIN_EXE_custom-cluster"));
    let c = Cluster::start_with(bin, "custom", &["sup-a", "sup-b"]);
    let (input, want) = write_input(&c.dir, 20_000);
    let output = c.dir.join("reversed.tsv");
    let o = c.gale(&[
        "submit",
        &topology_yaml(),
        "--set",
        &format!("input={}", input.display()),
        "--set",
        &format!("output={}", output.display()),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(
        Duration::from_secs(30),
        "both supervisors run workers",
        || supervisors_used(&c.topology("reversed-word-count")).len() == 2,
    );
    let total: u64 = want.values().sum();
    wait_until(Duration::from_secs(60), "the sink saw every word", || {
        stat(&c.topology("reversed-word-count"), "sink", "executed") == total
    });
    assert!(
        c.gale(&["kill", "reversed-word-count", "-w", "1"])
            .status
            .success()
    );
    wait_until(Duration::from_secs(30), "the sink file exists", || {
        output.exists()
    });
    assert_eq!(read_counts(&output), reversed(&want));
}

#[test]
fn stock_gale_cluster_rejects_a_class_only_this_binary_has() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::start("stock", &["sup-a"]);
    let dir = c.dir.clone();
    std::fs::write(dir.join("in.txt"), "a b\n").expect("input");
    // This binary validates the topology (it has the class) and submits it to the stock Nimbus,
    // whose supervisor cannot run it.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_custom-cluster"))
        .args([
            "submit",
            &topology_yaml(),
            "--set",
            &format!("input={}", dir.join("in.txt").display()),
            "--set",
            &format!("output={}", dir.join("out.tsv").display()),
        ])
        .env("GALE_NIMBUS", &c.nimbus_addr)
        .env("GALE_AUTH_TOKEN", &c.token)
        .env("GALE_LOG", "warn")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("com.example.storm.ReverseWordBolt"), "{err}");
    eprintln!("the stock Nimbus said: {err}");
    assert!(
        err.contains("SplitSentenceBolt"),
        "the known classes are listed: {err}"
    );
    // Nothing was stored.
    let list = String::from_utf8_lossy(&c.gale(&["list"]).stdout).into_owned();
    assert!(list.contains("No topologies running."), "{list}");
    // The stock client refuses it before Nimbus, naming the class and the known ones.
    let o = c.gale(&[
        "validate",
        &topology_yaml(),
        "--set",
        "input=x",
        "--set",
        "output=y",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("unknown className \"com.example.storm.ReverseWordBolt\""),
        "{err}"
    );
}
