//! Task ids and executor ranges, exactly as Storm numbers them.
//!
//! Task ids start at 1 and are handed out per component in sorted component-id order, system
//! component `__acker` included. A component's tasks are split into contiguous executor ranges,
//! bigger ranges first (4 tasks over 2 executors = [1-2][3-4]; 10 over 3 = [1-4][5-7][8-10]).

use crate::Topology;
use serde::{Deserialize, Serialize};

/// Component id of the acker tasks.
pub const ACKER_ID: &str = "__acker";

/// An executor: a contiguous, inclusive range of task ids of one component.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct ExecutorId {
    pub start: u32,
    pub end: u32,
}

impl ExecutorId {
    pub fn tasks(&self) -> std::ops::RangeInclusive<u32> {
        self.start..=self.end
    }
    pub fn task_count(&self) -> u32 {
        self.end - self.start + 1
    }
}

impl std::fmt::Display for ExecutorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}-{}]", self.start, self.end)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    Spout,
    Bolt,
    /// A system component such as `__acker`.
    System,
}

impl ComponentKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ComponentKind::Spout => "spout",
            ComponentKind::Bolt => "bolt",
            ComponentKind::System => "system",
        }
    }
}

/// The tasks and executors of one component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentTasks {
    pub id: String,
    pub kind: ComponentKind,
    pub first_task: u32,
    pub num_tasks: u32,
    pub executors: Vec<ExecutorId>,
}

impl ComponentTasks {
    pub fn task_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.first_task..self.first_task + self.num_tasks
    }
}

/// Splits `num_tasks` tasks starting at `first` over `executors` executors (capped at the task
/// count), bigger ranges first.
pub fn executor_ranges(first: u32, num_tasks: u32, executors: u32) -> Vec<ExecutorId> {
    let executors = executors.clamp(1, num_tasks.max(1));
    let base = num_tasks / executors;
    let extra = num_tasks % executors;
    let mut out = Vec::with_capacity(executors as usize);
    let mut start = first;
    for i in 0..executors {
        let n = base + u32::from(i < extra);
        out.push(ExecutorId {
            start,
            end: start + n - 1,
        });
        start += n;
    }
    out
}

/// The full layout of a topology: every component (with `__acker` when `ackers > 0`), sorted by id,
/// with task ids from 1.
pub fn task_layout(topology: &Topology, ackers: u32) -> Vec<ComponentTasks> {
    let mut comps: Vec<(String, ComponentKind, u32, u32)> = topology
        .components()
        .map(|c| {
            let kind = if c.is_spout {
                ComponentKind::Spout
            } else {
                ComponentKind::Bolt
            };
            (c.id.clone(), kind, c.num_tasks, c.parallelism)
        })
        .collect();
    if ackers > 0 {
        comps.push((ACKER_ID.to_owned(), ComponentKind::System, ackers, ackers));
    }
    comps.sort_by(|a, b| a.0.cmp(&b.0));
    let mut next = 1;
    comps
        .into_iter()
        .map(|(id, kind, tasks, par)| {
            let c = ComponentTasks {
                id,
                kind,
                first_task: next,
                num_tasks: tasks,
                executors: executor_ranges(next, tasks, par),
            };
            next += tasks;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(v: &[ExecutorId]) -> Vec<(u32, u32)> {
        v.iter().map(|e| (e.start, e.end)).collect()
    }

    #[test]
    fn storm_executor_ranges() {
        let cases: &[(u32, u32, u32, &[(u32, u32)])] = &[
            (1, 4, 2, &[(1, 2), (3, 4)]),
            (1, 10, 3, &[(1, 4), (5, 7), (8, 10)]),
            (5, 1, 1, &[(5, 5)]),
            (1, 3, 3, &[(1, 1), (2, 2), (3, 3)]),
            (1, 2, 5, &[(1, 1), (2, 2)]),
        ];
        for (first, tasks, execs, want) in cases {
            assert_eq!(
                ranges(&executor_ranges(*first, *tasks, *execs)),
                *want,
                "{tasks} over {execs}"
            );
        }
    }
}
