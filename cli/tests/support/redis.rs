//! A private `redis-server` on a free loopback port, and the word counts stateful bolts keep in it.
#![allow(dead_code)]

use crate::support::{free_port, wait_until};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use topology_api::state::{KeyValueState, StateProvider};

pub struct Redis {
    child: Child,
    pub port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_redis(dir: &Path) -> Redis {
    assert!(
        Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok(),
        "redis-server is not installed: run scripts/test.sh, which installs Debian's redis-server"
    );
    let port = free_port();
    std::fs::create_dir_all(dir).expect("dir");
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let r = Redis { child, port };
    wait_until(Duration::from_secs(10), "redis-server listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    r
}

/// The committed counts of every `count` task in Redis.
pub fn redis_counts_of(port: u16, component: &str) -> BTreeMap<String, i64> {
    counts_in(port, component)
}

/// The committed counts of every `count` task in Redis.
pub fn redis_counts(port: u16) -> BTreeMap<String, i64> {
    counts_in(port, "count")
}

fn counts_in(port: u16, component: &str) -> BTreeMap<String, i64> {
    let p = state_redis::RedisProvider::new(state_redis::PoolConfig {
        port,
        ..Default::default()
    })
    .expect("provider");
    let mut all = BTreeMap::new();
    for task in 1..=32 {
        let ns = format!("{component}-{task}");
        let Ok(mut store) = p.open(&ns) else { continue };
        let Ok(stored) = store.load() else { continue };
        let s: KeyValueState<String, i64> =
            KeyValueState::from_stored(&ns, &stored).expect("decode");
        for (k, v) in s.iter() {
            all.insert(k.clone(), *v);
        }
    }
    all
}
