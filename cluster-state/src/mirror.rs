//! A copy of chosen subtrees of a store, kept current by one tree watch ([`Store::watch_tree`]):
//! reads under them are answered from memory, and a node is read again only after it changed
//! (all changed nodes at once). Nimbus reads through one, so a pass that finds nothing changed
//! sends ZooKeeper nothing; without it, every pass read every record (docs/scale.md).
//!
//! Writes go to the store and then to the copy, so a caller reads its own writes. When events may
//! have been lost (the connection dropped, a new session) the next read loads everything again,
//! and fails, as the store would, while the store cannot be reached.

use crate::store::{
    Node, NodeKind, Store, StoreError, TreeEvent, Watch, children_in, children_many, get_many,
    is_under,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// Events the watch delivered and nobody has applied yet.
#[derive(Default)]
struct Pending {
    dirty: BTreeSet<String>,
    /// Events may have been lost: load everything again.
    reset: bool,
    /// The watch ended (its session did): set a new one.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    notify: tokio::sync::Notify,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
struct Copy {
    nodes: BTreeMap<String, (Vec<u8>, i32)>,
    /// Whether `nodes` is a complete copy as of the events applied.
    fresh: bool,
    watching: bool,
    /// Changed nodes not read yet, and when changed nodes were last read.
    dirty: BTreeSet<String>,
    fetched: Option<std::time::Instant>,
}

/// A [`Store`] whose subtrees under `roots` are mirrored in memory.
pub struct Mirrored<S> {
    inner: S,
    roots: Vec<String>,
    shared: Arc<Shared>,
    copy: tokio::sync::Mutex<Copy>,
    /// Changed nodes are read again at most this often (zero: on every read).
    every: std::time::Duration,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Mirrored<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirrored")
            .field("inner", &self.inner)
            .field("roots", &self.roots)
            .finish()
    }
}

impl<S: Store> Mirrored<S> {
    pub fn new(inner: S, roots: &[&str]) -> Self {
        Mirrored {
            inner,
            roots: roots.iter().map(|r| (*r).to_owned()).collect(),
            shared: Arc::default(),
            copy: tokio::sync::Mutex::default(),
            every: std::time::Duration::ZERO,
        }
    }

    /// Reads changed nodes again at most every `every`: a reader that reads many nodes in a
    /// row (a Nimbus pass over a thousand supervisors) does not wait for a round trip per read
    /// while others keep writing (heartbeats); what it reads is at most `every` older than the
    /// last event. Its own writes it reads back at once.
    pub fn refreshing_every(mut self, every: std::time::Duration) -> Self {
        self.every = every;
        self
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn mirrored(&self, path: &str) -> bool {
        self.roots.iter().any(|r| is_under(path, r))
    }

    /// Brings the copy up to date: sets the watch if none is set, loads everything when events
    /// may have been lost, else reads again the nodes that changed.
    async fn refresh(&self) -> Result<tokio::sync::MutexGuard<'_, Copy>, StoreError> {
        let mut copy = self.copy.lock().await;
        let (dirty, reset, closed) = {
            let mut p = self.shared.pending();
            let out = (std::mem::take(&mut p.dirty), p.reset, p.closed);
            p.reset = false;
            p.closed = false;
            out
        };
        if closed {
            copy.watching = false;
        }
        if reset {
            copy.fresh = false;
        }
        if !copy.watching {
            // The watch before the load: nothing that changes after the load is missed.
            self.watch().await?;
            copy.watching = true;
            copy.fresh = false;
        }
        if !copy.fresh {
            copy.dirty.clear();
            copy.nodes = self.load().await?;
            copy.fresh = true;
            copy.fetched = Some(std::time::Instant::now());
            return Ok(copy);
        }
        copy.dirty.extend(dirty);
        let due = copy.fetched.is_none_or(|t| t.elapsed() >= self.every);
        if copy.dirty.is_empty() || !due {
            return Ok(copy);
        }
        copy.fetched = Some(std::time::Instant::now());
        let paths: Vec<String> = std::mem::take(&mut copy.dirty).into_iter().collect();
        match get_many(&self.inner, &paths).await {
            Ok(nodes) => {
                for (p, n) in paths.into_iter().zip(nodes) {
                    match n {
                        Some(v) => {
                            copy.nodes.insert(p, v);
                        }
                        None => {
                            copy.nodes.remove(&p);
                        }
                    }
                }
                Ok(copy)
            }
            Err(e) => {
                copy.fresh = false;
                Err(e)
            }
        }
    }

    async fn watch(&self) -> Result<(), StoreError> {
        let mut rx = self.inner.watch_tree("/").await?;
        let shared = self.shared.clone();
        let roots = self.roots.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                match ev {
                    TreeEvent::Changed(p) if roots.iter().any(|r| is_under(&p, r)) => {
                        shared.pending().dirty.insert(p);
                    }
                    TreeEvent::Changed(_) => continue,
                    TreeEvent::Reset => shared.pending().reset = true,
                }
                shared.notify.notify_waiters();
            }
            let mut p = shared.pending();
            p.closed = true;
            p.reset = true;
            drop(p);
            shared.notify.notify_waiters();
        });
        Ok(())
    }

    /// Every node under the roots, a level at a time, each level's reads all in flight at once.
    async fn load(&self) -> Result<BTreeMap<String, (Vec<u8>, i32)>, StoreError> {
        let mut nodes = BTreeMap::new();
        let mut level = self.roots.clone();
        while !level.is_empty() {
            let (data, kids) = tokio::try_join!(
                get_many(&self.inner, &level),
                children_many(&self.inner, &level)
            )?;
            let mut next = Vec::new();
            for ((path, node), children) in level.into_iter().zip(data).zip(kids) {
                next.extend(children.iter().map(|c| format!("{path}/{c}")));
                if let Some(n) = node {
                    nodes.insert(path, n);
                }
            }
            level = next;
        }
        Ok(nodes)
    }
}

impl<S: Store> Store for Mirrored<S> {
    async fn create(&self, path: &str, data: Vec<u8>, kind: NodeKind) -> Result<(), StoreError> {
        self.inner.create(path, data.clone(), kind).await?;
        if self.mirrored(path) {
            let mut copy = self.copy.lock().await;
            let mut at = 0;
            while let Some(i) = path[at + 1..].find('/') {
                at += i + 1;
                let parent = &path[..at];
                if self.mirrored(parent) {
                    copy.nodes
                        .entry(parent.to_owned())
                        .or_insert_with(|| (Vec::new(), 0));
                }
            }
            copy.nodes.insert(path.to_owned(), (data, 0));
        }
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Node, StoreError> {
        if !self.mirrored(path) {
            return self.inner.get(path).await;
        }
        Ok(self.refresh().await?.nodes.get(path).cloned())
    }

    async fn set(&self, path: &str, data: Vec<u8>, version: Option<i32>) -> Result<(), StoreError> {
        self.inner.set(path, data.clone(), version).await?;
        if self.mirrored(path) {
            let mut copy = self.copy.lock().await;
            let v = copy.nodes.get(path).map_or(0, |(_, v)| v + 1);
            copy.nodes.insert(path.to_owned(), (data, v));
        }
        Ok(())
    }

    async fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        if !self.mirrored(path) {
            return self.inner.children(path).await;
        }
        Ok(children_in(&self.refresh().await?.nodes, path))
    }

    async fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.inner.delete(path).await?;
        if self.mirrored(path) {
            let prefix = format!("{path}/");
            self.copy
                .lock()
                .await
                .nodes
                .retain(|k, _| k != path && !k.starts_with(&prefix));
        }
        Ok(())
    }

    /// Resolves on the next event under `path` (no request is sent); before the first read has
    /// set the watch, as the store's own.
    async fn changed(&self, path: &str) {
        if !self.mirrored(path) || !self.copy.lock().await.watching {
            return self.inner.changed(path).await;
        }
        // Events elsewhere (heartbeats, every few seconds per worker) do not wake the caller.
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let p = self.shared.pending();
                if p.reset || p.dirty.iter().any(|d| is_under(d, path)) {
                    return;
                }
            }
            notified.await;
        }
    }

    async fn get_watched(&self, path: &str) -> Result<(Node, Watch), StoreError> {
        self.inner.get_watched(path).await
    }

    async fn watch_tree(
        &self,
        path: &str,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<TreeEvent>, StoreError> {
        self.inner.watch_tree(path).await
    }

    fn session(&self) -> u64 {
        self.inner.session()
    }

    fn requests(&self) -> Option<crate::store::Requests> {
        self.inner.requests()
    }
}
