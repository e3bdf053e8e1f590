//! Event-time windows on a cluster of real processes (ZooKeeper, Nimbus, two Supervisors): the
//! window bolt's upstream (the parse bolt) runs on both workers, so each window task takes its
//! watermark from tasks on two hosts. The windows that fired and the late tuples must equal an
//! independent computation.

#[path = "support/cluster.rs"]
mod support;

#[path = "support/events.rs"]
mod events;

use events::{events, independent, read_late, read_windows};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

fn topology(dir: &Path, input: &Path, out: &Path, late: &Path) -> PathBuf {
    let yaml = format!(
        "name: windows\nconfig:\n  topology.workers: 2\n  topology.acker.executors: 0\n\
         spouts:\n  - id: events\n    className: FileLineSpout\n    properties: [{{name: path, value: \"{}\"}}]\n\
         bolts:\n  - id: parse\n    className: DelimitedLineBolt\n    parallelism: 2\n    properties: [{{name: fields, value: [ts, key]}}, {{name: intFields, value: [ts]}}]\n\
         \x20 - id: counts\n    className: WindowCountBolt\n    parallelism: 2\n    properties: [{{name: keyField, value: key}}, {{name: windowLengthMs, value: 10000}}, {{name: slidingIntervalMs, value: 5000}}, {{name: timestampField, value: ts}}, {{name: lagMs, value: 5000}}, {{name: lateTupleStream, value: late}}]\n\
         \x20 - id: out\n    className: FileSinkBolt\n    properties: [{{name: path, value: \"{}\"}}]\n\
         \x20 - id: late\n    className: FileSinkBolt\n    properties: [{{name: path, value: \"{}\"}}]\n\
         streams:\n  - {{from: events, to: parse, grouping: {{type: SHUFFLE}}}}\n  - {{from: parse, to: counts, grouping: {{type: FIELDS, args: [key]}}}}\n\
         \x20 - {{from: counts, to: out, grouping: {{type: GLOBAL}}}}\n  - {{from: counts, to: late, grouping: {{type: GLOBAL, streamId: late}}}}\n",
        input.display(),
        out.display(),
        late.display(),
    );
    std::fs::create_dir_all(dir.join("topo")).expect("dir");
    let p = dir.join("topo/windows.yaml");
    std::fs::write(&p, yaml).expect("yaml");
    p
}

/// 20,000 events out of order by up to 5 s, every 400th 60-120 s late; sliding 10 s windows by
/// 5 s per key, 5 s lag. On a cluster the input never ends, so the windows compared are those
/// ending 20 s or more before the last event (every upstream task's watermark passed them).
#[test]
fn event_time_windows_on_two_workers_match_an_independent_count() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::start("windows", &["sup-a", "sup-b"]);
    let input = events(&c.dir, 20_000);
    let (out, late) = (c.dir.join("counts.tsv"), c.dir.join("late.tsv"));
    let yaml = topology(&c.dir, &input, &out, &late);
    let o = c.gale(&["submit", yaml.to_str().expect("path")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(Duration::from_secs(60), "parse on both hosts", || {
        let t = c.topology("windows");
        let hosts: BTreeSet<String> = t["assignment"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| r["component"] == "parse")
                    .filter_map(|r| r["supervisor"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        hosts.len() == 2
    });
    let (want, want_late) = independent(&input, 10_000, 5_000, 5_000);
    let (horizon, want) = events::before_horizon(&input, want);
    assert!(
        want.len() > 300,
        "enough windows to compare: {}",
        want.len()
    );
    let mut got = events::Windows::new();
    wait_until(
        Duration::from_secs(120),
        "every window before the horizon",
        || {
            got = read_windows(&out)
                .into_iter()
                .filter(|((_, _, end), _)| *end < horizon)
                .collect();
            got.len() >= want.len() && read_late(&late).len() >= want_late.len()
        },
    );
    assert_eq!(got, want, "windows before the horizon");
    let lates = read_late(&late);
    let unique: BTreeSet<(i64, String)> = lates.iter().cloned().collect();
    assert_eq!(unique.len(), lates.len(), "each late tuple once");
    assert_eq!(unique, want_late);
    wait_until(
        Duration::from_secs(30),
        "every event executed by a window task",
        || stat(&c.topology("windows"), "counts", "executed") == 20_000,
    );
}
