//! Kafka in local mode against a real Kafka-protocol broker (tansu), with kafka-python producing
//! the input and reading the output (an independent client).

#[path = "support/kafka.rs"]
mod kafka;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gale-kafka-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn gale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gale"))
        .args(args)
        .env("GALE_LOG", "warn")
        .output()
        .expect("gale runs")
}

/// Lines of words from a small vocabulary, and the count of each word.
fn write_lines(path: &Path, lines: usize) -> BTreeMap<String, i64> {
    let vocab = [
        "storm",
        "gale",
        "kafka",
        "offset",
        "partition",
        "commit",
        "tuple",
        "bolt",
        "spout",
        "naïve",
        "言葉",
    ];
    let mut text = String::new();
    let mut want = BTreeMap::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..lines {
        let n = 3 + i % 5;
        let mut words = Vec::with_capacity(n);
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = vocab[(x % vocab.len() as u64) as usize];
            words.push(w);
            *want.entry(w.to_owned()).or_insert(0) += 1;
        }
        text += &words.join(" ");
        text.push('\n');
    }
    std::fs::write(path, text).expect("input");
    want
}

/// The last value of each key in a topic (a keyed topic's latest state).
fn last_by_key(records: &[(i32, i64, String, String)]) -> BTreeMap<String, i64> {
    let mut sorted = records.to_vec();
    sorted.sort_by_key(|r| (r.0, r.1));
    sorted
        .into_iter()
        .map(|r| (r.2, r.3.parse().expect("a count")))
        .collect()
}

/// topologies/kafka-word-count.yaml, bounded: 20,000 lines from a 3-partition topic read by two
/// spout tasks, counted, and written keyed by word to another topic. The last record of each
/// word there is its exact count, and the spout committed each partition's log end.
#[test]
fn kafka_word_count_writes_each_words_exact_count_and_commits_the_log_end() {
    let broker = kafka::Broker::start("word-count");
    broker.create_topic("lines", 3);
    broker.create_topic("word-counts", 3);
    let d = tmpdir("word-count");
    let input = d.join("lines.txt");
    let want = write_lines(&input, 20_000);
    let ends = broker.produce_file("lines", &input);
    assert_eq!(ends.values().sum::<i64>(), 20_000);
    let o = gale(&[
        "local",
        root()
            .join("topologies/kafka-word-count.yaml")
            .to_str()
            .expect("path"),
        "--set",
        &format!("bootstrap={}", broker.bootstrap),
        "--set",
        "bounded=true",
        "--set",
        "spouts=2",
        "--duration",
        "120",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("drained"),
        "the bounded run ends by itself: {stdout}"
    );
    let out = broker.read("word-counts", 2.0);
    assert_eq!(last_by_key(&out), want);
    // Every count update was written once: one record per word occurrence.
    assert_eq!(out.len() as i64, want.values().sum::<i64>());
    assert_eq!(broker.committed("kafka-word-count", "lines"), ends);

    // Run again: the group's committed offsets say everything was read; nothing is counted.
    let o = gale(&[
        "local",
        root()
            .join("topologies/kafka-word-count.yaml")
            .to_str()
            .expect("path"),
        "--set",
        &format!("bootstrap={}", broker.bootstrap),
        "--set",
        "bounded=true",
        "--duration",
        "60",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(broker.read("word-counts", 1.0).len(), out.len());
    let _ = std::fs::remove_dir_all(&d);
}

/// The stateful count: the spout's offsets are checkpointed with the counts (embedded store).
/// A second bounded run with the same state folder over the topic plus new lines resumes from
/// the checkpointed offsets: each word's final count covers both inputs exactly. The second run
/// uses another consumer group, which has committed nothing: only the checkpoint says where the
/// first run stopped.
#[test]
fn kafka_with_stateful_counts_resumes_from_checkpointed_offsets() {
    let broker = kafka::Broker::start("stateful");
    broker.create_topic("lines", 2);
    broker.create_topic("word-counts", 2);
    let d = tmpdir("stateful");
    let first = d.join("first.txt");
    let mut want = write_lines(&first, 5_000);
    broker.produce_file("lines", &first);
    let state = d.join("state");
    let run = |group: &str| {
        gale(&[
            "local",
            root()
                .join("topologies/kafka-word-count.yaml")
                .to_str()
                .expect("path"),
            "--set",
            &format!("bootstrap={}", broker.bootstrap),
            "--set",
            "bounded=true",
            "--set",
            "count.class=StatefulWordCount",
            "--set",
            &format!("group={group}"),
            "--set",
            "checkpoint.ms=200",
            "--state-dir",
            state.to_str().expect("path"),
            "--duration",
            "120",
        ])
    };
    let o = run("first-group");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(last_by_key(&broker.read("word-counts", 1.5)), want);
    let second = d.join("second.txt");
    for (w, n) in write_lines(&second, 3_000) {
        *want.entry(w).or_insert(0) += n;
    }
    broker.produce_file("lines", &second);
    let o = run("second-group");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(last_by_key(&broker.read("word-counts", 1.5)), want);
    let _ = std::fs::remove_dir_all(&d);
}

/// The shape of Storm's kafka_spout.yaml (KafkaSpoutConfig$Builder, setProp, a value-only
/// translator, a Python multi-lang split bolt) runs against the broker and counts the lines.
#[test]
fn storms_kafka_spout_shape_runs_against_the_broker() {
    let broker = kafka::Broker::start("storm-shape");
    broker.create_topic("myKafkaTopic", 1);
    let d = tmpdir("storm-shape");
    let input = d.join("lines.txt");
    std::fs::write(&input, "the cow jumped over the moon\nthe end\n").expect("input");
    broker.produce_file("myKafkaTopic", &input);
    let m = d.join("m.json");
    let o = gale(&[
        "local",
        root()
            .join("examples/multilang/storm-kafka-spout.yaml")
            .to_str()
            .expect("path"),
        "--set",
        &format!("kafka={}", broker.bootstrap),
        "--duration",
        "4",
        "--metrics-json",
        m.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&m).expect("metrics")).expect("json");
    let stat = |id: &str, k: &str| {
        j["components"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == id))
            .and_then(|c| c[k].as_u64())
            .unwrap_or(0)
    };
    assert_eq!(stat("kafka-spout", "emitted"), 2, "{j}");
    assert_eq!(stat("kafka-spout", "acked"), 2, "{j}");
    assert_eq!(stat("count", "executed"), 8, "{j}");
    assert_eq!(stat("log", "executed"), 8, "{j}");
    let _ = std::fs::remove_dir_all(&d);
}

/// A spout pointed at no broker reports the error and keeps trying; the run still ends.
#[test]
fn an_unreachable_broker_is_reported_not_fatal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let o = Command::new(env!("CARGO_BIN_EXE_gale"))
        .arg("local")
        .arg(root().join("topologies/kafka-word-count.yaml"))
        .args(["--set", &format!("bootstrap=127.0.0.1:{port}")])
        .args(["--duration", "1.5"])
        .output()
        .expect("gale runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot reach Kafka broker"), "{err}");
}
