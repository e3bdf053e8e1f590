//! The local runtime with small test components: groupings end to end, bounded queues,
//! failures that must not hang.

use components::Builtins;
use flux::{Substitutions, load_bytes};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use topology_api::{
    Bolt, BoltCollector, Fields, OutputDeclarer, Registry, Spout, SpoutCollector, Tuple, Value,
    Values,
};
use worker::{LocalOptions, RunSummary, run_local};

/// Emits the integers 0..n as `n` (key `k` = n mod 10), then finishes.
struct CountingSpout {
    next: u64,
    n: u64,
    emitted: Arc<AtomicU64>,
}

impl Spout for CountingSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["n", "k"]));
    }
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) {
        if self.next < self.n {
            let mut v = Values::new();
            v.push(Value::Int(self.next as i64));
            v.push(Value::Int((self.next % 10) as i64));
            out.emit(v);
            self.next += 1;
            self.emitted.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn is_finished(&self) -> bool {
        self.next >= self.n
    }
}

type Seen = Arc<Mutex<Vec<(u32, i64, i64)>>>;

/// Records (task, n, k) of every tuple; optionally sleeps per tuple, watches the spout's lead, or
/// panics on a given n.
struct Recorder {
    task: u32,
    seen: Seen,
    sleep: Option<Duration>,
    lead: Option<(Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>)>,
    panic_on: Option<i64>,
}

impl Bolt for Recorder {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    fn prepare(
        &mut self,
        ctx: &topology_api::TopologyContext,
    ) -> Result<(), topology_api::ComponentError> {
        self.task = ctx.task_id;
        Ok(())
    }
    fn execute(&mut self, t: &Tuple, _out: &mut BoltCollector<'_>) {
        let n = t.get_int(0).unwrap_or(-1);
        let k = t.get_by_field("k").and_then(|v| v.as_int()).unwrap_or(-1);
        if Some(n) == self.panic_on {
            panic!("boom at {n}");
        }
        if let Some(d) = self.sleep {
            std::thread::sleep(d);
        }
        if let Some((emitted, executed, max_lead)) = &self.lead {
            let done = executed.fetch_add(1, Ordering::Relaxed) + 1;
            let lead = emitted.load(Ordering::Relaxed).saturating_sub(done);
            max_lead.fetch_max(lead, Ordering::Relaxed);
        }
        self.seen.lock().expect("lock").push((self.task, n, k));
    }
}

struct Harness {
    seen: Seen,
    emitted: Arc<AtomicU64>,
    executed: Arc<AtomicU64>,
    max_lead: Arc<AtomicU64>,
}

fn registry(n: u64, sleep: Option<Duration>, panic_on: Option<i64>) -> (Registry, Harness) {
    let h = Harness {
        seen: Arc::default(),
        emitted: Arc::default(),
        executed: Arc::default(),
        max_lead: Arc::default(),
    };
    let mut r = Registry::with_builtins();
    let emitted = h.emitted.clone();
    r.register_spout("Counting", move |_| {
        Ok(Box::new(CountingSpout {
            next: 0,
            n,
            emitted: emitted.clone(),
        }))
    });
    let (seen, e, x, m) = (
        h.seen.clone(),
        h.emitted.clone(),
        h.executed.clone(),
        h.max_lead.clone(),
    );
    r.register_bolt("Recorder", move |_| {
        Ok(Box::new(Recorder {
            task: 0,
            seen: seen.clone(),
            sleep,
            lead: Some((e.clone(), x.clone(), m.clone())),
            panic_on,
        }))
    });
    (r, h)
}

fn run(yaml: &str, reg: &Registry) -> RunSummary {
    let l = load_bytes(
        "t.yaml",
        yaml.as_bytes(),
        reg,
        &Substitutions::default(),
        &|_| None,
    )
    .expect("valid");
    run_local(l.topology, reg, LocalOptions::default()).expect("runs")
}

fn topo(grouping: &str, par: u32, tasks: u32, extra_config: &str) -> String {
    format!(
        "name: t\nconfig:\n  topology.acker.executors: 0\n{extra_config}spouts:\n  - id: s\n    className: Counting\nbolts:\n  - id: r\n    className: Recorder\n    parallelism: {par}\n    numTasks: {tasks}\nstreams:\n  - from: s\n    to: r\n    grouping: {grouping}\n"
    )
}

#[test]
fn shuffle_spreads_evenly_over_tasks_of_several_executors() {
    let (reg, h) = registry(9000, None, None);
    let s = run(&topo("{type: SHUFFLE}", 2, 3, ""), &reg);
    assert_eq!(s.ended, "drained");
    let seen = h.seen.lock().expect("lock");
    assert_eq!(seen.len(), 9000);
    let mut per: BTreeMap<u32, usize> = BTreeMap::new();
    for (t, _, _) in seen.iter() {
        *per.entry(*t).or_default() += 1;
    }
    assert_eq!(per.len(), 3);
    assert!(per.values().all(|c| *c == 3000), "{per:?}");
}

#[test]
fn fields_sends_each_key_to_one_task() {
    let (reg, h) = registry(5000, None, None);
    run(&topo("{type: FIELDS, args: [k]}", 3, 3, ""), &reg);
    let seen = h.seen.lock().expect("lock");
    assert_eq!(seen.len(), 5000);
    let mut tasks_of_key: BTreeMap<i64, BTreeSet<u32>> = BTreeMap::new();
    for (t, _, k) in seen.iter() {
        tasks_of_key.entry(*k).or_default().insert(*t);
    }
    assert_eq!(tasks_of_key.len(), 10);
    assert!(
        tasks_of_key.values().all(|s| s.len() == 1),
        "{tasks_of_key:?}"
    );
}

#[test]
fn all_copies_to_every_task_and_global_picks_the_lowest() {
    let (reg, h) = registry(1000, None, None);
    run(&topo("{type: ALL}", 2, 4, ""), &reg);
    {
        let seen = h.seen.lock().expect("lock");
        assert_eq!(seen.len(), 4000);
        let tasks: BTreeSet<u32> = seen.iter().map(|x| x.0).collect();
        assert_eq!(tasks.len(), 4);
    }
    let (reg, h) = registry(1000, None, None);
    run(&topo("{type: GLOBAL}", 2, 4, ""), &reg);
    let seen = h.seen.lock().expect("lock");
    assert_eq!(seen.len(), 1000);
    let tasks: BTreeSet<u32> = seen.iter().map(|x| x.0).collect();
    // Tasks: r = 1..4 (sorted ids: "r" < "s"); GLOBAL goes to the lowest.
    assert_eq!(tasks, BTreeSet::from([1]));
}

#[test]
fn order_is_kept_from_one_task_to_another() {
    let (reg, h) = registry(20_000, None, None);
    run(&topo("{type: GLOBAL}", 1, 1, ""), &reg);
    let seen = h.seen.lock().expect("lock");
    let ns: Vec<i64> = seen.iter().map(|x| x.1).collect();
    assert_eq!(ns, (0..20_000).collect::<Vec<i64>>());
}

#[test]
fn a_slow_bolt_holds_the_spout_back_within_the_queue_bound() {
    // 10 tuples per batch, 40 per queue: the spout can be at most a few batches ahead.
    let cfg = "  topology.producer.batch.size: 10\n  topology.executor.receive.buffer.size: 40\n";
    let (reg, h) = registry(3000, Some(Duration::from_micros(200)), None);
    let s = run(&topo("{type: SHUFFLE}", 1, 1, cfg), &reg);
    assert_eq!(s.ended, "drained");
    assert_eq!(h.seen.lock().expect("lock").len(), 3000);
    // Queue (4 batches) + one being executed + one being filled + one blocked in send.
    let bound = 10 * (4 + 3);
    let lead = h.max_lead.load(Ordering::Relaxed);
    assert!(
        lead <= bound,
        "spout ran {lead} tuples ahead (bound {bound})"
    );
}

#[test]
fn a_panicking_bolt_fails_the_run_without_hanging() {
    let (reg, _h) = registry(100_000, None, Some(500));
    let start = std::time::Instant::now();
    let s = run(&topo("{type: SHUFFLE}", 1, 1, ""), &reg);
    assert_eq!(s.ended, "failed");
    assert!(
        s.errors
            .iter()
            .any(|e| e.component == "r" && e.message.contains("boom at 500")),
        "{:?}",
        s.errors
    );
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn open_errors_name_the_component() {
    let reg = Registry::with_builtins();
    let yaml = "name: t\nspouts:\n  - id: lines\n    className: FileLineSpout\n    properties: [{name: path, value: /nonexistent/x.txt}]\nbolts:\n  - id: log\n    className: LogInfoBolt\nstreams:\n  - {from: lines, to: log, grouping: {type: SHUFFLE}}\n";
    let l = load_bytes(
        "t.yaml",
        yaml.as_bytes(),
        &reg,
        &Substitutions::default(),
        &|_| None,
    )
    .expect("valid");
    let e = run_local(l.topology, &reg, LocalOptions::default()).expect_err("cannot open");
    let msg = e.to_string();
    assert!(
        msg.contains("lines") && msg.contains("/nonexistent/x.txt"),
        "{msg}"
    );
}

#[test]
fn summary_counts_match() {
    let (reg, _h) = registry(777, None, None);
    let s = run(&topo("{type: SHUFFLE}", 2, 2, ""), &reg);
    let by: BTreeMap<&str, _> = s.components.iter().map(|c| (c.id.as_str(), c)).collect();
    assert_eq!(by["s"].emitted, 777);
    assert_eq!(
        by["s"].acked, 0,
        "tuples emitted without a message id are never acked (Storm)"
    );
    assert_eq!(by["r"].executed, 777);
    assert_eq!(by["r"].acked, 777, "bolts auto-ack");
}

/// Counts tick tuples per task.
struct TickCounter {
    task: u32,
    ticks: Arc<Mutex<BTreeMap<u32, u32>>>,
}

impl Bolt for TickCounter {
    fn declare_output_fields(&self, _d: &mut OutputDeclarer) {}
    fn prepare(
        &mut self,
        ctx: &topology_api::TopologyContext,
    ) -> Result<(), topology_api::ComponentError> {
        self.task = ctx.task_id;
        Ok(())
    }
    fn execute(&mut self, t: &Tuple, _out: &mut BoltCollector<'_>) {
        if t.is_tick() {
            *self
                .ticks
                .lock()
                .expect("lock")
                .entry(self.task)
                .or_default() += 1;
        }
    }
}

#[test]
fn tick_tuples_reach_every_task() {
    let ticks: Arc<Mutex<BTreeMap<u32, u32>>> = Arc::default();
    let mut reg = Registry::with_builtins();
    let t2 = ticks.clone();
    reg.register_bolt("Ticks", move |_| {
        Ok(Box::new(TickCounter {
            task: 0,
            ticks: t2.clone(),
        }))
    });
    let yaml = "name: t\nconfig:\n  topology.tick.tuple.freq.secs: 1\n  topology.acker.executors: 0\nspouts:\n  - {id: s, className: TestWordSpout}\nbolts:\n  - {id: b, className: Ticks, parallelism: 2, numTasks: 3}\nstreams:\n  - {from: s, to: b, grouping: {type: SHUFFLE}}\n";
    let l = load_bytes(
        "t.yaml",
        yaml.as_bytes(),
        &reg,
        &Substitutions::default(),
        &|_| None,
    )
    .expect("valid");
    let s = run_local(
        l.topology,
        &reg,
        LocalOptions {
            duration: Some(Duration::from_millis(2500)),
            ..Default::default()
        },
    )
    .expect("runs");
    assert_eq!(s.ended, "duration");
    let t = ticks.lock().expect("lock");
    assert_eq!(t.len(), 3, "{t:?}");
    assert!(t.values().all(|n| (1..=3).contains(n)), "{t:?}");
}
