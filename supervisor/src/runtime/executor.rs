//! Executor threads: the loops that drive spouts and bolts.

use super::router::{ErrorReporter, Router};
use super::stats::ExecutorStats;
use super::{Batch, GoSignal};
use crossbeam_channel::{Receiver, TryRecvError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use topology_api::layout::ExecutorId;
use topology_api::{Bolt, BoltCollector, Spout, SpoutCollector, TopologyContext};

/// Everything an executor thread owns besides its components.
pub(crate) struct ExecutorEnv {
    pub component: String,
    pub executor: ExecutorId,
    pub router: Router,
    pub stats: Arc<ExecutorStats>,
    /// Spouts stop emitting when set (Ctrl-C, --duration, a failed executor, kill).
    pub stop: Arc<AtomicBool>,
    /// Spouts emit only while active (Storm's deactivate pauses them).
    pub active: Arc<AtomicBool>,
    pub go: Arc<GoSignal>,
    pub ready: crossbeam_channel::Sender<Result<(), String>>,
    pub flush_interval: Duration,
    pub contexts: Vec<TopologyContext>,
    pub reporter: Arc<dyn ErrorReporter + Send + Sync>,
}

/// Progressive wait for an idle spout (Storm 2's idea): spin briefly, then yield, then sleep with
/// growing naps up to 1 ms, so an idle spout neither burns a core nor adds more than ~1 ms.
#[derive(Debug, Default)]
struct Backoff {
    idle: u32,
}

impl Backoff {
    fn reset(&mut self) {
        self.idle = 0;
    }

    fn wait(&mut self) {
        self.idle = self.idle.saturating_add(1);
        match self.idle {
            0..=63 => std::hint::spin_loop(),
            64..=127 => std::thread::yield_now(),
            n => {
                let micros = (50u64 << ((n - 128).min(5))).min(1000);
                std::thread::sleep(Duration::from_micros(micros));
            }
        }
    }
}

pub(crate) fn run_spout(mut env: ExecutorEnv, mut spouts: Vec<Box<dyn Spout>>) {
    let first = env.executor.start;
    let mut opened = Ok(());
    for (i, s) in spouts.iter_mut().enumerate() {
        if let Err(e) = s.open(&env.contexts[i]) {
            opened = Err(format!("task {}: open failed: {e}", first + i as u32));
            break;
        }
    }
    let ok = opened.is_ok();
    let _ = env.ready.send(opened);
    if !ok || !env.go.wait() {
        return;
    }
    for s in spouts.iter_mut() {
        s.activate();
    }
    let mut backoff = Backoff::default();
    let mut finished = vec![false; spouts.len()];
    let mut iter: u32 = 0;
    let mut active = true;
    'outer: loop {
        if env.stop.load(Ordering::Relaxed) || env.router.downstream_lost {
            break;
        }
        let want_active = env.active.load(Ordering::Relaxed);
        if want_active != active {
            active = want_active;
            for s in spouts.iter_mut() {
                if active {
                    s.activate();
                } else {
                    s.deactivate();
                }
            }
        }
        if !active {
            env.router.flush();
            env.stats.publish(&env.router.counters);
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let before = env.router.counters.emitted;
        let mut all_finished = true;
        for (i, s) in spouts.iter_mut().enumerate() {
            if finished[i] {
                continue;
            }
            env.router.current_task = first + i as u32;
            s.next_tuple(&mut SpoutCollector::new(&mut env.router));
            if !env.router.immediate_acks.is_empty() {
                // Acking is off: Storm acks a spout tuple as soon as it is emitted.
                for id in env.router.immediate_acks.drain(..) {
                    s.ack(&id);
                    env.router.counters.acked += 1;
                }
            }
            if s.is_finished() {
                finished[i] = true;
            } else {
                all_finished = false;
            }
        }
        if all_finished {
            break 'outer;
        }
        iter = iter.wrapping_add(1);
        if env.router.counters.emitted > before {
            backoff.reset();
            if iter.is_multiple_of(64) {
                env.stats.publish(&env.router.counters);
                if env.router.last_flush.elapsed() >= env.flush_interval {
                    env.router.flush();
                }
            }
        } else {
            env.router.flush();
            env.stats.publish(&env.router.counters);
            backoff.wait();
        }
    }
    for s in spouts.iter_mut() {
        s.deactivate();
        s.close();
    }
    env.router.flush();
    env.stats.publish(&env.router.counters);
    if env.router.downstream_lost {
        env.reporter.report(
            &env.component,
            first,
            "a downstream executor stopped; this spout stopped too",
        );
    }
    // Dropping the router drops its senders: downstream executors see the end of input.
}

pub(crate) fn run_bolt(
    mut env: ExecutorEnv,
    rx: Receiver<Batch>,
    mut bolts: Vec<Box<dyn Bolt>>,
    cleanup: bool,
) {
    let first = env.executor.start;
    let mut prepared = Ok(());
    for (i, b) in bolts.iter_mut().enumerate() {
        if let Err(e) = b.prepare(&env.contexts[i]) {
            prepared = Err(format!("task {}: prepare failed: {e}", first + i as u32));
            break;
        }
    }
    let ok = prepared.is_ok();
    let _ = env.ready.send(prepared);
    if !ok || !env.go.wait() {
        return;
    }
    let auto_ack: Vec<bool> = bolts.iter().map(|b| b.auto_ack()).collect();
    loop {
        let batch = match rx.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty) => {
                // Out of input: send what is buffered now rather than wait for a full batch.
                env.router.flush();
                env.stats.publish(&env.router.counters);
                match rx.recv() {
                    Ok(b) => b,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        let n = batch.len() as u64;
        for d in batch {
            let idx = (d.task - first) as usize;
            let Some(bolt) = bolts.get_mut(idx) else {
                continue;
            };
            env.router.current_task = d.task;
            let settled = env.router.counters.acked + env.router.counters.failed;
            bolt.execute(&d.tuple, &mut BoltCollector::new(&mut env.router));
            if auto_ack[idx] && env.router.counters.acked + env.router.counters.failed == settled {
                env.router.counters.acked += 1;
            }
        }
        env.router.counters.executed += n;
        if env.router.last_flush.elapsed() >= env.flush_interval {
            env.router.flush();
            env.stats.publish(&env.router.counters);
        }
    }
    if cleanup {
        for b in bolts.iter_mut() {
            b.cleanup();
        }
    }
    env.router.flush();
    env.stats.publish(&env.router.counters);
}
