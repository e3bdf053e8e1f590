//! Kafka on a cluster of real processes: ZooKeeper, Nimbus, two Supervisors, a tansu broker and
//! a `redis-server`, all on free loopback ports; kafka-python produces the input and reads the
//! output. The supervisor running one of the two spout tasks is killed with SIGKILL mid-stream.

#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/redis.rs"]
mod redis;
#[path = "support/cluster.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

fn topology(dir: &Path, bootstrap: &str, redis_port: u16) -> std::path::PathBuf {
    let yaml = format!(
        "name: kafka-cluster\nconfig:\n  topology.workers: 2\n  topology.acker.executors: 2\n  topology.max.spout.pending: 20000\n  topology.message.timeout.secs: 30\n\
         \x20 topology.state.checkpoint.interval.ms: 1000\n  topology.state.provider: redis\n\
         \x20 topology.state.provider.config: '{{\"jedisPoolConfig\": {{\"host\": \"127.0.0.1\", \"port\": {redis_port}}}}}'\n\
         spouts:\n  - id: lines\n    className: org.apache.storm.kafka.spout.KafkaSpout\n    parallelism: 2\n    properties:\n\
         \x20     - {{name: bootstrap.servers, value: \"{bootstrap}\"}}\n      - {{name: topics, value: lines}}\n\
         \x20     - {{name: group.id, value: cluster-group}}\n      - {{name: recordTranslator, value: value}}\n\
         \x20     - {{name: offset.commit.period.ms, value: 500}}\n\
         bolts:\n  - {{id: split, className: SplitSentenceBolt, parallelism: 2}}\n  - {{id: count, className: StatefulWordCount, parallelism: 2}}\n\
         \x20 - id: copy\n    className: org.apache.storm.kafka.bolt.KafkaBolt\n    parallelism: 2\n    properties:\n\
         \x20     - {{name: bootstrap.servers, value: \"{bootstrap}\"}}\n      - {{name: topic, value: copy}}\n\
         \x20     - {{name: keyField, value: \"\"}}\n      - {{name: messageField, value: value}}\n\
         streams:\n  - {{from: lines, to: split, grouping: {{type: SHUFFLE}}}}\n  - {{from: split, to: count, grouping: {{type: FIELDS, args: [word]}}}}\n\
         \x20 - {{from: lines, to: copy, grouping: {{type: SHUFFLE}}}}\n",
    );
    std::fs::create_dir_all(dir.join("topo")).expect("dir");
    let p = dir.join("topo/kafka-cluster.yaml");
    std::fs::write(&p, yaml).expect("yaml");
    p
}

/// 100,000 lines produced by kafka-python into a 3-partition topic; two spout tasks on two
/// supervisors read them, acking on, into a stateful word count (Redis) and a KafkaBolt that
/// copies each line to another topic. The supervisor of one spout task is killed with SIGKILL
/// mid-stream: its task moves to the survivor and resumes from the offsets of the last committed
/// checkpoint. Every line reaches the copy topic at least once, the committed offsets reach the
/// log end, and every count in Redis (each line's own tag included) is exact.
#[test]
fn kafka_spout_tasks_survive_kill_9_with_every_line_and_exact_state() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = Cluster::start("kafka", &["sup-a", "sup-b"]);
    let redis = redis::start_redis(&c.dir.join("redis"));
    let broker = kafka::Broker::start("cluster");
    broker.create_topic("lines", 3);
    broker.create_topic("copy", 3);
    let lines = 100_000;
    let (input, want) = write_input(&c.dir, lines);
    let want: BTreeMap<String, i64> = want.into_iter().map(|(k, v)| (k, v as i64)).collect();
    let total: i64 = want.values().sum();
    let produced = Instant::now();
    let ends = broker.produce_file("lines", &input);
    let produce_secs = produced.elapsed().as_secs_f64();
    assert_eq!(ends.values().sum::<i64>(), lines as i64);
    let yaml = topology(&c.dir, &broker.bootstrap, redis.port);
    let o = c.gale(&["submit", yaml.to_str().expect("path")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let submitted = Instant::now();
    let mut before = 0;
    wait_until(
        Duration::from_secs(90),
        "some counts committed to Redis",
        || {
            before = redis::redis_counts(redis.port).values().sum::<i64>();
            before > 0
        },
    );
    assert!(
        before < total,
        "the stream was already done; make the input larger"
    );
    let t = c.topology("kafka-cluster");
    let lag_before = gauge(&t, "kafkaOffset/lines/totalSpoutLag");
    let spout_hosts: BTreeSet<String> = t["assignment"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["component"] == "lines")
                .filter_map(|r| r["supervisor"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(spout_hosts.len(), 2, "one spout task per supervisor: {t}");
    let victim = spout_hosts.iter().next().expect("a host").clone();
    c.kill_supervisor(&victim);
    let killed = Instant::now();
    let mut last = BTreeMap::new();
    wait_until(Duration::from_secs(240), "every count in Redis", || {
        last = redis::redis_counts(redis.port);
        for (w, n) in &last {
            let k = want.get(w).copied().unwrap_or(0);
            assert!(*n <= k, "{w} counted {n} times, {k} in the input");
        }
        last == want
    });
    let exact_after = killed.elapsed().as_secs_f64();
    let mut committed = BTreeMap::new();
    wait_until(
        Duration::from_secs(60),
        "offsets committed to the log end",
        || {
            committed = broker.committed("cluster-group", "lines");
            committed == ends
        },
    );
    // The spout's lag, as `gale status` and /metrics show it, goes to 0 and its completed
    // offsets to the log end.
    let mut t = c.topology("kafka-cluster");
    wait_until(
        Duration::from_secs(30),
        "the spout's lag at 0 in status",
        || {
            t = c.topology("kafka-cluster");
            gauge(&t, "kafkaOffset/lines/totalSpoutLag") == Some(0)
        },
    );
    let completed: i64 = (0..3)
        .filter_map(|p| {
            gauge(
                &t,
                &format!("kafkaOffset/lines/partition_{p}/latestCompletedOffset"),
            )
        })
        .sum();
    assert_eq!(completed, lines as i64, "{t}");
    let (code, metrics) = http_get(&c, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("gale_component_gauge{topology=\"kafka-cluster\",component=\"lines\",name=\"kafkaOffset/lines/totalSpoutLag\"} 0"),
        "{metrics}"
    );
    let copied = broker.read("copy", 2.0);
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    for r in &copied {
        *seen.entry(r.3.as_str()).or_default() += 1;
    }
    let text = std::fs::read_to_string(&input).expect("input");
    let missing: Vec<&str> = text.lines().filter(|l| !seen.contains_key(l)).collect();
    assert!(
        missing.is_empty(),
        "{} of {lines} lines never reached the copy topic, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    // Counts stay exact: nothing is counted again once the input is done.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        redis::redis_counts(redis.port),
        want,
        "counts moved after the input was done"
    );
    eprintln!(
        "kafka cluster: {lines} lines produced in {produce_secs:.1} s; {before} of {total} words \
         committed when supervisor {victim} (a spout task's) was killed {:.1} s after submit; \
         every count exact {exact_after:.1} s after the kill; {} records in the copy topic \
         ({} extra: at-least-once replays); committed offsets {committed:?}; spout lag in status \
         before the kill {lag_before:?}",
        killed.duration_since(submitted).as_secs_f64(),
        copied.len(),
        copied.len() - lines,
    );
}

/// A gauge of the `lines` spout from a topology's status.
fn gauge(t: &serde_json::Value, name: &str) -> Option<i64> {
    t["components"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == "lines")?["stats"]["gauges"][name]
        .as_i64()
}
