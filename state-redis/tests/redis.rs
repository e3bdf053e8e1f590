//! The Redis provider against a real `redis-server` on a free loopback port (Debian's package;
//! scripts/test.sh installs it): Storm's layout, readable as text, and the store's contract.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use topology_api::state::{ProviderConfig, StateProvider};

struct Server {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start(name: &str) -> Server {
    assert!(
        Command::new("redis-server")
            .arg("--version")
            .output()
            .is_ok(),
        "redis-server is not installed: run scripts/test.sh, which installs Debian's redis-server"
    );
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("gale-redis-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
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
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "redis-server did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Server { child, port, dir }
}

fn provider(port: u16) -> std::sync::Arc<dyn StateProvider> {
    let mut r = topology_api::Registry::empty();
    state_redis::register(&mut r);
    let f = r.state_provider(state_redis::CLASS).expect("registered");
    let config = serde_json::Map::new();
    f(&ProviderConfig {
        topology: "t",
        provider_config: serde_json::json!({"jedisPoolConfig": {"host": "127.0.0.1", "port": port, "timeout": 2000, "database": 0}}),
        config: &config,
    })
    .expect("provider")
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .expect("client")
        .get_connection()
        .expect("connection");
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let v: Vec<Vec<u8>> = cmd.query(&mut c).expect("query");
    let mut pairs: Vec<String> = v
        .chunks(2)
        .map(|p| {
            format!(
                "{}={}",
                String::from_utf8_lossy(&p[0]),
                String::from_utf8_lossy(p.get(1).map_or(&[][..], |x| x))
            )
        })
        .collect();
    pairs.sort();
    pairs.join(" ")
}

#[test]
fn storms_layout_in_readable_text() {
    let s = start("layout");
    let p = provider(s.port);
    let mut st = p.open("count-3").expect("open");
    let enc = |v: &str| topology_api::state::encode(v).expect("encodes");
    let n = |v: i64| topology_api::state::encode(&v).expect("encodes");
    st.prepare(1, &[(enc("storm"), Some(n(2))), (enc("42"), Some(n(7)))])
        .expect("prepare");
    assert_eq!(
        redis_cli(s.port, &["HGETALL", "count-3$prepare"]),
        "\"42\"=7 storm=2"
    );
    assert_eq!(redis_cli(s.port, &["HGETALL", "count-3$txid"]), "prepare=1");
    st.commit(1).expect("commit");
    assert_eq!(
        redis_cli(s.port, &["HGETALL", "count-3"]),
        "\"42\"=7 storm=2"
    );
    assert_eq!(redis_cli(s.port, &["HGETALL", "count-3$txid"]), "commit=1");
    assert_eq!(redis_cli(s.port, &["HGETALL", "count-3$prepare"]), "");
    // A delete, prepared then rolled back; then prepared and committed.
    st.prepare(2, &[(enc("storm"), None)]).expect("prepare");
    st.rollback().expect("rollback");
    assert_eq!(
        redis_cli(s.port, &["HGETALL", "count-3"]),
        "\"42\"=7 storm=2"
    );
    st.prepare(2, &[(enc("storm"), None)]).expect("prepare");
    st.commit(2).expect("commit");
    st.commit(2).expect("a repeated commit changes nothing");
    let l = st.load().expect("load");
    assert_eq!(l.committed, vec![(b"\"42\"".to_vec(), b"7".to_vec())]);
    assert_eq!((l.commit_txid, l.prepared), (Some(2), None));
    // Another task's namespace is apart.
    assert!(
        p.open("count-4")
            .expect("open")
            .load()
            .expect("load")
            .committed
            .is_empty()
    );
}

#[test]
fn an_unreachable_server_is_an_error_naming_it() {
    let port = free_port();
    let Err(e) = provider(port).open("c-1") else {
        panic!("nobody listens on {port}");
    };
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}
