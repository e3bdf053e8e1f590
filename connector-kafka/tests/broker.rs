//! The client against a real Kafka-protocol broker (tansu), checked with an independent client
//! (kafka-python): what one writes the other reads, offsets committed by one are seen by the other.

#[path = "../../cli/tests/support/kafka.rs"]
mod kafka;

use bytes::Bytes;
use connector_kafka::client::{EARLIEST, KafkaClient};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[test]
fn the_client_reads_writes_and_commits_what_kafka_python_sees() {
    let broker = kafka::Broker::start("client");
    broker.create_topic("in", 3);
    let dir = std::env::temp_dir().join(format!("gale-kafka-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("lines.txt");
    let lines: Vec<String> = (0..2000).map(|i| format!("line {i} é")).collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("write");
    let ends = broker.produce_file("in", &file);
    assert_eq!(ends.values().sum::<i64>(), 2000, "{ends:?}");

    let mut c = KafkaClient::new(
        vec![broker.bootstrap.clone()],
        "gale-test",
        Duration::from_secs(10),
    );
    assert_eq!(c.partitions("in").expect("partitions"), vec![0, 1, 2]);
    let parts: Vec<(String, i32)> = (0..3).map(|p| ("in".to_owned(), p)).collect();
    let earliest = c.list_offsets(&parts, EARLIEST).expect("list offsets");
    assert!(earliest.values().all(|&o| o == 0), "{earliest:?}");

    // Read everything, in small fetches so batches are cut and resumed.
    let mut pos: BTreeMap<i32, i64> = (0..3).map(|p| (p, 0)).collect();
    let mut got: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pos.iter().any(|(p, o)| *o < ends[p]) {
        assert!(
            Instant::now() < deadline,
            "read stalled at {pos:?} of {ends:?}"
        );
        let wanted: Vec<(String, i32, i64)> =
            pos.iter().map(|(p, o)| ("in".to_owned(), *p, *o)).collect();
        let r = c
            .fetch(&wanted, Duration::from_millis(100), 8192, 4096)
            .expect("fetch");
        for ((_, p), f) in r {
            for rec in &f.records {
                let v = String::from_utf8(rec.value.as_deref().unwrap_or_default().to_vec())
                    .expect("utf-8");
                got.entry(p).or_default().push((rec.offset, v));
            }
            pos.insert(p, f.next_offset);
        }
    }
    let mut all: Vec<String> = Vec::new();
    for (p, recs) in &got {
        let offsets: Vec<i64> = recs.iter().map(|r| r.0).collect();
        let want: Vec<i64> = (0..ends[p]).collect();
        assert_eq!(offsets, want, "partition {p}: every offset once, in order");
        all.extend(recs.iter().map(|r| r.1.clone()));
    }
    all.sort();
    let mut want = lines.clone();
    want.sort();
    assert_eq!(all, want);

    // Commits made here are what kafka-python sees, and back.
    let offsets: Vec<(String, i32, i64)> = ends
        .iter()
        .map(|(p, o)| ("in".to_owned(), *p, *o))
        .collect();
    c.commit_offsets("g1", &offsets, r#"{"topologyId":"t"}"#)
        .expect("commit");
    assert_eq!(broker.committed("g1", "in"), ends);
    let back = c.committed_offsets("g1", &parts).expect("committed");
    for (p, o) in &ends {
        let cm = &back[&("in".to_owned(), *p)];
        assert_eq!(cm.offset, *o);
        // tansu 0.6.0 keeps no commit metadata (kafka-python sees None too): docs/kafka.md.
        assert!(
            ["", r#"{"topologyId":"t"}"#].contains(&cm.metadata.as_str()),
            "{}",
            cm.metadata
        );
    }

    // What is produced here, kafka-python reads: keys, values, order within a partition.
    c.create_topic("out", 2, 1).expect("create");
    c.create_topic("out", 2, 1)
        .expect("creating an existing topic is not an error");
    for batch in 0..3 {
        let recs: Vec<(Option<Bytes>, Option<Bytes>)> = (0..5)
            .map(|i| {
                (
                    Some(Bytes::from(format!("k{i}"))),
                    Some(Bytes::from(format!("v{batch}-{i}"))),
                )
            })
            .collect();
        let base = c
            .produce("out", batch % 2, &recs, 1_700_000_000_000)
            .expect("produce");
        assert_eq!(
            base,
            [0, 0, 5][batch as usize],
            "base offset of batch {batch}"
        );
    }
    let read = broker.read("out", 2.0);
    let p0: Vec<String> = read
        .iter()
        .filter(|r| r.0 == 0)
        .map(|r| format!("{}={}", r.2, r.3))
        .collect();
    assert_eq!(p0.len(), 10, "{read:?}");
    assert_eq!(p0[0], "k0=v0-0");
    assert_eq!(p0[9], "k4=v2-4");
    assert_eq!(read.iter().filter(|r| r.0 == 1).count(), 5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_absent_broker_or_topic_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut c = KafkaClient::new(
        vec![format!("127.0.0.1:{port}")],
        "gale-test",
        Duration::from_secs(2),
    );
    let e = c.partitions("x").expect_err("no broker");
    assert!(e.to_string().contains("cannot reach Kafka broker"), "{e}");
    let broker = kafka::Broker::start("absent");
    let mut c = KafkaClient::new(
        vec![broker.bootstrap.clone()],
        "gale-test",
        Duration::from_secs(5),
    );
    let e = c.partitions("no-such-topic").expect_err("no topic");
    assert!(e.to_string().contains("no topic \"no-such-topic\""), "{e}");
}
