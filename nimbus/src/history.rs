//! Stats windows (Storm UI's `600`, `10800`, `86400`, `:all-time`): Nimbus samples each
//! component's counters over time and answers a window with the difference between now and the
//! sample a window ago.
//!
//! Samples are kept in two tiers per topology: every [`FINE_EVERY`] seconds for the last
//! [`FINE_KEEP`] seconds (the 10-minute window, to within 5 s), and every [`COARSE_EVERY`]
//! seconds for a day (the 3-hour and 1-day windows, to within a minute). When the history is
//! shorter than the window (a topology younger than it, or a Nimbus started since), the window
//! starts at the oldest sample: it counts what happened since this Nimbus first saw the
//! topology. The history is in memory: a Nimbus that restarts starts it again.

use crate::view::{ClusterView, ComponentStats};
use std::collections::{BTreeMap, HashMap, VecDeque};

pub const FINE_EVERY: u64 = 5;
pub const FINE_KEEP: u64 = 660;
pub const COARSE_EVERY: u64 = 60;
pub const COARSE_KEEP: u64 = 86_400 + 120;

/// Storm's windows: (the `window` parameter, its length in seconds, `windowPretty`).
pub const WINDOWS: [(&str, Option<u64>, &str); 4] = [
    ("600", Some(600), "10m 0s"),
    ("10800", Some(10_800), "3h 0m 0s"),
    ("86400", Some(86_400), "1d 0h 0m 0s"),
    (":all-time", None, "All time"),
];

/// The window a `?window=` value names (absent: all time, as Storm's UI defaults), or an error
/// that lists the valid ones.
pub fn parse_window(w: Option<&str>) -> Result<(&'static str, Option<u64>, &'static str), String> {
    let w = w.unwrap_or(":all-time");
    WINDOWS
        .iter()
        .find(|(k, _, _)| *k == w || (w == "all-time" && *k == ":all-time"))
        .copied()
        .ok_or_else(|| {
            format!(
                "unknown window \"{w}\": use one of {}",
                WINDOWS.map(|(k, _, _)| k).join(", ")
            )
        })
}

/// The counters a window is the difference of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub emitted: u64,
    pub executed: u64,
    pub acked: u64,
    pub failed: u64,
    pub busy_us: u64,
}

impl Counts {
    fn of(s: &ComponentStats) -> Counts {
        Counts {
            emitted: s.emitted,
            executed: s.executed,
            acked: s.acked,
            failed: s.failed,
            busy_us: s.busy_us,
        }
    }

    /// `self - earlier`, each counter at least 0 (counters of a lost worker leave the totals).
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            emitted: self.emitted.saturating_sub(earlier.emitted),
            executed: self.executed.saturating_sub(earlier.executed),
            acked: self.acked.saturating_sub(earlier.acked),
            failed: self.failed.saturating_sub(earlier.failed),
            busy_us: self.busy_us.saturating_sub(earlier.busy_us),
        }
    }
}

type Sample = (u64, BTreeMap<String, Counts>);

#[derive(Debug, Default)]
struct Series {
    fine: VecDeque<Sample>,
    coarse: VecDeque<Sample>,
}

#[derive(Debug, Default)]
pub struct History {
    topologies: HashMap<String, Series>,
}

impl History {
    /// Samples every topology of `view` at `now` (seconds); forgets topologies no longer in it.
    pub fn record(&mut self, now: u64, view: &ClusterView) {
        self.topologies
            .retain(|id, _| view.topologies.iter().any(|t| &t.id == id));
        for t in &view.topologies {
            let counts: BTreeMap<String, Counts> = t
                .components
                .iter()
                .map(|c| {
                    (
                        c.id.clone(),
                        c.stats.as_ref().map(Counts::of).unwrap_or_default(),
                    )
                })
                .collect();
            let s = self.topologies.entry(t.id.clone()).or_default();
            if s.fine.back().is_none_or(|(at, _)| now >= at + FINE_EVERY) {
                s.fine.push_back((now, counts.clone()));
            }
            while s
                .fine
                .front()
                .is_some_and(|(at, _)| now.saturating_sub(*at) > FINE_KEEP)
            {
                s.fine.pop_front();
            }
            if s.coarse
                .back()
                .is_none_or(|(at, _)| now >= at + COARSE_EVERY)
            {
                s.coarse.push_back((now, counts));
            }
            while s
                .coarse
                .front()
                .is_some_and(|(at, _)| now.saturating_sub(*at) > COARSE_KEEP)
            {
                s.coarse.pop_front();
            }
        }
    }

    /// The sample the window `secs` long ending at `now` starts from: the newest at or before
    /// `now - secs`, else the oldest kept. With its time.
    fn base(&self, topology: &str, now: u64, secs: u64) -> Option<&Sample> {
        let s = self.topologies.get(topology)?;
        let start = now.saturating_sub(secs);
        // The newest sample of either tier at or before the start (the fine tier has the
        // recent ones, the coarse the old ones).
        let newest_before = |tier: &VecDeque<Sample>| -> Option<(u64, usize)> {
            tier.iter()
                .enumerate()
                .rev()
                .find(|(_, (at, _))| *at <= start)
                .map(|(i, (at, _))| (*at, i))
        };
        let fine = newest_before(&s.fine).map(|(at, i)| (at, &s.fine[i]));
        let coarse = newest_before(&s.coarse).map(|(at, i)| (at, &s.coarse[i]));
        [fine, coarse]
            .into_iter()
            .flatten()
            .max_by_key(|(at, _)| *at)
            .map(|(_, sample)| sample)
            .or_else(|| {
                // The history is shorter than the window: from its oldest sample.
                [s.fine.front(), s.coarse.front()]
                    .into_iter()
                    .flatten()
                    .min_by_key(|(at, _)| *at)
            })
    }

    /// Replaces each component's counters in `view` with their growth over the window `secs`
    /// long ending at `now`, and its execute latency and capacity with theirs over the same
    /// window (over the history's length when that is shorter).
    pub fn apply(&self, view: &mut ClusterView, now: u64, secs: u64) {
        for t in &mut view.topologies {
            let Some((at, base)) = self.base(&t.id, now, secs) else {
                continue;
            };
            let span = now.saturating_sub(*at).max(1);
            for c in &mut t.components {
                let Some(st) = c.stats.as_mut() else { continue };
                let d = Counts::of(st).since(&base.get(&c.id).copied().unwrap_or_default());
                st.emitted = d.emitted;
                st.executed = d.executed;
                st.acked = d.acked;
                st.failed = d.failed;
                st.busy_us = d.busy_us;
                st.execute_latency_ms = (d.executed > 0 && d.busy_us > 0)
                    .then(|| d.busy_us as f64 / d.executed as f64 / 1000.0);
                // Storm's capacity: executed x execute latency / window, per executor.
                st.capacity = (d.busy_us > 0).then(|| {
                    (d.busy_us as f64 / (span as f64 * 1e6 * c.executors.max(1) as f64)).min(1.0)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{ComponentView, TopologyView};
    use proptest::prelude::*;

    fn view(executed: u64) -> ClusterView {
        ClusterView {
            supervisors: Vec::new(),
            topologies: vec![TopologyView {
                id: "t-1".into(),
                name: "t".into(),
                status: "ACTIVE".into(),
                uptime_secs: 0,
                workers: 1,
                executors: 1,
                tasks: 1,
                components: vec![ComponentView {
                    id: "count".into(),
                    kind: "bolt".into(),
                    executors: 1,
                    tasks: 1,
                    stats: Some(ComponentStats {
                        executed,
                        emitted: executed * 2,
                        busy_us: executed,
                        ..ComponentStats::default()
                    }),
                    last_error: None,
                    executor_stats: Vec::new(),
                }],
                assignment: Vec::new(),
                streams: Vec::new(),
                last_error: None,
            }],
        }
    }

    fn executed(v: &ClusterView) -> u64 {
        v.topologies[0].components[0]
            .stats
            .as_ref()
            .map_or(0, |s| s.executed)
    }

    #[test]
    fn windows_are_named_as_storms_and_a_bad_one_is_refused() {
        assert_eq!(parse_window(None).map(|w| w.0), Ok(":all-time"));
        assert_eq!(parse_window(Some("600")).map(|w| w.1), Ok(Some(600)));
        assert_eq!(parse_window(Some("86400")).map(|w| w.2), Ok("1d 0h 0m 0s"));
        let e = parse_window(Some("60")).unwrap_err();
        assert!(e.contains("600, 10800, 86400, :all-time"), "{e}");
    }

    #[test]
    fn a_window_is_the_growth_since_its_start() {
        let mut h = History::default();
        // 100 tuples a second for an hour, sampled every second.
        for s in 0..=3600 {
            h.record(1_000 + s, &view(100 * s));
        }
        let now = 1_000 + 3600;
        // (window, executed in it): the fine tier answers 600 to 5 s, the coarse 10800 from
        // the oldest sample (the history is one hour long).
        for (secs, want) in [(600, 60_000), (10_800, 360_000), (86_400, 360_000)] {
            let mut v = view(360_000);
            h.apply(&mut v, now, secs);
            assert_eq!(executed(&v), want, "window {secs}");
            let st = v.topologies[0].components[0]
                .stats
                .clone()
                .unwrap_or_default();
            assert_eq!(st.emitted, want * 2);
            let cap = st.capacity.unwrap_or(0.0);
            // busy 100 us a second: capacity 1e-4.
            assert!((cap - 1e-4).abs() < 2e-6, "window {secs}: capacity {cap}");
        }
    }

    #[test]
    fn a_restarted_history_counts_from_its_first_sample_and_forgets_gone_topologies() {
        let mut h = History::default();
        // Nimbus started when the topology had already executed 5,000.
        h.record(100, &view(5_000));
        h.record(160, &view(6_000));
        let mut v = view(6_000);
        h.apply(&mut v, 160, 600);
        assert_eq!(executed(&v), 1_000, "below the all-time 6,000");
        h.record(
            200,
            &ClusterView {
                supervisors: Vec::new(),
                topologies: Vec::new(),
            },
        );
        assert!(h.topologies.is_empty());
    }

    proptest! {
        /// Whatever the sampling times, a window's counts never exceed all-time, and grow with
        /// the window's length.
        #[test]
        fn windows_are_monotone_and_below_all_time(gaps in proptest::collection::vec(1u64..400, 1..300)) {
            let mut h = History::default();
            let (mut now, mut n) = (10_000u64, 0u64);
            for g in &gaps {
                now += g;
                n += g * 7;
                h.record(now, &view(n));
            }
            let mut last = 0;
            for (_, secs, _) in WINDOWS.iter().take(3) {
                let mut v = view(n);
                h.apply(&mut v, now, secs.unwrap_or(0));
                let got = executed(&v);
                prop_assert!(got <= n);
                prop_assert!(got >= last);
                last = got;
            }
        }
    }
}
