//! Table tests for Flux YAML validation: every message, with its exact line and column.

use components::Builtins;
use flux::{Substitutions, load_bytes};
use topology_api::Registry;

const BASE: &str = r#"name: "wc"
spouts:
  - id: "sentences"
    className: "RandomSentenceSpout"
bolts:
  - id: "split"
    className: "SplitSentenceBolt"
    parallelism: 2
  - id: "count"
    className: "WordCountBolt"
streams:
  - from: "sentences"
    to: "split"
    grouping:
      type: SHUFFLE
  - from: "split"
    to: "count"
    grouping:
      type: FIELDS
      args: ["word"]
"#;

fn errors(text: &str) -> Vec<String> {
    match load_bytes(
        "t.yaml",
        text.as_bytes(),
        &Registry::with_builtins(),
        &Substitutions::default(),
        &|_| None,
    ) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn base_is_valid() {
    assert_eq!(errors(BASE), Vec::<String>::new());
}

#[test]
fn each_problem_is_located() {
    // (what to replace in BASE, replacement, expected message lines)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "    to: \"count\"",
            "    to: \"cnt\"",
            &[
                "t.yaml:17:9: stream: unknown component \"cnt\" in `to`; did you mean \"count\"? (known: count, sentences, split)",
            ],
        ),
        (
            "type: SHUFFLE",
            "type: SHUFLE",
            &[
                "t.yaml:15:13: stream: unknown grouping type \"SHUFLE\"; did you mean SHUFFLE? (valid: SHUFFLE, FIELDS, ALL, GLOBAL, NONE, DIRECT, LOCAL_OR_SHUFFLE, PARTIAL_KEY)",
            ],
        ),
        (
            "parallelism: 2",
            "parallelism: two",
            &["t.yaml:8:18: `parallelism`: expected a positive whole number, found string \"two\""],
        ),
        (
            "parallelism: 2",
            "parallelism: 0",
            &["t.yaml:8:18: `parallelism` must be at least 1, found 0"],
        ),
        (
            "parallelism: 2",
            "parallelism: 3\n    numTasks: 2",
            &[
                "t.yaml:9:15: component \"split\": numTasks (2) is less than parallelism (3); an executor needs at least one task (Storm would silently run only 2 executors)",
            ],
        ),
        (
            "className: \"WordCountBolt\"",
            "className: \"WordCounter\"",
            &[
                "t.yaml:10:16: component \"count\": unknown className \"WordCounter\" (known: DelimitedLineBolt, FileLineSpout, FileSinkBolt, LogInfoBolt, RandomSentenceSpout, ShellBolt, ShellSpout, SleepBolt, SplitSentenceBolt, StatefulWindowCountBolt, StatefulWordCount, TestWordSpout, TsvSinkBolt, WindowCountBolt, WordCountBolt; Storm's Java names of these are accepted too)",
            ],
        ),
        (
            "args: [\"word\"]",
            "args: [\"wrod\"]",
            &[
                "t.yaml:20:13: stream: FIELDS grouping on field \"wrod\", but stream \"default\" of \"split\" declares fields [word]",
            ],
        ),
        (
            "parallelism: 2",
            "paralelism: 2",
            &[
                "t.yaml:8:5: unknown key `paralelism` in an entry of `bolts`; did you mean `parallelism`? (valid keys: id, className, parallelism, numTasks, constructorArgs, properties, configMethods)",
            ],
        ),
        (
            "  - id: \"count\"",
            "  - id: \"split\"",
            &[
                "t.yaml:9:9: duplicate component id \"split\" (first defined at line 6, column 9)",
                "t.yaml:17:9: stream: unknown component \"count\" in `to` (known: sentences, split)",
            ],
        ),
        (
            "  - id: \"count\"",
            "  - id: \"__count\"",
            &[
                "t.yaml:9:9: component id \"__count\" starts with \"__\", which is reserved for system components",
                "t.yaml:17:9: stream: unknown component \"count\" in `to`; did you mean \"__count\"? (known: __count, sentences, split)",
            ],
        ),
        (
            "name: \"wc\"",
            "name: \"my.wc\"",
            &[
                "t.yaml:1:7: topology name \"my.wc\" contains '.'; names must not contain / . : or \\",
            ],
        ),
        (
            "name: \"wc\"",
            "name: \"\"",
            &["t.yaml:1:7: `name` must not be empty"],
        ),
        (
            "name: \"wc\"\n",
            "",
            &["t.yaml:1:1: the topology has no `name`: add `name: \"my-topology\"`"],
        ),
        (
            "    to: \"split\"",
            "    to: \"sentences\"",
            &[
                "t.yaml:13:9: stream: cannot go into \"sentences\": it is a spout, and spouts take no input",
            ],
        ),
        (
            "      type: SHUFFLE",
            "      type: SHUFFLE\n      streamId: \"other\"",
            &[
                "t.yaml:16:17: stream: \"sentences\" declares no stream \"other\" (declared: default)",
            ],
        ),
        (
            "    className: \"SplitSentenceBolt\"",
            "    className: \"SplitSentenceBolt\"\n    configMethods: [{name: withWindow, args: [1]}]",
            &[
                "t.yaml:7:16: component \"split\": SplitSentenceBolt takes no `configMethods` (Java method calls); set `properties` instead",
            ],
        ),
        (
            "    className: \"SplitSentenceBolt\"",
            "    className: \"SplitSentenceBolt\"\n    constructorArgs: [ref: nowhere]",
            &[
                "t.yaml:8:28: `ref` to \"nowhere\", which is not in the top-level `components` (known: none)",
            ],
        ),
        (
            "      args: [\"word\"]",
            "",
            &[
                "t.yaml:19:13: stream: FIELDS grouping needs `args` with the field names to group on, e.g. `args: [\"word\"]`",
            ],
        ),
        (
            "    className: \"RandomSentenceSpout\"",
            "    className: \"WordCountBolt\"",
            &[
                "t.yaml:4:16: component \"sentences\": \"WordCountBolt\" is a bolt, so it cannot be listed under `spouts`",
            ],
        ),
        (
            "name: \"wc\"",
            "name: \"wc\"\nconfig:\n  topology.workers: many",
            &[
                "t.yaml:3:21: `topology.workers`: expected a positive whole number, found string \"many\"",
            ],
        ),
        (
            "name: \"wc\"",
            "name: \"wc\"\nstreamz: []",
            &[
                "t.yaml:2:1: unknown key `streamz` in the topology; did you mean `streams`? (valid keys: name, config, spouts, bolts, streams, includes, components)",
            ],
        ),
        (
            "    className: \"RandomSentenceSpout\"",
            "    className: \"FileLineSpout\"",
            &[
                "t.yaml:3:9: component \"sentences\" (FileLineSpout): missing property \"path\" (the file to read): add `properties: [{name: \"path\", value: \"input.txt\"}]`",
            ],
        ),
    ];
    for (from, to, want) in cases {
        assert!(BASE.contains(from), "fixture does not contain {from:?}");
        let text = BASE.replacen(from, to, 1);
        let got = errors(&text);
        assert_eq!(got, *want, "replacing {from:?} with {to:?}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = BASE
        .replacen("to: \"count\"", "to: \"cnt\"", 1)
        .replacen("parallelism: 2", "parallelism: two", 1)
        .replacen("type: SHUFFLE", "type: RANDOM", 1);
    let got = errors(&text);
    assert_eq!(got.len(), 3, "{got:#?}");
    // Sorted by position.
    assert!(got[0].starts_with("t.yaml:8:18:"), "{got:#?}");
    assert!(got[1].starts_with("t.yaml:15:13:"), "{got:#?}");
    assert!(got[2].starts_with("t.yaml:17:9:"), "{got:#?}");
}

#[test]
fn hostile_input_is_refused_cleanly() {
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
    let cases: &[(&[u8], &str)] = &[
        (b"", "t.yaml:1:1: the file has no topology in it"),
        (
            b"name: x\n\x00\x01\x02",
            "t.yaml:2:1: this is a binary file",
        ),
        (b"name: \xff\xfe", "t.yaml:1:7: the file is not valid UTF-8"),
        (
            b"name: x\nspouts:\n\t- id: a\n",
            "t.yaml:3:2: tabs disallowed within this context (block indentation)\n",
        ),
        (bomb.as_bytes(), "budget"),
        (
            b"- just\n- a list\n",
            "t.yaml:1:1: expected a mapping with `name`, `spouts`, `bolts` and `streams`, found a list",
        ),
        (b"name: [unclosed\n", "t.yaml:"),
    ];
    for (input, want) in cases {
        let got = match load_bytes(
            "t.yaml",
            input,
            &Registry::with_builtins(),
            &Substitutions::default(),
            &|_| None,
        ) {
            Ok(_) => panic!("{input:?} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            got.contains(want),
            "{:?}: got {got}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn substitution_feeds_validation() {
    let text = BASE.replacen("parallelism: 2", "parallelism: ${par:-3}", 1);
    let mut subs = Substitutions::default();
    let l = load_bytes(
        "t.yaml",
        text.as_bytes(),
        &Registry::with_builtins(),
        &subs,
        &|_| None,
    )
    .expect("valid");
    assert_eq!(
        l.topology.component("split").map(|c| c.parallelism),
        Some(3)
    );
    subs.set("par", "5");
    let l = load_bytes(
        "t.yaml",
        text.as_bytes(),
        &Registry::with_builtins(),
        &subs,
        &|_| None,
    )
    .expect("valid");
    assert_eq!(
        l.topology.component("split").map(|c| c.parallelism),
        Some(5)
    );
}

/// Gale's own Flux fixtures (topologies/compat/) for what Storm's example files exercise.
fn compat(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../topologies/compat")
        .join(name)
}

#[test]
fn flux_compat_fixtures() {
    let reg = Registry::with_builtins();
    for ok in ["word-log.yaml", "diamond.yaml", "shell.yaml"] {
        flux::load_file(&compat(ok), &reg, &Substitutions::default())
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    // Substitution from a properties file (and the environment for ENV-).
    let subs = Substitutions {
        vars: flux::read_filter(&compat("substitution.properties")).expect("properties"),
        env_filter: true,
    };
    let l = flux::load_file(&compat("substitution.yaml"), &reg, &subs).expect("validates");
    assert_eq!(l.topology.name, "compat-substituted");
    assert_eq!(
        l.topology.config["compat.list.target"],
        serde_json::json!(["first", "second"])
    );
    assert_eq!(
        l.topology.config["compat.list.element.target"],
        serde_json::json!("${a.list.property[1]}")
    );
    assert!(
        l.topology.config["compat.env.value"]
            .as_str()
            .is_some_and(|v| !v.contains("${"))
    );
    // Includes: the spout and config come from the included file.
    let l = flux::load_file(&compat("includes.yaml"), &reg, &Substitutions::default())
        .expect("validates");
    assert!(l.topology.component("words").is_some());
    assert_eq!(
        l.topology.config["compat.from.base"],
        serde_json::json!("base")
    );
    // `components` passed by `ref` to a windowed bolt through `configMethods`.
    window_by_ref(&compat("count-window.yaml"), "window", [4, 2]);
}

/// A windowed bolt whose `withWindow` got the `components` it names by `ref`: their
/// constructor args are the window's length and slide.
fn window_by_ref(yaml: &std::path::Path, bolt: &str, [length, slide]: [i64; 2]) {
    let reg = Registry::with_builtins();
    let l = flux::load_file(yaml, &reg, &Substitutions::default()).expect("validates");
    let bolt = l.topology.component(bolt).expect("the windowed bolt");
    assert_eq!(bolt.class_name, "WindowCountBolt");
    assert_eq!(bolt.args.config_methods[0].0, "withWindow");
    let args = &bolt.args.config_methods[0].1;
    assert_eq!(args[0]["constructorArgs"], serde_json::json!([length]));
    assert_eq!(args[1]["constructorArgs"], serde_json::json!([slide]));
}

fn flux(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference/flux-examples")
        .join(name)
}

/// Storm's own Flux example files, when they lie beside the repository; skipped (and said so)
/// on a clone standing alone.
#[test]
fn storms_own_flux_examples_when_present() {
    let dir = flux("");
    if !dir.exists() {
        eprintln!(
            "skipped: Storm's Flux examples are not at {} (topologies/compat/ covers them)",
            dir.display()
        );
        return;
    }
    let reg = Registry::with_builtins();
    for ok in ["simple_wordcount.yaml", "test-diamond-topology.yaml"] {
        flux::load_file(&flux(ok), &reg, &Substitutions::default())
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    // Storm's substitution example with its properties file (and the environment for ENV-).
    let mut subs = Substitutions {
        vars: flux::read_filter(&flux("test-test.properties")).expect("properties"),
        env_filter: true,
    };
    subs.set("unused", "x");
    let l = flux::load_file(&flux("test-substitution-test.yaml"), &reg, &subs).expect("validates");
    assert_eq!(l.topology.name, "substitution-topology");
    assert_eq!(
        l.topology.config["list.property.target"],
        serde_json::json!(["A string list"])
    );
    assert!(
        l.topology.config["test.env.value"]
            .as_str()
            .is_some_and(|v| !v.contains("${"))
    );
    // Storm's windowing example: `components` (window sizes) passed by `ref` to Flux's
    // TestWindowBolt through `configMethods`.
    window_by_ref(&flux("simple_windowing.yaml"), "bolt-1", [5, 3]);
}

/// Names and numbers a careless user or an attacker sends are refused where they enter, each
/// with its place (issue 18's hostile cases), and quickly: nothing is laid out per worker or task
/// before the limits are checked.
#[test]
fn hostile_names_and_numbers_are_located_errors() {
    let long = "x".repeat(300);
    let cases: Vec<(String, &str)> = vec![
        (
            BASE.replace("name: \"wc\"", "name: \"wc🌊\""),
            "t.yaml:1:7: topology name \"wc🌊\" contains '🌊'",
        ),
        (
            BASE.replace("name: \"wc\"", "name: \"w\\tc\""),
            "t.yaml:1:7: topology name \"w\\tc\" contains '\\t'",
        ),
        (
            BASE.replace("name: \"wc\"", "name: \"w\\nc\""),
            "contains '\\n'",
        ),
        (
            BASE.replace("name: \"wc\"", "name: \"w\\0c\""),
            "contains '\\0'",
        ),
        (
            BASE.replace("name: \"wc\"", "name: \"word count\""),
            "contains ' '; use letters, digits, '-' and '_'",
        ),
        (
            BASE.replace("name: \"wc\"", "name: \"wc?x#y\""),
            "contains '?'",
        ),
        (
            BASE.replace("name: \"wc\"", &format!("name: \"{long}\"")),
            "is 300 characters long; at most 128",
        ),
        (
            BASE.replace("id: \"split\"", "id: \"sp lit\""),
            "t.yaml:6:9: component id \"sp lit\" contains ' '",
        ),
        (
            BASE.replace(
                "name: \"wc\"",
                "name: \"wc\"\nconfig: {topology.workers: 4000000000}",
            ),
            "t.yaml:2:28: `topology.workers` must be at most 10000, found 4000000000",
        ),
        (
            BASE.replace("parallelism: 2", "parallelism: 1000000"),
            "`parallelism` must be at most 10000, found 1000000",
        ),
        (
            BASE.replace("parallelism: 2", "parallelism: 2\n    numTasks: 4294967295"),
            "`numTasks` must be at most 100000, found 4294967295",
        ),
        (
            BASE.replace(
                "name: \"wc\"",
                "name: \"wc\"\nconfig: {topology.message.timeout.secs: 99999999}",
            ),
            "`topology.message.timeout.secs` must be at most 86400",
        ),
    ];
    for (yaml, want) in &cases {
        let start = std::time::Instant::now();
        let errs = errors(yaml);
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "want {want:?} in {errs:?}"
        );
        // A refusal, not a layout of billions of workers (it took more than 20 s).
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
    // Many components under the per-component limit still add up to a refused total.
    let mut many = String::from("name: big\nspouts:\n");
    for i in 0..3 {
        many += &format!(
            "  - {{id: s{i}, className: TestWordSpout, parallelism: 10, numTasks: 40000}}\n"
        );
    }
    let errs = errors(&many);
    assert!(
        errs.iter()
            .any(|e| e.contains("120000 tasks in all; Gale's limit is 100000")),
        "{errs:?}"
    );
}

/// Windows are checked as Storm checks them, each problem at its bolt.
#[test]
fn windows_that_cannot_work_are_located() {
    let yaml = |config: &str, props: &str| {
        format!(
            "name: \"w\"\nconfig:\n{config}\nspouts:\n  - id: \"events\"\n    className: \"FileLineSpout\"\n    properties:\n      - {{name: \"path\", value: \"e.tsv\"}}\nbolts:\n  - id: \"counts\"\n    className: \"WindowCountBolt\"\n    properties:\n{props}\nstreams:\n  - {{from: \"events\", to: \"counts\", grouping: {{type: SHUFFLE}}}}\n"
        )
    };
    let time = "      - {name: \"windowLengthMs\", value: 8000}\n      - {name: \"slidingIntervalMs\", value: 4000}";
    let count = "      - {name: \"windowLength\", value: 60}\n      - {name: \"slidingInterval\", value: 50}";
    let acking = "  topology.acker.executors: 1\n  topology.message.timeout.secs: 10\n  topology.max.spout.pending: 100";
    let e = errors(&yaml(acking, time));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "t.yaml:12:9: bolt \"counts\": the window length (8000 ms) plus its slide (4000 ms)"
        ),
        "{e:?}"
    );
    let e = errors(&yaml(acking, count));
    assert!(e[0].starts_with("t.yaml:12:9: bolt \"counts\": the window length (60) plus its slide (50) exceeds topology.max.spout.pending (100)"), "{e:?}");
    // Without acking nothing times out: both are fine.
    let off = "  topology.acker.executors: 0";
    assert_eq!(errors(&yaml(off, time)), Vec::<String>::new());
    assert_eq!(errors(&yaml(off, count)), Vec::<String>::new());
    let e = errors(&yaml(off, "      - {name: \"keyField\", value: \"key\"}"));
    assert!(
        e[0].starts_with("t.yaml:10:9: bolt \"counts\": no window given"),
        "{e:?}"
    );
}
