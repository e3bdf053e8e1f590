//! Timestamped events for the window tests: an input like `scripts/gen-events.py` writes, and the
//! windows and late tuples an independent computation expects of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `count` events of 10 keys, ~10 ms apart, each written up to 5 s after its time, and every
/// 400th 60-120 s after it (late for a 5 s lag), as `scripts/gen-events.py` writes them.
pub fn events(dir: &Path, count: u32) -> PathBuf {
    let path = dir.join("events.tsv");
    let status = Command::new("python3")
        .arg(root().join("scripts/gen-events.py"))
        .arg(count.to_string())
        .arg(&path)
        .args([
            "--keys",
            "10",
            "--shuffle-ms",
            "5000",
            "--late-every",
            "400",
        ])
        .args(["--late-ms", "60000", "--seed", "11"])
        .status()
        .expect("python3 runs scripts/gen-events.py");
    assert!(status.success());
    path
}

pub type Windows = BTreeMap<(String, i64, i64), i64>;

/// The expected output, computed directly from the file: an event is late when its time is
/// older than the highest time before it minus the lag; every other event counts in each window
/// `(end - length, end]` (ends on multiples of the slide) that holds it.
pub fn independent(
    path: &Path,
    length: i64,
    slide: i64,
    lag: i64,
) -> (Windows, BTreeSet<(i64, String)>) {
    let text = std::fs::read_to_string(path).expect("events");
    let mut highest = i64::MIN;
    let mut windows = Windows::new();
    let mut late = BTreeSet::new();
    for line in text.lines() {
        let (ts, key) = line.split_once('\t').expect("ts<TAB>key");
        let ts: i64 = ts.parse().expect("ts");
        if highest != i64::MIN && ts < highest - lag {
            late.insert((ts, key.to_owned()));
            continue;
        }
        highest = highest.max(ts);
        let mut end = ts + (slide - ts.rem_euclid(slide)) % slide;
        while end - length < ts {
            *windows
                .entry((key.to_owned(), end - length, end))
                .or_default() += 1;
            end += slide;
        }
    }
    (windows, late)
}

/// The windows a sink file holds (`key, count, windowStart, windowEnd` lines); each once.
pub fn read_windows(out: &Path) -> Windows {
    let mut windows = Windows::new();
    for line in std::fs::read_to_string(out).unwrap_or_default().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let key = (
            f[0].to_owned(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        );
        let n: i64 = f[1].parse().unwrap();
        assert!(
            windows.insert(key.clone(), n).is_none(),
            "window {key:?} twice"
        );
    }
    windows
}

/// The late tuples a sink file holds: each its values as a list, `[ts, key]`.
pub fn read_late(late: &Path) -> Vec<(i64, String)> {
    let mut lates = Vec::new();
    for line in std::fs::read_to_string(late).unwrap_or_default().lines() {
        let inner = line.strip_prefix('[').and_then(|l| l.strip_suffix(']'));
        let (ts, key) = inner.and_then(|l| l.split_once(", ")).expect("[ts, key]");
        lates.push((ts.parse().expect("ts"), key.to_owned()));
    }
    lates.sort();
    lates
}

/// The windows a sink file holds, each taken once, ending before `horizon` if one is given: a
/// row written twice (a window fired again after a rollback) must say the same.
pub fn read_windows_once(out: &Path, horizon: Option<i64>) -> Windows {
    let mut got = Windows::new();
    for line in std::fs::read_to_string(out).unwrap_or_default().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let key = (
            f[0].to_owned(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        );
        if horizon.is_some_and(|h| key.2 >= h) {
            continue;
        }
        let n: i64 = f[1].parse().unwrap();
        if let Some(before) = got.insert(key.clone(), n) {
            assert_eq!(
                before, n,
                "window {key:?} fired twice with different counts"
            );
        }
    }
    got
}

/// On a cluster the input never ends: the windows to compare are those ending 20 s or more
/// before the watermark the last event brings (its time minus a 5 s lag). Returns that horizon
/// and `want`'s windows before it.
pub fn before_horizon(input: &Path, want: Windows) -> (i64, Windows) {
    let last = std::fs::read_to_string(input)
        .expect("events")
        .lines()
        .filter_map(|l| l.split_once('\t')?.0.parse::<i64>().ok())
        .max()
        .expect("events");
    let horizon = last - 5_000 - 20_000;
    let want = want
        .into_iter()
        .filter(|((_, _, end), _)| *end < horizon)
        .collect();
    (horizon, want)
}
