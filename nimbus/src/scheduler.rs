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

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use topology_api::layout::ExecutorId;

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
                })
                .collect(),
        }
    }

    fn has_slot(&self, s: &Slot) -> bool {
        self.supervisors
            .iter()
            .any(|sup| sup.id == s.supervisor && sup.ports.contains(&s.port))
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
    for t in topologies {
        let valid: BTreeSet<ExecutorId> = t.executors.iter().copied().collect();
        let keep: Assignment = t
            .current
            .iter()
            .filter(|(e, s)| valid.contains(e) && cluster.has_slot(s) && !used.contains(*s))
            .map(|(e, s)| (*e, s.clone()))
            .collect();
        used.extend(keep.values().cloned());
        healthy.insert(&t.id, keep);
    }

    let mut out = BTreeMap::new();
    for t in topologies {
        let keep = healthy.remove(t.id.as_str()).unwrap_or_default();
        let alive_slots: BTreeSet<Slot> = keep.values().cloned().collect();
        let free = interleaved_free_slots(cluster, &used);
        let want = (t.workers as usize).max(1);
        let total = want.min(free.len() + alive_slots.len());
        let mut pending: Vec<ExecutorId> = t
            .executors
            .iter()
            .filter(|e| !keep.contains_key(e))
            .copied()
            .collect();
        pending.sort();
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

/// Free slots in Storm's order: per supervisor ports ascending; supervisors with the most free
/// slots first (ties by id); then interleaved round-robin across supervisors.
pub fn interleaved_free_slots(cluster: &ClusterSnapshot, used: &BTreeSet<Slot>) -> Vec<Slot> {
    let mut per_sup: Vec<(String, Vec<u16>)> = cluster
        .supervisors
        .iter()
        .map(|s| {
            let mut ports: Vec<u16> = s
                .ports
                .iter()
                .copied()
                .filter(|p| {
                    !used.contains(&Slot {
                        supervisor: s.id.clone(),
                        port: *p,
                    })
                })
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
        }
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
            bigger.supervisors.push(SupervisorInfo { id: "new".into(), host: "h".into(), ports: vec![6700, 6701] });
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
