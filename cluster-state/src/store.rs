//! The raw coordination store: paths, bytes, versions, ephemeral nodes and change notifications.
//!
//! Two implementations: [`crate::ZkStore`] (ZooKeeper) and [`MemStore`] (in memory, for tests of
//! the daemons' logic). Paths given to a store are relative to its root, e.g. `/supervisors/s1`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

/// What a store call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no node {0}")]
    NoNode(String),
    #[error("node {0} already exists")]
    NodeExists(String),
    #[error("node {0} changed since it was read (version mismatch)")]
    BadVersion(String),
    /// The store cannot be reached (connection lost, session expired, server down).
    #[error("coordination store unavailable: {0}")]
    Unavailable(String),
    #[error("coordination store error: {0}")]
    Other(String),
}

/// Whether a node outlives the session that created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    /// Removed when the creating session ends (a daemon dies or loses ZooKeeper for longer than
    /// its session timeout).
    Ephemeral,
}

/// A coordination store. Parents of a created node are created (persistent) as needed.
pub trait Store: Send + Sync + 'static {
    fn create(
        &self,
        path: &str,
        data: Vec<u8>,
        kind: NodeKind,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Data and version, or `None` if the node does not exist.
    fn get(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<(Vec<u8>, i32)>, StoreError>> + Send;
    /// Writes data; with `version`, only if the node is still at that version.
    fn set(
        &self,
        path: &str,
        data: Vec<u8>,
        version: Option<i32>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Child names, sorted; empty when the node does not exist.
    fn children(&self, path: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Deletes the node and everything under it; fine if it does not exist.
    fn delete(&self, path: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Resolves when the children of `path` may have changed (a one-shot watch), or when the
    /// connection changes. Callers also poll on a timer, so a missed notification only delays.
    fn changed(&self, path: &str) -> impl Future<Output = ()> + Send;
}

/// Overwrites the node, or creates it if it is missing: set first, since most writes (a
/// supervisor's registration and its workers' beats, every pass) find the node there; one
/// request instead of a create that fails (each failed create still costs ZooKeeper a write)
/// and a set. An ephemeral node that vanished with its session is created again by the next
/// write.
pub async fn put<S: Store>(
    s: &S,
    path: &str,
    data: Vec<u8>,
    kind: NodeKind,
) -> Result<(), StoreError> {
    match s.set(path, data.clone(), None).await {
        Err(StoreError::NoNode(_)) => match s.create(path, data.clone(), kind).await {
            // Created by someone else in between: overwrite it.
            Err(StoreError::NodeExists(_)) => s.set(path, data, None).await,
            other => other,
        },
        other => other,
    }
}

#[derive(Debug)]
struct MemNode {
    data: Vec<u8>,
    version: i32,
    ephemeral: bool,
}

/// An in-memory store. `expire_session` drops every ephemeral node, as ZooKeeper does when a
/// session ends.
#[derive(Debug)]
pub struct MemStore {
    nodes: Mutex<BTreeMap<String, MemNode>>,
    tick: tokio::sync::watch::Sender<u64>,
    /// Set: every call fails as a store nobody can reach (a partition, in tests).
    cut_off: std::sync::atomic::AtomicBool,
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore {
            nodes: Mutex::new(BTreeMap::new()),
            tick: tokio::sync::watch::channel(0).0,
            cut_off: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn expire_session(&self) {
        self.lock().retain(|_, n| !n.ephemeral);
        self.bump();
    }

    /// From now on every call fails with [`StoreError::Unavailable`] (`true`) or works again.
    pub fn set_cut_off(&self, cut: bool) {
        self.cut_off.store(cut, std::sync::atomic::Ordering::SeqCst);
    }

    fn reachable(&self) -> Result<(), StoreError> {
        if self.cut_off.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable("cut off (test)".into()));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, MemNode>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.tick.send_modify(|t| *t += 1);
    }
}

fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .skip(1)
        .map(move |(i, _)| &path[..i])
}

impl Store for MemStore {
    async fn create(&self, path: &str, data: Vec<u8>, kind: NodeKind) -> Result<(), StoreError> {
        self.reachable()?;
        {
            let mut nodes = self.lock();
            if nodes.contains_key(path) {
                return Err(StoreError::NodeExists(path.to_owned()));
            }
            for p in parents(path) {
                nodes.entry(p.to_owned()).or_insert(MemNode {
                    data: Vec::new(),
                    version: 0,
                    ephemeral: false,
                });
            }
            nodes.insert(
                path.to_owned(),
                MemNode {
                    data,
                    version: 0,
                    ephemeral: kind == NodeKind::Ephemeral,
                },
            );
        }
        self.bump();
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, StoreError> {
        self.reachable()?;
        Ok(self.lock().get(path).map(|n| (n.data.clone(), n.version)))
    }

    async fn set(&self, path: &str, data: Vec<u8>, version: Option<i32>) -> Result<(), StoreError> {
        self.reachable()?;
        {
            let mut nodes = self.lock();
            let n = nodes
                .get_mut(path)
                .ok_or_else(|| StoreError::NoNode(path.to_owned()))?;
            if version.is_some_and(|v| v != n.version) {
                return Err(StoreError::BadVersion(path.to_owned()));
            }
            n.data = data;
            n.version += 1;
        }
        self.bump();
        Ok(())
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        self.reachable()?;
        let prefix = format!("{}/", path.trim_end_matches('/'));
        Ok(self
            .lock()
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| {
                let rest = &k[prefix.len()..];
                (!rest.contains('/')).then(|| rest.to_owned())
            })
            .collect())
    }

    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.reachable()?;
        let prefix = format!("{path}/");
        self.lock()
            .retain(|k, _| k != path && !k.starts_with(&prefix));
        self.bump();
        Ok(())
    }

    async fn changed(&self, _path: &str) {
        let mut rx = self.tick.subscribe();
        let _ = rx.changed().await;
    }
}
