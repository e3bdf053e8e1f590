//! The Supervisor in-process over the in-memory store: it registers its slots and classes, runs
//! the worker an assignment gives it (real executor threads, real ports on 127.0.0.1), moves it
//! when the assignment moves, and refuses shipped resources with a bad name before writing.
//! (The real-process tests, with ZooKeeper and Nimbus, are cli/tests/cluster.rs.)

use cluster_state::{
    AssignedTopology, AssignmentRecord, ClusterState, Counted, ExecutorSlot, MemStore,
    StoredTopology, StormRecord, SupervisorAssignments, TopologyStatus,
};
use components::Builtins;
use flux::layout::task_layout;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use supervisor::daemon::{SupervisorConfig, run};
use topology_api::Registry;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Sup {
    rt: tokio::runtime::Runtime,
    state: Arc<ClusterState<Counted<MemStore>>>,
    ports: [u16; 2],
    work: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Sup {
    fn start(name: &str) -> Sup {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let state = Arc::new(ClusterState::new(Counted::new(MemStore::new())));
        let ports = [free_port(), free_port()];
        let work = std::env::temp_dir().join(format!("gale-sup-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        let cfg = SupervisorConfig {
            id: "s1".into(),
            host: "127.0.0.1".into(),
            ports: ports.to_vec(),
            registry: Registry::with_builtins(),
            work_dir: work.clone(),
            sync_interval: Duration::from_millis(50),
            cluster_secret: None,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        rt.spawn(async move {
            run(cfg, st, async {
                let _ = rx.await;
            })
            .await;
        });
        Sup {
            rt,
            state,
            ports,
            work,
            stop: Some(tx),
        }
    }

    fn wait(&self, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("timed out waiting for {what}");
    }

    /// Stores `yaml` as topology `id` (ACTIVE) with `resources`, every executor on `port`.
    fn assign(&self, id: &str, yaml: &str, resources: Vec<(String, Vec<u8>)>, port: u16) {
        self.assign_held(id, yaml, resources, port, false)
    }

    fn assign_held(
        &self,
        id: &str,
        yaml: &str,
        resources: Vec<(String, Vec<u8>)>,
        port: u16,
        held: bool,
    ) {
        let reg = Registry::with_builtins();
        let topology = flux::load_bytes(
            "t.yaml",
            yaml.as_bytes(),
            &reg,
            &flux::Substitutions::default(),
            &|_| None,
        )
        .expect("valid")
        .topology;
        let executors = task_layout(&topology, topology.acker_executors())
            .iter()
            .flat_map(|c| c.executors.clone())
            .map(|e| ExecutorSlot {
                start: e.start,
                end: e.end,
                supervisor: "s1".into(),
                port,
            })
            .collect();
        let storm = StormRecord {
            name: topology.name.clone(),
            status: TopologyStatus::Active,
            launch_time_secs: 1,
            workers: 1,
            component_executors: BTreeMap::new(),
            action_at_secs: None,
            prev_status: None,
        };
        let stored = StoredTopology {
            topology,
            resources,
        };
        let a = AssignmentRecord {
            executors,
            hosts: BTreeMap::from([("s1".to_string(), "127.0.0.1".to_string())]),
            start_times: BTreeMap::new(),
            held,
            lease_ms: 400,
            beat_ms: 100,
        };
        // As Nimbus does: the assignment, then the supervisor's own record naming it.
        let index = SupervisorAssignments {
            topologies: BTreeMap::from([(
                id.to_string(),
                AssignedTopology {
                    generation: a.generation(),
                    status: TopologyStatus::Active,
                },
            )]),
        };
        self.rt.block_on(async {
            self.state.set_topology(id, &stored).await.expect("store");
            self.state.set_storm(id, &storm).await.expect("store");
            self.state.set_assignment(id, &a).await.expect("store");
            self.state
                .set_supervisor_assignments("s1", &index)
                .await
                .expect("store");
        });
    }

    /// (port, executed by `component`) of each worker heartbeat of `id`.
    fn beats(&self, id: &str, component: &str) -> Vec<(u16, u64)> {
        let beats = self
            .rt
            .block_on(self.state.workerbeats(id))
            .unwrap_or_default();
        beats
            .iter()
            .filter(|b| b.stopped.is_none())
            .map(|b| {
                let executed = b
                    .executors
                    .iter()
                    .filter(|e| e.component == component)
                    .map(|e| e.executed)
                    .sum();
                (b.port, executed)
            })
            .collect()
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

const WORDS: &str = "name: words\nconfig: {topology.workers: 1, topology.acker.executors: 0}\n\
    spouts: [{id: s, className: TestWordSpout}]\n\
    bolts: [{id: c, className: WordCountBolt}]\n\
    streams: [{from: s, to: c, grouping: {type: FIELDS, args: [word]}}]\n";

#[test]
fn registers_runs_its_assignment_and_follows_it_to_another_port() {
    let s = Sup::start("follow");
    s.wait("registration with classes", || {
        s.rt.block_on(s.state.supervisors()).is_ok_and(|v| {
            v.iter().any(|r| {
                r.id == "s1"
                    && r.ports == s.ports
                    && r.classes
                        .as_ref()
                        .is_some_and(|c| c.iter().any(|c| c == "WordCountBolt"))
            })
        })
    });
    let files = vec![("lib/words.txt".to_string(), b"gale".to_vec())];
    s.assign("words-1", WORDS, files, s.ports[0]);
    s.wait("the worker on the first port counts", || {
        s.beats("words-1", "c")
            .iter()
            .any(|(p, n)| *p == s.ports[0] && *n > 0)
    });
    let shipped = s.work.join("words-1/resources/lib/words.txt");
    assert_eq!(std::fs::read(&shipped).expect("unpacked"), b"gale");
    // The assignment moves: the first port's worker stops (its beat goes), the second runs.
    s.assign("words-1", WORDS, vec![], s.ports[1]);
    s.wait("the worker moved to the second port", || {
        let b = s.beats("words-1", "c");
        b.iter().all(|(p, _)| *p == s.ports[1]) && b.iter().any(|(_, n)| *n > 0)
    });
    let used = s.rt.block_on(s.state.supervisors()).expect("read")[0]
        .used_ports
        .clone();
    assert_eq!(used, vec![s.ports[1]]);
    // The stopped worker left its last counters for Nimbus to add to the totals.
    let all = s.rt.block_on(s.state.workerbeats("words-1")).expect("read");
    let last = all
        .iter()
        .find(|b| b.stopped.is_some() && b.port == s.ports[0])
        .expect("the first worker's last beat");
    assert!(
        last.executors
            .iter()
            .any(|e| e.component == "c" && e.executed > 0)
    );
}

#[test]
fn a_bad_resource_name_is_refused_before_anything_is_written() {
    let s = Sup::start("refuse");
    let files = vec![
        ("ok.txt".to_string(), b"fine".to_vec()),
        ("../escaped.txt".to_string(), b"no".to_vec()),
    ];
    s.assign("bad-1", WORDS, files, s.ports[0]);
    s.wait("the start failure is reported", || {
        s.rt.block_on(s.state.errors("bad-1")).is_ok_and(|e| {
            e.iter().any(|(component, r)| {
                component == "__worker"
                    && r.errors
                        .iter()
                        .any(|x| x.message.contains("refusing resources"))
            })
        })
    });
    assert!(!s.work.join("bad-1/escaped.txt").exists());
    assert!(
        !s.work.join("bad-1/resources/ok.txt").exists(),
        "nothing written"
    );
    assert!(s.beats("bad-1", "c").is_empty(), "no worker runs");
}

#[test]
fn a_killed_topologys_work_folder_is_removed() {
    let s = Sup::start("clean");
    let files = vec![("data.txt".to_string(), vec![1u8; 1000])];
    s.assign("gone-1", WORDS, files, s.ports[0]);
    let folder = s.work.join("gone-1");
    s.wait("the worker runs with its resources", || {
        folder.join("resources/data.txt").exists() && !s.beats("gone-1", "c").is_empty()
    });
    // A folder of something else in the work dir is left alone.
    std::fs::create_dir_all(s.work.join("not-a-topology")).expect("dir");
    // Nimbus removes the killed topology: assignment, storm and stored topology.
    s.rt.block_on(async {
        s.state.remove_topology("gone-1").await?;
        s.state.remove_supervisor_assignments("s1").await
    })
    .expect("remove");
    s.wait("the folder is gone", || !folder.exists());
    assert!(s.work.join("not-a-topology").exists());
}

#[test]
fn a_held_assignment_starts_nothing_until_it_is_released() {
    let s = Sup::start("held");
    s.assign_held("held-1", WORDS, vec![], s.ports[0], true);
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        s.beats("held-1", "c").is_empty(),
        "a worker started while held"
    );
    s.assign_held("held-1", WORDS, vec![], s.ports[0], false);
    s.wait("the worker starts once released", || {
        !s.beats("held-1", "c").is_empty()
    });
}

/// Fencing: cut off from the store for longer than the assignment's lease (400 ms), the
/// supervisor stops its worker (its port closes) though nothing told it to; once the store
/// answers again, the worker runs again from the same assignment.
#[test]
fn a_supervisor_cut_off_from_the_store_stops_its_workers_when_the_lease_runs_out() {
    let s = Sup::start("fence");
    s.assign("fence-1", WORDS, vec![], s.ports[0]);
    s.wait("the worker runs", || {
        s.beats("fence-1", "c").iter().any(|(_, n)| *n > 0)
    });
    let port_open = || std::net::TcpStream::connect(("127.0.0.1", s.ports[0])).is_ok();
    assert!(port_open());
    s.state.store().inner().set_cut_off(true);
    let cut = Instant::now();
    s.wait("the worker stopped (its port closed)", || !port_open());
    let fenced = cut.elapsed();
    assert!(
        fenced >= Duration::from_millis(300),
        "stopped after {fenced:?}, before the lease ran out"
    );
    s.state.store().inner().set_cut_off(false);
    s.wait("the worker runs again", || {
        port_open() && s.beats("fence-1", "c").iter().any(|(_, n)| *n > 0)
    });
    eprintln!("cut off from the store: worker stopped {fenced:?} after the cut (lease 400 ms)");
}

/// Writes only on change: idle, a pass is one read of the supervisor's own node (which sets its
/// watch again), and nothing is written; a running worker adds its heartbeat once per the
/// assignment's period (100 ms here), not once per pass.
#[test]
fn an_idle_supervisor_reads_one_node_per_pass_and_a_worker_adds_one_beat_per_period() {
    let s = Sup::start("quiet");
    s.wait("registered", || {
        s.rt.block_on(s.state.supervisors())
            .is_ok_and(|v| !v.is_empty())
    });
    let window = Duration::from_millis(1000);
    let before = s.state.store().requests();
    std::thread::sleep(window);
    let idle = s.state.store().requests();
    let writes = |r: cluster_state::Requests| r.sets + r.creates + r.deletes;
    assert_eq!(writes(idle), writes(before), "idle, nothing is written");
    // Passes every 50 ms (the test's interval): at most one read each.
    let reads = idle.gets - before.gets;
    assert!(reads <= 1000 / 50 + 2, "{reads} reads in {window:?}");
    assert_eq!(
        idle.children, before.children,
        "no listing of every topology"
    );

    s.assign("quiet-1", WORDS, vec![], s.ports[0]);
    s.wait("the worker runs", || {
        s.beats("quiet-1", "c").iter().any(|(_, n)| *n > 0)
    });
    let before = s.state.store().requests();
    let t = Instant::now();
    std::thread::sleep(window);
    let running = s.state.store().requests();
    let elapsed = t.elapsed();
    let beats = writes(running) - writes(before);
    let most = (elapsed.as_millis() / 100) as u64 + 2;
    assert!(
        beats <= most,
        "{beats} writes in {elapsed:?} (beat period 100 ms)"
    );
    assert!(
        beats >= 3,
        "{beats} writes in {elapsed:?}: the worker stopped beating"
    );
    eprintln!(
        "idle: {reads} reads, 0 writes in {window:?}; running: {beats} beats, {} reads in {elapsed:?}",
        running.gets - before.gets
    );
}

/// A supervisor's workers come to beat in one pass: a worker beats when due, or when another
/// is due and half its own period has passed.
#[test]
fn workers_beat_together_once_one_is_due() {
    use supervisor::daemon::{beat_due_in, beats_now};
    let period = Duration::from_secs(4);
    let ago = |s: u64| Some(Instant::now() - Duration::from_secs(s));
    // (last beat, another worker due, beats now)
    for (last, any_due, want) in [
        (None, false, true),
        (ago(5), false, true),
        (ago(1), false, false),
        (ago(3), false, false),
        (ago(3), true, true),
        (ago(1), true, false),
    ] {
        assert_eq!(beats_now(last, period, any_due), want, "{last:?} {any_due}");
    }
    assert_eq!(beat_due_in(None, period), Duration::ZERO);
    assert!(beat_due_in(ago(1), period) > Duration::from_secs(2));
    assert_eq!(beat_due_in(ago(5), period), Duration::ZERO);
}
