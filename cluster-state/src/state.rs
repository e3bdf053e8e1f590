//! Typed cluster state over a [`Store`]: every znode path Gale uses is named here and only here.

use crate::records::*;
use crate::store::{NodeKind, Store, StoreError, put};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The paths of docs/contract.md §6.
pub mod paths {
    pub const SUPERVISORS: &str = "/supervisors";
    pub const STORMS: &str = "/storms";
    pub const TOPOLOGIES: &str = "/topologies";
    pub const ASSIGNMENTS: &str = "/assignments";
    pub const WORKERBEATS: &str = "/workerbeats";
    pub const ERRORS: &str = "/errors";
    pub const TOTALS: &str = "/totals";
    pub const NIMBUSES: &str = "/nimbuses";
    pub const LEADER_LOCK: &str = "/leader-lock";
    /// Per supervisor: what it runs (`SupervisorAssignments`).
    pub const ASSIGNED: &str = "/assigned";

    pub fn supervisor(id: &str) -> String {
        format!("{SUPERVISORS}/{id}")
    }
    pub fn assigned(supervisor: &str) -> String {
        format!("{ASSIGNED}/{supervisor}")
    }
    pub fn storm(id: &str) -> String {
        format!("{STORMS}/{id}")
    }
    pub fn topology(id: &str) -> String {
        format!("{TOPOLOGIES}/{id}")
    }
    pub fn assignment(id: &str) -> String {
        format!("{ASSIGNMENTS}/{id}")
    }
    pub fn workerbeats(id: &str) -> String {
        format!("{WORKERBEATS}/{id}")
    }
    pub fn workerbeat(id: &str, supervisor: &str, port: u16) -> String {
        format!("{WORKERBEATS}/{id}/{supervisor}-{port}")
    }
    /// A stopped worker's last beat (see `WorkerBeat::stopped`).
    pub fn stopped_workerbeat(id: &str, supervisor: &str, port: u16, at_us: u64) -> String {
        format!("{WORKERBEATS}/{id}/{supervisor}-{port}-stopped-{at_us}")
    }
    pub fn totals(id: &str) -> String {
        format!("{TOTALS}/{id}")
    }
    pub fn errors(id: &str) -> String {
        format!("{ERRORS}/{id}")
    }
    pub fn component_errors(id: &str, component: &str) -> String {
        format!("{ERRORS}/{id}/{component}")
    }
    pub fn nimbus(address: &str) -> String {
        format!("{NIMBUSES}/{address}")
    }
}

/// Why a typed read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot decode {path}: {message}")]
    Decode { path: String, message: String },
    #[error("cannot encode {path}: {message}")]
    Encode { path: String, message: String },
    /// ZooKeeper refuses a node over its `jute.maxbuffer` (1 MiB by default) and drops the
    /// writer's session; Gale refuses it first, naming the size.
    #[error("{path} would be {size} bytes; ZooKeeper takes at most {limit} bytes per node")]
    TooLarge {
        path: String,
        size: usize,
        limit: usize,
    },
}

/// Largest record Gale writes to one node: under ZooKeeper's default `jute.maxbuffer`
/// (1,048,575 bytes) with room for the request around it.
pub const MAX_NODE_BYTES: usize = 1_000_000;

impl StateError {
    /// True when the store could not be reached (as opposed to bad data).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StateError::Store(StoreError::Unavailable(_)))
    }
}

fn encode<T: Serialize>(path: &str, v: &T) -> Result<Vec<u8>, StateError> {
    let bytes = rmp_serde::to_vec_named(v).map_err(|e| StateError::Encode {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    if bytes.len() > MAX_NODE_BYTES {
        return Err(StateError::TooLarge {
            path: path.to_owned(),
            size: bytes.len(),
            limit: MAX_NODE_BYTES,
        });
    }
    Ok(bytes)
}

fn decode<T: DeserializeOwned>(path: &str, b: &[u8]) -> Result<T, StateError> {
    rmp_serde::from_slice(b).map_err(|e| StateError::Decode {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// How leadership stands after [`ClusterState::lead`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lead {
    /// This call created the lock: it is this session's until the session ends.
    Took,
    /// The lock names this address, from this or an earlier session of the same address (which
    /// may end and take the lock with it: ask again).
    Mine,
    /// Another Nimbus leads.
    Other,
}

/// Typed access to the cluster's state.
#[derive(Debug)]
pub struct ClusterState<S> {
    store: S,
}

impl<S: Store> ClusterState<S> {
    pub fn new(store: S) -> Self {
        ClusterState { store }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    async fn read<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, StateError> {
        match self.store.get(path).await? {
            Some((b, _)) => decode(path, &b).map(Some),
            None => Ok(None),
        }
    }

    async fn write<T: Serialize>(
        &self,
        path: &str,
        v: &T,
        kind: NodeKind,
    ) -> Result<(), StateError> {
        put(&self.store, path, encode(path, v)?, kind).await?;
        Ok(())
    }

    async fn read_all<T: DeserializeOwned>(
        &self,
        dir: &str,
    ) -> Result<Vec<(String, T)>, StateError> {
        let mut out = Vec::new();
        for child in self.store.children(dir).await? {
            let p = format!("{dir}/{child}");
            // A node may vanish between listing and reading; a bad record is skipped with a log
            // line rather than taking the whole cluster view down.
            match self.read::<T>(&p).await {
                Ok(Some(v)) => out.push((child, v)),
                Ok(None) => {}
                Err(e @ StateError::Decode { .. }) => {
                    tracing::warn!(path = %p, error = %e, "Skipping unreadable record")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    // Supervisors.

    /// Registers (or refreshes) a supervisor's ephemeral node.
    pub async fn register_supervisor(&self, r: &SupervisorRecord) -> Result<(), StateError> {
        self.write(&paths::supervisor(&r.id), r, NodeKind::Ephemeral)
            .await
    }

    /// Registers a supervisor in a new session: a node left by its previous session (a restart
    /// quicker than the session timeout) is replaced, so the node lives exactly as long as this
    /// session; written over, it would vanish when the old session expires.
    pub async fn register_supervisor_anew(&self, r: &SupervisorRecord) -> Result<(), StateError> {
        let path = paths::supervisor(&r.id);
        let bytes = encode(&path, r)?;
        self.store.delete(&path).await?;
        match self
            .store
            .create(&path, bytes.clone(), NodeKind::Ephemeral)
            .await
        {
            // Another process with this id registered in between: it is the live one.
            Err(StoreError::NodeExists(_)) => Ok(self.store.set(&path, bytes, None).await?),
            other => Ok(other?),
        }
    }

    pub async fn supervisors(&self) -> Result<Vec<SupervisorRecord>, StateError> {
        Ok(self
            .read_all(paths::SUPERVISORS)
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    // Topologies.

    pub async fn storms(&self) -> Result<Vec<(String, StormRecord)>, StateError> {
        self.read_all(paths::STORMS).await
    }

    pub async fn storm(&self, id: &str) -> Result<Option<StormRecord>, StateError> {
        self.read(&paths::storm(id)).await
    }

    pub async fn set_storm(&self, id: &str, r: &StormRecord) -> Result<(), StateError> {
        self.write(&paths::storm(id), r, NodeKind::Persistent).await
    }

    pub async fn topology(&self, id: &str) -> Result<Option<StoredTopology>, StateError> {
        self.read(&paths::topology(id)).await
    }

    pub async fn set_topology(&self, id: &str, t: &StoredTopology) -> Result<(), StateError> {
        self.write(&paths::topology(id), t, NodeKind::Persistent)
            .await
    }

    pub async fn assignment(&self, id: &str) -> Result<Option<AssignmentRecord>, StateError> {
        self.read(&paths::assignment(id)).await
    }

    pub async fn assignments(&self) -> Result<Vec<(String, AssignmentRecord)>, StateError> {
        self.read_all(paths::ASSIGNMENTS).await
    }

    pub async fn set_assignment(&self, id: &str, a: &AssignmentRecord) -> Result<(), StateError> {
        self.write(&paths::assignment(id), a, NodeKind::Persistent)
            .await
    }

    pub async fn remove_assignment(&self, id: &str) -> Result<(), StateError> {
        Ok(self.store.delete(&paths::assignment(id)).await?)
    }

    /// What each supervisor runs, as Nimbus last wrote it: (supervisor id, record).
    pub async fn all_supervisor_assignments(
        &self,
    ) -> Result<Vec<(String, SupervisorAssignments)>, StateError> {
        self.read_all(paths::ASSIGNED).await
    }

    pub async fn set_supervisor_assignments(
        &self,
        supervisor: &str,
        r: &SupervisorAssignments,
    ) -> Result<(), StateError> {
        self.write(&paths::assigned(supervisor), r, NodeKind::Persistent)
            .await
    }

    pub async fn remove_supervisor_assignments(&self, supervisor: &str) -> Result<(), StateError> {
        Ok(self.store.delete(&paths::assigned(supervisor)).await?)
    }

    /// What one supervisor runs, and a watch that fires when that changes (one request).
    pub async fn watch_supervisor_assignments(
        &self,
        supervisor: &str,
    ) -> Result<(SupervisorAssignments, crate::store::Watch), StateError> {
        let path = paths::assigned(supervisor);
        let (node, watch) = self.store.get_watched(&path).await?;
        let rec = match node {
            Some((b, _)) => decode(&path, &b)?,
            None => SupervisorAssignments::default(),
        };
        Ok((rec, watch))
    }

    /// Removes everything stored for a topology.
    pub async fn remove_topology(&self, id: &str) -> Result<(), StateError> {
        for p in [
            paths::assignment(id),
            paths::storm(id),
            paths::topology(id),
            paths::workerbeats(id),
            paths::errors(id),
            paths::totals(id),
        ] {
            self.store.delete(&p).await?;
        }
        Ok(())
    }

    /// The counters of a topology's stopped workers.
    pub async fn totals(&self, id: &str) -> Result<Option<TotalsRecord>, StateError> {
        self.read(&paths::totals(id)).await
    }

    pub async fn set_totals(&self, id: &str, t: &TotalsRecord) -> Result<(), StateError> {
        self.write(&paths::totals(id), t, NodeKind::Persistent)
            .await
    }

    // Heartbeats and errors.

    /// Writes a worker's beat; a stopped worker's last beat goes to a path of its own.
    pub async fn set_workerbeat(&self, id: &str, b: &WorkerBeat) -> Result<(), StateError> {
        let path = match b.stopped {
            Some(at) => paths::stopped_workerbeat(id, &b.supervisor, b.port, at),
            None => paths::workerbeat(id, &b.supervisor, b.port),
        };
        self.write(&path, b, NodeKind::Persistent).await
    }

    /// Removes a stopped worker's last beat once its counters are in the totals.
    pub async fn remove_stopped_workerbeat(
        &self,
        id: &str,
        b: &WorkerBeat,
    ) -> Result<(), StateError> {
        let Some(at) = b.stopped else { return Ok(()) };
        Ok(self
            .store
            .delete(&paths::stopped_workerbeat(id, &b.supervisor, b.port, at))
            .await?)
    }

    pub async fn remove_workerbeat(
        &self,
        id: &str,
        supervisor: &str,
        port: u16,
    ) -> Result<(), StateError> {
        Ok(self
            .store
            .delete(&paths::workerbeat(id, supervisor, port))
            .await?)
    }

    pub async fn workerbeats(&self, id: &str) -> Result<Vec<WorkerBeat>, StateError> {
        Ok(self
            .read_all(&paths::workerbeats(id))
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Appends an error to a component's record, keeping the latest 10.
    pub async fn report_error(
        &self,
        id: &str,
        component: &str,
        e: ErrorEntry,
    ) -> Result<(), StateError> {
        let p = paths::component_errors(id, component);
        let mut r: ErrorsRecord = self.read(&p).await?.unwrap_or_default();
        r.errors.push(e);
        let n = r.errors.len();
        if n > 10 {
            r.errors.drain(..n - 10);
        }
        self.write(&p, &r, NodeKind::Persistent).await
    }

    pub async fn errors(&self, id: &str) -> Result<Vec<(String, ErrorsRecord)>, StateError> {
        self.read_all(&paths::errors(id)).await
    }

    // Nimbus.

    /// Announces a Nimbus (ephemeral).
    pub async fn register_nimbus(&self, r: &NimbusRecord) -> Result<(), StateError> {
        self.write(&paths::nimbus(&r.address), r, NodeKind::Ephemeral)
            .await
    }

    /// Takes leadership if nobody holds it; true if `address` is (now) the leader.
    pub async fn try_lead(&self, address: &str) -> Result<bool, StateError> {
        Ok(self.lead(address).await? != Lead::Other)
    }

    /// Takes leadership if nobody holds it, and says how it stands.
    pub async fn lead(&self, address: &str) -> Result<Lead, StateError> {
        match self
            .store
            .create(
                paths::LEADER_LOCK,
                address.as_bytes().to_vec(),
                NodeKind::Ephemeral,
            )
            .await
        {
            Ok(()) => Ok(Lead::Took),
            Err(StoreError::NodeExists(_)) => {
                let holder = self.store.get(paths::LEADER_LOCK).await?;
                Ok(match holder {
                    Some((b, _)) if b == address.as_bytes() => Lead::Mine,
                    _ => Lead::Other,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn leader(&self) -> Result<Option<String>, StateError> {
        Ok(self
            .store
            .get(paths::LEADER_LOCK)
            .await?
            .map(|(b, _)| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Resolves when supervisors, storms or assignments may have changed.
    pub async fn changed(&self, dir: &str) {
        self.store.changed(dir).await
    }
}
