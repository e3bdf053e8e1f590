//! Event-time windows end to end with the `gale` binary: the bundled topology on out-of-order
//! events, checked against a computation of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gale-windows-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// `count` events of 10 keys, ~10 ms apart, each written up to 5 s after its time, and every
/// 400th 60-120 s after it (late for a 5 s lag), as `scripts/gen-events.py` writes them.
fn events(dir: &Path, count: u32) -> PathBuf {
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

type Windows = BTreeMap<(String, i64, i64), i64>;

/// The expected output, computed directly from the file: an event is late when its time is
/// older than the highest time before it minus the lag; every other event counts in each window
/// `(end - length, end]` (ends on multiples of the slide) that holds it.
fn independent(
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

/// Runs the bundled topology; returns its windows and late tuples.
fn run(dir: &Path, input: &Path, window_ms: i64, slide_ms: i64) -> (Windows, Vec<(i64, String)>) {
    let out = dir.join(format!("counts-{slide_ms}.tsv"));
    let late = dir.join(format!("late-{slide_ms}.tsv"));
    let o = Command::new(env!("CARGO_BIN_EXE_gale"))
        .arg("local")
        .arg(root().join("topologies/event-time-counts.yaml"))
        .args(["--set", &format!("input={}", input.display())])
        .args(["--set", &format!("output={}", out.display())])
        .args(["--set", &format!("late={}", late.display())])
        .args(["--set", &format!("window.ms={window_ms}")])
        .args(["--set", &format!("slide.ms={slide_ms}")])
        .output()
        .expect("gale runs");
    assert!(
        o.status.success(),
        "gale local failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut windows = Windows::new();
    for line in std::fs::read_to_string(&out).expect("counts").lines() {
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
    // Each late tuple is its values as a list: [ts, key].
    let mut lates = Vec::new();
    for line in std::fs::read_to_string(&late).unwrap_or_default().lines() {
        let inner = line.strip_prefix('[').and_then(|l| l.strip_suffix(']'));
        let (ts, key) = inner.and_then(|l| l.split_once(", ")).expect("[ts, key]");
        lates.push((ts.parse().expect("ts"), key.to_owned()));
    }
    lates.sort();
    (windows, lates)
}

#[test]
fn event_time_windows_match_an_independent_count_and_late_tuples_arrive_once() {
    let dir = tmpdir("local");
    let input = events(&dir, 20_000);
    for (length, slide) in [(10_000, 10_000), (10_000, 5_000)] {
        let (expect, expect_late) = independent(&input, length, slide, 5_000);
        assert!(expect_late.len() >= 40, "the input has late events");
        let (got, late) = run(&dir, &input, length, slide);
        assert_eq!(
            got.len(),
            expect.len(),
            "windows (length {length}, slide {slide})"
        );
        assert_eq!(got, expect, "counts (length {length}, slide {slide})");
        let unique: BTreeSet<(i64, String)> = late.iter().cloned().collect();
        assert_eq!(unique.len(), late.len(), "each late tuple once");
        assert_eq!(unique, expect_late);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
