//! The embedded state store (`topology.state.provider: embedded`, Gale's default in local mode):
//! every task namespace of a topology in one [redb](https://docs.rs/redb) file,
//! `<gale.state.dir>/<topology>.redb`.
//!
//! redb is a maintained, pure-Rust, ACID key-value store (copy-on-write B-trees, a checksummed
//! commit per transaction): a prepare and a commit are each one write transaction, so a
//! `kill -9` at any point leaves either the old or the new checkpoint, never half of one. It
//! needs no server and no C library (RocksDB would bring a C++ build; sled is unmaintained).
//!
//! Layout (three tables, keys prefixed by the namespace and a NUL byte, which component ids
//! cannot hold): `committed` (key -> value), `prepared` (key -> value, empty = delete), and
//! `txid` (`<ns>\0commit` / `<ns>\0prepare` -> transaction), as Storm's Redis layout.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use topology_api::state::{Change, ProviderConfig, StateError, StateProvider, StateStore, Stored};

/// The provider's short name and Gale's class name for it.
pub const NAME: &str = "embedded";
pub const CLASS: &str = "org.gale.state.EmbeddedKeyValueStateProvider";

const COMMITTED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("committed");
const PREPARED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("prepared");
const TXID: TableDefinition<&[u8], u64> = TableDefinition::new("txid");

fn store_err(e: impl std::fmt::Display) -> StateError {
    StateError::Store(format!("embedded store: {e}"))
}

/// Registers the provider under its short name and class name.
pub fn register(r: &mut topology_api::Registry) {
    for name in [NAME, CLASS] {
        r.register_state_provider(name, |c| {
            Ok(Arc::new(EmbeddedProvider::open_for(c)?) as Arc<dyn StateProvider>)
        });
    }
}

/// One topology's state file.
#[derive(Clone)]
pub struct EmbeddedProvider {
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EmbeddedProvider({})", self.path.display())
    }
}

/// Where state lives when `gale.state.dir` is not set: `gale-state` under the system's
/// temporary folder.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join("gale-state")
}

impl EmbeddedProvider {
    fn open_for(c: &ProviderConfig<'_>) -> Result<Self, StateError> {
        let dir = c
            .config
            .get(topology_api::keys::STATE_DIR)
            .and_then(|v| v.as_str())
            .map(PathBuf::from)
            .unwrap_or_else(default_dir);
        Self::open(&dir.join(format!("{}.redb", c.topology)))
    }

    /// Opens (creating it and its folder if needed) the state file at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StateError::Store(format!(
                    "cannot create the state folder {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let db = Database::create(path).map_err(|e| {
            StateError::Store(format!(
                "cannot open the state file {}: {e}",
                path.display()
            ))
        })?;
        let w = db.begin_write().map_err(store_err)?;
        {
            w.open_table(COMMITTED).map_err(store_err)?;
            w.open_table(PREPARED).map_err(store_err)?;
            w.open_table(TXID).map_err(store_err)?;
        }
        w.commit().map_err(store_err)?;
        Ok(EmbeddedProvider {
            db: Arc::new(db),
            path: path.to_owned(),
        })
    }
}

impl StateProvider for EmbeddedProvider {
    fn open(&self, namespace: &str) -> Result<Box<dyn StateStore>, StateError> {
        if namespace.as_bytes().contains(&0) {
            return Err(StateError::Store(format!(
                "namespace {namespace:?} holds a NUL byte"
            )));
        }
        let mut prefix = namespace.as_bytes().to_vec();
        prefix.push(0);
        Ok(Box::new(EmbeddedStore {
            db: self.db.clone(),
            prefix,
        }))
    }
}

struct EmbeddedStore {
    db: Arc<Database>,
    /// `<namespace>\0`
    prefix: Vec<u8>,
}

impl EmbeddedStore {
    fn key(&self, k: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.prefix.len() + k.len());
        v.extend_from_slice(&self.prefix);
        v.extend_from_slice(k);
        v
    }

    /// The keys of this namespace: `prefix..` up to the next namespace.
    fn upper(&self) -> Vec<u8> {
        let mut end = self.prefix.clone();
        // NUL + 1: no key of this namespace sorts past it.
        if let Some(last) = end.last_mut() {
            *last = 1;
        }
        end
    }

    fn entries(
        &self,
        t: &impl ReadableTable<&'static [u8], &'static [u8]>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        let mut out = Vec::new();
        let (lo, hi) = (self.prefix.clone(), self.upper());
        for item in t.range(lo.as_slice()..hi.as_slice()).map_err(store_err)? {
            let (k, v) = item.map_err(store_err)?;
            out.push((k.value()[self.prefix.len()..].to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }
}

impl StateStore for EmbeddedStore {
    fn load(&mut self) -> Result<Stored, StateError> {
        let r = self.db.begin_read().map_err(store_err)?;
        let committed = self.entries(&r.open_table(COMMITTED).map_err(store_err)?)?;
        let prepared = self.entries(&r.open_table(PREPARED).map_err(store_err)?)?;
        let txids = r.open_table(TXID).map_err(store_err)?;
        let txid = |what: &[u8]| -> Result<Option<u64>, StateError> {
            Ok(txids
                .get(self.key(what).as_slice())
                .map_err(store_err)?
                .map(|v| v.value()))
        };
        let prepare_txid = txid(b"prepare")?;
        Ok(Stored {
            committed,
            commit_txid: txid(b"commit")?,
            prepared: prepare_txid.map(|t| {
                let changes = prepared
                    .into_iter()
                    .map(|(k, v)| (k, (!v.is_empty()).then_some(v)))
                    .collect();
                (t, changes)
            }),
        })
    }

    fn prepare(&mut self, txid: u64, changes: &[Change]) -> Result<(), StateError> {
        let w = self.db.begin_write().map_err(store_err)?;
        {
            let mut p = w.open_table(PREPARED).map_err(store_err)?;
            let (lo, hi) = (self.prefix.clone(), self.upper());
            p.retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)
                .map_err(store_err)?;
            for (k, v) in changes {
                let v = v.as_deref().unwrap_or(&[]);
                p.insert(self.key(k).as_slice(), v).map_err(store_err)?;
            }
            let mut t = w.open_table(TXID).map_err(store_err)?;
            t.insert(self.key(b"prepare").as_slice(), txid)
                .map_err(store_err)?;
        }
        w.commit().map_err(store_err)
    }

    fn commit(&mut self, txid: u64) -> Result<(), StateError> {
        let w = self.db.begin_write().map_err(store_err)?;
        {
            let mut t = w.open_table(TXID).map_err(store_err)?;
            let prepared_txid = t
                .get(self.key(b"prepare").as_slice())
                .map_err(store_err)?
                .map(|v| v.value());
            if prepared_txid == Some(txid) {
                let mut p = w.open_table(PREPARED).map_err(store_err)?;
                let mut c = w.open_table(COMMITTED).map_err(store_err)?;
                let batch = self.entries(&p)?;
                for (k, v) in batch {
                    let key = self.key(&k);
                    if v.is_empty() {
                        c.remove(key.as_slice()).map_err(store_err)?;
                    } else {
                        c.insert(key.as_slice(), v.as_slice()).map_err(store_err)?;
                    }
                }
                let (lo, hi) = (self.prefix.clone(), self.upper());
                p.retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)
                    .map_err(store_err)?;
                t.remove(self.key(b"prepare").as_slice())
                    .map_err(store_err)?;
            }
            t.insert(self.key(b"commit").as_slice(), txid)
                .map_err(store_err)?;
        }
        w.commit().map_err(store_err)
    }

    fn rollback(&mut self) -> Result<(), StateError> {
        let w = self.db.begin_write().map_err(store_err)?;
        {
            let mut p = w.open_table(PREPARED).map_err(store_err)?;
            let (lo, hi) = (self.prefix.clone(), self.upper());
            p.retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)
                .map_err(store_err)?;
            let mut t = w.open_table(TXID).map_err(store_err)?;
            t.remove(self.key(b"prepare").as_slice())
                .map_err(store_err)?;
        }
        w.commit().map_err(store_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use topology_api::state::MemoryProvider;

    fn temp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("gale-redb-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn checkpoints_survive_reopening_and_namespaces_stay_apart() {
        let dir = temp("reopen");
        let path = dir.join("t.redb");
        {
            let p = EmbeddedProvider::open(&path).unwrap();
            let mut a = p.open("count-1").unwrap();
            let mut b = p.open("count-10").unwrap();
            a.prepare(1, &[(b"storm".to_vec(), Some(b"3".to_vec()))])
                .unwrap();
            a.commit(1).unwrap();
            b.prepare(1, &[(b"gale".to_vec(), Some(b"5".to_vec()))])
                .unwrap();
            a.prepare(2, &[(b"storm".to_vec(), None)]).unwrap();
        }
        let p = EmbeddedProvider::open(&path).unwrap();
        let a = p.open("count-1").unwrap().load().unwrap();
        assert_eq!(a.committed, vec![(b"storm".to_vec(), b"3".to_vec())]);
        assert_eq!(a.commit_txid, Some(1));
        assert_eq!(a.prepared, Some((2, vec![(b"storm".to_vec(), None)])));
        let b = p.open("count-10").unwrap().load().unwrap();
        assert!(b.committed.is_empty());
        assert_eq!(
            b.prepared,
            Some((1, vec![(b"gale".to_vec(), Some(b"5".to_vec()))]))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The embedded store does what the in-memory reference does, for any sequence of
        /// prepares, commits and rollbacks.
        #[test]
        fn behaves_as_the_in_memory_store(ops in proptest::collection::vec((0u8..3, proptest::collection::vec((0u8..5, proptest::option::of(0u8..3)), 0..4)), 0..20)) {
            let dir = temp(&format!("prop-{}", ops.len()));
            let e = EmbeddedProvider::open(&dir.join("t.redb")).unwrap();
            let m = MemoryProvider::default();
            let (mut es, mut ms) = (e.open("n-1").unwrap(), m.open("n-1").unwrap());
            for (txid, (op, changes)) in ops.iter().enumerate() {
                let changes: Vec<Change> = changes.iter().map(|(k, v)| (vec![b'k', *k], v.map(|v| vec![b'1' + v]))).collect();
                let txid = txid as u64;
                match op {
                    0 => { es.prepare(txid, &changes).unwrap(); ms.prepare(txid, &changes).unwrap(); }
                    1 => { es.commit(txid.saturating_sub(1)).unwrap(); ms.commit(txid.saturating_sub(1)).unwrap(); }
                    _ => { es.rollback().unwrap(); ms.rollback().unwrap(); }
                }
                let (mut a, mut b) = (es.load().unwrap(), ms.load().unwrap());
                if let Some((_, c)) = a.prepared.as_mut() { c.sort(); }
                if let Some((_, c)) = b.prepared.as_mut() {
                    // The in-memory store keeps a batch as given; the embedded one by key, last wins.
                    let mut by_key = std::collections::BTreeMap::new();
                    for (k, v) in c.drain(..) { by_key.insert(k, v); }
                    c.extend(by_key);
                }
                prop_assert_eq!(a, b);
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
