//! Guaranteed processing in local mode: every reliable spout tuple is acked in the end, failed and
//! timed-out ones are replayed, ack/fail come exactly once per message id, max pending holds.

use components::Builtins;
use flux::{Substitutions, load_bytes};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use topology_api::{
    Bolt, BoltCollector, Fields, MessageId, OutputDeclarer, Registry, Spout, SpoutCollector, Tuple,
    Value, Values,
};
use worker::{LocalOptions, RunSummary, run_local};

#[derive(Default, Debug)]
struct Log {
    acked: BTreeMap<u64, u32>,
    failed: BTreeMap<u64, u32>,
    max_in_flight: usize,
}

/// Emits ids 0..n reliably; replays failed ids; finished when every id was acked.
struct ReliableSpout {
    n: u64,
    next: u64,
    replay: Vec<u64>,
    in_flight: BTreeSet<u64>,
    log: Arc<Mutex<Log>>,
}

impl Spout for ReliableSpout {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["n"]));
    }
    fn next_tuple(&mut self, out: &mut SpoutCollector<'_>) {
        let id = match self.replay.pop() {
            Some(id) => id,
            None if self.next < self.n => {
                self.next += 1;
                self.next - 1
            }
            None => return,
        };
        self.in_flight.insert(id);
        let mut l = self.log.lock().expect("lock");
        l.max_in_flight = l.max_in_flight.max(self.in_flight.len());
        drop(l);
        let mut v = Values::new();
        v.push(Value::Int(id as i64));
        out.emit_with_id(v, MessageId::Int(id));
    }
    fn ack(&mut self, id: &MessageId) {
        if let MessageId::Int(i) = id {
            self.in_flight.remove(i);
            *self.log.lock().expect("lock").acked.entry(*i).or_default() += 1;
        }
    }
    fn fail(&mut self, id: &MessageId) {
        if let MessageId::Int(i) = id {
            self.in_flight.remove(i);
            *self.log.lock().expect("lock").failed.entry(*i).or_default() += 1;
            self.replay.push(*i);
        }
    }
    fn is_finished(&self) -> bool {
        self.next >= self.n && self.replay.is_empty() && self.in_flight.is_empty()
    }
}

/// Emits two anchored copies of each input; fails ids divisible by 10 the first time it sees them,
/// and holds (never acks) ids divisible by 25 the first time (they time out).
struct Flaky {
    seen: BTreeSet<i64>,
}

impl Bolt for Flaky {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["n"]));
    }
    fn execute(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) {
        let n = t.get_int(0).unwrap_or(0);
        let first = self.seen.insert(n);
        if first && n % 25 == 0 {
            return; // neither acked nor failed: the tree times out
        }
        if first && n % 10 == 0 {
            out.fail(t);
            return;
        }
        for _ in 0..2 {
            let mut v = Values::new();
            v.push(Value::Int(n));
            out.emit_anchored(t, v);
        }
        out.ack(t);
    }
    fn auto_ack(&self) -> bool {
        false
    }
}

/// Joins pairs: holds one tuple, and on the next emits one tuple anchored to both (multi-anchoring),
/// then acks both.
#[derive(Default)]
struct PairJoin {
    held: Option<Tuple<'static>>,
}

impl Bolt for PairJoin {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["n"]));
    }
    fn execute(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) {
        match self.held.take() {
            None => self.held = Some(t.to_owned()),
            Some(h) => {
                let mut v = Values::new();
                v.push(t.get(0).map(|x| x.to_value()).unwrap_or_default());
                out.emit_stream("default", &[&h, t], v);
                out.ack(&h);
                out.ack(t);
            }
        }
    }
    fn cleanup(&mut self) {}
    fn auto_ack(&self) -> bool {
        false
    }
}

/// Joins the two copies of each spout tuple (by its value): one emit anchored to both, two
/// anchors of one tree.
#[derive(Default)]
struct SameTreeJoin {
    held: std::collections::HashMap<i64, Tuple<'static>>,
}

impl Bolt for SameTreeJoin {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["n"]));
    }
    fn execute(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) {
        let n = t.get_int(0).unwrap_or(-1);
        match self.held.remove(&n) {
            None => {
                self.held.insert(n, t.to_owned());
            }
            Some(h) => {
                let mut v = Values::new();
                v.push(Value::Int(n));
                out.emit_stream("default", &[&h, t], v);
                out.ack(&h);
                out.ack(t);
            }
        }
    }
    fn auto_ack(&self) -> bool {
        false
    }
}

/// Emits its input's values anchored to it.
struct Forward;

impl Bolt for Forward {
    fn declare_output_fields(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(["n"]));
    }
    fn execute(&mut self, t: &Tuple, out: &mut BoltCollector<'_>) {
        out.emit_anchored(t, t.to_values());
    }
}

fn registry(n: u64, log: Arc<Mutex<Log>>) -> Registry {
    let mut r = Registry::with_builtins();
    r.register_bolt("SameTreeJoin", |_| Ok(Box::new(SameTreeJoin::default())));
    r.register_bolt("Forward", |_| Ok(Box::new(Forward)));
    r.register_spout("Reliable", move |_| {
        Ok(Box::new(ReliableSpout {
            n,
            next: 0,
            replay: Vec::new(),
            in_flight: BTreeSet::new(),
            log: log.clone(),
        }))
    });
    r.register_bolt("Flaky", |_| {
        Ok(Box::new(Flaky {
            seen: BTreeSet::new(),
        }))
    });
    r.register_bolt("PairJoin", |_| Ok(Box::new(PairJoin::default())));
    r
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
    run_local(
        l.topology,
        reg,
        LocalOptions {
            duration: Some(Duration::from_secs(60)),
            ..Default::default()
        },
    )
    .expect("runs")
}

#[test]
fn every_tuple_is_acked_once_in_the_end_with_fails_and_timeouts_replayed() {
    let log = Arc::new(Mutex::new(Log::default()));
    let reg = registry(1000, log.clone());
    let yaml = "name: t\nconfig:\n  topology.acker.executors: 2\n  topology.message.timeout.secs: 1\nspouts:\n  - {id: s, className: Reliable}\nbolts:\n  - {id: flaky, className: Flaky, parallelism: 2}\n  - {id: count, className: WordCountBolt, parallelism: 2}\n  - {id: log, className: LogInfoBolt}\nstreams:\n  - {from: s, to: flaky, grouping: {type: FIELDS, args: [\"n\"]}}\n  - {from: flaky, to: count, grouping: {type: FIELDS, args: [\"n\"]}}\n";
    let s = run(yaml, &reg);
    assert_eq!(s.ended, "drained", "{:?}", s.errors);
    let log = log.lock().expect("lock");
    assert_eq!(log.acked.len(), 1000, "every id acked");
    assert!(
        log.acked.values().all(|c| *c == 1),
        "ack called once per id"
    );
    // Ids divisible by 10 failed once (explicit fail), those divisible by 25 once (timeout).
    let want_failed: BTreeSet<u64> = (0..1000).filter(|n| n % 10 == 0 || n % 25 == 0).collect();
    assert_eq!(
        log.failed.keys().copied().collect::<BTreeSet<u64>>(),
        want_failed
    );
    assert!(log.failed.values().all(|c| *c == 1));
    let spout = s.components.iter().find(|c| c.id == "s").expect("spout");
    assert_eq!(spout.acked, 1000);
    assert_eq!(spout.failed as usize, want_failed.len());
}

#[test]
fn multi_anchored_trees_complete() {
    let log = Arc::new(Mutex::new(Log::default()));
    let reg = registry(500, log.clone());
    let yaml = "name: t\nconfig:\n  topology.acker.executors: 1\nspouts:\n  - {id: s, className: Reliable}\nbolts:\n  - {id: join, className: PairJoin}\n  - {id: count, className: WordCountBolt}\nstreams:\n  - {from: s, to: join, grouping: {type: GLOBAL}}\n  - {from: join, to: count, grouping: {type: SHUFFLE}}\n";
    let s = run(yaml, &reg);
    assert_eq!(s.ended, "drained", "{:?}", s.errors);
    let log = log.lock().expect("lock");
    assert_eq!(log.acked.len(), 500);
    assert!(log.failed.is_empty());
}

/// An emit anchored to two tuples of one tree (both copies of a spout tuple, sent to two tasks by
/// ALL grouping and joined again): each anchor gets its own edge, so every tree completes. (One
/// edge XORed into both anchors cancelled out, and the trees never completed.)
#[test]
fn an_emit_anchored_to_two_tuples_of_one_tree_completes_it() {
    let log = Arc::new(Mutex::new(Log::default()));
    let reg = registry(500, log.clone());
    let yaml = "name: t\nconfig:\n  topology.acker.executors: 1\n  topology.message.timeout.secs: 1\nspouts:\n  - {id: s, className: Reliable}\nbolts:\n  - {id: pass, className: Forward, parallelism: 2}\n  - {id: join, className: SameTreeJoin}\n  - {id: flaky, className: Flaky}\nstreams:\n  - {from: s, to: pass, grouping: {type: ALL}}\n  - {from: pass, to: join, grouping: {type: GLOBAL}}\n  - {from: join, to: flaky, grouping: {type: SHUFFLE}}\n";
    let s = run(yaml, &reg);
    assert_eq!(s.ended, "drained", "{:?}", s.errors);
    let log = log.lock().expect("lock");
    assert_eq!(log.acked.len(), 500);
    // Flaky fails every tenth and lets every 25th time out, the first time: each of those trees must
    // fail, not complete before the join's output was handled.
    let want = (0..500).filter(|n| n % 10 == 0 || n % 25 == 0).count();
    assert_eq!(log.failed.len(), want, "trees completed early");
}

#[test]
fn max_spout_pending_bounds_tuples_in_flight() {
    let log = Arc::new(Mutex::new(Log::default()));
    let reg = registry(3000, log.clone());
    let yaml = "name: t\nconfig:\n  topology.acker.executors: 1\n  topology.max.spout.pending: 20\nspouts:\n  - {id: s, className: Reliable}\nbolts:\n  - {id: count, className: WordCountBolt, parallelism: 2}\nstreams:\n  - {from: s, to: count, grouping: {type: SHUFFLE}}\n";
    let s = run(yaml, &reg);
    assert_eq!(s.ended, "drained");
    let log = log.lock().expect("lock");
    assert_eq!(log.acked.len(), 3000);
    assert!(
        log.max_in_flight <= 20,
        "in flight reached {}",
        log.max_in_flight
    );
}

#[test]
fn word_count_with_acking_acks_every_line_and_counts_exactly() {
    let dir = std::env::temp_dir().join(format!("gale-ack-wc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let input = dir.join("in.txt");
    let output = dir.join("out.tsv");
    let mut text = String::new();
    for i in 0..5000 {
        text += &format!("line {i} of the text with some words\n");
    }
    std::fs::write(&input, &text).expect("input");
    let reg = Registry::with_builtins();
    let mut subs = Substitutions::default();
    subs.set("input", input.to_str().expect("utf-8"));
    subs.set("output", output.to_str().expect("utf-8"));
    subs.set("ackers", "2");
    let yaml =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies/word-count.yaml");
    let l = flux::load_file(&yaml, &reg, &subs).expect("valid");
    let s = run_local(l.topology, &reg, LocalOptions::default()).expect("runs");
    let spout = s
        .components
        .iter()
        .find(|c| c.id == "sentences")
        .expect("spout");
    assert_eq!((spout.emitted, spout.acked, spout.failed), (5000, 5000, 0));
    let acker = s
        .components
        .iter()
        .find(|c| c.id == "__acker")
        .expect("acker");
    assert!(acker.executed > 0);
    let counts = std::fs::read_to_string(&output).expect("sink");
    assert!(
        counts.lines().any(|l| l == "line\t5000"),
        "{}",
        &counts[..80.min(counts.len())]
    );
}
