//! Storm UI's REST API on a real cluster (ZooKeeper, Nimbus, two Supervisors on loopback) with a
//! running word count: the stats windows, their errors, and each action's effect.

#[path = "support/cluster.rs"]
mod support;

use serde_json::Value as Json;
use std::time::Duration;
use support::*;

fn get_json(c: &Cluster, path: &str) -> (u16, Json) {
    let (code, body) = http_get(c, path);
    let j = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
    (code, j)
}

fn row<'a>(page: &'a Json, window: &str) -> &'a Json {
    page["topologyStats"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["window"] == window))
        .unwrap_or_else(|| panic!("no {window} row: {page}"))
}

fn bolt<'a>(page: &'a Json, id: &str) -> &'a Json {
    page["bolts"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["boltId"] == id))
        .unwrap_or_else(|| panic!("no bolt {id}: {page}"))
}

#[test]
fn stats_windows_errors_and_actions_over_rest() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut c = Cluster::start("rest", &["sup-a", "sup-b"]);
    std::fs::create_dir_all(c.dir.join("topo")).expect("dir");
    let yaml = c.dir.join("topo/rest.yaml");
    std::fs::write(
        &yaml,
        "name: rest\nconfig:\n  topology.workers: 2\n\
         spouts:\n  - {id: sentences, className: RandomSentenceSpout, properties: [{name: ratePerSecond, value: 3000}]}\n\
         bolts:\n  - {id: split, className: SplitSentenceBolt, parallelism: 2}\n  - {id: count, className: WordCountBolt, parallelism: 2}\n\
         streams:\n  - {from: sentences, to: split, grouping: {type: SHUFFLE}}\n  - {from: split, to: count, grouping: {type: FIELDS, args: [word]}}\n",
    )
    .expect("yaml");
    let o = c.gale(&["submit", yaml.to_str().expect("path")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = c.topology("rest")["id"].as_str().expect("id").to_owned();
    wait_until(Duration::from_secs(60), "counting", || {
        stat(&c.topology("rest"), "count", "executed") > 0
    });

    // The cluster's paths.
    let (code, sups) = get_json(&c, "/api/v1/supervisor/summary");
    assert_eq!(code, 200);
    let list = sups["supervisors"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 2, "{sups}");
    assert_eq!(
        list.iter()
            .map(|s| s["slotsUsed"].as_u64().unwrap_or(0))
            .sum::<u64>(),
        2,
        "two workers: {sups}"
    );
    let (code, conf) = get_json(&c, "/api/v1/cluster/configuration");
    assert_eq!(code, 200);
    assert_eq!(conf["nimbus.seeds"][0], c.nimbus_addr.as_str(), "{conf}");
    let (code, summary) = get_json(&c, "/api/v1/topology/summary");
    assert_eq!(code, 200);
    assert_eq!(summary["topologies"][0]["id"], id.as_str(), "{summary}");
    assert_eq!(summary["topologies"][0]["executorsTotal"], 7, "{summary}");

    // Every window, named as Storm names them; bolts with capacity and execute latency.
    for (w, hint) in [
        ("600", "10m 0s"),
        ("10800", "3h 0m 0s"),
        ("86400", "1d 0h 0m 0s"),
        (":all-time", "All time"),
    ] {
        let (code, page) = get_json(&c, &format!("/api/v1/topology/{id}?window={w}"));
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["window"], w);
        assert_eq!(page["windowHint"], hint);
        assert_eq!(
            page["topologyStats"].as_array().map(Vec::len),
            Some(4),
            "{page}"
        );
        assert!(page["spouts"][0]["completeLatency"].is_string(), "{page}");
        let count = bolt(&page, "count");
        for k in ["capacity", "executeLatency"] {
            let v: f64 = count[k]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(-1.0);
            assert!((0.0..=1000.0).contains(&v), "{k}: {count}");
        }
        let (code, comp) = get_json(
            &c,
            &format!("/api/v1/topology/{id}/component/count?window={w}"),
        );
        assert_eq!(code, 200, "{comp}");
        assert_eq!(comp["window"], w);
        let execs = comp["executorStats"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(execs.len(), 2, "{comp}");
        for e in &execs {
            for k in [
                "host",
                "port",
                "uptime",
                "executed",
                "capacity",
                "executeLatency",
            ] {
                assert!(!e[k].is_null(), "{k} of {e}");
            }
        }
    }
    // Errors: JSON with a message, 400 for a bad window, 404 for what does not exist.
    for (path, want) in [
        (format!("/api/v1/topology/{id}?window=60"), 400),
        (
            format!("/api/v1/topology/{id}/component/count?window=1h"),
            400,
        ),
        ("/api/v1/topology/no-such?window=600".to_owned(), 404),
        (format!("/api/v1/topology/{id}/component/no-such"), 404),
    ] {
        let (code, j) = get_json(&c, &path);
        assert_eq!(code, want, "{path}: {j}");
        assert!(
            j["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {j}"
        );
    }

    // /metrics per executor: counters, capacity, queue depth, and the terminal bolt's latency
    // histogram.
    let (code, metrics) = http_get(&c, "/metrics");
    assert_eq!(code, 200);
    for needle in [
        "gale_executor_executed_total{topology=\"rest\",component=\"count\",executor=\"[",
        "gale_executor_capacity{topology=\"rest\",component=\"split\"",
        "gale_executor_queue_depth{topology=\"rest\",component=\"count\"",
        "gale_executor_latency_seconds_bucket{topology=\"rest\",component=\"count\"",
        "gale_executor_latency_seconds_count{topology=\"rest\",component=\"count\"",
        "gale_component_capacity{topology=\"rest\",component=\"count\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }

    // Counting restarts with Nimbus (its history is in memory): the 10-minute window counts
    // only what happened since, below all time.
    c.kill_nimbus();
    c.start_nimbus();
    std::thread::sleep(Duration::from_secs(7));
    let (_, page) = get_json(&c, &format!("/api/v1/topology/{id}?window=600"));
    let (w600, all) = (
        row(&page, "600")["emitted"].as_u64().unwrap_or(0),
        row(&page, ":all-time")["emitted"].as_u64().unwrap_or(0),
    );
    assert!(
        w600 > 0 && w600 < all,
        "600 s window {w600}, all time {all}: {page}"
    );
    let executed_600 = bolt(&page, "count")["executed"].as_u64().unwrap_or(0);
    let (_, all_page) = get_json(&c, &format!("/api/v1/topology/{id}"));
    let executed_all = bolt(&all_page, "count")["executed"].as_u64().unwrap_or(0);
    assert!(
        executed_600 < executed_all,
        "{executed_600} < {executed_all}"
    );

    // Actions, with the token, and their effect; a bad wait is 400 and changes nothing.
    let auth = format!("Bearer {}", c.token);
    let h = [("Authorization", auth.as_str())];
    let post = |path: &str| http_post(&c, path, &h);
    let (code, body) = post(&format!("/api/v1/topology/{id}/deactivate"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.topology("rest")["status"], "INACTIVE");
    let (code, body) = post(&format!("/api/v1/topology/{id}/activate"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.topology("rest")["status"], "ACTIVE");
    for bad in ["rebalance/soon", "kill/-1"] {
        let (code, body) = post(&format!("/api/v1/topology/{id}/{bad}"));
        assert_eq!(code, 400, "{bad}: {body}");
        assert_eq!(c.topology("rest")["status"], "ACTIVE");
    }
    let (code, body) = post(&format!("/api/v1/topology/{id}/rebalance/0"));
    assert_eq!(code, 200, "{body}");
    wait_until(Duration::from_secs(30), "rebalanced and active", || {
        c.topology("rest")["status"] == "ACTIVE"
    });
    let (code, body) = post(&format!("/api/v1/topology/{id}/kill/0"));
    assert_eq!(code, 200, "{body}");
    wait_until(Duration::from_secs(30), "killed and gone", || {
        http_get(&c, &format!("/api/v1/topology/{id}")).0 == 404
    });
    eprintln!("rest: after a Nimbus restart the 600 s window had {w600} emitted of {all} all-time");
}
