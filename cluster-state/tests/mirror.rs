//! The mirrored store: reads answered from memory, nodes read again only once they changed,
//! everything read again after events may have been lost.

use cluster_state::*;
use std::sync::Arc;

/// Lets the watch's events reach the mirror (they travel through a spawned task).
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

fn setup() -> (Arc<MemStore>, Mirrored<Counted<Arc<MemStore>>>) {
    let store = Arc::new(MemStore::new());
    let m = Mirrored::new(Counted::new(store.clone()), &["/storms", "/supervisors"]);
    (store, m)
}

#[tokio::test]
async fn unchanged_nodes_are_not_read_again_and_changed_ones_are_read_once() {
    let (raw, m) = setup();
    for i in 0..50 {
        raw.create(&format!("/storms/t{i}"), vec![i], NodeKind::Persistent)
            .await
            .expect("create");
    }
    assert_eq!(m.children("/storms").await.expect("list").len(), 50);
    let after_load = m.inner().requests();
    // A full load: one watch, and each level's nodes read (the two roots, then 50 children).
    assert_eq!(after_load.watches, 1);
    assert_eq!(after_load.gets, 52);
    // Ten passes over everything: nothing changed, nothing sent.
    for _ in 0..10 {
        for i in 0..50 {
            let got = m.get(&format!("/storms/t{i}")).await.expect("get");
            assert_eq!(got.map(|(d, _)| d), Some(vec![i]));
        }
    }
    assert_eq!(m.inner().requests(), after_load);
    // Another writer changes two nodes and removes one: three reads, and the copy follows.
    raw.set("/storms/t3", vec![33], None).await.expect("set");
    raw.set("/storms/t4", vec![44], None).await.expect("set");
    raw.delete("/storms/t5").await.expect("delete");
    settle().await;
    assert_eq!(
        m.get("/storms/t3").await.expect("get").map(|(d, _)| d),
        Some(vec![33])
    );
    assert_eq!(m.get("/storms/t5").await.expect("get"), None);
    assert_eq!(m.children("/storms").await.expect("list").len(), 49);
    assert_eq!(m.inner().requests().gets - after_load.gets, 3);
    // A path outside the mirrored roots goes to the store every time.
    m.get("/errors/x").await.expect("get");
    m.get("/errors/x").await.expect("get");
    assert_eq!(m.inner().requests().gets - after_load.gets, 5);
}

#[tokio::test]
async fn own_writes_are_read_back_at_once() {
    let (_raw, m) = setup();
    m.children("/storms").await.expect("load");
    m.create("/storms/a", b"1".to_vec(), NodeKind::Persistent)
        .await
        .expect("create");
    assert_eq!(
        m.get("/storms/a").await.expect("get").map(|(d, _)| d),
        Some(b"1".to_vec())
    );
    m.set("/storms/a", b"2".to_vec(), None).await.expect("set");
    assert_eq!(
        m.get("/storms/a").await.expect("get").map(|(d, _)| d),
        Some(b"2".to_vec())
    );
    m.delete("/storms").await.expect("delete");
    assert!(m.children("/storms").await.expect("list").is_empty());
}

#[tokio::test]
async fn lost_events_and_ended_sessions_load_everything_again() {
    let (raw, m) = setup();
    raw.create("/supervisors/s1", vec![1], NodeKind::Ephemeral)
        .await
        .expect("create");
    assert_eq!(m.children("/supervisors").await.expect("list"), ["s1"]);
    let before = m.inner().requests();
    // A dropped connection: the next read loads everything.
    raw.drop_connection();
    settle().await;
    m.children("/supervisors").await.expect("list");
    let after = m.inner().requests();
    assert!(after.gets > before.gets && after.watches == before.watches);
    // The session ends: the ephemeral node goes, the watch closes and is set again.
    raw.expire_session();
    settle().await;
    assert!(m.children("/supervisors").await.expect("list").is_empty());
    assert_eq!(m.inner().requests().watches, before.watches + 1);
    // An unreachable store: reads fail, as the store's would, once events may have been lost.
    raw.set_cut_off(true);
    raw.drop_connection();
    settle().await;
    assert!(m.children("/supervisors").await.is_err());
    raw.set_cut_off(false);
    raw.create("/supervisors/s2", vec![2], NodeKind::Ephemeral)
        .await
        .expect("create");
    assert_eq!(m.children("/supervisors").await.expect("list"), ["s2"]);
}

#[tokio::test]
async fn changed_resolves_on_an_event_under_its_path() {
    let (raw, m) = setup();
    m.children("/supervisors").await.expect("load");
    let waiting = m.changed("/supervisors");
    tokio::pin!(waiting);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), &mut waiting)
            .await
            .is_err(),
        "nothing changed yet"
    );
    raw.create("/supervisors/s9", vec![], NodeKind::Ephemeral)
        .await
        .expect("create");
    tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("woken by the event");
}

#[tokio::test]
async fn changes_elsewhere_do_not_wake_a_waiter() {
    let (raw, m) = setup();
    m.children("/supervisors").await.expect("load");
    let waiting = m.changed("/supervisors");
    tokio::pin!(waiting);
    raw.create("/storms/t1", vec![], NodeKind::Persistent)
        .await
        .expect("create");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(50), &mut waiting)
            .await
            .is_err(),
        "a storm changed, not a supervisor"
    );
}

#[tokio::test]
async fn with_a_refresh_interval_changed_nodes_are_read_in_one_batch_per_interval() {
    let raw = Arc::new(MemStore::new());
    let m = Mirrored::new(Counted::new(raw.clone()), &["/workerbeats"])
        .refreshing_every(std::time::Duration::from_secs(3600));
    raw.create("/workerbeats/t/a", vec![0], NodeKind::Persistent)
        .await
        .expect("create");
    m.children("/workerbeats/t").await.expect("load");
    let loaded = m.inner().requests().gets;
    raw.set("/workerbeats/t/a", vec![1], None)
        .await
        .expect("set");
    settle().await;
    // Within the interval: the copy as it was, no request.
    assert_eq!(
        m.get("/workerbeats/t/a")
            .await
            .expect("get")
            .map(|(d, _)| d),
        Some(vec![0])
    );
    assert_eq!(m.inner().requests().gets, loaded);
    // Its own writes it reads back at once.
    m.set("/workerbeats/t/a", vec![2], None).await.expect("set");
    assert_eq!(
        m.get("/workerbeats/t/a")
            .await
            .expect("get")
            .map(|(d, _)| d),
        Some(vec![2])
    );
}
