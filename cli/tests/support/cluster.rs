//! The cluster-test harness, shared by cli/tests/cluster.rs and the custom-cluster example's
//! test (included there with `#[path]`): a private ZooKeeper (scripts/zk.sh) on a loopback port,
//! real Nimbus and Supervisor processes of a given binary, each stopped by PID when the cluster is
//! dropped, pass or fail.
#![allow(dead_code)]

use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Cluster tests share two cores: one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// The stock `gale` binary of this build: beside the test's own executable's folder
/// (target/debug/deps/.. = target/debug), where `cargo test --workspace` puts it.
pub fn gale_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe.parent().and_then(Path::parent).expect("target/debug");
    let p = dir.join("gale");
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build -p gale-cli` (scripts/test.sh runs every test)",
        p.display()
    );
    p
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join("scripts/zk.sh").exists())
        .expect("the repository root")
        .to_path_buf()
}

/// A free loopback port below the kernel's ephemeral range (32768 and up on Linux): a port the
/// kernel handed out for `:0` can be handed out again to an outgoing connection (a ZooKeeper
/// client's) before the daemon that was given it binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Processes start at different places in the range, so two test binaries rarely probe the
    // same ports at once.
    let start = (std::process::id() % 600) * 20;
    for _ in 0..12_000 {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (20_000 + (start + i) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 20000-32767")
}

pub struct Cluster {
    /// The binary run as nimbus, supervisor and client (`gale`, or a user's own).
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub zk: String,
    pub nimbus_addr: String,
    /// Nimbus's token: every daemon and client of this cluster gets it (GALE_AUTH_TOKEN).
    pub token: String,
    /// The secret its workers prove to each other (GALE_CLUSTER_SECRET).
    pub secret: String,
    pub nimbus: Option<Child>,
    pub supervisors: BTreeMap<String, Child>,
    pub supervisor_timeout_secs: u32,
}

impl Cluster {
    /// A cluster of the stock `gale` binary.
    pub fn start(name: &str, supervisors: &[&str]) -> Cluster {
        Self::start_with(&gale_bin(), name, supervisors)
    }

    /// A cluster whose nimbus and supervisors are `bin`, with a 10 s supervisor timeout (a
    /// killed supervisor's executors move within ~15 s; supervisors fence after 7.5 s without
    /// ZooKeeper).
    pub fn start_with(bin: &Path, name: &str, supervisors: &[&str]) -> Cluster {
        Self::start_tuned(bin, name, supervisors, 10)
    }

    /// As [`Cluster::start_with`], with Nimbus's `--supervisor-timeout-secs`.
    pub fn start_tuned(
        bin: &Path,
        name: &str,
        supervisors: &[&str],
        supervisor_timeout_secs: u32,
    ) -> Cluster {
        assert!(
            Path::new("/usr/share/java/zookeeper.jar").exists(),
            "ZooKeeper is not installed: run scripts/test.sh, which installs Debian's zookeeper package"
        );
        let dir = std::env::temp_dir().join(format!("gale-cluster-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let out = Command::new("bash")
            .arg(root().join("scripts/zk.sh"))
            .arg("start")
            .arg(dir.join("zk"))
            .output()
            .expect("zk.sh runs");
        assert!(
            out.status.success(),
            "ZooKeeper did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let zk = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let mut c = Cluster {
            bin: bin.to_path_buf(),
            dir,
            zk,
            nimbus_addr: format!("127.0.0.1:{}", free_port()),
            token: format!("test-token-{}-{}", std::process::id(), free_port()),
            secret: format!("test-secret-{}-{}", std::process::id(), free_port()),
            nimbus: None,
            supervisors: BTreeMap::new(),
            supervisor_timeout_secs,
        };
        c.start_nimbus();
        for s in supervisors {
            c.start_supervisor(s);
        }
        c
    }

    pub fn spawn(&self, args: &[&str], log: &str) -> Child {
        self.spawn_via(args, log, &self.zk)
    }

    /// As [`Cluster::spawn`], reaching ZooKeeper at `zk` (a [`ZkRelay`]).
    pub fn spawn_via(&self, args: &[&str], log: &str, zk: &str) -> Child {
        let log = std::fs::File::create(self.dir.join(log)).expect("log file");
        Command::new(&self.bin)
            .args(args)
            .env("GALE_ZOOKEEPER", zk)
            .env("GALE_NIMBUS", &self.nimbus_addr)
            .env("GALE_AUTH_TOKEN", &self.token)
            .env("GALE_CLUSTER_SECRET", &self.secret)
            .env("GALE_ZK_AUTH", format!("gale:{}", self.secret))
            .env("GALE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gale starts")
    }

    pub fn start_nimbus(&mut self) {
        let addr = self.nimbus_addr.clone();
        let timeout = self.supervisor_timeout_secs.to_string();
        let child = self.spawn(
            &[
                "nimbus",
                "--listen",
                &addr,
                "--supervisor-timeout-secs",
                &timeout,
                // Status as fresh as before beats went to a 5 s default: the fault tests check
                // progress mid-stream (docs/scale.md measures the default).
                "--heartbeat-secs",
                "1",
            ],
            "nimbus.log",
        );
        self.nimbus = Some(child);
        wait_until(Duration::from_secs(20), "Nimbus answers", || {
            self.gale(&["list"]).status.success()
        });
    }

    pub fn kill_nimbus(&mut self) {
        if let Some(mut n) = self.nimbus.take() {
            let _ = n.kill();
            let _ = n.wait();
        }
    }

    pub fn start_supervisor(&mut self, id: &str) {
        let zk = self.zk.clone();
        self.start_supervisor_via(id, &zk);
    }

    /// A supervisor that reaches ZooKeeper at `zk` (a [`ZkRelay`], to cut it off later).
    pub fn start_supervisor_via(&mut self, id: &str, zk: &str) {
        let ports = format!("{},{}", free_port(), free_port());
        let work = self.dir.join(format!("work-{id}"));
        let child = self.spawn_via(
            &[
                "supervisor",
                "--id",
                id,
                "--ports",
                &ports,
                "--work-dir",
                work.to_str().expect("path"),
            ],
            &format!("supervisor-{id}.log"),
            zk,
        );
        self.supervisors.insert(id.to_owned(), child);
        wait_until(Duration::from_secs(20), "supervisor registers", || {
            self.status()["supervisors"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x["id"] == id))
        });
    }

    /// SIGKILL, as a crashed machine.
    pub fn kill_supervisor(&mut self, id: &str) {
        if let Some(mut c) = self.supervisors.remove(id) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn gale(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .current_dir(root())
            .env("GALE_ZOOKEEPER", &self.zk)
            .env("GALE_NIMBUS", &self.nimbus_addr)
            .env("GALE_AUTH_TOKEN", &self.token)
            .env("GALE_LOG", "warn")
            .output()
            .expect("gale runs")
    }

    pub fn status(&self) -> Json {
        let o = self.gale(&["status", "--format", "json"]);
        if !o.status.success() {
            return Json::Null;
        }
        serde_json::from_slice(&o.stdout).unwrap_or(Json::Null)
    }

    pub fn topology(&self, name: &str) -> Json {
        self.status()["topologies"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == name).cloned())
            .unwrap_or(Json::Null)
    }

    /// How many lines of the daemons' logs contain `needle`.
    pub fn logs_matching(&self, needle: &str) -> usize {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(needle))
                    .count()
            })
            .sum()
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                s += &format!(
                    "--- {}\n{}\n",
                    p.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for (_, mut c) in std::mem::take(&mut self.supervisors) {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.kill_nimbus();
        let _ = Command::new("bash")
            .arg(root().join("scripts/zk.sh"))
            .arg("stop")
            .arg(self.dir.join("zk"))
            .output();
    }
}

/// GET from Nimbus's HTTP server: status code and body.
/// A POST to Nimbus with the given headers (no token unless one is given).
pub fn http_post(c: &Cluster, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.post(format!("http://{}{path}", c.nimbus_addr));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut r = req.send_empty().expect("Nimbus answers");
    let code = r.status().as_u16();
    (code, r.body_mut().read_to_string().expect("body"))
}

pub fn http_get(c: &Cluster, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .get(format!("http://{}{path}", c.nimbus_addr))
        .call()
        .expect("Nimbus answers");
    let code = r.status().as_u16();
    (code, r.body_mut().read_to_string().expect("body"))
}

pub fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {limit:?} waiting until {what}");
}

pub fn stat(t: &Json, component: &str, key: &str) -> u64 {
    t["components"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == component))
        .and_then(|c| c["stats"][key].as_u64())
        .unwrap_or(0)
}

pub fn supervisors_used(t: &Json) -> std::collections::BTreeSet<String> {
    t["assignment"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["supervisor"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The files unpacked under every supervisor's topology resources folders
/// (`work-<sup>/<topology>/resources/...`), as paths relative to their resources folder, sorted.
pub fn shipped_files(c: &Cluster) -> Vec<String> {
    pub fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    for sup in std::fs::read_dir(&c.dir).into_iter().flatten().flatten() {
        if !sup.file_name().to_string_lossy().starts_with("work-") {
            continue;
        }
        for topo in std::fs::read_dir(sup.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let r = topo.path().join("resources");
            walk(&r, &r, &mut out);
        }
    }
    out.sort();
    out
}

/// A sink's `word<TAB>count` file.
pub fn read_counts(path: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .expect("sink file")
        .lines()
        .filter_map(|l| {
            l.rsplit_once('\t')
                .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(0)))
        })
        .collect()
}

pub fn line_tag(i: usize) -> String {
    format!("#{i}")
}

/// From a sink's counts: the lines that never got through, and how many extra times lines did
/// (at-least-once duplicates).
pub fn deliveries(got: &BTreeMap<String, u64>, lines: usize) -> (Vec<usize>, u64) {
    let mut missing = Vec::new();
    let mut dups = 0;
    for i in 0..lines {
        match got.get(&line_tag(i)).copied().unwrap_or(0) {
            0 => missing.push(i),
            n => dups += n - 1,
        }
    }
    (missing, dups)
}

/// The reliable spout's committed offset: how many leading lines are acked (one spout task).
pub fn committed(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("lines.ckpt.task0-of-1"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

pub fn write_input(dir: &Path, lines: usize) -> (PathBuf, BTreeMap<String, u64>) {
    let words = [
        "storm",
        "gale",
        "wind",
        "nimbus",
        "supervisor",
        "tuple",
        "spout",
        "bolt",
        "naïve",
        "言葉",
    ];
    let mut text = String::new();
    let mut counts = BTreeMap::new();
    let mut x: u64 = 12345;
    for i in 0..lines {
        // A token only this line has: the sink's count of it says how often the line got through.
        let tag = line_tag(i);
        *counts.entry(tag.clone()).or_insert(0) += 1;
        text += &tag;
        text.push(' ');
        let mut line = Vec::new();
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = words[(x % words.len() as u64) as usize];
            line.push(w);
            *counts.entry(w.to_owned()).or_insert(0) += 1;
        }
        text += &line.join(" ");
        text.push('\n');
    }
    let p = dir.join("input.txt");
    std::fs::write(&p, text).expect("input");
    (p, counts)
}

/// A TCP relay to ZooKeeper on a free loopback port that can be cut: a process that reaches
/// ZooKeeper through it is partitioned from ZooKeeper (its connections closed, new ones closed as
/// they arrive) while ZooKeeper and everything else stay up. Its threads end when it is dropped.
pub struct ZkRelay {
    pub addr: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl ZkRelay {
    pub fn start(target: &str) -> ZkRelay {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let target = target.to_owned();
        let (cut, closed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (c, d, o) = (cut.clone(), closed.clone(), open.clone());
        std::thread::spawn(move || {
            while !d.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: closed
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let mut g = o.lock().unwrap_or_else(|p| p.into_inner());
                for (mut from, mut to) in [(&client, &server), (&server, &client)]
                    .map(|(a, b)| (a.try_clone().expect("clone"), b.try_clone().expect("clone")))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                g.push(client);
                g.push(server);
            }
        });
        ZkRelay {
            addr,
            cut,
            closed,
            open,
        }
    }

    /// Cuts the partitioned side off: open connections close, new ones are closed at once.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for ZkRelay {
    fn drop(&mut self) {
        self.cut();
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The timestamp (RFC 3339, UTC, as the daemons log it) of the first or last line of `log` in
/// the cluster's folder that contains `needle`.
pub fn log_time(c: &Cluster, log: &str, needle: &str, last: bool) -> Option<String> {
    let text = std::fs::read_to_string(c.dir.join(log)).ok()?;
    let mut hits = text.lines().filter(|l| l.contains(needle));
    let line = if last { hits.next_back() } else { hits.next() }?;
    line.split_whitespace().next().map(str::to_owned)
}

/// `lines` lines of five words drawn (by `seed`) from a small vocabulary, written to `path`, and
/// an independent count of them (the stateful tests' input).
pub fn write_words(path: &Path, lines: usize, seed: u64) -> BTreeMap<String, i64> {
    let vocab = [
        "storm",
        "gale",
        "tuple",
        "spout",
        "bolt",
        "state",
        "checkpoint",
        "commit",
        "prepare",
        "rollback",
        "nimbus",
        "supervisor",
        "worker",
        "stream",
        "window",
        "kafka",
    ];
    let mut text = String::with_capacity(lines * 40);
    let mut want = BTreeMap::new();
    let mut x = seed;
    for _ in 0..lines {
        for _ in 0..5 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let w = vocab[(x >> 33) as usize % vocab.len()];
            text.push_str(w);
            text.push(' ');
            *want.entry(w.to_owned()).or_insert(0) += 1;
        }
        text.push('\n');
    }
    std::fs::write(path, text).expect("input");
    want
}
