//! Stateful bolts end to end with the `gale` binary: the embedded store through `kill -9`.

#[path = "support/cluster.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::write_words;
use topology_api::state::{KeyValueState, StateProvider};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gale-state-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// What a namespace holds once recovery is done: its committed data, plus its prepared batch
/// when the checkpoint spout was committing that transaction (recovery commits it again).
fn recovered(p: &state_redb::EmbeddedProvider, ns: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let committing = (1..=32).find_map(|task| {
        let s = p
            .open(&format!("$checkpointspout-{task}"))
            .ok()?
            .load()
            .ok()?;
        let (_, v) = s.committed.iter().find(|(k, _)| k == b"__state")?;
        let progress: serde_json::Value = serde_json::from_slice(v).ok()?;
        (progress["phase"] == "Committing").then(|| progress["txid"].as_u64())?
    });
    let s = p.open(ns).expect("namespace").load().expect("load");
    let mut data: BTreeMap<Vec<u8>, Vec<u8>> = s.committed.into_iter().collect();
    if let (Some(t), Some((pt, changes))) = (committing, s.prepared)
        && t == pt
    {
        for (k, v) in changes {
            match v {
                Some(v) => data.insert(k, v),
                None => data.remove(&k),
            };
        }
    }
    data
}

/// The line the spout's position names (the lines before it are in the state).
fn committed_line(state_file: &Path) -> Option<u64> {
    let p = state_redb::EmbeddedProvider::open(state_file).expect("state file");
    (1..=32).find_map(|task| {
        let data = recovered(&p, &format!("lines-{task}"));
        let v = data.get(b"__position".as_slice())?;
        serde_json::from_slice::<serde_json::Value>(v).ok()?["line"].as_u64()
    })
}

/// Word counts of the first `n` lines of `path`.
fn count_prefix(path: &Path, n: u64) -> BTreeMap<String, i64> {
    let text = std::fs::read_to_string(path).expect("input");
    let mut out = BTreeMap::new();
    for line in text.lines().take(n as usize) {
        for w in line.split_whitespace() {
            *out.entry(w.to_owned()).or_insert(0) += 1;
        }
    }
    out
}

/// The committed counts of every `count` task in the state file.
fn committed_counts(state_file: &Path) -> BTreeMap<String, i64> {
    let p = state_redb::EmbeddedProvider::open(state_file).expect("state file");
    let mut all = BTreeMap::new();
    for task in 1..=32 {
        let ns = format!("count-{task}");
        let stored = topology_api::state::Stored {
            committed: recovered(&p, &ns).into_iter().collect(),
            ..Default::default()
        };
        let s: KeyValueState<String, i64> =
            KeyValueState::from_stored(&ns, &stored).expect("decode");
        for (k, v) in s.iter() {
            all.insert(k.clone(), *v);
        }
    }
    all
}

fn gale_local(input: &Path, state: &Path, output: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gale"));
    c.args([
        "local",
        "topologies/stateful-word-count.yaml",
        "--state-dir",
    ])
    .arg(state)
    .arg("--set")
    .arg(format!("input={}", input.display()))
    .arg("--set")
    .arg(format!("output={}", output.display()))
    .current_dir(support::root())
    .env("GALE_LOG", "warn")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

/// Exactly-once state in local mode: `gale local` is killed with SIGKILL mid-stream, then run
/// again with the same state folder; the committed counts equal an independent count of the
/// input, each word exactly (no line counted twice, none lost).
#[test]
fn counts_are_exact_after_kill_9_and_a_second_run() {
    let dir = tmpdir("kill9");
    let input = dir.join("in.txt");
    let want = write_words(&input, 400_000, 7);
    let state = dir.join("state");
    let state_file = state.join("stateful-word-count.redb");
    let output = dir.join("out.tsv");
    let mut first = gale_local(&input, &state, &output)
        .spawn()
        .expect("gale runs");
    // Killed once a checkpoint or two committed some of the input, well before the end.
    let start = Instant::now();
    let mut committed_before = 0;
    while start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(300));
        if first.try_wait().expect("wait").is_some() {
            break;
        }
        if state_file.exists() {
            // Reading the file while the run writes it: redb allows one process at a time, so
            // count by time instead: two checkpoint intervals after the file appeared.
            std::thread::sleep(Duration::from_millis(2500));
            committed_before = 1;
            break;
        }
    }
    let _ = first.kill();
    let status = first.wait().expect("wait");
    assert!(
        committed_before == 1 && !status.success(),
        "the first run ended before it was killed ({status}); make the input larger"
    );
    let mid = committed_counts(&state_file);
    let mid_total: i64 = mid.values().sum();
    // The state holds exactly the lines before the spout's position (Gale's promise: a
    // checkpoint is a consistent cut of the input).
    let line = committed_line(&state_file).expect("a committed position");
    assert_eq!(
        mid,
        count_prefix(&input, line),
        "state at the kill vs the lines before {line}"
    );
    let total: i64 = want.values().sum();
    assert!(
        mid_total > 0 && mid_total < total,
        "killed with {mid_total} of {total} words committed"
    );
    let second = gale_local(&input, &state, &output)
        .output()
        .expect("gale runs");
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let got = committed_counts(&state_file);
    assert_eq!(got, want, "counts after kill -9 and a second run");
    eprintln!(
        "killed with {mid_total} of {total} words committed (lines before {line}); after the second run every count is exact"
    );
}

/// One run to the end: the committed counts are exact.
#[test]
fn counts_are_exact_after_a_whole_run() {
    let dir = tmpdir("whole");
    let input = dir.join("in.txt");
    let want = write_words(&input, 100_000, 7);
    let state = dir.join("state");
    let o = gale_local(&input, &state, &dir.join("out.tsv"))
        .output()
        .expect("gale runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        committed_counts(&state.join("stateful-word-count.redb")),
        want
    );
}
