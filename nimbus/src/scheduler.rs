//! The even scheduler: a pure function of (cluster snapshot, topologies) -> assignments.
//!
//! Storm's rules (docs/contract.md §4):
//! - A topology uses `min(topology.workers, free slots + its healthy slots)` slots; a slot (a
//!   supervisor's port) runs one worker of one topology.
//! - Free slots are grouped by supervisor, ports ascending, supervisors with the most free slots
//!   first (ties by id), then interleaved: s1:6700, s2:6700, s1:6701, s2:6701, ...
//! - Executors sorted by start task go round-robin over the slots.
//! - Healthy workers keep their executors: only executors whose supervisor or port is gone move,
//!   and they move to new slots when there are any (else they join the healthy ones).
//!
//! Architecture invariant: no I/O here. Nimbus feeds it a snapshot and writes what it returns.

use flux::layout::ExecutorId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A worker slot: one port of one supervisor.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Slot {
    pub supervisor: String,
    pub port: u16,
}

/// A live supervisor as the scheduler sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorInfo {
    pub id: String,
    pub host: String,
    pub ports: Vec<u16>,
    /// The component classes it can run; `None` when not known (anything is assumed).
    #[serde(default)]
    pub classes: Option<BTreeSet<String>>,
}

impl SupervisorInfo {
    /// Whether it can run every class in `needed`.
    pub fn can_run(&self, needed: &BTreeSet<String>) -> bool {
        self.classes
            .as_ref()
            .is_none_or(|have| needed.iter().all(|c| have.contains(c)))
    }
}

/// The live supervisors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    pub supervisors: Vec<SupervisorInfo>,
}

impl ClusterSnapshot {
    /// `n` empty supervisors `sup-1..sup-n`, each with `slots` ports from 6700 (for `gale plan`).
    pub fn planned(n: usize, slots: usize) -> Self {
        ClusterSnapshot {
            supervisors: (1..=n)
                .map(|i| SupervisorInfo {
                    id: format!("sup-{i}"),
                    host: "127.0.0.1".into(),
                    ports: (0..slots).map(|p| 6700 + p as u16).collect(),
                    classes: None,
                })
                .collect(),
        }
    }

    #[cfg(test)]
    fn has_slot(&self, s: &Slot) -> bool {
        self.supervisors
            .iter()
            .any(|sup| sup.id == s.supervisor && sup.ports.contains(&s.port))
    }

    /// The supervisors that can run every class in `needed` (their class lists left out: they
    /// have been checked).
    pub fn capable_of(&self, needed: &BTreeSet<String>) -> ClusterSnapshot {
        ClusterSnapshot {
            supervisors: self
                .supervisors
                .iter()
                .filter(|s| s.can_run(needed))
                .map(|s| SupervisorInfo {
                    id: s.id.clone(),
                    host: s.host.clone(),
                    ports: s.ports.clone(),
                    classes: None,
                })
                .collect(),
        }
    }

    /// Every slot, for lookups.
    fn slots(&self) -> BTreeSet<(&str, u16)> {
        self.supervisors
            .iter()
            .flat_map(|s| s.ports.iter().map(move |p| (s.id.as_str(), *p)))
            .collect()
    }
}

/// Executor -> slot for one topology.
pub type Assignment = BTreeMap<ExecutorId, Slot>;

/// What the scheduler needs to know about one topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyRequest {
    pub id: String,
    pub workers: u32,
    /// Every executor, system ones (`__acker`) included.
    pub executors: Vec<ExecutorId>,
    /// The assignment currently in force (empty for a new topology).
    pub current: Assignment,
    /// The component classes its workers construct: it is placed only on supervisors that can
    /// run all of them.
    pub classes: BTreeSet<String>,
}

/// Computes the assignment of every topology. Topologies are scheduled in the order given (Nimbus
/// passes them oldest first), each taking slots the ones before it left free.
pub fn schedule(
    cluster: &ClusterSnapshot,
    topologies: &[TopologyRequest],
) -> BTreeMap<String, Assignment> {
    // Slots held by healthy workers of any topology are not free.
    let mut used: BTreeSet<Slot> = BTreeSet::new();
    let mut healthy: BTreeMap<&str, Assignment> = BTreeMap::new();
    // Each topology sees only the supervisors that can run all of its classes; topologies that
    // need the same classes (most do) share one view (a thousand supervisors are not copied a
    // hundred times a pass).
    let mut views: BTreeMap<&BTreeSet<String>, usize> = BTreeMap::new();
    let mut capable: Vec<ClusterSnapshot> = Vec::new();
    let view: Vec<usize> = topologies
        .iter()
        .map(|t| {
            *views.entry(&t.classes).or_insert_with(|| {
                capable.push(cluster.capable_of(&t.classes));
                capable.len() - 1
            })
        })
        .collect();
    let slots: Vec<BTreeSet<(&str, u16)>> = capable.iter().map(ClusterSnapshot::slots).collect();
    for (t, &v) in topologies.iter().zip(&view) {
        let valid: BTreeSet<ExecutorId> = t.executors.iter().copied().collect();
        let keep: Assignment = t
            .current
            .iter()
            .filter(|(e, s)| {
                valid.contains(e)
                    && slots[v].contains(&(s.supervisor.as_str(), s.port))
                    && !used.contains(*s)
            })
            .map(|(e, s)| (*e, s.clone()))
            .collect();
        used.extend(keep.values().cloned());
        healthy.insert(&t.id, keep);
    }

    let mut out = BTreeMap::new();
    for (t, &v) in topologies.iter().zip(&view) {
        let cluster = &capable[v];
        let keep = healthy.remove(t.id.as_str()).unwrap_or_default();
        let alive_slots: BTreeSet<Slot> = keep.values().cloned().collect();
        let mut pending: Vec<ExecutorId> = t
            .executors
            .iter()
            .filter(|e| !keep.contains_key(e))
            .copied()
            .collect();
        pending.sort();
        // Free slots only when something needs placing: in a steady cluster nothing does, and a
        // thousand supervisors' slots are not listed once per topology each pass.
        let free = if pending.is_empty() {
            Vec::new()
        } else {
            interleaved_free_slots(cluster, &used)
        };
        let want = (t.workers as usize).max(1);
        let total = want.min(free.len() + alive_slots.len());
        // A slot without an executor would be an idle worker: take no more slots than executors.
        let new_slots: Vec<Slot> = free
            .into_iter()
            .take(total.saturating_sub(alive_slots.len()).min(pending.len()))
            .collect();
        let mut assignment = keep;
        // Executors that lost their slot go to new slots; when there are none, to the healthy ones.
        let targets: Vec<Slot> = if !new_slots.is_empty() {
            new_slots.clone()
        } else {
            alive_slots.iter().cloned().collect()
        };
        if !targets.is_empty() {
            for (i, e) in pending.into_iter().enumerate() {
                assignment.insert(e, targets[i % targets.len()].clone());
            }
        }
        used.extend(new_slots);
        out.insert(t.id.clone(), assignment);
    }
    out
}

/// Whether a topology needing `needed` classes may be accepted, given the live `supervisors`
/// and the classes Nimbus's own binary `nimbus_knows`: yes when some live supervisor can run all
/// of them, or when none is live yet and Nimbus itself knows them all (it waits for supervisors,
/// as Storm). Otherwise the error names each class no live supervisor has, or says that no single
/// one has them all, with the classes the supervisors know.
pub fn check_runnable(
    needed: &BTreeSet<String>,
    supervisors: &[SupervisorInfo],
    nimbus_knows: impl Fn(&str) -> bool,
) -> Result<(), String> {
    if supervisors.iter().any(|s| s.can_run(needed)) {
        return Ok(());
    }
    if supervisors.is_empty() {
        let unknown: Vec<&str> = needed
            .iter()
            .map(String::as_str)
            .filter(|c| !nimbus_knows(c))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        return Err(format!(
            "no supervisor is running and Nimbus cannot run class(es) {}: start supervisors whose binary registers them, then submit again",
            unknown.join(", ")
        ));
    }
    let known: BTreeSet<&str> = supervisors
        .iter()
        .filter_map(|s| s.classes.as_ref())
        .flatten()
        .map(String::as_str)
        .collect();
    let unknown: Vec<&str> = needed
        .iter()
        .map(String::as_str)
        .filter(|c| !known.contains(c))
        .collect();
    let list = known.iter().copied().collect::<Vec<_>>().join(", ");
    if unknown.is_empty() {
        Err(format!(
            "no single live supervisor can run all of {}; each supervisor must run a binary that registers every class of the topology (the supervisors know: {list})",
            needed.iter().cloned().collect::<Vec<_>>().join(", ")
        ))
    } else {
        Err(format!(
            "unknown class(es) {}: no live supervisor can run them; run supervisors built with a registry that has them (the supervisors know: {list})",
            unknown.join(", ")
        ))
    }
}

/// Free slots in Storm's order: per supervisor ports ascending; supervisors with the most free
/// slots first (ties by id); then interleaved round-robin across supervisors.
pub fn interleaved_free_slots(cluster: &ClusterSnapshot, used: &BTreeSet<Slot>) -> Vec<Slot> {
    let used: BTreeSet<(&str, u16)> = used
        .iter()
        .map(|s| (s.supervisor.as_str(), s.port))
        .collect();
    let mut per_sup: Vec<(String, Vec<u16>)> = cluster
        .supervisors
        .iter()
        .map(|s| {
            let mut ports: Vec<u16> = s
                .ports
                .iter()
                .copied()
                .filter(|p| !used.contains(&(s.id.as_str(), *p)))
                .collect();
            ports.sort_unstable();
            ports.dedup();
            (s.id.clone(), ports)
        })
        .filter(|(_, p)| !p.is_empty())
        .collect();
    per_sup.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    let mut out = Vec::new();
    let max = per_sup.iter().map(|(_, p)| p.len()).max().unwrap_or(0);
    for i in 0..max {
        for (id, ports) in &per_sup {
            if let Some(p) = ports.get(i) {
                out.push(Slot {
                    supervisor: id.clone(),
                    port: *p,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn execs(n: u32) -> Vec<ExecutorId> {
        (1..=n).map(|i| ExecutorId { start: i, end: i }).collect()
    }

    fn req(id: &str, workers: u32, n: u32) -> TopologyRequest {
        TopologyRequest {
            id: id.into(),
            workers,
            executors: execs(n),
            current: Assignment::new(),
            classes: BTreeSet::new(),
        }
    }

    fn sup(id: &str, classes: Option<&[&str]>) -> SupervisorInfo {
        SupervisorInfo {
            id: id.into(),
            host: "h".into(),
            ports: vec![6700, 6701],
            classes: classes.map(|c| c.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn set(c: &[&str]) -> BTreeSet<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn runnable_only_where_every_class_is_known() {
        let builtin = sup("stock", Some(&["Split", "Count"]));
        let custom = sup("custom", Some(&["Split", "Count", "Reverse"]));
        let old = sup("old", None);
        let nimbus = |c: &str| c == "Split" || c == "Count";
        // (supervisors, needed classes, accepted?, text the error must hold)
        let cases: &[(&[&SupervisorInfo], &[&str], bool, &str)] = &[
            (&[&builtin], &["Split", "Count"], true, ""),
            (
                &[&builtin],
                &["Split", "Reverse"],
                false,
                "unknown class(es) Reverse",
            ),
            (&[&builtin, &custom], &["Split", "Reverse"], true, ""),
            (&[&old], &["Anything"], true, ""),
            (&[], &["Split"], true, ""),
            (&[], &["Reverse"], false, "no supervisor is running"),
            (
                &[&sup("a", Some(&["A"])), &sup("b", Some(&["B"]))],
                &["A", "B"],
                false,
                "no single live supervisor",
            ),
        ];
        for (sups, needed, ok, text) in cases {
            let sups: Vec<SupervisorInfo> = sups.iter().map(|s| (*s).clone()).collect();
            let r = check_runnable(&set(needed), &sups, nimbus);
            assert_eq!(r.is_ok(), *ok, "{needed:?}: {r:?}");
            if let Err(e) = r {
                assert!(e.contains(text), "{e}");
                if text.starts_with("unknown") {
                    assert!(e.contains("the supervisors know: Count, Split"), "{e}");
                }
            }
        }
    }

    #[test]
    fn placed_only_on_supervisors_with_its_classes() {
        let c = ClusterSnapshot {
            supervisors: vec![
                sup("a-stock", Some(&["Split"])),
                sup("b-custom", Some(&["Split", "Reverse"])),
            ],
        };
        let mut custom = req("custom", 2, 4);
        custom.classes = set(&["Split", "Reverse"]);
        let mut stock = req("stock", 2, 4);
        stock.classes = set(&["Split"]);
        let out = schedule(&c, &[custom, stock]);
        assert!(out["custom"].values().all(|s| s.supervisor == "b-custom"));
        assert_eq!(out["custom"].len(), 4);
        // The stock topology takes what is left: a-stock's slots.
        assert!(out["stock"].values().all(|s| s.supervisor == "a-stock"));
        // A rebalance or restart keeps a custom executor off a supervisor without its class.
        let mut again = req("custom", 2, 4);
        again.classes = set(&["Split", "Reverse"]);
        again.current = out["stock"].clone();
        let moved = schedule(&c, &[again]);
        assert!(moved["custom"].values().all(|s| s.supervisor == "b-custom"));
    }

    #[test]
    fn interleaves_supervisors() {
        let c = ClusterSnapshot::planned(3, 2);
        let s = interleaved_free_slots(&c, &BTreeSet::new());
        let names: Vec<String> = s
            .iter()
            .map(|s| format!("{}:{}", s.supervisor, s.port))
            .collect();
        assert_eq!(
            names,
            [
                "sup-1:6700",
                "sup-2:6700",
                "sup-3:6700",
                "sup-1:6701",
                "sup-2:6701",
                "sup-3:6701"
            ]
        );
    }

    #[test]
    fn most_free_first() {
        let mut c = ClusterSnapshot::planned(2, 1);
        c.supervisors[1].ports = vec![6702, 6700, 6701];
        let s = interleaved_free_slots(&c, &BTreeSet::new());
        assert_eq!(
            s[0],
            Slot {
                supervisor: "sup-2".into(),
                port: 6700
            }
        );
        assert_eq!(
            s[1],
            Slot {
                supervisor: "sup-1".into(),
                port: 6700
            }
        );
    }

    #[test]
    fn dead_supervisor_executors_move_to_survivor() {
        let c = ClusterSnapshot::planned(2, 2);
        let first = schedule(&c, &[req("t", 2, 6)]);
        let a = &first["t"];
        assert_eq!(a.values().collect::<BTreeSet<_>>().len(), 2);
        let survivor = ClusterSnapshot {
            supervisors: vec![c.supervisors[0].clone()],
        };
        let mut r = req("t", 2, 6);
        r.current = a.clone();
        let second = schedule(&survivor, &[r]);
        let b = &second["t"];
        assert_eq!(b.len(), 6);
        assert!(b.values().all(|s| s.supervisor == "sup-1"));
        // Executors that were on sup-1 stayed where they were.
        for (e, s) in a {
            if s.supervisor == "sup-1" {
                assert_eq!(&b[e], s);
            }
        }
    }

    fn cluster_strategy() -> impl Strategy<Value = ClusterSnapshot> {
        proptest::collection::vec(1usize..5, 1..5).prop_map(|slots| ClusterSnapshot {
            supervisors: slots
                .iter()
                .enumerate()
                .map(|(i, n)| SupervisorInfo {
                    id: format!("s{i}"),
                    host: "h".into(),
                    ports: (0..*n as u16).map(|p| 6700 + p).collect(),
                    classes: None,
                })
                .collect(),
        })
    }

    proptest! {
        #[test]
        fn every_executor_once_no_slot_shared(c in cluster_strategy(), topos in proptest::collection::vec((1u32..6, 1u32..20), 1..4)) {
            let reqs: Vec<TopologyRequest> = topos.iter().enumerate().map(|(i, (w, n))| req(&format!("t{i}"), *w, *n)).collect();
            let out = schedule(&c, &reqs);
            let total_slots: usize = c.supervisors.iter().map(|s| s.ports.len()).sum();
            let mut owner: BTreeMap<Slot, String> = BTreeMap::new();
            let mut free = total_slots;
            for r in &reqs {
                let a = &out[&r.id];
                let slots: BTreeSet<&Slot> = a.values().collect();
                // Workers used = min(topology.workers, free slots) (and a worker needs an executor).
                prop_assert_eq!(slots.len(), (r.workers as usize).min(free).min(r.executors.len()));
                free -= slots.len();
                if !slots.is_empty() {
                    // Every executor exactly once (a map holds each key once; all are present).
                    prop_assert_eq!(a.len(), r.executors.len());
                }
                for s in slots {
                    // No slot runs workers of two topologies.
                    prop_assert!(owner.insert(s.clone(), r.id.clone()).is_none());
                    prop_assert!(c.has_slot(s));
                }
            }
        }

        #[test]
        fn stable_when_a_supervisor_is_added(c in cluster_strategy(), w in 1u32..6, n in 1u32..20) {
            let first = schedule(&c, &[req("t", w, n)]);
            let mut bigger = c.clone();
            bigger.supervisors.push(SupervisorInfo { id: "new".into(), host: "h".into(), ports: vec![6700, 6701], classes: None });
            let mut r = req("t", w, n);
            r.current = first["t"].clone();
            let second = schedule(&bigger, &[r]);
            if !first["t"].is_empty() {
                prop_assert_eq!(&first["t"], &second["t"]);
            }
        }

        #[test]
        fn executors_balanced_over_slots(c in cluster_strategy(), w in 1u32..6, n in 1u32..40) {
            let out = schedule(&c, &[req("t", w, n)]);
            let mut per: BTreeMap<&Slot, usize> = BTreeMap::new();
            for s in out["t"].values() { *per.entry(s).or_default() += 1; }
            let min = per.values().min().copied().unwrap_or(0);
            let max = per.values().max().copied().unwrap_or(0);
            prop_assert!(max - min <= 1);
        }
    }
}
