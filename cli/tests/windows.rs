//! Event-time windows end to end with the `gale` binary: the bundled topology on out-of-order
//! events, checked against a computation of its own.

#[path = "support/events.rs"]
mod events;

use events::{Windows, events, independent, read_late, read_windows, read_windows_once};
use std::collections::BTreeSet;
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
    (read_windows(&out), read_late(&late))
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

/// A stateful windowed bolt (`StatefulWindowCountBolt`, open windows checkpointed) with the
/// embedded store: `gale local` is killed with SIGKILL mid-stream, then run again with the same
/// state folder. Window rows written twice (fired after the last commit, again after the
/// rollback) must be equal; the rows, taken once each, equal an independent count.
#[test]
fn stateful_windows_are_exact_after_kill_9_and_a_second_run() {
    use std::time::{Duration, Instant};
    let dir = tmpdir("kill9");
    let input = events(&dir, 4_000_000);
    let yaml = std::fs::read_to_string(root().join("topologies/event-time-counts.yaml"))
        .expect("yaml")
        .replace(
            "className: \"WindowCountBolt\"",
            "className: \"StatefulWindowCountBolt\"",
        );
    let topo = dir.join("stateful-windows.yaml");
    std::fs::write(&topo, yaml).expect("yaml");
    let (out, late, state) = (
        dir.join("counts.tsv"),
        dir.join("late.tsv"),
        dir.join("state"),
    );
    let run = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gale"));
        c.arg("local")
            .arg(&topo)
            .args(["--state-dir", state.to_str().expect("path")])
            .args(["--set", "ackers=1", "--set", "slide.ms=5000"])
            .args(["--set", &format!("input={}", input.display())])
            .args(["--set", &format!("output={}", out.display())])
            .args(["--set", &format!("late={}", late.display())])
            .env("GALE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c
    };
    let mut first = run().spawn().expect("gale runs");
    let state_file = state.join("event-time-counts.redb");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) && !state_file.exists() {
        std::thread::sleep(Duration::from_millis(50));
    }
    // A checkpoint commits an interval (1 s) after the state is initialized: kill after it.
    std::thread::sleep(Duration::from_millis(1600));
    let _ = first.kill();
    let status = first.wait().expect("wait");
    assert!(
        !status.success(),
        "the first run ended before it was killed; make the input larger"
    );
    // A checkpoint had committed: the spout's position and the open windows are in the state.
    {
        use topology_api::state::StateProvider;
        let p = state_redb::EmbeddedProvider::open(&state_file).expect("state file");
        let committed = |ns: String, key: &[u8]| {
            p.open(&ns)
                .ok()?
                .load()
                .ok()?
                .committed
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
        };
        let line = (1..=32)
            .find_map(|t| committed(format!("events-{t}"), b"__position"))
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(&v).ok())
            .and_then(|v| v["line"].as_u64())
            .expect("a committed spout position");
        assert!(line > 0 && line < 4_000_000, "killed at line {line}");
        assert!(
            (1..=32).any(|t| committed(format!("counts-{t}"), b"__windows").is_some()),
            "open windows in the checkpoint"
        );
    }
    let o = run().output().expect("gale runs again");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Rows taken once each; a row written twice must say the same.
    let got = read_windows_once(&out, None);
    let (want, want_late) = independent(&input, 10_000, 5_000, 5_000);
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    let lates: BTreeSet<(i64, String)> = read_late(&late).into_iter().collect();
    assert_eq!(lates, want_late);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A windowed bolt after a windowed bolt, in event time: 10 s counts per key, then 30 s
/// windows over their rows, timed by each row's `windowEnd`. The second bolt's counts are the
/// number of non-empty 10 s windows of the key inside each 30 s window.
#[test]
fn a_windowed_bolt_after_a_windowed_bolt_works_in_event_time() {
    let dir = tmpdir("chain");
    let input = events(&dir, 20_000);
    let out = dir.join("out.tsv");
    let yaml = format!(
        "name: chain\nconfig:\n  topology.acker.executors: 0\n\
         spouts:\n  - id: events\n    className: FileLineSpout\n    properties: [{{name: path, value: \"{}\"}}]\n\
         bolts:\n  - id: parse\n    className: DelimitedLineBolt\n    parallelism: 2\n    properties: [{{name: fields, value: [ts, key]}}, {{name: intFields, value: [ts]}}]\n\
         \x20 - id: counts\n    className: WindowCountBolt\n    parallelism: 2\n    properties: [{{name: keyField, value: key}}, {{name: windowLengthMs, value: 10000}}, {{name: timestampField, value: ts}}, {{name: lagMs, value: 5000}}]\n\
         \x20 - id: coarse\n    className: WindowCountBolt\n    parallelism: 2\n    properties: [{{name: keyField, value: key}}, {{name: windowLengthMs, value: 30000}}, {{name: timestampField, value: windowEnd}}]\n\
         \x20 - id: out\n    className: FileSinkBolt\n    properties: [{{name: path, value: \"{}\"}}]\n\
         streams:\n  - {{from: events, to: parse, grouping: {{type: SHUFFLE}}}}\n  - {{from: parse, to: counts, grouping: {{type: FIELDS, args: [key]}}}}\n\
         \x20 - {{from: counts, to: coarse, grouping: {{type: FIELDS, args: [key]}}}}\n  - {{from: coarse, to: out, grouping: {{type: GLOBAL}}}}\n",
        input.display(),
        out.display()
    );
    let topo = dir.join("chain.yaml");
    std::fs::write(&topo, yaml).expect("yaml");
    let o = Command::new(env!("CARGO_BIN_EXE_gale"))
        .arg("local")
        .arg(&topo)
        .output()
        .expect("gale runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (fine, _) = independent(&input, 10_000, 10_000, 5_000);
    let mut want = Windows::new();
    for (key, _, end) in fine.keys() {
        let coarse_end = end + (30_000 - end.rem_euclid(30_000)) % 30_000;
        *want
            .entry((key.clone(), coarse_end - 30_000, coarse_end))
            .or_default() += 1;
    }
    let got = read_windows(&out);
    assert!(want.len() > 50, "{}", want.len());
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&dir);
}
