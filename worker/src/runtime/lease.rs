//! Fencing: a worker's tasks run only while their supervisor holds a lease on them.
//!
//! Nimbus moves a supervisor's executors elsewhere once the supervisor has been out of touch for
//! its supervisor timeout (or its workers' heartbeats for the worker timeout). A supervisor cut
//! off from ZooKeeper cannot learn that, so it renews a lease each time it reads its assignment,
//! for less than Nimbus waits (the assignment's `lease_ms`). When the lease runs out, spouts stop
//! emitting and taking acks, and bolts stop executing, before any other copy of their tasks can
//! start: never two copies of one task, even when the supervisor is paused or its ZooKeeper calls
//! hang. (The supervisor then stops the workers; a renewed lease lets paused ones run on.)

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Until when (microseconds since a process-wide start, monotonic) the tasks may run;
/// `u64::MAX`: no end.
#[derive(Clone, Debug)]
pub struct Lease(Arc<AtomicU64>);

fn epoch() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn micros(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_micros()).unwrap_or(u64::MAX - 1)
}

impl Lease {
    /// A lease that never runs out (local mode).
    pub fn unlimited() -> Self {
        Lease(Arc::new(AtomicU64::new(u64::MAX)))
    }

    /// A lease already run out: nothing runs until it is renewed.
    pub fn expired() -> Self {
        epoch();
        Lease(Arc::new(AtomicU64::new(0)))
    }

    /// The tasks may run until `at` (never past `u64::MAX - 1`: renewing keeps a lease finite).
    pub fn renew_until(&self, at: Instant) {
        self.0.store(micros(at).min(u64::MAX - 1), Ordering::SeqCst);
    }

    /// Never runs out (until renewed with an end): no assignment asks for a lease.
    pub fn lift(&self) {
        self.0.store(u64::MAX, Ordering::SeqCst);
    }

    /// Runs out now.
    pub fn revoke(&self) {
        self.0.store(0, Ordering::SeqCst);
    }

    /// Whether the tasks may run now.
    #[inline]
    pub fn valid(&self) -> bool {
        let until = self.0.load(Ordering::Relaxed);
        until == u64::MAX || micros(Instant::now()) < until
    }

    /// How long until it runs out (`None`: never; zero: it has).
    pub fn remaining(&self) -> Option<Duration> {
        let until = self.0.load(Ordering::SeqCst);
        (until != u64::MAX)
            .then(|| Duration::from_micros(until.saturating_sub(micros(Instant::now()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_out_and_is_renewed() {
        assert!(Lease::unlimited().valid());
        assert_eq!(Lease::unlimited().remaining(), None);
        let l = Lease::expired();
        assert!(!l.valid());
        assert_eq!(l.remaining(), Some(Duration::ZERO));
        l.renew_until(Instant::now() + Duration::from_secs(60));
        assert!(l.valid());
        assert!(l.remaining().is_some_and(|r| r > Duration::from_secs(50)));
        l.renew_until(Instant::now() - Duration::from_millis(1));
        assert!(!l.valid());
        l.renew_until(Instant::now() + Duration::from_secs(60));
        l.revoke();
        assert!(!l.valid());
        // Clones share it: the supervisor's copy steers the executors'.
        let c = l.clone();
        l.renew_until(Instant::now() + Duration::from_secs(1));
        assert!(c.valid());
    }
}
