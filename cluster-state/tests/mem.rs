//! The typed state over the in-memory store.

use cluster_state::*;

fn sup(id: &str) -> SupervisorRecord {
    SupervisorRecord {
        classes: None,
        id: id.into(),
        host: "127.0.0.1".into(),
        ports: vec![6700, 6701],
        used_ports: vec![],
        start_time_secs: 1,
        version: "test".into(),
    }
}

#[tokio::test]
async fn supervisors_are_ephemeral() {
    let s = ClusterState::new(MemStore::new());
    s.register_supervisor(&sup("a")).await.expect("register");
    s.register_supervisor(&sup("b")).await.expect("register");
    s.register_supervisor(&sup("b")).await.expect("refresh");
    assert_eq!(s.supervisors().await.expect("list").len(), 2);
    s.store().expire_session();
    assert!(s.supervisors().await.expect("list").is_empty());
}

#[tokio::test]
async fn leadership_is_exclusive() {
    let s = ClusterState::new(MemStore::new());
    assert!(s.try_lead("n1:6627").await.expect("lead"));
    assert!(!s.try_lead("n2:6627").await.expect("lead"));
    assert!(s.try_lead("n1:6627").await.expect("still leader"));
    s.store().expire_session();
    assert!(s.try_lead("n2:6627").await.expect("takes over"));
}

#[tokio::test]
async fn topology_records_round_trip_and_are_removed_together() {
    let s = ClusterState::new(MemStore::new());
    let storm = StormRecord {
        name: "wc".into(),
        status: TopologyStatus::Active,
        launch_time_secs: 5,
        workers: 2,
        component_executors: [("split".to_owned(), 2)].into(),
        action_at_secs: None,
        prev_status: None,
    };
    s.set_storm("wc-1-5", &storm).await.expect("storm");
    let a = AssignmentRecord {
        executors: vec![ExecutorSlot {
            start: 1,
            end: 2,
            supervisor: "a".into(),
            port: 6700,
        }],
        ..Default::default()
    };
    s.set_assignment("wc-1-5", &a).await.expect("assignment");
    s.set_workerbeat(
        "wc-1-5",
        &WorkerBeat {
            supervisor: "a".into(),
            port: 6700,
            ..Default::default()
        },
    )
    .await
    .expect("beat");
    s.report_error(
        "wc-1-5",
        "split",
        ErrorEntry {
            time_secs: 1,
            task: 3,
            host: "h".into(),
            port: 6700,
            message: "x".into(),
        },
    )
    .await
    .expect("err");
    assert_eq!(s.storm("wc-1-5").await.expect("read"), Some(storm));
    assert_eq!(s.assignment("wc-1-5").await.expect("read"), Some(a));
    assert_eq!(s.workerbeats("wc-1-5").await.expect("beats").len(), 1);
    assert_eq!(
        s.errors("wc-1-5").await.expect("errors")[0].1.errors[0].task,
        3
    );
    s.remove_topology("wc-1-5").await.expect("remove");
    assert!(s.storms().await.expect("list").is_empty());
    assert!(s.assignments().await.expect("list").is_empty());
    assert!(s.workerbeats("wc-1-5").await.expect("beats").is_empty());
}

#[tokio::test]
async fn errors_keep_the_latest_ten() {
    let s = ClusterState::new(MemStore::new());
    for i in 0..15 {
        s.report_error(
            "t",
            "c",
            ErrorEntry {
                time_secs: i,
                task: 1,
                host: "h".into(),
                port: 1,
                message: format!("e{i}"),
            },
        )
        .await
        .expect("err");
    }
    let e = &s.errors("t").await.expect("errors")[0].1.errors;
    assert_eq!(e.len(), 10);
    assert_eq!(e[9].message, "e14");
}

#[tokio::test]
async fn versions_guard_concurrent_writes() {
    let m = MemStore::new();
    m.create("/x", b"1".to_vec(), NodeKind::Persistent)
        .await
        .expect("create");
    let (_, v) = m.get("/x").await.expect("get").expect("exists");
    m.set("/x", b"2".to_vec(), Some(v))
        .await
        .expect("first writer wins");
    assert!(matches!(
        m.set("/x", b"3".to_vec(), Some(v)).await,
        Err(StoreError::BadVersion(_))
    ));
    assert!(matches!(
        m.create("/x", vec![], NodeKind::Persistent).await,
        Err(StoreError::NodeExists(_))
    ));
    assert_eq!(
        m.children("/").await.expect("children"),
        vec!["x".to_owned()]
    );
}

#[test]
fn resource_names_are_plain_relative_paths() {
    use cluster_state::check_resource_name;
    for ok in ["a.py", "lib/b.js", "deep/er/c d.txt", "ü.txt"] {
        assert_eq!(check_resource_name(ok), Ok(()), "{ok}");
    }
    let long = "x".repeat(256);
    for bad in [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "./a",
        "a//b",
        "a/",
        "a\0b",
        "a\nb",
        long.as_str(),
    ] {
        assert!(check_resource_name(bad).is_err(), "{bad:?}");
    }
}

/// A write to a node that is there is one set; a missing node (first write, or an ephemeral
/// one whose session ended) is created by the same call.
#[tokio::test]
async fn writes_set_first_and_create_only_what_is_missing() {
    let store = std::sync::Arc::new(Counted::new(MemStore::new()));
    let calls = |s: &Counted<MemStore>| (s.requests().creates, s.requests().sets);
    cluster_state::store::put(
        &*store,
        "/supervisors/s1",
        b"a".to_vec(),
        NodeKind::Ephemeral,
    )
    .await
    .expect("first write");
    assert_eq!(
        calls(&store),
        (1, 1),
        "a set that found nothing, then a create"
    );
    for _ in 0..10 {
        cluster_state::store::put(
            &*store,
            "/supervisors/s1",
            b"b".to_vec(),
            NodeKind::Ephemeral,
        )
        .await
        .expect("write");
    }
    assert_eq!(
        calls(&store),
        (1, 11),
        "ten more passes: ten sets, no create"
    );
    store.inner().expire_session();
    cluster_state::store::put(
        &*store,
        "/supervisors/s1",
        b"c".to_vec(),
        NodeKind::Ephemeral,
    )
    .await
    .expect("after the session ended");
    assert_eq!(calls(&store), (2, 12));
    assert_eq!(
        store
            .inner()
            .get("/supervisors/s1")
            .await
            .expect("read")
            .map(|(d, _)| d),
        Some(b"c".to_vec())
    );
}
