//! Exactly-once state on a cluster of real processes: ZooKeeper, Nimbus, two Supervisors and a
//! `redis-server` on free loopback ports; the supervisor running the stateful bolt is killed
//! with SIGKILL mid-stream.

#[path = "support/redis.rs"]
mod redis;
#[path = "support/cluster.rs"]
mod support;

use redis::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

/// The counts stay exact: nothing is counted again after the input was done.
fn stays_exact(port: u16, want: &BTreeMap<String, i64>) {
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        &redis_counts(port),
        want,
        "counts moved after the input was done"
    );
}

fn topology(dir: &Path, input: &Path, redis_port: u16) -> PathBuf {
    let yaml = format!(
        "name: stateful\nconfig:\n  topology.workers: 2\n  topology.acker.executors: 2\n  topology.max.spout.pending: 50000\n  topology.message.timeout.secs: 10\n\
         \x20 topology.state.checkpoint.interval.ms: 1000\n  topology.state.provider: org.apache.storm.redis.state.RedisKeyValueStateProvider\n\
         \x20 topology.state.provider.config: '{{\"jedisPoolConfig\": {{\"host\": \"127.0.0.1\", \"port\": {redis_port}}}}}'\n\
         spouts:\n  - id: lines\n    className: FileLineSpout\n    properties: [{{name: path, value: \"{}\"}}]\n\
         bolts:\n  - {{id: split, className: SplitSentenceBolt, parallelism: 2}}\n  - {{id: count, className: StatefulWordCount, parallelism: 2}}\n\
         streams:\n  - {{from: lines, to: split, grouping: {{type: SHUFFLE}}}}\n  - {{from: split, to: count, grouping: {{type: FIELDS, args: [word]}}}}\n",
        input.display(),
    );
    std::fs::create_dir_all(dir.join("topo")).expect("dir");
    let p = dir.join("topo/stateful.yaml");
    std::fs::write(&p, yaml).expect("yaml");
    p
}

/// A stateful word count over 200,000 lines with its state in Redis; the supervisor running a
/// `count` task is killed with SIGKILL mid-stream. Its executors move to the survivor, which
/// finds their state in Redis; the checkpoint in flight fails, everything rolls back to the last
/// committed checkpoint and the spout rewinds to the position recorded with it. When the input
/// is done, the Redis hashes hold exactly the counts of an independent count: no word counted
/// twice, none lost.
#[test]
fn redis_counts_are_exact_after_the_stateful_bolts_supervisor_is_killed() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = Cluster::start("stateful", &["sup-a", "sup-b"]);
    let redis = start_redis(&c.dir.join("redis"));
    let input = c.dir.join("input.txt");
    let want = write_words(&input, 200_000, 11);
    let total: i64 = want.values().sum();
    let yaml = topology(&c.dir, &input, redis.port);
    let o = c.gale(&["submit", yaml.to_str().expect("path")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut before = 0;
    wait_until(
        Duration::from_secs(60),
        "some counts committed to Redis",
        || {
            before = redis_counts(redis.port).values().sum::<i64>();
            before > 0
        },
    );
    assert!(
        before < total,
        "the stream was already done; make the input larger"
    );
    let t = c.topology("stateful");
    let victim = t["assignment"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["component"] == "count"))
        .and_then(|r| r["supervisor"].as_str())
        .expect("count placed")
        .to_owned();
    c.kill_supervisor(&victim);
    let killed = Instant::now();
    let mut last = BTreeMap::new();
    wait_until(Duration::from_secs(240), "every count in Redis", || {
        last = redis_counts(redis.port);
        for (w, n) in &last {
            assert!(
                *n <= want.get(w).copied().unwrap_or(0),
                "{w} counted {n} times, {} in the input: a line counted twice",
                want.get(w).copied().unwrap_or(0)
            );
        }
        last == want
    });
    let done = killed.elapsed().as_secs_f64();
    stays_exact(redis.port, &want);
    eprintln!(
        "supervisor {victim} (a count task's) killed with {before} of {total} words committed: every count in Redis exact {done:.1} s after the kill"
    );
}

/// A rebalance of the stateful bolt to one executor and back to two: its tasks, and so their
/// state, stay the same (Storm's rule); the workers restart, roll back to the last committed
/// checkpoint and the spout rewinds. The Redis counts end exact.
#[test]
fn redis_counts_are_exact_across_rebalances_of_the_stateful_bolt() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::start("stateful-rebalance", &["sup-a", "sup-b"]);
    let redis = start_redis(&c.dir.join("redis"));
    let input = c.dir.join("input.txt");
    let want = write_words(&input, 200_000, 11);
    let yaml = topology(&c.dir, &input, redis.port);
    let o = c.gale(&["submit", yaml.to_str().expect("path")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(
        Duration::from_secs(60),
        "some counts committed to Redis",
        || redis_counts(redis.port).values().sum::<i64>() > 0,
    );
    let executors = |n: u64| {
        move |c: &Cluster| {
            let t = c.topology("stateful");
            let count = t["components"]
                .as_array()
                .and_then(|cs| cs.iter().find(|x| x["id"] == "count").cloned())
                .unwrap_or_default();
            t["status"] == "ACTIVE" && count["executors"] == n && count["tasks"] == 2
        }
    };
    let total: i64 = want.values().sum();
    let mut at = Vec::new();
    for n in [1, 2] {
        at.push(redis_counts(redis.port).values().sum::<i64>());
        let o = c.gale(&[
            "rebalance",
            "stateful",
            "-w",
            "1",
            "-e",
            &format!("count={n}"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let ready = executors(n);
        wait_until(Duration::from_secs(60), "the rebalance done", || ready(&c));
    }
    wait_until(Duration::from_secs(240), "every count in Redis", || {
        let got = redis_counts(redis.port);
        for (w, n) in &got {
            assert!(
                *n <= want.get(w).copied().unwrap_or(0),
                "{w} counted {n} times: a line counted twice"
            );
        }
        got == want
    });
    assert!(
        at[0] < total,
        "the stream was done before the first rebalance"
    );
    stays_exact(redis.port, &want);
    eprintln!(
        "rebalanced to 1 count executor at {} and back to 2 at {} of {total} words committed: every count in Redis exact",
        at[0], at[1]
    );
}

#[path = "support/events.rs"]
mod events;

/// A stateful windowed bolt (`StatefulWindowCountBolt`, open windows in Redis) on two workers;
/// the supervisor running a window task is killed with SIGKILL mid-stream. The topology rolls
/// back to the last committed checkpoint and the spout rewinds; every window that fired, taken
/// once (rows fired again after the rollback must be equal), equals an independent count. On a
/// cluster the input never ends: the windows compared end 20 s or more before the last event.
#[test]
fn stateful_windows_are_exact_after_the_window_bolts_supervisor_is_killed() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = Cluster::start("stateful-windows", &["sup-a", "sup-b"]);
    let redis = start_redis(&c.dir.join("redis"));
    let input = events::events(&c.dir, 400_000);
    let (out, late) = (c.dir.join("counts.tsv"), c.dir.join("late.tsv"));
    let yaml = format!(
        "name: windows\nconfig:\n  topology.workers: 2\n  topology.acker.executors: 2\n  topology.max.spout.pending: 50000\n  topology.message.timeout.secs: 30\n\
         \x20 topology.state.checkpoint.interval.ms: 1000\n  topology.state.provider: redis\n\
         \x20 topology.state.provider.config: '{{\"jedisPoolConfig\": {{\"host\": \"127.0.0.1\", \"port\": {}}}}}'\n\
         spouts:\n  - id: events\n    className: FileLineSpout\n    properties: [{{name: path, value: \"{}\"}}]\n\
         bolts:\n  - id: parse\n    className: DelimitedLineBolt\n    parallelism: 2\n    properties: [{{name: fields, value: [ts, key]}}, {{name: intFields, value: [ts]}}]\n\
         \x20 - id: counts\n    className: StatefulWindowCountBolt\n    parallelism: 2\n    properties: [{{name: keyField, value: key}}, {{name: windowLengthMs, value: 10000}}, {{name: slidingIntervalMs, value: 5000}}, {{name: timestampField, value: ts}}, {{name: lagMs, value: 5000}}, {{name: lateTupleStream, value: late}}]\n\
         \x20 - id: out\n    className: FileSinkBolt\n    properties: [{{name: path, value: \"{}\"}}]\n\
         \x20 - id: late\n    className: FileSinkBolt\n    properties: [{{name: path, value: \"{}\"}}]\n\
         streams:\n  - {{from: events, to: parse, grouping: {{type: SHUFFLE}}}}\n  - {{from: parse, to: counts, grouping: {{type: FIELDS, args: [key]}}}}\n\
         \x20 - {{from: counts, to: out, grouping: {{type: GLOBAL}}}}\n  - {{from: counts, to: late, grouping: {{type: GLOBAL, streamId: late}}}}\n",
        redis.port,
        input.display(),
        out.display(),
        late.display(),
    );
    std::fs::create_dir_all(c.dir.join("topo")).expect("dir");
    let topo = c.dir.join("topo/windows.yaml");
    std::fs::write(&topo, yaml).expect("yaml");
    let o = c.gale(&["submit", topo.to_str().expect("path")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = |p: &Path| std::fs::read_to_string(p).map_or(0, |s| s.lines().count());
    wait_until(Duration::from_secs(60), "some windows fired", || {
        rows(&out) > 100
    });
    let t = c.topology("windows");
    let victim = t["assignment"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["component"] == "counts"))
        .and_then(|r| r["supervisor"].as_str())
        .expect("counts placed")
        .to_owned();
    let before = rows(&out);
    c.kill_supervisor(&victim);
    let (want, want_late) = events::independent(&input, 10_000, 5_000, 5_000);
    let (horizon, want) = events::before_horizon(&input, want);
    assert!(
        before < want.len(),
        "the stream was done before the kill ({before} rows)"
    );
    let mut got = events::Windows::new();
    wait_until(
        Duration::from_secs(240),
        "every window before the horizon",
        || {
            got = events::read_windows_once(&out, Some(horizon));
            got.len() >= want.len()
        },
    );
    assert_eq!(got, want, "windows before the horizon");
    let lates: std::collections::BTreeSet<(i64, String)> =
        events::read_late(&late).into_iter().collect();
    let want_late: std::collections::BTreeSet<(i64, String)> = want_late
        .into_iter()
        .filter(|(ts, _)| *ts < horizon)
        .collect();
    let lates: std::collections::BTreeSet<(i64, String)> =
        lates.into_iter().filter(|(ts, _)| *ts < horizon).collect();
    assert_eq!(lates, want_late);
    eprintln!(
        "supervisor {victim} (a window task's) killed after {before} window rows: every window exact"
    );
}
