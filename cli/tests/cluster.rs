//! Cluster behaviour with real processes: a private ZooKeeper (scripts/zk.sh) on a loopback port,
//! real `gale nimbus` and `gale supervisor` processes, killed for the fault tests. Every process
//! started here is stopped by PID when the test ends, pass or fail (support/cluster.rs).

#[path = "support/cluster.rs"]
mod support;

use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

#[test]
fn word_count_spreads_over_two_supervisors_counts_exactly_and_is_killed() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::start("wc", &["sup-a", "sup-b"]);
    let (input, want) = write_input(&c.dir, 30_000);
    let total: u64 = want.values().sum();
    let output = c.dir.join("counts.tsv");
    // The YAML lies in a folder with other files and no resources/: only the YAML travels.
    let folder = c.dir.join("home");
    std::fs::create_dir_all(folder.join("private")).expect("dir");
    std::fs::write(folder.join("notes.txt"), "not for the cluster").expect("file");
    std::fs::write(folder.join("private/key"), "secret").expect("file");
    let yaml = folder.join("word-count.yaml");
    std::fs::copy(root().join("topologies/word-count.yaml"), &yaml).expect("yaml");
    let o = c.gale(&[
        "submit",
        yaml.to_str().expect("path"),
        "--set",
        &format!("input={}", input.display()),
        "--set",
        &format!("output={}", output.display()),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(id.starts_with("word-count-"), "{id}");

    // Spread over both supervisors.
    wait_until(
        Duration::from_secs(30),
        "both supervisors run workers",
        || supervisors_used(&c.topology("word-count")).len() == 2,
    );
    let list = String::from_utf8_lossy(&c.gale(&["list"]).stdout).into_owned();
    assert!(
        list.contains("word-count") && list.contains("ACTIVE") && list.contains(&id),
        "{list}"
    );

    // Every word processed once: the sink executed exactly `total` tuples.
    wait_until(Duration::from_secs(60), "the sink saw every word", || {
        stat(&c.topology("word-count"), "sink", "executed") == total
    });
    // The workers run, and nothing but the YAML travelled: their resources folders are empty.
    assert_eq!(
        shipped_files(&c),
        Vec::<String>::new(),
        "nothing but the YAML travels"
    );
    let t = c.topology("word-count");
    assert_eq!(stat(&t, "split", "emitted"), total);
    // The sink is terminal: its end-to-end latency shows in status (heartbeats, about once a second).
    wait_until(Duration::from_secs(10), "latency in status", || {
        let t = c.topology("word-count");
        t["components"].as_array().is_some_and(|cs| {
            cs.iter().any(|x| {
                x["id"] == "sink"
                    && x["stats"]["latency_p99_ms"]
                        .as_f64()
                        .is_some_and(|v| v > 0.0)
            })
        })
    });
    assert_eq!(stat(&t, "sentences", "emitted"), 30_000);
    // When the sink last executed a tuple: after the submit, not in the future.
    let sink = t["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|x| x["id"] == "sink"))
        .expect("sink in status");
    let last = sink["stats"]["last_executed_us"].as_u64().unwrap_or(0);
    let now = topology_api::now_us();
    assert!(
        last > now - 120_000_000 && last <= now + 1_000_000,
        "last_executed_us {last}, now {now}: {sink}"
    );

    // Storm UI's REST read paths and Prometheus text, as a tool written for Storm reads them.
    let (code, body) = http_get(&c, "/api/v1/topology/summary");
    assert_eq!(code, 200, "{body}");
    let sum: Json = serde_json::from_str(&body).expect("json");
    assert_eq!(sum["topologies"][0]["id"], id.as_str(), "{sum}");
    assert_eq!(sum["topologies"][0]["workersTotal"], 2, "{sum}");
    let (code, body) = http_get(&c, &format!("/api/v1/topology/{id}"));
    assert_eq!(code, 200, "{body}");
    let page: Json = serde_json::from_str(&body).expect("json");
    assert_eq!(page["spouts"][0]["spoutId"], "sentences", "{page}");
    let sink = page["bolts"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["boltId"] == "sink").cloned())
        .expect("sink bolt");
    assert_eq!(sink["executed"].as_u64(), Some(total), "{page}");
    let (code, body) = http_get(&c, &format!("/api/v1/topology/{id}/component/count"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"componentType\":\"bolt\""), "{body}");
    let (code, body) = http_get(&c, "/api/v1/cluster/summary");
    assert_eq!(code, 200, "{body}");
    let cs: Json = serde_json::from_str(&body).expect("json");
    assert_eq!(cs["supervisors"], 2, "{cs}");
    assert_eq!(cs["slotsUsed"], 2, "{cs}");
    let (code, body) = http_get(&c, "/api/v1/nimbus/summary");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"Leader\""), "{body}");
    let (code, body) = http_get(&c, "/api/v1/topology/no-such-topology");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("topology/summary"), "{body}");
    let (code, body) = http_get(&c, "/metrics");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(&format!(
            "gale_component_executed_total{{topology=\"word-count\",component=\"sink\",type=\"bolt\"}} {total}"
        )),
        "{body}"
    );

    // Worker ports take frames only from workers that prove the cluster secret: a forged frame
    // (a tuple straight to the sink's task) closes its connection and never arrives.
    forge_a_tuple_to(&c, "sink", "count");
    // Two heartbeat periods (1 s in the test clusters): a forged tuple would show by then.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        stat(&c.topology("word-count"), "sink", "executed"),
        total,
        "a forged tuple was executed"
    );

    // Nimbus has a token (the harness gives it to every daemon and client): a change without
    // it, or from a browser page, is refused and changes nothing.
    let (code, body) = http_post(&c, "/api/v1/topology/word-count/kill/0", &[]);
    assert_eq!(code, 401, "{body}");
    let origin = [("Origin", "http://elsewhere.example")];
    let (code, _) = http_post(&c, "/api/v1/topology/word-count/deactivate", &origin);
    assert_eq!(code, 401);
    assert_eq!(c.topology("word-count")["status"], "ACTIVE");
    // The CLI with a wrong token is refused with a message that says what to do.
    let o = Command::new(&c.bin)
        .args(["deactivate", "word-count"])
        .env("GALE_NIMBUS", &c.nimbus_addr)
        .env("GALE_AUTH_TOKEN", "not-the-token")
        .output()
        .expect("gale runs");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("token"));

    // Kill: deactivate, wait 1 s, remove; the sink writes its file at cleanup.
    let o = c.gale(&["kill", "word-count", "-w", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(Duration::from_secs(30), "the topology is gone", || {
        String::from_utf8_lossy(&c.gale(&["list"]).stdout).contains("No topologies running.")
            && c.status()["topologies"]
                .as_array()
                .is_some_and(|t| t.is_empty())
    });
    wait_until(Duration::from_secs(10), "the sink file exists", || {
        output.exists()
    });
    let got = read_counts(&output);
    assert_eq!(got, want);
}

/// Connects to the worker that runs `component`'s first task, reads its challenge, and sends a
/// well-formed frame (a `[word, count]` tuple from `from`) without answering it.
fn forge_a_tuple_to(c: &Cluster, component: &str, from: &str) {
    use std::io::{Read, Write};
    let t = c.topology("word-count");
    let row = t["assignment"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["component"] == component).cloned())
        .expect("the component is placed");
    let task = row["task_start"].as_u64().expect("task") as u32;
    let port = row["port"].as_u64().expect("port") as u16;
    let src = topology_api::StreamSource::intern(
        from,
        "default",
        &topology_api::Fields::new(["word", "count"]),
    );
    let mut batch = topology_api::Batch::with_capacity(1);
    let values = [
        topology_api::Value::from("forged"),
        topology_api::Value::Int(1_000_000),
    ];
    batch.push(task, src, 1, 0, &[], &values).expect("fits");
    let mut frame = Vec::new();
    worker::transport::encode(batch, &mut frame).expect("encodes");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("worker port");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut hello = [0u8; 21];
    s.read_exact(&mut hello).expect("a challenge");
    assert_eq!(&hello[..5], b"GALE1");
    let _ = s.write_all(&frame);
    // The worker closes the connection: the next read sees its end.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

#[test]
fn rebalance_changes_workers_and_executors() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::start("rebalance", &["sup-a", "sup-b"]);
    let o = c.gale(&["submit", "topologies/lecture-example.yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(Duration::from_secs(30), "2 workers", || {
        c.topology("mytopology")["workers"] == 2
    });
    // Hostile bytes at a worker's port close that connection only.
    let port = c.topology("mytopology")["assignment"][0]["port"]
        .as_u64()
        .expect("a worker port") as u16;
    for bytes in [
        &b"\x00\x00\x00\x05garbage"[..],
        b"\xff\xff\xff\xffoversized",
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        use std::io::Write;
        // The assignment can be visible before the worker listens: retry for a while.
        let mut conn = None;
        wait_until(Duration::from_secs(20), "the worker port accepts", || {
            conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
            conn.is_some()
        });
        let mut s = conn.expect("connected");
        s.write_all(bytes).expect("write");
    }
    let before = stat(&c.topology("mytopology"), "green-bolt", "executed");
    wait_until(
        Duration::from_secs(20),
        "the worker keeps processing",
        || stat(&c.topology("mytopology"), "green-bolt", "executed") > before,
    );
    let logs = c.logs();
    assert!(logs.contains("Closing connection"), "{logs}");
    let o = c.gale(&[
        "rebalance",
        "mytopology",
        "-w",
        "1",
        "-n",
        "1",
        "-e",
        "yellow-bolt=3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(
        Duration::from_secs(30),
        "1 worker and 3 yellow executors",
        || {
            let t = c.topology("mytopology");
            let yellow = t["components"]
                .as_array()
                .and_then(|cs| cs.iter().find(|x| x["id"] == "yellow-bolt").cloned())
                .unwrap_or(Json::Null);
            t["status"] == "ACTIVE"
                && t["workers"] == 1
                && yellow["executors"] == 3
                && yellow["tasks"] == 6
        },
    );
    // Executors may rise only up to the task count.
    let o = c.gale(&["rebalance", "mytopology", "-e", "yellow-bolt=7"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("between 1 and 6"));
    // A worker that cannot start is reported against its component in `gale status`.
    std::fs::create_dir_all(c.dir.join("broken")).expect("dir");
    let broken = c.dir.join("broken/broken.yaml");
    std::fs::write(
        &broken,
        "name: broken\nspouts:\n  - id: lines\n    className: FileLineSpout\n    properties: [{name: path, value: /nonexistent/input.txt}]\nbolts:\n  - {id: log, className: LogInfoBolt}\nstreams:\n  - {from: lines, to: log, grouping: {type: SHUFFLE}}\n",
    )
    .expect("yaml");
    assert!(
        c.gale(&["submit", broken.to_str().expect("path")])
            .status
            .success()
    );
    wait_until(Duration::from_secs(30), "the error shows in status", || {
        let t = c.topology("broken");
        t["components"].as_array().is_some_and(|cs| {
            cs.iter().any(|x| {
                x["id"] == "lines"
                    && x["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("/nonexistent/input.txt"))
            })
        })
    });
    let text = String::from_utf8_lossy(&c.gale(&["status", "broken"]).stdout).into_owned();
    assert!(text.contains("last error of lines"), "{text}");
    let o = c.gale(&["kill", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no topology named \"nope\""));
}

#[test]
fn killed_supervisor_executors_move_to_the_survivor() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = Cluster::start("failover", &["sup-a", "sup-b"]);
    let o = c.gale(&["submit", "topologies/lecture-example.yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(Duration::from_secs(30), "both supervisors used", || {
        supervisors_used(&c.topology("mytopology")).len() == 2
    });
    c.kill_supervisor("sup-b");
    let took = wait_until(
        Duration::from_secs(40),
        "every executor is on sup-a",
        || {
            let t = c.topology("mytopology");
            let used = supervisors_used(&t);
            used.len() == 1
                && used.contains("sup-a")
                && t["assignment"].as_array().is_some_and(|a| a.len() == 12)
        },
    );
    eprintln!(
        "reassignment after kill -9 took {:.1} s",
        took.as_secs_f64()
    );
    // And the moved executors really run: emitted keeps growing.
    let before = stat(&c.topology("mytopology"), "green-bolt", "emitted");
    wait_until(
        Duration::from_secs(20),
        "the topology keeps processing",
        || stat(&c.topology("mytopology"), "green-bolt", "emitted") > before,
    );
}

#[test]
fn topologies_outlive_nimbus_and_a_restarted_nimbus_resumes() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = Cluster::start("nimbus", &["sup-a"]);
    let o = c.gale(&["submit", "topologies/lecture-example.yaml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(Duration::from_secs(30), "running", || {
        stat(&c.topology("mytopology"), "yellow-bolt", "executed") > 0
    });
    c.kill_nimbus();
    let o = c.gale(&["list"]);
    assert_eq!(o.status.code(), Some(2), "no Nimbus: exit code 2");
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach Nimbus"));
    let before = {
        // Read the worker's heartbeat through a new Nimbus later; meanwhile the worker runs on.
        std::thread::sleep(Duration::from_secs(2));
        Instant::now()
    };
    c.start_nimbus();
    let t = c.topology("mytopology");
    assert_eq!(t["status"], "ACTIVE");
    let seen = stat(&t, "yellow-bolt", "executed");
    wait_until(
        Duration::from_secs(20),
        "the topology is still processing",
        || stat(&c.topology("mytopology"), "yellow-bolt", "executed") > seen,
    );
    assert!(before.elapsed() < Duration::from_secs(60));
}

/// Two hosts: supervisors in two network namespaces joined by a veth pair, so tuples cross a real
/// network link. The namespaces, their addresses (10.213.0.1 and .2, which exist only inside them)
/// and every process are created and removed by this test.
#[test]
fn supervisors_in_two_network_namespaces() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    let (ns_a, ns_b) = (format!("gale-a-{pid}"), format!("gale-b-{pid}"));
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !ip(&["netns", "add", &ns_a]) {
        eprintln!(
            "SKIPPED supervisors_in_two_network_namespaces: `ip netns add` is not permitted here (needs root and iproute2)"
        );
        return;
    }
    struct Netns(Vec<String>, Vec<Child>, PathBuf);
    impl Drop for Netns {
        fn drop(&mut self) {
            for c in &mut self.1 {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = Command::new("bash")
                .arg(root().join("scripts/zk.sh"))
                .arg("stop")
                .arg(self.2.join("zk"))
                .output();
            for ns in &self.0 {
                let _ = Command::new("ip").args(["netns", "del", ns]).output();
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("gale-netns-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut guard = Netns(vec![ns_a.clone()], Vec::new(), dir.clone());
    assert!(ip(&["netns", "add", &ns_b]), "second namespace");
    guard.0.push(ns_b.clone());
    let (va, vb) = (
        format!("gva{}", pid % 100_000),
        format!("gvb{}", pid % 100_000),
    );
    for step in [
        vec!["link", "add", &va, "type", "veth", "peer", "name", &vb],
        vec!["link", "set", &va, "netns", &ns_a],
        vec!["link", "set", &vb, "netns", &ns_b],
        vec!["-n", &ns_a, "addr", "add", "10.213.0.1/24", "dev", &va],
        vec!["-n", &ns_b, "addr", "add", "10.213.0.2/24", "dev", &vb],
        vec!["-n", &ns_a, "link", "set", &va, "up"],
        vec!["-n", &ns_b, "link", "set", &vb, "up"],
        vec!["-n", &ns_a, "link", "set", "lo", "up"],
        vec!["-n", &ns_b, "link", "set", "lo", "up"],
    ] {
        assert!(ip(&step), "ip {step:?}");
    }
    let zk_out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns_a,
            "env",
            "ZK_ADDRESS=10.213.0.1",
            "bash",
        ])
        .arg(root().join("scripts/zk.sh"))
        .arg("start")
        .arg(dir.join("zk"))
        .arg("2181")
        .output()
        .expect("zk.sh");
    assert!(
        zk_out.status.success(),
        "{}",
        String::from_utf8_lossy(&zk_out.stderr)
    );
    let zk = "10.213.0.1:2181";
    let nimbus = "10.213.0.1:6627";
    let spawn = |ns: &str, args: &[&str], log: &str| -> Child {
        Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_gale")])
            .args(args)
            .env("GALE_ZOOKEEPER", zk)
            .env("GALE_NIMBUS", nimbus)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(log)).expect("log"))
            .spawn()
            .expect("spawn")
    };
    guard
        .1
        .push(spawn(&ns_a, &["nimbus", "--listen", nimbus], "nimbus.log"));
    guard.1.push(spawn(
        &ns_a,
        &[
            "supervisor",
            "--id",
            "host-a",
            "--host",
            "10.213.0.1",
            "--ports",
            "6700",
        ],
        "sup-a.log",
    ));
    guard.1.push(spawn(
        &ns_b,
        &[
            "supervisor",
            "--id",
            "host-b",
            "--host",
            "10.213.0.2",
            "--ports",
            "6700",
        ],
        "sup-b.log",
    ));
    let gale = |args: &[&str]| -> Output {
        Command::new("ip")
            .args(["netns", "exec", &ns_a, env!("CARGO_BIN_EXE_gale")])
            .args(args)
            .current_dir(root())
            .env("GALE_NIMBUS", nimbus)
            .env("GALE_LOG", "warn")
            .output()
            .expect("gale")
    };
    let status = || -> Json {
        let o = gale(&["status", "--format", "json"]);
        serde_json::from_slice(&o.stdout).unwrap_or(Json::Null)
    };
    wait_until(
        Duration::from_secs(30),
        "both supervisors registered",
        || {
            status()["supervisors"]
                .as_array()
                .is_some_and(|s| s.len() == 2)
        },
    );
    let (input, want) = write_input(&dir, 20_000);
    let total: u64 = want.values().sum();
    let output = dir.join("counts.tsv");
    let o = gale(&[
        "submit",
        "topologies/word-count.yaml",
        "--set",
        &format!("input={}", input.display()),
        "--set",
        &format!("output={}", output.display()),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let topo = || {
        status()["topologies"]
            .as_array()
            .and_then(|t| t.first().cloned())
            .unwrap_or(Json::Null)
    };
    wait_until(Duration::from_secs(30), "workers on both hosts", || {
        let t = topo();
        let hosts: std::collections::BTreeSet<String> = t["assignment"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["host"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        hosts.len() == 2
    });
    wait_until(Duration::from_secs(60), "every word counted", || {
        stat(&topo(), "sink", "executed") == total
    });
    assert!(gale(&["kill", "word-count", "-w", "1"]).status.success());
    wait_until(Duration::from_secs(30), "sink file written", || {
        output.exists()
    });
    let got = read_counts(&output);
    assert_eq!(got, want);
}

/// Writes a reliable word count (FileLineSpout with a checkpoint in `dir`, 2 ackers, 5 s
/// timeout, a FileSinkBolt journal of every count update in `sink`) in its own folder (`gale submit` ships the YAML's folder as
/// resources) and returns its path.
fn reliable_topology(dir: &Path, input: &Path, max_pending: u32, sink: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("topo")).expect("dir");
    let yaml = format!(
        "name: reliable\nconfig:\n  topology.workers: 2\n  topology.acker.executors: 2\n  topology.max.spout.pending: {max_pending}\n  topology.message.timeout.secs: 5\n\
         spouts:\n  - id: lines\n    className: FileLineSpout\n    properties: [{{name: path, value: \"{}\"}}, {{name: checkpoint, value: \"{}\"}}]\n\
         bolts:\n  - {{id: split, className: SplitSentenceBolt, parallelism: 2}}\n  - {{id: count, className: WordCountBolt, parallelism: 2}}\n\
         \x20 - id: sink\n    className: FileSinkBolt\n    properties: [{{name: path, value: \"{}\"}}]\n\
         streams:\n  - {{from: lines, to: split, grouping: {{type: SHUFFLE}}}}\n  - {{from: split, to: count, grouping: {{type: FIELDS, args: [word]}}}}\n\
         \x20 - {{from: count, to: sink, grouping: {{type: GLOBAL}}}}\n",
        input.display(),
        dir.join("lines.ckpt").display(),
        sink.display()
    );
    let p = dir.join("topo/reliable.yaml");
    std::fs::write(&p, yaml).expect("yaml");
    p
}

/// Kills the topology, waits for its sink file, and checks at-least-once against the input:
/// every line got through (its tag was counted), every word counted at least as often as it
/// occurs. Returns the duplicates.
fn check_at_least_once(
    c: &Cluster,
    output: &Path,
    want: &BTreeMap<String, u64>,
    lines: usize,
) -> u64 {
    let o = c.gale(&["kill", "reliable", "-w", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for l in std::fs::read_to_string(output).expect("journal").lines() {
        let word = l.split('\t').next().unwrap_or("");
        *got.entry(word.to_owned()).or_insert(0) += 1;
    }
    let (missing, dups) = deliveries(&got, lines);
    assert!(
        missing.is_empty(),
        "lines lost: {:?}",
        &missing[..missing.len().min(20)]
    );
    for (w, n) in want {
        assert!(
            got.get(w).copied().unwrap_or(0) >= *n,
            "{w}: {:?} < {n}",
            got.get(w)
        );
    }
    dups
}

/// A fault test's start: a 2-supervisor cluster running the reliable word count over a
/// 40,000-line input. Returns the cluster, the lines, the words they hold and the journal path.
fn start_reliable(
    name: &str,
    max_pending: u32,
) -> (Cluster, usize, BTreeMap<String, u64>, PathBuf) {
    let c = Cluster::start(name, &["sup-a", "sup-b"]);
    let (lines, want, output) = submit_reliable(&c, max_pending);
    (c, lines, want, output)
}

/// Submits the reliable word count over a 40,000-line input to `c`.
fn submit_reliable(c: &Cluster, max_pending: u32) -> (usize, BTreeMap<String, u64>, PathBuf) {
    let lines = 40_000;
    let (input, want) = write_input(&c.dir, lines);
    let output = c.dir.join("counts.tsv");
    let yaml = reliable_topology(&c.dir, &input, max_pending, &output);
    let o = c.gale(&["submit", yaml.to_str().expect("path")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (lines, want, output)
}

/// A fault test's end: waits until the spout committed every line, then kills the topology and
/// checks the journal. Returns the spout's failed count and the duplicate lines.
fn finish_reliable(
    c: &Cluster,
    output: &Path,
    want: &BTreeMap<String, u64>,
    lines: usize,
) -> (u64, u64) {
    wait_until(Duration::from_secs(120), "every line acked", || {
        committed(&c.dir) == lines as u64
    });
    let failed = stat(&c.topology("reliable"), "lines", "failed");
    let dups = check_at_least_once(c, output, want, lines);
    assert_eq!(committed(&c.dir), lines as u64);
    (failed, dups)
}

/// Guaranteed processing across a crash: a supervisor hosting bolts is SIGKILLed mid-stream and
/// every line of the reliable FileLineSpout input is still acked in the end (duplicates allowed).
#[test]
fn every_line_is_acked_after_a_supervisor_is_killed_mid_stream() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (mut c, lines, want, output) = start_reliable("ackfault", 200);
    let total: u64 = want.values().sum();
    wait_until(
        Duration::from_secs(30),
        "acking under way on both supervisors",
        || {
            let t = c.topology("reliable");
            supervisors_used(&t).len() == 2 && stat(&t, "lines", "acked") > 0
        },
    );
    let t = c.topology("reliable");
    let acked_before = stat(&t, "lines", "acked");
    assert!(
        acked_before < lines as u64,
        "the stream was already done; make the input larger"
    );
    let spout_host = t["assignment"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["component"] == "lines"))
        .and_then(|r| r["supervisor"].as_str())
        .unwrap_or("sup-a")
        .to_owned();
    let victim = if spout_host == "sup-a" {
        "sup-b"
    } else {
        "sup-a"
    };
    c.kill_supervisor(victim);
    let start = Instant::now();
    wait_until(
        Duration::from_secs(120),
        "every line acked after the crash",
        || {
            supervisors_used(&c.topology("reliable")).len() == 1
                && committed(&c.dir) == lines as u64
        },
    );
    let recovered = start.elapsed().as_secs_f64();
    let t = c.topology("reliable");
    let failed = stat(&t, "lines", "failed");
    let dups = check_at_least_once(&c, &output, &want, lines);
    // The spout's committed offset is exact: all 40,000 lines, each acked.
    assert_eq!(committed(&c.dir), lines as u64);
    eprintln!(
        "bolt supervisor {victim} killed after {acked_before} of {lines} lines were acked: all {lines} acked {recovered:.1} s later; {failed} failed (replayed) after the move; {dups} duplicate lines counted; {} words in all",
        total + dups
    );
}

/// A spout's worker dying: the supervisor hosting the reliable spout is SIGKILLed mid-stream.
/// The spout restarts on the survivor from its last committed offset (Gale's promise, as a Kafka
/// spout's): lines emitted after that commit are emitted again, none is lost.
#[test]
fn every_line_is_acked_after_the_spouts_supervisor_is_killed() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (mut c, lines, want, output) = start_reliable("spoutfault", 200);
    wait_until(
        Duration::from_secs(30),
        "a checkpoint past line 1,000 with both supervisors working",
        || supervisors_used(&c.topology("reliable")).len() == 2 && committed(&c.dir) >= 1_000,
    );
    let before = committed(&c.dir);
    assert!(
        before < lines as u64,
        "the stream was already done; make the input larger"
    );
    let t = c.topology("reliable");
    let spout_host = t["assignment"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["component"] == "lines"))
        .and_then(|r| r["supervisor"].as_str())
        .expect("spout placed")
        .to_owned();
    c.kill_supervisor(&spout_host);
    let start = Instant::now();
    wait_until(
        Duration::from_secs(60),
        "the spout placed on the survivor",
        || {
            let t = c.topology("reliable");
            !supervisors_used(&t).contains(&spout_host) && !supervisors_used(&t).is_empty()
        },
    );
    let moved = start.elapsed().as_secs_f64();
    wait_until(Duration::from_secs(120), "every line acked", || {
        committed(&c.dir) == lines as u64
    });
    let done = start.elapsed().as_secs_f64();
    let t = c.topology("reliable");
    let (acked, failed) = (stat(&t, "lines", "acked"), stat(&t, "lines", "failed"));
    let dups = check_at_least_once(&c, &output, &want, lines);
    assert_eq!(committed(&c.dir), lines as u64);
    eprintln!(
        "spout supervisor {spout_host} killed with {before} of {lines} lines committed: spout running on the survivor {moved:.1} s later, all {lines} acked {done:.1} s after the kill ({acked} acked, {failed} failed by the restarted spout); {dups} duplicate lines counted"
    );
}

/// ZooKeeper stopped for 15 s and started again mid-stream: the daemons recover by themselves
/// and every line is acked in the end.
#[test]
fn every_line_is_acked_through_a_zookeeper_outage() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // Nimbus's default supervisor timeout (30 s): supervisors fence after 22.5 s without
    // ZooKeeper, longer than this outage.
    let c = Cluster::start_tuned(&gale_bin(), "zkfault", &["sup-a", "sup-b"], 30);
    let (lines, want, output) = submit_reliable(&c, 50);
    wait_until(Duration::from_secs(30), "acking under way", || {
        stat(&c.topology("reliable"), "lines", "acked") > 0
    });
    let port = c.zk.rsplit(':').next().expect("port").to_owned();
    let zk_dir = c.dir.join("zk");
    let placed = c.topology("reliable")["assignment"].clone();
    assert!(placed.is_array(), "placed before the outage");
    let run_zk = |args: &[&str]| {
        Command::new("bash")
            .arg(root().join("scripts/zk.sh"))
            .args(args)
            .output()
            .expect("zk.sh")
    };
    assert!(
        run_zk(&["stop", zk_dir.to_str().expect("path")])
            .status
            .success()
    );
    let before = committed(&c.dir);
    std::thread::sleep(Duration::from_secs(15));
    let o = run_zk(&["start", zk_dir.to_str().expect("path"), &port]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let back = Instant::now();
    wait_until(
        Duration::from_secs(60),
        "both supervisors registered again",
        || {
            c.status()["supervisors"]
                .as_array()
                .is_some_and(|s| s.len() == 2)
        },
    );
    let registered = back.elapsed().as_secs_f64();
    // The outage moved nothing: the same placement, and no worker stopped (a restarted worker
    // replays what was in flight: duplicate lines).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.topology("reliable")["assignment"],
        placed,
        "the placement changed"
    );
    let restarts = c.logs_matching("Stopping worker");
    assert_eq!(restarts, 0, "workers restarted:\n{}", c.logs());
    let (failed, dups) = finish_reliable(&c, &output, &want, lines);
    eprintln!(
        "ZooKeeper down 15 s with {before} of {lines} lines committed: daemons registered again {registered:.1} s after it restarted; all {lines} acked, {failed} failed (replayed), {dups} duplicate lines counted"
    );
    assert_eq!(dups, 0, "duplicate lines after the outage");
}

/// Fencing: the supervisor running the reliable spout is cut off from ZooKeeper (through a relay
/// that stops relaying) while ZooKeeper, Nimbus and the other supervisor stay up. Nimbus moves its
/// executors once its session ended and the supervisor timeout (10 s) passed; the cut-off
/// supervisor must have stopped its workers before the survivor starts them: never two copies of
/// one spout task. Every line is acked once the partition heals.
#[test]
fn a_supervisor_cut_off_from_zookeeper_stops_its_workers_before_they_run_elsewhere() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = Cluster::start_tuned(&gale_bin(), "partition", &[], 10);
    let relays: BTreeMap<&str, ZkRelay> = ["sup-a", "sup-b"]
        .into_iter()
        .map(|id| (id, ZkRelay::start(&c.zk)))
        .collect();
    for (id, r) in &relays {
        c.start_supervisor_via(id, &r.addr);
    }
    let (lines, want, output) = submit_reliable(&c, 200);
    wait_until(
        Duration::from_secs(30),
        "acking under way on both supervisors",
        || {
            let t = c.topology("reliable");
            supervisors_used(&t).len() == 2 && committed(&c.dir) >= 1_000
        },
    );
    let spout_host = c.topology("reliable")["assignment"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["component"] == "lines"))
        .and_then(|r| r["supervisor"].as_str())
        .expect("spout placed")
        .to_owned();
    let survivor = if spout_host == "sup-a" {
        "sup-b"
    } else {
        "sup-a"
    };
    let before = committed(&c.dir);
    relays[spout_host.as_str()].cut();
    let cut = Instant::now();
    wait_until(
        Duration::from_secs(60),
        "the spout placed on the survivor",
        || {
            let t = c.topology("reliable");
            let used = supervisors_used(&t);
            used.len() == 1 && used.contains(survivor)
        },
    );
    let moved = cut.elapsed().as_secs_f64();
    let fenced = log_time(
        &c,
        &format!("supervisor-{spout_host}.log"),
        "Fenced: every worker stopped",
        false,
    )
    .unwrap_or_else(|| panic!("the cut-off supervisor never fenced:\n{}", c.logs()));
    wait_until(
        Duration::from_secs(30),
        "the survivor runs the moved executors",
        || {
            log_time(
                &c,
                &format!("supervisor-{survivor}.log"),
                "Worker started",
                true,
            ) > Some(fenced.clone())
        },
    );
    let restarted = log_time(
        &c,
        &format!("supervisor-{survivor}.log"),
        "Worker started",
        true,
    );
    relays[spout_host.as_str()].heal();
    let (failed, dups) = finish_reliable(&c, &output, &want, lines);
    eprintln!(
        "supervisor {spout_host} cut off from ZooKeeper with {before} of {lines} lines committed: fenced at {fenced}, its executors moved {moved:.1} s after the cut and started on {survivor} at {}; all {lines} acked, {failed} failed (replayed), {dups} duplicate lines counted",
        restarted.unwrap_or_default()
    );
}

/// Nimbus killed mid-stream and started again 2 s later: the topology runs on without it, the
/// new Nimbus resumes from ZooKeeper, and every line is acked.
#[test]
fn every_line_is_acked_across_a_nimbus_restart() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (mut c, lines, want, output) = start_reliable("nimbusfault", 50);
    wait_until(
        Duration::from_secs(30),
        "a checkpoint past line 1,000",
        || committed(&c.dir) >= 1_000,
    );
    c.kill_nimbus();
    let before = committed(&c.dir);
    assert!(before < lines as u64, "the stream was already done");
    std::thread::sleep(Duration::from_secs(2));
    c.start_nimbus();
    let (failed, dups) = finish_reliable(&c, &output, &want, lines);
    eprintln!(
        "Nimbus killed with {before} of {lines} lines committed and restarted 2 s later: all {lines} acked, {failed} failed (replayed), {dups} duplicate lines counted"
    );
}

/// A Python bolt on a cluster: `gale submit` ships the topology's resources/ to the workers, the
/// split step runs as a subprocess on both supervisors, and the counts are exact.
#[test]
fn python_bolt_runs_on_both_supervisors_with_shipped_resources() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::start("multilang", &["sup-a", "sup-b"]);
    let (input, want) = write_input(&c.dir, 5_000);
    let total: u64 = want.values().sum();
    let topo = c.dir.join("py");
    std::fs::create_dir_all(topo.join("resources")).expect("dir");
    std::fs::copy(
        root().join("examples/multilang/resources/splitsentence.py"),
        topo.join("resources/splitsentence.py"),
    )
    .expect("script");
    // Beside the YAML but outside resources/: stays home. A symlink inside is skipped.
    std::fs::write(topo.join("notes.txt"), "not for the cluster").expect("file");
    std::os::unix::fs::symlink("/etc/hostname", topo.join("resources/link")).expect("symlink");
    let output = c.dir.join("py-counts.tsv");
    let yaml = topo.join("py.yaml");
    std::fs::write(
        &yaml,
        format!(
            "name: py\nconfig: {{topology.workers: 2, topology.acker.executors: 2}}\n\
             spouts:\n  - {{id: lines, className: FileLineSpout, properties: [{{name: path, value: \"{}\"}}]}}\n\
             bolts:\n  - id: split\n    className: org.apache.storm.flux.wrappers.bolts.FluxShellBolt\n    constructorArgs: [[python3, splitsentence.py], [word]]\n    parallelism: 2\n\
             \x20 - {{id: count, className: WordCountBolt, parallelism: 2}}\n\
             \x20 - {{id: sink, className: TsvSinkBolt, properties: [{{name: path, value: \"{}\"}}]}}\n\
             streams:\n  - {{from: lines, to: split, grouping: {{type: SHUFFLE}}}}\n\
             \x20 - {{from: split, to: count, grouping: {{type: FIELDS, args: [word]}}}}\n\
             \x20 - {{from: count, to: sink, grouping: {{type: GLOBAL}}}}\n",
            input.display(),
            output.display()
        ),
    )
    .expect("yaml");
    let o = c.gale(&["submit", yaml.to_str().expect("path")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("skipping") && err.contains("symlink"), "{err}");
    wait_until(
        Duration::from_secs(30),
        "both supervisors run workers",
        || supervisors_used(&c.topology("py")).len() == 2,
    );
    // Each supervisor unpacks resources/ (and nothing else) when its worker starts.
    wait_until(Duration::from_secs(30), "both workers unpacked", || {
        shipped_files(&c).len() >= 2
    });
    assert_eq!(
        shipped_files(&c),
        vec![
            "splitsentence.py".to_string(),
            "splitsentence.py".to_string()
        ],
        "each supervisor got resources/ and nothing else"
    );
    wait_until(Duration::from_secs(90), "every line acked", || {
        stat(&c.topology("py"), "lines", "acked") == 5_000
    });
    // Each worker's counters reach status with its own heartbeat: the sink's worker may beat
    // after the spout's.
    wait_until(
        Duration::from_secs(30),
        "the sink's beat counts every word",
        || stat(&c.topology("py"), "sink", "executed") >= total,
    );
    let t = c.topology("py");
    assert_eq!(stat(&t, "lines", "failed"), 0);
    assert_eq!(stat(&t, "sink", "executed"), total);
    assert!(c.gale(&["kill", "py", "-w", "1"]).status.success());
    wait_until(Duration::from_secs(30), "the sink file exists", || {
        output.exists()
    });
    assert_eq!(read_counts(&output), want);
}
