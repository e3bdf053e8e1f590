//! State for stateful bolts, as Storm's `KeyValueState`, and the store it is checkpointed to.
//!
//! A stateful bolt ([`StatefulBolt`]) keeps a [`KeyValueState`] that the runtime checkpoints
//! with Storm's protocol (see [`crate::checkpoint`]): on PREPARE the changes since the last
//! checkpoint are written to the task's [`StateStore`] as a prepared batch, on COMMIT the batch
//! becomes the committed data, on ROLLBACK it is dropped and the state reloaded. Stores come
//! from a [`StateProvider`] chosen by `topology.state.provider`; this crate has the in-memory
//! one ([`MemoryProvider`], Storm's default); the embedded store and Redis live in crates of
//! their own (`state-redb`, `state-redis`), so only they link their clients.
//!
//! Keys and values are stored as bytes readable by people (and `redis-cli`): a string as its
//! UTF-8 bytes, a number as its decimal text, anything else as JSON ([`encode`], [`decode`]).
//! A string that would read back as JSON of another value (`"42"`, `"true"`) is stored quoted,
//! as a JSON string, so every value reads back as itself.

use crate::component::{BoltCollector, ComponentError, Inputs, OutputDeclarer, TopologyContext};
use crate::tuple::Tuple;
use hashbrown::HashTable;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Why state could not be read, written or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state store: {0}")]
    Store(String),
    #[error("state of {namespace}: cannot {what}: {message}")]
    Codec {
        namespace: String,
        what: &'static str,
        message: String,
    },
    #[error("unknown state provider {name:?} (topology.state.provider); known providers: {known}")]
    UnknownProvider { name: String, known: String },
    #[error("topology.state.provider.config for {provider}: {message}")]
    Config { provider: String, message: String },
}

/// One key's change in a prepared batch: its new value, or `None` for a delete.
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// What a namespace holds in a store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The committed data.
    pub committed: Vec<(Vec<u8>, Vec<u8>)>,
    /// The last committed transaction.
    pub commit_txid: Option<u64>,
    /// A prepared batch not committed or rolled back yet, and its transaction.
    pub prepared: Option<(u64, Vec<Change>)>,
}

/// One task's state as bytes, in its namespace (`<component>-<task>`), with Storm's layout:
/// committed data, a prepared batch, and the transactions of both.
pub trait StateStore: Send {
    /// Everything the namespace holds.
    fn load(&mut self) -> Result<Stored, StateError>;
    /// Stores `changes` as the prepared batch of `txid`, replacing any earlier prepared batch.
    fn prepare(&mut self, txid: u64, changes: &[Change]) -> Result<(), StateError>;
    /// Applies the prepared batch of `txid` to the committed data and records `txid` as the
    /// committed transaction, atomically. With no prepared batch of `txid` it only records the
    /// transaction (a COMMIT repeated in recovery changes nothing twice).
    fn commit(&mut self, txid: u64) -> Result<(), StateError>;
    /// Drops the prepared batch.
    fn rollback(&mut self) -> Result<(), StateError>;
}

/// Opens task namespaces of one topology in one store.
pub trait StateProvider: Send + Sync + fmt::Debug {
    fn open(&self, namespace: &str) -> Result<Box<dyn StateStore>, StateError>;
}

/// What a provider is built from: the topology's name, its `topology.state.provider.config`
/// (parsed JSON; `Null` when unset) and its whole config (for Gale's own keys such as
/// `gale.state.dir`).
#[derive(Debug, Clone)]
pub struct ProviderConfig<'a> {
    pub topology: &'a str,
    pub provider_config: serde_json::Value,
    pub config: &'a serde_json::Map<String, serde_json::Value>,
}

pub type ProviderFactory =
    Arc<dyn Fn(&ProviderConfig<'_>) -> Result<Arc<dyn StateProvider>, StateError> + Send + Sync>;

/// Storm's default provider class: state in the worker's memory, lost when the worker stops.
pub const MEMORY_PROVIDER: &str = "org.apache.storm.state.InMemoryKeyValueStateProvider";

#[derive(Debug, Default)]
struct MemNamespace {
    committed: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    commit_txid: Option<u64>,
    prepared: Option<(u64, Vec<Change>)>,
}

/// State in this process's memory (Storm's `InMemoryKeyValueStateProvider`): it survives
/// rollbacks and recoveries within the worker, not the worker.
#[derive(Debug, Default, Clone)]
pub struct MemoryProvider {
    namespaces: Arc<Mutex<HashMap<String, MemNamespace>>>,
}

impl StateProvider for MemoryProvider {
    fn open(&self, namespace: &str) -> Result<Box<dyn StateStore>, StateError> {
        Ok(Box::new(MemStore {
            namespaces: self.namespaces.clone(),
            namespace: namespace.to_owned(),
        }))
    }
}

struct MemStore {
    namespaces: Arc<Mutex<HashMap<String, MemNamespace>>>,
    namespace: String,
}

impl MemStore {
    fn with<T>(&self, f: impl FnOnce(&mut MemNamespace) -> T) -> T {
        let mut g = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        f(g.entry(self.namespace.clone()).or_default())
    }
}

impl StateStore for MemStore {
    fn load(&mut self) -> Result<Stored, StateError> {
        Ok(self.with(|n| Stored {
            committed: n
                .committed
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            commit_txid: n.commit_txid,
            prepared: n.prepared.clone(),
        }))
    }

    fn prepare(&mut self, txid: u64, changes: &[Change]) -> Result<(), StateError> {
        self.with(|n| n.prepared = Some((txid, changes.to_vec())));
        Ok(())
    }

    fn commit(&mut self, txid: u64) -> Result<(), StateError> {
        self.with(|n| {
            if let Some((t, changes)) = n.prepared.take_if(|(t, _)| *t == txid) {
                debug_assert_eq!(t, txid);
                for (k, v) in changes {
                    match v {
                        Some(v) => n.committed.insert(k, v),
                        None => n.committed.remove(&k),
                    };
                }
            }
            n.commit_txid = Some(txid);
        });
        Ok(())
    }

    fn rollback(&mut self) -> Result<(), StateError> {
        self.with(|n| n.prepared = None);
        Ok(())
    }
}

/// A key or value as stored: a string as its UTF-8 bytes (quoted as JSON only when the bare
/// text would read back as another JSON value), anything else as compact JSON (so integers are
/// their decimal text).
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, String> {
    match serde_json::to_value(v).map_err(|e| e.to_string())? {
        // (The empty string is stored quoted: an empty stored value is a delete in a prepared
        // batch.)
        serde_json::Value::String(s)
            if !s.is_empty() && serde_json::from_str::<serde_json::Value>(&s).is_err() =>
        {
            Ok(s.into_bytes())
        }
        other => serde_json::to_vec(&other).map_err(|e| e.to_string()),
    }
}

/// Reads what [`encode`] wrote: JSON first, else the bytes as a string.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    match serde_json::from_slice::<T>(b) {
        Ok(v) => Ok(v),
        Err(json) => {
            let s = std::str::from_utf8(b).map_err(|_| format!("not JSON ({json}) nor UTF-8"))?;
            T::deserialize(serde_json::Value::String(s.to_owned())).map_err(|e| e.to_string())
        }
    }
}

/// The state's hash: Gale's fixed, fast hash ([`crate::value::StableHasher`], the one the
/// FIELDS grouping and the word count's map use) rather than SipHash, which took a fifth of a
/// stateful word count's time. Like those maps, it is not keyed per process: input built to
/// collide slows the task down (as it would Storm's Java maps).
#[derive(Clone, Copy, Debug, Default)]
pub struct StateHash;

/// [`StateHash`]'s hasher.
#[derive(Debug, Default)]
pub struct StateHasher(crate::value::StableHasher);

impl std::hash::BuildHasher for StateHash {
    type Hasher = StateHasher;

    fn build_hasher(&self) -> StateHasher {
        StateHasher::default()
    }
}

impl std::hash::Hasher for StateHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // Mixed once more: hashbrown reads the top 7 bits, and a FIELDS grouping may have fixed
        // some high bits of the keys that reach one task.
        crate::value::StableHasher::finish(&self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0.write_bytes(bytes);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0.write_u64(i);
    }
}

/// The hash of a string's bytes as [`StateHash`] hashes the `String` (or `str`) holding them:
/// `Hash for str` writes the bytes and then `0xff` (checked by a test), so a tuple's bytes find
/// their `String` key without being checked as UTF-8 or copied.
#[inline]
fn hash_text(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = StateHasher::default();
    h.write(bytes);
    h.write_u8(0xff);
    h.finish()
}

struct Entry<V> {
    value: V,
    /// Changed since the last prepare (and listed in `dirty`).
    dirty: bool,
}

/// Storm's `KeyValueState`: a map the runtime checkpoints. Reads and writes are in memory; the
/// changes since the last checkpoint are written out on PREPARE, each key once, however often
/// it changed. (All of a task's committed state is read into memory when it starts.)
///
/// The map is a `hashbrown` table looked up by a hash computed once per call, so an update is
/// one probe whether the key is there or not, and a `String` key can be found from a tuple's
/// bytes ([`KeyValueState::update_text`]).
pub struct KeyValueState<K, V> {
    table: HashTable<(K, Entry<V>)>,
    /// Keys changed since the last prepare, each once.
    dirty: Vec<K>,
    deleted: HashSet<K>,
}

impl<K, V> fmt::Debug for KeyValueState<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyValueState({} keys)", self.table.len())
    }
}

impl<K, V> Default for KeyValueState<K, V> {
    fn default() -> Self {
        KeyValueState {
            table: HashTable::new(),
            dirty: Vec::new(),
            deleted: HashSet::new(),
        }
    }
}

impl<K, V> KeyValueState<K, V>
where
    K: Serialize + DeserializeOwned + Hash + Eq + Clone,
    V: Serialize + DeserializeOwned + Clone,
{
    /// The state of a store's committed data.
    pub fn from_stored(namespace: &str, stored: &Stored) -> Result<Self, StateError> {
        let codec = |what: &'static str, message: String| StateError::Codec {
            namespace: namespace.to_owned(),
            what,
            message,
        };
        let mut state = KeyValueState {
            table: HashTable::with_capacity(stored.committed.len()),
            dirty: Vec::new(),
            deleted: HashSet::new(),
        };
        for (k, v) in &stored.committed {
            let key: K = decode(k).map_err(|m| codec("decode a key", m))?;
            let value: V = decode(v).map_err(|m| codec("decode a value", m))?;
            state.set(key, value, false);
        }
        Ok(state)
    }

    #[inline]
    fn hash<Q: Hash + ?Sized>(key: &Q) -> u64 {
        use std::hash::BuildHasher;
        StateHash.hash_one(key)
    }

    /// Sets `key` to `value`; `dirty`: listed for the next prepare.
    fn set(&mut self, key: K, value: V, dirty: bool) {
        let h = Self::hash(&key);
        match self
            .table
            .entry(h, |(k, _)| *k == key, |(k, _)| Self::hash(k))
        {
            hashbrown::hash_table::Entry::Occupied(o) => {
                let (_, e) = o.into_mut();
                e.value = value;
                if dirty && !e.dirty {
                    e.dirty = true;
                    self.dirty.push(key);
                }
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                if dirty {
                    self.dirty.push(key.clone());
                }
                v.insert((key, Entry { value, dirty }));
            }
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.table
            .find(Self::hash(key), |(k, _)| k.borrow() == key)
            .map(|(_, e)| &e.value)
    }

    /// The value of `key`, or `default` (Storm's `get(key, default)`).
    pub fn get_or(&self, key: &K, default: V) -> V {
        self.get(key).cloned().unwrap_or(default)
    }

    pub fn put(&mut self, key: K, value: V) {
        self.deleted.remove(&key);
        self.set(key, value, true);
    }

    /// Sets `key` to `f(its value)`, looking it up once by a borrowed key: the key is copied only
    /// when it is new, or first changed since the last checkpoint (a word count's hot path:
    /// `state.update(word, |n| n.unwrap_or(0) + 1)`).
    pub fn update<Q>(&mut self, key: &Q, f: impl FnOnce(Option<&V>) -> V) -> &V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let h = Self::hash(key);
        self.update_found(h, |k| k.borrow() == key, || Some(Q::to_owned(key)), f)
            .expect("an owned key")
            .1
    }

    /// The update of the key with hash `h` for which `is_key` holds; `owned` makes the key when
    /// it is new (`None`: no update, and `None` back).
    #[inline(always)]
    fn update_found(
        &mut self,
        h: u64,
        is_key: impl Fn(&K) -> bool,
        owned: impl FnOnce() -> Option<K>,
        f: impl FnOnce(Option<&V>) -> V,
    ) -> Option<(&K, &V)> {
        match self
            .table
            .entry(h, |(k, _)| is_key(k), |(k, _)| Self::hash(k))
        {
            hashbrown::hash_table::Entry::Occupied(o) => {
                let (k, e) = o.into_mut();
                e.value = f(Some(&e.value));
                if !e.dirty {
                    e.dirty = true;
                    self.dirty.push(k.clone());
                }
                Some((&*k, &e.value))
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                let key = owned()?;
                self.deleted.remove(&key);
                self.dirty.push(key.clone());
                let value = f(None);
                let (k, e) = v.insert((key, Entry { value, dirty: true })).into_mut();
                Some((&*k, &e.value))
            }
        }
    }

    pub fn delete<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let found = self
            .table
            .find_entry(Self::hash(key), |(k, _)| k.borrow() == key)
            .ok()?;
        let ((_, e), _) = found.remove();
        self.deleted.insert(Q::to_owned(key));
        Some(e.value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.table.iter().map(|(k, e)| (k, &e.value))
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The changes since the last call, as stored bytes (the prepared batch of a checkpoint).
    pub fn take_changes(&mut self, namespace: &str) -> Result<Vec<Change>, StateError> {
        let codec = |what: &'static str, message: String| StateError::Codec {
            namespace: namespace.to_owned(),
            what,
            message,
        };
        let mut out = Vec::with_capacity(self.dirty.len() + self.deleted.len());
        for k in std::mem::take(&mut self.dirty) {
            // (A key deleted and set again is listed twice: written once.)
            if let Some((_, e)) = self.table.find_mut(Self::hash(&k), |(key, _)| *key == k)
                && e.dirty
            {
                e.dirty = false;
                let key = encode(&k).map_err(|m| codec("encode a key", m))?;
                let value = encode(&e.value).map_err(|m| codec("encode a value", m))?;
                out.push((key, Some(value)));
            }
        }
        for k in std::mem::take(&mut self.deleted) {
            out.push((encode(&k).map_err(|m| codec("encode a key", m))?, None));
        }
        Ok(out)
    }
}

/// Keys that are text: a [`KeyValueState`] of them is looked up by a tuple's bytes
/// ([`KeyValueState::update_text`]). Their `Hash` must be `str`'s (as `String`'s and
/// `SmolStr`'s are).
pub trait TextKey {
    fn text(&self) -> &str;
    fn from_text(s: &str) -> Self;
}

impl TextKey for String {
    #[inline]
    fn text(&self) -> &str {
        self
    }

    fn from_text(s: &str) -> Self {
        s.to_owned()
    }
}

/// Up to 23 bytes inline: a hit on a short key compares it without following a pointer.
impl TextKey for crate::value::SmolStr {
    #[inline]
    fn text(&self) -> &str {
        self.as_str()
    }

    fn from_text(s: &str) -> Self {
        crate::value::SmolStr::new(s)
    }
}

impl<K, V> KeyValueState<K, V>
where
    K: TextKey + Serialize + DeserializeOwned + Hash + Eq + Clone,
    V: Serialize + DeserializeOwned + Clone,
{
    /// [`KeyValueState::update`] of the key whose UTF-8 bytes are `key`, as a tuple holds them
    /// ([`Tuple::get_str_bytes`]): a key already there is found by its bytes, with no UTF-8
    /// check and no copy. Returns the stored key and the new value, or `None` (and changes
    /// nothing) when `key` is not UTF-8.
    #[inline]
    pub fn update_text(
        &mut self,
        key: &[u8],
        f: impl FnOnce(Option<&V>) -> V,
    ) -> Option<(&str, &V)> {
        let h = hash_text(key);
        self.update_found(
            h,
            |k| crate::bytemap::bytes_eq(k.text().as_bytes(), key),
            || std::str::from_utf8(key).ok().map(K::from_text),
            f,
        )
        .map(|(k, v)| (k.text(), v))
    }
}

/// Storm's `IStatefulBolt<KeyValueState<K, V>>`. The runtime keeps the state and hands it to
/// each call (Storm hands it once to `initState` and the bolt keeps it; in Rust the runtime
/// keeps it so it can checkpoint it between calls).
///
/// Every emit must be anchored (`emit_anchored`, `emit_refs_anchored`, `emit_stream` with
/// anchors): an unanchored emit is refused and reported, as in Storm. The acks of inputs wait
/// for the checkpoint that holds their effect to commit.
pub trait StatefulBolt: Send + 'static {
    type Key: Serialize + DeserializeOwned + Hash + Eq + Clone + Send + 'static;
    type Value: Serialize + DeserializeOwned + Clone + Send + 'static;

    fn declare_output_fields(&self, declarer: &mut OutputDeclarer);

    fn prepare(&mut self, _ctx: &TopologyContext) -> Result<(), ComponentError> {
        Ok(())
    }

    /// Called with the state as last committed before the first input is executed (and again
    /// after a recovery).
    fn init_state(&mut self, _state: &mut KeyValueState<Self::Key, Self::Value>) {}

    fn execute(
        &mut self,
        input: &Tuple,
        state: &mut KeyValueState<Self::Key, Self::Value>,
        out: &mut BoltCollector<'_>,
    );

    /// Before the state's changes are prepared for checkpoint `txid`.
    fn pre_prepare(&mut self, _txid: u64, _state: &mut KeyValueState<Self::Key, Self::Value>) {}
    /// Before checkpoint `txid` commits.
    fn pre_commit(&mut self, _txid: u64) {}
    /// Before the state rolls back to the last committed checkpoint.
    fn pre_rollback(&mut self) {}
}

/// A [`StatefulBolt`] with its types erased, for the registry and the runtime.
pub trait StatefulTask: Send {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer);
    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError>;
    /// Sets the state to the committed data of `stored` and calls `init_state`.
    fn init_state(&mut self, namespace: &str, stored: &Stored) -> Result<(), StateError>;
    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>);
    /// `execute` of each input, after telling the collector's sink of it
    /// ([`crate::component::OutputSink::begin_input`]) when `begin` (not needed when no input
    /// belongs to a tuple tree): one call per batch.
    fn execute_batch(&mut self, inputs: Inputs<'_>, out: &mut BoltCollector<'_>, begin: bool);
    /// `pre_prepare`, then the changes since the last prepare.
    fn prepare_commit(&mut self, namespace: &str, txid: u64) -> Result<Vec<Change>, StateError>;
    fn pre_commit(&mut self, txid: u64);
    fn pre_rollback(&mut self);
    /// As [`crate::component::Bolt::wants_poll`] (a windowed task's clock and end of input).
    fn wants_poll(&self) -> bool {
        false
    }
    fn poll(&mut self, _out: &mut BoltCollector<'_>, _end: bool) {}
}

/// The erasing wrapper of a [`StatefulBolt`].
pub struct Typed<B: StatefulBolt> {
    pub bolt: B,
    pub state: KeyValueState<B::Key, B::Value>,
}

impl<B: StatefulBolt> StatefulTask for Typed<B> {
    fn declare_output_fields(&self, declarer: &mut OutputDeclarer) {
        self.bolt.declare_output_fields(declarer)
    }

    fn prepare(&mut self, ctx: &TopologyContext) -> Result<(), ComponentError> {
        self.bolt.prepare(ctx)
    }

    fn init_state(&mut self, namespace: &str, stored: &Stored) -> Result<(), StateError> {
        self.state = KeyValueState::from_stored(namespace, stored)?;
        self.bolt.init_state(&mut self.state);
        Ok(())
    }

    #[inline]
    fn execute(&mut self, input: &Tuple, out: &mut BoltCollector<'_>) {
        self.bolt.execute(input, &mut self.state, out)
    }

    fn execute_batch(&mut self, inputs: Inputs<'_>, out: &mut BoltCollector<'_>, begin: bool) {
        if begin {
            for t in inputs {
                out.sink_mut().begin_input(&t);
                self.bolt.execute(&t, &mut self.state, out);
            }
        } else {
            for t in inputs {
                self.bolt.execute(&t, &mut self.state, out);
            }
        }
    }

    fn prepare_commit(&mut self, namespace: &str, txid: u64) -> Result<Vec<Change>, StateError> {
        self.bolt.pre_prepare(txid, &mut self.state);
        self.state.take_changes(namespace)
    }

    fn pre_commit(&mut self, txid: u64) {
        self.bolt.pre_commit(txid)
    }

    fn pre_rollback(&mut self) {
        self.bolt.pre_rollback()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::SmolStr;
    use proptest::prelude::*;

    #[test]
    fn text_is_hashed_as_its_string_is() {
        use std::hash::BuildHasher;
        for s in [
            "",
            "a",
            "word",
            "a much longer word than sixteen bytes",
            "ünïcode",
        ] {
            assert_eq!(
                hash_text(s.as_bytes()),
                StateHash.hash_one(s.to_owned()),
                "{s:?}"
            );
            assert_eq!(
                hash_text(s.as_bytes()),
                StateHash.hash_one(SmolStr::new(s)),
                "{s:?}"
            );
        }
    }

    proptest! {
        /// Updates by a tuple's bytes and by the key itself reach the same entries, list each
        /// changed key once for the next checkpoint, and refuse bytes that are not UTF-8.
        #[test]
        fn updates_by_bytes_and_by_key_agree(
            ops in proptest::collection::vec((0u8..3, 0usize..6), 0..60)
        ) {
            const WORDS: [&str; 6] = ["a", "b", "the", "0", "long word over sixteen bytes", "é"];
            let mut state: KeyValueState<String, i64> = KeyValueState::default();
            let mut small: KeyValueState<SmolStr, i64> = KeyValueState::default();
            let mut model = std::collections::BTreeMap::new();
            let mut changed = std::collections::BTreeSet::new();
            for (op, w) in ops {
                let word = WORDS[w];
                match op {
                    0 => {
                        let (k, &n) = state.update_text(word.as_bytes(), |n| n.copied().unwrap_or(0) + 1).unwrap();
                        prop_assert_eq!(k, word);
                        prop_assert_eq!(Some(&n), Some(&(model.get(word).copied().unwrap_or(0) + 1)));
                    }
                    1 => { state.update(word, |n| n.copied().unwrap_or(0) + 1); }
                    _ => {
                        prop_assert!(state.update_text(&[0xff, b'a'], |_| 1).is_none());
                        state.delete(word);
                        small.delete(&SmolStr::new(word));
                        // Deleting a key that is not there changes nothing.
                        if model.remove(word).is_some() {
                            changed.insert(word.to_owned());
                        }
                        continue;
                    }
                }
                small.update_text(word.as_bytes(), |n| n.copied().unwrap_or(0) + 1);
                *model.entry(word.to_owned()).or_insert(0) += 1;
                changed.insert(word.to_owned());
            }
            let got: std::collections::BTreeMap<String, i64> =
                state.iter().map(|(k, v)| (k.clone(), *v)).collect();
            let got_small: std::collections::BTreeMap<String, i64> =
                small.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            prop_assert_eq!(&got, &model);
            prop_assert_eq!(&got_small, &model);
            let changes = state.take_changes("ns").unwrap();
            let keys: std::collections::BTreeSet<String> = changes
                .iter()
                .map(|(k, _)| decode::<String>(k).unwrap())
                .collect();
            prop_assert_eq!(changes.len(), keys.len());
            prop_assert_eq!(keys, changed);
            prop_assert!(state.take_changes("ns").unwrap().is_empty());
        }
    }

    #[test]
    fn stored_forms_are_readable_and_read_back() {
        assert_eq!(encode("storm").unwrap(), b"storm");
        assert_eq!(encode(&42i64).unwrap(), b"42");
        assert_eq!(encode(&-7i32).unwrap(), b"-7");
        assert_eq!(encode("42").unwrap(), b"\"42\"");
        assert_eq!(
            encode("").unwrap(),
            b"\"\"",
            "never empty: empty is a delete"
        );
        assert_eq!(encode("true").unwrap(), b"\"true\"");
        assert_eq!(encode(&vec![1, 2]).unwrap(), b"[1,2]");
        assert_eq!(decode::<String>(b"storm").unwrap(), "storm");
        assert_eq!(decode::<String>(b"\"42\"").unwrap(), "42");
        assert_eq!(decode::<i64>(b"42").unwrap(), 42);
        assert!(decode::<i64>(b"storm").is_err());
    }

    proptest! {
        #[test]
        fn any_string_and_number_round_trips(s in ".*", n in any::<i64>(), f in any::<(u8, bool)>()) {
            prop_assert_eq!(decode::<String>(&encode(&s).unwrap()).unwrap(), s);
            prop_assert_eq!(decode::<i64>(&encode(&n).unwrap()).unwrap(), n);
            prop_assert_eq!(decode::<(u8, bool)>(&encode(&f).unwrap()).unwrap(), f);
        }

        /// Whatever the puts, updates and deletes, the committed data after prepare and commit
        /// reads back as the state's map.
        #[test]
        fn checkpoints_store_exactly_the_map(ops in proptest::collection::vec((0u8..4, 0u8..12, any::<i16>()), 0..200), every in 1usize..20) {
            let p = MemoryProvider::default();
            let mut store = p.open("c-1").unwrap();
            let mut st: KeyValueState<String, i64> = KeyValueState::default();
            let mut want: std::collections::BTreeMap<String, i64> = Default::default();
            for (i, (op, k, v)) in ops.iter().enumerate() {
                let key = format!("k{k}");
                match op {
                    0 => { st.put(key.clone(), i64::from(*v)); want.insert(key, i64::from(*v)); }
                    1 => { st.update(key.as_str(), |n| n.copied().unwrap_or(0) + 1); *want.entry(key).or_insert(0) += 1; }
                    2 => { st.delete(key.as_str()); want.remove(&key); }
                    _ => { prop_assert_eq!(st.get(key.as_str()).copied(), want.get(&key).copied()); }
                }
                if i % every == 0 {
                    let txid = i as u64;
                    store.prepare(txid, &st.take_changes("c-1").unwrap()).unwrap();
                    store.commit(txid).unwrap();
                    let back: KeyValueState<String, i64> = KeyValueState::from_stored("c-1", &store.load().unwrap()).unwrap();
                    let got: std::collections::BTreeMap<String, i64> = back.iter().map(|(k, v)| (k.clone(), *v)).collect();
                    prop_assert_eq!(&got, &want);
                }
            }
        }
    }

    #[test]
    fn a_rolled_back_batch_leaves_the_committed_data() {
        let p = MemoryProvider::default();
        let mut s = p.open("n").unwrap();
        s.prepare(1, &[(b"a".to_vec(), Some(b"1".to_vec()))])
            .unwrap();
        s.commit(1).unwrap();
        s.prepare(2, &[(b"a".to_vec(), None)]).unwrap();
        s.rollback().unwrap();
        // A repeated commit of 2 with nothing prepared changes nothing but the txid.
        s.commit(2).unwrap();
        let l = s.load().unwrap();
        assert_eq!(l.committed, vec![(b"a".to_vec(), b"1".to_vec())]);
        assert_eq!((l.commit_txid, l.prepared), (Some(2), None));
        // Namespaces are apart.
        assert!(p.open("m").unwrap().load().unwrap().committed.is_empty());
    }
}
