//! Event-time windows end to end with the `gale` binary: the bundled topology on out-of-order
//! events, checked against a computation of its own.

#[path = "support/events.rs"]
mod events;

use events::{Windows, events, independent, read_late, read_windows};
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
