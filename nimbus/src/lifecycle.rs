//! A topology's lifecycle: Storm's status x action table, as one pure function.
//!
//! | status \ action | activate | deactivate | kill (wait)          | rebalance (wait)                | wait ends                    |
//! | --------------- | -------- | ---------- | -------------------- | ------------------------------- | ---------------------------- |
//! | ACTIVE          | ACTIVE   | INACTIVE   | KILLED, removal due  | REBALANCING, back to ACTIVE     | -                            |
//! | INACTIVE        | ACTIVE   | INACTIVE   | KILLED, removal due  | REBALANCING, back to INACTIVE   | -                            |
//! | REBALANCING     | refused  | refused    | KILLED, removal due  | REBALANCING, new counts and due | the status before, re-spread |
//! | KILLED          | refused  | refused    | KILLED, new due time | refused                         | removed                      |
//!
//! As Storm's (`nimbus` state transitions): a killed topology cannot come back, and a rebalancing
//! one takes only a kill or another rebalance until its wait ends. Nimbus's API applies the user's
//! actions with [`apply`]; its assignment loop applies [`Action::WaitEnded`] when the wait is due.

use cluster_state::{StormRecord, TopologyStatus};
use std::collections::BTreeMap;

/// What happens to a topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Activate,
    Deactivate,
    /// Deactivate, wait, remove.
    Kill {
        wait_secs: u64,
    },
    /// Deactivate, wait, re-spread with new counts (those given), back to the status before.
    Rebalance {
        wait_secs: u64,
        workers: Option<u32>,
        executors: BTreeMap<String, u32>,
    },
    /// A kill's or a rebalance's wait ended.
    WaitEnded,
}

/// What [`apply`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Store this record (and wake the assignment loop).
    Store(StormRecord),
    /// A rebalance's wait ended: store this record and re-spread every executor.
    Respread(StormRecord),
    /// A kill's wait ended: remove the topology.
    Remove,
    /// Nothing to do.
    Unchanged,
}

/// Why an action is refused in the topology's status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("topology \"{name}\" is {status}: {hint}")]
pub struct Refused {
    pub name: String,
    pub status: &'static str,
    pub hint: &'static str,
}

/// Applies `action` at `now` (epoch seconds) to a topology in `storm`'s status.
pub fn apply(storm: &StormRecord, action: &Action, now: u64) -> Result<Outcome, Refused> {
    use TopologyStatus::*;
    let refuse = |hint| Refused {
        name: storm.name.clone(),
        status: storm.status.as_str(),
        hint,
    };
    let mut next = storm.clone();
    match (storm.status, action) {
        (Killed, Action::Activate | Action::Deactivate | Action::Rebalance { .. }) => Err(refuse(
            "it is being killed; submit it again once it is gone",
        )),
        (Rebalancing, Action::Activate | Action::Deactivate) => Err(refuse(
            "wait until the rebalance ends (or kill it); it then returns to its status before",
        )),
        (Active | Inactive, Action::Activate) => {
            next.status = Active;
            Ok(store_if_changed(storm, next))
        }
        (Active | Inactive, Action::Deactivate) => {
            next.status = Inactive;
            Ok(store_if_changed(storm, next))
        }
        (_, Action::Kill { wait_secs }) => {
            next.status = Killed;
            next.action_at_secs = Some(now.saturating_add(*wait_secs));
            Ok(Outcome::Store(next))
        }
        (
            _,
            Action::Rebalance {
                wait_secs,
                workers,
                executors,
            },
        ) => {
            if storm.status != Rebalancing {
                next.prev_status = Some(storm.status);
            }
            next.status = Rebalancing;
            next.action_at_secs = Some(now.saturating_add(*wait_secs));
            if let Some(w) = workers {
                next.workers = *w;
            }
            next.component_executors
                .extend(executors.iter().map(|(c, n)| (c.clone(), *n)));
            Ok(Outcome::Store(next))
        }
        (_, Action::WaitEnded) if storm.action_at_secs.is_none_or(|t| t > now) => {
            Ok(Outcome::Unchanged)
        }
        (Killed, Action::WaitEnded) => Ok(Outcome::Remove),
        (Rebalancing, Action::WaitEnded) => {
            next.status = next.prev_status.take().unwrap_or(Active);
            next.action_at_secs = None;
            Ok(Outcome::Respread(next))
        }
        (Active | Inactive, Action::WaitEnded) => Ok(Outcome::Unchanged),
    }
}

fn store_if_changed(before: &StormRecord, after: StormRecord) -> Outcome {
    if *before == after {
        Outcome::Unchanged
    } else {
        Outcome::Store(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TopologyStatus::*;

    fn storm(
        status: TopologyStatus,
        due: Option<u64>,
        prev: Option<TopologyStatus>,
    ) -> StormRecord {
        StormRecord {
            name: "t".into(),
            status,
            launch_time_secs: 0,
            workers: 2,
            component_executors: BTreeMap::from([("split".to_string(), 2)]),
            action_at_secs: due,
            prev_status: prev,
        }
    }

    fn kill() -> Action {
        Action::Kill { wait_secs: 5 }
    }

    fn rebalance() -> Action {
        Action::Rebalance {
            wait_secs: 3,
            workers: Some(4),
            executors: BTreeMap::from([("split".to_string(), 3)]),
        }
    }

    /// What the outcome is, as (status after, due time, prev status) or a word.
    fn describe(o: &Result<Outcome, Refused>) -> String {
        match o {
            Err(_) => "refused".into(),
            Ok(Outcome::Unchanged) => "unchanged".into(),
            Ok(Outcome::Remove) => "remove".into(),
            Ok(Outcome::Store(s)) => format!("{} due={:?}", s.status.as_str(), s.action_at_secs),
            Ok(Outcome::Respread(s)) => format!("respread {}", s.status.as_str()),
        }
    }

    #[test]
    fn storms_status_by_action_table() {
        let now = 100;
        // (status, due, prev, action, outcome)
        let cases: Vec<(StormRecord, Action, &str)> = vec![
            (storm(Active, None, None), Action::Activate, "unchanged"),
            (
                storm(Active, None, None),
                Action::Deactivate,
                "INACTIVE due=None",
            ),
            (storm(Active, None, None), kill(), "KILLED due=Some(105)"),
            (
                storm(Active, None, None),
                rebalance(),
                "REBALANCING due=Some(103)",
            ),
            (storm(Active, None, None), Action::WaitEnded, "unchanged"),
            (
                storm(Inactive, None, None),
                Action::Activate,
                "ACTIVE due=None",
            ),
            (storm(Inactive, None, None), Action::Deactivate, "unchanged"),
            (storm(Inactive, None, None), kill(), "KILLED due=Some(105)"),
            (
                storm(Inactive, None, None),
                rebalance(),
                "REBALANCING due=Some(103)",
            ),
            (
                storm(Rebalancing, Some(103), Some(Inactive)),
                Action::Activate,
                "refused",
            ),
            (
                storm(Rebalancing, Some(103), Some(Inactive)),
                Action::Deactivate,
                "refused",
            ),
            (
                storm(Rebalancing, Some(103), Some(Inactive)),
                kill(),
                "KILLED due=Some(105)",
            ),
            (
                storm(Rebalancing, Some(103), Some(Inactive)),
                rebalance(),
                "REBALANCING due=Some(103)",
            ),
            (
                storm(Rebalancing, Some(103), Some(Inactive)),
                Action::WaitEnded,
                "unchanged",
            ),
            (
                storm(Rebalancing, Some(100), Some(Inactive)),
                Action::WaitEnded,
                "respread INACTIVE",
            ),
            (
                storm(Rebalancing, Some(90), None),
                Action::WaitEnded,
                "respread ACTIVE",
            ),
            (storm(Killed, Some(105), None), Action::Activate, "refused"),
            (
                storm(Killed, Some(105), None),
                Action::Deactivate,
                "refused",
            ),
            (storm(Killed, Some(105), None), rebalance(), "refused"),
            (
                storm(Killed, Some(200), None),
                kill(),
                "KILLED due=Some(105)",
            ),
            (
                storm(Killed, Some(105), None),
                Action::WaitEnded,
                "unchanged",
            ),
            (storm(Killed, Some(100), None), Action::WaitEnded, "remove"),
        ];
        for (s, a, want) in &cases {
            let got = apply(s, a, now);
            assert_eq!(describe(&got), *want, "{} + {a:?}", s.status.as_str());
        }
    }

    #[test]
    fn a_rebalance_remembers_the_status_before_and_takes_new_counts() {
        let Ok(Outcome::Store(r)) = apply(&storm(Inactive, None, None), &rebalance(), 0) else {
            panic!("stored")
        };
        assert_eq!(r.prev_status, Some(Inactive));
        assert_eq!(r.workers, 4);
        assert_eq!(r.component_executors["split"], 3);
        // A second rebalance keeps the status from before the first.
        let Ok(Outcome::Store(r2)) = apply(&r, &rebalance(), 0) else {
            panic!("stored")
        };
        assert_eq!(r2.prev_status, Some(Inactive));
        let Ok(Outcome::Respread(back)) = apply(&r2, &Action::WaitEnded, 10) else {
            panic!("respread")
        };
        assert_eq!((back.status, back.action_at_secs), (Inactive, None));
    }

    #[test]
    fn refusals_say_what_to_do() {
        let e = apply(&storm(Killed, Some(1), None), &Action::Activate, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "topology \"t\" is KILLED: it is being killed; submit it again once it is gone"
        );
    }
}
