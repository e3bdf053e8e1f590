//! A real Kafka-protocol broker for tests (tansu 0.6.0, in memory, on a free loopback port),
//! and kafka-python (scripts/kafka-tool.py) as the independent client. scripts/test.sh installs
//! both and sets `GALE_TANSU` and `GALE_KAFKA_PYTHON`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Child,
    pub port: u16,
    pub bootstrap: String,
    log: PathBuf,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn python() -> String {
    std::env::var("GALE_KAFKA_PYTHON").unwrap_or_else(|_| {
        let venv = root().join("target/pystorm-venv/bin/python");
        venv.display().to_string()
    })
}

impl Broker {
    pub fn start(name: &str) -> Broker {
        let bin = std::env::var("GALE_TANSU")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root().join("target/tansu/tansu"));
        assert!(
            bin.exists(),
            "the tansu broker is not installed ({}): run scripts/test.sh, which fetches it",
            bin.display()
        );
        let log =
            std::env::temp_dir().join(format!("gale-tansu-{}-{name}.log", std::process::id()));
        for _ in 0..5 {
            let port = free_port();
            let url = format!("tcp://127.0.0.1:{port}");
            let child = Command::new(&bin)
                .args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "memory://tansu/"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .expect("start tansu");
            let mut b = Broker {
                child,
                port,
                bootstrap: format!("127.0.0.1:{port}"),
                log: log.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return b;
                }
                if let Ok(Some(_)) = b.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = b.child.kill();
            let _ = b.child.wait();
        }
        panic!(
            "tansu did not start; its log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn tool(&self, args: &[&str]) -> String {
        let out = Command::new(python())
            .arg(root().join("scripts/kafka-tool.py"))
            .args(args)
            .args(["--bootstrap", &self.bootstrap])
            .output()
            .expect("run kafka-tool.py (kafka-python: run scripts/test.sh)");
        assert!(
            out.status.success(),
            "kafka-tool.py {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    pub fn create_topic(&self, topic: &str, partitions: u32) {
        self.tool(&["create", topic, &partitions.to_string()]);
    }

    /// Produces each line of `file` (round robin over partitions); returns each partition's end
    /// offset as the broker acknowledged it.
    pub fn produce_file(&self, topic: &str, file: &Path) -> BTreeMap<i32, i64> {
        let out = self.tool(&["produce", topic, &file.display().to_string()]);
        parse_offsets(&out)
    }

    /// Every record of `topic`, as (partition, offset, key, value).
    pub fn read(&self, topic: &str, idle_secs: f64) -> Vec<(i32, i64, String, String)> {
        let out = self.tool(&["read", topic, "--idle-secs", &idle_secs.to_string()]);
        out.lines()
            .filter_map(|l| {
                let mut f = l.splitn(4, '\t');
                Some((
                    f.next()?.parse().ok()?,
                    f.next()?.parse().ok()?,
                    f.next()?.to_owned(),
                    f.next().unwrap_or("").to_owned(),
                ))
            })
            .collect()
    }

    /// What `group` committed for `topic`, by partition.
    pub fn committed(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        parse_offsets(&self.tool(&["committed", group, topic]))
    }
}

fn parse_offsets(json: &str) -> BTreeMap<i32, i64> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("offsets JSON");
    v.as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| (k.parse().expect("partition"), v.as_i64().expect("offset")))
        .collect()
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
