//! Cluster commands: the daemons (`nimbus`, `supervisor`) and the operator's commands, which talk
//! to Nimbus's HTTP API.

use crate::commands::{Format, SpecArgs, Unreachable, UserError, load};
use anyhow::{Context, Result};
use clap::Args;
use cluster_state::{ClusterState, Counted, Mirrored, ZkStore, paths};
use nimbus::daemon::{
    ActionResponse, NimbusConfig, RebalanceRequest, SubmitRequest, SubmitResponse, TopologyRow,
};
use nimbus::view::ClusterView;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use supervisor::daemon::SupervisorConfig;
use topology_api::Registry;

/// `gale.yaml`, with Storm's key names; every key optional.
#[derive(Debug, Default, Deserialize)]
struct FileSettings {
    #[serde(rename = "storm.zookeeper.servers", default)]
    zookeeper_servers: Option<Vec<String>>,
    #[serde(rename = "storm.zookeeper.port", default)]
    zookeeper_port: Option<u16>,
    #[serde(rename = "storm.zookeeper.root", default)]
    zookeeper_root: Option<String>,
    #[serde(rename = "nimbus.seeds", default)]
    nimbus_seeds: Option<Vec<String>>,
    #[serde(rename = "supervisor.slots.ports", default)]
    slots_ports: Option<Vec<u16>>,
    #[serde(rename = "storm.zookeeper.auth.scheme", default)]
    zookeeper_auth_scheme: Option<String>,
    #[serde(rename = "storm.zookeeper.auth.payload", default)]
    zookeeper_auth_payload: Option<String>,
}

fn file_settings() -> Result<FileSettings> {
    let p = Path::new("gale.yaml");
    if !p.exists() {
        return Ok(FileSettings::default());
    }
    let text = std::fs::read_to_string(p).context("cannot read gale.yaml")?;
    serde_saphyr::from_str(&text)
        .map_err(|e| UserError(format!("gale.yaml: {}", e.without_snippet())).into())
}

/// Settings from flags, then environment variables, then gale.yaml, then defaults (docs/contract.md §2).
#[derive(Debug, Args, Clone)]
pub struct ZkArgs {
    /// ZooKeeper servers, host:port[,host:port...] (env GALE_ZOOKEEPER; default 127.0.0.1:2181).
    #[arg(long, env = "GALE_ZOOKEEPER")]
    pub zookeeper: Option<String>,
    /// ZooKeeper root for Gale's nodes (env GALE_ZK_ROOT; default /gale).
    #[arg(long, env = "GALE_ZK_ROOT")]
    pub zk_root: Option<String>,
    /// A file holding ZooKeeper digest credentials `user:password` (env GALE_ZK_AUTH_FILE; or
    /// GALE_ZK_AUTH; or gale.yaml's storm.zookeeper.auth.payload). Gale's nodes are then
    /// changeable only with them, and topologies readable only with them.
    #[arg(long, env = "GALE_ZK_AUTH_FILE", value_name = "FILE")]
    pub zk_auth_file: Option<PathBuf>,
}

impl ZkArgs {
    /// ZooKeeper credentials: --zk-auth-file, GALE_ZK_AUTH, then gale.yaml (Storm's keys).
    fn auth(&self) -> Result<Option<cluster_state::ZkAuth>> {
        let f = file_settings()?;
        let payload = match read_secret(
            self.zk_auth_file.as_deref(),
            "GALE_ZK_AUTH",
            "the ZooKeeper credentials",
        )? {
            Some(p) => Some(p),
            None => f.zookeeper_auth_payload,
        };
        let Some(payload) = payload else {
            return Ok(None);
        };
        let scheme = f.zookeeper_auth_scheme.unwrap_or_else(|| "digest".into());
        if scheme == "digest" && !payload.contains(':') {
            return Err(UserError("ZooKeeper digest credentials are user:password".into()).into());
        }
        Ok(Some(cluster_state::ZkAuth {
            scheme,
            payload: payload.into_bytes(),
        }))
    }

    fn resolve(&self) -> Result<(String, String)> {
        let f = file_settings()?;
        let hosts = match &self.zookeeper {
            Some(h) => h.clone(),
            None => match f.zookeeper_servers {
                Some(list) => {
                    let port = f.zookeeper_port.unwrap_or(2181);
                    list.iter()
                        .map(|h| {
                            if h.contains(':') {
                                h.clone()
                            } else {
                                format!("{h}:{port}")
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                }
                None => "127.0.0.1:2181".into(),
            },
        };
        let root = self
            .zk_root
            .clone()
            .or(f.zookeeper_root)
            .unwrap_or_else(|| "/gale".into());
        Ok((hosts, root))
    }
}

#[derive(Debug, Args, Clone)]
pub struct NimbusArg {
    /// Nimbus API address host:port (env GALE_NIMBUS; default 127.0.0.1:6627).
    #[arg(long, env = "GALE_NIMBUS")]
    pub nimbus: Option<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// The token that guards Nimbus's changes: read from a file (never given on the command line,
/// where other users of the machine could see it), else from GALE_AUTH_TOKEN.
#[derive(Debug, Args, Clone, Default)]
pub struct AuthArgs {
    /// A file holding Nimbus's token (env GALE_AUTH_TOKEN_FILE; or the token itself in
    /// GALE_AUTH_TOKEN). Nimbus then refuses submissions and actions without it; the CLI sends it.
    #[arg(long, env = "GALE_AUTH_TOKEN_FILE", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
}

impl AuthArgs {
    /// The token, if one is configured; an empty or unreadable token file is an error.
    pub fn token(&self) -> Result<Option<String>> {
        read_secret(
            self.auth_token_file.as_deref(),
            "GALE_AUTH_TOKEN",
            "the auth token",
        )
    }
}

/// The secret workers prove to each other (docs/security.md): from a file, else from
/// GALE_CLUSTER_SECRET; the same on every supervisor.
#[derive(Debug, Args, Clone, Default)]
pub struct ClusterSecretArgs {
    /// A file holding the cluster secret (env GALE_CLUSTER_SECRET_FILE; or the secret itself in
    /// GALE_CLUSTER_SECRET). Workers then accept frames only from workers that prove it.
    #[arg(long, env = "GALE_CLUSTER_SECRET_FILE", value_name = "FILE")]
    pub cluster_secret_file: Option<PathBuf>,
}

impl ClusterSecretArgs {
    pub fn secret(&self) -> Result<Option<worker::handshake::ClusterSecret>> {
        let s = read_secret(
            self.cluster_secret_file.as_deref(),
            "GALE_CLUSTER_SECRET",
            "the cluster secret",
        )?;
        Ok(s.map(|s| worker::handshake::ClusterSecret::new(s.as_bytes())))
    }
}

/// A secret from `file` (trimmed), else from the environment variable `env`: `None` when
/// neither is set; an unreadable or empty file, or spaces and control characters, are errors.
fn read_secret(file: Option<&Path>, env: &str, what: &str) -> Result<Option<String>> {
    let secret = match file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {what} from {}", p.display()))?,
        ),
        None => std::env::var(env).ok(),
    };
    match secret.map(|t| t.trim().to_owned()) {
        Some(t) if t.is_empty() => Err(UserError(format!(
            "{what} is empty: put a long random string in its file or {env}"
        ))
        .into()),
        Some(t) if t.chars().any(|c| c.is_control() || c == ' ') => Err(UserError(format!(
            "{what} holds spaces or control characters: use letters, digits and punctuation"
        ))
        .into()),
        t => Ok(t),
    }
}

impl NimbusArg {
    fn base(&self) -> Result<String> {
        let addr = match &self.nimbus {
            Some(a) => a.clone(),
            None => file_settings()?
                .nimbus_seeds
                .and_then(|s| s.into_iter().next())
                .map(|h| {
                    if h.contains(':') {
                        h
                    } else {
                        format!("{h}:6627")
                    }
                })
                .unwrap_or_else(|| "127.0.0.1:6627".into()),
        };
        Ok(format!("http://{addr}"))
    }
}

#[derive(Debug, Args)]
pub struct NimbusDaemonArgs {
    #[command(flatten)]
    pub zk: ZkArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Address of the API (and, later, the UI).
    #[arg(long, default_value = "127.0.0.1:6627")]
    pub listen: SocketAddr,
    /// ZooKeeper session timeout in seconds (ZooKeeper clamps it to 2-20 ticks).
    #[arg(long, default_value_t = 4.0)]
    pub zk_session_timeout: f64,
    /// Seconds without a worker heartbeat before its executors move (Storm's nimbus.task.timeout.secs).
    #[arg(long, default_value_t = 30)]
    pub worker_timeout_secs: u64,
    /// Seconds a supervisor that was alive may be missing from ZooKeeper before its executors
    /// move (Storm's nimbus.supervisor.timeout.secs): a lost session or an outage moves nothing.
    /// Supervisors fence their workers after three quarters of this (or of the worker timeout,
    /// if shorter) without ZooKeeper, so an outage longer than that restarts workers.
    #[arg(long, default_value_t = 30.0)]
    pub supervisor_timeout_secs: f64,
    /// Seconds between two heartbeats of a worker (Storm's supervisor.heartbeat.frequency.secs),
    /// at most a third of the worker timeout. Status and the UI's counters are as fresh as
    /// this; each beat is one ZooKeeper write and one read (docs/scale.md).
    #[arg(long, default_value_t = 5.0)]
    pub heartbeat_secs: f64,
}

#[derive(Debug, Args)]
pub struct SupervisorDaemonArgs {
    #[command(flatten)]
    pub zk: ZkArgs,
    #[command(flatten)]
    pub secret: ClusterSecretArgs,
    /// Supervisor id (default: HOST-FIRSTPORT).
    #[arg(long)]
    pub id: Option<String>,
    /// Address other workers reach this supervisor's workers at; workers listen on it.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Worker slot ports (default 6700,6701,6702,6703 or gale.yaml's supervisor.slots.ports).
    #[arg(long, value_delimiter = ',')]
    pub ports: Vec<u16>,
    /// Where shipped resources are unpacked (default a folder under the temp dir).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 4.0)]
    pub zk_session_timeout: f64,
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn connect(zk: &ZkArgs, timeout: f64) -> Result<ClusterState<ZkStore>> {
    Ok(ClusterState::new(connect_store(zk, timeout).await?))
}

async fn connect_store(zk: &ZkArgs, timeout: f64) -> Result<ZkStore> {
    let (hosts, root) = zk.resolve()?;
    let auth = zk.auth()?;
    let t = Duration::from_secs_f64(timeout.clamp(0.4, 60.0));
    ZkStore::connect(&hosts, &root, t, auth).await.map_err(|e| {
        Unreachable(format!(
            "{e} (start one with scripts/zk.sh, or pass --zookeeper HOST:PORT)"
        ))
        .into()
    })
}

/// What Nimbus keeps a copy of ([`cluster_state::Mirrored`]): everything its passes and views
/// read, so that a pass reads from ZooKeeper only the nodes that changed.
pub const NIMBUS_MIRRORS: [&str; 8] = [
    paths::SUPERVISORS,
    paths::STORMS,
    paths::TOPOLOGIES,
    paths::ASSIGNMENTS,
    paths::ASSIGNED,
    paths::WORKERBEATS,
    paths::TOTALS,
    paths::ERRORS,
];

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

pub fn nimbus_daemon(a: &NimbusDaemonArgs, registry: Registry) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let store = Counted::new(connect_store(&a.zk, a.zk_session_timeout).await?);
        // Changed nodes read at most every 100 ms: a pass over thousands of records does not
        // wait for a round trip per record while heartbeats keep arriving (docs/scale.md).
        let mirror =
            Mirrored::new(store, &NIMBUS_MIRRORS).refreshing_every(Duration::from_millis(100));
        let state = Arc::new(ClusterState::new(mirror));
        let cfg = NimbusConfig {
            listen: a.listen,
            interval: Duration::from_millis(500),
            registry,
            worker_timeout: Duration::from_secs(a.worker_timeout_secs.max(1)),
            auth_token: a.auth.token()?,
            http: nimbus::listener::Bounds::default(),
            supervisor_timeout: Duration::from_secs_f64(
                a.supervisor_timeout_secs.clamp(0.0, 3600.0),
            ),
            heartbeat_interval: Duration::from_secs_f64(a.heartbeat_secs.clamp(0.1, 3600.0)),
        };
        nimbus::daemon::run(cfg, state, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn supervisor_daemon(a: &SupervisorDaemonArgs, registry: Registry) -> Result<ExitCode> {
    let ports = if a.ports.is_empty() {
        file_settings()?
            .slots_ports
            .unwrap_or_else(|| vec![6700, 6701, 6702, 6703])
    } else {
        a.ports.clone()
    };
    let id =
        a.id.clone()
            .unwrap_or_else(|| format!("{}-{}", a.host, ports.first().copied().unwrap_or(0)));
    let work_dir = a
        .work_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("gale-supervisor-{id}")));
    runtime()?.block_on(async {
        let state = Arc::new(connect(&a.zk, a.zk_session_timeout).await?);
        let cfg = SupervisorConfig {
            id,
            host: a.host.clone(),
            ports,
            registry,
            work_dir,
            // Passes run on every change of this supervisor's assignments (a watch); the timer
            // only bounds how late an idle supervisor notices a new session.
            sync_interval: Duration::from_secs(5),
            cluster_secret: a.secret.secret()?,
        };
        if cfg.cluster_secret.is_none() && !is_loopback_host(&cfg.host) {
            tracing::warn!(host = %cfg.host, "Workers listen beyond this machine without a cluster secret: anyone who reaches a worker port can send it tuples (set --cluster-secret-file or GALE_CLUSTER_SECRET; docs/security.md)");
        }
        supervisor::daemon::run(cfg, state, shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
}

// ---- The operator's commands ----

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

fn call<T: serde::de::DeserializeOwned>(
    nimbus: &NimbusArg,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<T> {
    // A Nimbus that is not (yet) the leader answers 503: after a ZooKeeper outage or a Nimbus
    // restart it takes over once the old leader's session expires, a few seconds later. Changes
    // are retried for a while instead of failing at once.
    let deadline = std::time::Instant::now() + LEADER_WAIT;
    let mut told = false;
    loop {
        match call_once(nimbus, method, path, body.clone()) {
            Err(e) if e.downcast_ref::<NotLeader>().is_some() => {
                if std::time::Instant::now() >= deadline {
                    return Err(Unreachable(e.to_string()).into());
                }
                if !told {
                    eprintln!(
                        "{e}; waiting up to {} s for a leader",
                        LEADER_WAIT.as_secs()
                    );
                    told = true;
                }
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            r => return r,
        }
    }
}

/// `s` as one URL path segment: every byte but letters, digits and `-._~` percent-encoded, so a
/// name with a space, `?`, `#` or `/` reaches Nimbus as that name (which then says whether it
/// knows it) instead of changing the request.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How long a change waits for a Nimbus to become the leader.
const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Nimbus answered 503: not the leader, or it cannot reach ZooKeeper.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotLeader(String);

fn call_once<T: serde::de::DeserializeOwned>(
    nimbus: &NimbusArg,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<T> {
    let base = nimbus.base()?;
    let url = format!("{base}{path}");
    let agent = agent();
    let bearer = nimbus.auth.token()?.map(|t| format!("Bearer {t}"));
    let resp = match (method, body) {
        ("GET", _) => agent.get(&url).call(),
        (_, body) => {
            let mut req = agent.post(&url);
            if let Some(b) = &bearer {
                req = req.header("Authorization", b);
            }
            match body {
                Some(b) => req.send_json(&b),
                None => req.send_empty(),
            }
        }
    };
    let mut resp = resp.map_err(|e| Unreachable(format!("cannot reach Nimbus at {base}: {e} (is `gale nimbus` running? set --nimbus or GALE_NIMBUS)")))?;
    let status = resp.status().as_u16();
    if status >= 400 {
        let msg = resp
            .body_mut()
            .read_json::<ErrorBody>()
            .map(|b| b.error)
            .unwrap_or_else(|_| format!("HTTP {status}"));
        if status == 503 {
            return Err(NotLeader(msg).into());
        }
        return Err(UserError(msg).into());
    }
    resp.body_mut()
        .read_json::<T>()
        .context("Nimbus sent a response Gale cannot read")
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_one_path_segment() {
        for (name, want) in [
            ("word-count", "word-count"),
            ("a b", "a%20b"),
            ("x?y#z", "x%3Fy%23z"),
            ("a/b", "a%2Fb"),
            ("%2F", "%252F"),
            ("ü", "%C3%BC"),
        ] {
            assert_eq!(super::segment(name), want, "{name}");
        }
    }
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub nimbus: NimbusArg,
    /// A folder shipped with the topology (shell components run in it).
    #[arg(long, value_name = "DIR")]
    pub resources: Option<PathBuf>,
}

pub fn submit(a: &SubmitArgs, registry: &Registry) -> Result<ExitCode> {
    // Validate locally first: errors point at the user's file. The validated topology goes
    // along: Nimbus takes the declared streams of classes only this binary and its supervisors
    // have from it.
    let validated = load(&a.spec, registry)?.topology;
    let subs = crate::commands::substitutions(&a.spec)?;
    // Includes are merged here: Nimbus cannot read files beside the user's YAML.
    let substituted = flux::expanded_text(&a.spec.file, &subs, &|k| std::env::var(k).ok())?;
    // Only what the user named travels: --resources DIR, else resources/ beside the YAML, else
    // nothing (never the YAML's own folder, which may be /tmp or a home folder).
    let mut resources = Vec::new();
    let dir = match &a.resources {
        Some(d) => Some(d.clone()),
        None => {
            let r = a
                .spec
                .file
                .parent()
                .unwrap_or(Path::new(""))
                .join("resources");
            r.is_dir().then_some(r)
        }
    };
    let Some(dir) = dir else {
        return send_submission(a, substituted, resources, validated);
    };
    if !dir.is_dir() {
        return Err(UserError(format!(
            "--resources {} is not a folder: name the folder to ship with the topology",
            dir.display()
        ))
        .into());
    }
    collect_files(&dir, &dir, &mut resources)?;
    let total: usize = resources.iter().map(|(_, d)| d.len()).sum();
    if total > MAX_RESOURCES {
        return Err(UserError(format!(
            "{} holds {total} bytes; resources shipped with a topology are limited to {MAX_RESOURCES} bytes (pass a smaller --resources DIR)",
            dir.display()
        ))
        .into());
    }
    eprintln!(
        "shipping {} file(s), {total} bytes, from {}",
        resources.len(),
        dir.display()
    );
    send_submission(a, substituted, resources, validated)
}

fn send_submission(
    a: &SubmitArgs,
    substituted: String,
    resources: Vec<(String, Vec<u8>)>,
    validated: flux::Topology,
) -> Result<ExitCode> {
    let req = SubmitRequest {
        validated: Some(validated),
        file: a.spec.file.display().to_string(),
        yaml: substituted,
        resources,
    };
    let r: SubmitResponse = call(
        &a.nimbus,
        "POST",
        "/api/v1/gale/topologies",
        Some(serde_json::to_value(&req)?),
    )?;
    println!("{}", r.id);
    Ok(ExitCode::SUCCESS)
}

/// Largest resources folder `gale submit` ships: it is stored with the topology in one
/// ZooKeeper node, and Nimbus refuses (413) a stored topology over that node's limit.
const MAX_RESOURCES: usize = cluster_state::MAX_NODE_BYTES;

/// Adds the regular files under `dir` to `out` as (path relative to `root` with `/` separators,
/// content). Symlinks and special files are skipped with a warning: only regular files travel.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the resources folder {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot read the resources folder {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let p = entry.path();
        let kind = std::fs::symlink_metadata(&p)
            .with_context(|| format!("cannot read {}", p.display()))?
            .file_type();
        if kind.is_dir() {
            collect_files(root, &p, out)?;
            continue;
        }
        if !kind.is_file() {
            let what = if kind.is_symlink() {
                "a symlink"
            } else {
                "not a regular file"
            };
            tracing::warn!(path = %p.display(), "skipping {what}: only regular files are shipped");
            eprintln!(
                "warning: skipping {} ({what}; only regular files are shipped)",
                p.display()
            );
            continue;
        }
        let rel = p.strip_prefix(root).unwrap_or(&p);
        let Some(name) = resource_name(rel) else {
            eprintln!(
                "warning: skipping {} (its name is not UTF-8 text)",
                p.display()
            );
            continue;
        };
        if std::fs::metadata(&p).map(|m| m.len() as usize).unwrap_or(0) > MAX_RESOURCES {
            return Err(UserError(format!(
                "{} is larger than the {MAX_RESOURCES}-byte resources limit",
                p.display()
            ))
            .into());
        }
        let data = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        out.push((name, data));
    }
    Ok(())
}

/// A shipped file's name: its relative path's parts joined by `/`, or `None` when a part is not
/// UTF-8.
fn resource_name(rel: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts.map(|p| p.join("/"))
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub nimbus: NimbusArg,
}

pub fn list(a: &ListArgs) -> Result<ExitCode> {
    let rows: Vec<TopologyRow> = call(&a.nimbus, "GET", "/api/v1/gale/topologies", None)?;
    if rows.is_empty() {
        println!("No topologies running.");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<12} {:>9} {:>11} {:>11} Topology_Id",
        "Topology_name", "Status", "Num_tasks", "Num_workers", "Uptime_secs"
    );
    println!("{}", "-".repeat(100));
    for r in rows {
        println!(
            "{:<24} {:<12} {:>9} {:>11} {:>11} {}",
            r.name, r.status, r.num_tasks, r.num_workers, r.uptime_secs, r.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this topology (name or id).
    pub name: Option<String>,
    #[command(flatten)]
    pub nimbus: NimbusArg,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn status(a: &StatusArgs) -> Result<ExitCode> {
    let mut view: ClusterView = call(&a.nimbus, "GET", "/api/v1/gale/status", None)?;
    if let Some(n) = &a.name {
        view.topologies.retain(|t| &t.name == n || &t.id == n);
        if view.topologies.is_empty() {
            return Err(UserError(format!("no topology named \"{n}\" (see `gale list`)")).into());
        }
    }
    if a.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("Supervisors:");
    for s in &view.supervisors {
        println!(
            "  {:<20} {:<16} ports {:?} used {:?}",
            s.id, s.host, s.ports, s.used_ports
        );
    }
    for t in &view.topologies {
        println!(
            "Topology {} ({}) {} uptime {}s, {} workers, {} executors, {} tasks",
            t.name, t.id, t.status, t.uptime_secs, t.workers, t.executors, t.tasks
        );
        for c in &t.components {
            let st = c.stats.clone().unwrap_or_default();
            println!(
                "  {:<20} {:<6} executors {:>3} tasks {:>3}  emitted {:>10} executed {:>10} acked {:>10} failed {:>6}",
                c.id, c.kind, c.executors, c.tasks, st.emitted, st.executed, st.acked, st.failed
            );
            if let (Some(p50), Some(p99)) = (st.latency_p50_ms, st.latency_p99_ms) {
                println!(
                    "  {:<20} end-to-end latency p50 {p50:.3} ms, p99 {p99:.3} ms",
                    ""
                );
            }
            for (name, v) in &st.gauges {
                println!("  {:<20} {name} {v}", "");
            }
        }
        if let Some(e) = &t.last_error {
            println!("  last error of a worker: {e}");
        }
        for c in &t.components {
            if let Some(e) = &c.last_error {
                println!("  last error of {}: {e}", c.id);
            }
        }
        for r in &t.assignment {
            println!(
                "    {:<20} [{}-{}] -> {} {}:{}",
                r.component, r.task_start, r.task_end, r.supervisor, r.host, r.port
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct KillArgs {
    pub name: String,
    /// Seconds between deactivation and removal (default: the topology's message timeout).
    #[arg(short = 'w', long = "wait")]
    pub wait: Option<u64>,
    #[command(flatten)]
    pub nimbus: NimbusArg,
}

pub fn kill(a: &KillArgs) -> Result<ExitCode> {
    let wait = a
        .wait
        .map(|w| w.to_string())
        .unwrap_or_else(|| "default".into());
    let r: ActionResponse = call(
        &a.nimbus,
        "POST",
        &format!("/api/v1/topology/{}/kill/{wait}", segment(&a.name)),
        None,
    )?;
    println!("Killed topology: {} ({})", a.name, r.id);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct NameArgs {
    pub name: String,
    #[command(flatten)]
    pub nimbus: NimbusArg,
}

pub fn set_active(a: &NameArgs, active: bool) -> Result<ExitCode> {
    let action = if active { "activate" } else { "deactivate" };
    let r: ActionResponse = call(
        &a.nimbus,
        "POST",
        &format!("/api/v1/topology/{}/{action}", segment(&a.name)),
        None,
    )?;
    println!(
        "{} {} ({}): {}",
        if active { "Activated" } else { "Deactivated" },
        a.name,
        r.id,
        r.status
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct RebalanceArgs {
    pub name: String,
    #[arg(short = 'w', long = "wait")]
    pub wait: Option<u64>,
    /// New number of workers.
    #[arg(short = 'n', long = "num-workers")]
    pub workers: Option<u32>,
    /// New executor count of a component, COMPONENT=N (repeatable; at most its task count).
    #[arg(short = 'e', long = "executor", value_name = "COMPONENT=N")]
    pub executors: Vec<String>,
    #[command(flatten)]
    pub nimbus: NimbusArg,
}

pub fn rebalance(a: &RebalanceArgs) -> Result<ExitCode> {
    let mut req = RebalanceRequest {
        workers: a.workers,
        ..Default::default()
    };
    for e in &a.executors {
        let Some((c, n)) = e.split_once('=') else {
            return Err(UserError(format!(
                "-e {e}: expected COMPONENT=EXECUTORS, e.g. -e split=4"
            ))
            .into());
        };
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| UserError(format!("-e {e}: {n} is not a whole number")))?;
        req.executors.insert(c.trim().to_owned(), n);
    }
    let wait = a
        .wait
        .map(|w| w.to_string())
        .unwrap_or_else(|| "default".into());
    let r: ActionResponse = call(
        &a.nimbus,
        "POST",
        &format!("/api/v1/topology/{}/rebalance/{wait}", segment(&a.name)),
        Some(serde_json::to_value(&req)?),
    )?;
    println!("Rebalancing topology: {} ({})", a.name, r.id);
    Ok(ExitCode::SUCCESS)
}

pub fn nimbus_error_is_unreachable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<nimbus::daemon::NimbusError>().is_some()
}
