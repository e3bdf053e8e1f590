//! The Redis state provider (`topology.state.provider:
//! org.apache.storm.redis.state.RedisKeyValueStateProvider`, or `redis`), with Storm's
//! `RedisKeyValueState` layout, readable with `redis-cli`:
//!
//! - hash `<component>-<task>`: the committed data;
//! - hash `<ns>$prepare`: the prepared batch (a field with an empty value is a delete);
//! - hash `<ns>$txid`: fields `commit` and `prepare`, the transactions of both.
//!
//! Keys and values as `topology_api::state::encode` writes them: strings as their UTF-8 bytes,
//! numbers as decimal text, other values as JSON. (Storm's are Kryo bytes.) A prepare and a
//! commit are each one `MULTI`/`EXEC` transaction. Settings come from
//! `topology.state.provider.config`'s `jedisPoolConfig`: `host`, `port`, `timeout` (ms),
//! `database`, `password`, as Storm's.
//!
//! The client is the `redis` crate (redis-rs, the maintained Rust client), synchronous, without
//! its default features: a store is a task's, driven from its executor thread.

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use topology_api::state::{Change, ProviderConfig, StateError, StateProvider, StateStore, Stored};

pub const NAME: &str = "redis";
pub const CLASS: &str = "org.apache.storm.redis.state.RedisKeyValueStateProvider";

/// Registers the provider under its short name and Storm's class name.
pub fn register(r: &mut topology_api::Registry) {
    for name in [NAME, CLASS] {
        r.register_state_provider(name, |c| {
            Ok(Arc::new(RedisProvider::from_config(c)?) as Arc<dyn StateProvider>)
        });
    }
}

/// Storm's `jedisPoolConfig` (Storm's defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    pub host: String,
    pub port: u16,
    /// Connect and command timeout, ms.
    pub timeout: u64,
    pub database: i64,
    pub password: Option<String>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            host: "127.0.0.1".into(),
            port: 6379,
            timeout: 2000,
            database: 0,
            password: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProviderSettings {
    #[serde(default)]
    jedis_pool_config: Option<PoolConfig>,
    /// Storm's cluster mode; not supported (refused with a clear error).
    #[serde(default)]
    jedis_cluster_config: Option<serde_json::Value>,
}

fn config_err(message: String) -> StateError {
    StateError::Config {
        provider: CLASS.into(),
        message,
    }
}

#[derive(Clone)]
pub struct RedisProvider {
    client: redis::Client,
    timeout: Duration,
    pool: PoolConfig,
}

impl std::fmt::Debug for RedisProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RedisProvider({}:{} db {})",
            self.pool.host, self.pool.port, self.pool.database
        )
    }
}

impl RedisProvider {
    fn from_config(c: &ProviderConfig<'_>) -> Result<Self, StateError> {
        let settings: ProviderSettings = match &c.provider_config {
            serde_json::Value::Null => ProviderSettings::default(),
            v => serde_json::from_value(v.clone()).map_err(|e| config_err(e.to_string()))?,
        };
        if settings.jedis_cluster_config.is_some() {
            return Err(config_err(
                "jedisClusterConfig (Redis Cluster) is not supported; give jedisPoolConfig".into(),
            ));
        }
        Self::new(settings.jedis_pool_config.unwrap_or_default())
    }

    pub fn new(pool: PoolConfig) -> Result<Self, StateError> {
        use redis::IntoConnectionInfo;
        let info = redis::ConnectionAddr::Tcp(pool.host.clone(), pool.port)
            .into_connection_info()
            .map_err(|e| config_err(e.to_string()))?;
        let mut redis_info = redis::RedisConnectionInfo::default().set_db(pool.database);
        if let Some(p) = &pool.password {
            redis_info = redis_info.set_password(p.clone());
        }
        let info = info.set_redis_settings(redis_info);
        let client = redis::Client::open(info).map_err(|e| config_err(e.to_string()))?;
        Ok(RedisProvider {
            client,
            timeout: Duration::from_millis(pool.timeout.max(1)),
            pool,
        })
    }
}

impl StateProvider for RedisProvider {
    fn open(&self, namespace: &str) -> Result<Box<dyn StateStore>, StateError> {
        let mut s = RedisStore {
            provider: self.clone(),
            con: None,
            ns: namespace.to_owned(),
            prepare: format!("{namespace}$prepare"),
            txid: format!("{namespace}$txid"),
        };
        s.con()?;
        Ok(Box::new(s))
    }
}

struct RedisStore {
    provider: RedisProvider,
    /// Dropped on an error, so the next call connects again.
    con: Option<redis::Connection>,
    ns: String,
    prepare: String,
    txid: String,
}

fn redis_err(p: &RedisProvider, e: redis::RedisError) -> StateError {
    StateError::Store(format!("redis at {}:{}: {e}", p.pool.host, p.pool.port))
}

impl RedisStore {
    fn con(&mut self) -> Result<&mut redis::Connection, StateError> {
        if self.con.is_none() {
            let p = &self.provider;
            let c = p
                .client
                .get_connection_with_timeout(p.timeout)
                .map_err(|e| redis_err(p, e))?;
            let _ = c.set_read_timeout(Some(p.timeout));
            let _ = c.set_write_timeout(Some(p.timeout));
            self.con = Some(c);
        }
        Ok(self.con.as_mut().expect("connected"))
    }

    /// Runs `f` on the connection; an error drops it.
    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StateError> {
        let r = f(self.con()?);
        r.map_err(|e| {
            self.con = None;
            redis_err(&self.provider, e)
        })
    }
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn txid_of(fields: &Pairs, name: &[u8]) -> Option<u64> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
}

impl StateStore for RedisStore {
    fn load(&mut self) -> Result<Stored, StateError> {
        let (ns, prepare, txid) = (self.ns.clone(), self.prepare.clone(), self.txid.clone());
        let (committed, prepared, txids): (Pairs, Pairs, Pairs) = self.run(|c| {
            redis::pipe()
                .cmd("HGETALL")
                .arg(&ns)
                .cmd("HGETALL")
                .arg(&prepare)
                .cmd("HGETALL")
                .arg(&txid)
                .query(c)
        })?;
        Ok(Stored {
            committed,
            commit_txid: txid_of(&txids, b"commit"),
            prepared: txid_of(&txids, b"prepare").map(|t| {
                let changes = prepared
                    .into_iter()
                    .map(|(k, v)| (k, (!v.is_empty()).then_some(v)))
                    .collect();
                (t, changes)
            }),
        })
    }

    fn prepare(&mut self, txid: u64, changes: &[Change]) -> Result<(), StateError> {
        let (prepare, txids) = (self.prepare.clone(), self.txid.clone());
        self.run(|c| {
            let mut p = redis::pipe();
            p.atomic().cmd("DEL").arg(&prepare).ignore();
            for chunk in changes.chunks(1000) {
                let mut h = redis::cmd("HSET");
                h.arg(&prepare);
                for (k, v) in chunk {
                    h.arg(k.as_slice()).arg(v.as_deref().unwrap_or(&[]));
                }
                p.add_command(h).ignore();
            }
            p.cmd("HSET").arg(&txids).arg("prepare").arg(txid).ignore();
            p.query::<()>(c)
        })
    }

    fn commit(&mut self, txid: u64) -> Result<(), StateError> {
        let (ns, prepare, txids) = (self.ns.clone(), self.prepare.clone(), self.txid.clone());
        let (batch, fields): (Pairs, Pairs) = self.run(|c| {
            redis::pipe()
                .cmd("HGETALL")
                .arg(&prepare)
                .cmd("HGETALL")
                .arg(&txids)
                .query(c)
        })?;
        let apply = txid_of(&fields, b"prepare") == Some(txid);
        self.run(|c| {
            let mut p = redis::pipe();
            p.atomic();
            if apply {
                let (puts, deletes): (Vec<_>, Vec<_>) =
                    batch.iter().partition(|(_, v)| !v.is_empty());
                for chunk in puts.chunks(1000) {
                    let mut h = redis::cmd("HSET");
                    h.arg(&ns);
                    for (k, v) in chunk {
                        h.arg(k.as_slice()).arg(v.as_slice());
                    }
                    p.add_command(h).ignore();
                }
                for chunk in deletes.chunks(1000) {
                    let mut h = redis::cmd("HDEL");
                    h.arg(&ns);
                    for (k, _) in chunk {
                        h.arg(k.as_slice());
                    }
                    p.add_command(h).ignore();
                }
                p.cmd("DEL").arg(&prepare).ignore();
                p.cmd("HDEL").arg(&txids).arg("prepare").ignore();
            }
            p.cmd("HSET").arg(&txids).arg("commit").arg(txid).ignore();
            p.query::<()>(c)
        })
    }

    fn rollback(&mut self) -> Result<(), StateError> {
        let (prepare, txids) = (self.prepare.clone(), self.txid.clone());
        self.run(|c| {
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&prepare)
                .ignore()
                .cmd("HDEL")
                .arg(&txids)
                .arg("prepare")
                .ignore()
                .query::<()>(c)
        })
    }
}
