//! The ZooKeeper-backed [`Store`].
//!
//! One `zookeeper_client::Client` is shared; when its session ends (expired, closed) the next call
//! builds a new one. Ephemeral nodes die with the old session: daemons re-create theirs on every
//! heartbeat, so they come back after a new session without special handling.

use crate::store::{Node, NodeKind, Store, StoreError, TreeEvent, Watch};
use std::time::Duration;
use zookeeper_client as zk;

#[derive(Debug)]
pub struct ZkStore {
    hosts: String,
    root: String,
    session_timeout: Duration,
    auth: Option<ZkAuth>,
    client: tokio::sync::Mutex<Option<zk::Client>>,
    /// How many sessions this store has started.
    sessions: std::sync::atomic::AtomicU64,
}

/// ZooKeeper authentication, as Storm's `storm.zookeeper.auth.scheme` and
/// `storm.zookeeper.auth.payload` (`digest` with `user:password`). With it, every node Gale
/// creates can be changed only by the same identity; nodes that hold topologies (and their
/// resources) can be read only by it too, the rest by anyone.
#[derive(Clone)]
pub struct ZkAuth {
    pub scheme: String,
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for ZkAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZkAuth({}, ..)", self.scheme)
    }
}

/// Gale's identity may do anything; anyone may read.
static CREATOR_ALL_ANYONE_READ: [zk::Acl; 2] = [
    zk::Acl::new_const(zk::Permission::ALL, "auth", ""),
    zk::Acl::new_const(zk::Permission::READ, "world", "anyone"),
];
/// Only Gale's identity, for nodes that hold topologies and their resources.
static CREATOR_ONLY: [zk::Acl; 1] = [zk::Acl::new_const(zk::Permission::ALL, "auth", "")];

impl ZkStore {
    /// How a node at `path` (relative to the root) is created.
    fn opts(&self, path: &str, kind: NodeKind) -> zk::CreateOptions<'static> {
        let acls = match &self.auth {
            None => zk::Acls::anyone_all(),
            Some(_) if path.starts_with(crate::paths::TOPOLOGIES) => zk::Acls::new(&CREATOR_ONLY),
            Some(_) => zk::Acls::new(&CREATOR_ALL_ANYONE_READ),
        };
        match kind {
            NodeKind::Persistent => zk::CreateMode::Persistent.with_acls(acls),
            NodeKind::Ephemeral => zk::CreateMode::Ephemeral.with_acls(acls),
        }
    }
}

impl ZkStore {
    /// Connects to `hosts` (`host:port,...`) and makes sure `root` exists. Fails fast (with
    /// [`StoreError::Unavailable`]) when no server answers.
    pub async fn connect(
        hosts: &str,
        root: &str,
        session_timeout: Duration,
        auth: Option<ZkAuth>,
    ) -> Result<Self, StoreError> {
        let root = format!("/{}", root.trim_matches('/'));
        let s = ZkStore {
            hosts: hosts.to_owned(),
            root,
            session_timeout,
            auth,
            client: tokio::sync::Mutex::new(None),
            sessions: std::sync::atomic::AtomicU64::new(0),
        };
        let c = s.client().await?;
        if s.root != "/" {
            c.mkdir(&s.root, &s.opts("/", NodeKind::Persistent))
                .await
                .map_err(|e| s.err(&s.root.clone(), e))?;
        }
        Ok(s)
    }

    async fn client(&self) -> Result<zk::Client, StoreError> {
        let mut g = self.client.lock().await;
        if let Some(c) = g.as_ref()
            && !c.state().is_terminated()
        {
            return Ok(c.clone());
        }
        if g.is_some() {
            tracing::warn!(hosts = %self.hosts, "ZooKeeper session ended; starting a new one");
        }
        let mut connector = zk::Client::connector()
            .with_session_timeout(self.session_timeout)
            .with_connection_timeout(Duration::from_secs(2))
            .with_fail_eagerly();
        if let Some(a) = &self.auth {
            connector = connector.with_auth(&a.scheme, &a.payload);
        }
        let connect = connector.connect(&self.hosts);
        let c = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no ZooKeeper answered at {} within 10 s",
                    self.hosts
                ))
            })?
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot connect to ZooKeeper at {}: {e}",
                    self.hosts
                ))
            })?;
        *g = Some(c.clone());
        self.sessions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(c)
    }

    fn full(&self, path: &str) -> String {
        if self.root == "/" {
            path.to_owned()
        } else if path == "/" {
            self.root.clone()
        } else {
            format!("{}{}", self.root, path)
        }
    }

    fn err(&self, path: &str, e: zk::Error) -> StoreError {
        match e {
            zk::Error::NoNode => StoreError::NoNode(path.to_owned()),
            zk::Error::NodeExists => StoreError::NodeExists(path.to_owned()),
            zk::Error::BadVersion => StoreError::BadVersion(path.to_owned()),
            zk::Error::ConnectionLoss
            | zk::Error::SessionExpired
            | zk::Error::ClientClosed
            | zk::Error::Timeout
            | zk::Error::NoHosts => StoreError::Unavailable(e.to_string()),
            other => StoreError::Other(other.to_string()),
        }
    }

    async fn delete_tree(&self, c: &zk::Client, full: &str) -> Result<(), StoreError> {
        let children = match c.list_children(full).await {
            Ok(ch) => ch,
            Err(zk::Error::NoNode) => return Ok(()),
            Err(e) => return Err(self.err(full, e)),
        };
        for ch in children {
            Box::pin(self.delete_tree(c, &format!("{full}/{ch}"))).await?;
        }
        match c.delete(full, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(self.err(full, e)),
        }
    }
}

impl Store for ZkStore {
    async fn create(&self, path: &str, data: Vec<u8>, kind: NodeKind) -> Result<(), StoreError> {
        let c = self.client().await?;
        let full = self.full(path);
        match c.create(&full, &data, &self.opts(path, kind)).await {
            Ok(_) => Ok(()),
            Err(zk::Error::NoNode) => {
                if let Some(i) = full.rfind('/')
                    && i > 0
                {
                    let parent = path.rsplit_once('/').map_or("/", |(p, _)| p);
                    let parent_opts = self.opts(parent, NodeKind::Persistent);
                    match c.mkdir(&full[..i], &parent_opts).await {
                        Ok(()) | Err(zk::Error::NodeExists) => {}
                        Err(e) => return Err(self.err(path, e)),
                    }
                }
                c.create(&full, &data, &self.opts(path, kind))
                    .await
                    .map(|_| ())
                    .map_err(|e| self.err(path, e))
            }
            Err(e) => Err(self.err(path, e)),
        }
    }

    async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, i32)>, StoreError> {
        let c = self.client().await?;
        match c.get_data(&self.full(path)).await {
            Ok((data, stat)) => Ok(Some((data, stat.version))),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(self.err(path, e)),
        }
    }

    async fn set(&self, path: &str, data: Vec<u8>, version: Option<i32>) -> Result<(), StoreError> {
        let c = self.client().await?;
        c.set_data(&self.full(path), &data, version)
            .await
            .map(|_| ())
            .map_err(|e| self.err(path, e))
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        let c = self.client().await?;
        match c.list_children(&self.full(path)).await {
            Ok(mut ch) => {
                ch.sort();
                Ok(ch)
            }
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(e) => Err(self.err(path, e)),
        }
    }

    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        let c = self.client().await?;
        self.delete_tree(&c, &self.full(path)).await
    }

    async fn get_watched(&self, path: &str) -> Result<(Node, Watch), StoreError> {
        let c = self.client().await?;
        let full = self.full(path);
        match c.get_and_watch_data(&full).await {
            Ok((data, stat, w)) => Ok((
                Some((data, stat.version)),
                Box::pin(async move {
                    w.changed().await;
                }),
            )),
            // Gone: watch for its creation instead.
            Err(zk::Error::NoNode) => match c.check_and_watch_stat(&full).await {
                Ok((stat, w)) => {
                    let watch: Watch = Box::pin(async move {
                        w.changed().await;
                    });
                    match stat {
                        // Created in between: read it (the watch stays armed).
                        Some(_) => Ok((self.get(path).await?, watch)),
                        None => Ok((None, watch)),
                    }
                }
                Err(e) => Err(self.err(path, e)),
            },
            Err(e) => Err(self.err(path, e)),
        }
    }

    async fn watch_tree(
        &self,
        path: &str,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<TreeEvent>, StoreError> {
        let c = self.client().await?;
        let mut w = c
            .watch(&self.full(path), zk::AddWatchMode::PersistentRecursive)
            .await
            .map_err(|e| self.err(path, e))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let root = self.root.clone();
        tokio::spawn(async move {
            // The watch lives as long as the session it was set in, or until nobody listens.
            let _session = c;
            loop {
                let ev = tokio::select! {
                    ev = w.changed() => ev,
                    _ = tx.closed() => break,
                };
                if ev.event_type == zk::EventType::Session {
                    // Events during a disconnection can be lost (ZOOKEEPER-4698): after one,
                    // the listener reads everything again.
                    let _ = tx.send(TreeEvent::Reset);
                    if ev.session_state.is_terminated() {
                        break;
                    }
                    continue;
                }
                let rel = match root.as_str() {
                    "/" => ev.path,
                    r => match ev.path.strip_prefix(r) {
                        Some("") => "/".to_owned(),
                        Some(rest) => rest.to_owned(),
                        None => continue,
                    },
                };
                if tx.send(TreeEvent::Changed(rel)).is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }

    fn session(&self) -> u64 {
        self.sessions.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn changed(&self, path: &str) {
        let Ok(c) = self.client().await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        };
        let full = self.full(path);
        match c.list_and_watch_children(&full).await {
            Ok((_, w)) => {
                w.changed().await;
            }
            Err(_) => match c.check_and_watch_stat(&full).await {
                Ok((_, w)) => {
                    w.changed().await;
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            },
        }
    }
}
