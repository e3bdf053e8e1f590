//! The web UI in a real browser: Debian's Chromium driven by playwright-core (cli/tests/ui/
//! browser.js) against a real cluster (ZooKeeper, Nimbus, two Supervisors on loopback).
//! scripts/test.sh installs both (`GALE_PLAYWRIGHT`, `GALE_CHROMIUM`).

#[path = "support/cluster.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

fn write(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("topo")).expect("dir");
    let p = dir.join("topo").join(name);
    std::fs::write(&p, yaml).expect("yaml");
    p
}

/// The UI and its headers, without a browser.
#[test]
fn the_ui_is_served_with_a_policy_that_allows_only_its_own_files() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = Cluster::start("ui-headers", &["sup-a"]);
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let r = agent
            .get(format!("http://{}{path}", c.nimbus_addr))
            .call()
            .expect("Nimbus answers");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let h = |k: &str| {
            r.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(
            h("content-type").starts_with(kind),
            "{path}: {}",
            h("content-type")
        );
        assert!(
            h("content-security-policy").contains("script-src 'self'"),
            "{path}"
        );
        assert_eq!(h("x-content-type-options"), "nosniff");
    }
    // An action from a page without the token changes nothing.
    let (code, _) = http_post(
        &c,
        "/api/v1/topology/nope/deactivate",
        &[("origin", "http://x")],
    );
    assert_eq!(code, 401);
}

#[test]
fn the_browser_sees_the_graph_live_counts_and_deactivates_with_the_token() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let playwright = std::env::var("GALE_PLAYWRIGHT").unwrap_or_else(|_| {
        root()
            .join("target/ui-test/node_modules/playwright-core")
            .display()
            .to_string()
    });
    assert!(
        Path::new(&playwright).exists() && Path::new("/usr/bin/chromium").exists(),
        "playwright-core ({playwright}) or /usr/bin/chromium is missing: run scripts/test.sh, which installs both"
    );
    let c = Cluster::start("ui", &["sup-a", "sup-b"]);
    let live = write(
        &c.dir,
        "ui-live.yaml",
        "name: ui-live\nconfig:\n  topology.workers: 2\n\
         spouts:\n  - {id: sentences, className: RandomSentenceSpout, properties: [{name: ratePerSecond, value: 2000}]}\n\
         bolts:\n  - {id: split, className: SplitSentenceBolt, parallelism: 2}\n  - {id: count, className: WordCountBolt, parallelism: 2}\n\
         streams:\n  - {from: sentences, to: split, grouping: {type: SHUFFLE}}\n  - {from: split, to: count, grouping: {type: FIELDS, args: [word]}}\n",
    );
    // A spout whose start fails with markup in its error.
    let broken = write(
        &c.dir,
        "ui-broken.yaml",
        "name: ui-broken\nconfig:\n  topology.workers: 1\n\
         spouts:\n  - id: shell\n    className: ShellSpout\n    constructorArgs: [[\"/nonexistent/<img src=x onerror=alert(1)>\"], [\"word\"]]\n\
         bolts:\n  - {id: sink, className: LogInfoBolt}\n\
         streams:\n  - {from: shell, to: sink, grouping: {type: SHUFFLE}}\n",
    );
    for y in [&live, &broken] {
        let o = c.gale(&["submit", y.to_str().expect("path")]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    wait_until(Duration::from_secs(60), "the word count counts", || {
        stat(&c.topology("ui-live"), "count", "executed") > 0
    });
    let out = c.dir.join("screenshots");
    std::fs::create_dir_all(&out).expect("dir");
    let o = Command::new("node")
        .arg(root().join("cli/tests/ui/browser.js"))
        .arg(format!("http://{}", c.nimbus_addr))
        .arg(&out)
        .args(["ui-live", "ui-broken", &c.token])
        .env("GALE_PLAYWRIGHT", &playwright)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(stdout.trim()).expect("browser JSON");
    assert!(seen.get("failure").is_none(), "{seen:#}");
    assert!(
        seen["csp"]
            .as_str()
            .is_some_and(|s| s.contains("script-src 'self'")),
        "{seen:#}"
    );
    let nodes: Vec<&str> = seen["graphNodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for id in ["sentences", "split", "count"] {
        assert!(nodes.contains(&id), "graph lacks {id}: {seen:#}");
    }
    let labels = seen["edgeLabels"].to_string();
    assert!(
        labels.contains("SHUFFLE") && labels.contains("FIELDS"),
        "{seen:#}"
    );
    let (a, b) = (
        seen["executedFirst"].as_u64().unwrap_or(0),
        seen["executedSecond"].as_u64().unwrap_or(0),
    );
    assert!(
        b > a,
        "count's executed rose between two looks: {a} then {b}"
    );
    assert_eq!(seen["statusBefore"], "ACTIVE");
    assert_eq!(seen["statusAfter"], "INACTIVE");
    assert_eq!(
        c.topology("ui-live")["status"],
        "INACTIVE",
        "the action took effect"
    );
    let dialogs = seen["dialogs"].to_string();
    assert!(
        dialogs.contains("confirm") && dialogs.contains("token"),
        "{seen:#}"
    );
    let text = seen["errorText"].as_str().unwrap_or("");
    assert!(
        text.contains("<img src=x"),
        "the error's markup shows as text: {text}"
    );
    assert_eq!(seen["injectedImages"], 0);
    // The one expected: the first action's 401, before the page asked for the token.
    let errors: Vec<&str> = seen["consoleErrors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|v| v.as_str())
        .filter(|e| !e.contains("status of 401"))
        .collect();
    assert!(errors.is_empty(), "{seen:#}");
    for shot in [
        "cluster.png",
        "topology.png",
        "deactivated.png",
        "error-as-text.png",
    ] {
        let p = out.join(shot);
        assert!(
            std::fs::metadata(&p)
                .map(|m| m.len() > 1000)
                .unwrap_or(false),
            "{} missing",
            p.display()
        );
    }
    // Kept for a look (the cluster folder is removed with the cluster).
    let keep = root().join("target/ui-screenshots");
    let _ = std::fs::create_dir_all(&keep);
    for shot in [
        "cluster.png",
        "topology.png",
        "deactivated.png",
        "error-as-text.png",
    ] {
        let _ = std::fs::copy(out.join(shot), keep.join(shot));
    }
    eprintln!(
        "ui: graph {nodes:?}, count executed {a} -> {b}, deactivated; screenshots in {}",
        keep.display()
    );
}

/// `gale local --ui ADDR` serves the same pages over the run's own counters; actions are 501.
#[test]
fn a_local_run_serves_the_ui_with_its_counts() {
    let dir = std::env::temp_dir().join(format!("gale-local-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let yaml = write(
        &dir,
        "local-ui.yaml",
        "name: local-ui\nconfig:\n  topology.workers: 1\n\
         spouts:\n  - {id: sentences, className: RandomSentenceSpout, properties: [{name: ratePerSecond, value: 2000}]}\n\
         bolts:\n  - {id: split, className: SplitSentenceBolt}\n  - {id: count, className: WordCountBolt}\n\
         streams:\n  - {from: sentences, to: split, grouping: {type: SHUFFLE}}\n  - {from: split, to: count, grouping: {type: FIELDS, args: [word]}}\n",
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(gale_bin())
        .args([
            "local",
            yaml.to_str().expect("path"),
            "--duration",
            "20",
            "--ui",
            &addr,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gale runs");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut executed = 0;
    let waited = std::time::Instant::now();
    while executed == 0 && waited.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(300));
        let Ok(mut r) = agent
            .get(format!("http://{addr}/api/v1/gale/status"))
            .call()
        else {
            continue;
        };
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
                .unwrap_or_default();
        executed = stat(&v["topologies"][0], "count", "executed");
    }
    let page = agent
        .get(format!("http://{addr}/"))
        .call()
        .expect("the page");
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let action = agent
        .post(format!("http://{addr}/api/v1/topology/local-ui/deactivate"))
        .send_empty()
        .expect("answers");
    let code = action.status().as_u16();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(executed > 0, "the local run's status shows count executing");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(code, 501);
}
