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

/// A one-shot notification: resolves once the watched node may have changed (created, written,
/// deleted), or the connection did.
pub type Watch = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a tree watch ([`Store::watch_tree`]) reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeEvent {
    /// The node at this path (relative to the store's root) was created, written or deleted.
    Changed(String),
    /// Events may have been lost (the connection dropped, or the session ended): whoever keeps a
    /// copy reads everything again. After a session ended the channel closes too.
    Reset,
}

/// Data and version of a node, `None` when it does not exist.
pub type Node = Option<(Vec<u8>, i32)>;

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
    /// Like [`Store::get`], with a one-shot watch on the node: one request tells what the node
    /// holds and arms the notification of its next change.
    fn get_watched(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<(Node, Watch), StoreError>> + Send;
    /// Every later change under `path` (recursive, including `path`), as one event per node,
    /// until the receiver is dropped. One request; the events cost no requests.
    fn watch_tree(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<tokio::sync::mpsc::UnboundedReceiver<TreeEvent>, StoreError>> + Send;
    /// The store's session, as a number that changes when a new session starts: ephemeral
    /// nodes created in an earlier one are gone (or soon will be).
    fn session(&self) -> u64;
    /// The requests sent so far, when a [`Counted`] store counts them.
    fn requests(&self) -> Option<Requests> {
        None
    }
}

/// Reads many nodes at once: every request is sent before the first answer is awaited, so the
/// reads cost one round trip, not one each.
pub async fn get_many<S: Store>(s: &S, paths: &[String]) -> Result<Vec<Node>, StoreError> {
    futures_util::future::join_all(paths.iter().map(|p| s.get(p)))
        .await
        .into_iter()
        .collect()
}

/// Lists the children of many nodes at once (see [`get_many`]).
pub async fn children_many<S: Store>(
    s: &S,
    paths: &[String],
) -> Result<Vec<Vec<String>>, StoreError> {
    futures_util::future::join_all(paths.iter().map(|p| s.children(p)))
        .await
        .into_iter()
        .collect()
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
    /// Tree watches: (path, where its events go).
    trees: Mutex<Vec<(String, tokio::sync::mpsc::UnboundedSender<TreeEvent>)>>,
    session: std::sync::atomic::AtomicU64,
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore {
            nodes: Mutex::new(BTreeMap::new()),
            tick: tokio::sync::watch::channel(0).0,
            cut_off: std::sync::atomic::AtomicBool::new(false),
            trees: Mutex::new(Vec::new()),
            session: std::sync::atomic::AtomicU64::new(1),
        }
    }
}

/// The names of `path`'s children among the nodes of a map keyed by full path, sorted.
pub(crate) fn children_in<V>(nodes: &BTreeMap<String, V>, path: &str) -> Vec<String> {
    let prefix = format!("{}/", path.trim_end_matches('/'));
    nodes
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, _)| {
            let rest = &k[prefix.len()..];
            (!rest.contains('/')).then(|| rest.to_owned())
        })
        .collect()
}

/// Whether `path` is `root` or under it.
pub fn is_under(path: &str, root: &str) -> bool {
    root == "/"
        || path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends the session: ephemeral nodes go, tree watches report a reset and close (as
    /// ZooKeeper's do), and the next session starts.
    pub fn expire_session(&self) {
        let mut gone = Vec::new();
        self.lock().retain(|k, n| {
            if n.ephemeral {
                gone.push(k.clone());
            }
            !n.ephemeral
        });
        self.session
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.notify(&gone);
        for (_, tx) in std::mem::take(&mut *self.trees()) {
            let _ = tx.send(TreeEvent::Reset);
        }
        self.bump();
    }

    /// Tells every tree watch that events may have been lost (a dropped connection).
    pub fn drop_connection(&self) {
        for (_, tx) in self.trees().iter() {
            let _ = tx.send(TreeEvent::Reset);
        }
        self.bump();
    }

    fn trees(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<(String, tokio::sync::mpsc::UnboundedSender<TreeEvent>)>>
    {
        self.trees.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self, paths: &[String]) {
        let mut trees = self.trees();
        trees.retain(|(_, tx)| !tx.is_closed());
        for p in paths {
            for (root, tx) in trees.iter() {
                if is_under(p, root) {
                    let _ = tx.send(TreeEvent::Changed(p.clone()));
                }
            }
        }
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
        let mut created = Vec::new();
        {
            let mut nodes = self.lock();
            if nodes.contains_key(path) {
                return Err(StoreError::NodeExists(path.to_owned()));
            }
            for p in parents(path) {
                nodes.entry(p.to_owned()).or_insert_with(|| {
                    created.push(p.to_owned());
                    MemNode {
                        data: Vec::new(),
                        version: 0,
                        ephemeral: false,
                    }
                });
            }
            created.push(path.to_owned());
            nodes.insert(
                path.to_owned(),
                MemNode {
                    data,
                    version: 0,
                    ephemeral: kind == NodeKind::Ephemeral,
                },
            );
        }
        self.notify(&created);
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
        self.notify(&[path.to_owned()]);
        self.bump();
        Ok(())
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        self.reachable()?;
        Ok(children_in(&self.lock(), path))
    }

    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.reachable()?;
        let prefix = format!("{path}/");
        let mut gone = Vec::new();
        self.lock().retain(|k, _| {
            let keep = k != path && !k.starts_with(&prefix);
            if !keep {
                gone.push(k.clone());
            }
            keep
        });
        // Children before their parent, as ZooKeeper deletes them.
        gone.reverse();
        self.notify(&gone);
        self.bump();
        Ok(())
    }

    async fn changed(&self, _path: &str) {
        let mut rx = self.tick.subscribe();
        let _ = rx.changed().await;
    }

    /// Fires when the node (or anything under it) changes, or the session ends.
    async fn get_watched(&self, path: &str) -> Result<(Node, Watch), StoreError> {
        let mut rx = self.watch_tree(path).await?;
        let node = self.get(path).await?;
        let watch: Watch = Box::pin(async move {
            let _ = rx.recv().await;
        });
        Ok((node, watch))
    }

    async fn watch_tree(
        &self,
        path: &str,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<TreeEvent>, StoreError> {
        self.reachable()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.trees().push((path.to_owned(), tx));
        Ok(rx)
    }

    fn session(&self) -> u64 {
        self.session.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// How many requests of each kind went through a [`Counted`] store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    pub creates: u64,
    pub gets: u64,
    pub sets: u64,
    pub children: u64,
    pub deletes: u64,
    /// Requests that only set a watch (`changed`, `watch_tree`); `get_watched` is a get.
    pub watches: u64,
}

impl Requests {
    pub fn total(&self) -> u64 {
        self.creates + self.gets + self.sets + self.children + self.deletes + self.watches
    }
}

/// A store that counts the requests sent through it: what the daemons' tests assert their
/// ZooKeeper traffic with.
#[derive(Debug, Default)]
pub struct Counted<S> {
    inner: S,
    counts: Mutex<Requests>,
}

impl<S: Store> Counted<S> {
    pub fn new(inner: S) -> Self {
        Counted {
            inner,
            counts: Mutex::default(),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The requests so far.
    pub fn requests(&self) -> Requests {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut Requests)) {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

impl<S: Store> Store for Counted<S> {
    async fn create(&self, path: &str, data: Vec<u8>, kind: NodeKind) -> Result<(), StoreError> {
        self.count(|r| r.creates += 1);
        self.inner.create(path, data, kind).await
    }
    async fn get(&self, path: &str) -> Result<Node, StoreError> {
        self.count(|r| r.gets += 1);
        self.inner.get(path).await
    }
    async fn set(&self, path: &str, data: Vec<u8>, version: Option<i32>) -> Result<(), StoreError> {
        self.count(|r| r.sets += 1);
        self.inner.set(path, data, version).await
    }
    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        self.count(|r| r.children += 1);
        self.inner.children(path).await
    }
    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.count(|r| r.deletes += 1);
        self.inner.delete(path).await
    }
    async fn changed(&self, path: &str) {
        self.count(|r| r.watches += 1);
        self.inner.changed(path).await
    }
    /// One request (a read that sets a watch): counted as a get.
    async fn get_watched(&self, path: &str) -> Result<(Node, Watch), StoreError> {
        self.count(|r| r.gets += 1);
        self.inner.get_watched(path).await
    }
    async fn watch_tree(
        &self,
        path: &str,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<TreeEvent>, StoreError> {
        self.count(|r| r.watches += 1);
        self.inner.watch_tree(path).await
    }
    fn session(&self) -> u64 {
        self.inner.session()
    }
    fn requests(&self) -> Option<Requests> {
        Some(Counted::requests(self))
    }
}

/// A shared store is a store: tests keep a handle on the store a daemon uses.
impl<S: Store> Store for std::sync::Arc<S> {
    async fn create(&self, path: &str, data: Vec<u8>, kind: NodeKind) -> Result<(), StoreError> {
        (**self).create(path, data, kind).await
    }
    async fn get(&self, path: &str) -> Result<Node, StoreError> {
        (**self).get(path).await
    }
    async fn set(&self, path: &str, data: Vec<u8>, version: Option<i32>) -> Result<(), StoreError> {
        (**self).set(path, data, version).await
    }
    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        (**self).children(path).await
    }
    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        (**self).delete(path).await
    }
    async fn changed(&self, path: &str) {
        (**self).changed(path).await
    }
    async fn get_watched(&self, path: &str) -> Result<(Node, Watch), StoreError> {
        (**self).get_watched(path).await
    }
    async fn watch_tree(
        &self,
        path: &str,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<TreeEvent>, StoreError> {
        (**self).watch_tree(path).await
    }
    fn session(&self) -> u64 {
        (**self).session()
    }
    fn requests(&self) -> Option<Requests> {
        (**self).requests()
    }
}
