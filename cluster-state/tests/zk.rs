//! The ZooKeeper store against a real ZooKeeper (scripts/zk.sh): digest authentication (with
//! credentials, Gale's nodes can be changed only by Gale's identity, and stored topologies, with
//! their resources, read only by it; anyone may read the rest), and the watches the daemons
//! follow changes with.

use cluster_state::{
    ClusterState, Mirrored, NodeKind, Store, StoredTopology, StormRecord, TopologyStatus,
    TreeEvent, ZkAuth, ZkStore,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use zookeeper_client as zk;

struct Zk {
    dir: PathBuf,
    addr: String,
}

impl Zk {
    fn start() -> Zk {
        assert!(
            Path::new("/usr/share/java/zookeeper.jar").exists(),
            "ZooKeeper is not installed: run scripts/test.sh, which installs Debian's zookeeper package"
        );
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("gale-zk-store-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("bash")
            .arg(root.join("scripts/zk.sh"))
            .arg("start")
            .arg(&dir)
            .output()
            .expect("zk.sh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Zk { dir, addr }
    }
}

impl Drop for Zk {
    fn drop(&mut self) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let _ = Command::new("bash")
            .arg(root.join("scripts/zk.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn auth(payload: &str) -> Option<ZkAuth> {
    Some(ZkAuth {
        scheme: "digest".into(),
        payload: payload.as_bytes().to_vec(),
    })
}

fn storm() -> StormRecord {
    StormRecord {
        name: "t".into(),
        status: TopologyStatus::Active,
        launch_time_secs: 1,
        workers: 1,
        component_executors: BTreeMap::new(),
        action_at_secs: None,
        prev_status: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_gales_identity_changes_nodes_and_reads_topologies() {
    let z = Zk::start();
    let t = Duration::from_secs(4);
    let gale = ClusterState::new(
        ZkStore::connect(&z.addr, "/gale", t, auth("gale:s3cret"))
            .await
            .expect("connect"),
    );
    let topology: flux::Topology = serde_json::from_value(serde_json::json!({
        "name": "t", "config": {}, "spouts": [], "bolts": [], "streams": []
    }))
    .expect("a topology");
    gale.set_topology(
        "t-1",
        &StoredTopology {
            topology,
            resources: vec![("secret.txt".into(), b"key".to_vec())],
        },
    )
    .await
    .expect("write topology");
    gale.set_storm("t-1", &storm()).await.expect("write storm");

    // Another process with no credentials: reads the status, cannot change it, cannot read the
    // stored topology.
    let anon = zk::Client::connector()
        .with_session_timeout(t)
        .connect(&z.addr)
        .await
        .expect("anonymous client");
    assert!(
        anon.get_data("/gale/storms/t-1").await.is_ok(),
        "status is readable"
    );
    let write = anon.set_data("/gale/storms/t-1", b"forged", None).await;
    assert!(matches!(write, Err(zk::Error::NoAuth)), "{write:?}");
    let read = anon.get_data("/gale/topologies/t-1").await;
    assert!(matches!(read, Err(zk::Error::NoAuth)), "{read:?}");
    let delete = anon.delete("/gale/storms/t-1", None).await;
    assert!(matches!(delete, Err(zk::Error::NoAuth)), "{delete:?}");

    // Other credentials are no better.
    let other = zk::Client::connector()
        .with_session_timeout(t)
        .with_auth("digest", b"gale:wrong")
        .connect(&z.addr)
        .await
        .expect("client");
    let write = other.set_data("/gale/storms/t-1", b"forged", None).await;
    assert!(matches!(write, Err(zk::Error::NoAuth)), "{write:?}");

    // A second Gale daemon with the same credentials (a new session) reads and changes them.
    let again = ClusterState::new(
        ZkStore::connect(&z.addr, "/gale", t, auth("gale:s3cret"))
            .await
            .expect("connect"),
    );
    let stored = again.topology("t-1").await.expect("read").expect("stored");
    assert_eq!(stored.resources[0].1, b"key");
    let mut s = storm();
    s.status = TopologyStatus::Inactive;
    again.set_storm("t-1", &s).await.expect("change");
    again.remove_topology("t-1").await.expect("remove");
}

/// Tree watches report each changed node (paths relative to Gale's root, nothing outside it);
/// a one-shot watch fires on its node's change; a mirror reads only what changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_report_what_changed_and_a_mirror_reads_only_that() {
    let z = Zk::start();
    let t = Duration::from_secs(4);
    let s = ZkStore::connect(&z.addr, "/gale", t, None)
        .await
        .expect("connect");
    let other = ZkStore::connect(&z.addr, "/other", t, None)
        .await
        .expect("connect");
    let mut tree = s.watch_tree("/storms").await.expect("watch");
    s.create("/storms/a", b"1".to_vec(), NodeKind::Persistent)
        .await
        .expect("create");
    other
        .create("/storms/elsewhere", b"x".to_vec(), NodeKind::Persistent)
        .await
        .expect("create");
    s.set("/storms/a", b"2".to_vec(), None).await.expect("set");
    s.delete("/storms/a").await.expect("delete");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match tokio::time::timeout(Duration::from_secs(5), tree.recv()).await {
            Ok(Some(TreeEvent::Changed(p))) => seen.push(p),
            other => panic!("expected an event, got {other:?} after {seen:?}"),
        }
    }
    // The parent created on the way, then the node written twice and deleted.
    assert_eq!(
        seen,
        ["/storms", "/storms/a", "/storms/a", "/storms/a"],
        "{seen:?}"
    );

    let (node, watch) = s.get_watched("/supervisors/s1").await.expect("get");
    assert_eq!(node, None);
    s.create("/supervisors/s1", b"x".to_vec(), NodeKind::Ephemeral)
        .await
        .expect("create");
    tokio::time::timeout(Duration::from_secs(5), watch)
        .await
        .expect("the watch fires on creation");

    let writer = ZkStore::connect(&z.addr, "/gale", t, None)
        .await
        .expect("connect");
    let m = Mirrored::new(
        ZkStore::connect(&z.addr, "/gale", t, None)
            .await
            .expect("connect"),
        &["/supervisors", "/storms"],
    );
    assert_eq!(m.children("/supervisors").await.expect("list"), ["s1"]);
    writer
        .create("/supervisors/s2", b"y".to_vec(), NodeKind::Persistent)
        .await
        .expect("create");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while m.children("/supervisors").await.expect("list").len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror never saw s2"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        m.get("/supervisors/s2").await.expect("get").map(|(d, _)| d),
        Some(b"y".to_vec())
    );
}
