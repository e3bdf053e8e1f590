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

/// A bounded run of topologies/kafka-word-count.yaml against `broker`, with more arguments;
/// fails the test unless it succeeds and ends by itself.
fn bounded_word_count(broker: &kafka::Broker, more: &[&str]) -> Output {
    let yaml = root().join("topologies/kafka-word-count.yaml");
    let bootstrap = format!("bootstrap={}", broker.bootstrap);
    let mut args = vec![
        "local",
        yaml.to_str().expect("path"),
        "--set",
        &bootstrap,
        "--set",
        "bounded=true",
        "--duration",
        "120",
    ];
    args.extend_from_slice(more);
    let o = gale(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("drained"),
        "the bounded run ends by itself: {stdout}"
    );
    o
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
    bounded_word_count(&broker, &["--set", "spouts=2"]);
    let out = broker.read("word-counts", 2.0);
    assert_eq!(last_by_key(&out), want);
    // Every count update was written once: one record per word occurrence.
    assert_eq!(out.len() as i64, want.values().sum::<i64>());
    assert_eq!(broker.committed("kafka-word-count", "lines"), ends);

    // Run again: the group's committed offsets say everything was read; nothing is counted.
    bounded_word_count(&broker, &[]);
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
        let group = format!("group={group}");
        bounded_word_count(
            &broker,
            &[
                "--set",
                "count.class=StatefulWordCount",
                "--set",
                &group,
                "--set",
                "checkpoint.ms=200",
                "--state-dir",
                state.to_str().expect("path"),
            ],
        )
    };
    run("first-group");
    assert_eq!(last_by_key(&broker.read("word-counts", 1.5)), want);
    let second = d.join("second.txt");
    for (w, n) in write_lines(&second, 3_000) {
        *want.entry(w).or_insert(0) += n;
    }
    broker.produce_file("lines", &second);
    run("second-group");
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

/// A spout-to-sink topology with the given spout properties (YAML lines) and sink.
fn inline_topology(
    dir: &Path,
    name: &str,
    bootstrap: &str,
    spout_props: &[(&str, &str)],
    config: &str,
    sink: &str,
) -> PathBuf {
    let mut props = format!(
        "      - {{name: bootstrap.servers, value: \"{bootstrap}\"}}\n      - {{name: topics, value: lines}}\n      - {{name: group.id, value: {name}}}\n      - {{name: recordTranslator, value: value}}\n      - {{name: stopWhenCaughtUp, value: true}}\n"
    );
    for (k, v) in spout_props {
        props += &format!("      - {{name: {k}, value: {v}}}\n");
    }
    let yaml = format!(
        "name: {name}\nconfig:\n  topology.workers: 1\n{config}spouts:\n  - id: lines\n    className: KafkaSpout\n    parallelism: 2\n    properties:\n{props}\
         bolts:\n  - id: split\n    className: SplitSentenceBolt\n    parallelism: 2\n  - id: count\n    className: WordCountBolt\n    parallelism: 2\n{sink}\
         streams:\n  - {{from: lines, to: split, grouping: {{type: SHUFFLE}}}}\n  - {{from: split, to: count, grouping: {{type: FIELDS, args: [word]}}}}\n  - {{from: count, to: sink, grouping: {{type: GLOBAL}}}}\n"
    );
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, yaml).expect("yaml");
    p
}

fn metrics_stat(m: &Path, id: &str, k: &str) -> u64 {
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m).expect("metrics")).expect("json");
    j["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .and_then(|c| c[k].as_u64())
        .unwrap_or(0)
}

/// Storm's three guarantees and a tiny `max.uncommitted.offsets` each count every line exactly
/// once when nothing fails, commit the log end, and never stall (Storm's spout stops at the
/// limit without ackers, issue 6739).
#[test]
fn every_guarantee_counts_everything_and_commits_the_log_end() {
    let broker = kafka::Broker::start("guarantees");
    broker.create_topic("lines", 3);
    let d = tmpdir("guarantees");
    let input = d.join("lines.txt");
    let want = write_lines(&input, 3_000);
    let ends = broker.produce_file("lines", &input);
    let sink = |out: &Path| {
        format!(
            "  - {{id: sink, className: TsvSinkBolt, properties: [{{name: path, value: \"{}\"}}]}}\n",
            out.display()
        )
    };
    let cases: &[(&str, &[(&str, &str)], &str)] = &[
        (
            "at-least-once",
            &[
                ("processingGuarantee", "AT_LEAST_ONCE"),
                ("offset.commit.period.ms", "100"),
            ],
            "  topology.acker.executors: 1\n",
        ),
        (
            "at-most-once",
            &[("processingGuarantee", "AT_MOST_ONCE")],
            "  topology.acker.executors: 1\n",
        ),
        (
            "no-guarantee",
            &[
                ("processingGuarantee", "NO_GUARANTEE"),
                ("offset.commit.period.ms", "100"),
            ],
            "  topology.acker.executors: 1\n",
        ),
        (
            "max-uncommitted",
            &[
                ("maxUncommittedOffsets", "10"),
                ("offset.commit.period.ms", "60000"),
            ],
            "  topology.acker.executors: 1\n",
        ),
        (
            "no-ackers",
            &[
                ("maxUncommittedOffsets", "10"),
                ("offset.commit.period.ms", "100"),
            ],
            "  topology.acker.executors: 0\n",
        ),
    ];
    for (name, props, config) in cases {
        let out = d.join(format!("{name}.tsv"));
        let yaml = inline_topology(&d, name, &broker.bootstrap, props, config, &sink(&out));
        let o = gale(&["local", yaml.to_str().expect("path"), "--duration", "60"]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("drained"),
            "{name}: the run ends by itself"
        );
        let got: BTreeMap<String, i64> = std::fs::read_to_string(&out)
            .expect("sink")
            .lines()
            .filter_map(|l| {
                l.rsplit_once('\t')
                    .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(0)))
            })
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(
            broker.committed(name, "lines"),
            ends,
            "{name}: committed offsets"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A bolt (Python, Storm's multi-lang protocol) that fails each line the first time it sees it
/// and acks it the second time: every line is failed once and emitted again after Storm's
/// backoff, the spout finishes only when every line is acked, and the committed offsets reach
/// the log end.
const FAIL_ONCE: &str = r#"import json, os, sys
def read():
    lines = []
    while True:
        line = sys.stdin.readline()
        if not line:
            sys.exit(0)
        line = line.rstrip("\n")
        if line == "end":
            break
        lines.append(line)
    return json.loads("\n".join(lines))
def send(m):
    sys.stdout.write(json.dumps(m) + "\nend\n")
    sys.stdout.flush()
setup = read()
open(os.path.join(setup["pidDir"], str(os.getpid())), "w").close()
send({"pid": os.getpid()})
seen = set()
while True:
    m = read()
    if isinstance(m, list):
        continue
    if m.get("stream") == "__heartbeat":
        send({"command": "sync"})
        continue
    v = m["tuple"][0]
    if v in seen:
        send({"command": "ack", "id": m["id"]})
    else:
        seen.add(v)
        send({"command": "fail", "id": m["id"]})
"#;

#[test]
fn failed_tuples_are_emitted_again_until_acked() {
    let broker = kafka::Broker::start("retries");
    broker.create_topic("lines", 2);
    let d = tmpdir("retries");
    std::fs::write(d.join("fail_once.py"), FAIL_ONCE).expect("bolt");
    let input = d.join("lines.txt");
    std::fs::write(
        &input,
        (0..400).map(|i| format!("line-{i}\n")).collect::<String>(),
    )
    .expect("input");
    let ends = broker.produce_file("lines", &input);
    let yaml = format!(
        "name: retries\nconfig:\n  topology.workers: 1\n  topology.acker.executors: 1\n\
         spouts:\n  - id: lines\n    className: KafkaSpout\n    properties:\n      - {{name: bootstrap.servers, value: \"{}\"}}\n      - {{name: topics, value: lines}}\n      - {{name: group.id, value: retries}}\n      - {{name: recordTranslator, value: value}}\n      - {{name: stopWhenCaughtUp, value: true}}\n      - {{name: offset.commit.period.ms, value: 100}}\n\
         bolts:\n  - id: flaky\n    className: ShellBolt\n    constructorArgs: [[\"python3\", \"fail_once.py\"], []]\n\
         streams:\n  - {{from: lines, to: flaky, grouping: {{type: SHUFFLE}}}}\n",
        broker.bootstrap,
    );
    let p = d.join("retries.yaml");
    std::fs::write(&p, yaml).expect("yaml");
    let m = d.join("m.json");
    let o = gale(&[
        "local",
        p.to_str().expect("path"),
        "--duration",
        "60",
        "--metrics-json",
        m.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("drained"),
        "the run ends once every line is acked"
    );
    assert_eq!(
        metrics_stat(&m, "lines", "failed"),
        400,
        "each line failed once"
    );
    assert_eq!(
        metrics_stat(&m, "lines", "acked"),
        400,
        "each line acked once, on its second try"
    );
    assert_eq!(metrics_stat(&m, "lines", "emitted"), 800);
    assert_eq!(broker.committed("retries", "lines"), ends);
}
