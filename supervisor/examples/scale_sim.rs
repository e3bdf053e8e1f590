//! Many supervisors' coordination in one process, for `scripts/scale.sh` (docs/scale.md).
//!
//! Each simulated supervisor has its own ZooKeeper session and runs the Supervisor's own
//! following logic ([`Follower`]): its node (`/assigned/<id>`) watched, a topology's assignment
//! read when its generation changes, the registration written when it changes, a pass on every
//! change and on the daemon's timer, and one heartbeat per assigned slot on the period the
//! assignment gives. Workers are not started: a slot "runs" its executors as soon as its
//! assignment is not held, and its beat lists them.
//!
//! ```text
//! scale_sim --zookeeper 127.0.0.1:2181 --supervisors 1000 --slots 4 [--root /gale]
//!           [--session-timeout 4] [--duration 600] [--kill-when FILE]
//! ```
//!
//! Prints one line every 10 s (`t=.. registered=.. running_slots=.. sim_requests_per_s=..`),
//! and with `--kill-when`, once FILE exists kills one supervisor that runs workers (its session
//! closes, as after a kill -9 once the session timeout passed) and prints how long until no
//! assignment names it and until its executors run elsewhere.

use cluster_state::{
    ClusterState, Counted, ExecutorBeat, ExecutorSlot, SupervisorRecord, WorkerBeat, ZkStore,
    now_secs,
};
use components::Builtins;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use supervisor::daemon::{Follower, beat_due_in, beat_period, beats_now, desired_ports};

type State = ClusterState<Arc<Counted<ZkStore>>>;

struct Args {
    zk: String,
    root: String,
    supervisors: usize,
    slots: u16,
    session_timeout: f64,
    duration: f64,
    kill_when: Option<std::path::PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        zk: String::new(),
        root: "/gale".into(),
        supervisors: 1000,
        slots: 4,
        session_timeout: 4.0,
        duration: 600.0,
        kill_when: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{k} {v}: {e}"));
        match k.as_str() {
            "--zookeeper" => a.zk = v,
            "--root" => a.root = v,
            "--supervisors" => a.supervisors = num(&v)? as usize,
            "--slots" => a.slots = num(&v)? as u16,
            "--session-timeout" => a.session_timeout = num(&v)?,
            "--duration" => a.duration = num(&v)?,
            "--kill-when" => a.kill_when = Some(v.into()),
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if a.zk.is_empty() {
        return Err("--zookeeper HOST:PORT is required".into());
    }
    Ok(a)
}

/// A slot's simulated worker.
struct Running {
    topology: String,
    executors: Vec<ExecutorSlot>,
    started: Instant,
    last_beat: Option<Instant>,
}

/// Counters shared with the reporter.
#[derive(Default)]
struct Totals {
    registered: AtomicUsize,
    running: AtomicUsize,
}

fn beat(me: &str, port: u16, r: &Running) -> WorkerBeat {
    let up = r.started.elapsed().as_secs();
    WorkerBeat {
        time_secs: now_secs(),
        supervisor: me.to_owned(),
        port,
        uptime_secs: up,
        executors: r
            .executors
            .iter()
            .filter(|e| e.supervisor == me && e.port == port)
            .map(|e| ExecutorBeat {
                start: e.start,
                end: e.end,
                component: format!("c{}", e.start % 3),
                emitted: up * 1000,
                executed: up * 1000,
                acked: up * 1000,
                busy_us: up * 1000,
                ..ExecutorBeat::default()
            })
            .collect(),
        stopped: None,
    }
}

/// One supervisor: the daemon's passes, without workers.
async fn supervise(
    me: String,
    ports: Vec<u16>,
    state: State,
    totals: Arc<Totals>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let classes = topology_api::Registry::with_builtins().runnable_names();
    let mut follower = Follower::default();
    let mut running: BTreeMap<u16, Running> = BTreeMap::new();
    let mut registered = false;
    loop {
        let before = running.len();
        let pass = async {
            follower.poll(&me, &state).await?;
            let rec = SupervisorRecord {
                id: me.clone(),
                host: "127.0.0.1".into(),
                ports: ports.clone(),
                used_ports: running.keys().copied().collect(),
                start_time_secs: 0,
                version: "scale-sim".into(),
                classes: Some(classes.clone()),
            };
            follower.register(&state, rec).await?;
            let assignments = follower.assignments();
            let desired = desired_ports(&me, &assignments);
            let any_due = running
                .values()
                .any(|r| beat_due_in(r.last_beat, beat_period(&follower, &r.topology)).is_zero());
            for &port in &ports {
                let want = desired.get(&port);
                let same = |r: &Running| {
                    want.is_some_and(|(id, a)| *id == r.topology && a.executors == r.executors)
                };
                if running.get(&port).is_some_and(|r| !same(r)) {
                    let r = running.remove(&port).expect("present");
                    state.remove_workerbeat(&r.topology, &me, port).await?;
                }
                if let (false, Some((id, a))) = (running.contains_key(&port), want)
                    && !a.held
                {
                    running.insert(
                        port,
                        Running {
                            topology: (*id).to_owned(),
                            executors: a.executors.clone(),
                            started: Instant::now(),
                            last_beat: None,
                        },
                    );
                }
                if let Some(r) = running.get_mut(&port) {
                    let period = beat_period(&follower, &r.topology);
                    if beats_now(r.last_beat, period, any_due) {
                        state
                            .set_workerbeat(&r.topology, &beat(&me, port, r))
                            .await?;
                        r.last_beat = Some(Instant::now());
                    }
                }
            }
            Ok::<_, cluster_state::StateError>(())
        };
        if let Err(e) = pass.await {
            eprintln!("{me}: pass failed: {e}");
        }
        if !registered {
            registered = true;
            totals.registered.fetch_add(1, Ordering::Relaxed);
        }
        let after = running.len();
        if after >= before {
            totals.running.fetch_add(after - before, Ordering::Relaxed);
        } else {
            totals.running.fetch_sub(before - after, Ordering::Relaxed);
        }
        // The daemon's timer: 5 s idle, a third of the lease while running, or the next beat.
        let mut next = Duration::from_secs(5);
        if !running.is_empty()
            && let Some(d) = follower.lease(&me)
        {
            next = next.min(d / 3);
        }
        for r in running.values() {
            next = next.min(beat_due_in(
                r.last_beat,
                beat_period(&follower, &r.topology),
            ));
        }
        tokio::select! {
            _ = stop.changed() => break,
            _ = follower.changed() => {}
            _ = tokio::time::sleep(next.max(Duration::from_millis(100))) => {}
        }
    }
    totals.running.fetch_sub(running.len(), Ordering::Relaxed);
}

/// Waits until no assignment names `victim`, then until no assignment of those topologies is
/// held (their executors run elsewhere); prints both times.
async fn watch_reassignment(
    state: &State,
    victim: &str,
    topologies: &BTreeSet<String>,
    t0: Instant,
) {
    let mut moved = None;
    let deadline = t0 + Duration::from_secs(300);
    while Instant::now() < deadline {
        let mut names_victim = false;
        let mut held = false;
        for id in topologies {
            if let Ok(Some(a)) = state.assignment(id).await {
                names_victim |= a.executors.iter().any(|e| e.supervisor == victim);
                held |= a.held;
            }
        }
        if !names_victim && moved.is_none() {
            moved = Some(t0.elapsed());
            println!(
                "reassigned: no assignment names {victim} {:.2} s after its session ended",
                t0.elapsed().as_secs_f64()
            );
        }
        if moved.is_some() && !held {
            println!(
                "released: its executors may run elsewhere {:.2} s after its session ended",
                t0.elapsed().as_secs_f64()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("reassignment: not done within 300 s");
}

async fn run(a: Args) -> Result<(), String> {
    let timeout = Duration::from_secs_f64(a.session_timeout);
    let totals = Arc::new(Totals::default());
    let mut stores: Vec<Arc<Counted<ZkStore>>> = Vec::with_capacity(a.supervisors);
    // Sessions open 50 at a time.
    for chunk in (0..a.supervisors).collect::<Vec<_>>().chunks(50) {
        let opened = futures_util::future::join_all(
            chunk
                .iter()
                .map(|_| ZkStore::connect(&a.zk, &a.root, timeout, None)),
        )
        .await;
        for s in opened {
            stores.push(Arc::new(Counted::new(
                s.map_err(|e| format!("cannot connect: {e}"))?,
            )));
        }
    }
    println!("sessions: {}", stores.len());
    let mut stops = Vec::new();
    let mut names = Vec::new();
    for (i, store) in stores.iter().enumerate() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let me = format!("sim-{i:04}");
        let ports = (0..a.slots).map(|p| 6700 + p).collect();
        tokio::spawn(supervise(
            me.clone(),
            ports,
            ClusterState::new(store.clone()),
            totals.clone(),
            rx,
        ));
        stops.push(Some(tx));
        names.push(me);
    }
    let start = Instant::now();
    let count = |stores: &[Arc<Counted<ZkStore>>]| -> u64 {
        stores.iter().map(|s| s.requests().total()).sum()
    };
    let observer = ClusterState::new(Arc::new(Counted::new(
        ZkStore::connect(&a.zk, &a.root, timeout, None)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?,
    )));
    let mut killed = a.kill_when.is_none();
    let mut last = (Instant::now(), count(&stores));
    while start.elapsed().as_secs_f64() < a.duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t = start.elapsed().as_secs();
        if last.0.elapsed() >= Duration::from_secs(10) {
            let now = (Instant::now(), count(&stores));
            let rate = (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64();
            println!(
                "t={t} registered={} running_slots={} sim_requests_per_s={rate:.1}",
                totals.registered.load(Ordering::Relaxed),
                totals.running.load(Ordering::Relaxed)
            );
            last = now;
        }
        if !killed && a.kill_when.as_ref().is_some_and(|f| f.exists()) {
            killed = true;
            // The first supervisor that runs something.
            let mut victim = None;
            for (i, name) in names.iter().enumerate() {
                let (index, _) = observer
                    .watch_supervisor_assignments(name)
                    .await
                    .map_err(|e| e.to_string())?;
                if !index.topologies.is_empty() {
                    victim = Some((i, index.topologies.into_keys().collect::<BTreeSet<_>>()));
                    break;
                }
            }
            let Some((i, topologies)) = victim else {
                println!("kill: no supervisor runs anything");
                continue;
            };
            println!("kill: {} (runs {} topologies)", names[i], topologies.len());
            if let Some(tx) = stops[i].take() {
                let _ = tx.send(true);
            }
            // Its last handle closes the session: its node goes at once.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let store = std::mem::replace(
                &mut stores[i],
                Arc::new(Counted::new(
                    ZkStore::connect(&a.zk, &a.root, timeout, None)
                        .await
                        .map_err(|e| format!("cannot connect: {e}"))?,
                )),
            );
            drop(store);
            let t0 = Instant::now();
            watch_reassignment(&observer, &names[i], &topologies, t0).await;
        }
    }
    println!(
        "done: {} supervisors, sim requests {} in {:.0} s",
        names.len(),
        count(&stores),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("scale_sim: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(run(a)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale_sim: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
