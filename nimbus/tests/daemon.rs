//! Nimbus in-process over the in-memory store: the real HTTP API, leader election and the
//! assignment loop, with supervisors written into the store as a Supervisor would write them.
//! (The real-process tests, with ZooKeeper, are cli/tests/cluster.rs.)

use cluster_state::{ClusterState, MemStore, SupervisorRecord, TopologyStatus};
use components::Builtins;
use nimbus::daemon::{NimbusConfig, SubmitRequest, run};
use std::sync::Arc;
use std::time::{Duration, Instant};
use topology_api::Registry;

struct Nimbus {
    rt: tokio::runtime::Runtime,
    state: Arc<ClusterState<MemStore>>,
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Nimbus {
    fn start(supervisors: &[SupervisorRecord]) -> Nimbus {
        Self::start_with(supervisors, None)
    }

    fn start_with(supervisors: &[SupervisorRecord], auth_token: Option<&str>) -> Nimbus {
        Self::start_bounded(supervisors, auth_token, nimbus::listener::Bounds::default())
    }

    fn start_bounded(
        supervisors: &[SupervisorRecord],
        auth_token: Option<&str>,
        bounds: nimbus::listener::Bounds,
    ) -> Nimbus {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let state = Arc::new(ClusterState::new(MemStore::new()));
        for s in supervisors {
            rt.block_on(state.register_supervisor(s)).expect("register");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cfg = NimbusConfig {
            listen: ([127, 0, 0, 1], port).into(),
            interval: Duration::from_millis(50),
            registry: Registry::with_builtins(),
            worker_timeout: Duration::from_secs(30),
            auth_token: auth_token.map(str::to_owned),
            http: bounds,
            supervisor_timeout: Duration::from_millis(600),
            heartbeat_interval: Duration::from_secs(1),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        rt.spawn(async move {
            let _ = run(cfg, st, async {
                let _ = rx.await;
            })
            .await;
        });
        let n = Nimbus {
            rt,
            state,
            base: format!("http://127.0.0.1:{port}"),
            stop: Some(tx),
        };
        n.wait("leadership", || {
            n.get("/api/v1/nimbus/summary").1.contains("\"Leader\"")
        });
        n
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into()
    }

    fn get(&self, path: &str) -> (u16, String) {
        match Self::agent().get(format!("{}{path}", self.base)).call() {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }

    fn post(&self, path: &str, body: serde_json::Value) -> (u16, String) {
        self.post_with(path, body, &[])
    }

    fn post_with(
        &self,
        path: &str,
        body: serde_json::Value,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut req = Self::agent().post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut r = req.send_json(body).expect("Nimbus answers");
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    fn submit(&self, yaml: &str) -> (u16, String) {
        self.submit_with(yaml, &[])
    }

    fn submit_with(&self, yaml: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let req = SubmitRequest {
            file: "t.yaml".into(),
            yaml: yaml.into(),
            resources: vec![],
            validated: None,
        };
        self.post_with(
            "/api/v1/gale/topologies",
            serde_json::to_value(&req).expect("json"),
            headers,
        )
    }

    fn wait(&self, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}");
    }
}

impl Drop for Nimbus {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn sup(id: &str, classes: Option<Vec<String>>) -> SupervisorRecord {
    SupervisorRecord {
        id: id.into(),
        host: "127.0.0.1".into(),
        ports: vec![6700, 6701],
        used_ports: vec![],
        start_time_secs: 1,
        version: "test".into(),
        classes,
    }
}

/// Supervisors of the stock `gale` binary (the built-in classes).
fn stock(ids: &[&str]) -> Vec<SupervisorRecord> {
    let builtins = Registry::with_builtins().runnable_names();
    ids.iter()
        .map(|id| sup(id, Some(builtins.clone())))
        .collect()
}

const WORDS: &str = "name: words\nconfig: {topology.workers: 2}\n\
    spouts: [{id: s, className: TestWordSpout}]\n\
    bolts: [{id: c, className: WordCountBolt, parallelism: 2}]\n\
    streams: [{from: s, to: c, grouping: {type: FIELDS, args: [word]}}]\n";

#[test]
fn submit_assigns_kill_removes_and_the_lifecycle_refuses_what_storm_refuses() {
    let n = Nimbus::start(&stock(&["a", "b"]));
    let (code, body) = n.submit(WORDS);
    assert_eq!(code, 200, "{body}");
    let id: String = serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
        .as_str()
        .expect("id")
        .into();
    n.wait("an assignment over both supervisors", || {
        n.rt.block_on(n.state.assignment(&id))
            .ok()
            .flatten()
            .is_some_and(|a| {
                let sups: std::collections::BTreeSet<_> =
                    a.executors.iter().map(|e| e.supervisor.clone()).collect();
                sups.len() == 2
            })
    });
    // A second submission of the same name is refused.
    assert_eq!(n.submit(WORDS).0, 409);
    // Deactivate, then kill with no wait: the next pass removes it.
    assert_eq!(
        n.post(
            &format!("/api/v1/topology/{id}/deactivate"),
            serde_json::json!({})
        )
        .0,
        200
    );
    let storm =
        n.rt.block_on(n.state.storm(&id))
            .expect("read")
            .expect("stored");
    assert_eq!(storm.status, TopologyStatus::Inactive);
    let (code, body) = n.post(
        &format!("/api/v1/topology/{id}/kill/5"),
        serde_json::json!({}),
    );
    assert_eq!(code, 200, "{body}");
    // Killed: activating or rebalancing it is refused (409), as in Storm.
    let (code, body) = n.post("/api/v1/topology/words/activate", serde_json::json!({}));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("being killed"), "{body}");
    let (code, _) = n.post("/api/v1/topology/words/rebalance/0", serde_json::json!({}));
    assert_eq!(code, 409);
    // Kill again with no wait: removed by the next pass.
    assert_eq!(
        n.post("/api/v1/topology/words/kill/0", serde_json::json!({}))
            .0,
        200
    );
    n.wait("the topology is removed", || {
        n.rt.block_on(n.state.storms()).is_ok_and(|s| s.is_empty())
    });
    assert!(
        n.rt.block_on(n.state.assignment(&id))
            .expect("read")
            .is_none()
    );
}

#[test]
fn a_topology_no_supervisor_can_run_is_refused_naming_the_class() {
    let n = Nimbus::start(&[sup(
        "stock",
        Some(vec!["TestWordSpout".into(), "WordCountBolt".into()]),
    )]);
    let yaml = WORDS.replace("WordCountBolt", "ReverseWordBolt");
    let (code, body) = n.submit(&yaml);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("ReverseWordBolt"), "{body}");
    // Bad resource names are refused before anything is stored.
    let req = serde_json::json!({"file": "t.yaml", "yaml": WORDS, "resources": [["../x", "AQ=="]]});
    let (code, body) = n.post("/api/v1/gale/topologies", req);
    assert_eq!(code, 400, "{body}");
    assert!(n.rt.block_on(n.state.storms()).expect("read").is_empty());
}

#[test]
fn a_rebalance_respreads_after_its_wait_and_returns_to_the_status_before() {
    let n = Nimbus::start(&stock(&["a", "b"]));
    let (code, body) = n.submit(WORDS);
    assert_eq!(code, 200, "{body}");
    n.wait("an assignment", || {
        n.rt.block_on(n.state.assignments())
            .is_ok_and(|a| !a.is_empty())
    });
    assert_eq!(
        n.post("/api/v1/topology/words/deactivate", serde_json::json!({}))
            .0,
        200
    );
    let (code, body) = n.post(
        "/api/v1/topology/words/rebalance/0",
        serde_json::json!({"workers": 1, "executors": {"c": 1}}),
    );
    assert_eq!(code, 200, "{body}");
    n.wait("one worker after the rebalance", || {
        n.rt.block_on(n.state.assignments()).is_ok_and(|a| {
            a.first().is_some_and(|(_, r)| {
                let slots: std::collections::BTreeSet<_> = r
                    .executors
                    .iter()
                    .map(|e| (e.supervisor.clone(), e.port))
                    .collect();
                slots.len() == 1
            })
        })
    });
    let storm =
        n.rt.block_on(n.state.storms())
            .expect("read")
            .pop()
            .expect("one")
            .1;
    assert_eq!(
        storm.status,
        TopologyStatus::Inactive,
        "back to the status before"
    );
    assert_eq!(storm.component_executors["c"], 1);
    // An unknown component is a 400 naming the known ones.
    let (code, body) = n.post(
        "/api/v1/topology/words/rebalance/0",
        serde_json::json!({"executors": {"nope": 1}}),
    );
    assert_eq!(code, 400);
    assert!(body.contains("known: s, c"), "{body}");
}

#[test]
fn with_a_token_changes_without_it_get_401_and_change_nothing() {
    let builtins = Registry::with_builtins().runnable_names();
    let n = Nimbus::start_with(&[sup("a", Some(builtins))], Some("s3cret-token"));
    let good = [("Authorization", "Bearer s3cret-token")];
    // No token, a wrong one, another scheme: 401, nothing stored.
    for headers in [
        &[][..],
        &[("Authorization", "Bearer wrong")][..],
        &[("Authorization", "Basic czNjcmV0LXRva2Vu")][..],
    ] {
        let (code, body) = n.submit_with(WORDS, headers);
        assert_eq!(code, 401, "{headers:?}: {body}");
        assert!(body.contains("token"), "{body}");
    }
    assert!(n.rt.block_on(n.state.storms()).expect("read").is_empty());
    let (code, body) = n.submit_with(WORDS, &good);
    assert_eq!(code, 200, "{body}");
    // Actions: 401 without the token, and the topology stays as it was.
    for action in ["deactivate", "kill/0", "rebalance/0"] {
        let (code, _) = n.post(
            &format!("/api/v1/topology/words/{action}"),
            serde_json::json!({}),
        );
        assert_eq!(code, 401, "{action}");
    }
    let storm =
        n.rt.block_on(n.state.storms())
            .expect("read")
            .pop()
            .expect("one")
            .1;
    assert_eq!(storm.status, TopologyStatus::Active);
    // Read paths stay open.
    assert_eq!(n.get("/api/v1/topology/summary").0, 200);
    let (code, body) = n.post_with(
        "/api/v1/topology/words/deactivate",
        serde_json::json!({}),
        &good,
    );
    assert_eq!(code, 200, "{body}");
}

#[test]
fn a_browser_page_cannot_change_anything_without_the_token() {
    let n = Nimbus::start(&stock(&["a"]));
    assert_eq!(n.submit(WORDS).0, 200);
    // A cross-origin page's POST carries an Origin header: refused, however simple.
    let origin = [("Origin", "http://evil.example")];
    let (code, body) = n.post_with(
        "/api/v1/topology/words/kill/0",
        serde_json::json!({}),
        &origin,
    );
    assert_eq!(code, 403, "{body}");
    let (code, _) = n.submit_with(&WORDS.replace("name: words", "name: other"), &origin);
    assert_eq!(code, 403);
    let storms = n.rt.block_on(n.state.storms()).expect("read");
    assert_eq!(storms.len(), 1);
    assert_eq!(storms[0].1.status, TopologyStatus::Active);
}

#[test]
fn twenty_racing_submissions_of_one_name_store_one() {
    let n = Nimbus::start(&stock(&["a"]));
    let codes: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20).map(|_| s.spawn(|| n.submit(WORDS).0)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 19, "{codes:?}");
    assert_eq!(n.rt.block_on(n.state.storms()).expect("read").len(), 1);
}

#[test]
fn out_of_bounds_rebalances_and_oversized_topologies_are_refused_and_nothing_is_stored() {
    let n = Nimbus::start(&stock(&["a"]));
    assert_eq!(n.submit(WORDS).0, 200);
    let before = n.rt.block_on(n.state.storms()).expect("read");
    // A rebalance to 4,294,967,295 workers (it grew Nimbus by ~300 MB/s) and to zero.
    for body in [
        serde_json::json!({"workers": 4294967295u32}),
        serde_json::json!({"workers": 0}),
        serde_json::json!({"executors": {"c": 1000000}}),
    ] {
        let (code, msg) = n.post("/api/v1/topology/words/rebalance/0", body.clone());
        assert_eq!(code, 400, "{body}: {msg}");
    }
    assert_eq!(
        n.rt.block_on(n.state.storms()).expect("read"),
        before,
        "nothing stored"
    );
    // A topology whose stored form is over ZooKeeper's node limit: 413 naming the size.
    use base64::Engine;
    let big = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 1_100_000]);
    let req = serde_json::json!({
        "file": "t.yaml",
        "yaml": WORDS.replace("name: words", "name: big"),
        "resources": [["big.bin", big]],
    });
    let (code, body) = n.post("/api/v1/gale/topologies", req);
    assert_eq!(code, 413, "{body}");
    assert!(
        body.contains("bytes stored") && body.contains("1000000"),
        "{body}"
    );
    assert_eq!(n.rt.block_on(n.state.storms()).expect("read").len(), 1);
}

#[test]
fn a_worker_that_cannot_start_shows_its_error_in_status() {
    let n = Nimbus::start(&stock(&["a"]));
    let (code, body) = n.submit(WORDS);
    assert_eq!(code, 200, "{body}");
    let id = n.rt.block_on(n.state.storms()).expect("read")[0].0.clone();
    // What a Supervisor files when a worker fails to start (supervisor/tests/daemon.rs).
    let entry = cluster_state::ErrorEntry {
        time_secs: 1,
        task: 0,
        host: "127.0.0.1".into(),
        port: 6700,
        message: "refusing resources: resource name \"../x\" must be a relative path".into(),
    };
    n.rt.block_on(n.state.report_error(&id, "__worker", entry))
        .expect("report");
    let (code, body) = n.get("/api/v1/gale/status");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let err = v["topologies"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        err.contains("refusing resources") && err.contains("127.0.0.1:6700"),
        "{v}"
    );
}

#[test]
fn idle_and_half_sent_connections_are_closed_and_cannot_stop_nimbus_answering() {
    use std::io::{Read, Write};
    let bounds = nimbus::listener::Bounds {
        max_connections: 8,
        idle: Duration::from_millis(400),
    };
    let n = Nimbus::start_bounded(&[], None, bounds);
    let addr = n.base.trim_start_matches("http://").to_string();
    // Twice the limit of connections that send nothing, and one that stops half-way through
    // its request line.
    let mut idle: Vec<std::net::TcpStream> = (0..16)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    let mut half = std::net::TcpStream::connect(&addr).expect("connect");
    half.write_all(b"GET /api/v1/topology/summ").expect("write");
    // Nimbus still answers: silent connections lose their slots after the idle time.
    let start = Instant::now();
    let (code, _) = n.get("/api/v1/topology/summary");
    assert_eq!(code, 200);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    // The half-sent request is closed, not kept.
    half.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let waited = Instant::now();
    let mut rest = Vec::new();
    let closed = half.read_to_end(&mut rest);
    assert!(
        closed.is_ok(),
        "closed by Nimbus, not left waiting: {closed:?}"
    );
    assert!(
        waited.elapsed() < Duration::from_secs(3),
        "{:?}",
        waited.elapsed()
    );
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut b = [0u8; 1];
        // Closed by Nimbus (0 bytes), or never accepted before the test ends.
        let _ = s.read(&mut b);
    }
}

#[test]
fn a_lost_session_moves_nothing_and_a_supervisor_gone_for_the_timeout_moves_its_executors() {
    let builtins = Registry::with_builtins().runnable_names();
    let (a, b) = (sup("a", Some(builtins.clone())), sup("b", Some(builtins)));
    let n = Nimbus::start(&[a.clone(), b.clone()]);
    assert_eq!(n.submit(WORDS).0, 200);
    let assignment = || {
        n.rt.block_on(n.state.assignments())
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, r)| r.executors)
            .unwrap_or_default()
    };
    let sups = |e: &[cluster_state::ExecutorSlot]| {
        e.iter()
            .map(|x| x.supervisor.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    n.wait("placed on both", || sups(&assignment()).len() == 2);
    let before = assignment();
    // Every ephemeral node goes at once (a ZooKeeper session lost, or an outage): the
    // supervisors register again within the timeout (600 ms here). Nothing moves.
    n.rt.block_on(async { n.state.store().expire_session() });
    std::thread::sleep(Duration::from_millis(200));
    for s in [&a, &b] {
        n.rt.block_on(n.state.register_supervisor(s))
            .expect("register");
    }
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            assignment(),
            before,
            "an assignment changed during the outage"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // b is gone for good: once missing for the timeout, its executors move to a.
    n.rt.block_on(async { n.state.store().expire_session() });
    n.rt.block_on(n.state.register_supervisor(&a))
        .expect("register");
    n.wait("everything on a", || {
        let e = assignment();
        !e.is_empty() && sups(&e) == std::collections::BTreeSet::from(["a".to_string()])
    });
}

#[test]
fn a_move_is_held_until_the_old_workers_stop_never_two_copies() {
    use cluster_state::{ExecutorBeat, WorkerBeat};
    let n = Nimbus::start(&stock(&["a", "b"]));
    assert_eq!(n.submit(WORDS).0, 200);
    let record = || {
        n.rt.block_on(n.state.assignments())
            .ok()
            .and_then(|mut v| v.pop())
    };
    // No worker ran before: the first assignment is not held.
    n.wait("an assignment over both, not held", || {
        record().is_some_and(|(_, r)| !r.held && r.executors.iter().any(|e| e.supervisor == "b"))
    });
    let (id, first) = record().expect("assigned");
    // The supervisors run it: one heartbeat per worker, as they write them.
    let mut slots: std::collections::BTreeMap<(String, u16), Vec<ExecutorBeat>> =
        std::collections::BTreeMap::new();
    for e in &first.executors {
        slots
            .entry((e.supervisor.clone(), e.port))
            .or_default()
            .push(ExecutorBeat {
                start: e.start,
                end: e.end,
                ..Default::default()
            });
    }
    let beats: Vec<WorkerBeat> = slots
        .into_iter()
        .map(|((supervisor, port), executors)| WorkerBeat {
            time_secs: cluster_state::now_secs(),
            supervisor,
            port,
            uptime_secs: 1,
            executors,
            stopped: None,
        })
        .collect();
    for b in &beats {
        n.rt.block_on(n.state.set_workerbeat(&id, b)).expect("beat");
    }
    // Everything onto one worker: the new assignment is held while the old workers run.
    let (code, body) = n.post(
        "/api/v1/topology/words/rebalance/0",
        serde_json::json!({"workers": 1}),
    );
    assert_eq!(code, 200, "{body}");
    n.wait("a new, held assignment", || {
        record().is_some_and(|(_, r)| r.executors != first.executors && r.held)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        record().is_some_and(|(_, r)| r.held),
        "released while old workers run"
    );
    // The supervisors stop the workers whose executors changed (removing their beats).
    for b in &beats {
        n.rt.block_on(n.state.remove_workerbeat(&id, &b.supervisor, b.port))
            .expect("remove");
    }
    n.wait("released once they are gone", || {
        record().is_some_and(|(_, r)| !r.held)
    });
}

#[test]
fn status_totals_count_across_worker_restarts() {
    use cluster_state::{ExecutorBeat, WorkerBeat};
    let n = Nimbus::start(&stock(&["a"]));
    assert_eq!(n.submit(WORDS).0, 200);
    n.wait("assigned", || {
        n.rt.block_on(n.state.assignments())
            .is_ok_and(|a| !a.is_empty())
    });
    let (id, a) =
        n.rt.block_on(n.state.assignments())
            .expect("read")
            .remove(0);
    let port = a.executors[0].port;
    let beat = |executed: u64, stopped: Option<u64>| WorkerBeat {
        time_secs: cluster_state::now_secs(),
        supervisor: "a".into(),
        port,
        uptime_secs: 1,
        executors: vec![ExecutorBeat {
            start: a.executors[0].start,
            end: a.executors[0].end,
            component: "c".into(),
            executed,
            ..Default::default()
        }],
        stopped,
    };
    // A worker executed 1,000 and stopped; its successor on the slot has executed 25 so far.
    for b in [beat(1000, Some(7)), beat(25, None)] {
        n.rt.block_on(n.state.set_workerbeat(&id, &b))
            .expect("beat");
    }
    let executed = || {
        let (_, body) = n.get("/api/v1/gale/status");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["topologies"][0]["components"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == "c").cloned())
            .and_then(|c| c["stats"]["executed"].as_u64())
            .unwrap_or(0)
    };
    n.wait("1,025 executed in all", || executed() == 1025);
    // Folded once: the stopped beat is gone, the total stays.
    let left = n.rt.block_on(n.state.workerbeats(&id)).expect("read");
    assert!(left.iter().all(|b| b.stopped.is_none()), "{left:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(executed(), 1025);
}
